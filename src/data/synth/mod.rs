//! Synthetic action-recognition dataset written as real video files in the UCF101 layout.
//!
//! The point of the dataset is to separate two families of classes:
//!
//! * **Invariant** classes (`Inv*`): the class is the object's *appearance* (circle, cross,
//!   stripes, square, …). The object keeps its shape, size, colour and orientation for the whole
//!   video and only moves without direction: i.i.d. jitter, a sinusoidal oscillation with random
//!   phase, or a bounded random walk. All three are (statistically) time-reversible, so frame
//!   order carries no class information: one frame suffices.
//! * **Distinctive** classes (`Dist*`): every video shows the *same* appearance (a bar with a
//!   marked end, asymmetric so rotation is visible) and the class is the *direction of change*:
//!   a steady change for the whole video, or one event between two held states (StandUp: the
//!   bar lies, turns upright and stands). Classes come in pairs that are exact time reversals
//!   of each other (MoveRight/MoveLeft, Grow/Shrink, RotateCw/RotateCcw, Brighten/Darken,
//!   MoveDown/MoveUp, StandUp/LieDown): a video of the second
//!   class is rendered from a scene sampled exactly like the first and played backwards. Hence
//!   any order-free statistic (a single frame, a shuffled clip) has the same distribution for
//!   both classes of a pair; only frame order separates them. (A shuffled clip can still tell
//!   *which attribute* changes, i.e. which pair.) A run takes the pairs in the order of
//!   [`SynthConfig::distinctive_changes`], the catalogue's order above by default.
//!
//! Nuisances: random background colour with a gradient and a static low-frequency texture
//! (shared by all clips of a group, across classes, so the background carries no class
//! information and train/test groups differ in background), random object colour, size,
//! position and speed, a small distractor disc bouncing around, and mild per-frame noise.
//!
//! Encoding: MPEG-4 Part 2 in AVI, like UCF101 (which is XviD MPEG-4 in AVI), in process
//! through FFmpeg (see `avi.rs` for why this path).
//!
//! Everything is deterministic in the seed: each video draws from its own ChaCha stream, so the
//! output does not depend on thread scheduling.
//!
//! # Where the code lives
//!
//! This file is the generator driver: the configuration, the layout of videos into classes,
//! groups and splits, the worker threads, the per-video RNG streams and the list files. What
//! is drawn lives in `classes.rs` (the class catalogue and its families, the contents of
//! `classes.json`), `scene.rs` (appearance: background, object shapes and colours, the
//! distractor, compositing a frame) and `motion.rs` (the per-frame trajectories that make the
//! classes). Writing the video files is `avi.rs` (the in-process FFmpeg MPEG-4 encoder). They
//! are separate because each can change alone: a new class or motion changes no encoding, and
//! a different container changes no scene.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, Result, bail, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

mod avi;
mod classes;
mod motion;
mod scene;

pub use classes::{
    ClassInfo, ClassesFile, DEFAULT_DISTINCTIVE_CHANGES, DistinctiveChange, Family, MAX_CLASSES,
};

use super::pixels::CHANNELS;
use avi::AviWriter;
use classes::{ClassSpec, class_specs};
use scene::{Background, Scene};

/// Clips per group, as in UCF101 (which has 4–7 clips per group).
pub const CLIPS_PER_GROUP: usize = 4;

/// Smallest frame size; below this the shapes are a handful of pixels and indistinguishable.
const MIN_SIZE: u32 = 16;

/// Object radius (half the bounding extent) as a fraction of the frame size.
const OBJECT_RADIUS: (f32, f32) = (0.13, 0.19);
/// Largest object radius [`SynthConfig::object_scale`] may reach (fraction of the frame), so
/// an object still moves inside the frame.
const MAX_OBJECT_RADIUS: f32 = 0.3;
/// Largest [`SynthConfig::clutter`].
const MAX_CLUTTER: f32 = 4.0;

/// RNG stream tags, so independent draws never share a ChaCha stream.
const STREAM_TAG_VIDEO: u64 = 1;
const STREAM_TAG_BACKGROUND: u64 = 2;

