//! Glue between our stages and burn-train's `Learner`: an atomic checkpoint recorder, the
//! warm-up learning-rate schedule, a plain-line renderer for non-terminals, resume detection,
//! and [`fit`], which every training stage calls.
//!
//! # Several devices
//!
//! Given more than one device, [`fit`] trains with burn-train's multi-device strategy
//! (`ExecutionStrategy::MultiDevice`, the optimiser on the first device): every step, each
//! device runs the model on its own batch and the first sums their gradients. Batch sizes in
//! the configuration stay **global**: each device takes `batch_size / devices` videos
//! ([`device_batch`]), the loader gives device `d` the `d`-th part of every global batch
//! (`crate::data::loader`), and each device's gradient is scaled by `1 / devices`, so the sum
//! is the gradient of the mean loss over the global batch — the step a single device takes
//! on the same batch. What differs is batch normalisation, whose statistics are each
//! device's own (as PyTorch's `DistributedDataParallel` without `SyncBatchNorm`).
//!
//! # Several nodes
//!
//! In a multi-node run (`FitSpec::nodes`, [`crate::nodes`]) each node trains on its part of
//! every global batch the same way, its gradient scaled by `1 / nodes` as well, and every
//! step sums the gradients over the nodes before the optimiser runs; the model is averaged
//! over the nodes before training and after it.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use burn::data::dataloader::DataLoader;
use burn::module::AutodiffModule;
use burn::module::{Module, ModuleDisplay, ModuleVisitor, Param, ParamId};
use burn::optim::lr_scheduler::LrScheduler;
use burn::optim::{GradientsParams, LearningRate};
use burn::record::{
    FileRecorder, FullPrecisionSettings, NamedMpkFileRecorder, Recorder, RecorderError,
};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use burn::train::checkpoint::KeepLastNCheckpoints;
use burn::train::metric::{LearningRateMetric, MetricDefinition, MetricId, NumericEntry};
use burn::train::renderer::{
    EvaluationName, EvaluationProgress, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining, ProgressType, TrainingProgress,
};
use burn::train::{
    ExecutionStrategy, InferenceStep, Interrupter, Learner, MultiDeviceOptim, SupervisedTraining,
    TrainOutput, TrainStep, TrainingStrategy,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::burn_log::{BURN_LOG_FILE, BurnLog, StageLogInstaller};
use super::config::{LOSS_THRESHOLDS, LrDecay, Optimisation, PLATEAU_FACTOR, PLATEAU_PATIENCE};
use super::metric_files::{LATEST_VALUE_METRICS, MetricFiles};
use super::runlog::RunLog;
use super::train_metrics::{StatMetric, StepOutput, ThroughputMetric};
use crate::checkpoint::ModelBytesRecorder;
use crate::disk::Disk;
use crate::nodes::NodePeer;

/// Checkpoints kept per stage (the newest; older ones are deleted as training goes).
const CHECKPOINTS_KEPT: usize = 2;
/// Seconds between two progress lines on a non-terminal.
const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Burn's checkpoint sub-directory and file prefixes.
const CHECKPOINT_DIR: &str = "checkpoint";
const CHECKPOINT_PARTS: [&str; 3] = ["model", "optim", "scheduler"];

/// Burn's named-MessagePack recorder, but each file is written through a [`Disk`] (a
/// temporary name, flushed, renamed into place): a run killed mid-write never leaves a
/// truncated checkpoint that a resume would then fail to read, and a failed write is an error
/// naming the file (it stops the Learner, and [`fit`] reports it).
#[derive(Debug, Default, Clone)]
pub struct AtomicRecorder {
    inner: NamedMpkFileRecorder<FullPrecisionSettings>,
    disk: Disk,
    /// The first failed write, said plainly: burn-train passes the error on wrapped in its
    /// own debug formatting (`Recorder error: Unknown("…")`).
    failure: Arc<Mutex<Option<String>>>,
}

impl<B: Backend> Recorder<B> for AtomicRecorder {
    type Settings = FullPrecisionSettings;
    type RecordArgs = PathBuf;
    type RecordOutput = ();
    type LoadArgs = PathBuf;

    fn save_item<I: Serialize>(&self, item: I, file: PathBuf) -> Result<(), RecorderError> {
        let extension = <Self as FileRecorder<B>>::file_extension();
        let final_path = file.with_extension(extension);
        let bytes = Recorder::<B>::save_item(&ModelBytesRecorder::new(), item, ())?;
        self.disk.write_atomic(&final_path, &bytes).map_err(|e| {
            if let Ok(mut first) = self.failure.lock() {
                first.get_or_insert_with(|| e.to_string());
            }
            RecorderError::Unknown(format!("{e:#}"))
        })
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

/// Each training step's loss, shared between the step ([`Monitored`]) and a loss-driven
/// schedule (plateau or loss threshold, [`WarmupSchedule`]): burn-train hands step outputs to
/// its metrics on another thread, so the schedule cannot read them there in step with training.
#[derive(Debug, Clone, Default)]
pub struct LossMonitor {
    /// (sum, count) of the losses since the schedule last read them; `None`: not recording.
    losses: Option<Arc<Mutex<(f64, usize)>>>,
}

impl LossMonitor {
    /// A monitor that records (for a loss-driven schedule).
    pub fn recording() -> Self {
        Self {
            losses: Some(Arc::new(Mutex::new((0.0, 0)))),
        }
    }

    fn record<B: Backend>(&self, loss: &Tensor<B, 1>) {
        if let Some(losses) = &self.losses {
            let value: f64 = loss.clone().into_scalar().elem();
            let mut l = losses.lock().expect("loss monitor poisoned");
            l.0 += value;
            l.1 += 1;
        }
    }

    /// The mean loss since the last call (`None` if nothing was recorded), then reset.
    fn take_mean(&self) -> Option<f64> {
        let losses = self.losses.as_ref()?;
        let mut l = losses.lock().expect("loss monitor poisoned");
        let mean = (l.1 > 0).then(|| l.0 / l.1 as f64);
        *l = (0.0, 0);
        mean
    }
}

/// A stage's training step as `fit` hands it to the Learner: the step itself plus the
/// [`LossMonitor`] of the schedule. Checkpoints hold it; `fit` returns `model`.
#[derive(Module, Debug)]
pub struct Monitored<B: Backend, M: Module<B>> {
    pub model: M,
    #[module(skip)]
    monitor: LossMonitor,
    /// Factor of every gradient: `1 / (devices × nodes)` (module docs).
    #[module(skip)]
    grad_scale: f64,
    /// In a multi-node run: the gradients are summed over the nodes every step.
    #[module(skip)]
    nodes: Option<NodePeer>,
    #[module(skip)]
    backend: PhantomData<B>,
}

/// Multiplies the gradient of each parameter it visits by `factor`, once per parameter id: a
/// step's module can hold one parameter twice (the student starts from the pre-training
/// file its distinctive teacher was fine-tuned from, and loaded parameters keep their ids).
struct ScaleGradients<'a, B> {
    grads: &'a mut GradientsParams,
    factor: f64,
    scaled: HashSet<ParamId>,
    backend: PhantomData<B>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaleGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if !self.scaled.insert(param.id) {
            return;
        }
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register::<B::InnerBackend, D>(param.id, grad.mul_scalar(self.factor));
        }
    }
}

