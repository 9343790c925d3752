//! Per-clip spatial and colour augmentation, rendered straight into a
//! channel-first `[3, T, S, S]` `f32` buffer in `[0, 1]`.
//!
//! One parameter set ([`ClipAugment`]) is drawn per clip and applied to every
//! frame, so the augmentation never introduces fake motion. Rendering is a
//! pure function of the frames and the parameters, so the same seed gives a
//! bit-identical clip.
//!
//! References of the form `dl_ssl.py:N` are lines of the official TimeBalance
//! release (`DAVEISHAN/TimeBalance` @ 2efb8cb, `dataloaders/dl_ssl.py` and
//! `dataloaders/dl_semisup_2clips.py`).
//!
//! # Pipeline (per frame, in this order)
//!
//! 1. **Crop + resize**: a source window (`width × height` at `left, top`,
//!    a [`CropBox`]) is resized to `S × S` with fast_image_resize's bilinear
//!    convolution (anti-aliased when downscaling, like PIL / torchvision with
//!    `antialias=True`). The window policies ([`CropPolicy`]):
//!    * `RandomScaled(r)`: `f` uniform in `r`, window `f·W × f·H` (the
//!      source's aspect ratio) at a uniform position, *squashed* to the square
//!      by the resize. This is the release's `resized_crop` for
//!      self-supervision (`dl_ssl.py:134,136-137,238`, `f ~ U(0.5, 1)`) and
//!      fine-tuning (`dl_semisup_2clips.py:172,242`, `f ~ U(0.4, 1)`).
//!    * `CenterScaled(f)`: the centred `f·W × f·H` window, the release's
//!      evaluation crop (`dl_semisup_2clips.py:460,463`, `f = 0.8`); `f = 1`
//!      is the whole frame.
//!    * `RandomSquare(r)` / `Center(f)`: a square of side `f · min(W, H)`
//!      (random position / centred), as TCLR's square crop (`TCLR:
//!      dl_tclr.py:129,229`). 3-crop evaluation uses such squares at the
//!      start, centre and end of the longer side.
//! 2. **Horizontal flip** (switchable per dataset, because it swaps the
//!    meaning of left/right classes). The release flips after the colour
//!    operations (`dl_ssl.py:261-262`); every colour operation here is per
//!    pixel or uses a mirror-invariant frame mean, so the order does not
//!    change the result.
//! 3. **Colour jitter**, fixed order brightness → contrast → saturation → hue,
//!    each component applied independently with probability `jitter_prob`
//!    (torchvision formulas, `x` in `[0, 1]`, results clamped to `[0, 1]`):
//!    * brightness `f`: `x' = f·x`
//!    * contrast `f`: `x' = f·x + (1-f)·m`, `m` = mean luma of the frame
//!    * saturation `f`: `x' = f·x + (1-f)·Y`, `Y` = luma of the pixel
//!    * hue `δ` (in turns): RGB → HSV, `h' = (h + δ) mod 1`, HSV → RGB.
//! 4. **Grayscale**: every channel set to the ITU-R BT.601 luma
//!    `Y = 0.299 R + 0.587 G + 0.114 B` (`dl_ssl.py:251-252`, p = 0.175).
//! 5. **Gamma**, sampled only together with grayscale (conditional
//!    probability `gamma_prob`, 0.75 for self-supervision): torchvision's
//!    `adjust_gamma` with gain 1, `x' = x^g` clamped to `[0, 1]`, with
//!    `g ~ U(0.75, 1.25)` (`dl_ssl.py:143,253-255`).
//! 6. **Channel drop**: one channel of R, G, B set to 0 in every frame
//!    (`dl_ssl.py:149,256-259`, p = 0.125). Grayscale and channel drop are
//!    exclusive: one uniform draw `u` per clip gives grayscale when
//!    `u < grayscale_prob`, otherwise a channel drop when
//!    `u < grayscale_prob + channel_drop_prob` (the release's single `r4`
//!    decides both).
//! 7. **Random erase**: `erase_count` boxes per clip (1 in the release's
//!    recipes), each with probability `erase_prob`, sides drawn as fractions of the
//!    output side (default `1/6 … 1/3`), filled with a constant (default 0,
//!    torchvision's default) or uniform `[0, 1)` noise that is the same in
//!    every frame.
//!
//! # Where the code lives
//!
//! This file holds the configuration ([`AugmentConfig`] and its parts, the recipes' constants)
//! and the error type. Drawing a clip's parameters from a configuration (`params.rs`:
//! [`ClipAugment`] with its crop box, jitter factors and erase boxes, every random draw) is
//! separate from rendering them onto frames (`render.rs`: [`ClipRenderer`], the resize and the
//! per-pixel operations). The two meet only in [`ClipAugment`]: sampling never touches a pixel
//! and rendering draws nothing new (erase noise is replayed from the seed the parameters
//! carry), which is what makes a rendered clip a pure function of frames and parameters.

