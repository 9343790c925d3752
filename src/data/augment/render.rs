//! The pixel half of augmentation: [`ClipRenderer`] resizes each frame's crop window and
//! applies a clip's [`ClipAugment`] (flip, colour jitter, grayscale, gamma, channel drop,
//! erase) into the channel-first output buffer. Separate from `params.rs` because rendering
//! makes no draw of its own (erase noise is replayed from the seed in the parameters): it is
//! a pure function of the frames and the parameters, and all the per-pixel formulas
//! (torchvision's, listed in the parent module's docs) live here.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::params::check_source;
use super::{AugmentError, CHANNELS, ClipAugment, EraseBox, EraseValue};
use crate::data::pixels::{blend, from_byte, luma};

/// Number of hue sectors in the HSV hexcone.
const HUE_SECTORS: f32 = 6.0;

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
                .map(|p| [p[0], p[1], p[2]].map(from_byte)),
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

/// A usable gamma exponent: positive and finite.
fn valid_gamma(g: f32) -> bool {
    g > 0.0 && g.is_finite()
}

/// torchvision's `adjust_gamma` with gain 1: `x' = x^g` (the caller clamps).
fn adjust_gamma(x: f32, g: f32) -> f32 {
    x.powf(g)
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
    use crate::data::augment::{
        AugmentConfig, ColorJitter, CropBox, CropPolicy, EraseFill, UniformRange,
    };

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
                assert!((got - from_byte(v)).abs() <= TOLERANCE, "t={t} i={i} c={c}");
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
