//! Typed experiment configuration: one TOML file per named experiment
//! (`experiments/*.toml`), every hyper-parameter named, overridable with `--set key=value`.
//!
//! Unknown keys and wrong types are errors that name the key; [`ExperimentConfig::validate`]
//! checks value ranges before any work starts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::augment_settings::{SslAugment, TrainAugment};
use super::checks::ChecksConfig;
use super::extends::{self, BaseText};
use super::registry;
use crate::data::augment::EvalCrops;
use crate::data::datasets::DatasetKind;
use crate::data::input::{ChannelOrder, IDENTITY_MEAN, IDENTITY_STD, InputPixels};
use crate::data::partition::LabeledAmount;
use crate::data::sampling::{SSL_CLIP_FRAMES, SSL_DENSE_CLIPS, SSL_SPARSE_STRIDE};
use crate::data::synth::{self, DEFAULT_DISTINCTIVE_CHANGES, DistinctiveChange};
use crate::loss::{DistillKind, StudentWeights};
use crate::model::import::KeyLayout;
use crate::model::{Arch, BackboneConfig, VideoClassifier};
use crate::ops::ConvAlgorithm;
use crate::tstr::ScoreNormalization;

/// A whole experiment: data, backbone, and one section per stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// One line shown by `timebalance experiments`.
    pub description: String,
    /// Base seed of every random draw (partition, initialisation, shuffling, clips).
    pub seed: u64,
    pub data: DataConfig,
    pub model: ModelConfig,
    pub pretrain: PretrainConfig,
    pub finetune: Optimisation,
    pub tstr: TstrConfig,
    pub student: StudentConfig,
    pub baseline: Optimisation,
    pub eval: EvalConfig,
    /// Linear-probe diagnostic of the teachers' features (optional section).
    #[serde(default)]
    pub probe: ProbeConfig,
    /// The same backbone trained from scratch on *every* training label (optional section;
    /// without it the `supervised_all_labels` stage does nothing): the upper reference a
    /// semi-supervised result is read against, and the proof that the data can be learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_labels: Option<Optimisation>,
    /// Prerequisites of a claim experiment, checked by the `eval` stage (optional section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<ChecksConfig>,
}

/// Where the videos come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// Generated on the spot into the run directory (or read from `--data-root`).
    Synthetic,
    Ucf101,
    Hmdb51,
    K400,
    /// MMAction2-style list files.
    Generic,
}

impl DataSource {
    /// The on-disk layout the index reader expects (the synthetic set is written in
    /// UCF101's layout).
    pub fn layout(self) -> DatasetKind {
        match self {
            DataSource::Synthetic | DataSource::Ucf101 => DatasetKind::Ucf101,
            DataSource::Hmdb51 => DatasetKind::Hmdb51,
            DataSource::K400 => DatasetKind::Kinetics400,
            DataSource::Generic => DatasetKind::Generic,
        }
    }
}

/// Dataset, split, labeled subset and clip geometry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// Official split (1–3 for UCF101/HMDB51, 1 otherwise).
    pub split: u8,
    /// Fraction of each class's training videos that keep their label (exclusive with
    /// `labeled_per_class`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labeled_fraction: Option<f64>,
    /// Labeled videos per class (exclusive with `labeled_fraction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labeled_per_class: Option<usize>,
    /// Horizontal flips in augmentation; off where flipping changes the label
    /// (left/right classes).
    pub hflip: bool,
    /// Decoding threads per data loader.
    pub workers: usize,
    /// Side of the self-supervised clips, pixels.
    pub ssl_size: u32,
    /// Side of fine-tuning / student / evaluation clips, pixels.
    pub size: u32,
    /// Frames per fine-tuning / student / evaluation / TSTR clip.
    pub frames: usize,
    /// Temporal stride of those clips.
    pub stride: usize,
    /// Frames per self-supervised clip (sparse and dense; a multiple of 4, the dense clips
    /// start at the quarters of the sparse one).
    #[serde(default = "default_ssl_frames")]
    pub ssl_frames: usize,
    /// Stride of the sparse (global) self-supervised clip on long videos: the clip spans
    /// `(ssl_frames - 1) · ssl_stride + 1` frames (lowered for shorter videos, `data::sampling`).
    #[serde(default = "default_ssl_stride")]
    pub ssl_stride: usize,
    /// Augmentation of the fine-tuning, student and baseline clips (default: docs/method.md's
    /// fine-tuning recipe; `pipeline::augment_settings` lists the keys).
    #[serde(default)]
    pub train_augment: TrainAugment,
    /// Augmentation of the self-supervised clips (default: docs/method.md's recipe).
    #[serde(default)]
    pub ssl_augment: SslAugment,
    /// Generator settings, for `source = "synthetic"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticConfig>,
}

impl DataConfig {
    /// The labeled amount, from whichever key is set.
    pub fn labeled_amount(&self) -> Result<LabeledAmount> {
        match (self.labeled_fraction, self.labeled_per_class) {
            (Some(f), None) => Ok(LabeledAmount::Fraction(f)),
            (None, Some(k)) => Ok(LabeledAmount::PerClass(k)),
            _ => bail!("data: set exactly one of labeled_fraction and labeled_per_class"),
        }
    }
}

