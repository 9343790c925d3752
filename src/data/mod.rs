//! Video data: exact frame decoding, datasets and splits, clip sampling, augmentation,
//! and the synthetic dataset generator.
//!
//! Decoding is FFmpeg through video-rs; everything after it is decoder-agnostic: frames are
//! packed RGB24 buffers until augmentation renders channel-first `f32` clips in `[0, 1]`.
//!
//! Without the `video` feature only the decoder-free parts remain: clip-index sampling and
//! the tensor batch the training steps consume.

#[cfg(feature = "video")]
pub mod augment;
pub mod batch;
#[cfg(feature = "video")]
pub mod clips;
#[cfg(feature = "video")]
pub mod datasets;
#[cfg(feature = "video")]
pub mod epoch_loader;
#[cfg(feature = "video")]
pub mod loader;
#[cfg(feature = "video")]
pub mod partition;
#[cfg(feature = "video")]
mod pixels;
pub mod sampling;
#[cfg(feature = "video")]
pub mod synth;
#[cfg(feature = "video")]
pub mod tensors;
#[cfg(feature = "video")]
pub mod video;
