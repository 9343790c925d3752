//! `timebalance predict`: a trained model of a run applied to video files, with the run's own
//! multi-view evaluation (the `[eval]` views of its `config.toml`) and class names (its
//! `classes.txt`), so that a video's top-1 here is what the `eval` stage predicted for it.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::Serialize;

use super::accuracy::top_k;
use super::config::ExperimentConfig;
use super::context::{
    CLASSES_FILE, CONFIG_FILE, MODEL_FILE, eval_recipe, read_class_list, seed_offset, stage_seed,
};
use super::stages::evaluate::{SharedDataset, view_probabilities};
use crate::checkpoint::load_module;
use crate::data::loader::{EpochLoader, LoaderItem};
use crate::data::tensors::{ClipBatcher, VideoClipDataset};
use crate::device::{BackendTask, DeviceSpec, dispatch};
use crate::model::VideoClassifier;

/// File extensions taken from a directory argument (compared without case).
pub const VIDEO_EXTENSIONS: [&str; 10] = [
    "avi", "mp4", "mkv", "webm", "mov", "m4v", "mpg", "mpeg", "flv", "wmv",
];

/// What to predict: video files or directories (searched recursively for
/// [`VIDEO_EXTENSIONS`]) and the model, named by its stage directory (`RUN_DIR/student`) or
/// its model file (`RUN_DIR/student/model.mpk`).
#[derive(Debug, Clone)]
pub struct PredictTask {
    pub inputs: Vec<PathBuf>,
    pub checkpoint: PathBuf,
    /// Classes listed per video.
    pub top: usize,
    /// Redraw a progress line on standard error (only when it is a terminal).
    pub progress: bool,
}

/// One class of a video's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassProbability {
    pub class: String,
    pub index: usize,
    /// Mean over the views of the softmax probability.
    pub probability: f32,
}

/// A video's answer: its `top` classes, most probable first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VideoPrediction {
    pub video: PathBuf,
    pub top: Vec<ClassProbability>,
}

/// A file that could not be read as a video, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreadable {
    pub video: PathBuf,
    pub error: String,
}

/// Everything `predict` found, in the order of the inputs.
#[derive(Debug, Clone, Serialize)]
pub struct PredictReport {
    /// The model file used.
    pub model: PathBuf,
    pub predictions: Vec<VideoPrediction>,
    pub unreadable: Vec<Unreadable>,
}

impl PredictReport {
    /// Human-readable: per video its path, then one line per class.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for p in &self.predictions {
            out.push_str(&format!("{}\n", p.video.display()));
            for (rank, c) in p.top.iter().enumerate() {
                out.push_str(&format!(
                    "  {:>2}. {:<24} {:6.2} %\n",
                    rank + 1,
                    c.class,
                    100.0 * c.probability
                ));
            }
        }
        for u in &self.unreadable {
            out.push_str(&format!(
                "{}\n  unreadable: {}\n",
                u.video.display(),
                u.error
            ));
        }
        out
    }
}

/// A stage's model and the run it belongs to.
struct Checkpoint {
    model: PathBuf,
    config: ExperimentConfig,
    classes: Vec<String>,
}

/// Resolve `path` (a stage directory or its model file) to the model, the run's configuration
/// and its class names.
fn open_checkpoint(path: &Path) -> Result<Checkpoint> {
    let model = if path.is_dir() {
        let model = path.join(MODEL_FILE);
        if !model.is_file() {
            let hint = if path.join(CONFIG_FILE).is_file() {
                " (this is a run directory: name one of its stages, e.g. RUN_DIR/student)"
            } else {
                ""
            };
            bail!(
                "--checkpoint {}: no {MODEL_FILE} in this directory{hint}",
                path.display()
            );
        }
        model
    } else if path.is_file() {
        path.to_path_buf()
    } else {
        bail!("--checkpoint {}: no such file or directory", path.display());
    };
    let run_dir = model
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("{}: no run directory above it", model.display()))?;
    let config_path = run_dir.join(CONFIG_FILE);
    if !config_path.is_file() {
        bail!(
            "--checkpoint {}: expected the run's {CONFIG_FILE} at {} (a model file sits in RUN_DIR/STAGE/)",
            path.display(),
            config_path.display()
        );
    }
    let config = ExperimentConfig::from_file(&config_path, &[])?;
    let classes = read_class_list(&run_dir.join(CLASSES_FILE))?;
    Ok(Checkpoint {
        model,
        config,
        classes,
    })
}

/// The video files named by `inputs`: files as given, directories searched recursively for
/// [`VIDEO_EXTENSIONS`] (sorted). A missing path, or nothing found at all, is an error.
pub fn collect_videos(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut videos = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut HashSet::new(), &mut found)?;
            found.sort();
            if found.is_empty() {
                bail!(
                    "{}: no video files in this directory (looked for .{})",
                    input.display(),
                    VIDEO_EXTENSIONS.join(", .")
                );
            }
            videos.extend(found);
        } else if input.exists() {
            videos.push(input.clone());
        } else {
            bail!("{}: no such file or directory", input.display());
        }
    }
    if videos.is_empty() {
        bail!("no videos given");
    }
    Ok(videos)
}

