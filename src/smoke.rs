//! A short end-to-end check of a device: a tiny video ResNet trained for a few Adam steps
//! on random clips with fixed labels must lower its loss. Used by the README's first
//! command until the full pipeline exists.

use anyhow::{Result, ensure};
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Distribution, ElementConversion, Int, Tensor, TensorData};

use crate::device::{BackendTask, DeviceSpec, dispatch};
use crate::loss::cross_entropy;
use crate::model::{Arch, BackboneConfig, VideoClassifier};

const SMOKE_WIDTH: usize = 8;
const SMOKE_CLASSES: usize = 4;
const SMOKE_SHAPE: [usize; 5] = [4, 3, 8, 32, 32];
const SMOKE_LEARNING_RATE: f64 = 1e-2;
const SMOKE_SEED: u64 = 0;

pub struct SmokeRun {
    pub steps: usize,
}

impl SmokeRun {
    /// Run on the backend `device` names; not generic, so compiled once, in the library
    /// (see [`crate::device`]).
    pub fn run_on(self, device: DeviceSpec) -> Result<String> {
        dispatch(device, self)
    }
}

impl BackendTask for SmokeRun {
    type Output = String;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<String> {
        ensure!(
            self.steps >= 2,
            "smoke needs at least 2 steps, got {}",
            self.steps
        );
        B::seed(&device, SMOKE_SEED);
        let mut model = VideoClassifier::<B>::new(
            BackboneConfig::new(Arch::R3d18, SMOKE_WIDTH),
            SMOKE_CLASSES,
            &device,
        );
        let mut optim = crate::optim::adam(0.0).init::<B, VideoClassifier<B>>();
        let x = Tensor::<B, 5>::random(SMOKE_SHAPE, Distribution::Default, &device);
        let labels: Vec<i64> = (0..SMOKE_SHAPE[0] as i64)
            .map(|i| i % SMOKE_CLASSES as i64)
            .collect();
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [SMOKE_SHAPE[0]]), &device);
        let mut losses = Vec::with_capacity(self.steps);
        for _ in 0..self.steps {
            let loss = cross_entropy(model.forward(x.clone()), y.clone());
            losses.push(loss.clone().into_scalar().elem::<f64>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(SMOKE_LEARNING_RATE, model, grads);
        }
        let (first, last): (f64, f64) = (losses[0], losses[losses.len() - 1]);
        ensure!(
            last.is_finite() && last < first,
            "loss did not decrease: {losses:?}"
        );
        Ok(format!(
            "smoke ok: loss {first:.4} -> {last:.4} over {} Adam steps",
            self.steps
        ))
    }
}
