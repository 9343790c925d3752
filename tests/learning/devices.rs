//! Data-parallel training (`fit` given several devices, burn-train's multi-device strategy)
//! takes the steps one device takes with the same global batch.
//!
//! The model is a linear classifier of each clip's mean colour: without batch normalisation,
//! whose statistics are per device by design, the two runs must agree to rounding. Weight
//! decay makes the check sensitive to the gradient scale (Adam alone is nearly invariant to
//! it): unscaled per-device gradients, or devices given contiguous runs of the dataset instead
//! of parts of each global batch, change the result far beyond the tolerance.

use std::path::Path;
use std::sync::Arc;

use burn::backend::flex::FlexDevice;
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use timebalance::data::batch::ClipTensors;
use timebalance::data::loader::{EpochLoader, LoaderItem};
use timebalance::data::tensors::{ClipBatcher, VideoClipDataset};
use timebalance::loss::cross_entropy;
use timebalance::pipeline::config::{LrDecay, Optimisation};
use timebalance::pipeline::learner::fit;
use timebalance::pipeline::train_metrics::StepOutput;

use super::{B, BATCH, CLASSES, Inner, SEED, StageFiles, plain_recipe, training_items};
use crate::common::rel_l2_f32;

const DEVICES: usize = 2;
const EPOCHS: usize = 3;
const LEARNING_RATE: f64 = 1e-2;
/// Large enough that a wrong gradient scale moves the weights visibly.
const WEIGHT_DECAY: f64 = 0.1;
/// Relative L2 distance allowed between the two runs' weights (summation order only).
const TOLERANCE: f64 = 1e-5;
const COLOURS: usize = 3;

/// Logits of each clip's mean colour.
#[derive(Module, Debug)]
struct MeanColourClassifier<B: Backend> {
    fc: Linear<B>,
}

impl<B: Backend> MeanColourClassifier<B> {
    /// Fixed weights (not drawn), so both runs start from the same model.
    fn new(device: &B::Device) -> Self {
        let weight: Vec<f32> = (0..COLOURS * CLASSES)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
            .collect();
        Self {
            fc: Linear {
                weight: Param::from_tensor(Tensor::from_data(
                    TensorData::new(weight, [COLOURS, CLASSES]),
                    device,
                )),
                bias: Some(Param::from_tensor(Tensor::zeros([CLASSES], device))),
            },
        }
    }

    fn output(&self, batch: &ClipTensors<B>) -> StepOutput<B> {
        let labels = batch.labels.clone().expect("labeled");
        let x = batch.clip(0);
        let [b, c, ..] = x.dims();
        let mean_colour = x.flatten::<3>(2, 4).mean_dim(2).reshape([b, c]);
        let logits = self.fc.forward(mean_colour);
        StepOutput {
            total: cross_entropy(logits.clone(), labels.clone()),
            components: Vec::new(),
            predictions: Some((logits, labels)),
            videos: b,
            clips: b,
        }
    }
}

impl<B: AutodiffBackend> TrainStep for MeanColourClassifier<B> {
    type Input = ClipTensors<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: ClipTensors<B>) -> TrainOutput<StepOutput<B>> {
        let out = self.output(&batch);
        let grads = out.total.backward();
        TrainOutput::new(self, grads, out)
    }
}

impl<B: Backend> InferenceStep for MeanColourClassifier<B> {
    type Input = ClipTensors<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: ClipTensors<B>) -> StepOutput<B> {
        self.output(&batch)
    }
}

/// The classifier's weights after `fit` on `devices` copies of the CPU device, each taking
/// `BATCH / devices` videos of every global batch of `BATCH`.
fn train(root: &Path, items: &[LoaderItem], devices: usize) -> Vec<f32> {
    let device = FlexDevice;
    let dataset = VideoClipDataset::new(items.to_vec(), plain_recipe(), SEED)
        .expect("recipe")
        .padded_to_batches(BATCH);
    let iterations = dataset.len() / BATCH;
    let train: Arc<dyn DataLoader<B, ClipTensors<B>>> = Arc::new(EpochLoader::new(
        ClipBatcher,
        dataset,
        BATCH / devices,
        1,
        Some(SEED),
        device,
    ));
    let empty = VideoClipDataset::new(Vec::<LoaderItem>::new(), plain_recipe(), 0).expect("recipe");
    let valid: Arc<dyn DataLoader<Inner, ClipTensors<Inner>>> =
        Arc::new(EpochLoader::new(ClipBatcher, empty, BATCH, 1, None, device));
    let stage = StageFiles::new(
        root,
        if devices == 1 {
            "one_device"
        } else {
            "devices"
        },
    );
    let optim = Optimisation {
        epochs: EPOCHS,
        batch_size: BATCH,
        lr: LEARNING_RATE,
        warmup_epochs: 0,
        weight_decay: WEIGHT_DECAY,
        decay: LrDecay::Constant,
    };
    let spec = stage.spec(optim, iterations);
    let model = MeanColourClassifier::<B>::new(&device);
    let trained: MeanColourClassifier<Inner> =
        fit(model, &spec, &vec![device; devices], train, valid).expect("training");
    trained
        .fc
        .weight
        .val()
        .into_data()
        .to_vec::<f32>()
        .expect("f32 weights")
}

#[test]
fn two_devices_train_as_one_with_the_same_global_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let items = training_items(tmp.path());
    let start = MeanColourClassifier::<Inner>::new(&FlexDevice)
        .fc
        .weight
        .val()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let one = train(tmp.path(), &items, 1);
    let two = train(tmp.path(), &items, DEVICES);
    // The runs trained (weights moved) and agree.
    assert!(
        rel_l2_f32(&one, &start) > 100.0 * TOLERANCE,
        "no training happened"
    );
    let distance = rel_l2_f32(&two, &one);
    eprintln!("two devices vs one: relative L2 distance of the weights {distance:.2e}");
    assert!(
        distance < TOLERANCE,
        "two devices end {distance:.2e} (relative L2) away from one device"
    );
}