/// Parameters of the built-in synthetic dataset (see `data::synth`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Even: half temporally-invariant, half temporally-distinctive classes.
    pub classes: usize,
    pub videos_per_class: usize,
    pub test_videos_per_class: usize,
    pub frames: usize,
    /// Frame side in pixels (even).
    pub size: u32,
    /// Seed of the generator (independent of the experiment seed, so that seeds of a
    /// method can be compared on the same data).
    pub seed: u64,
    /// Object size relative to the generator's default (`data::synth`).
    #[serde(default = "unit")]
    pub object_scale: f32,
    /// Nuisance strength relative to the generator's default: background gradient and
    /// texture, pixel noise, distractor size (0 = plain background).
    #[serde(default = "unit")]
    pub clutter: f32,
    /// The distinctive pairs, in order (`move_horizontal`, `scale`, `rotate`, `brightness`,
    /// `move_vertical`, `posture`): the distinctive classes take the first ones (default: that
    /// order).
    #[serde(default = "default_distinctive_changes")]
    pub distinctive_changes: Vec<DistinctiveChange>,
}

fn unit() -> f32 {
    1.0
}

fn default_distinctive_changes() -> Vec<DistinctiveChange> {
    DEFAULT_DISTINCTIVE_CHANGES.to_vec()
}

fn default_ssl_frames() -> usize {
    SSL_CLIP_FRAMES
}

fn default_ssl_stride() -> usize {
    SSL_SPARSE_STRIDE
}

/// Backbone of every model of the experiment (teachers, student, baseline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub arch: Arch,
    /// Base channel width (64 = the published networks).
    pub width: usize,
    /// Dropout before the classifier of every trained classifier (default: the
    /// architecture's, 0.5 for `slow_r50` as PyTorchVideo's head, 0 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// How convolutions are computed: `auto` (our CPU kernels on the CPU, GEMMs of Burn
    /// operations on GPUs), `gemm` or `burn` (Burn's own, autotuned per geometry on GPUs).
    #[serde(default)]
    pub conv: ConvAlgorithm,
    /// Pre-trained weights (a PyTorch state dict or checkpoint: `.pth`, `.pt`,
    /// `.safetensors`) whose backbone starts every model trained from scratch: both
    /// self-supervised teachers, the baseline, the all-label reference and a student with
    /// `init = "random"` (the fine-tuned teachers start from their pre-training). Backbone
    /// keys are checked strictly; a classifier or projection head in the file is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// Key names of `init_from` (default: `pytorchvideo` for `slow_r50`, else `torchvision`,
    /// which TCLR's checkpoints also use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_layout: Option<KeyLayout>,
    /// Channel order the network reads: `rgb`, or `bgr` for the official TCLR/TimeBalance
    /// checkpoints (trained on OpenCV's BGR frames).
    #[serde(default)]
    pub channels: ChannelOrder,
    /// Per-channel mean subtracted from `[0, 1]` pixels, in the network's channel order
    /// (torchvision's Kinetics models: `data::input::KINETICS_MEAN`).
    #[serde(default = "identity_mean")]
    pub pixel_mean: [f32; 3],
    /// Per-channel standard deviation pixels are divided by (after `pixel_mean`).
    #[serde(default = "identity_std")]
    pub pixel_std: [f32; 3],
}

fn identity_mean() -> [f32; 3] {
    IDENTITY_MEAN
}

fn identity_std() -> [f32; 3] {
    IDENTITY_STD
}

impl ModelConfig {
    pub fn backbone(&self) -> BackboneConfig {
        BackboneConfig::new(self.arch, self.width).with_conv(self.conv)
    }

    /// What the network expects of its input pixels.
    pub fn input_pixels(&self) -> InputPixels {
        InputPixels {
            order: self.channels,
            mean: self.pixel_mean,
            std: self.pixel_std,
        }
    }

    /// The key layout of `init_from`.
    pub fn init_layout(&self) -> KeyLayout {
        self.init_layout.unwrap_or(match self.arch {
            Arch::SlowR50 => KeyLayout::Pytorchvideo,
            _ => KeyLayout::Torchvision,
        })
    }

    /// A fresh classifier of this backbone with the configured dropout.
    pub fn classifier<B: burn::tensor::backend::Backend>(
        &self,
        classes: usize,
        device: &B::Device,
    ) -> VideoClassifier<B> {
        let model = VideoClassifier::new(self.backbone(), classes, device);
        match self.dropout {
            Some(p) => model.with_dropout(p),
            None => model,
        }
    }
}

/// Learning-rate shape after the linear warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrDecay {
    /// Constant after warm-up.
    #[default]
    Constant,
    /// Cosine decay to zero over the remaining iterations.
    Cosine,
    /// Reduce on plateau of the epoch's mean training loss, as the official release's
    /// pre-training: halved after [`PLATEAU_PATIENCE`] epochs without a new best.
    Plateau,
    /// The official release's fine-tuning and student rule on the previous epoch's mean
    /// training loss: the base rate × 0.5 once it falls in [0.5, 0.8), × 0.1 once below 0.4
    /// (otherwise the rate stays), see [`LOSS_THRESHOLDS`].
    #[serde(rename = "loss_threshold")]
    LossThreshold,
}

