//! What every stage works with: the prepared dataset, the stage context (configuration, data,
//! run directory, log), the names of the files a run holds, and the seed offsets that keep the
//! random streams of different stages apart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;

use super::burn_log::BurnLog;
use super::config::ExperimentConfig;
use super::runlog::RunLog;
use super::stage::Stage;
use crate::data::batch::ClipTensors;
use crate::data::clips::ClipRecipe;
use crate::data::datasets::{VideoEntry, read_class_names};
use crate::data::loader::{DrawCounts, EpochLoader, LoaderItem};
use crate::data::partition::Partition;
use crate::data::synth::Family;
use crate::data::tensors::{ClipBatcher, SkipLog, VideoClipDataset};
use crate::disk::Disk;
use crate::nodes::NodePeer;
use crate::pipeline::learner::device_batch;

/// File name of a stage's trained model inside its directory.
pub const MODEL_FILE: &str = "model.mpk";
/// The score cache of the `score` stage.
pub const SCORES_FILE: &str = "scores.tsv";
/// The linear probe's results inside the `probe` stage directory.
pub const PROBE_FILE: &str = "probe.json";
/// The evaluation results, in the run directory.
pub const METRICS_FILE: &str = "metrics.json";
/// Marker written (atomically) when a stage has finished; its presence skips the stage.
pub const DONE_FILE: &str = "done.json";
/// The resolved configuration each run directory holds.
pub const CONFIG_FILE: &str = "config.toml";
/// The labeled partition of the training split, in the run directory.
pub const LABELED_FILE: &str = "labeled.txt";
/// The run's log, in the run directory.
pub const LOG_FILE: &str = "log.txt";
/// The class names in label order (line `i` names class `i`), in the run directory: what
/// `predict` names its answers with, without the dataset at hand.
pub const CLASSES_FILE: &str = "classes.txt";
/// Each test video's predicted class per evaluated model, in the run directory (`eval`).
pub const PREDICTIONS_FILE: &str = "predictions.tsv";

/// Seed offsets, so that the random streams of different stages never coincide (a teacher's
/// stages add `10 ×` its [`TeacherKind`](super::train_steps::TeacherKind) index).
pub mod seed_offset {
    /// The score stage's clip draws.
    pub const SCORE: u64 = 0;
    pub const PRETRAIN: u64 = 1;
    pub const FINETUNE: u64 = 2;
    pub const STUDENT: u64 = 3;
    pub const BASELINE: u64 = 4;
    pub const EVAL: u64 = 5;
    /// The probe's random backbone and shuffling.
    pub const PROBE: u64 = 6;
    pub const ALL_LABELS: u64 = 7;
}

/// The dataset as the stages see it.
pub struct PreparedData {
    /// Root directory of the videos (keys of the score cache are relative to it).
    pub root: PathBuf,
    pub classes: Vec<String>,
    /// Class families when known (the synthetic sets' `classes.json`).
    pub families: Option<Vec<Family>>,
    pub train: Vec<VideoEntry>,
    pub test: Vec<VideoEntry>,
    pub partition: Partition,
}

impl PreparedData {
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Key of a video in the score cache: its path relative to the data root.
    pub fn key(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// Loader items of the training videos `indices`, with their labels when `labeled`.
    pub fn items(&self, indices: &[usize], labeled: bool) -> Vec<LoaderItem> {
        indices
            .iter()
            .map(|&i| {
                let e = &self.train[i];
                (e.path.clone(), labeled.then_some(e.label))
            })
            .collect()
    }
}

/// Everything a stage needs.
pub struct StageContext<'a> {
    pub config: &'a ExperimentConfig,
    pub data: &'a PreparedData,
    /// The run directory `runs/NAME`.
    pub dir: &'a Path,
    pub log: &'a RunLog,
    /// Where every file the run relies on is written.
    pub disk: &'a Disk,
    /// The run's sink for Burn's application log.
    pub burn_log: &'a BurnLog,
    /// The videos this stage's datasets skipped (unreadable).
    pub skips: SkipLog,
    /// In a multi-node run: this node (`crate::nodes`).
    pub nodes: Option<NodePeer>,
}

