//! `model.init_from`: the backbone of every model trained from scratch (the self-supervised
//! teachers, the baseline, the all-label reference, a randomly initialised student) taken
//! from pre-trained PyTorch weights — torchvision's and PyTorchVideo's Kinetics-400 models,
//! the official TCLR/TimeBalance checkpoints ([`crate::model::import`] reads their layouts).

use anyhow::{Context, Result};
use burn::module::Module;
use burn::store::ModuleSnapshot;
use burn::tensor::backend::Backend;

use crate::model::import::{BATCH_COUNTER_SUFFIX, HeadPolicy, load_pytorch_weights};
use crate::names::name_of;
use crate::pipeline::context::StageContext;
use crate::pipeline::stage::Stage;

/// `model` with its backbone loaded from `model.init_from` when the experiment sets it
/// (unchanged otherwise). Every backbone parameter must be in the file with its shape; a
/// classifier or projection head in the file is skipped and named in the log.
pub fn init_backbone<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    ctx: &StageContext<'_>,
    stage: Stage,
    mut model: M,
) -> Result<M> {
    let Some(path) = &ctx.config.model.init_from else {
        return Ok(model);
    };
    let layout = ctx.config.model.init_layout();
    let report = load_pytorch_weights(&mut model, path, layout, HeadPolicy::BackboneOnly)
        .with_context(|| format!("[{stage}] model.init_from"))?;
    // Batch norm's `num_batches_tracked` counters have no parameter: not worth a line each.
    let (counters, unused): (Vec<&String>, Vec<&String>) = report
        .ignored
        .iter()
        .partition(|k| k.ends_with(BATCH_COUNTER_SUFFIX));
    let skipped = match unused.as_slice() {
        [] => String::new(),
        keys => format!(
            "; not used: {}",
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    ctx.log.line(&format!(
        "[{stage}] backbone initialised from {} ({} tensors, {} key layout; {} batch-norm counters skipped){skipped}",
        path.display(),
        report.applied,
        name_of(&layout),
        counters.len(),
    ));
    Ok(model)
}
