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

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{
    FilterType, ImageBufferError, PixelType, ResizeAlg, ResizeError, ResizeOptions, Resizer,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Colour channels of an RGB frame.
pub const CHANNELS: usize = 3;
/// Largest `u8` channel value, the divisor that maps bytes to `[0, 1]`.
const U8_MAX: f32 = 255.0;
/// ITU-R BT.601 luma weights (as torchvision's `rgb_to_grayscale`).
const LUMA_WEIGHTS: [f32; CHANNELS] = [0.299, 0.587, 0.114];
/// Largest meaningful hue shift in turns (±half a turn covers the circle).
const MAX_HUE_SHIFT: f32 = 0.5;
/// Number of hue sectors in the HSV hexcone.
const HUE_SECTORS: f32 = 6.0;

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

/// A rectangular crop window in source pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// Left edge.
    pub left: u32,
    /// Top edge.
    pub top: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Colour-jitter factors; `None` = component not applied.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitter {
    /// Brightness factor.
    pub brightness: Option<f32>,
    /// Contrast factor.
    pub contrast: Option<f32>,
    /// Saturation factor.
    pub saturation: Option<f32>,
    /// Hue shift in turns.
    pub hue: Option<f32>,
}

/// Fill of a sampled erase box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EraseValue {
    /// Constant value for every channel.
    Constant(f32),
    /// Uniform noise from a ChaCha8 stream with this seed (same every frame).
    Noise(u64),
}

/// An erase box in fractions of the output side, so it is independent of
/// the output resolution (`top + height ≤ 1`, `left + width ≤ 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EraseBox {
    /// Top edge.
    pub top: f32,
    /// Left edge.
    pub left: f32,
    /// Height.
    pub height: f32,
    /// Width.
    pub width: f32,
    /// Fill.
    pub fill: EraseValue,
}

/// Pixel rectangle of an erase box at a given output size.
struct PixelBox {
    top: usize,
    left: usize,
    height: usize,
    width: usize,
}

impl EraseBox {
    /// The box in pixels of an `out_size × out_size` frame (at least 1×1).
    fn to_pixels(self, out_size: usize) -> PixelBox {
        let px = |f: f32| (f * out_size as f32).round() as usize;
        let height = px(self.height).clamp(1, out_size);
        let width = px(self.width).clamp(1, out_size);
        PixelBox {
            top: px(self.top).min(out_size - height),
            left: px(self.left).min(out_size - width),
            height,
            width,
        }
    }
}

/// The augmentation parameters drawn for one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipAugment {
    /// Source crop window.
    pub crop: CropBox,
    /// Mirror horizontally.
    pub hflip: bool,
    /// Colour jitter.
    pub jitter: ColorJitter,
    /// Convert to grayscale.
    pub grayscale: bool,
    /// Gamma exponent `g` (`x' = x^g`), applied after grayscale; sampling
    /// sets it only together with `grayscale`.
    pub gamma: Option<f32>,
    /// Colour channel (0 = R, 1 = G, 2 = B) set to 0 in every frame; never
    /// sampled together with `grayscale`.
    pub dropped_channel: Option<usize>,
    /// Random-erase boxes, applied in order (at most [`AugmentConfig::erase_count`]).
    pub erase: Vec<EraseBox>,
}

impl ClipAugment {
    /// Draws one parameter set for a clip of `src_w × src_h` frames.
    pub fn sample<R: Rng + ?Sized>(
        cfg: &AugmentConfig,
        src_w: u32,
        src_h: u32,
        rng: &mut R,
    ) -> Result<Self, AugmentError> {
        cfg.validate()?;
        check_source(src_w, src_h)?;
        let crop = match cfg.crop {
            CropPolicy::RandomSquare(scale) => random_square(src_w, src_h, scale, rng),
            CropPolicy::Center(fraction) => positioned_square(src_w, src_h, fraction, CENTRE),
            CropPolicy::RandomScaled(scale) => random_scaled(src_w, src_h, scale, rng),
            CropPolicy::CenterScaled(fraction) => centred_scaled(src_w, src_h, fraction),
        };
        let hflip = cfg.hflip && rng.random_bool(f64::from(cfg.hflip_prob));
        let jitter = sample_jitter(cfg, rng);
        let (grayscale, gamma, dropped_channel) = sample_colour_mode(cfg, rng);
        Ok(Self {
            crop,
            hflip,
            jitter,
            grayscale,
            gamma,
            dropped_channel,
            erase: (0..cfg.erase_count)
                .filter_map(|_| sample_erase(cfg, rng))
                .collect(),
        })
    }

    /// No augmentation: the whole frame, nothing else.
    pub fn identity(src_w: u32, src_h: u32) -> Self {
        Self::plain(centred_scaled(src_w, src_h, WHOLE_FRAME))
    }