/// The release's `loss_based` rule: (lowest loss, highest loss, factor of the base rate); its
/// further branches (below 0.25, 0.2, 0.05) can never trigger and are left out.
pub const LOSS_THRESHOLDS: [(f64, f64, f64); 2] = [(0.5, 0.8, 0.5), (f64::NEG_INFINITY, 0.4, 0.1)];

/// Epochs without a new best training loss before a plateau schedule lowers the rate (the
/// release's `scheduler_patience`).
pub const PLATEAU_PATIENCE: usize = 5;
/// What a plateau schedule multiplies the rate by (the release divides by `drop_factor` 2).
pub const PLATEAU_FACTOR: f64 = 0.5;

/// The optimisation settings of every trained stage (Adam): the whole `[finetune]`,
/// `[baseline]` and `[all_labels]` sections, and the shared keys of `[pretrain]` and
/// `[student]` (flattened into them, so the TOML keys stay `pretrain.lr`, `student.epochs`, …).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Optimisation {
    /// Epochs, each one pass over the stage's training set.
    pub epochs: usize,
    /// Videos per step.
    pub batch_size: usize,
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    /// Epochs of linear warm-up from 0 to `lr`.
    pub warmup_epochs: usize,
    /// Coupled (L2) weight decay, as PyTorch's `Adam(weight_decay=…)`.
    pub weight_decay: f64,
    #[serde(default)]
    pub decay: LrDecay,
}

/// Self-supervised pre-training of both teachers.
///
/// Unknown keys are rejected by [`ExperimentConfig`]'s key check, not by serde: serde's
/// `deny_unknown_fields` does not work on a struct with a flattened field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// `batch_size` counts videos, each giving 10 clips.
    #[serde(flatten)]
    pub optim: Optimisation,
    /// NT-Xent temperature τ.
    pub tau: f64,
}

/// Temporal-similarity scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TstrConfig {
    /// Clips per video (docs/method.md default 4).
    pub clips: usize,
    pub normalization: ScoreNormalization,
    /// Videos per forward pass.
    pub batch_size: usize,
    /// Frames per score clip; absent: the supervised clips' `data.frames`. The method fixes
    /// only that the clips are spread over the video: a score compares moments of a video, so
    /// it wants short clips apart in time, while a classifier may need a clip long enough to
    /// hold a whole event (the synthetic posture pair), so the two geometries may differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    /// Stride between a score clip's frames; absent: `data.stride`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
}

impl TstrConfig {
    /// The score clips' frames and stride: this section's where given, else the supervised
    /// clips' (`data`).
    pub fn clip_geometry(&self, data: &DataConfig) -> (usize, usize) {
        (
            self.frames.unwrap_or(data.frames),
            self.stride.unwrap_or(data.stride),
        )
    }
}

/// Where the student's backbone starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StudentInit {
    Distinctive,
    Invariant,
    Random,
}

/// What one epoch of the student is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StudentEpoch {
    /// One pass over the labeled set, each labeled batch paired with an unlabeled batch (the
    /// official release zips the two loaders, so the shorter, labeled one ends the epoch).
    #[default]
    Labeled,
    /// One pass over the unlabeled set, labeled videos reused cyclically (~1/fraction times
    /// more steps per epoch at low label fractions).
    Unlabeled,
}

/// The distilled student (unknown keys: see [`PretrainConfig`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentConfig {
    /// `epochs` count passes over the set named by `epoch`; `batch_size` counts labeled
    /// videos per step (the unlabeled batch has the same size).
    #[serde(flatten)]
    pub optim: Optimisation,
    /// Which set an epoch passes over (default: the labeled set, as the release).
    #[serde(default)]
    pub epoch: StudentEpoch,
    pub init: StudentInit,
    pub loss_weights: StudentWeights,
    pub distill: DistillKind,
}

/// Multi-view evaluation on the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Clips per video, evenly spread.
    pub clips: usize,
    /// 1 (centre) or 3 crops per clip.
    pub crops: usize,
    /// Crop side as a fraction of the shorter frame side.
    pub crop_fraction: f32,
    /// Videos per forward pass.
    pub batch_size: usize,
}

impl EvalConfig {
    pub fn eval_crops(&self) -> Result<EvalCrops> {
        match self.crops {
            1 => Ok(EvalCrops::One),
            3 => Ok(EvalCrops::Three),
            n => bail!("eval.crops = {n}: expected 1 or 3"),
        }
    }
}

impl ExperimentConfig {
    /// Parse TOML text (`origin` names the file in errors), apply `key=value` overrides,
    /// and validate.
    pub fn from_toml(text: &str, origin: &str, overrides: &[String]) -> Result<Self> {
        Self::resolve(text, origin, overrides, None)
    }

