//! Glue between our stages and burn-train's `Learner`: an atomic checkpoint recorder, the
//! warm-up learning-rate schedule, a plain-line renderer for non-terminals, resume detection,
//! and [`fit`], which every training stage calls.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use burn::data::dataloader::DataLoader;
use burn::module::AutodiffModule;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::{AdamConfig, LearningRate};
use burn::record::{
    FileRecorder, FullPrecisionSettings, NamedMpkFileRecorder, Recorder, RecorderError,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::{LearningRateMetric, MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainStep};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::{LrDecay, Optimisation};
use super::metrics::{StatMetric, StepOutput, ThroughputMetric};
use super::runlog::RunLog;

/// Checkpoints kept per stage (the newest; older ones are deleted as training goes).
const CHECKPOINTS_KEPT: usize = 2;
/// Seconds between two progress lines on a non-terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Burn's checkpoint sub-directory and file prefixes.
const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// Burn's named-MessagePack recorder, but each file is written under a temporary name and
/// renamed into place: a run killed mid-write never leaves a truncated checkpoint that a
/// resume would then fail to read.
#[derive(Debug, Default, Clone)]
pub struct AtomicRecorder {
    inner: NamedMpkFileRecorder<FullPrecisionSettings>,
}

impl<B: Backend> Recorder<B> for AtomicRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        let extension = <Self as FileRecorder<B>>::file_extension();
        let final_path = file.with_extension(extension);
        let tmp = crate::checkpoint::partial_path(&final_path);
        Recorder::<B>::save_item(&self.inner, item, tmp.clone())?;
        std::fs::rename(tmp.with_extension(extension), &final_path)
            .map_err(|e| RecorderError::Unknown(format!("{}: {e}", final_path.display())))
    }

    fn load_item<I: DeserializeOwned>(&self, file: &mut PathBuf) -> Result<I, RecorderError> {
        Recorder::<B>::load_item(&self.inner, file)
    }
}

impl<B: Backend> FileRecorder<B> for AtomicRecorder {
    fn file_extension() -> &'static str {
        "mpk"
    }
}

/// Linear warm-up from lr/`warmup` to lr over `warmup` iterations, then constant or cosine
/// decay to zero at `total`. Stepped once per iteration by the Learner; its record is the
/// iteration count, so a resumed run continues the same curve.
#[derive(Debug, Clone, Copy)]
pub struct WarmupSchedule {
    pub lr: f64,
    pub warmup: usize,
    pub total: usize,
    pub decay: LrDecay,
    pub iteration: usize,
}

impl WarmupSchedule {
    pub fn new(lr: f64, warmup: usize, total: usize, decay: LrDecay) -> Self {
        Self {
            lr,
            warmup,
            total,
            decay,
            iteration: 0,
        }
    }

    /// The rate of 1-based iteration `i`.
    pub fn at(&self, i: usize) -> f64 {
        if i <= self.warmup {
            return self.lr * i as f64 / self.warmup as f64;
        }
        match self.decay {
            LrDecay::Constant => self.lr,
            LrDecay::Cosine => {
                let span = self.total.saturating_sub(self.warmup).max(1) as f64;
                let t = ((i - self.warmup) as f64 / span).min(1.0);
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }
}

impl LrScheduler for WarmupSchedule {
    type Record<B: Backend> = usize;

    fn step(&mut self) -> LearningRate {
        self.iteration += 1;
        self.at(self.iteration)
    }

    fn to_record<B: Backend>(&self) -> usize {
        self.iteration
    }

    fn load_record<B: Backend>(mut self, record: usize) -> Self {
        self.iteration = record;
        self
    }
}

/// The newest epoch whose model, optimizer and scheduler checkpoints are all on disk.
pub fn latest_checkpoint(stage_dir: &Path) -> Option<usize> {
    let dir = stage_dir.join(CHECKPOINT_DIR);
    let entries = std::fs::read_dir(&dir).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let epoch = name.strip_prefix("model-")?.strip_suffix(".mpk")?;
            epoch.parse::<usize>().ok()
        })
        .filter(|epoch| {
            CHECKPOINT_PARTS
                .iter()
                .all(|p| dir.join(format!("{p}-{epoch}.mpk")).is_file())
        })
        .max()
}