    /// Deterministic evaluation views: the centred `crop_fraction·w ×
    /// crop_fraction·h` window ([`EvalCrops::One`], the release's
    /// evaluation), or three squares of side `crop_fraction · min(w, h)`
    /// along the longer side ([`EvalCrops::Three`]).
    pub fn eval_views(
        crop_fraction: f32,
        src_w: u32,
        src_h: u32,
        crops: EvalCrops,
    ) -> Result<Vec<Self>, AugmentError> {
        AugmentConfig::eval(crop_fraction).validate()?;
        check_source(src_w, src_h)?;
        Ok(match crops {
            EvalCrops::One => vec![Self::plain(centred_scaled(src_w, src_h, crop_fraction))],
            EvalCrops::Three => [0.0, CENTRE, 1.0]
                .iter()
                .map(|&p| Self::plain(positioned_square(src_w, src_h, crop_fraction, p)))
                .collect(),
        })
    }

    fn plain(crop: CropBox) -> Self {
        Self {
            crop,
            hflip: false,
            jitter: ColorJitter::default(),
            grayscale: false,
            gamma: None,
            dropped_channel: None,
            erase: Vec::new(),
        }
    }
}

/// Relative position of a centred window along the free room.
const CENTRE: f32 = 0.5;

fn check_source(src_w: u32, src_h: u32) -> Result<(), AugmentError> {
    if src_w == 0 || src_h == 0 {
        return Err(AugmentError::EmptySource { src_w, src_h });
    }
    Ok(())
}

/// Length `fraction · len`, rounded, within `1 ..= len` (`len >= 1`).
fn scaled_len(len: u32, fraction: f32) -> u32 {
    ((fraction * len as f32).round() as u32).clamp(1, len)
}

/// Square side `fraction · min(w, h)`, rounded, at least one pixel.
fn square_side(src_w: u32, src_h: u32, fraction: f32) -> u32 {
    scaled_len(src_w.min(src_h), fraction)
}

/// Offset `t` (0 = start, 1 = end) along `room` free pixels, rounded.
fn place(room: u32, t: f32) -> u32 {
    (room as f32 * t).round() as u32
}

/// A `width × height` window at a uniformly random position (left, then top).
fn random_position<R: Rng + ?Sized>(
    src_w: u32,
    src_h: u32,
    width: u32,
    height: u32,
    rng: &mut R,
) -> CropBox {
    CropBox {
        left: rng.random_range(0..=src_w - width),
        top: rng.random_range(0..=src_h - height),
        width,
        height,
    }
}

fn random_square<R: Rng + ?Sized>(
    src_w: u32,
    src_h: u32,
    scale: UniformRange,
    rng: &mut R,
) -> CropBox {
    let side = square_side(src_w, src_h, scale.sample(rng));
    random_position(src_w, src_h, side, side, rng)
}

/// The release's crop: one fraction `f` of both sides (`f·w × f·h`),
/// uniform position.
fn random_scaled<R: Rng + ?Sized>(
    src_w: u32,
    src_h: u32,
    scale: UniformRange,
    rng: &mut R,
) -> CropBox {
    let f = scale.sample(rng);
    random_position(
        src_w,
        src_h,
        scaled_len(src_w, f),
        scaled_len(src_h, f),
        rng,
    )
}

/// The centred `fraction·w × fraction·h` window.
fn centred_scaled(src_w: u32, src_h: u32, fraction: f32) -> CropBox {
    let width = scaled_len(src_w, fraction);
    let height = scaled_len(src_h, fraction);
    CropBox {
        left: place(src_w - width, CENTRE),
        top: place(src_h - height, CENTRE),
        width,
        height,
    }
}

/// A square whose position along the longer side is `along` (0 = start,
/// 1 = end of the free room); it is centred along the shorter side.
fn positioned_square(src_w: u32, src_h: u32, fraction: f32, along: f32) -> CropBox {
    let side = square_side(src_w, src_h, fraction);
    let (tx, ty) = if src_w >= src_h {
        (along, CENTRE)
    } else {
        (CENTRE, along)
    };
    CropBox {
        left: place(src_w - side, tx),
        top: place(src_h - side, ty),
        width: side,
        height: side,
    }
}

/// Grayscale (with its optional gamma) or channel drop, as the release draws
/// them (`dl_ssl.py:143,149,251-259`): ONE uniform `u` decides grayscale
/// (`u < grayscale_prob`) or else channel drop (`u < grayscale_prob +
/// channel_drop_prob`), so the two never coincide. Gamma is drawn only with
/// grayscale, the dropped channel only with a drop.
fn sample_colour_mode<R: Rng + ?Sized>(
    cfg: &AugmentConfig,
    rng: &mut R,
) -> (bool, Option<f32>, Option<usize>) {
    let u: f32 = rng.random();
    let grayscale = u < cfg.grayscale_prob;
    let channel_drop = !grayscale && u < cfg.grayscale_prob + cfg.channel_drop_prob;
    let gamma =
        (grayscale && rng.random_bool(f64::from(cfg.gamma_prob))).then(|| cfg.gamma.sample(rng));
    let dropped_channel = channel_drop.then(|| rng.random_range(0..CHANNELS));
    (grayscale, gamma, dropped_channel)
}