    /// Read a TOML file; the bases it extends are looked up beside it first, then among the
    /// built-in ones (`experiments/base/`).
    pub fn from_file(path: &Path, overrides: &[String]) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::resolve(&text, &path.display().to_string(), overrides, path.parent())
    }

    /// Parse `text`, merge it over the bases it extends (looked up in `dir`, then built in),
    /// apply `overrides` and check the result.
    fn resolve(text: &str, origin: &str, overrides: &[String], dir: Option<&Path>) -> Result<Self> {
        let find = |name: &str| -> Result<BaseText> {
            if let Some(path) = dir.map(|d| d.join(format!("{name}.toml")))
                && path.is_file()
            {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                return Ok(BaseText {
                    text,
                    origin: path.display().to_string(),
                });
            }
            let named = registry::find_base(name).with_context(|| {
                format!("no base {name:?} (neither a file beside the experiment nor built in)")
            })?;
            Ok(BaseText {
                text: named.text.to_string(),
                origin: format!("experiments/{}.toml", named.name),
            })
        };
        let mut table = extends::resolve(text, origin, &EXCLUSIVE_KEYS, &find)?;
        if !overrides.is_empty() {
            // Resolve the file first, so that every key a section leaves at its default (the
            // augmentation strengths, the SSL geometry) can be set from the command line too.
            let resolved: Self = toml::Value::Table(table)
                .try_into()
                .with_context(|| format!("reading {origin}"))?;
            table = toml::from_str(&resolved.to_toml()?)
                .with_context(|| format!("re-reading the resolved {origin}"))?;
        }
        for o in overrides {
            apply_override(&mut table, o)?;
        }
        let config: Self = toml::Value::Table(table.clone())
            .try_into()
            .with_context(|| format!("reading {origin} (with overrides {overrides:?})"))?;
        config.reject_unknown_keys(&table, origin)?;
        config
            .validate()
            .with_context(|| format!("checking {origin}"))?;
        Ok(config)
    }

    /// Fail on any key of `given` (the table `self` was read from) that `self` does not hold.
    /// serde's `deny_unknown_fields` catches most, but not inside the sections that flatten
    /// [`Optimisation`] (serde ignores their unknown keys): the typed configuration is written
    /// back as TOML and every given key must be found in it.
    fn reject_unknown_keys(&self, given: &toml::Table, origin: &str) -> Result<()> {
        let toml::Value::Table(known) = toml::Value::try_from(self)? else {
            bail!("the configuration did not serialise to a table");
        };
        let mut unknown = Vec::new();
        unknown_keys(given, &known, "", &mut unknown);
        if let Some((key, section_keys)) = unknown.first() {
            bail!(
                "{origin}: unknown key `{key}` (expected one of: {})",
                section_keys.join(", ")
            );
        }
        Ok(())
    }

    /// The resolved configuration as TOML (written into each run directory).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Value checks that serde's types cannot express.
    pub fn validate(&self) -> Result<()> {
        let d = &self.data;
        d.labeled_amount()?;
        if let Some(f) = d.labeled_fraction
            && !(f > 0.0 && f <= 1.0)
        {
            bail!("data.labeled_fraction = {f}: expected a value in (0, 1]");
        }
        d.train_augment
            .config(d.hflip)
            .validate()
            .map_err(|e| anyhow::anyhow!("data.train_augment: {e}"))?;
        d.ssl_augment
            .config(d.hflip)
            .validate()
            .map_err(|e| anyhow::anyhow!("data.ssl_augment: {e}"))?;
        if d.ssl_frames == 0 || !d.ssl_frames.is_multiple_of(SSL_DENSE_CLIPS) {
            bail!(
                "data.ssl_frames = {}: expected a positive multiple of {SSL_DENSE_CLIPS} (the dense clips start at the quarters of the sparse clip)",
                d.ssl_frames
            );
        }
        positive("data.ssl_stride", d.ssl_stride)?;
        positive("data.workers", d.workers)?;
        positive("data.ssl_size", d.ssl_size as usize)?;
        positive("data.size", d.size as usize)?;
        positive("data.frames", d.frames)?;
        positive("data.stride", d.stride)?;
        match (d.source, &d.synthetic) {
            (DataSource::Synthetic, None) => {
                bail!("data.source = \"synthetic\" needs a [data.synthetic] section")
            }
            (DataSource::Synthetic, Some(s)) => {
                if s.classes < 2 || s.classes % 2 != 0 {
                    bail!(
                        "data.synthetic.classes = {}: expected an even number ≥ 2",
                        s.classes
                    );
                }
                positive("data.synthetic.videos_per_class", s.videos_per_class)?;
                positive(
                    "data.synthetic.test_videos_per_class",
                    s.test_videos_per_class,
                )?;
                positive("data.synthetic.frames", s.frames)?;
                synth::check_distinctive_changes(s.classes, &s.distinctive_changes)
                    .context("data.synthetic")?;
            }
            (_, Some(_)) => bail!("[data.synthetic] is only allowed with source = \"synthetic\""),
            _ => {}
        }
        positive("model.width", self.model.width)?;
        if let Some(p) = self.model.dropout
            && !(0.0..1.0).contains(&p)
        {
            bail!("model.dropout = {p}: expected a probability in [0, 1)");
        }
        self.model
            .input_pixels()
            .validate()
            .map_err(|e| anyhow::anyhow!("model: {e}"))?;
        let mut stages: Vec<(&str, &Optimisation)> = vec![
            ("pretrain", &self.pretrain.optim),
            ("finetune", &self.finetune),
            ("student", &self.student.optim),
            ("baseline", &self.baseline),
        ];
        if let Some(a) = &self.all_labels {
            stages.push(("all_labels", a));
        }
        if self.probe.enabled {
            positive("probe.epochs", self.probe.epochs)?;
            let p = &self.probe;
            if !p.weight_decay_grid.is_empty() && p.folds < 2 {
                bail!(
                    "probe.folds = {}: choosing from probe.weight_decay_grid needs at least 2 folds",
                    p.folds
                );
            }
            if let Some(bad) = p
                .weight_decay_grid
                .iter()
                .find(|w| !(w.is_finite() && **w >= 0.0))
            {
                bail!("probe.weight_decay_grid holds {bad}: expected finite values ≥ 0");
            }
        }
        for (name, o) in stages {
            // Zero epochs would "complete" a stage that trained nothing and report the
            // untrained model as its result.
            positive(&format!("{name}.epochs"), o.epochs)?;
            if o.batch_size < 2 {
                bail!(
                    "{name}.batch_size = {}: batch norm needs at least 2",
                    o.batch_size
                );
            }
            if !(o.lr > 0.0 && o.lr.is_finite()) {
                bail!("{name}.lr = {}: expected a positive number", o.lr);
            }
            if o.weight_decay < 0.0 {
                bail!("{name}.weight_decay must not be negative");
            }
        }
        if self.pretrain.tau.is_nan() || self.pretrain.tau <= 0.0 {
            bail!(
                "pretrain.tau = {}: expected a positive number",
                self.pretrain.tau
            );
        }
        if self.tstr.clips < 2 {
            bail!(
                "tstr.clips = {}: a similarity needs at least 2 clips",
                self.tstr.clips
            );
        }
        positive("tstr.batch_size", self.tstr.batch_size)?;
        if let Some(frames) = self.tstr.frames {
            positive("tstr.frames", frames)?;
        }
        if let Some(stride) = self.tstr.stride {
            positive("tstr.stride", stride)?;
        }
        positive("eval.clips", self.eval.clips)?;
        positive("eval.batch_size", self.eval.batch_size)?;
        self.eval.eval_crops()?;
        if !(self.eval.crop_fraction > 0.0 && self.eval.crop_fraction <= 1.0) {
            bail!(
                "eval.crop_fraction = {}: expected (0, 1]",
                self.eval.crop_fraction
            );
        }
        Ok(())
    }
}

