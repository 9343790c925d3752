//! What the supervised stages share: training a classifier on labeled training videos with
//! burn-train's Learner, and building one from a pre-trained teacher's backbone or from
//! scratch.

use anyhow::Result;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::checkpoint::{load_module, save_module};
use crate::data::tensors::ClipBatcher;
use crate::model::{SslModel, VideoClassifier};
use crate::pipeline::config::Optimisation;
use crate::pipeline::context::{MODEL_FILE, StageContext};
use crate::pipeline::learner::{FitSpec, fit};
use crate::pipeline::stage::Stage;

use super::init_from::init_backbone;

/// Supervised training of `model` on the training videos `videos` with their labels (the
/// labeled subset for fine-tuning and the baseline, every video for the all-label reference).
pub fn train_classifier<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    stage: Stage,
    model: VideoClassifier<B>,
    config: &Optimisation,
    videos: &[usize],
    seed: u64,
    devices: &[B::Device],
) -> Result<()> {
    let device = &devices[0];
    let dir = ctx.stage_dir(stage);
    let recipe = ctx.train_recipe();
    let items = ctx.data.items(videos, true);
    let dataset = ctx
        .clip_dataset(items, recipe, seed)?
        .padded_to_batches(config.batch_size);
    let (train, iterations) = ctx.train_loader(
        stage,
        ClipBatcher,
        dataset,
        config.batch_size,
        seed,
        devices,
    )?;
    let valid = ctx.no_validation::<B::InnerBackend>(recipe, device)?;
    let spec = FitSpec {
        stage: stage.name(),
        dir: &dir,
        optim: *config,
        iterations_per_epoch: iterations,
        components: &[],
        accuracy: true,
        log: ctx.log,
        disk: ctx.disk,
        burn_log: ctx.burn_log,
        nodes: ctx.nodes,
    };
    let trained = fit(model, &spec, devices, train, valid)?;
    save_module(ctx.disk, trained, &dir.join(MODEL_FILE))?;
    Ok(())
}

/// A classifier whose backbone comes from a pre-trained self-supervised model.
pub fn classifier_from_ssl<B: Backend>(
    ctx: &StageContext<'_>,
    ssl_stage: Stage,
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

/// A freshly initialised classifier trained on `videos` (the baseline and the all-label
/// reference differ only in which videos keep their label).
pub fn from_scratch<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    stage: Stage,
    config: &Optimisation,
    videos: &[usize],
    seed_offset: u64,
    devices: &[B::Device],
) -> Result<()> {
    let device = &devices[0];
    let seed = ctx.seed(seed_offset);
    B::seed(device, seed);
    let model = ctx
        .config
        .model
        .classifier::<B>(ctx.data.num_classes(), device);
    let model = init_backbone(ctx, stage, model)?;
    train_classifier(ctx, stage, model, config, videos, seed, devices)
}