/// Configuration of [`generate`].
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Number of classes: even, half invariant and half distinctive.
    pub classes: usize,
    /// Training videos per class.
    pub videos_per_class: usize,
    /// Test videos per class (in groups disjoint from the training groups).
    pub test_videos_per_class: usize,
    /// Frames per video.
    pub frames: usize,
    /// Frame width and height in pixels (even).
    pub size: u32,
    /// Seed of all randomness.
    pub seed: u64,
    /// Frame rate written to the files.
    pub fps: u32,
    /// Object size as a multiple of the default radius range (`OBJECT_RADIUS`, 0.13–0.19 of
    /// the frame): larger objects carry more of the frame, so fewer videos teach a model their
    /// shape.
    pub object_scale: f32,
    /// Strength of the nuisances as a multiple of the defaults: background gradient and
    /// texture, per-pixel noise and the distractor disc's size (0 = a plain background, no
    /// distractor). The random draws are the same at every strength.
    pub clutter: f32,
    /// Which distinctive pairs, in order (default: [`DEFAULT_DISTINCTIVE_CHANGES`]): the
    /// distinctive half of the classes takes the first pairs of this list. Other pairs change
    /// only the distinctive classes' videos: the invariant classes' files stay byte for byte.
    pub distinctive_changes: Vec<DistinctiveChange>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            out: PathBuf::from("data/synth"),
            classes: 8,
            videos_per_class: 40,
            test_videos_per_class: 20,
            frames: 48,
            size: 64,
            seed: 0,
            fps: 25,
            object_scale: 1.0,
            clutter: 1.0,
            distinctive_changes: DEFAULT_DISTINCTIVE_CHANGES.to_vec(),
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone)]
pub struct SynthSummary {
    /// The classes, in label order.
    pub classes: Vec<ClassInfo>,
    /// Training videos, relative to the output directory.
    pub train: Vec<PathBuf>,
    /// Test videos, relative to the output directory.
    pub test: Vec<PathBuf>,
}

fn validate(cfg: &SynthConfig) -> Result<()> {
    ensure!(
        cfg.classes >= 2 && cfg.classes.is_multiple_of(2) && cfg.classes <= MAX_CLASSES,
        "classes must be even and in 2..={MAX_CLASSES}, got {}",
        cfg.classes
    );
    ensure!(
        cfg.videos_per_class >= 1,
        "need at least one training video per class"
    );
    ensure!(cfg.frames >= 2, "need at least 2 frames per video");
    ensure!(
        cfg.size >= MIN_SIZE && cfg.size.is_multiple_of(2),
        "size must be even and at least {MIN_SIZE}, got {}",
        cfg.size
    );
    ensure!(cfg.fps >= 1, "fps must be positive");
    ensure!(
        cfg.object_scale > 0.0 && OBJECT_RADIUS.1 * cfg.object_scale <= MAX_OBJECT_RADIUS,
        "object_scale must be in (0, {}], got {}",
        MAX_OBJECT_RADIUS / OBJECT_RADIUS.1,
        cfg.object_scale
    );
    check_distinctive_changes(cfg.classes, &cfg.distinctive_changes)?;
    ensure!(
        (0.0..=MAX_CLUTTER).contains(&cfg.clutter),
        "clutter must be in [0, {MAX_CLUTTER}], got {}",
        cfg.clutter
    );
    Ok(())
}

/// Checks [`SynthConfig::distinctive_changes`] for a set of `classes` classes: enough pairs
/// for its distinctive half, none listed twice.
pub fn check_distinctive_changes(classes: usize, changes: &[DistinctiveChange]) -> Result<()> {
    let pairs = (classes / 2).div_ceil(2);
    let names: Vec<String> = changes.iter().map(ToString::to_string).collect();
    ensure!(
        changes.len() >= pairs,
        "distinctive_changes: {classes} classes need {pairs} distinctive pairs, got {} ({})",
        changes.len(),
        names.join(", ")
    );
    for (i, change) in changes.iter().enumerate() {
        ensure!(
            !changes[..i].contains(change),
            "distinctive_changes: {change} is listed twice"
        );
    }
    Ok(())
}

/// Which list a video belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Test,
}

/// One video to render.
#[derive(Debug, Clone)]
struct VideoJob {
    class: usize,
    group: usize,
    split: Split,
    /// Path relative to the output directory.
    relative: PathBuf,
    /// Globally unique video number: selects the video's RNG stream.
    number: u64,
}

/// Lays out all videos: training clips fill groups 1.. in runs of [`CLIPS_PER_GROUP`], test
/// clips continue in the following groups, so train and test never share a group.
fn video_jobs(cfg: &SynthConfig, classes: &[ClassSpec]) -> Vec<VideoJob> {
    let train_groups = cfg.videos_per_class.div_ceil(CLIPS_PER_GROUP);
    let mut jobs = Vec::new();
    for (class, spec) in classes.iter().enumerate() {
        let splits = [
            (Split::Train, cfg.videos_per_class, 0),
            (Split::Test, cfg.test_videos_per_class, train_groups),
        ];
        for (split, count, group_offset) in splits {
            for i in 0..count {
                let group = group_offset + i / CLIPS_PER_GROUP + 1;
                let clip = i % CLIPS_PER_GROUP + 1;
                let name = &spec.info.name;
                let file = format!("v_{name}_g{group:02}_c{clip:02}.avi");
                jobs.push(VideoJob {
                    class,
                    group,
                    split,
                    relative: Path::new(name).join(file),
                    number: jobs.len() as u64,
                });
            }
        }
    }
    jobs
}