use fast_image_resize::{ImageBufferError, ResizeError};
use rand::Rng;
use serde::{Deserialize, Serialize};

mod params;
mod render;

pub use super::pixels::CHANNELS;
pub use params::{ClipAugment, ColorJitter, CropBox, EraseBox, EraseValue};
pub use render::{ClipRenderer, render_clip};

/// Largest meaningful hue shift in turns (±half a turn covers the circle).
const MAX_HUE_SHIFT: f32 = 0.5;

/// Default probability of a horizontal flip.
pub const DEFAULT_HFLIP_PROB: f32 = 0.5;
/// Self-supervised crop range: the fraction `f` of each frame side
/// (`f·W × f·H`; release `cropping_fac` 0.5, `dl_ssl.py:134`).
pub const SSL_CROP_SCALE: UniformRange = UniformRange { min: 0.5, max: 1.0 };
/// Fine-tuning crop range: the fraction `f` of each frame side
/// (`f·W × f·H`; release `min_crop_factor_training` 0.4,
/// `dl_semisup_2clips.py:172`).
pub const FINETUNE_CROP_SCALE: UniformRange = UniformRange { min: 0.4, max: 1.0 };
/// Self-supervised brightness / contrast / saturation factor range.
pub const SSL_JITTER_FACTOR: UniformRange = UniformRange {
    min: 0.75,
    max: 1.25,
};
/// Self-supervised maximum hue shift (turns).
pub const SSL_HUE_SHIFT: f32 = 0.1;
/// Probability of each colour-jitter component.
pub const DEFAULT_JITTER_PROB: f32 = 0.3;
/// Self-supervised grayscale probability (`dl_ssl.py:251`: `0.70 < r4 < 0.875`).
pub const SSL_GRAYSCALE_PROB: f32 = 0.175;
/// Self-supervised channel-drop probability, exclusive with grayscale
/// (`dl_ssl.py:256`: `r4 >= 0.875`).
pub const SSL_CHANNEL_DROP_PROB: f32 = 0.125;
/// Self-supervised probability of a gamma adjustment given grayscale
/// (`dl_ssl.py:253`).
pub const SSL_GAMMA_PROB: f32 = 0.75;
/// Self-supervised gamma range (`dl_ssl.py:143`).
pub const SSL_GAMMA: UniformRange = UniformRange {
    min: 0.75,
    max: 1.25,
};
/// Self-supervised random-erase probability.
pub const SSL_ERASE_PROB: f32 = 0.7;
/// Erase-box side range as a fraction of the output side (`H/6 … H/3`).
pub const ERASE_SIDE: UniformRange = UniformRange {
    min: 1.0 / 6.0,
    max: 1.0 / 3.0,
};
/// Fine-tuning ("light") brightness / contrast / saturation factor range.
pub const FINETUNE_JITTER_FACTOR: UniformRange = UniformRange { min: 0.9, max: 1.1 };
/// Fine-tuning ("light") maximum hue shift (turns).
pub const FINETUNE_HUE_SHIFT: f32 = 0.05;
/// Erase boxes drawn per clip (each with the erase probability).
pub const DEFAULT_ERASE_COUNT: usize = 1;
/// Most erase boxes per clip a configuration may ask for.
pub const MAX_ERASE_COUNT: usize = 16;
/// Fine-tuning random-erase probability (milder than self-supervision).
pub const FINETUNE_ERASE_PROB: f32 = 0.25;
/// Default evaluation crop fraction: the centred `0.8·W × 0.8·H` window
/// (`dl_semisup_2clips.py:460,463`); 3-crop testing uses squares of 0.8 of
/// the shorter side.
pub const DEFAULT_EVAL_CROP_FRACTION: f32 = 0.8;
/// Crop fraction of the whole frame.
const WHOLE_FRAME: f32 = 1.0;

