//! The method's stages (docs/method.md), one module each, every one generic over the backend
//! and driven by burn-train's `Learner` where it trains. A stage reads what earlier stages
//! wrote in the run directory (through [`StageContext`]) and writes into its own
//! directory, [`Stage::name`].
//!
//! | stage | module | method |
//! |---|---|---|
//! | `pretrain_{invariant,distinctive}` | [`pretrain`] | 1: self-supervised teachers |
//! | `finetune_{invariant,distinctive}` | [`finetune`] | 2: teachers on the labeled subset |
//! | `score` | [`score`] | 3: TSTR temporal similarity |
//! | `probe` | [`probe`] | diagnostic: linear probes of the frozen teachers |
//! | `student`, `student_average` | [`student`] | 4: distillation, TSTR-weighted or 50/50 |
//! | `baseline`, `supervised_all_labels` | [`baseline`] | references trained from scratch |
//! | `eval` | [`evaluate`] | multi-view evaluation, `metrics.json` |
//!
//! Models trained from scratch may start from pre-trained weights (`model.init_from`,
//! `init_from.rs`).

pub mod baseline;
mod classifier;
pub mod evaluate;
pub mod finetune;
mod init_from;
pub mod pretrain;
pub mod probe;
pub mod score;
pub mod student;
pub mod student_data;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;

use super::context::StageContext;
use super::stage::Stage;
use super::train_steps::TeacherKind;

/// Run one stage. Stages that only read models (score, eval) run on the inner backend, without
/// the autodiff graph. Training stages use every device of `devices` (data-parallel), the
/// others the first.
pub fn run_stage<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    stage: Stage,
    devices: &[B::Device],
) -> Result<()> {
    let device = devices.first().expect("at least one device");
    match stage {
        Stage::PretrainInvariant => pretrain::pretrain::<B>(ctx, TeacherKind::Invariant, devices),
        Stage::PretrainDistinctive => {
            pretrain::pretrain::<B>(ctx, TeacherKind::Distinctive, devices)
        }
        Stage::FinetuneInvariant => finetune::finetune::<B>(ctx, TeacherKind::Invariant, devices),
        Stage::FinetuneDistinctive => {
            finetune::finetune::<B>(ctx, TeacherKind::Distinctive, devices)
        }
        Stage::Score => score::score::<B::InnerBackend>(ctx, device).map(|_| ()),
        Stage::Probe => probe::probe::<B>(ctx, device),
        Stage::Student => student::student::<B>(ctx, stage, None, devices),
        Stage::StudentAverage => {
            student::student::<B>(ctx, stage, Some(student::FIXED_MIX_WEIGHT), devices)
        }
        Stage::Baseline => baseline::baseline::<B>(ctx, devices),
        Stage::SupervisedAllLabels => baseline::supervised_all_labels::<B>(ctx, devices),
        Stage::Eval => {
            let path = evaluate::evaluate::<B::InnerBackend>(ctx, device)?;
            ctx.log.line(&format!("[eval] wrote {}", path.display()));
            evaluate::print_summary(ctx.log, &path)
        }
    }
}
