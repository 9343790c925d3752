//! The method's stages (docs/method.md), each generic over the backend: self-supervised
//! pre-training of a teacher, fine-tuning, TSTR scores, the student (TSTR-weighted or with a
//! fixed weight), the supervised baseline, and multi-view evaluation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use super::checks::prerequisites;
use super::config::{ExperimentConfig, StudentEpoch, StudentInit};
use super::evaluation::{Accuracy, FamilyAccuracy, accuracy, auroc};
use super::learner::{FitSpec, fit};
use super::runlog::RunLog;
use super::steps::{SslObjective, SslTrainer, StudentSettings, StudentTrainer, TeacherKind};
use super::student_data::{StudentBatcher, StudentDataset};
use crate::checkpoint::{load_module, save_module, write_atomic};
use crate::data::batch::ClipTensors;
use crate::data::clips::ClipRecipe;
use crate::data::datasets::VideoEntry;
use crate::data::epoch_loader::EpochLoader;
use crate::data::loader::LoaderItem;
use crate::data::partition::Partition;
use crate::data::sampling::SslGeometry;
use crate::data::synth::Family;
use crate::data::tensors::{ClipBatcher, VideoClipDataset};
use crate::model::{SslModel, VideoClassifier};
use crate::tstr::{self_similarity, teacher_weights, temporal_similarity};

/// File name of a stage's trained model inside its directory.
pub const MODEL_FILE: &str = "model.mpk";
/// The score cache of the `score` stage.
pub const SCORES_FILE: &str = "scores.tsv";
/// The evaluation results.
pub const METRICS_FILE: &str = "metrics.json";
/// The teacher weight of the fixed-mix ablation (docs/method.md: s = 0.5).
pub const FIXED_MIX_WEIGHT: f32 = 0.5;

/// Seed offsets, so that the streams of different stages never coincide.
const SEED_PRETRAIN: u64 = 1;
const SEED_FINETUNE: u64 = 2;
const SEED_STUDENT: u64 = 3;
const SEED_BASELINE: u64 = 4;
const SEED_EVAL: u64 = 5;
const SEED_ALL_LABELS: u64 = 7;

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

    fn items(&self, indices: &[usize], labeled: bool) -> Vec<LoaderItem> {
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
}

impl StageContext<'_> {
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.dir.join(stage)
    }

    fn model_path(&self, stage: &str) -> PathBuf {
        self.stage_dir(stage).join(MODEL_FILE)
    }

    fn require(&self, stage: &str) -> Result<PathBuf> {
        let path = self.model_path(stage);
        if !path.is_file() {
            bail!(
                "{} is missing: run the stage `{stage}` first (e.g. --stages {stage})",
                path.display()
            );
        }
        Ok(path)
    }

    fn train_recipe(&self) -> ClipRecipe {
        let d = &self.config.data;
        ClipRecipe::Train {
            frames: d.frames,
            stride: d.stride,
            out_size: d.size,
            augment: d.train_augment.config(d.hflip),
        }
    }

    pub(super) fn loader<B: Backend, I, O>(
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

    /// An empty validation loader: validation is the `eval` stage's job, on the test split,
    /// after training (no model selection on test data).
    fn no_validation<B: Backend>(
        &self,
        recipe: ClipRecipe,
        device: &B::Device,
    ) -> Result<Arc<dyn DataLoader<B, ClipTensors<B>>>> {
        let empty = VideoClipDataset::new(Vec::<LoaderItem>::new(), recipe, 0)?;
        Ok(self.loader(ClipBatcher, empty, 2, None, device))
    }

    fn seed(&self, offset: u64) -> u64 {
        self.config.seed.wrapping_mul(1_000).wrapping_add(offset)
    }
}

/// Stage directory names.
pub fn pretrain_dir(t: TeacherKind) -> String {
    format!("pretrain_{}", t.name())
}
pub fn finetune_dir(t: TeacherKind) -> String {
    format!("finetune_{}", t.name())
}

