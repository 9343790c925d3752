//! What a frame shows: the group's static background, the object's shape, colour and accent,
//! the distractor disc, per-pixel noise, and the supersampled compositing of one frame.
//! Separate from `motion.rs` (where things are in each frame) and `avi.rs` (how frames are
//! stored): a [`Scene`] draws its appearance once and renders any frame from the trajectories.

use rand::Rng;

use super::classes::{ClassKind, Shape};
use super::motion::{ObjectState, distinctive_track, distractor_track, invariant_track};
use super::{SynthConfig, uniform};
use crate::data::pixels::{CHANNELS, Rgb, blend, luma, to_byte};

/// Supersampling factor per axis for anti-aliased edges, so sub-pixel motion (a fraction of a
/// pixel per frame) still changes the rendered frame smoothly.
const SUPERSAMPLE: usize = 2;
/// Minimum luminance difference between object and background colour (0–1 scale).
const MIN_CONTRAST: f32 = 0.25;
/// Attempts to draw an object colour with enough contrast before inverting the background.
const COLOUR_ATTEMPTS: usize = 32;
/// Range of background channel values (0–1), avoiding pure black/white.
const BACKGROUND_CHANNEL: (f32, f32) = (0.15, 0.85);
/// Strength of the background's linear gradient (0–1 scale, peak to centre).
const BACKGROUND_GRADIENT: f32 = 0.12;
/// Amplitude and number of the static sinusoidal texture components of the background.
const BACKGROUND_TEXTURE: f32 = 0.05;
const BACKGROUND_TEXTURE_WAVES: usize = 3;
/// Spatial frequency range of the texture waves, in cycles per frame width.
const TEXTURE_CYCLES: (f32, f32) = (1.0, 4.0);
/// Per-pixel, per-frame uniform noise amplitude (0–1 scale; 0.03 ≈ ±8 grey levels).
const NOISE_AMPLITUDE: f32 = 0.03;
/// Patterned shapes (stripes, checker, the bar's marked end) use an accent colour: the object
/// colour darkened by this factor if it is light, else lightened by it towards white.
const ACCENT_AMOUNT: f32 = 0.55;
/// Luminance above which a colour counts as light when choosing its accent.
const LIGHT_LUMINANCE: f32 = 0.5;
/// Distractor disc radius (fraction of frame size).
const DISTRACTOR_RADIUS: (f32, f32) = (0.035, 0.055);

fn random_colour(rng: &mut impl Rng, range: (f32, f32)) -> Rgb {
    [
        uniform(rng, range),
        uniform(rng, range),
        uniform(rng, range),
    ]
}

/// A colour that contrasts with `background_mean` by at least [`MIN_CONTRAST`] in luminance.
fn contrasting_colour(rng: &mut impl Rng, background_mean: Rgb) -> Rgb {
    let background = luma(background_mean);
    for _ in 0..COLOUR_ATTEMPTS {
        let colour = random_colour(rng, (0.0, 1.0));
        if (luma(colour) - background).abs() >= MIN_CONTRAST {
            return colour;
        }
    }
    background_mean.map(|v| 1.0 - v)
}

/// The static background of all clips in one group: colour, gradient and texture, pre-rendered.
pub(super) struct Background {
    pub(super) mean: Rgb,
    pixels: Vec<Rgb>,
}