/// Metrics shown as their latest value rather than the epoch's mean.
const LATEST_VALUE_METRICS: [&str; 1] = ["Learning Rate"];

/// Prints one line per [`LOG_INTERVAL`] and one at each epoch's end, and appends them to the
/// run's log — what a CI log or `nohup` file wants instead of a TUI. Values are means over
/// the epoch so far (burn-train hands renderers per-batch values), the learning rate its
/// latest value.
pub struct LineRenderer {
    stage: String,
    log: RunLog,
    last: Instant,
    names: Vec<(MetricId, String)>,
    /// (name, sum, count) since the epoch started.
    values: Vec<(String, f64, usize)>,
}

impl LineRenderer {
    pub fn new(stage: &str, log: RunLog) -> Self {
        Self {
            stage: stage.to_string(),
            log,
            last: Instant::now(),
            names: Vec::new(),
            values: Vec::new(),
        }
    }

    fn record(&mut self, state: MetricState) {
        if let MetricState::Numeric(entry, value) = state {
            let name = self
                .names
                .iter()
                .find(|(id, _)| *id == entry.metric_id)
                .map(|(_, n)| n.clone())
                .unwrap_or_else(|| "metric".to_string());
            let v = match value {
                NumericEntry::Value(v) => v,
                NumericEntry::Aggregated {
                    aggregated_value, ..
                } => aggregated_value,
            };
            let latest = LATEST_VALUE_METRICS.contains(&name.as_str());
            match self.values.iter_mut().find(|(n, ..)| *n == name) {
                Some(slot) if latest => *slot = (name, v, 1),
                Some(slot) => {
                    slot.1 += v;
                    slot.2 += 1;
                }
                None => self.values.push((name, v, 1)),
            }
        }
    }

    fn line(&mut self, split: &str, item: &TrainingProgress) {
        let end_of_epoch = item
            .progress
            .as_ref()
            .is_some_and(|p| p.items_processed >= p.items_total);
        if !end_of_epoch && self.last.elapsed() < LOG_INTERVAL {
            return;
        }
        self.last = Instant::now();
        let progress = item
            .progress
            .as_ref()
            .map(|p| format!(" {}/{}", p.items_processed, p.items_total))
            .unwrap_or_default();
        let values: Vec<String> = self
            .values
            .iter()
            .map(|(n, sum, count)| format!("{n}={}", format_value(sum / *count.max(&1) as f64)))
            .collect();
        self.log.line(&format!(
            "[{}] {split} epoch {}/{}{progress} {}",
            self.stage,
            item.global_progress.items_processed,
            item.global_progress.items_total,
            values.join(" ")
        ));
        if end_of_epoch {
            self.values.clear();
        }
    }
}

fn format_value(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

impl MetricsRendererTraining for LineRenderer {
    fn update_train(&mut self, state: MetricState) {
        self.record(state);
    }

    fn update_valid(&mut self, state: MetricState) {
        self.record(state);
    }

    fn render_train(&mut self, item: TrainingProgress, _progress: Vec<ProgressType>) {
        self.line("train", &item);
    }

    fn render_valid(&mut self, item: TrainingProgress, _progress: Vec<ProgressType>) {
        self.line("valid", &item);
    }
}

impl MetricsRendererEvaluation for LineRenderer {
    fn update_test(&mut self, _name: EvaluationName, state: MetricState) {
        self.record(state);
    }

    fn render_test(&mut self, item: EvaluationProgress, _progress: Vec<ProgressType>) {
        self.line("test", &TrainingProgress::from(&item));
    }
}

impl MetricsRenderer for LineRenderer {
    fn manual_close(&mut self) {}

    fn register_metric(&mut self, definition: MetricDefinition) {
        self.names.push((definition.metric_id, definition.name));
    }
}

/// What one training stage needs besides its model and data.
pub struct FitSpec<'a> {
    /// Stage name, for logs.
    pub stage: &'a str,
    /// Burn's directory for this stage (checkpoints, metric logs).
    pub dir: &'a Path,
    /// Optimisation settings of the stage.
    pub optim: &'a dyn Optimisation,
    /// Training iterations per epoch (for the schedule).
    pub iterations_per_epoch: usize,
    /// Names of the loss components the step reports (besides the total).
    pub components: &'a [&'static str],
    /// Whether the step reports an accuracy.
    pub accuracy: bool,
    pub log: &'a RunLog,
}

