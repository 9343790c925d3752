//! Proof that training learns, through the real data path: synthetic video files on disk, the
//! UCF101 index reader, `VideoClipDataset` + `ClipBatcher` + the stages' multi-worker
//! `EpochLoader`, and
//! the `fit` that every stage calls (burn-train's `Learner`, our Adam, checkpoints).
//!
//! * `a_small_set_is_memorised`: 16 videos, augmentation off → 100 % training accuracy and a
//!   training loss below 0.05 within [`MAX_STEPS`] Adam steps (the overfit test), the
//!   whole set in every batch ([`MEMORISE_BATCH`]).
//! * `eval_mode_agrees_with_train_mode`: the model saved by `fit` and loaded back as `eval`
//!   loads it (eval-mode batch norm with running statistics) classifies the same training
//!   clips as well as the train-mode model did in its last epoch.
//! * `devices`: `fit` on two devices equals `fit` on one with the same global batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::backend::Autodiff;
use burn::backend::flex::FlexDevice;
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use timebalance::checkpoint::{load_module, save_module};
use timebalance::data::augment::AugmentConfig;
use timebalance::data::batch::ClipTensors;
use timebalance::data::clips::ClipRecipe;
use timebalance::data::datasets::{DatasetKind, load_index};
use timebalance::data::loader::{EpochLoader, LoaderItem};
use timebalance::data::synth::{SynthConfig, generate};
use timebalance::data::tensors::{ClipBatcher, VideoClipDataset};
use timebalance::disk::Disk;
use timebalance::model::{Arch, BackboneConfig, VideoClassifier};
use timebalance::pipeline::burn_log::BurnLog;
use timebalance::pipeline::config::{LrDecay, Optimisation};
use timebalance::pipeline::learner::{FitSpec, fit};
use timebalance::pipeline::runlog::RunLog;

mod devices;

/// The default CPU backend (`--device cpu`).
type Inner = burn::backend::Flex;
type B = Autodiff<Inner>;

/// The overfit test: 16 videos, ≤ 300 Adam steps.
const CLASSES: usize = 4;
const VIDEOS_PER_CLASS: usize = 4;
const MAX_STEPS: usize = 300;
/// Clips per batch of the multi-device test (`devices`).
const BATCH: usize = 4;
/// The overfit test's batch: all 16 videos, so that every step's batch-norm statistics are
/// those of the whole set. With 4 shuffled clips per batch (each clip normalised by other
/// companions every epoch) the last epoch's loss after 300 steps ranged 0.009–0.16 over
/// generator seeds 0–7 with either convolution kernel (2 or more of 8 seeds over 0.05; one
/// clip per video instead of a random start did not help); with the whole set it was
/// 0.0000–0.0002 on every seed (issue 13's note of 2026-12-03).
const MEMORISE_BATCH: usize = CLASSES * VIDEOS_PER_CLASS;
/// One step per epoch. 100 steps left the last loss at 0.0002–0.0003 over seeds 0–7 (300:
/// under 0.0002), so the test stays well inside the 300.
const EPOCHS: usize = 100;
/// Peak of the cosine schedule: at 1e-3 (batch 4) the last epoch's loss stayed at 0.08–0.09.
const LEARNING_RATE: f64 = 5e-3;
const WIDTH: usize = 8;
const FRAMES: usize = 8;
const STRIDE: usize = 2;
const SIZE: u32 = 32;
const VIDEO_FRAMES: usize = 24;
const WORKERS: usize = 2;
const SEED: u64 = 3;
/// The bounds on the last epoch's training metrics.
const MAX_FINAL_LOSS: f64 = 0.05;
const FINAL_ACCURACY: f64 = 100.0;
/// Eval mode may miss this many of the 16 training videos that train mode got right (batch
/// statistics of the batch vs running statistics). The learning rate decays to zero (cosine)
/// so that the running statistics describe the final weights: with batches of 4 and a
/// constant 1e-3 they lagged the last steps, and eval mode got 11/16 (train mode 16/16) in a
/// CI run and in one of two local runs. With the whole set as the batch this check passed on
/// each of the 8 seeds of `MEMORISE_BATCH`'s measurement.
const EVAL_MODE_SLACK: usize = 1;

/// Mean of a Burn metric log (`value,count` per batch) weighted by the counts.
fn metric_mean(path: &Path) -> f64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut sum, mut count) = (0.0, 0.0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (value, n) = line.split_once(',').expect("value,count");
        let n: f64 = n.trim().parse().expect("count");
        sum += value.trim().parse::<f64>().expect("value") * n;
        count += n;
    }
    sum / count
}

/// Where a test's `fit` writes: the stage directory `root/name`, its run log, the disk.
struct StageFiles {
    name: &'static str,
    dir: PathBuf,
    log: RunLog,
    disk: Disk,
    burn_log: BurnLog,
}

impl StageFiles {
    fn new(root: &Path, name: &'static str) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            name,
            log: RunLog::open(&dir.join("log.txt")).expect("log"),
            dir,
            disk: Disk::new(),
            burn_log: BurnLog::default(),
        }
    }

    /// A supervised stage's `FitSpec`: accuracy reported, no loss components.
    fn spec(&self, optim: Optimisation, iterations: usize) -> FitSpec<'_> {
        FitSpec {
            stage: self.name,
            dir: &self.dir,
            optim,
            iterations_per_epoch: iterations,
            components: &[],
            accuracy: true,
            log: &self.log,
            disk: &self.disk,
            burn_log: &self.burn_log,
            nodes: None,
        }
    }
}