/// Collect into `out` each key path of `given` that `known` lacks, with the keys its section
/// does hold (`prefix` is the dotted path of both tables).
fn unknown_keys(
    given: &toml::Table,
    known: &toml::Table,
    prefix: &str,
    out: &mut Vec<(String, Vec<String>)>,
) {
    for (key, value) in given {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (value, known.get(key)) {
            (_, None) => out.push((path, known.keys().cloned().collect())),
            (toml::Value::Table(g), Some(toml::Value::Table(k))) => unknown_keys(g, k, &path, out),
            _ => {}
        }
    }
}

fn positive(key: &str, v: usize) -> Result<()> {
    if v == 0 {
        bail!("{key} must be at least 1");
    }
    Ok(())
}

/// Set `a.b.c = value` in `table`. The value is parsed as TOML (`3`, `1e-4`, `true`,
/// `"cosine"`, `[1, 2]`); a bare word that is not valid TOML is taken as a string. The key
/// must already exist, so a typo is an error naming it.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment:?}: expected key=value"))?;
    let key = key.trim();
    let raw = raw.trim();
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    let (last, parents) = parts.split_last().expect("split yields one part");
    let mut node = table;
    for (depth, part) in parents.iter().enumerate() {
        node = node
            .get_mut(*part)
            .and_then(|v| v.as_table_mut())
            .with_context(|| {
                format!(
                    "--set {key}: no section {:?} in the experiment",
                    parts[..=depth].join(".")
                )
            })?;
    }
    let optional = OPTIONAL_KEYS.contains(&key);
    if !node.contains_key(*last) && !optional {
        bail!("--set {key}: unknown key (see the experiment's TOML for the keys)");
    }
    node.insert(last.to_string(), value);
    // The two labeled-amount keys exclude each other: setting one drops the other.
    if let Some(other) = EXCLUSIVE_KEYS
        .iter()
        .find_map(|(a, b)| (key == *a).then_some(*b).or((key == *b).then_some(*a)))
    {
        node.remove(other.rsplit('.').next().expect("key has a last part"));
    }
    Ok(())
}

