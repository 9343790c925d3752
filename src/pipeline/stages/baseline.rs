//! Stages `baseline` and `supervised_all_labels`: the same backbone trained from scratch, on
//! the labeled subset (the method's honest reference) and on every training label (the upper
//! reference, which uses labels the method never sees).

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;

use super::classifier::from_scratch;
use crate::pipeline::context::{StageContext, seed_offset};
use crate::pipeline::stage::Stage;

/// The honest reference: the same backbone trained from scratch on the labeled subset.
pub fn baseline<B: AutodiffBackend>(ctx: &StageContext<'_>, devices: &[B::Device]) -> Result<()> {
    let labeled = &ctx.data.partition.labeled;
    from_scratch::<B>(
        ctx,
        Stage::Baseline,
        &ctx.config.baseline,
        labeled,
        seed_offset::BASELINE,
        devices,
    )
}

/// The upper reference (`[all_labels]`): the same backbone trained from scratch on every
/// training video's label. Not part of the method: it uses labels the method never sees, to
/// show that the data can be learned and how far the labeled subset is from it.
pub fn supervised_all_labels<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    devices: &[B::Device],
) -> Result<()> {
    let Some(config) = &ctx.config.all_labels else {
        ctx.log.line(&format!(
            "[{}] the experiment has no [all_labels] section; nothing to do",
            Stage::SupervisedAllLabels
        ));
        return Ok(());
    };
    let every: Vec<usize> = (0..ctx.data.train.len()).collect();
    from_scratch::<B>(
        ctx,
        Stage::SupervisedAllLabels,
        config,
        &every,
        seed_offset::ALL_LABELS,
        devices,
    )
}