/// Train `model` with burn-train's `Learner` (Adam, [`WarmupSchedule`]), checkpointing every
/// epoch atomically and resuming from the newest complete checkpoint in `spec.dir`.
/// Returns the trained model without autodiff.
pub fn fit<B, M>(
    model: M,
    spec: &FitSpec<'_>,
    train: Arc<dyn DataLoader<B, <M as TrainStep>::Input>>,
    valid: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
) -> Result<M::InnerModule>
where
    B: AutodiffBackend,
    M: TrainStep<Output = StepOutput<B>> + AutodiffModule<B> + core::fmt::Display + 'static,
    M::InnerModule: InferenceStep<Output = StepOutput<B::InnerBackend>>,
{
    std::fs::create_dir_all(spec.dir)
        .with_context(|| format!("creating {}", spec.dir.display()))?;
    let o = spec.optim;
    let mut adam = AdamConfig::new();
    if o.weight_decay() > 0.0 {
        adam = adam.with_weight_decay(Some(WeightDecayConfig::new(o.weight_decay() as f32)));
    }
    let schedule = WarmupSchedule::new(
        o.lr(),
        o.warmup_epochs() * spec.iterations_per_epoch,
        o.epochs() * spec.iterations_per_epoch,
        o.decay(),
    );
    let learner = Learner::new(model, adam.init(), schedule);

    let mut training = SupervisedTraining::new(spec.dir, train, valid)
        .with_file_checkpointer(AtomicRecorder::default())
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(CHECKPOINTS_KEPT))
        .num_epochs(o.epochs())
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(ThroughputMetric::new())
        .metric_train_numeric(StatMetric::total())
        .metric_valid_numeric(StatMetric::total());
    for name in spec.components {
        training = training.metric_train_numeric(StatMetric::component(name));
    }
    if spec.accuracy {
        training = training
            .metric_train_numeric(StatMetric::accuracy())
            .metric_valid_numeric(StatMetric::accuracy());
    }
    if !std::io::stdout().is_terminal() {
        training = training.renderer(LineRenderer::new(spec.stage, spec.log.clone()));
    }
    if let Some(epoch) = latest_checkpoint(spec.dir) {
        spec.log.line(&format!(
            "[{}] resuming from the checkpoint of epoch {epoch}/{}",
            spec.stage,
            o.epochs()
        ));
        training = training.checkpoint(epoch);
    }
    let result = training.launch(learner);
    Ok(result.model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_constant_or_cosine() {
        let s = WarmupSchedule::new(1.0, 4, 12, LrDecay::Constant);
        let lrs: Vec<f64> = (1..=6).map(|i| s.at(i)).collect();
        assert_eq!(lrs, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
        let c = WarmupSchedule::new(1.0, 4, 12, LrDecay::Cosine);
        assert!((c.at(8) - 0.5).abs() < 1e-12);
        assert!(c.at(12).abs() < 1e-12);
        let none = WarmupSchedule::new(0.1, 0, 10, LrDecay::Constant);
        assert_eq!(none.at(1), 0.1);
    }

    #[test]
    fn latest_checkpoint_needs_all_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join(CHECKPOINT_DIR);
        std::fs::create_dir_all(&c).unwrap();
        for p in CHECKPOINT_PARTS {
            std::fs::write(c.join(format!("{p}-1.mpk")), b"x").unwrap();
        }
        std::fs::write(c.join("model-2.mpk"), b"x").unwrap();
        std::fs::write(c.join("optim-2.mpk"), b"x").unwrap();
        assert_eq!(latest_checkpoint(dir.path()), Some(1));
        std::fs::write(c.join("scheduler-2.mpk"), b"x").unwrap();
        assert_eq!(latest_checkpoint(dir.path()), Some(2));
    }
}