/// Self-supervised pre-training of one teacher on every training video (labels unused).
pub fn pretrain<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    teacher: TeacherKind,
    device: &B::Device,
) -> Result<()> {
    let c = &ctx.config.pretrain;
    let name = pretrain_dir(teacher);
    let dir = ctx.stage_dir(&name);
    let all: Vec<usize> = (0..ctx.data.train.len()).collect();
    let d = &ctx.config.data;
    let recipe = ClipRecipe::Ssl {
        out_size: d.ssl_size,
        geometry: SslGeometry {
            frames: d.ssl_frames,
            stride: d.ssl_stride,
        },
        augment: d.ssl_augment.config(d.hflip),
    };
    let seed = ctx.seed(SEED_PRETRAIN + teacher as u64 * 10);
    let dataset = VideoClipDataset::new(ctx.data.items(&all, false), recipe, seed)?
        .padded_to_batches(c.batch_size);
    let iterations = dataset.len() / c.batch_size;
    B::seed(device, seed);
    let model = SslTrainer {
        model: SslModel::<B>::new(ctx.config.model.backbone(), device),
        objective: SslObjective {
            teacher,
            tau: c.tau,
        },
    };
    let train = ctx.loader(ClipBatcher, dataset, c.batch_size, Some(seed), device);
    let valid = ctx.no_validation::<B::InnerBackend>(recipe, device)?;
    let spec = FitSpec {
        stage: &name,
        dir: &dir,
        optim: c,
        iterations_per_epoch: iterations,
        components: teacher.components(),
        accuracy: false,
        log: ctx.log,
    };
    let trained = fit(model, &spec, train, valid)?;
    save_module(trained.model, &dir.join(MODEL_FILE))?;
    Ok(())
}

/// Supervised training of `model` on the training videos `videos` with their labels (the
/// labeled subset for fine-tuning and the baseline, every video for the all-label reference).
fn train_classifier<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    name: &str,
    model: VideoClassifier<B>,
    config: &super::config::TrainConfig,
    videos: &[usize],
    seed: u64,
    device: &B::Device,
) -> Result<()> {
    let dir = ctx.stage_dir(name);
    let recipe = ctx.train_recipe();
    let items = ctx.data.items(videos, true);
    let dataset = VideoClipDataset::new(items, recipe, seed)?.padded_to_batches(config.batch_size);
    let iterations = dataset.len() / config.batch_size;
    let train = ctx.loader(ClipBatcher, dataset, config.batch_size, Some(seed), device);
    let valid = ctx.no_validation::<B::InnerBackend>(recipe, device)?;
    let spec = FitSpec {
        stage: name,
        dir: &dir,
        optim: config,
        iterations_per_epoch: iterations,
        components: &[],
        accuracy: true,
        log: ctx.log,
    };
    let trained = fit(model, &spec, train, valid)?;
    save_module(trained, &dir.join(MODEL_FILE))?;
    Ok(())
}

/// A classifier whose backbone comes from a pre-trained self-supervised model.
fn classifier_from_ssl<B: Backend>(
    ctx: &StageContext<'_>,
    ssl_stage: &str,
    device: &B::Device,
) -> Result<VideoClassifier<B>> {
    let path = ctx.require(ssl_stage)?;
    let backbone = ctx.config.model.backbone();
    let ssl = load_module(SslModel::<B>::new(backbone, device), &path, device)?;
    let fresh = ctx
        .config
        .model
        .classifier::<B>(ctx.data.num_classes(), device);
    Ok(VideoClassifier {
        backbone: ssl.backbone,
        ..fresh
    })
}