/// Keys that may be absent from a file but still set from the command line.
const OPTIONAL_KEYS: [&str; 7] = [
    "data.labeled_fraction",
    "data.labeled_per_class",
    "model.dropout",
    "model.init_from",
    "model.init_layout",
    "tstr.frames",
    "tstr.stride",
];
/// Pairs of keys of which at most one may be set.
const EXCLUSIVE_KEYS: [(&str, &str); 1] = [("data.labeled_fraction", "data.labeled_per_class")];

/// What the probe reads from a frozen backbone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeReadout {
    /// The global average over time and space, `[F]`: what a fine-tuned classifier reads.
    #[default]
    Pooled,
    /// The [`crate::model::TEMPORAL_SLOTS`] temporal slots concatenated in time order,
    /// `[4·F]`: keeps the order of events, which an average over time discards.
    Slots,
}

/// The clips the probe's features are computed from (evenly spread, centre crop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeClips {
    /// The supervised geometry: `data.frames` at `data.stride`, `data.size` pixels.
    #[default]
    Finetune,
    /// The self-supervised (sparse clip) geometry the teachers were trained on:
    /// `data.ssl_frames` at `data.ssl_stride`, `data.ssl_size` pixels.
    Ssl,
}

/// Linear probe settings (`[probe]`; off unless enabled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    pub enabled: bool,
    /// Centre-crop clips per video whose features are averaged.
    pub clips: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// What is read from each backbone.
    #[serde(default)]
    pub readout: ProbeReadout,
    /// Which clips the features come from.
    #[serde(default)]
    pub clip: ProbeClips,
    /// Randomly initialised backbones probed; the reference "random features" is their mean
    /// (one draw moved by 8 points between two seeds of the same data, more than either
    /// teacher's probe did).
    #[serde(default = "one_draw")]
    pub random_draws: usize,
    /// L2 strengths the probe's is chosen from, per backbone, by cross-validation on the
    /// training videos (the usual linear-evaluation protocol); empty: `weight_decay` alone.
    /// A fixed strength over- or under-regularises backbones alike (at 1e-4 the synthetic
    /// probes fit 83–94 % of their training videos and 45–62 % of the test videos).
    #[serde(default)]
    pub weight_decay_grid: Vec<f64>,
    /// Folds of that cross-validation: whole groups of clips per fold (clips of one group
    /// share a scene), so no fold is validated on near-copies of its training videos.
    #[serde(default = "five_folds")]
    pub folds: usize,
}

fn one_draw() -> usize {
    1
}

fn five_folds() -> usize {
    5
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            clips: 4,
            epochs: 100,
            batch_size: 64,
            lr: 1e-2,
            weight_decay: 1e-4,
            readout: ProbeReadout::default(),
            clip: ProbeClips::default(),
            random_draws: one_draw(),
            weight_decay_grid: Vec::new(),
            folds: five_folds(),
        }
    }
}