impl StageContext<'_> {
    /// The directory `stage` writes in.
    pub fn stage_dir(&self, stage: Stage) -> PathBuf {
        self.dir.join(stage.name())
    }

    /// Where `stage` saves its trained model.
    pub fn model_path(&self, stage: Stage) -> PathBuf {
        self.stage_dir(stage).join(MODEL_FILE)
    }

    /// The model of an earlier stage, or an error that says which stage to run first.
    pub fn require(&self, stage: Stage) -> Result<PathBuf> {
        let path = self.model_path(stage);
        if !path.is_file() {
            bail!(
                "{} is missing: run the stage `{stage}` first (e.g. --stages {stage})",
                path.display()
            );
        }
        Ok(path)
    }

    /// The supervised training clips (fine-tuning, baseline, student).
    pub fn train_recipe(&self) -> ClipRecipe {
        let d = &self.config.data;
        ClipRecipe::Train {
            frames: d.frames,
            stride: d.stride,
            out_size: d.size,
            augment: d.train_augment.config(d.hflip),
        }
    }

    /// The clips of `items` as a dataset whose skipped videos count for this stage.
    pub fn clip_dataset(
        &self,
        items: impl Into<Arc<[LoaderItem]>>,
        recipe: ClipRecipe,
        seed: u64,
    ) -> Result<VideoClipDataset> {
        Ok(VideoClipDataset::new(items, recipe, seed)?
            .with_pixels(self.config.model.input_pixels())
            .reporting_to(self.skips.clone()))
    }

    /// A loader over `dataset` with the configured workers.
    pub fn loader<B: Backend, I, O>(
        &self,
        batcher: impl burn::data::dataloader::batcher::Batcher<B, I, O> + 'static,
        dataset: impl Dataset<I> + 'static,
        batch_size: usize,
        shuffle: Option<u64>,
        device: &B::Device,
    ) -> Arc<dyn DataLoader<B, O>>
    where
        I: Send + Sync + Clone + 'static,
        O: Send + 'static,
    {
        Arc::new(EpochLoader::new(
            batcher,
            dataset,
            batch_size,
            self.config.data.workers,
            shuffle,
            device.clone(),
        ))
    }

    /// The shuffled training loader of a data-parallel stage and its iterations per epoch.
    /// `dataset` holds whole global batches of `batch_size`; each of this process's `devices`
    /// takes `batch_size / (devices × nodes)` videos of every global batch — in a multi-node
    /// run, of this node's part of it (`crate::data::loader`, "Parts for several devices").
    pub fn train_loader<B: Backend, I, O>(
        &self,
        stage: Stage,
        batcher: impl burn::data::dataloader::batcher::Batcher<B, I, O> + 'static,
        dataset: impl Dataset<I> + DrawCounts + 'static,
        batch_size: usize,
        seed: u64,
        devices: &[B::Device],
    ) -> Result<(Arc<dyn DataLoader<B, O>>, usize)>
    where
        I: Send + Sync + Clone + 'static,
        O: Send + 'static,
    {
        let device = devices.first().context("no device to train on")?;
        let len = dataset.len();
        let iterations = len / batch_size;
        let nodes = self.nodes.map_or(1, |peer| peer.nodes);
        let batch = device_batch(stage.name(), batch_size, devices.len() * nodes)?;
        let dataset = Arc::new(dataset);
        let loader = EpochLoader::new(
            batcher,
            dataset.clone(),
            batch,
            self.config.data.workers,
            Some(seed),
            device.clone(),
        );
        let loader: Arc<dyn DataLoader<B, O>> = match self.nodes {
            Some(peer) => {
                let part = len / peer.nodes;
                Arc::new(loader.counting_elsewhere(dataset))
                    .slice(peer.rank * part, (peer.rank + 1) * part)
            }
            None => Arc::new(loader),
        };
        Ok((loader, iterations))
    }

    /// An empty validation loader: validation is the `eval` stage's job, on the test split,
    /// after training (no model selection on test data).
    pub fn no_validation<B: Backend>(
        &self,
        recipe: ClipRecipe,
        device: &B::Device,
    ) -> Result<Arc<dyn DataLoader<B, ClipTensors<B>>>> {
        let empty = VideoClipDataset::new(Vec::<LoaderItem>::new(), recipe, 0)?;
        Ok(self.loader(ClipBatcher, empty, 2, None, device))
    }

    /// The experiment seed combined with a stage's [`seed_offset`].
    pub fn seed(&self, offset: u64) -> u64 {
        stage_seed(self.config, offset)
    }
}

/// `config`'s seed combined with a stage's [`seed_offset`].
pub fn stage_seed(config: &ExperimentConfig, offset: u64) -> u64 {
    config.seed.wrapping_mul(1_000).wrapping_add(offset)
}

/// [`CLASSES_FILE`]'s text: one name per line, in label order.
pub fn class_list(classes: &[String]) -> String {
    classes.iter().map(|c| format!("{c}\n")).collect()
}

/// The class names of a run's [`CLASSES_FILE`], in label order.
pub fn read_class_list(path: &Path) -> Result<Vec<String>> {
    Ok(read_class_names(path, "the run's class names")?)
}

/// The multi-view evaluation clips of `config` (`[eval]`, the fine-tuning clip geometry):
/// what the `eval` stage and `predict` feed the models.
pub fn eval_recipe(config: &ExperimentConfig) -> Result<ClipRecipe> {
    let (e, d) = (&config.eval, &config.data);
    Ok(ClipRecipe::Eval {
        clips: e.clips,
        frames: d.frames,
        stride: d.stride,
        out_size: d.size,
        crops: e.eval_crops()?,
        crop_fraction: e.crop_fraction,
    })
}

/// A tensor's values as `f32` on the host; `what` names them in the error.
pub fn host_values<B: Backend, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
    what: &str,
) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("reading {what}: {e:?}"))
}