impl Background {
    pub(super) fn sample(rng: &mut impl Rng, size: u32, clutter: f32) -> Self {
        let mean = random_colour(rng, BACKGROUND_CHANNEL);
        let angle = uniform(rng, (0.0, std::f32::consts::TAU));
        let gradient = (angle.cos(), angle.sin());
        let waves: Vec<(f32, f32, f32, Rgb)> = (0..BACKGROUND_TEXTURE_WAVES)
            .map(|_| {
                let direction = uniform(rng, (0.0, std::f32::consts::TAU));
                let cycles = uniform(rng, TEXTURE_CYCLES);
                let phase = uniform(rng, (0.0, std::f32::consts::TAU));
                let tint = random_colour(rng, (0.5, 1.0));
                (direction, cycles, phase, tint)
            })
            .collect();
        let n = size as usize;
        let mut pixels = Vec::with_capacity(n * n);
        for y in 0..n {
            for x in 0..n {
                // Coordinates in [-0.5, 0.5] so gradient and texture scale with the frame.
                let u = (x as f32 + 0.5) / n as f32 - 0.5;
                let v = (y as f32 + 0.5) / n as f32 - 0.5;
                let ramp = 2.0 * clutter * BACKGROUND_GRADIENT * (u * gradient.0 + v * gradient.1);
                let mut pixel = mean.map(|c| c + ramp);
                for &(direction, cycles, phase, tint) in &waves {
                    let along = u * direction.cos() + v * direction.sin();
                    let wave = (std::f32::consts::TAU * cycles * along + phase).sin();
                    for (channel, t) in pixel.iter_mut().zip(tint) {
                        *channel += clutter * BACKGROUND_TEXTURE * wave * t;
                    }
                }
                pixels.push(pixel);
            }
        }
        Self { mean, pixels }
    }
}

/// A sampled video: fixed appearance plus per-frame trajectories (already time-reversed for
/// the reversed class of a distinctive pair).
pub(super) struct Scene {
    shape: Shape,
    colour: Rgb,
    accent: Rgb,
    object: Vec<ObjectState>,
    distractor_colour: Rgb,
    distractor_radius: f32,
    distractor: Vec<(f32, f32)>,
    /// Per-pixel noise amplitude.
    noise: f32,
}

impl Scene {
    pub(super) fn sample(
        rng: &mut impl Rng,
        kind: ClassKind,
        cfg: &SynthConfig,
        background: Rgb,
    ) -> Self {
        let size = cfg.size as f32;
        let colour = contrasting_colour(rng, background);
        let (shape, mut object) = match kind {
            ClassKind::Invariant(shape) => (shape, invariant_track(rng, cfg)),
            ClassKind::Distinctive { change, .. } => {
                (Shape::MarkedBar, distinctive_track(rng, change, cfg))
            }
        };
        let distractor_colour = random_colour(rng, (0.0, 1.0));
        let base_radius = uniform(rng, DISTRACTOR_RADIUS) * size;
        let distractor_radius = base_radius * cfg.clutter;
        // The track is drawn for the default size, so every clutter level draws alike.
        let mut distractor = distractor_track(rng, base_radius, cfg);
        if let ClassKind::Distinctive { reversed: true, .. } = kind {
            object.reverse();
            distractor.reverse();
        }
        Self {
            shape,
            colour,
            accent: accent_colour(colour),
            object,
            distractor_colour,
            distractor_radius,
            distractor,
            noise: NOISE_AMPLITUDE * cfg.clutter,
        }
    }

    /// Renders frame `t` into `out` (packed RGB24).
    pub(super) fn render(
        &self,
        t: usize,
        background: &Background,
        rng: &mut impl Rng,
        out: &mut [u8],
    ) {
        let n = (out.len() / CHANNELS).isqrt();
        let object = self.object[t];
        let (dx, dy) = self.distractor[t];
        for (i, pixel) in out.chunks_exact_mut(CHANNELS).enumerate() {
            let (x, y) = ((i % n) as f32, (i / n) as f32);
            let mut rgb = background.pixels[i];
            let disc = disc_coverage(x, y, dx, dy, self.distractor_radius);
            rgb = std::array::from_fn(|c| blend(self.distractor_colour[c], rgb[c], disc));
            rgb = self.composite_object(rgb, x, y, object);
            for (byte, value) in pixel.iter_mut().zip(rgb) {
                let noisy = value + uniform(rng, (-self.noise, self.noise));
                *byte = to_byte(noisy);
            }
        }
    }

