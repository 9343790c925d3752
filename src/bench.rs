//! `timebalance bench …`: timings of the models on random clips, for people comparing
//! devices and against PyTorch (see `benches/`). Not used by tests.

use std::time::Instant;

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use burn::tensor::{Distribution, Int, Tensor};

use crate::device::BackendTask;
use crate::loss::cross_entropy;
use crate::model::{BackboneConfig, VideoClassifier};

/// The learning rate of the timed Adam steps (its value does not affect the timing).
const BENCH_LEARNING_RATE: f64 = 1e-4;

/// What to time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// Forward pass in inference mode.
    Forward,
    /// Forward + backward + Adam step.
    Train,
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
}

/// Seconds per iteration after warm-up.
#[derive(Debug, Clone)]
pub struct BenchTimes {
    pub seconds: Vec<f64>,
}

impl BenchTimes {
    pub fn median(&self) -> f64 {
        median(&self.seconds)
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

impl BackendTask for ModelBench {
    type Output = BenchTimes;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<BenchTimes> {
        let shape = [self.batch, 3, self.frames, self.size, self.size];
        let model = VideoClassifier::<B>::new(self.backbone, self.classes, &device);
        let total = self.warmup + self.iters;
        let mut seconds = Vec::with_capacity(self.iters);
        match self.mode {
            BenchMode::Forward => {
                let model = model.valid();
                for i in 0..total {
                    let x =
                        Tensor::<B::InnerBackend, 5>::random(shape, Distribution::Default, &device);
                    let start = Instant::now();
                    let logits = model.forward(x);
                    // Reading the result back waits for asynchronous backends.
                    let _ = logits.into_data();
                    record(&mut seconds, i, self.warmup, start);
                }
            }
            BenchMode::Train => {
                let mut model = model;
                let mut optim = AdamConfig::new().init::<B, VideoClassifier<B>>();
                for i in 0..total {
                    let x = Tensor::<B, 5>::random(shape, Distribution::Default, &device);
                    let y = Tensor::<B, 1, Int>::random(
                        [self.batch],
                        Distribution::Uniform(0.0, self.classes as f64),
                        &device,
                    );
                    let start = Instant::now();
                    let loss = cross_entropy(model.forward(x), y);
                    let grads = GradientsParams::from_grads(loss.backward(), &model);
                    model = optim.step(BENCH_LEARNING_RATE, model, grads);
                    sync::<B>(&device)?;
                    record(&mut seconds, i, self.warmup, start);
                }
            }
        }
        Ok(BenchTimes { seconds })
    }
}

fn record(seconds: &mut Vec<f64>, i: usize, warmup: usize, start: Instant) {
    if i >= warmup {
        seconds.push(start.elapsed().as_secs_f64());
    }
}

/// Wait for queued work on asynchronous backends (GPU) before stopping the clock.
fn sync<B: AutodiffBackend>(device: &B::Device) -> Result<()> {
    B::sync(device).map_err(|e| anyhow::anyhow!("device synchronisation failed: {e:?}"))
}