/// The per-device batch of a global `batch_size` split over `devices` (those of every node).
pub fn device_batch(stage: &str, batch_size: usize, devices: usize) -> Result<usize> {
    if devices == 0 || !batch_size.is_multiple_of(devices) {
        bail!(
            "[{stage}] batch_size = {batch_size} does not split over {devices} devices (of all nodes): give a multiple of {devices}"
        );
    }
    Ok(batch_size / devices)
}

impl<B: AutodiffBackend, M> TrainStep for Monitored<B, M>
where
    M: TrainStep<Output = StepOutput<B>> + AutodiffModule<B>,
{
    type Input = M::Input;
    type Output = StepOutput<B>;

    fn step(&self, item: M::Input) -> TrainOutput<StepOutput<B>> {
        let mut out = self.model.step(item);
        self.monitor.record(&out.item.total);
        if self.grad_scale != 1.0 {
            self.model.visit(&mut ScaleGradients {
                grads: &mut out.grads,
                factor: self.grad_scale,
                scaled: HashSet::new(),
                backend: PhantomData,
            });
        }
        if let Some(peer) = self.nodes
            && let Err(e) = peer.sum_gradients(&self.model, &mut out.grads)
        {
            // A step cannot return an error: burn-train's worker ends with this message.
            panic!("{e:#}");
        }
        out
    }
}