/// Each component with probability `jitter_prob`, in a fixed draw order.
fn sample_jitter<R: Rng + ?Sized>(cfg: &AugmentConfig, rng: &mut R) -> ColorJitter {
    let p = f64::from(cfg.jitter_prob);
    let mut maybe = |range: UniformRange| rng.random_bool(p).then(|| range.sample(rng));
    let brightness = maybe(cfg.brightness);
    let contrast = maybe(cfg.contrast);
    let saturation = maybe(cfg.saturation);
    let hue_range = UniformRange {
        min: -cfg.hue,
        max: cfg.hue,
    };
    let hue = maybe(hue_range);
    ColorJitter {
        brightness,
        contrast,
        saturation,
        hue,
    }
}

fn sample_erase<R: Rng + ?Sized>(cfg: &AugmentConfig, rng: &mut R) -> Option<EraseBox> {
    if !rng.random_bool(f64::from(cfg.erase_prob)) {
        return None;
    }
    let height = cfg.erase_side.sample(rng);
    let width = cfg.erase_side.sample(rng);
    let top = rng.random_range(0.0..=1.0 - height);
    let left = rng.random_range(0.0..=1.0 - width);
    let fill = match cfg.erase_fill {
        EraseFill::Constant(v) => EraseValue::Constant(v),
        EraseFill::Noise => EraseValue::Noise(rng.random()),
    };
    Some(EraseBox {
        top,
        left,
        height,
        width,
        fill,
    })
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

/// Reusable renderer: keeps the resizer and its scratch buffers across
/// frames and clips, so steady-state rendering does not allocate.
pub struct ClipRenderer {
    resizer: Resizer,
    resized: Image<'static>,
    pixels: Vec<[f32; CHANNELS]>,
    out_size: u32,
}

impl ClipRenderer {
    /// A renderer producing `out_size × out_size` frames.
    pub fn new(out_size: u32) -> Self {
        Self {
            resizer: Resizer::new(),
            resized: Image::new(out_size, out_size, PixelType::U8x3),
            pixels: Vec::with_capacity(out_size as usize * out_size as usize),
            out_size,
        }
    }

    /// Renders `frames` (packed RGB24, `src_w × src_h` each) with `params`
    /// into `out`, laid out `[3, T, S, S]` with `T = frames.len()`.
    pub fn render(
        &mut self,
        frames: &[&[u8]],
        src_w: u32,
        src_h: u32,
        params: &ClipAugment,
        out: &mut [f32],
    ) -> Result<(), AugmentError> {
        self.check_buffers(frames, src_w, src_h, params, out)?;
        let c = params.crop;
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(
                f64::from(c.left),
                f64::from(c.top),
                f64::from(c.width),
                f64::from(c.height),
            );
        let plane = self.out_size as usize * self.out_size as usize;
        let clip_plane = plane * frames.len();
        for (index, frame) in frames.iter().enumerate() {
            let src = ImageRef::new(src_w, src_h, frame, PixelType::U8x3)
                .map_err(|source| AugmentError::Buffer { index, source })?;
            self.resizer
                .resize(&src, &mut self.resized, &options)
                .map_err(|source| AugmentError::Resize { index, source })?;
            self.load_pixels();
            apply_pixel_ops(&mut self.pixels, self.out_size as usize, params);
            for (p, px) in self.pixels.iter().enumerate() {
                for (ch, &v) in px.iter().enumerate() {
                    out[ch * clip_plane + index * plane + p] = v;
                }
            }
        }
        Ok(())
    }

    fn check_buffers(
        &self,
        frames: &[&[u8]],
        src_w: u32,
        src_h: u32,
        params: &ClipAugment,
        out: &[f32],
    ) -> Result<(), AugmentError> {
        if self.out_size == 0 {
            return Err(AugmentError::ZeroOutputSize);
        }
        check_source(src_w, src_h)?;
        let c = params.crop;
        let fits = |start: u32, len: u32, limit: u32| {
            len > 0 && start.checked_add(len).is_some_and(|e| e <= limit)
        };
        if !fits(c.left, c.width, src_w) || !fits(c.top, c.height, src_h) {
            return Err(AugmentError::CropOutOfBounds {
                crop: c,
                src_w,
                src_h,
            });
        }
        if params.dropped_channel.is_some_and(|ch| ch >= CHANNELS) {
            return Err(AugmentError::InvalidConfig {
                field: "dropped_channel",
                reason: "must be a channel index 0, 1 or 2",
            });
        }
        if params.gamma.is_some_and(|g| !valid_gamma(g)) {
            return Err(AugmentError::InvalidConfig {
                field: "gamma",
                reason: "must be positive and finite",
            });
        }
        let expected = src_w as usize * src_h as usize * CHANNELS;
        if let Some((index, f)) = frames.iter().enumerate().find(|(_, f)| f.len() != expected) {
            return Err(AugmentError::FrameSize {
                index,
                expected,
                got: f.len(),
                src_w,
                src_h,
            });
        }
        let size = self.out_size as usize;
        let expected = CHANNELS * frames.len() * size * size;
        if out.len() != expected {
            return Err(AugmentError::OutputSize {
                expected,
                got: out.len(),
                frames: frames.len(),
                size: self.out_size,
            });
        }
        Ok(())
    }

    /// Resized bytes → `[0, 1]` pixels.
    fn load_pixels(&mut self) {
        self.pixels.clear();
        self.pixels.extend(
            self.resized
                .buffer()
                .chunks_exact(CHANNELS)
                .map(|p| [p[0], p[1], p[2]].map(|v| f32::from(v) / U8_MAX)),
        );
    }
}

/// Renders one clip with a fresh [`ClipRenderer`]; prefer keeping a renderer
/// alive when rendering many clips.
pub fn render_clip(
    frames: &[&[u8]],
    src_w: u32,
    src_h: u32,
    params: &ClipAugment,
    out_size: u32,
    out: &mut [f32],
) -> Result<(), AugmentError> {
    ClipRenderer::new(out_size).render(frames, src_w, src_h, params, out)
}

/// Flip → jitter → grayscale → gamma → channel drop → erase on one resized
/// frame (row-major, `size²`); see the module docs.
fn apply_pixel_ops(pixels: &mut [[f32; CHANNELS]], size: usize, params: &ClipAugment) {
    if params.hflip {
        pixels.chunks_exact_mut(size).for_each(<[_]>::reverse);
    }
    let j = params.jitter;
    if let Some(f) = j.brightness {
        map_pixels(pixels, |px| px.map(|v| v * f));
    }
    if let Some(f) = j.contrast {
        let mean = pixels.iter().map(|px| luma(*px)).sum::<f32>() / pixels.len() as f32;
        map_pixels(pixels, |px| px.map(|v| blend(v, mean, f)));
    }
    if let Some(f) = j.saturation {
        map_pixels(pixels, |px| {
            let y = luma(px);
            px.map(|v| blend(v, y, f))
        });
    }
    if let Some(shift) = j.hue {
        map_pixels(pixels, |px| shift_hue(px, shift));
    }
    if params.grayscale {
        map_pixels(pixels, |px| [luma(px); CHANNELS]);
    }
    if let Some(g) = params.gamma {
        map_pixels(pixels, |px| px.map(|v| adjust_gamma(v, g)));
    }
    if let Some(ch) = params.dropped_channel {
        pixels.iter_mut().for_each(|px| px[ch] = 0.0);
    }
    for &erase in &params.erase {
        erase_box(pixels, size, erase);
    }
}

/// Applies `f` to every pixel and clamps the result to `[0, 1]`.
fn map_pixels(pixels: &mut [[f32; CHANNELS]], f: impl Fn([f32; CHANNELS]) -> [f32; CHANNELS]) {
    for px in pixels {
        *px = f(*px).map(|v| v.clamp(0.0, 1.0));
    }
}

/// torchvision's `_blend`: `f·x + (1-f)·other`.
fn blend(x: f32, other: f32, f: f32) -> f32 {
    f * x + (1.0 - f) * other
}

/// A usable gamma exponent: positive and finite.
fn valid_gamma(g: f32) -> bool {
    g > 0.0 && g.is_finite()
}

/// torchvision's `adjust_gamma` with gain 1: `x' = x^g` (the caller clamps).
fn adjust_gamma(x: f32, g: f32) -> f32 {
    x.powf(g)
}

/// ITU-R BT.601 luma.
fn luma(px: [f32; CHANNELS]) -> f32 {
    px.iter().zip(LUMA_WEIGHTS).map(|(v, w)| v * w).sum()
}

/// Rotates the hue by `shift` turns (RGB → HSV → RGB).
fn shift_hue(px: [f32; CHANNELS], shift: f32) -> [f32; CHANNELS] {
    let [h, s, v] = rgb_to_hsv(px);
    hsv_to_rgb([(h + shift).rem_euclid(1.0), s, v])
}

/// HSV with all components in `[0, 1]` (hue in turns).
fn rgb_to_hsv([r, g, b]: [f32; CHANNELS]) -> [f32; CHANNELS] {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let s = if max > 0.0 { delta / max } else { 0.0 };
    if delta <= 0.0 {
        return [0.0, s, max];
    }
    let sector = if max == r {
        (g - b) / delta
    } else if max == g {
        (b - r) / delta + 2.0
    } else {
        (r - g) / delta + 4.0
    };
    [(sector / HUE_SECTORS).rem_euclid(1.0), s, max]
}

fn hsv_to_rgb([h, s, v]: [f32; CHANNELS]) -> [f32; CHANNELS] {
    let scaled = h * HUE_SECTORS;
    let sector = scaled.floor();
    let frac = scaled - sector;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * frac);
    let t = v * (1.0 - s * (1.0 - frac));
    match (sector as i32).rem_euclid(HUE_SECTORS as i32) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

fn erase_box(pixels: &mut [[f32; CHANNELS]], size: usize, erase: EraseBox) {
    let b = erase.to_pixels(size);
    let inside = pixels
        .chunks_exact_mut(size)
        .skip(b.top)
        .take(b.height)
        .flat_map(|row| &mut row[b.left..b.left + b.width]);
    match erase.fill {
        EraseValue::Constant(v) => inside.for_each(|px| *px = [v; CHANNELS]),
        EraseValue::Noise(seed) => {
            // Re-seeded per frame, so the noise is identical in every frame.
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            inside.for_each(|px| *px = std::array::from_fn(|_| rng.random::<f32>()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: f32 = 1.0 / 255.0 + 1e-6;

    /// A deterministic colourful `w × h` RGB24 frame.
    fn frame(w: u32, h: u32, phase: u32) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [
                    (x * 7 + phase) as u8,
                    (y * 13 + phase * 3) as u8,
                    ((x + y) * 5) as u8,
                ]
            })
            .collect()
    }

    fn clip(w: u32, h: u32, t: u32) -> Vec<Vec<u8>> {
        (0..t).map(|p| frame(w, h, p * 11)).collect()
    }

    fn refs(frames: &[Vec<u8>]) -> Vec<&[u8]> {
        frames.iter().map(Vec::as_slice).collect()
    }

    fn render(frames: &[Vec<u8>], w: u32, h: u32, p: &ClipAugment, size: u32) -> Vec<f32> {
        let mut out = vec![0.0; CHANNELS * frames.len() * (size * size) as usize];
        render_clip(&refs(frames), w, h, p, size, &mut out).unwrap();
        out
    }

    /// Value of channel `c`, frame `t`, pixel (`x`, `y`) in a `[3, T, S, S]` buffer.
    fn at(out: &[f32], t_len: usize, size: usize, c: usize, t: usize, y: usize, x: usize) -> f32 {
        out[((c * t_len + t) * size + y) * size + x]
    }

    /// Frame `t` of a `[3, T, S, S]` buffer equals packed RGB24 `bytes` within 1/255.
    fn assert_frame_matches(out: &[f32], t_len: usize, size: usize, t: usize, bytes: &[u8]) {
        for (i, px) in bytes.chunks_exact(CHANNELS).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                let got = at(out, t_len, size, c, t, i / size, i % size);
                assert!(
                    (got - f32::from(v) / U8_MAX).abs() <= TOLERANCE,
                    "t={t} i={i} c={c}"
                );
            }
        }
    }

    #[test]
    fn identity_reproduces_input_exactly_at_same_size() {
        let frames = clip(24, 24, 2);
        let out = render(&frames, 24, 24, &ClipAugment::identity(24, 24), 24);
        for (t, f) in frames.iter().enumerate() {
            assert_frame_matches(&out, 2, 24, t, f);
        }
    }

    #[test]
    fn identity_matches_plain_resize_within_one_level() {
        let (w, h, s) = (40, 30, 16);
        let frames = clip(w, h, 1);
        let p = ClipAugment::identity(w, h);
        assert_eq!(
            p.crop,
            CropBox {
                left: 0,
                top: 0,
                width: 40,
                height: 30
            }
        );
        let out = render(&frames, w, h, &p, s);
        let src = ImageRef::new(w, h, &frames[0], PixelType::U8x3).unwrap();
        let mut dst = Image::new(s, s, PixelType::U8x3);
        let opts = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(0.0, 0.0, 40.0, 30.0);
        Resizer::new().resize(&src, &mut dst, &opts).unwrap();
        assert_frame_matches(&out, 1, s as usize, 0, dst.buffer());
    }

    #[test]
    fn flip_mirrors_columns() {
        let frames = clip(20, 20, 2);
        let plain = ClipAugment::identity(20, 20);
        let flipped = ClipAugment {
            hflip: true,
            ..plain.clone()
        };
        let a = render(&frames, 20, 20, &plain, 20);
        let b = render(&frames, 20, 20, &flipped, 20);
        for (c, t, y, x) in [(0, 0, 3, 0), (1, 1, 7, 5), (2, 1, 19, 19)] {
            assert_eq!(at(&a, 2, 20, c, t, y, x), at(&b, 2, 20, c, t, y, 19 - x));
        }
    }

    #[test]
    fn grayscale_gives_equal_channels() {
        let frames = clip(16, 16, 3);
        let p = ClipAugment {
            grayscale: true,
            ..ClipAugment::identity(16, 16)
        };
        let out = render(&frames, 16, 16, &p, 8);
        let plane = 3 * 64;
        for i in 0..plane {
            assert_eq!(out[i], out[plane + i]);
            assert_eq!(out[i], out[2 * plane + i]);
        }
    }

    #[test]
    fn erase_zeroes_box_of_right_size_in_every_frame() {
        let white = vec![vec![255u8; 32 * 32 * 3]; 2];
        let erase = EraseBox {
            top: 0.25,
            left: 0.5,
            height: 0.25,
            width: 1.0 / 6.0,
            fill: EraseValue::Constant(0.0),
        };
        let p = ClipAugment {
            erase: vec![erase],
            ..ClipAugment::identity(32, 32)
        };
        let out = render(&white, 32, 32, &p, 24);
        let plane = 24 * 24;
        for chunk in out.chunks_exact(plane) {
            assert_eq!(chunk.iter().filter(|&&v| v == 0.0).count(), 6 * 4);
        }
        assert_eq!(at(&out, 2, 24, 0, 1, 6, 12), 0.0);
        assert_eq!(at(&out, 2, 24, 0, 1, 5, 12), 1.0);
    }

    #[test]
    fn erase_count_draws_each_box_independently() {
        let cfg = AugmentConfig {
            erase_count: 3,
            erase_prob: 0.5,
            ..AugmentConfig::ssl()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let boxes: usize = (0..400)
            .map(|_| {
                ClipAugment::sample(&cfg, 64, 64, &mut rng)
                    .unwrap()
                    .erase
                    .len()
            })
            .sum();
        // 1,200 independent draws at p = 0.5: 600 ± 17 (one standard deviation).
        assert!((540..=660).contains(&boxes), "{boxes} boxes of 1200 draws");
        let over = AugmentConfig {
            erase_count: MAX_ERASE_COUNT + 1,
            ..cfg
        };
        assert!(over.validate().is_err());
    }

    #[test]
    fn sampled_parameters_respect_config() {
        let cfg = AugmentConfig::ssl();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut erased = 0;
        for _ in 0..500 {
            let p = ClipAugment::sample(&cfg, 320, 240, &mut rng).unwrap();
            assert!((160..=320).contains(&p.crop.width), "{:?}", p.crop);
            assert!((120..=240).contains(&p.crop.height), "{:?}", p.crop);
            assert!(p.crop.left + p.crop.width <= 320 && p.crop.top + p.crop.height <= 240);
            assert!(p.erase.len() <= cfg.erase_count);
            for e in p.erase {
                erased += 1;
                let b = e.to_pixels(112);
                assert!((18..=38).contains(&b.height) && (18..=38).contains(&b.width));
                assert!(b.top + b.height <= 112 && b.left + b.width <= 112);
            }
        }
        assert!(
            (300..=400).contains(&erased),
            "erase rate off: {erased}/500"
        );
        let no_flip = cfg.with_hflip(false);
        assert!((0..100).all(|_| {
            !ClipAugment::sample(&no_flip, 64, 64, &mut rng)
                .unwrap()
                .hflip
        }));
    }

    #[test]
    fn same_seed_same_clip_bit_exact() {
        let frames = clip(48, 36, 4);
        let cfg = AugmentConfig {
            jitter_prob: 1.0,
            erase_fill: EraseFill::Noise,
            erase_prob: 1.0,
            ..AugmentConfig::ssl()
        };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let p = ClipAugment::sample(&cfg, 48, 36, &mut rng).unwrap();
            render(&frames, 48, 36, &p, 16)
        };
        let (a, b, c) = (draw(1), draw(1), draw(2));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_ne!(a, c);
        assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn eval_views_centre_and_three_crops() {
        // One: the release's centred 0.8·W × 0.8·H window (aspect kept).
        let one = ClipAugment::eval_views(0.8, 320, 240, EvalCrops::One).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            one[0].crop,
            CropBox {
                left: 32,
                top: 24,
                width: 256,
                height: 192
            }
        );
        // Three: squares of 0.8 of the shorter side along the longer side.
        let three = ClipAugment::eval_views(0.8, 240, 320, EvalCrops::Three).unwrap();
        let tops: Vec<u32> = three.iter().map(|v| v.crop.top).collect();
        assert_eq!(tops, [0, 64, 128]);
        assert!(three.iter().all(|v| v.crop.left == 24));
        assert!(
            three
                .iter()
                .all(|v| v.crop.width == 192 && v.crop.height == 192)
        );
        let wide = ClipAugment::eval_views(0.8, 320, 240, EvalCrops::Three).unwrap();
        let lefts: Vec<u32> = wide.iter().map(|v| v.crop.left).collect();
        assert_eq!(lefts, [0, 64, 128]);
        assert!(
            wide.iter()
                .all(|v| v.crop.top == 24 && v.crop.width == 192 && v.crop.height == 192)
        );
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let sampled = ClipAugment::sample(&AugmentConfig::eval(0.8), 320, 240, &mut rng).unwrap();
        assert_eq!(sampled, one[0]);
        // Plain and identity: the whole frame, nothing random.
        let whole = CropBox {
            left: 0,
            top: 0,
            width: 320,
            height: 240,
        };
        let plain = ClipAugment::sample(&AugmentConfig::plain(), 320, 240, &mut rng).unwrap();
        assert_eq!(plain, ClipAugment::identity(320, 240));
        assert_eq!(plain.crop, whole);
    }

    #[test]
    fn random_scaled_crops_keep_the_aspect_and_stay_inside() {
        let (w, h) = (320u32, 240u32);
        let cfg = AugmentConfig::ssl();
        assert_eq!(cfg.crop, CropPolicy::RandomScaled(SSL_CROP_SCALE));
        assert_eq!(
            AugmentConfig::finetune().crop,
            CropPolicy::RandomScaled(FINETUNE_CROP_SCALE)
        );
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let (mut smallest, mut largest) = (f32::MAX, f32::MIN);
        for _ in 0..500 {
            let c = ClipAugment::sample(&cfg, w, h, &mut rng).unwrap().crop;
            // 4:3 within one pixel of height: |3·width − 4·height| <= 4.
            assert!(c.width * 3 >= c.height * 4 - 4, "{c:?} is not 4:3");
            assert!(c.width * 3 <= c.height * 4 + 4, "{c:?} is not 4:3");
            assert!(c.left + c.width <= w && c.top + c.height <= h, "{c:?}");
            for (len, full) in [(c.width, w), (c.height, h)] {
                let f = len as f32 / full as f32;
                let slack = 0.5 / full as f32 + 1e-6;
                assert!(
                    f >= SSL_CROP_SCALE.min - slack && f <= SSL_CROP_SCALE.max + slack,
                    "{c:?}: fraction {f}"
                );
                smallest = smallest.min(f);
                largest = largest.max(f);
            }
        }
        assert!(
            smallest < 0.6 && largest > 0.9,
            "fractions {smallest}..{largest}"
        );
        // The square policies still give squares.
        let square = AugmentConfig {
            crop: CropPolicy::RandomSquare(SSL_CROP_SCALE),
            ..cfg
        };
        let c = ClipAugment::sample(&square, w, h, &mut rng).unwrap().crop;
        assert_eq!(c.width, c.height);
        assert!((120..=240).contains(&c.width) && c.left + c.width <= w && c.top + c.height <= h);
        let centre = AugmentConfig {
            crop: CropPolicy::Center(0.8),
            ..AugmentConfig::eval(0.8)
        };
        let c = ClipAugment::sample(&centre, w, h, &mut rng).unwrap().crop;
        assert_eq!(
            c,
            CropBox {
                left: 64,
                top: 24,
                width: 192,
                height: 192
            }
        );
    }

    #[test]
    fn channel_drop_zeroes_one_channel_in_every_frame() {
        let (w, h, s, t_len) = (16u32, 16u32, 8u32, 3u32);
        let frames = clip(w, h, t_len);
        let plain = ClipAugment::identity(w, h);
        let reference = render(&frames, w, h, &plain, s);
        // One channel block of `[3, T, S, S]` holds that channel of every frame.
        let block = (t_len * s * s) as usize;
        for dropped in 0..CHANNELS {
            let p = ClipAugment {
                dropped_channel: Some(dropped),
                ..plain.clone()
            };
            let out = render(&frames, w, h, &p, s);
            for c in 0..CHANNELS {
                let (got, want) = (
                    &out[c * block..(c + 1) * block],
                    &reference[c * block..(c + 1) * block],
                );
                if c == dropped {
                    assert!(got.iter().all(|&v| v == 0.0), "channel {c} not zeroed");
                    assert!(
                        want.iter().any(|&v| v > 0.0),
                        "test frame has no channel {c}"
                    );
                } else {
                    assert_eq!(got, want, "channel {c} changed by dropping {dropped}");
                }
            }
        }
    }

    #[test]
    fn gamma_raises_to_the_power() {
        let cases: [(f32, f32, f32); 6] = [
            (0.25, 0.5, 0.5),
            (0.81, 0.5, 0.9),
            (0.5, 2.0, 0.25),
            (0.5, 1.25, 0.420_448_2),
            (0.5, 0.75, 0.594_603_6),
            (0.0, 1.25, 0.0),
        ];
        for (x, g, want) in cases {
            let mut pixels = vec![[x; CHANNELS]];
            let params = ClipAugment {
                gamma: Some(g),
                ..ClipAugment::identity(1, 1)
            };
            apply_pixel_ops(&mut pixels, 1, &params);
            assert!(
                pixels[0].iter().all(|v| (v - want).abs() < 1e-5),
                "{x}^{g}: {:?}, want {want}",
                pixels[0]
            );
        }
        // After grayscale, gamma acts on the luma.
        let px = [0.2, 0.4, 0.6];
        let mut pixels = vec![px];
        let params = ClipAugment {
            grayscale: true,
            gamma: Some(2.0),
            ..ClipAugment::identity(1, 1)
        };
        apply_pixel_ops(&mut pixels, 1, &params);
        let want = luma(px) * luma(px);
        assert!(pixels[0].iter().all(|v| (v - want).abs() < 1e-6));
    }

    #[test]
    fn grayscale_gamma_and_channel_drop_follow_the_release() {
        const DRAWS: usize = 2000;
        const RATE_SLACK: f32 = 0.05;
        let cfg = AugmentConfig::ssl();
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let (mut gray, mut dropped, mut gamma) = (0usize, 0usize, 0usize);
        let mut seen = [false; CHANNELS];
        for _ in 0..DRAWS {
            let p = ClipAugment::sample(&cfg, 320, 240, &mut rng).unwrap();
            assert!(
                !(p.grayscale && p.dropped_channel.is_some()),
                "grayscale and channel drop together"
            );
            if let Some(g) = p.gamma {
                assert!(p.grayscale, "gamma without grayscale");
                assert!((SSL_GAMMA.min..=SSL_GAMMA.max).contains(&g), "gamma {g}");
                gamma += 1;
            }
            if let Some(c) = p.dropped_channel {
                seen[c] = true;
                dropped += 1;
            }
            gray += usize::from(p.grayscale);
        }
        let rate = |n: usize| n as f32 / DRAWS as f32;
        let near = |n: usize, p: f32| (rate(n) - p).abs() <= RATE_SLACK;
        assert!(near(gray, SSL_GRAYSCALE_PROB), "grayscale {gray}/{DRAWS}");
        assert!(
            near(dropped, SSL_CHANNEL_DROP_PROB),
            "drop {dropped}/{DRAWS}"
        );
        assert!(
            near(gamma, SSL_GRAYSCALE_PROB * SSL_GAMMA_PROB),
            "gamma {gamma}/{DRAWS}"
        );
        assert!(seen.iter().all(|&s| s), "dropped channels {seen:?}");
        for cfg in [
            AugmentConfig::finetune(),
            AugmentConfig::eval(DEFAULT_EVAL_CROP_FRACTION),
            AugmentConfig::plain(),
        ] {
            assert_eq!((cfg.grayscale_prob, cfg.channel_drop_prob), (0.0, 0.0));
            for _ in 0..200 {
                let p = ClipAugment::sample(&cfg, 320, 240, &mut rng).unwrap();
                assert!(!p.grayscale && p.gamma.is_none() && p.dropped_channel.is_none());
            }
        }
    }

    #[test]
    fn colour_ops_match_formulas() {
        let px = [0.2, 0.4, 0.6];
        let back = hsv_to_rgb(rgb_to_hsv(px));
        assert!(px.iter().zip(back).all(|(a, b)| (a - b).abs() < 1e-6));
        let rotated = shift_hue([1.0, 0.0, 0.0], 1.0 / 3.0);
        assert!((rotated[1] - 1.0).abs() < 1e-6 && rotated[0].abs() < 1e-6);
        let mut pixels = vec![[0.2, 0.4, 0.6]; 4];
        let params = ClipAugment {
            jitter: ColorJitter {
                saturation: Some(0.0),
                ..ColorJitter::default()
            },
            ..ClipAugment::identity(2, 2)
        };
        apply_pixel_ops(&mut pixels, 2, &params);
        let y = luma([0.2, 0.4, 0.6]);
        assert!(pixels[0].iter().all(|v| (v - y).abs() < 1e-6));
    }

    #[test]
    fn bad_inputs_are_errors() {
        let frames = clip(8, 8, 2);
        let p = ClipAugment::identity(8, 8);
        let mut out = vec![0.0; 3 * 2 * 16];
        let short = [frames[0].as_slice(), &frames[1][..10]];
        let err = render_clip(&short, 8, 8, &p, 4, &mut out).unwrap_err();
        assert!(
            matches!(err, AugmentError::FrameSize { index: 1, .. }),
            "{err}"
        );
        let err = render_clip(&refs(&frames), 8, 8, &p, 5, &mut out).unwrap_err();
        assert!(matches!(err, AugmentError::OutputSize { .. }), "{err}");
        let big = ClipAugment::identity(16, 16);
        let err = render_clip(&refs(&frames), 8, 8, &big, 4, &mut out).unwrap_err();
        assert!(matches!(err, AugmentError::CropOutOfBounds { .. }), "{err}");
        let bad_channel = ClipAugment {
            dropped_channel: Some(CHANNELS),
            ..p
        };
        let err = render_clip(&refs(&frames), 8, 8, &bad_channel, 4, &mut out).unwrap_err();
        assert!(matches!(err, AugmentError::InvalidConfig { .. }), "{err}");
        let bad = AugmentConfig {
            erase_prob: 1.5,
            ..AugmentConfig::ssl()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        assert!(ClipAugment::sample(&bad, 8, 8, &mut rng).is_err());
        let ssl = AugmentConfig::ssl();
        assert!(ssl.validate().is_ok());
        let invalid = [
            AugmentConfig {
                grayscale_prob: 0.9,
                channel_drop_prob: 0.2,
                ..ssl
            },
            AugmentConfig {
                gamma_prob: -0.1,
                ..ssl
            },
            AugmentConfig {
                gamma: UniformRange { min: 0.0, max: 1.0 },
                ..ssl
            },
            AugmentConfig {
                gamma: UniformRange { min: 1.2, max: 0.8 },
                ..ssl
            },
            AugmentConfig {
                crop: CropPolicy::RandomScaled(UniformRange { min: 0.5, max: 1.5 }),
                ..ssl
            },
            AugmentConfig {
                crop: CropPolicy::CenterScaled(0.0),
                ..ssl
            },
        ];
        for cfg in invalid {
            assert!(cfg.validate().is_err(), "{cfg:?}");
        }
    }
}
