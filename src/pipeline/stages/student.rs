//! Stages `student` and `student_average`: both fine-tuned teachers distilled into a student,
//! each video's teacher weight from its TSTR score (docs/method.md, stage 4) or one fixed weight
//! for every video (the 50/50 ablation).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use burn::tensor::backend::AutodiffBackend;

use super::classifier::classifier_from_ssl;
use super::init_from::init_backbone;
use super::score::read_scores;
use super::student_data::{StudentBatcher, StudentDataset};
use crate::checkpoint::{load_module, save_module};
use crate::data::loader::LoaderItem;
use crate::model::VideoClassifier;
use crate::pipeline::config::{StudentEpoch, StudentInit};
use crate::pipeline::context::{MODEL_FILE, SCORES_FILE, StageContext, seed_offset};
use crate::pipeline::learner::{FitSpec, fit};
use crate::pipeline::stage::Stage;
use crate::pipeline::train_steps::{StudentSettings, StudentTrainer, TeacherKind};
use crate::tstr::teacher_weights;

/// The teacher weight of the fixed-mix ablation (docs/method.md: s = 0.5).
pub const FIXED_MIX_WEIGHT: f32 = 0.5;

/// w(v) for every training video: from the score cache (clamped or min-max normalised), or
/// `fixed` for all. A video without a score gets the mean of the others.
fn video_weights(ctx: &StageContext<'_>, fixed: Option<f32>) -> Result<Vec<f32>> {
    let n = ctx.data.train.len();
    if let Some(w) = fixed {
        return Ok(vec![w; n]);
    }
    let path = ctx.stage_dir(Stage::Score).join(SCORES_FILE);
    if !path.is_file() {
        bail!("{} is missing: run the stage `score` first", path.display());
    }
    let cached: BTreeMap<String, f32> = read_scores(&path)?
        .into_iter()
        .map(|s| (s.video, s.score))
        .collect();
    let known: Vec<f32> = cached.values().copied().collect();
    if known.is_empty() {
        bail!("{}: no scores", path.display());
    }
    let mean = known.iter().sum::<f32>() / known.len() as f32;
    let raw: Vec<f32> = ctx
        .data
        .train
        .iter()
        .map(|e| cached.get(&ctx.data.key(&e.path)).copied().unwrap_or(mean))
        .collect();
    Ok(teacher_weights(&raw, ctx.config.tstr.normalization))
}

/// Distil both fine-tuned teachers into a student: TSTR-weighted (`fixed` = None) or with
/// one fixed weight for every video (the 50/50 ablation). Writes `<name>/model.mpk`.
pub fn student<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    stage: Stage,
    fixed: Option<f32>,
    devices: &[B::Device],
) -> Result<()> {
    let device = &devices[0];
    let c = &ctx.config.student;
    let seed = ctx.seed(seed_offset::STUDENT);
    let backbone = ctx.config.model.backbone();
    let classes = ctx.data.num_classes();
    let teacher = |t: TeacherKind| -> Result<VideoClassifier<B>> {
        let path = ctx.require(Stage::finetune(t))?;
        load_module(
            VideoClassifier::<B>::new(backbone, classes, device),
            &path,
            device,
        )
    };
    let invariant = teacher(TeacherKind::Invariant)?;
    let distinctive = teacher(TeacherKind::Distinctive)?;
    B::seed(device, seed);
    let student = match c.init {
        StudentInit::Distinctive => {
            classifier_from_ssl::<B>(ctx, Stage::PretrainDistinctive, device)?
        }
        StudentInit::Invariant => classifier_from_ssl::<B>(ctx, Stage::PretrainInvariant, device)?,
        StudentInit::Random => init_backbone(
            ctx,
            stage,
            ctx.config.model.classifier::<B>(classes, device),
        )?,
    };
    let weights = video_weights(ctx, fixed)?;
    let p = &ctx.data.partition;
    if p.unlabeled.is_empty() {
        bail!("the student needs unlabeled videos, but every training video is labeled");
    }
    let recipe = ctx.train_recipe();
    let (labeled, unlabeled) = (
        ctx.clip_dataset(ctx.data.items(&p.labeled, true), recipe, seed)?,
        ctx.clip_dataset(ctx.data.items(&p.unlabeled, false), recipe, seed + 1)?,
    );
    // The set that defines the epoch is padded to whole batches.
    let (labeled, unlabeled) = match c.epoch {
        StudentEpoch::Labeled => (labeled.padded_to_batches(c.optim.batch_size), unlabeled),
        StudentEpoch::Unlabeled => (labeled, unlabeled.padded_to_batches(c.optim.batch_size)),
    };
    let dataset = StudentDataset::new(
        labeled,
        unlabeled,
        p.labeled.iter().map(|&i| weights[i]).collect(),
        p.unlabeled.iter().map(|&i| weights[i]).collect(),
        c.epoch,
    );
    let (train, iterations) = ctx.train_loader(
        stage,
        StudentBatcher,
        dataset,
        c.optim.batch_size,
        seed,
        devices,
    )?;
    let empty = StudentDataset::new(
        ctx.clip_dataset(Vec::<LoaderItem>::new(), recipe, 0)?,
        ctx.clip_dataset(Vec::<LoaderItem>::new(), recipe, 0)?,
        Vec::new(),
        Vec::new(),
        c.epoch,
    );
    let valid = ctx.loader::<B::InnerBackend, _, _>(StudentBatcher, empty, 2, None, device);
    let model = StudentTrainer {
        student,
        invariant,
        distinctive,
        settings: StudentSettings {
            weights: c.loss_weights,
            distill: c.distill,
        },
    };
    let dir = ctx.stage_dir(stage);
    let spec = FitSpec {
        stage: stage.name(),
        dir: &dir,
        optim: c.optim,
        iterations_per_epoch: iterations,
        components: &["ce", "distill_labeled", "distill_unlabeled"],
        accuracy: true,
        log: ctx.log,
        disk: ctx.disk,
        burn_log: ctx.burn_log,
        nodes: ctx.nodes,
    };
    let trained = fit(model, &spec, devices, train, valid)?;
    save_module(ctx.disk, trained.student, &dir.join(MODEL_FILE))?;
    Ok(())
}
