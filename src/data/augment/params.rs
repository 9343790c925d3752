//! The random half of augmentation: [`ClipAugment`], one clip's parameters, and how they are
//! drawn from an [`AugmentConfig`] (crop window, flip, jitter factors, grayscale / gamma /
//! channel drop, erase boxes) or fixed for evaluation. Separate from `render.rs` because
//! nothing here touches a pixel: every draw happens once per clip, before rendering, so the
//! draw order (and hence every seeded result) is defined in this file alone.

use rand::Rng;

use super::{
    AugmentConfig, AugmentError, CHANNELS, CropPolicy, EraseFill, EvalCrops, UniformRange,
    WHOLE_FRAME,
};

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
pub(super) struct PixelBox {
    pub(super) top: usize,
    pub(super) left: usize,
    pub(super) height: usize,
    pub(super) width: usize,
}

impl EraseBox {
    /// The box in pixels of an `out_size × out_size` frame (at least 1×1).
    pub(super) fn to_pixels(self, out_size: usize) -> PixelBox {
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

/// The source frames have pixels (both sides non-zero).
pub(super) fn check_source(src_w: u32, src_h: u32) -> Result<(), AugmentError> {
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::data::augment::{
        DEFAULT_EVAL_CROP_FRACTION, FINETUNE_CROP_SCALE, MAX_ERASE_COUNT, SSL_CHANNEL_DROP_PROB,
        SSL_CROP_SCALE, SSL_GAMMA, SSL_GAMMA_PROB, SSL_GRAYSCALE_PROB,
    };

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
}