impl<B: Backend, M> InferenceStep for Monitored<B, M>
where
    M: InferenceStep<Output = StepOutput<B>> + Module<B>,
{
    type Input = M::Input;
    type Output = StepOutput<B>;

    fn step(&self, item: M::Input) -> StepOutput<B> {
        self.model.step(item)
    }
}

/// Linear warm-up from lr/`warmup` to lr over `warmup` iterations, then constant, cosine
/// decay to zero at `total`, or a rule on the epoch's mean training loss (reduce-on-plateau,
/// or the release's loss thresholds).
/// Stepped once per iteration by the Learner; its record is its whole state (iteration,
/// best loss, epochs without improvement, reductions), so a resumed run continues the curve.
#[derive(Debug, Clone)]
pub struct WarmupSchedule {
    pub lr: f64,
    pub warmup: usize,
    pub total: usize,
    pub decay: LrDecay,
    pub iteration: usize,
    /// Iterations per epoch (where a plateau schedule reads the epoch's mean loss).
    pub iterations_per_epoch: usize,
    monitor: LossMonitor,
    plateau: PlateauState,
}

/// What the loss-driven schedules remember.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PlateauState {
    best: f64,
    bad_epochs: usize,
    reductions: usize,
    /// The loss-threshold rule's current factor of the base rate.
    factor: f64,
}

impl Default for PlateauState {
    fn default() -> Self {
        Self {
            best: f64::INFINITY,
            bad_epochs: 0,
            reductions: 0,
            factor: 1.0,
        }
    }
}

impl PlateauState {
    /// The release's loss-threshold rule ([`LOSS_THRESHOLDS`]).
    fn threshold(&mut self, loss: f64) {
        if let Some(&(_, _, factor)) = LOSS_THRESHOLDS
            .iter()
            .find(|(low, high, _)| (*low..*high).contains(&loss))
        {
            self.factor = factor;
        }
    }

    /// The release's rule: a new best resets the count, a worse epoch adds one; after
    /// [`PLATEAU_PATIENCE`] such epochs the rate is reduced once more and the count restarts.
    fn end_epoch(&mut self, loss: f64) {
        if loss < self.best {
            self.best = loss;
            self.bad_epochs = 0;
        } else if loss > self.best {
            self.bad_epochs += 1;
            if self.bad_epochs >= PLATEAU_PATIENCE {
                self.reductions += 1;
                self.bad_epochs = 0;
            }
        }
    }
}

impl WarmupSchedule {
    pub fn new(lr: f64, warmup: usize, total: usize, decay: LrDecay) -> Self {
        Self {
            lr,
            warmup,
            total,
            decay,
            iteration: 0,
            iterations_per_epoch: 1,
            monitor: LossMonitor::default(),
            plateau: PlateauState::default(),
        }
    }

    /// A plateau schedule reads the epoch's losses from `monitor` every `iterations` steps.
    pub fn with_epochs(mut self, iterations: usize, monitor: LossMonitor) -> Self {
        self.iterations_per_epoch = iterations.max(1);
        self.monitor = monitor;
        self
    }

