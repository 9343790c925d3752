//! Video data: exact frame decoding, datasets and splits, clip sampling, augmentation,
//! and the synthetic dataset generator.
//!
//! Decoding is FFmpeg through video-rs; everything after it is decoder-agnostic: frames are
//! packed RGB24 buffers until augmentation renders channel-first `f32` clips in `[0, 1]`.

pub mod augment;
pub mod clips;
pub mod datasets;
pub mod epoch_loader;
pub mod loader;
pub mod partition;
pub mod sampling;
pub mod synth;
pub mod tensors;
pub mod video;
