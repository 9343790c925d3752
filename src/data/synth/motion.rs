//! Where things are in each frame: the object's per-frame pose and brightness (the
//! non-directional motion of invariant classes, the monotonic change of distinctive ones) and
//! the distractor's bouncing path. Separate from `scene.rs` because the trajectories alone
//! carry the class signal of the distinctive pairs; appearance is drawn once per video.

use rand::Rng;

use super::classes::DistinctiveChange;
use super::{OBJECT_RADIUS, SynthConfig, uniform};

/// Keep this many pixels between an object's extent and the frame border.
const BORDER_MARGIN_PX: f32 = 1.0;
/// Invariant motion: jitter amplitude as a fraction of the frame size.
const JITTER_AMPLITUDE: f32 = 0.03;
/// Invariant motion: oscillation amplitude (fraction of frame size) and period (frames).
const OSCILLATION_AMPLITUDE: (f32, f32) = (0.05, 0.12);
const OSCILLATION_PERIOD: (f32, f32) = (6.0, 16.0);
/// Invariant motion: random-walk step per frame as a fraction of the frame size.
const RANDOM_WALK_STEP: f32 = 0.02;

/// Distinctive change rates per frame. Chosen so that 16 frames show a clear change (e.g. at
/// 64 px a translation of ≥ 10 px, a scale change ≥ 20 %, a rotation ≥ 60°, a brightness change
/// ≥ 0.2), then clamped where needed so the whole video's change fits in the frame.
const MOVE_SPEED: (f32, f32) = (0.010, 0.020);
/// Growth in log-radius per frame.
const GROWTH_RATE: (f32, f32) = (0.012, 0.022);
/// Radius bounds while growing/shrinking, as fractions of the frame size.
const GROWTH_RADIUS: (f32, f32) = (0.07, 0.30);
/// Largest radius a growing object may reach at any [`SynthConfig::object_scale`].
const GROWTH_RADIUS_LIMIT: f32 = 0.4;
/// Rotation speed in degrees per frame.
const ROTATION_SPEED_DEG: (f32, f32) = (4.0, 8.0);
/// Brightness change per frame. Brightness 1 is the object's colour, 0 black, 2 white (see
/// `apply_brightness` in `scene.rs`), so every colour can visibly brighten or darken.
const BRIGHTNESS_RATE: (f32, f32) = (0.025, 0.045);
/// Brightness range used by the brightness classes.
const BRIGHTNESS_RANGE: (f32, f32) = (0.3, 1.7);
/// Fixed brightness range of objects whose brightness does not change.
const STATIC_BRIGHTNESS: (f32, f32) = (0.85, 1.15);
/// Posture: largest tilt of the held states away from lying flat or standing upright.
const POSTURE_TILT_DEG: f32 = 10.0;
/// Posture: the turn from lying to standing (a quarter turn) takes this many frames.
const POSTURE_TURN_FRAMES: (f32, f32) = (4.0, 8.0);
/// Posture: the turn's midpoint lies in this part of the video (fractions of its length), so
/// both held states last long enough for clips of their own at either end.
const POSTURE_TURN_CENTRE: (f32, f32) = (0.35, 0.65);
/// Distractor disc speed (fraction of frame size / frame).
const DISTRACTOR_SPEED: (f32, f32) = (0.005, 0.015);

/// Object pose and brightness in one frame (pixels, radians).
#[derive(Debug, Clone, Copy)]
pub(super) struct ObjectState {
    pub(super) x: f32,
    pub(super) y: f32,
    pub(super) radius: f32,
    pub(super) angle: f32,
    pub(super) brightness: f32,
}

/// Range of centre positions that keeps an object of `radius` inside a frame of `size`.
fn centre_range(size: f32, radius: f32) -> (f32, f32) {
    let low = radius + BORDER_MARGIN_PX;
    (low, (size - low).max(low))
}