impl ProbeConfig {
    /// The probe's classifier training: no warm-up, cosine decay.
    pub fn optimisation(&self) -> Optimisation {
        Optimisation {
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            warmup_epochs: 0,
            weight_decay: self.weight_decay,
            decay: LrDecay::Cosine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> String {
        crate::pipeline::registry::find("synthetic")
            .expect("built-in synthetic experiment")
            .text
            .to_string()
    }

    #[test]
    fn every_builtin_experiment_parses_and_validates() {
        for e in crate::pipeline::registry::EXPERIMENTS {
            ExperimentConfig::from_toml(e.text, e.name, &[])
                .unwrap_or_else(|err| panic!("{}: {err:#}", e.name));
        }
    }

    #[test]
    fn paper_experiments_resolve_through_their_bases() {
        let named = |n: &str| {
            let e = registry::find(n).unwrap();
            ExperimentConfig::from_toml(e.text, e.name, &[]).unwrap()
        };
        let slow = named("ucf101_1pct");
        assert_eq!(slow.data.source, DataSource::Ucf101);
        assert_eq!(slow.data.labeled_fraction, Some(0.01));
        assert_eq!((slow.model.arch, slow.data.size), (Arch::SlowR50, 224));
        assert_eq!(slow.pretrain.optim.epochs, 250, "a key only the base sets");
        let mut r18 = named("ucf101_1pct_r18");
        assert_eq!((r18.model.arch, r18.data.size), (Arch::R3d18Dilated, 112));
        // Apart from the two keys of base/paper_r18 and the description, the same settings.
        r18.model.arch = slow.model.arch;
        r18.data.size = slow.data.size;
        r18.description = slow.description.clone();
        assert_eq!(r18.to_toml().unwrap(), slow.to_toml().unwrap());
        let hmdb = named("hmdb51_40pct");
        assert_eq!(hmdb.data.source, DataSource::Hmdb51);
        assert_eq!(hmdb.data.labeled_fraction, Some(0.4));
    }

    #[test]
    fn a_file_extends_a_base_beside_it_and_may_switch_the_labeled_amount() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mine.toml"), sample()).unwrap();
        let child = dir.path().join("child.toml");
        std::fs::write(
            &child,
            "extends = \"mine\"\n[data]\nlabeled_fraction = 0.5\n[pretrain]\nepochs = 3\n",
        )
        .unwrap();
        let c = ExperimentConfig::from_file(&child, &[]).unwrap();
        assert_eq!(c.pretrain.optim.epochs, 3);
        assert_eq!(c.data.labeled_fraction, Some(0.5));
        assert_eq!(
            c.data.labeled_per_class, None,
            "the base's labeled_per_class is dropped"
        );
        let base = ExperimentConfig::from_toml(&sample(), "s", &[]).unwrap();
        assert_eq!(c.finetune, base.finetune, "the base's other sections stay");
        // A base that is neither beside the file nor built in is named in the error.
        std::fs::write(&child, "extends = \"absent\"\n").unwrap();
        let err = format!(
            "{:#}",
            ExperimentConfig::from_file(&child, &[]).unwrap_err()
        );
        assert!(
            err.contains("absent") && err.contains("child.toml"),
            "{err}"
        );
    }

    #[test]
    fn overrides_are_typed_and_checked() {
        let c = ExperimentConfig::from_toml(
            &sample(),
            "s",
            &[
                "pretrain.epochs=7".into(),
                "data.labeled_fraction=0.5".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.pretrain.optim.epochs, 7);
        assert_eq!(c.data.labeled_fraction, Some(0.5));
        assert_eq!(c.data.labeled_per_class, None);

        let err =
            ExperimentConfig::from_toml(&sample(), "s", &["pretrain.epoch=7".into()]).unwrap_err();
        assert!(format!("{err:#}").contains("pretrain.epoch"), "{err:#}");
        let err = ExperimentConfig::from_toml(&sample(), "s", &["pretrain.epochs=\"x\"".into()])
            .unwrap_err();
        assert!(format!("{err:#}").contains("epochs"), "{err:#}");
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let text = format!("{}\nbogus = 1\n", sample());
        let err = ExperimentConfig::from_toml(&text, "file.toml", &[]).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("bogus") && msg.contains("file.toml"), "{msg}");
    }

    #[test]
    fn unknown_keys_in_sections_that_share_the_optimisation_keys_are_errors() {
        // [pretrain] and [student] flatten `Optimisation`: serde alone would ignore these.
        for (section, known) in [("pretrain", "tau"), ("student", "init"), ("finetune", "lr")] {
            let text = sample().replace(
                &format!("[{section}]\n"),
                &format!("[{section}]\nlearning_rate = 1\n"),
            );
            assert_ne!(text, sample(), "the sample has a [{section}] section");
            let err = ExperimentConfig::from_toml(&text, "file.toml", &[]).unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.contains("learning_rate") && msg.contains("file.toml") && msg.contains(known),
                "{msg}"
            );
        }
        let c = ExperimentConfig::from_toml(&sample(), "s", &[]).unwrap();
        assert!(c.pretrain.optim.epochs > 0 && c.student.optim.lr > 0.0);
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = ExperimentConfig::from_toml(&sample(), "s", &[]).unwrap();
        let again = ExperimentConfig::from_toml(&c.to_toml().unwrap(), "again", &[]).unwrap();
        assert_eq!(c, again);
    }

    #[test]
    fn defaulted_augmentation_and_geometry_keys_are_settable() {
        // The demo's file names no [data.ssl_augment] section and no SSL geometry.
        let c = ExperimentConfig::from_toml(
            &sample(),
            "s",
            &[
                "data.ssl_augment.erase_prob=0.0".into(),
                "data.ssl_augment.crop_scale=[0.9, 1.0]".into(),
                "data.ssl_stride=2".into(),
                "data.train_augment.erase_count=2".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.data.ssl_augment.erase_prob, 0.0);
        assert_eq!(c.data.ssl_augment.crop_scale, [0.9, 1.0]);
        assert_eq!(c.data.ssl_stride, 2);
        assert_eq!(c.data.ssl_frames, SSL_CLIP_FRAMES);
        assert_eq!(c.data.train_augment.erase_count, 2);
        let bad = |o: &str| {
            format!(
                "{:#}",
                ExperimentConfig::from_toml(&sample(), "s", &[o.into()]).unwrap_err()
            )
        };
        let msg = bad("data.ssl_frames=10");
        assert!(msg.contains("data.ssl_frames"), "{msg}");
        let msg = bad("data.ssl_augment.jitter_prob=1.5");
        assert!(
            msg.contains("data.ssl_augment") && msg.contains("jitter_prob"),
            "{msg}"
        );
        let msg = bad("data.ssl_augment.jiter_prob=0.5");
        assert!(msg.contains("jiter_prob"), "{msg}");
    }

    #[test]
    fn probe_readout_clips_and_draws_are_settings() {
        let c = ExperimentConfig::from_toml(&sample(), "s", &[]).unwrap();
        assert_eq!(
            (c.probe.readout, c.probe.clip),
            (ProbeReadout::Pooled, ProbeClips::Finetune)
        );
        let c = ExperimentConfig::from_toml(
            &sample(),
            "s",
            &[
                "probe.readout=\"slots\"".into(),
                "probe.clip=\"ssl\"".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.probe.readout, c.probe.clip),
            (ProbeReadout::Slots, ProbeClips::Ssl)
        );
        assert_eq!(c.probe.random_draws, 1, "one random backbone unless asked");
        let c =
            ExperimentConfig::from_toml(&sample(), "s", &["probe.random_draws=5".into()]).unwrap();
        assert_eq!(c.probe.random_draws, 5);
        let err = ExperimentConfig::from_toml(&sample(), "s", &["probe.readout=\"slot\"".into()])
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("probe") && msg.contains("slot"), "{msg}");
    }