    /// The rate of 1-based iteration `i` (for a plateau schedule: given its reductions so far).
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
            LrDecay::Plateau => self.lr * PLATEAU_FACTOR.powi(self.plateau.reductions as i32),
            LrDecay::LossThreshold => self.lr * self.plateau.factor,
        }
    }
}

impl LrScheduler for WarmupSchedule {
    /// (iteration, best epoch loss, epochs without improvement, reductions, loss-threshold
    /// factor).
    type Record<B: Backend> = (usize, f64, usize, usize, f64);

    fn step(&mut self) -> LearningRate {
        // The first step of a new epoch: the previous epoch's losses are all recorded.
        if self.iteration > 0
            && self.iteration.is_multiple_of(self.iterations_per_epoch)
            && let Some(loss) = self.monitor.take_mean()
        {
            match self.decay {
                LrDecay::Plateau => self.plateau.end_epoch(loss),
                LrDecay::LossThreshold => self.plateau.threshold(loss),
                LrDecay::Constant | LrDecay::Cosine => {}
            }
        }
        self.iteration += 1;
        self.at(self.iteration)
    }

    fn to_record<B: Backend>(&self) -> Self::Record<B> {
        let p = self.plateau;
        (self.iteration, p.best, p.bad_epochs, p.reductions, p.factor)
    }

    fn load_record<B: Backend>(mut self, record: Self::Record<B>) -> Self {
        let (iteration, best, bad_epochs, reductions, factor) = record;
        self.iteration = iteration;
        self.plateau = PlateauState {
            best,
            bad_epochs,
            reductions,
            factor,
        };
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

/// Prints one line every `LOG_INTERVAL` (10 s) and one at each epoch's end, and appends them
/// to the run's log — what a CI log or `nohup` file wants instead of a TUI. Values are means over
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
    pub optim: Optimisation,
    /// Training iterations per epoch (for the schedule).
    pub iterations_per_epoch: usize,
    /// Names of the loss components the step reports (besides the total).
    pub components: &'a [&'static str],
    /// Whether the step reports an accuracy.
    pub accuracy: bool,
    pub log: &'a RunLog,
    /// Where checkpoints are written.
    pub disk: &'a Disk,
    /// The run's sink for Burn's application log (pointed at `dir/experiment.log`).
    pub burn_log: &'a BurnLog,
    /// In a multi-node run: this node (data-parallel over the nodes; `None`: this process
    /// alone).
    pub nodes: Option<NodePeer>,
}