/// Fine-tune a pre-trained teacher on the labeled subset.
pub fn finetune<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    teacher: TeacherKind,
    device: &B::Device,
) -> Result<()> {
    let seed = ctx.seed(SEED_FINETUNE + teacher as u64 * 10);
    B::seed(device, seed);
    let model = classifier_from_ssl::<B>(ctx, &pretrain_dir(teacher), device)?;
    train_classifier(
        ctx,
        &finetune_dir(teacher),
        model,
        &ctx.config.finetune,
        &ctx.data.partition.labeled,
        seed,
        device,
    )
}

/// The honest reference: the same backbone trained from scratch on the labeled subset.
pub fn baseline<B: AutodiffBackend>(ctx: &StageContext<'_>, device: &B::Device) -> Result<()> {
    let labeled = &ctx.data.partition.labeled;
    from_scratch::<B>(
        ctx,
        "baseline",
        &ctx.config.baseline,
        labeled,
        SEED_BASELINE,
        device,
    )
}

/// A freshly initialised classifier trained on `videos` (the baseline and the all-label
/// reference differ only in which videos keep their label).
fn from_scratch<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    name: &str,
    config: &super::config::TrainConfig,
    videos: &[usize],
    seed_offset: u64,
    device: &B::Device,
) -> Result<()> {
    let seed = ctx.seed(seed_offset);
    B::seed(device, seed);
    let model = ctx
        .config
        .model
        .classifier::<B>(ctx.data.num_classes(), device);
    train_classifier(ctx, name, model, config, videos, seed, device)
}

/// Stage directory (and `metrics.json` row) of the all-label reference.
pub const ALL_LABELS_STAGE: &str = super::checks::ALL_LABELS_ROW;

/// The upper reference (`[all_labels]`): the same backbone trained from scratch on every
/// training video's label. Not part of the method: it uses labels the method never sees, to
/// show that the data can be learned and how far the labeled subset is from it.
pub fn supervised_all_labels<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    device: &B::Device,
) -> Result<()> {
    let Some(config) = &ctx.config.all_labels else {
        ctx.log.line(&format!(
            "[{ALL_LABELS_STAGE}] the experiment has no [all_labels] section; nothing to do"
        ));
        return Ok(());
    };
    let every: Vec<usize> = (0..ctx.data.train.len()).collect();
    from_scratch::<B>(
        ctx,
        ALL_LABELS_STAGE,
        config,
        &every,
        SEED_ALL_LABELS,
        device,
    )
}

/// One training video's temporal similarity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoScore {
    /// Path relative to the data root.
    pub video: String,
    pub label: usize,
    /// s(v): mean of the two teachers' self-similarities.
    pub score: f32,
    pub invariant: f32,
    pub distinctive: f32,
}

/// TSTR: each training video's self-similarity under both self-supervised teachers,
/// written to `score/scores.tsv` keyed by video path.
pub fn score<B: Backend>(ctx: &StageContext<'_>, device: &B::Device) -> Result<usize> {
    let backbone = ctx.config.model.backbone();
    let load = |t: TeacherKind| -> Result<SslModel<B>> {
        let path = ctx.require(&pretrain_dir(t))?;
        load_module(SslModel::<B>::new(backbone, device), &path, device)
    };
    let invariant = load(TeacherKind::Invariant)?;
    let distinctive = load(TeacherKind::Distinctive)?;
    let d = &ctx.config.data;
    let recipe = ClipRecipe::Tstr {
        clips: ctx.config.tstr.clips,
        frames: d.frames,
        stride: d.stride,
        out_size: d.size,
    };
    let all: Vec<usize> = (0..ctx.data.train.len()).collect();
    let dataset = VideoClipDataset::new(ctx.data.items(&all, true), recipe, ctx.seed(0))?;
    let loader = ctx.loader(
        ClipBatcher,
        dataset,
        ctx.config.tstr.batch_size,
        None,
        device,
    );
    let mut scores: BTreeMap<usize, VideoScore> = BTreeMap::new();
    let total = ctx.data.train.len();
    for batch in loader.iter() {
        let [b, n, ..] = batch.clips.dims();
        let x = batch.flattened();
        let embed = |m: &SslModel<B>| -> Tensor<B, 3> {
            let z = m.embed(x.clone());
            let dim = z.dims()[1];
            z.reshape([b, n, dim])
        };
        let (z_i, z_d) = (embed(&invariant), embed(&distinctive));
        let s_i = host_values(self_similarity(z_i.clone()), "scores")?;
        let s_d = host_values(self_similarity(z_d.clone()), "scores")?;
        let s = host_values(temporal_similarity(z_i, z_d), "scores")?;
        for (k, &v) in batch.videos.iter().enumerate() {
            let e = &ctx.data.train[v];
            scores.entry(v).or_insert(VideoScore {
                video: ctx.data.key(&e.path),
                label: e.label,
                score: s[k],
                invariant: s_i[k],
                distinctive: s_d[k],
            });
        }
        ctx.log
            .line(&format!("[score] {}/{total} videos", scores.len()));
    }
    let dir = ctx.stage_dir("score");
    std::fs::create_dir_all(&dir)?;
    write_scores(&dir.join(SCORES_FILE), scores.values())?;
    if scores.len() < total {
        ctx.log.line(&format!(
            "[score] {} unreadable videos have no score (the mean score stands in)",
            total - scores.len()
        ));
    }
    Ok(scores.len())
}