/// Static appearance with non-directional motion: jitter, oscillation or random walk.
pub(super) fn invariant_track(rng: &mut impl Rng, cfg: &SynthConfig) -> Vec<ObjectState> {
    let size = cfg.size as f32;
    let radius = uniform(rng, OBJECT_RADIUS) * size * cfg.object_scale;
    let angle = uniform(rng, (0.0, std::f32::consts::TAU));
    let brightness = uniform(rng, STATIC_BRIGHTNESS);
    let range = centre_range(size, radius);
    let positions = match rng.random_range(0..3) {
        0 => jitter_positions(rng, cfg, range),
        1 => oscillation_positions(rng, cfg, range),
        _ => random_walk_positions(rng, cfg, range),
    };
    positions
        .into_iter()
        .map(|(x, y)| ObjectState {
            x,
            y,
            radius,
            angle,
            brightness,
        })
        .collect()
}

fn jitter_positions(rng: &mut impl Rng, cfg: &SynthConfig, range: (f32, f32)) -> Vec<(f32, f32)> {
    let amplitude = JITTER_AMPLITUDE * cfg.size as f32;
    let inner = (
        range.0 + amplitude,
        (range.1 - amplitude).max(range.0 + amplitude),
    );
    let (cx, cy) = (uniform(rng, inner), uniform(rng, inner));
    (0..cfg.frames)
        .map(|_| {
            let jx = uniform(rng, (-amplitude, amplitude));
            let jy = uniform(rng, (-amplitude, amplitude));
            (cx + jx, cy + jy)
        })
        .collect()
}

fn oscillation_positions(
    rng: &mut impl Rng,
    cfg: &SynthConfig,
    range: (f32, f32),
) -> Vec<(f32, f32)> {
    let half_span = (range.1 - range.0) / 2.0;
    let amplitude = (uniform(rng, OSCILLATION_AMPLITUDE) * cfg.size as f32).min(half_span);
    let inner = (
        range.0 + amplitude,
        (range.1 - amplitude).max(range.0 + amplitude),
    );
    let (cx, cy) = (uniform(rng, inner), uniform(rng, inner));
    let axis = uniform(rng, (0.0, std::f32::consts::PI));
    let period = uniform(rng, OSCILLATION_PERIOD);
    let phase = uniform(rng, (0.0, std::f32::consts::TAU));
    (0..cfg.frames)
        .map(|t| {
            let offset = amplitude * (std::f32::consts::TAU * t as f32 / period + phase).sin();
            (cx + offset * axis.cos(), cy + offset * axis.sin())
        })
        .collect()
}

fn random_walk_positions(
    rng: &mut impl Rng,
    cfg: &SynthConfig,
    range: (f32, f32),
) -> Vec<(f32, f32)> {
    let step = RANDOM_WALK_STEP * cfg.size as f32;
    let (mut x, mut y) = (uniform(rng, range), uniform(rng, range));
    (0..cfg.frames)
        .map(|_| {
            let current = (x, y);
            x = (x + uniform(rng, (-step, step))).clamp(range.0, range.1);
            y = (y + uniform(rng, (-step, step))).clamp(range.0, range.1);
            current
        })
        .collect()
}

