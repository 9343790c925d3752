//! What a network expects of its input pixels: channel order and per-channel normalisation.
//!
//! Our clips are RGB in `[0, 1]`, which is what our own models train on. Pre-trained weights
//! come with their own convention: the official TCLR/TimeBalance checkpoints were trained on
//! BGR frames in `[0, 1]` (OpenCV decoding), torchvision's Kinetics-400 video models on RGB
//! normalised with the Kinetics mean and standard deviation ([`KINETICS_MEAN`],
//! [`KINETICS_STD`]). A model initialised from such weights must see pixels the same way, in
//! every stage that feeds it (training, scoring, evaluation, `predict`): so the conversion
//! is applied once, where a dataset hands out clips ([`crate::data::tensors::VideoClipDataset`]).

use serde::{Deserialize, Serialize};

#[cfg(feature = "video")]
use super::clips::VideoClips;
use super::pixels::CHANNELS;

/// torchvision's Kinetics-400 video models: channel means of the training frames (RGB).
pub const KINETICS_MEAN: [f32; CHANNELS] = [0.432_16, 0.394_666, 0.376_45];
/// torchvision's Kinetics-400 video models: channel standard deviations (RGB).
pub const KINETICS_STD: [f32; CHANNELS] = [0.228_03, 0.221_45, 0.216_989];
/// No normalisation: `(x - 0) / 1`.
pub const IDENTITY_MEAN: [f32; CHANNELS] = [0.0; CHANNELS];
/// No normalisation: `(x - 0) / 1`.
pub const IDENTITY_STD: [f32; CHANNELS] = [1.0; CHANNELS];

/// Order of the colour channels the network reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    /// Red, green, blue: our models, torchvision's, PyTorchVideo's.
    #[default]
    Rgb,
    /// Blue, green, red: the official TCLR and TimeBalance checkpoints (OpenCV frames).
    Bgr,
}

/// The conversion from our RGB `[0, 1]` clips to what the network reads: channels reordered,
/// then `(x - mean[c]) / std[c]` per channel `c` of the network's order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputPixels {
    pub order: ChannelOrder,
    pub mean: [f32; CHANNELS],
    pub std: [f32; CHANNELS],
}

impl Default for InputPixels {
    fn default() -> Self {
        Self {
            order: ChannelOrder::Rgb,
            mean: IDENTITY_MEAN,
            std: IDENTITY_STD,
        }
    }
}

impl InputPixels {
    /// Whether the conversion leaves clips as they are.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// A standard deviation that is not positive and finite, as an error message.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!("pixel_std holds {s}: expected positive values"));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(format!(
                "pixel_mean {:?}: expected finite values",
                self.mean
            ));
        }
        Ok(())
    }

    #[cfg(feature = "video")]
    /// Convert `item`'s clips in place (layout `[clips, channel, frames, size, size]`).
    pub fn apply(&self, item: &mut VideoClips) {
        if self.is_identity() {
            return;
        }
        let plane = item.frames * item.size * item.size;
        for clip in item.clips.chunks_exact_mut(CHANNELS * plane) {
            if self.order == ChannelOrder::Bgr {
                let (red, rest) = clip.split_at_mut(plane);
                red.swap_with_slice(&mut rest[plane..]);
            }
            for (c, channel) in clip.chunks_exact_mut(plane).enumerate() {
                let (mean, inv_std) = (self.mean[c], 1.0 / self.std[c]);
                for v in channel {
                    *v = (*v - mean) * inv_std;
                }
            }
        }
    }
}

#[cfg(all(test, feature = "video"))]
mod tests {
    use super::*;

    /// Two clips of 2 frames of 1×1 pixel, each channel `c` of clip `k` holding `10k + c` and
    /// `10k + c + 0.5`.
    fn item() -> VideoClips {
        let clips = (0..2)
            .flat_map(|k| {
                (0..CHANNELS).flat_map(move |c| {
                    let v = (10 * k + c) as f32;
                    [v, v + 0.5]
                })
            })
            .collect();
        VideoClips {
            video: 0,
            label: None,
            clips,
            n_clips: 2,
            frames: 2,
            size: 1,
        }
    }

    #[test]
    fn identity_leaves_clips_alone() {
        let mut it = item();
        InputPixels::default().apply(&mut it);
        assert_eq!(it.clips, item().clips);
    }

    #[test]
    fn bgr_swaps_red_and_blue_of_every_clip_then_normalises_in_the_new_order() {
        let mut it = item();
        let pixels = InputPixels {
            order: ChannelOrder::Bgr,
            mean: [1.0, 0.0, 0.0],
            std: [2.0, 1.0, 1.0],
        };
        pixels.apply(&mut it);
        let expected: Vec<f32> = vec![
            // clip 0: B (2, 2.5) normalised by channel 0's (1, 2); G; R.
            0.5, 0.75, 1.0, 1.5, 0.0, 0.5, //
            // clip 1: B (12, 12.5); G (11, 11.5); R (10, 10.5).
            5.5, 5.75, 11.0, 11.5, 10.0, 10.5,
        ];
        assert_eq!(it.clips, expected);
    }

    #[test]
    fn a_zero_std_is_refused() {
        let pixels = InputPixels {
            std: [1.0, 0.0, 1.0],
            ..InputPixels::default()
        };
        assert!(pixels.validate().unwrap_err().contains("pixel_std"));
        assert!(InputPixels::default().validate().is_ok());
    }
}