const SCORES_HEADER: &str = "video\tlabel\tscore\tinvariant\tdistinctive";

fn write_scores<'a>(path: &Path, scores: impl Iterator<Item = &'a VideoScore>) -> Result<()> {
    let mut text = format!("{SCORES_HEADER}\n");
    for s in scores {
        text.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            s.video, s.label, s.score, s.invariant, s.distinctive
        ));
    }
    write_atomic(path, text.as_bytes())
}

/// Read the score cache written by [`score`].
pub fn read_scores(path: &Path) -> Result<Vec<VideoScore>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || anyhow::anyhow!("{}:{}: expected `{SCORES_HEADER}`", path.display(), n + 1);
        if f.len() != 5 {
            return Err(bad());
        }
        out.push(VideoScore {
            video: f[0].to_string(),
            label: f[1].parse().map_err(|_| bad())?,
            score: f[2].parse().map_err(|_| bad())?,
            invariant: f[3].parse().map_err(|_| bad())?,
            distinctive: f[4].parse().map_err(|_| bad())?,
        });
    }
    Ok(out)
}

/// A tensor's values as `f32` on the host; `what` names them in the error.
pub(super) fn host_values<B: Backend, const D: usize>(
    t: burn::tensor::Tensor<B, D>,
    what: &str,
) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .to_vec()
        .map_err(|e| anyhow::anyhow!("reading {what}: {e:?}"))
}

/// w(v) for every training video: from the score cache (clamped or min-max normalised), or
/// `fixed` for all. A video without a score gets the mean of the others.
fn video_weights(ctx: &StageContext<'_>, fixed: Option<f32>) -> Result<Vec<f32>> {
    let n = ctx.data.train.len();
    if let Some(w) = fixed {
        return Ok(vec![w; n]);
    }
    let path = ctx.stage_dir("score").join(SCORES_FILE);
    if !path.is_file() {
        bail!("{} is missing: run the stage `score` first", path.display());
    }
    let cached: BTreeMap<String, f32> = read_scores(&path)?
        .into_iter()
        .map(|s| (s.video, s.score))
        .collect();
    let known: Vec<f32> = cached.values().copied().collect();
    if known.is_empty() {
        bail!("{}: no scores", path.display());
    }
    let mean = known.iter().sum::<f32>() / known.len() as f32;
    let raw: Vec<f32> = ctx
        .data
        .train
        .iter()
        .map(|e| cached.get(&ctx.data.key(&e.path)).copied().unwrap_or(mean))
        .collect();
    Ok(teacher_weights(&raw, ctx.config.tstr.normalization))
}