/// Training clips exactly as the stages make them, without augmentation.
fn plain_recipe() -> ClipRecipe {
    ClipRecipe::Train {
        frames: FRAMES,
        stride: STRIDE,
        out_size: SIZE,
        augment: AugmentConfig::plain(),
    }
}

struct Trained {
    model: VideoClassifier<Inner>,
    items: Vec<LoaderItem>,
    last_loss: f64,
    last_accuracy: f64,
}

/// The 16 training videos, generated under `root/data` and read back through the index.
fn training_items(root: &Path) -> Vec<LoaderItem> {
    generate(&SynthConfig {
        out: root.join("data"),
        classes: CLASSES,
        videos_per_class: VIDEOS_PER_CLASS,
        test_videos_per_class: 1,
        frames: VIDEO_FRAMES,
        size: SIZE,
        seed: SEED,
        ..SynthConfig::default()
    })
    .expect("synthetic videos");
    let index = load_index(DatasetKind::Ucf101, &root.join("data"), 1).expect("index");
    let items: Vec<LoaderItem> = index
        .train
        .iter()
        .map(|e| (e.path.clone(), Some(e.label)))
        .collect();
    assert_eq!(items.len(), CLASSES * VIDEOS_PER_CLASS);
    items
}

/// Generates the videos, reads them back through the dataset index, and trains with `fit`.
fn memorise(root: &Path) -> Trained {
    let items = training_items(root);
    let device = FlexDevice;
    let dataset = VideoClipDataset::new(items.clone(), plain_recipe(), SEED)
        .expect("recipe")
        .padded_to_batches(MEMORISE_BATCH);
    let iterations = dataset.len() / MEMORISE_BATCH;
    assert!(iterations * EPOCHS <= MAX_STEPS);
    let train: Arc<dyn DataLoader<B, ClipTensors<B>>> = Arc::new(EpochLoader::new(
        ClipBatcher,
        dataset,
        MEMORISE_BATCH,
        WORKERS,
        Some(SEED),
        device,
    ));
    let empty = VideoClipDataset::new(Vec::<LoaderItem>::new(), plain_recipe(), 0).expect("recipe");
    let valid: Arc<dyn DataLoader<Inner, ClipTensors<Inner>>> =
        Arc::new(EpochLoader::new(ClipBatcher, empty, BATCH, 1, None, device));

    <B as Backend>::seed(&device, SEED);
    let model =
        VideoClassifier::<B>::new(BackboneConfig::new(Arch::R3d18, WIDTH), CLASSES, &device);
    let optim = Optimisation {
        epochs: EPOCHS,
        batch_size: MEMORISE_BATCH,
        lr: LEARNING_RATE,
        warmup_epochs: 0,
        weight_decay: 0.0,
        decay: LrDecay::Cosine,
    };
    let stage = StageFiles::new(root, "overfit");
    let spec = stage.spec(optim, iterations);
    let model = fit(model, &spec, &[device], train, valid).expect("training");
    let epoch = stage.dir.join(format!("train/epoch-{EPOCHS}"));
    Trained {
        model,
        items,
        last_loss: metric_mean(&epoch.join("Loss.log")),
        last_accuracy: metric_mean(&epoch.join("Accuracy.log")),
    }
}

/// Videos of `items` the model classifies right, one plain clip each (eval-mode model).
fn correct(model: &VideoClassifier<Inner>, items: &[LoaderItem]) -> usize {
    let dataset = VideoClipDataset::new(items.to_vec(), plain_recipe(), SEED + 1).expect("recipe");
    let loader: EpochLoader<Inner, _, ClipTensors<Inner>> =
        EpochLoader::new(ClipBatcher, dataset, BATCH, 1, None, FlexDevice);
    let mut right = 0;
    for batch in loader.iter() {
        let labels = batch.labels.clone().expect("labeled");
        let predicted = model.forward(batch.clip(0)).argmax(1).flatten::<1>(0, 1);
        right += predicted.equal(labels).int().sum().into_scalar() as usize;
    }
    right
}

#[test]
fn a_small_set_is_memorised_and_eval_mode_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let trained = memorise(tmp.path());
    assert!(
        trained.last_loss < MAX_FINAL_LOSS && trained.last_accuracy >= FINAL_ACCURACY,
        "after {} Adam steps the last epoch has loss {:.4} (want < {MAX_FINAL_LOSS}) and \
         training accuracy {:.1} % (want {FINAL_ACCURACY} %)",
        EPOCHS * CLASSES * VIDEOS_PER_CLASS / MEMORISE_BATCH,
        trained.last_loss,
        trained.last_accuracy
    );

    // Saved and loaded back as the `eval` stage does, then run in eval mode.
    let path =
        save_module(&Disk::new(), trained.model, &tmp.path().join("model.mpk")).expect("save");
    let fresh = VideoClassifier::<Inner>::new(
        BackboneConfig::new(Arch::R3d18, WIDTH),
        CLASSES,
        &FlexDevice,
    );
    let loaded = load_module(fresh, &path, &FlexDevice).expect("load");
    let n = trained.items.len();
    let right = correct(&loaded, &trained.items);
    let train_mode_right = (trained.last_accuracy / 100.0 * n as f64).round() as usize;
    assert!(
        right + EVAL_MODE_SLACK >= train_mode_right,
        "eval mode (running statistics, loaded from model.mpk) classifies {right}/{n} \
         training videos; train mode got {train_mode_right}/{n} in its last epoch"
    );
}