/// A closed interval `[min, max]` sampled uniformly.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct UniformRange {
    /// Lower bound.
    pub min: f32,
    /// Upper bound.
    pub max: f32,
}

impl UniformRange {
    fn sample<R: Rng + ?Sized>(self, rng: &mut R) -> f32 {
        if self.max > self.min {
            rng.random_range(self.min..=self.max)
        } else {
            self.min
        }
    }
}

/// How the crop window is chosen (it is always resized to the square output).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CropPolicy {
    /// Square of side `scale · min(w, h)`, `scale` uniform in the range,
    /// uniform position.
    RandomSquare(UniformRange),
    /// Square of side `fraction · min(w, h)`, centred (deterministic).
    Center(f32),
    /// Window `f·w × f·h` (the source's aspect ratio, squashed by the resize),
    /// `f` uniform in the range, uniform position: the release's crop.
    RandomScaled(UniformRange),
    /// Window `fraction·w × fraction·h`, centred (deterministic): the
    /// release's evaluation crop; `1.0` is the whole frame.
    CenterScaled(f32),
}

/// What an erased box is filled with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EraseFill {
    /// A constant value in `[0, 1]` for every channel.
    Constant(f32),
    /// Uniform `[0, 1)` noise, identical in every frame of the clip.
    Noise,
}

/// Augmentation settings; see the module docs for the exact operations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    /// Crop window policy.
    pub crop: CropPolicy,
    /// Whether horizontal flips are allowed at all (off for datasets with
    /// left/right-dependent classes).
    pub hflip: bool,
    /// Probability of a flip when allowed.
    pub hflip_prob: f32,
    /// Probability of each colour-jitter component.
    pub jitter_prob: f32,
    /// Brightness factor range.
    pub brightness: UniformRange,
    /// Contrast factor range.
    pub contrast: UniformRange,
    /// Saturation factor range.
    pub saturation: UniformRange,
    /// Maximum absolute hue shift, in turns (`0 ..= 0.5`).
    pub hue: f32,
    /// Probability of converting the clip to grayscale.
    pub grayscale_prob: f32,
    /// Probability, given grayscale, of a gamma adjustment.
    pub gamma_prob: f32,
    /// Gamma range (`x' = x^g`, torchvision `adjust_gamma` with gain 1).
    pub gamma: UniformRange,
    /// Probability of zeroing one random colour channel; exclusive with
    /// grayscale (`grayscale_prob + channel_drop_prob <= 1`).
    pub channel_drop_prob: f32,
    /// Probability of erasing each of the `erase_count` boxes (drawn independently).
    pub erase_prob: f32,
    /// Boxes drawn per clip, each erased with probability `erase_prob` (1 in the
    /// release's recipes).
    pub erase_count: usize,
    /// Erase-box side range, as a fraction of the output side.
    pub erase_side: UniformRange,
    /// Erase fill.
    pub erase_fill: EraseFill,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self::ssl()
    }
}