/// Distil both fine-tuned teachers into a student: TSTR-weighted (`fixed` = None) or with
/// one fixed weight for every video (the 50/50 ablation). Writes `<name>/model.mpk`.
pub fn student<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    name: &str,
    fixed: Option<f32>,
    device: &B::Device,
) -> Result<()> {
    let c = &ctx.config.student;
    let seed = ctx.seed(SEED_STUDENT);
    let backbone = ctx.config.model.backbone();
    let classes = ctx.data.num_classes();
    let teacher = |t: TeacherKind| -> Result<VideoClassifier<B>> {
        let path = ctx.require(&finetune_dir(t))?;
        load_module(
            VideoClassifier::<B>::new(backbone, classes, device),
            &path,
            device,
        )
    };
    let invariant = teacher(TeacherKind::Invariant)?;
    let distinctive = teacher(TeacherKind::Distinctive)?;
    B::seed(device, seed);
    let student = match c.init {
        StudentInit::Distinctive => {
            classifier_from_ssl::<B>(ctx, &pretrain_dir(TeacherKind::Distinctive), device)?
        }
        StudentInit::Invariant => {
            classifier_from_ssl::<B>(ctx, &pretrain_dir(TeacherKind::Invariant), device)?
        }
        StudentInit::Random => ctx.config.model.classifier::<B>(classes, device),
    };
    let weights = video_weights(ctx, fixed)?;
    let p = &ctx.data.partition;
    if p.unlabeled.is_empty() {
        bail!("the student needs unlabeled videos, but every training video is labeled");
    }
    let recipe = ctx.train_recipe();
    let (labeled, unlabeled) = (
        VideoClipDataset::new(ctx.data.items(&p.labeled, true), recipe, seed)?,
        VideoClipDataset::new(ctx.data.items(&p.unlabeled, false), recipe, seed + 1)?,
    );
    // The set that defines the epoch is padded to whole batches.
    let (labeled, unlabeled) = match c.epoch {
        StudentEpoch::Labeled => (labeled.padded_to_batches(c.batch_size), unlabeled),
        StudentEpoch::Unlabeled => (labeled, unlabeled.padded_to_batches(c.batch_size)),
    };
    let dataset = StudentDataset::new(
        labeled,
        unlabeled,
        p.labeled.iter().map(|&i| weights[i]).collect(),
        p.unlabeled.iter().map(|&i| weights[i]).collect(),
        c.epoch,
    );
    let iterations = dataset.len() / c.batch_size;
    let train = ctx.loader(StudentBatcher, dataset, c.batch_size, Some(seed), device);
    let empty = StudentDataset::new(
        VideoClipDataset::new(Vec::<LoaderItem>::new(), recipe, 0)?,
        VideoClipDataset::new(Vec::<LoaderItem>::new(), recipe, 0)?,
        Vec::new(),
        Vec::new(),
        c.epoch,
    );
    let valid = ctx.loader::<B::InnerBackend, _, _>(StudentBatcher, empty, 2, None, device);
    let model = StudentTrainer {
        student,
        invariant,
        distinctive,
        settings: StudentSettings {
            weights: c.loss_weights,
            distill: c.distill,
        },
    };
    let dir = ctx.stage_dir(name);
    let spec = FitSpec {
        stage: name,
        dir: &dir,
        optim: c,
        iterations_per_epoch: iterations,
        components: &["ce", "distill_labeled", "distill_unlabeled"],
        accuracy: true,
        log: ctx.log,
    };
    let trained = fit(model, &spec, train, valid)?;
    save_module(trained.student, &dir.join(MODEL_FILE))?;
    Ok(())
}

/// The rows of `metrics.json`: (key, stage whose model is evaluated).
pub const EVAL_ROWS: [(&str, &str); 6] = [
    ("student", "student"),
    ("teacher_invariant", "finetune_invariant"),
    ("teacher_distinctive", "finetune_distinctive"),
    ("teacher_average", "student_average"),
    ("baseline_supervised", "baseline"),
    (ALL_LABELS_STAGE, ALL_LABELS_STAGE),
];

