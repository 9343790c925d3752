//! `timebalance bench …`: timings of the models on random clips, for people comparing
//! devices and against PyTorch (see `benches/`). Not used by tests.

use std::time::Instant;

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use burn::tensor::{Distribution, Int, Tensor};
use burn::train::TrainStep;

use crate::data::batch::ClipTensors;
use crate::data::sampling::SSL_CLIPS;
use crate::device::{BackendTask, DeviceSpec, dispatch};
use crate::loss::StudentWeights;
use crate::loss::cross_entropy;
use crate::model::SslModel;
use crate::model::{BackboneConfig, VideoClassifier};
use crate::pipeline::train_steps::{
    PairedBatch, SslObjective, SslTrainer, StudentSettings, StudentTrainer, TeacherKind,
};

/// The learning rate of the timed Adam steps (its value does not affect the timing).
const BENCH_LEARNING_RATE: f64 = 1e-4;

/// The temperature of the timed self-supervised steps (the experiments' value; it does
/// not affect the timing).
const BENCH_TAU: f64 = 0.1;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchMode {
    /// Forward pass in inference mode.
    Forward,
    /// Forward + backward + Adam step of a classifier.
    Train,
    /// One self-supervised step of a teacher: the ten clips of each video through backbone
    /// and projection head, the teacher's loss, backward, Adam (`batch` videos).
    Ssl(TeacherKind),
    /// One student step: `batch` labeled + `batch` unlabeled clips, both frozen teachers
    /// forward on both, the student's loss, backward, Adam.
    Student,
}

/// Shape of a benchmark run.
#[derive(Debug, Clone)]
pub struct ModelBench {
    pub mode: BenchMode,
    pub backbone: BackboneConfig,
    pub classes: usize,
    pub batch: usize,
    pub frames: usize,
    pub size: usize,
    pub iters: usize,
    pub warmup: usize,
    /// Train mode: time forward, backward and the optimiser step apart ([`BenchTimes::phases`]).
    pub phases: bool,
}

/// Seconds of the first iteration and per iteration after warm-up.
#[derive(Debug, Clone)]
pub struct BenchTimes {
    /// The first iteration alone: on GPUs it includes compiling (and autotuning) every
    /// kernel the step needs, unless the caches (`cubecl.toml`) already hold them.
    pub first: f64,
    pub seconds: Vec<f64>,
    /// Train mode with [`ModelBench::phases`]: seconds of forward (loss included), backward
    /// (gradients gathered per parameter) and optimiser step, per iteration after warm-up.
    pub phases: Vec<[f64; 3]>,
}

impl BenchTimes {
    pub fn median(&self) -> f64 {
        median(&self.seconds)
    }

    /// Median of each phase (forward, backward, optimiser), if phases were timed.
    pub fn phase_medians(&self) -> Option<[f64; 3]> {
        (!self.phases.is_empty()).then(|| {
            [0, 1, 2].map(|i| median(&self.phases.iter().map(|p| p[i]).collect::<Vec<_>>()))
        })
    }
}

/// Median of a non-empty slice (mean of the middle two for even lengths).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl ModelBench {
    /// Run on the backend `device` names; not generic, so compiled once, in the library
    /// (see [`crate::device`]).
    pub fn run_on(self, device: DeviceSpec) -> Result<BenchTimes> {
        dispatch(device, self)
    }
}

