//! Stage `finetune_{invariant,distinctive}`: a pre-trained teacher fine-tuned on the labeled
//! subset (docs/method.md, stage 2).

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;

use super::classifier::{classifier_from_ssl, train_classifier};
use crate::pipeline::context::{StageContext, seed_offset};
use crate::pipeline::stage::Stage;
use crate::pipeline::train_steps::TeacherKind;

/// Fine-tune a pre-trained teacher on the labeled subset.
pub fn finetune<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    teacher: TeacherKind,
    devices: &[B::Device],
) -> Result<()> {
    let device = &devices[0];
    let seed = ctx.seed(seed_offset::FINETUNE + teacher as u64 * 10);
    B::seed(device, seed);
    let model = classifier_from_ssl::<B>(ctx, Stage::pretrain(teacher), device)?;
    train_classifier(
        ctx,
        Stage::finetune(teacher),
        model,
        &ctx.config.finetune,
        &ctx.data.partition.labeled,
        seed,
        devices,
    )
}
