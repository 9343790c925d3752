//! Implementations of the `data` subcommands and `bench data` (the CLI in `main.rs` only
//! parses arguments).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::data::clips::{ClipMaker, ClipRecipe, video_rng};
use crate::data::datasets::{DatasetKind, load_index};
use crate::data::metadata::read_infos;
use crate::data::partition::{LabeledAmount, partition};
use crate::data::throughput::{BenchResult, bench_loader};
use crate::data::video::{FrameReader, RgbFrame, write_ppm};

/// File extensions `bench data` picks up from a directory.
const VIDEO_EXTENSIONS: [&str; 4] = ["avi", "mp4", "webm", "mkv"];
/// How often `data check` reports progress when not on a terminal.
const PLAIN_PROGRESS_EVERY: usize = 500;
/// Width of the progress bar on a terminal.
const PROGRESS_BAR_WIDTH: usize = 40;

/// Parse `0,17,33` into sorted frame indices (duplicates allowed, as the decoder accepts).
pub fn parse_indices(text: &str) -> Result<Vec<usize>> {
    let mut indices = text
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .with_context(|| format!("--indices: {s:?} is not a frame index"))
        })
        .collect::<Result<Vec<_>>>()?;
    if indices.is_empty() {
        bail!("--indices: expected a comma-separated list of frame indices, e.g. 0,17,33");
    }
    indices.sort_unstable();
    Ok(indices)
}

/// `data frames`: decode exactly the given frames and write `DIR/frame_<index>.ppm`.
pub fn write_frames(video: &Path, indices: &[usize], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut reader = FrameReader::open(video)?;
    let frames = reader.read_frames(indices)?;
    let mut written = Vec::with_capacity(frames.len());
    for (index, frame) in indices.iter().zip(&frames) {
        let path = out.join(format!("frame_{index}.ppm"));
        write_ppm(frame, &path).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// How many videos to label: a fraction of each class or a count per class.
pub fn labeled_amount(fraction: Option<f64>, per_class: Option<usize>) -> Result<LabeledAmount> {
    match (fraction, per_class) {
        (Some(f), None) => Ok(LabeledAmount::Fraction(f)),
        (None, Some(k)) => Ok(LabeledAmount::PerClass(k)),
        (None, None) => bail!("give --fraction (e.g. 0.01) or --per-class (e.g. 3)"),
        (Some(_), Some(_)) => bail!("give either --fraction or --per-class, not both"),
    }
}

/// `data splits`: draw the labeled subset of a training split and write it to `out`.
pub fn write_splits(
    kind: DatasetKind,
    root: &Path,
    split: u8,
    amount: LabeledAmount,
    seed: u64,
    out: &Path,
) -> Result<String> {
    let index = load_index(kind, root, split)?;
    let part = partition(&index.train, index.num_classes(), amount, seed)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    part.save(&crate::disk::Disk::from_env()?, out, &index.train)?;
    Ok(format!(
        "{}: {} classes, {} training videos: {} labeled, {} unlabeled ({} missing files) -> {}",
        kind.name(),
        index.num_classes(),
        index.train.len(),
        part.labeled.len(),
        part.unlabeled.len(),
        index.missing.len(),
        out.display()
    ))
}

/// Result of `data check`.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub checked: usize,
    pub unreadable: Vec<(PathBuf, String)>,
    pub too_short: Vec<(PathBuf, usize)>,
    pub missing: Vec<PathBuf>,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.unreadable.is_empty() && self.too_short.is_empty() && self.missing.is_empty()
    }
}

/// `data check`: read every video's metadata in parallel; report unreadable files and
/// videos shorter than `min_frames`.
pub fn check_dataset(
    kind: DatasetKind,
    root: &Path,
    split: u8,
    threads: usize,
    min_frames: usize,
) -> Result<CheckReport> {
    let index = load_index(kind, root, split)?;
    let paths: Vec<PathBuf> = index
        .train
        .iter()
        .chain(&index.test)
        .map(|v| v.path.clone())
        .collect();
    let terminal = std::io::stderr().is_terminal();
    let results = read_infos(&paths, threads, |done, total| {
        report_progress(done, total, terminal)
    });
    if terminal {
        eprintln!();
    }
    let mut report = CheckReport {
        checked: paths.len(),
        missing: index.missing.clone(),
        ..CheckReport::default()
    };
    for (path, result) in paths.into_iter().zip(results) {
        match result {
            Ok(info) if info.frame_count < min_frames => {
                report.too_short.push((path, info.frame_count))
            }
            Ok(_) => {}
            Err(e) => report.unreadable.push((path, e.to_string())),
        }
    }
    Ok(report)
}

fn report_progress(done: usize, total: usize, terminal: bool) {
    if terminal {
        let filled = PROGRESS_BAR_WIDTH * done / total.max(1);
        eprint!(
            "\r[{}{}] {done}/{total}",
            "#".repeat(filled),
            " ".repeat(PROGRESS_BAR_WIDTH - filled)
        );
    } else if done.is_multiple_of(PLAIN_PROGRESS_EVERY) || done == total {
        eprintln!("checked {done}/{total} videos");
    }
}

/// Every video file directly in `dir`, sorted.
pub fn videos_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!(
            "no video files ({}) in {}",
            VIDEO_EXTENSIONS.join(", "),
            dir.display()
        );
    }
    Ok(paths)
}

/// `bench data`: loader throughput on the videos of `dir`.
pub fn bench_data(
    dir: &Path,
    recipe: &ClipRecipe,
    workers: usize,
    batches: usize,
) -> Result<BenchResult> {
    let paths = videos_in(dir)?;
    Ok(bench_loader(&paths, recipe, workers, batches)?)
}

/// `data clips`: render one video's clips as a recipe makes them (augmentation included)
/// and write `DIR/clip<k>_frame<t>.ppm`, so that what a model is fed can be looked at.
pub fn write_clips(
    video: &Path,
    recipe: &ClipRecipe,
    seed: u64,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut maker = ClipMaker::new(*recipe)?;
    let mut rng = video_rng(seed, 0, 0);
    let clips = maker.load(video, 0, None, &mut rng)?;
    let side = clips.size;
    let plane = side * side;
    let mut written = Vec::new();
    for (k, clip) in clips.clips.chunks_exact(recipe.clip_len()).enumerate() {
        for t in 0..clips.frames {
            let mut data = Vec::with_capacity(3 * plane);
            for p in 0..plane {
                for c in 0..3 {
                    let v = clip[(c * clips.frames + t) * plane + p];
                    data.push((v.clamp(0.0, 1.0) * 255.0).round() as u8);
                }
            }
            let frame = RgbFrame {
                width: side as u32,
                height: side as u32,
                data,
            };
            let path = out.join(format!("clip{k}_frame{t:02}.ppm"));
            write_ppm(&frame, &path).with_context(|| format!("writing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}