/// The shared appearance changing one attribute monotonically; all other attributes are
/// random but fixed, so a single frame looks alike across the whole family.
pub(super) fn distinctive_track(
    rng: &mut impl Rng,
    change: DistinctiveChange,
    cfg: &SynthConfig,
) -> Vec<ObjectState> {
    let size = cfg.size as f32;
    let steps = (cfg.frames - 1) as f32;
    let radius = uniform(rng, OBJECT_RADIUS) * size * cfg.object_scale;
    let range = centre_range(size, radius);
    let start = ObjectState {
        x: uniform(rng, range),
        y: uniform(rng, range),
        radius,
        angle: uniform(rng, (0.0, std::f32::consts::TAU)),
        brightness: uniform(rng, STATIC_BRIGHTNESS),
    };
    let track =
        |state: &dyn Fn(f32) -> ObjectState| (0..cfg.frames).map(|t| state(t as f32)).collect();
    match change {
        DistinctiveChange::MoveHorizontal | DistinctiveChange::MoveVertical => {
            let span = range.1 - range.0;
            let speed = clamped_rate(rng, MOVE_SPEED, size, span / steps);
            let from = uniform(rng, (range.0, range.1 - speed * steps));
            let horizontal = change == DistinctiveChange::MoveHorizontal;
            track(&|t| {
                let p = from + speed * t;
                let (x, y) = if horizontal {
                    (p, start.y)
                } else {
                    (start.x, p)
                };
                ObjectState { x, y, ..start }
            })
        }
        DistinctiveChange::Scale => {
            let scale = cfg.object_scale.min(GROWTH_RADIUS_LIMIT / GROWTH_RADIUS.1);
            let (low, high) = (
                GROWTH_RADIUS.0 * size * scale,
                GROWTH_RADIUS.1 * size * scale,
            );
            let rate = clamped_rate(rng, GROWTH_RATE, 1.0, (high / low).ln() / steps);
            let from = uniform(rng, (low, high / (rate * steps).exp()));
            // Centre chosen so that the largest radius still fits.
            let fit = centre_range(size, from * (rate * steps).exp());
            let (x, y) = (uniform(rng, fit), uniform(rng, fit));
            track(&|t| ObjectState {
                x,
                y,
                radius: from * (rate * t).exp(),
                ..start
            })
        }
        DistinctiveChange::Rotate => {
            let speed = uniform(rng, ROTATION_SPEED_DEG).to_radians();
            // Image y points down, so a growing angle turns clockwise on screen.
            track(&|t| ObjectState {
                angle: start.angle + speed * t,
                ..start
            })
        }
        DistinctiveChange::Posture => {
            // Lying: the bar along x (marked end either side); standing: a quarter turn either way.
            let flat = if rng.random_bool(0.5) {
                0.0
            } else {
                std::f32::consts::PI
            };
            let tilt = POSTURE_TILT_DEG.to_radians();
            let lying = flat + uniform(rng, (-tilt, tilt));
            let turn = if rng.random_bool(0.5) { 1.0 } else { -1.0 } * std::f32::consts::FRAC_PI_2;
            let standing = flat + turn + uniform(rng, (-tilt, tilt));
            let duration = uniform(rng, POSTURE_TURN_FRAMES);
            let centre = uniform(rng, POSTURE_TURN_CENTRE) * steps;
            let begin = centre - duration / 2.0;
            track(&|t| {
                let progress = ((t - begin) / duration).clamp(0.0, 1.0);
                ObjectState {
                    angle: lying + (standing - lying) * progress,
                    ..start
                }
            })
        }
        DistinctiveChange::Brightness => {
            let (low, high) = BRIGHTNESS_RANGE;
            let rate = clamped_rate(rng, BRIGHTNESS_RATE, 1.0, (high - low) / steps);
            let from = uniform(rng, (low, high - rate * steps));
            track(&|t| ObjectState {
                brightness: from + rate * t,
                ..start
            })
        }
    }
}

/// A per-frame rate drawn from `range × scale`, capped at `max` so the total change fits.
fn clamped_rate(rng: &mut impl Rng, range: (f32, f32), scale: f32, max: f32) -> f32 {
    let high = (range.1 * scale).min(max);
    let low = (range.0 * scale).min(high);
    uniform(rng, (low, high))
}

/// A small disc moving in a straight line and bouncing off the frame edges.
pub(super) fn distractor_track(
    rng: &mut impl Rng,
    radius: f32,
    cfg: &SynthConfig,
) -> Vec<(f32, f32)> {
    let size = cfg.size as f32;
    let range = centre_range(size, radius);
    let speed = uniform(rng, DISTRACTOR_SPEED) * size;
    let heading = uniform(rng, (0.0, std::f32::consts::TAU));
    let (mut vx, mut vy) = (speed * heading.cos(), speed * heading.sin());
    let (mut x, mut y) = (uniform(rng, range), uniform(rng, range));
    (0..cfg.frames)
        .map(|_| {
            let current = (x, y);
            (x, vx) = bounce(x + vx, vx, range);
            (y, vy) = bounce(y + vy, vy, range);
            current
        })
        .collect()
}

/// Reflects a coordinate that left `range` back inside and reverses its velocity.
fn bounce(position: f32, velocity: f32, (low, high): (f32, f32)) -> (f32, f32) {
    if position < low {
        ((2.0 * low - position).min(high), -velocity)
    } else if position > high {
        ((2.0 * high - position).max(low), -velocity)
    } else {
        (position, velocity)
    }
}