impl AugmentConfig {
    /// Strong augmentation for self-supervised pre-training.
    pub fn ssl() -> Self {
        Self {
            crop: CropPolicy::RandomScaled(SSL_CROP_SCALE),
            hflip: true,
            hflip_prob: DEFAULT_HFLIP_PROB,
            jitter_prob: DEFAULT_JITTER_PROB,
            brightness: SSL_JITTER_FACTOR,
            contrast: SSL_JITTER_FACTOR,
            saturation: SSL_JITTER_FACTOR,
            hue: SSL_HUE_SHIFT,
            grayscale_prob: SSL_GRAYSCALE_PROB,
            gamma_prob: SSL_GAMMA_PROB,
            gamma: SSL_GAMMA,
            channel_drop_prob: SSL_CHANNEL_DROP_PROB,
            erase_prob: SSL_ERASE_PROB,
            erase_count: DEFAULT_ERASE_COUNT,
            erase_side: ERASE_SIDE,
            erase_fill: EraseFill::Constant(0.0),
        }
    }

    /// Mild augmentation for fine-tuning: wider crop range (`f·W × f·H`),
    /// flip, light colour jitter, no grayscale (hence no gamma), no channel
    /// drop, occasional erase. (The release's fine-tuning loader also uses
    /// grayscale p = 0.1 with gamma `U(0.85, 1.15)`,
    /// `dl_semisup_2clips.py:255-258`; this recipe keeps grayscale off.)
    pub fn finetune() -> Self {
        Self {
            crop: CropPolicy::RandomScaled(FINETUNE_CROP_SCALE),
            brightness: FINETUNE_JITTER_FACTOR,
            contrast: FINETUNE_JITTER_FACTOR,
            saturation: FINETUNE_JITTER_FACTOR,
            hue: FINETUNE_HUE_SHIFT,
            grayscale_prob: 0.0,
            channel_drop_prob: 0.0,
            erase_prob: FINETUNE_ERASE_PROB,
            ..Self::ssl()
        }
    }

    /// Deterministic evaluation: the centred `crop_fraction·W ×
    /// crop_fraction·H` window resized to the square, nothing random.
    pub fn eval(crop_fraction: f32) -> Self {
        Self {
            crop: CropPolicy::CenterScaled(crop_fraction),
            hflip: false,
            hflip_prob: 0.0,
            jitter_prob: 0.0,
            grayscale_prob: 0.0,
            gamma_prob: 0.0,
            channel_drop_prob: 0.0,
            erase_prob: 0.0,
            ..Self::ssl()
        }
    }

    /// No augmentation at all: the whole frame resized (squashed) to the
    /// square, as a training recipe with augmentation switched off
    /// (`data.augment = false`).
    pub fn plain() -> Self {
        Self::eval(WHOLE_FRAME)
    }

    /// Same settings with flips allowed or not.
    pub fn with_hflip(self, hflip: bool) -> Self {
        Self { hflip, ..self }
    }

    /// Checks every probability and range.
    pub fn validate(&self) -> Result<(), AugmentError> {
        let probs = [
            ("hflip_prob", self.hflip_prob),
            ("jitter_prob", self.jitter_prob),
            ("grayscale_prob", self.grayscale_prob),
            ("gamma_prob", self.gamma_prob),
            ("channel_drop_prob", self.channel_drop_prob),
            ("erase_prob", self.erase_prob),
        ];
        for (field, p) in probs {
            check(
                field,
                (0.0..=1.0).contains(&p),
                "must be a probability in [0, 1]",
            )?;
        }
        let factors = [
            ("brightness", self.brightness),
            ("contrast", self.contrast),
            ("saturation", self.saturation),
        ];
        for (field, r) in factors {
            check(
                field,
                r.min >= 0.0 && r.min <= r.max,
                "needs 0 <= min <= max",
            )?;
        }
        check(
            "channel_drop_prob",
            self.grayscale_prob + self.channel_drop_prob <= 1.0,
            "grayscale_prob + channel_drop_prob must be at most 1 (they are exclusive)",
        )?;
        let gamma_ok =
            self.gamma.min > 0.0 && self.gamma.min <= self.gamma.max && self.gamma.max.is_finite();
        check("gamma", gamma_ok, "needs 0 < min <= max < inf")?;
        let hue_ok = (0.0..=MAX_HUE_SHIFT).contains(&self.hue);
        check("hue", hue_ok, "must be in [0, 0.5] turns")?;
        check(
            "erase_count",
            self.erase_count <= MAX_ERASE_COUNT,
            "must be at most 16 boxes",
        )?;
        check(
            "erase_side",
            unit_range(self.erase_side),
            "needs 0 < min <= max <= 1",
        )?;
        if let EraseFill::Constant(v) = self.erase_fill {
            check("erase_fill", (0.0..=1.0).contains(&v), "must be in [0, 1]")?;
        }
        match self.crop {
            CropPolicy::RandomSquare(r) | CropPolicy::RandomScaled(r) => {
                check("crop", unit_range(r), "needs 0 < min <= max <= 1")
            }
            CropPolicy::Center(f) | CropPolicy::CenterScaled(f) => {
                check("crop", f > 0.0 && f <= 1.0, "fraction must be in (0, 1]")
            }
        }
    }
}