/// Generates the dataset described by `cfg` and returns what was written.
pub fn generate(cfg: &SynthConfig) -> Result<SynthSummary> {
    validate(cfg)?;
    let classes = class_specs(cfg.classes, &cfg.distinctive_changes);
    let jobs = video_jobs(cfg, &classes);
    for spec in &classes {
        let dir = cfg.out.join(&spec.info.name);
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    render_all(cfg, &classes, &jobs)?;
    let summary = SynthSummary {
        classes: classes.iter().map(|c| c.info.clone()).collect(),
        train: relative_paths(&jobs, Split::Train),
        test: relative_paths(&jobs, Split::Test),
    };
    write_lists(cfg, &summary, &jobs)?;
    Ok(summary)
}

fn relative_paths(jobs: &[VideoJob], split: Split) -> Vec<PathBuf> {
    jobs.iter()
        .filter(|j| j.split == split)
        .map(|j| j.relative.clone())
        .collect()
}

/// Renders and encodes all videos on all available cores. Work is handed out through a shared
/// counter; results do not depend on which thread renders which video.
fn render_all(cfg: &SynthConfig, classes: &[ClassSpec], jobs: &[VideoJob]) -> Result<()> {
    let workers = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1)
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                        render_job(cfg, &classes[job.class], job)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(result) => result?,
                Err(_) => bail!("a video rendering thread panicked"),
            }
        }
        Ok(())
    })
}

fn render_job(cfg: &SynthConfig, class: &ClassSpec, job: &VideoJob) -> Result<()> {
    let path = cfg.out.join(&job.relative);
    let mut rng = stream_rng(cfg.seed, STREAM_TAG_VIDEO, job.number);
    let mut background_rng = stream_rng(cfg.seed, STREAM_TAG_BACKGROUND, job.group as u64);
    let background = Background::sample(&mut background_rng, cfg.size, cfg.clutter);
    let scene = Scene::sample(&mut rng, class.kind, cfg, background.mean);
    let mut writer = AviWriter::create(&path, cfg.size, cfg.fps)
        .with_context(|| format!("cannot create video {}", path.display()))?;
    let mut frame = vec![0u8; cfg.size as usize * cfg.size as usize * CHANNELS];
    for t in 0..cfg.frames {
        scene.render(t, &background, &mut rng, &mut frame);
        writer
            .write(&frame)
            .with_context(|| format!("cannot encode frame {t} of {}", path.display()))?;
    }
    writer
        .finish()
        .with_context(|| format!("cannot finish video {}", path.display()))
}

/// An RNG for one purpose (`tag`) and one item, independent of all other (tag, item) pairs.
fn stream_rng(seed: u64, tag: u64, item: u64) -> ChaCha8Rng {
    /// Spreads (tag, item) over the 64-bit stream space (SplitMix64 finaliser constant).
    const STREAM_MIX: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(tag.wrapping_mul(STREAM_MIX) ^ item);
    rng
}

fn write_lists(cfg: &SynthConfig, summary: &SynthSummary, jobs: &[VideoJob]) -> Result<()> {
    let class_ind: String = summary
        .classes
        .iter()
        .map(|c| format!("{} {}\n", c.label, c.name))
        .collect();
    let train: String = jobs
        .iter()
        .filter(|j| j.split == Split::Train)
        .map(|j| format!("{} {}\n", list_path(&j.relative), j.class + 1))
        .collect();
    let test: String = jobs
        .iter()
        .filter(|j| j.split == Split::Test)
        .map(|j| format!("{}\n", list_path(&j.relative)))
        .collect();
    let classes = serde_json::to_string_pretty(&ClassesFile {
        classes: summary.classes.clone(),
    })?;
    for (name, text) in [
        ("classInd.txt", class_ind),
        ("trainlist01.txt", train),
        ("testlist01.txt", test),
        ("classes.json", classes),
    ] {
        let path = cfg.out.join(name);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// UCF101 lists use forward slashes whatever the platform.
fn list_path(relative: &Path) -> String {
    relative
        .iter()
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A uniform draw from `[low, high)`; `low` when the range is empty.
fn uniform(rng: &mut impl Rng, (low, high): (f32, f32)) -> f32 {
    if high > low {
        rng.random_range(low..high)
    } else {
        low
    }
}