/// One class's line in `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Mean temporal similarity of the class's training videos.
    pub score_mean: Option<f64>,
    /// Accuracy of each evaluated model on the class's test videos, percent.
    pub accuracy: BTreeMap<String, Option<f64>>,
}

/// Multi-view evaluation of every trained model on the test split; writes `metrics.json`.
pub fn evaluate<B: Backend>(ctx: &StageContext<'_>, device: &B::Device) -> Result<PathBuf> {
    let backbone = ctx.config.model.backbone();
    let classes = ctx.data.num_classes();
    let mut models = Vec::new();
    for (row, stage) in EVAL_ROWS {
        let path = ctx.model_path(stage);
        if path.is_file() {
            let m = load_module(
                VideoClassifier::<B>::new(backbone, classes, device),
                &path,
                device,
            )?;
            models.push((row, m));
        } else {
            ctx.log.line(&format!(
                "[eval] no {row} row: {} is missing",
                path.display()
            ));
        }
    }
    if models.is_empty() {
        bail!("nothing to evaluate: no stage has produced a model yet");
    }
    let e = &ctx.config.eval;
    let d = &ctx.config.data;
    let recipe = ClipRecipe::Eval {
        clips: e.clips,
        frames: d.frames,
        stride: d.stride,
        out_size: d.size,
        crops: e.eval_crops()?,
        crop_fraction: e.crop_fraction,
    };
    let items: Vec<LoaderItem> = ctx
        .data
        .test
        .iter()
        .map(|t| (t.path.clone(), Some(t.label)))
        .collect();
    let dataset = Arc::new(VideoClipDataset::new(items, recipe, ctx.seed(SEED_EVAL))?);
    let loader = ctx.loader(
        ClipBatcher,
        SharedDataset(dataset.clone()),
        e.batch_size,
        None,
        device,
    );
    let mut probabilities: Vec<BTreeMap<usize, Vec<f32>>> = vec![BTreeMap::new(); models.len()];
    let total = ctx.data.test.len();
    for batch in loader.iter() {
        let [b, n, ..] = batch.clips.dims();
        let x = batch.flattened();
        for ((_, model), store) in models.iter().zip(probabilities.iter_mut()) {
            let p = softmax(model.forward(x.clone()), 1)
                .reshape([b, n, classes])
                .mean_dim(1)
                .reshape([b * classes]);
            let values = host_values(p, "predictions")?;
            for (k, &v) in batch.videos.iter().enumerate() {
                store
                    .entry(v)
                    .or_insert_with(|| values[k * classes..(k + 1) * classes].to_vec());
            }
        }
        ctx.log.line(&format!(
            "[eval] {}/{total} test videos",
            probabilities[0].len()
        ));
    }
    let skipped = dataset.skipped().len();
    let scores_path = ctx.stage_dir("score").join(SCORES_FILE);
    let scores = if scores_path.is_file() {
        Some(read_scores(&scores_path)?)
    } else {
        None
    };
    let report = build_report(ctx, &models, &probabilities, scores.as_deref(), skipped);
    let path = ctx.dir.join(METRICS_FILE);
    write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(path)
}

/// Lets a dataset be shared with the loader while the caller keeps reading its skip list.
struct SharedDataset(Arc<VideoClipDataset>);