impl BackendTask for ModelBench {
    type Output = BenchTimes;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<BenchTimes> {
        let shape = [self.batch, 3, self.frames, self.size, self.size];
        let total = self.warmup + self.iters;
        let mut seconds = Vec::with_capacity(total);
        let mut phases = Vec::new();
        let clips =
            |shape: [usize; 5]| Tensor::<B, 5>::random(shape, Distribution::Default, &device);
        let labels = || {
            Tensor::<B, 1, Int>::random(
                [self.batch],
                Distribution::Uniform(0.0, self.classes as f64),
                &device,
            )
        };
        let classifier = || VideoClassifier::<B>::new(self.backbone, self.classes, &device);
        match self.mode {
            BenchMode::Forward => {
                let model = classifier().valid();
                for _ in 0..total {
                    let x =
                        Tensor::<B::InnerBackend, 5>::random(shape, Distribution::Default, &device);
                    let start = Instant::now();
                    let logits = model.forward(x);
                    // Reading the result back waits for asynchronous backends.
                    let _ = logits.into_data();
                    record(&mut seconds, start);
                }
            }
            BenchMode::Train => {
                let mut model = classifier();
                let mut optim = crate::optim::adam(0.0).init::<B, VideoClassifier<B>>();
                for _ in 0..total {
                    let (x, y) = (clips(shape), labels());
                    let start = Instant::now();
                    let loss = cross_entropy(model.forward(x), y);
                    let forward = phase_mark::<B>(self.phases, &device, start)?;
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    let backward = phase_mark::<B>(self.phases, &device, start)?;
                    model = optim.step(BENCH_LEARNING_RATE, model, grads);
                    sync::<B>(&device)?;
                    let total = record(&mut seconds, start);
                    if let (Some(forward), Some(backward)) = (forward, backward) {
                        phases.push([forward, backward - forward, total - backward]);
                    }
                }
            }
            BenchMode::Ssl(teacher) => {
                let mut model = SslTrainer {
                    model: SslModel::<B>::new(self.backbone, &device),
                    objective: SslObjective {
                        teacher,
                        tau: BENCH_TAU,
                    },
                };
                let mut optim = crate::optim::adam(0.0).init::<B, SslTrainer<B>>();
                let video = [SSL_CLIPS, 3, self.frames, self.size, self.size];
                for _ in 0..total {
                    let batch = ClipTensors {
                        clips: clips([
                            self.batch * SSL_CLIPS,
                            3,
                            self.frames,
                            self.size,
                            self.size,
                        ])
                        .reshape([self.batch, video[0], video[1], video[2], video[3], video[4]]),
                        labels: None,
                        videos: (0..self.batch).collect(),
                    };
                    let start = Instant::now();
                    let out = model.step(batch);
                    model = optim.step(BENCH_LEARNING_RATE, model, out.grads);
                    sync::<B>(&device)?;
                    record(&mut seconds, start);
                }
            }
            BenchMode::Student => {
                let mut model = StudentTrainer {
                    student: classifier(),
                    invariant: classifier(),
                    distinctive: classifier(),
                    settings: StudentSettings {
                        weights: StudentWeights::default(),
                        distill: Default::default(),
                    },
                };
                let mut optim = crate::optim::adam(0.0).init::<B, StudentTrainer<B>>();
                let one_clip = |x: Tensor<B, 5>, labels| ClipTensors {
                    clips: x.unsqueeze_dim(1),
                    labels,
                    videos: (0..self.batch).collect(),
                };
                let weights =
                    || Tensor::<B, 1>::random([self.batch], Distribution::Default, &device);
                for _ in 0..total {
                    let batch = PairedBatch {
                        labeled: one_clip(clips(shape), Some(labels())),
                        unlabeled: one_clip(clips(shape), None),
                        weight_labeled: weights(),
                        weight_unlabeled: weights(),
                    };
                    let start = Instant::now();
                    let out = model.step(batch);
                    model = optim.step(BENCH_LEARNING_RATE, model, out.grads);
                    sync::<B>(&device)?;
                    record(&mut seconds, start);
                }
            }
        }
        let first = seconds.first().copied().unwrap_or(f64::NAN);
        let seconds = seconds.split_off(self.warmup.min(seconds.len()));
        let phases = phases.split_off(self.warmup.min(phases.len()));
        Ok(BenchTimes {
            first,
            seconds,
            phases,
        })
    }
}

/// Every iteration's time, warm-up included (split after the run); returns this one's.
fn record(seconds: &mut Vec<f64>, start: Instant) -> f64 {
    let elapsed = start.elapsed().as_secs_f64();
    seconds.push(elapsed);
    elapsed
}

/// With `phases`, the seconds since `start` once the device's queued work is done.
fn phase_mark<B: AutodiffBackend>(
    phases: bool,
    device: &B::Device,
    start: Instant,
) -> Result<Option<f64>> {
    if !phases {
        return Ok(None);
    }
    sync::<B>(device)?;
    Ok(Some(start.elapsed().as_secs_f64()))
}

/// Wait for queued work on asynchronous backends (GPU) before stopping the clock.
fn sync<B: AutodiffBackend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow::anyhow!("device synchronisation failed: {e:?}"))
}