/// Video files under `dir`, recursively. Symbolic links to directories are followed (dataset
/// trees are often assembled from links), each real directory once: a link back to an
/// ancestor does not loop.
fn walk(dir: &Path, visited: &mut HashSet<PathBuf>, out: &mut Vec<PathBuf>) -> Result<()> {
    let real =
        std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    if !visited.insert(real) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)
        .and_then(|entries| {
            entries
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<Vec<_>>>()
        })
        .with_context(|| format!("listing {}", dir.display()))?;
    // In name order, so that a directory reached by two paths is always listed by the same.
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, visited, out)?;
        } else if is_video_name(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_video_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e)))
}

impl PredictTask {
    /// Predict on the backend named by `device`.
    pub fn run_on(self, device: DeviceSpec) -> Result<PredictReport> {
        dispatch(device, self)
    }
}

impl BackendTask for PredictTask {
    type Output = PredictReport;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<PredictReport> {
        // Inference only: the backend without autodiff, as the `eval` stage.
        predict::<B::InnerBackend>(&self, &device)
    }
}

fn predict<B: Backend>(task: &PredictTask, device: &B::Device) -> Result<PredictReport> {
    if task.top == 0 {
        bail!("--top must be at least 1");
    }
    let checkpoint = open_checkpoint(&task.checkpoint)?;
    let videos = collect_videos(&task.inputs)?;
    let config = &checkpoint.config;
    let classes = checkpoint.classes.len();
    let model = load_module(
        VideoClassifier::<B>::new(config.model.backbone(), classes, device),
        &checkpoint.model,
        device,
    )
    .with_context(|| {
        format!(
            "loading {} ({classes} classes from the run's {CLASSES_FILE})",
            checkpoint.model.display()
        )
    })?;
    let items: Vec<LoaderItem> = videos.iter().map(|v| (v.clone(), None)).collect();
    // The `eval` stage's seed, so that any random part of the views is drawn the same.
    let seed = stage_seed(config, seed_offset::EVAL);
    let dataset = Arc::new(
        VideoClipDataset::new(items, eval_recipe(config)?, seed)?
            .with_pixels(config.model.input_pixels()),
    );
    let loader = EpochLoader::new(
        ClipBatcher,
        SharedDataset(dataset.clone()),
        config.eval.batch_size,
        config.data.workers,
        None,
        device.clone(),
    );
    let total = videos.len();
    let show = task.progress && std::io::stderr().is_terminal();
    let probabilities = view_probabilities(&[&model], &loader, classes, |done| {
        if show {
            eprint!("\r[predict] {done}/{total} videos");
            let _ = std::io::stderr().flush();
        }
    })?;
    if show {
        eprintln!();
    }
    let store: &BTreeMap<usize, Vec<f32>> = &probabilities[0];
    let errors: BTreeMap<usize, String> = dataset
        .skipped()
        .into_iter()
        .map(|s| (s.video, s.error))
        .collect();
    let mut report = PredictReport {
        model: checkpoint.model.clone(),
        predictions: Vec::new(),
        unreadable: Vec::new(),
    };
    for (i, video) in videos.into_iter().enumerate() {
        match store.get(&i) {
            Some(p) => report.predictions.push(VideoPrediction {
                video,
                top: top_k(p, task.top)
                    .into_iter()
                    .map(|c| ClassProbability {
                        class: checkpoint.classes[c].clone(),
                        index: c,
                        probability: p[c],
                    })
                    .collect(),
            }),
            None => report.unreadable.push(Unreadable {
                video,
                error: errors
                    .get(&i)
                    .cloned()
                    .unwrap_or_else(|| "not decoded".to_string()),
            }),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_searched_for_video_names_and_missing_paths_named() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        for f in ["a.avi", "notes.txt", "b/c.MP4", "b/d.mkv"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let found = collect_videos(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.avi", "b/c.MP4", "b/d.mkv"]);
        // A file is taken as given, whatever its name.
        let notes = dir.path().join("notes.txt");
        assert_eq!(
            collect_videos(std::slice::from_ref(&notes)).unwrap(),
            [notes]
        );
        let err = collect_videos(&[dir.path().join("absent.avi")]).unwrap_err();
        assert!(format!("{err}").contains("absent.avi"), "{err}");
        let err = collect_videos(&[sub.join("nothing")]).unwrap_err();
        assert!(format!("{err}").contains("nothing"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn linked_directories_are_followed_once_and_a_link_loop_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (real, other) = (dir.path().join("real"), dir.path().join("other"));
        std::fs::create_dir_all(&real).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("x.avi"), b"").unwrap();
        std::fs::write(real.join("a.avi"), b"").unwrap();
        // A link to a sibling tree is followed; a link back to an ancestor is not a loop.
        std::os::unix::fs::symlink(&other, real.join("linked")).unwrap();
        std::os::unix::fs::symlink(dir.path(), real.join("up")).unwrap();
        let found = collect_videos(std::slice::from_ref(&real)).unwrap();
        let names: Vec<String> = found
            .iter()
            .map(|p| p.strip_prefix(&real).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.avi", "linked/x.avi"]);
    }
}
