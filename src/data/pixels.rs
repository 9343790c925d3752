//! Pixel arithmetic shared by augmentation ([`super::augment`]) and the synthetic dataset
//! generator ([`super::synth`]): the RGB channel count, BT.601 luma, linear blending and the
//! byte ↔ `[0, 1]` mapping. Separate so that both ends of the pipeline, the frames the
//! generator writes and the operations that augment decoded frames, use one definition of
//! each formula instead of two copies that could drift apart.

/// Colour channels of an RGB frame (also the bytes of one packed RGB24 pixel).
pub const CHANNELS: usize = 3;
/// Largest `u8` channel value, the divisor that maps bytes to `[0, 1]`.
pub const U8_MAX: f32 = 255.0;
/// ITU-R BT.601 luma weights (as torchvision's `rgb_to_grayscale`, and matching the YUV
/// conversion of the synthetic videos' encoder).
const LUMA_WEIGHTS: [f32; CHANNELS] = [0.299, 0.587, 0.114];

/// An RGB colour, channels in `[0, 1]`.
pub type Rgb = [f32; CHANNELS];

/// ITU-R BT.601 luma.
pub fn luma(px: Rgb) -> f32 {
    px.iter().zip(LUMA_WEIGHTS).map(|(v, w)| v * w).sum()
}

/// torchvision's `_blend`: `f·x + (1-f)·other`.
pub fn blend(x: f32, other: f32, f: f32) -> f32 {
    f * x + (1.0 - f) * other
}

/// A byte channel value mapped to `[0, 1]`.
pub fn from_byte(v: u8) -> f32 {
    f32::from(v) / U8_MAX
}

/// A channel value clamped to `[0, 1]` and rounded to the nearest byte (the synthetic
/// generator's, which needs the `video` feature to encode its files).
#[cfg(feature = "video")]
pub fn to_byte(value: f32) -> u8 {
    (value.clamp(0.0, 1.0) * U8_MAX).round() as u8
}