    #[test]
    fn a_probe_weight_decay_grid_needs_folds_and_sane_values() {
        let with = |sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            ExperimentConfig::from_toml(&sample(), "s", &sets)
        };
        let c = with(&["probe.weight_decay_grid=[1e-4, 1e-2]"]).unwrap();
        assert_eq!((c.probe.weight_decay_grid.len(), c.probe.folds), (2, 5));
        let msg = |sets: &[&str]| format!("{:#}", with(sets).unwrap_err());
        let one_fold = msg(&["probe.weight_decay_grid=[1e-4]", "probe.folds=1"]);
        assert!(one_fold.contains("probe.folds = 1"), "{one_fold}");
        let negative = msg(&["probe.weight_decay_grid=[1e-4, -1.0]"]);
        assert!(
            negative.contains("weight_decay_grid holds -1"),
            "{negative}"
        );
        // Without a grid the folds are not used, so one is not an error.
        with(&["probe.folds=1"]).unwrap();
    }

    #[test]
    fn score_clips_take_the_supervised_geometry_unless_given_their_own() {
        let with = |name: &str, sets: &[&str]| {
            let file = crate::pipeline::registry::find(name).unwrap();
            let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
            ExperimentConfig::from_toml(file.text, name, &sets)
        };
        // The demo gives the score no geometry of its own: it follows `data`.
        let demo = with("synthetic", &["data.frames=8", "data.stride=3"]).unwrap();
        assert_eq!(demo.tstr.clip_geometry(&demo.data), (8, 3));
        // Absent keys stay absent in the written configuration (no drift for old runs).
        let written: toml::Table = demo.to_toml().unwrap().parse().unwrap();
        let tstr = written["tstr"].as_table().unwrap();
        assert!(!tstr.contains_key("frames") && !tstr.contains_key("stride"));
        let own = with("synthetic", &["tstr.stride=2", "tstr.frames=16"]).unwrap();
        assert_eq!(own.tstr.clip_geometry(&own.data), (16, 2));
        // The claim's score clips stay short while its supervised clips span the video.
        let claim = with("synthetic_claim", &[]).unwrap();
        assert_eq!((claim.data.frames, claim.data.stride), (8, 8));
        assert_eq!(claim.tstr.clip_geometry(&claim.data), (8, 2));
        let err = format!("{:#}", with("synthetic", &["tstr.stride=0"]).unwrap_err());
        assert!(err.contains("tstr.stride"), "{err}");
    }

    #[test]
    fn distinctive_changes_are_a_setting_checked_by_name_and_count() {
        let claim = crate::pipeline::registry::find("synthetic_claim").unwrap();
        let with = |value: &str| {
            let set = format!("data.synthetic.distinctive_changes={value}");
            ExperimentConfig::from_toml(claim.text, "synthetic_claim", &[set])
        };
        let default = ExperimentConfig::from_toml(claim.text, "synthetic_claim", &[]).unwrap();
        let changes = |c: &ExperimentConfig| {
            c.data
                .synthetic
                .as_ref()
                .unwrap()
                .distinctive_changes
                .clone()
        };
        assert_eq!(
            changes(&default),
            [
                DistinctiveChange::MoveHorizontal,
                DistinctiveChange::Posture
            ]
        );
        let moves = with(r#"["move_horizontal", "move_vertical"]"#).unwrap();
        assert_eq!(
            changes(&moves),
            [
                DistinctiveChange::MoveHorizontal,
                DistinctiveChange::MoveVertical
            ]
        );
        let err = format!("{:#}", with(r#"["move_diagonal", "scale"]"#).unwrap_err());
        assert!(err.contains("move_diagonal"), "{err}");
        // 8 classes: 2 pairs needed, and no pair twice.
        for short in [r#"["scale"]"#, r#"["scale", "scale"]"#] {
            let err = format!("{:#}", with(short).unwrap_err());
            assert!(
                err.contains("data.synthetic") && err.contains("distinctive_changes"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_claim_experiment_checks_its_prerequisites() {
        let claim = crate::pipeline::registry::find("synthetic_claim").unwrap();
        let c = ExperimentConfig::from_toml(claim.text, "synthetic_claim", &[]).unwrap();
        assert_eq!(c.checks, Some(ChecksConfig::default()));
        assert!(c.all_labels.is_some() && c.probe.enabled);
        let s = c.data.synthetic.as_ref().unwrap();
        // No mirror-padded self-supervised clip: the window fits every video.
        let window = (c.data.ssl_frames - 1) * c.data.ssl_stride + 1;
        assert!(s.frames >= window, "{} frames < window {window}", s.frames);
        assert!(s.test_videos_per_class >= ChecksConfig::default().min_test_videos_per_class);
    }
}
