//! Video data: exact frame decoding, datasets and splits, clip sampling, augmentation,
//! and the synthetic dataset generator.
//!
//! Decoding is FFmpeg through video-rs; everything after it is decoder-agnostic: frames are
//! packed RGB24 buffers until augmentation renders channel-first `f32` clips in `[0, 1]`.
//!
//! Without the `video` feature the decoder-free parts remain: dataset indexes and splits,
//! clip-index sampling, augmentation, the loader and the tensor batch; what opens a video file
//! (decoding, clips, the synthetic generator's encoder, the Burn dataset of clips) needs it.

pub mod augment;
pub mod batch;
#[cfg(feature = "video")]
pub mod clips;
pub mod datasets;
pub mod input;
pub mod loader;
#[cfg(feature = "video")]
pub mod metadata;
pub mod partition;
mod pixels;
pub mod sampling;
#[cfg(feature = "video")]
pub mod synth;
#[cfg(feature = "video")]
pub mod tensors;
#[cfg(all(test, feature = "video"))]
mod test_videos;
#[cfg(feature = "video")]
pub mod throughput;
#[cfg(feature = "video")]
pub mod video;
