//! Stage `pretrain_{invariant,distinctive}`: self-supervised pre-training of one teacher
//! (docs/method.md, stage 1) on every training video, labels unused.

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::save_module;
use crate::data::clips::ClipRecipe;
use crate::data::sampling::SslGeometry;
use crate::data::tensors::ClipBatcher;
use crate::model::SslModel;
use crate::pipeline::context::{MODEL_FILE, StageContext, seed_offset};
use crate::pipeline::learner::{FitSpec, fit};
use crate::pipeline::stage::Stage;
use crate::pipeline::train_steps::{SslObjective, SslTrainer, TeacherKind};

use super::init_from::init_backbone;

/// Self-supervised pre-training of one teacher on every training video (labels unused).
pub fn pretrain<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    teacher: TeacherKind,
    devices: &[B::Device],
) -> Result<()> {
    let device = &devices[0];
    let c = &ctx.config.pretrain.optim;
    let stage = Stage::pretrain(teacher);
    let dir = ctx.stage_dir(stage);
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
    let seed = ctx.seed(seed_offset::PRETRAIN + teacher as u64 * 10);
    let dataset = ctx
        .clip_dataset(ctx.data.items(&all, false), recipe, seed)?
        .padded_to_batches(c.batch_size);
    B::seed(device, seed);
    let model = SslTrainer {
        model: init_backbone(
            ctx,
            stage,
            SslModel::<B>::new(ctx.config.model.backbone(), device),
        )?,
        objective: SslObjective {
            teacher,
            tau: ctx.config.pretrain.tau,
        },
    };
    let (train, iterations) =
        ctx.train_loader(stage, ClipBatcher, dataset, c.batch_size, seed, devices)?;
    let valid = ctx.no_validation::<B::InnerBackend>(recipe, device)?;
    let spec = FitSpec {
        stage: stage.name(),
        dir: &dir,
        optim: *c,
        iterations_per_epoch: iterations,
        components: teacher.components(),
        accuracy: false,
        log: ctx.log,
        disk: ctx.disk,
        burn_log: ctx.burn_log,
        nodes: ctx.nodes,
    };
    let trained = fit(model, &spec, devices, train, valid)?;
    save_module(ctx.disk, trained.model, &dir.join(MODEL_FILE))?;
    Ok(())
}