fn unit_range(r: UniformRange) -> bool {
    r.min > 0.0 && r.min <= r.max && r.max <= 1.0
}

fn check(field: &'static str, ok: bool, reason: &'static str) -> Result<(), AugmentError> {
    if ok {
        Ok(())
    } else {
        Err(AugmentError::InvalidConfig { field, reason })
    }
}

/// Number of spatial crops per clip at evaluation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalCrops {
    /// The centred `f·W × f·H` window only (the release's evaluation).
    One,
    /// Squares of side `f · min(W, H)` at the start, centre and end of the
    /// longer side (left/centre/right for landscape frames,
    /// top/centre/bottom for portrait ones).
    Three,
}

/// Errors while sampling or rendering a clip.
#[derive(Debug, thiserror::Error)]
pub enum AugmentError {
    /// A configuration field is out of range.
    #[error("invalid augmentation config: `{field}` {reason}")]
    InvalidConfig {
        /// Field name.
        field: &'static str,
        /// What is expected.
        reason: &'static str,
    },
    /// The source frames have no pixels.
    #[error("source frames are {src_w}x{src_h}; expected a non-empty frame")]
    EmptySource {
        /// Source width.
        src_w: u32,
        /// Source height.
        src_h: u32,
    },
    /// The output side is zero.
    #[error("output size must be at least 1 pixel")]
    ZeroOutputSize,
    /// A frame buffer has the wrong length.
    #[error("frame {index}: expected {expected} bytes (packed RGB24 {src_w}x{src_h}), got {got}")]
    FrameSize {
        /// Frame position in the clip.
        index: usize,
        /// Expected byte count.
        expected: usize,
        /// Actual byte count.
        got: usize,
        /// Source width.
        src_w: u32,
        /// Source height.
        src_h: u32,
    },
    /// The output buffer has the wrong length.
    #[error("output buffer: expected {expected} floats ([3, {frames}, {size}, {size}]), got {got}")]
    OutputSize {
        /// Expected float count.
        expected: usize,
        /// Actual float count.
        got: usize,
        /// Frames in the clip.
        frames: usize,
        /// Output side.
        size: u32,
    },
    /// The crop window does not fit in the source frame.
    #[error("crop {crop:?} does not fit a {src_w}x{src_h} frame")]
    CropOutOfBounds {
        /// The window.
        crop: CropBox,
        /// Source width.
        src_w: u32,
        /// Source height.
        src_h: u32,
    },
    /// fast_image_resize rejected the source buffer.
    #[error("frame {index}: invalid image buffer: {source}")]
    Buffer {
        /// Frame position in the clip.
        index: usize,
        /// Underlying error.
        source: ImageBufferError,
    },
    /// fast_image_resize failed.
    #[error("frame {index}: resize failed: {source}")]
    Resize {
        /// Frame position in the clip.
        index: usize,
        /// Underlying error.
        source: ResizeError,
    },
}