    /// Averages the supersamples of pixel (x, y): object colour where the shape covers the
    /// sample, `under` elsewhere.
    fn composite_object(&self, under: Rgb, x: f32, y: f32, s: ObjectState) -> Rgb {
        /// Shapes fit inside this many radii of their centre (the bar's corners reach √1.2).
        const EXTENT_RADII: f32 = 1.5;
        let reach = s.radius * EXTENT_RADII;
        if (x + 0.5 - s.x).abs() > reach + 1.0 || (y + 0.5 - s.y).abs() > reach + 1.0 {
            return under;
        }
        let (sin, cos) = s.angle.sin_cos();
        let mut sum = [0.0f32; 3];
        for sy in 0..SUPERSAMPLE {
            for sx in 0..SUPERSAMPLE {
                let px = x + (sx as f32 + 0.5) / SUPERSAMPLE as f32 - s.x;
                let py = y + (sy as f32 + 0.5) / SUPERSAMPLE as f32 - s.y;
                // Rotate into the object's frame and normalise by its radius.
                let u = (px * cos + py * sin) / s.radius;
                let v = (-px * sin + py * cos) / s.radius;
                let sample = match shape_part(self.shape, u, v) {
                    Some(Part::Main) => apply_brightness(self.colour, s.brightness),
                    Some(Part::Accent) => apply_brightness(self.accent, s.brightness),
                    None => under,
                };
                for (acc, value) in sum.iter_mut().zip(sample) {
                    *acc += value;
                }
            }
        }
        let samples = (SUPERSAMPLE * SUPERSAMPLE) as f32;
        sum.map(|v| v / samples)
    }
}

/// Fraction of pixel (x, y) covered by a disc, approximated by a one-pixel linear edge ramp.
fn disc_coverage(x: f32, y: f32, cx: f32, cy: f32, radius: f32) -> f32 {
    let distance = ((x + 0.5 - cx).powi(2) + (y + 0.5 - cy).powi(2)).sqrt();
    (radius + 0.5 - distance).clamp(0.0, 1.0)
}

/// Which colour a shape sample takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Main,
    Accent,
}

/// Scales a colour towards black (`brightness` < 1) or towards white (> 1).
fn apply_brightness(colour: Rgb, brightness: f32) -> Rgb {
    if brightness <= 1.0 {
        colour.map(|c| c * brightness.max(0.0))
    } else {
        let towards_white = (brightness - 1.0).min(1.0);
        colour.map(|c| c + (1.0 - c) * towards_white)
    }
}

fn accent_colour(colour: Rgb) -> Rgb {
    if luma(colour) > LIGHT_LUMINANCE {
        colour.map(|c| c * (1.0 - ACCENT_AMOUNT))
    } else {
        colour.map(|c| c + (1.0 - c) * ACCENT_AMOUNT)
    }
}

/// The part of a shape at object coordinates (u, v), `None` outside. Shapes fit in the unit
/// square (the bar's corners excepted); the shape geometry is in units of the object radius.
fn shape_part(shape: Shape, u: f32, v: f32) -> Option<Part> {
    let (au, av) = (u.abs(), v.abs());
    let inside_square = au.max(av) <= 0.8;
    let shade =
        |inside: bool, main: bool| inside.then_some(if main { Part::Main } else { Part::Accent });
    match shape {
        Shape::Circle => shade(u * u + v * v <= 1.0, true),
        Shape::Square => shade(inside_square, true),
        Shape::Cross => shade((au <= 0.3 && av <= 1.0) || (av <= 0.3 && au <= 1.0), true),
        Shape::Stripes => shade(inside_square, ((u + 1.0) * 2.5).floor() as i32 % 2 == 0),
        Shape::Triangle => shade((-0.9..=0.7).contains(&v) && au <= (v + 0.9) * 0.6, true),
        Shape::Ring => shade((0.55..=1.0).contains(&(u * u + v * v).sqrt()), true),
        Shape::Checker => {
            let cell = ((u + 1.0) * 1.5).floor() as i32 + ((v + 1.0) * 1.5).floor() as i32;
            shade(inside_square, cell % 2 == 0)
        }
        Shape::Diamond => shade(au + av <= 1.0, true),
        Shape::MarkedBar => shade(au <= 1.0 && av <= 0.4, u < 0.5),
    }
}