/// Train `model` with burn-train's `Learner` (Adam, [`WarmupSchedule`]), checkpointing every
/// epoch atomically and resuming from the newest complete checkpoint in `spec.dir`, on one
/// device or data-parallel on several (module docs; `train` then yields per-device batches).
/// Returns the trained model without autodiff.
pub fn fit<B, M>(
    model: M,
    spec: &FitSpec<'_>,
    devices: &[B::Device],
    train: Arc<dyn DataLoader<B, <M as TrainStep>::Input>>,
    valid: Arc<dyn DataLoader<B::InnerBackend, <M::InnerModule as InferenceStep>::Input>>,
) -> Result<M::InnerModule>
where
    B: AutodiffBackend,
    M: TrainStep<Output = StepOutput<B>> + AutodiffModule<B> + ModuleDisplay + 'static,
    M::InnerModule: InferenceStep<Output = StepOutput<B::InnerBackend>> + ModuleDisplay,
{
    std::fs::create_dir_all(spec.dir)
        .with_context(|| format!("creating {}", spec.dir.display()))?;
    let o = spec.optim;
    let adam = crate::optim::adam(o.weight_decay);
    let monitor = match o.decay {
        LrDecay::Plateau | LrDecay::LossThreshold => LossMonitor::recording(),
        _ => LossMonitor::default(),
    };
    let schedule = WarmupSchedule::new(
        o.lr,
        o.warmup_epochs * spec.iterations_per_epoch,
        o.epochs * spec.iterations_per_epoch,
        o.decay,
    )
    .with_epochs(spec.iterations_per_epoch, monitor.clone());
    let resume = latest_checkpoint(spec.dir);
    let mut model = model;
    if let Some(peer) = spec.nodes {
        let device = devices.first().context("no device to train on")?;
        peer.check_agree::<B::InnerBackend>(
            &format!("[{}] the checkpoint to resume from", spec.stage),
            &[resume.map_or(0, |epoch| epoch as u32)],
            device,
        )?;
        model = peer.mean_autodiff_module(model)?;
    }
    let nodes = spec.nodes.map_or(1, |peer| peer.nodes);
    let model = Monitored {
        model,
        monitor,
        grad_scale: 1.0 / (devices.len().max(1) * nodes) as f64,
        nodes: spec.nodes,
        backend: PhantomData,
    };
    let learner = Learner::new(model, adam.init(), schedule);

    let interrupter = Interrupter::new();
    let recorder = AtomicRecorder {
        inner: NamedMpkFileRecorder::default(),
        disk: spec.disk.clone(),
        failure: Arc::default(),
    };
    let checkpoint_failure = recorder.failure.clone();
    let mut training = SupervisedTraining::new(spec.dir, train, valid)
        .with_interrupter(interrupter.clone())
        .with_application_logger(Some(Box::new(StageLogInstaller {
            sink: spec.burn_log.clone(),
            path: spec.dir.join(BURN_LOG_FILE),
        })))
        .with_metric_logger(MetricFiles::new(
            spec.dir,
            resume.map_or(1, |epoch| epoch + 1),
            spec.disk.clone(),
            interrupter.clone(),
        ))
        .with_file_checkpointer(recorder)
        .with_checkpointing_strategy(KeepLastNCheckpoints::new(CHECKPOINTS_KEPT))
        .num_epochs(o.epochs)
        .metric_train_numeric(LearningRateMetric::new())
        .metric_train_numeric(ThroughputMetric::new())
        .metric_train_numeric(StatMetric::total())
        .metric_valid_numeric(StatMetric::total());
    if devices.len() > 1 {
        training = training.with_training_strategy(TrainingStrategy::Default(
            ExecutionStrategy::multi(devices.to_vec(), MultiDeviceOptim::OptimMainDevice),
        ));
    }
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
    if let Some(epoch) = resume {
        spec.log.line(&format!(
            "[{}] resuming from the checkpoint of epoch {epoch}/{}",
            spec.stage, o.epochs
        ));
        training = training.checkpoint(epoch);
    }
    let result = training.launch(learner);
    // Burn ends training early, and returns normally, when a checkpoint cannot be written or
    // the user quits the TUI: such a stage is not complete.
    if interrupter.should_stop() {
        let written = checkpoint_failure.lock().ok().and_then(|f| f.clone());
        let reason = written
            .or_else(|| interrupter.get_message())
            .unwrap_or_else(|| "no reason given".to_string());
        bail!(
            "[{}] training stopped before its last epoch: {reason}",
            spec.stage
        );
    }
    match latest_checkpoint(spec.dir) {
        Some(epoch) if epoch >= o.epochs => match spec.nodes {
            Some(peer) => peer.mean_module(result.model.model),
            None => Ok(result.model.model),
        },
        found => bail!(
            "[{}] training ended without the checkpoint of its last epoch ({}; found: {}) — not marked complete",
            spec.stage,
            o.epochs,
            found.map_or("none".to_string(), |e| format!("epoch {e}"))
        ),
    }
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
    fn plateau_halves_after_five_epochs_without_a_new_best() {
        let monitor = LossMonitor::recording();
        let mut s =
            WarmupSchedule::new(1.0, 0, 100, LrDecay::Plateau).with_epochs(2, monitor.clone());
        // Epoch means: 3 (best), then 2 (best), then five worse epochs, then more.
        let epochs = [3.0, 2.0, 2.5, 2.6, 2.7, 2.8, 2.9, 3.0];
        let mut rates = Vec::new();
        for loss in epochs {
            for _ in 0..2 {
                rates.push(s.step());
                monitor.losses.as_ref().unwrap().lock().unwrap().0 += loss;
                monitor.losses.as_ref().unwrap().lock().unwrap().1 += 1;
            }
        }
        rates.push(s.step());
        // Rates of the first step of each epoch: 1 until the 5th worse epoch has ended.
        let firsts: Vec<f64> = rates.iter().step_by(2).copied().collect();
        assert_eq!(firsts, vec![1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.5]);
        let record = s.to_record::<burn::backend::Flex>();
        assert_eq!(record, (17, 2.0, 1, 1, 1.0));
        let resumed = WarmupSchedule::new(1.0, 0, 100, LrDecay::Plateau)
            .load_record::<burn::backend::Flex>(record);
        assert_eq!(resumed.at(18), 0.5);
    }

    #[test]
    fn loss_threshold_follows_the_release() {
        let monitor = LossMonitor::recording();
        let mut s = WarmupSchedule::new(1.0, 0, 100, LrDecay::LossThreshold)
            .with_epochs(1, monitor.clone());
        let mut rates = Vec::new();
        // Epoch losses; the rate of each epoch follows the previous epoch's loss.
        for loss in [1.2, 0.7, 0.45, 0.3, 0.6, 0.9] {
            rates.push(s.step());
            let mut l = monitor.losses.as_ref().unwrap().lock().unwrap();
            *l = (loss, 1);
        }
        rates.push(s.step());
        assert_eq!(rates, vec![1.0, 1.0, 0.5, 0.5, 0.1, 0.5, 0.5]);
    }

    /// One parameter held twice, as the student step holds the pre-trained backbone its
    /// distinctive teacher shares: the loss reaches it through both.
    #[derive(Module, Debug)]
    struct HeldTwice<B: Backend> {
        first: Param<Tensor<B, 1>>,
        second: Param<Tensor<B, 1>>,
    }

    impl<B: AutodiffBackend> TrainStep for HeldTwice<B> {
        type Input = Tensor<B, 1>;
        type Output = StepOutput<B>;

        fn step(&self, x: Tensor<B, 1>) -> TrainOutput<StepOutput<B>> {
            let total = (self.first.val() * x.clone()).sum() + (self.second.val() * x).sum();
            let grads = total.backward();
            let out = StepOutput {
                total,
                components: Vec::new(),
                predictions: None,
                videos: 1,
                clips: 1,
            };
            TrainOutput::new(self, grads, out)
        }
    }

    #[test]
    fn a_parameter_held_twice_has_its_gradient_scaled_once() {
        type A = burn::backend::Autodiff<burn::backend::Flex>;
        let device = Default::default();
        let weight = Param::from_tensor(Tensor::<A, 1>::from_floats([1.0, 2.0], &device));
        let id = weight.id;
        let step = Monitored {
            model: HeldTwice {
                first: weight.clone(),
                second: weight,
            },
            monitor: LossMonitor::default(),
            grad_scale: 0.5,
            nodes: None,
            backend: PhantomData,
        };
        let x = Tensor::<A, 1>::from_floats([3.0, 5.0], &device);
        let out = TrainStep::step(&step, x);
        let grad = out
            .grads
            .get::<burn::backend::Flex, 1>(id)
            .expect("the parameter's gradient");
        // d/dw of w·x + w·x is 2x = [6, 10]; scaled by 0.5 once: x (twice would give x / 2).
        assert_eq!(grad.into_data().to_vec::<f32>().unwrap(), vec![3.0, 5.0]);
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