impl Dataset<crate::data::clips::VideoClips> for SharedDataset {
    fn get(&self, index: usize) -> Option<crate::data::clips::VideoClips> {
        self.0.get(index)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn build_report<B: Backend>(
    ctx: &StageContext<'_>,
    models: &[(&str, VideoClassifier<B>)],
    probabilities: &[BTreeMap<usize, Vec<f32>>],
    scores: Option<&[VideoScore]>,
    skipped: usize,
) -> serde_json::Value {
    let classes = ctx.data.num_classes();
    let mut report = serde_json::Map::new();
    let mut accuracies: Vec<(&str, Accuracy)> = Vec::new();
    for ((row, _), store) in models.iter().zip(probabilities) {
        let labels: Vec<usize> = store.keys().map(|&v| ctx.data.test[v].label).collect();
        let probs: Vec<Vec<f32>> = store.values().cloned().collect();
        let a = accuracy(&probs, &labels, classes);
        let families = ctx
            .data
            .families
            .as_ref()
            .map(|f| FamilyAccuracy::of(&a.per_class, f));
        report.insert(
            row.to_string(),
            serde_json::json!({
                "top1": a.top1,
                "top5": a.top5,
                "mean_class_acc": a.mean_class_acc,
                "videos": a.videos,
                "families": families,
                "confusion": a.confusion,
            }),
        );
        accuracies.push((row, a));
    }
    let score_mean = |c: usize| -> Option<f64> {
        let s: Vec<f64> = scores?
            .iter()
            .filter(|s| s.label == c)
            .map(|s| s.score as f64)
            .collect();
        (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
    };
    let per_class: Vec<ClassReport> = (0..classes)
        .map(|c| ClassReport {
            name: ctx.data.classes[c].clone(),
            family: ctx.data.families.as_ref().map(|f| f[c]),
            score_mean: score_mean(c),
            accuracy: accuracies
                .iter()
                .map(|(row, a)| (row.to_string(), a.per_class[c]))
                .collect(),
        })
        .collect();
    report.insert(
        "classes".into(),
        serde_json::to_value(&per_class).unwrap_or_default(),
    );
    if let (Some(families), Some(scores)) = (&ctx.data.families, scores) {
        // Each family's scores, and the invariant teacher's weight w(v) the student gives
        // those videos (after `tstr.normalization`): how differently the families are treated.
        let all: Vec<f32> = scores.iter().map(|s| s.score).collect();
        let weights = teacher_weights(&all, ctx.config.tstr.normalization);
        let of = |f: Family| -> (Vec<f32>, Vec<f32>) {
            scores
                .iter()
                .zip(&weights)
                .filter(|(s, _)| families.get(s.label) == Some(&f))
                .map(|(s, &w)| (s.score, w))
                .unzip()
        };
        let (inv, inv_weights) = of(Family::Invariant);
        let (dis, dis_weights) = of(Family::Distinctive);
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
        report.insert(
            "tstr".into(),
            serde_json::json!({
                "score_mean_invariant_classes": mean(&inv),
                "score_mean_distinctive_classes": mean(&dis),
                "auroc": auroc(&inv, &dis),
                "weight_mean_invariant_classes": mean(&inv_weights),
                "weight_mean_distinctive_classes": mean(&dis_weights),
            }),
        );
    }
    let probe = ctx.stage_dir("probe").join(super::probe::PROBE_FILE);
    if let Some(value) = std::fs::read_to_string(&probe)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        report.insert("probe".into(), value);
    }
    report.insert("test_videos".into(), ctx.data.test.len().into());
    report.insert("skipped_videos".into(), skipped.into());
    let mut report = serde_json::Value::Object(report);
    if let Some(c) = &ctx.config.checks {
        let verdicts = prerequisites(&report, c);
        for p in &verdicts {
            if p.passed {
                ctx.log.line(&format!(
                    "[eval] prerequisite ({}) holds: {} — {}",
                    p.id, p.requirement, p.measured
                ));
            } else {
                ctx.log.line(&format!(
                    "[eval] !!! PREREQUISITE ({}) FAILED: {} — measured: {} — the claim cannot be read from this run",
                    p.id, p.requirement, p.measured
                ));
            }
        }
        report["prerequisites"] = serde_json::to_value(&verdicts).unwrap_or_default();
    }
    report
}
