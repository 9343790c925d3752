//! Stage `eval`: multi-view evaluation of every trained model on the test split, the TSTR
//! score's separation of the families, the linear probe's results and the prerequisites of a
//! claim experiment, all in `metrics.json`; and the accuracy table printed at the end of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, bail};
use burn::data::dataloader::DataLoader;
use burn::data::dataset::Dataset;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::score::{VideoScore, read_scores};
use crate::checkpoint::load_module;
use crate::data::batch::ClipTensors;
use crate::data::loader::LoaderItem;
use crate::data::synth::Family;
use crate::data::tensors::{ClipBatcher, VideoClipDataset};
use crate::model::VideoClassifier;
use crate::pipeline::accuracy::{Accuracy, FamilyAccuracy, accuracy, argmax, auroc};
use crate::pipeline::checks::{ALL_LABELS_ROW, prerequisites};
use crate::pipeline::context::{
    METRICS_FILE, PREDICTIONS_FILE, PROBE_FILE, SCORES_FILE, StageContext, eval_recipe,
    host_values, seed_offset,
};
use crate::pipeline::runlog::RunLog;
use crate::pipeline::stage::Stage;
use crate::tstr::teacher_weights;

/// The rows of `metrics.json`: (key, stage whose model is evaluated).
pub const EVAL_ROWS: [(&str, Stage); 6] = [
    ("student", Stage::Student),
    ("teacher_invariant", Stage::FinetuneInvariant),
    ("teacher_distinctive", Stage::FinetuneDistinctive),
    ("teacher_average", Stage::StudentAverage),
    ("baseline_supervised", Stage::Baseline),
    (ALL_LABELS_ROW, Stage::SupervisedAllLabels),
];

/// One class's line in `metrics.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClassReport {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<Family>,
    /// Mean temporal similarity of the class's training videos.
    pub score_mean: Option<f64>,
    /// Accuracy of each evaluated model on the class's test videos, percent.
    pub accuracy: BTreeMap<String, Option<f64>>,
}

/// Multi-view evaluation of every trained model on the test split; writes `metrics.json`.
pub fn evaluate<B: Backend>(ctx: &StageContext<'_>, device: &B::Device) -> Result<PathBuf> {
    let backbone = ctx.config.model.backbone();
    let classes = ctx.data.num_classes();
    let mut models = Vec::new();
    for (row, stage) in EVAL_ROWS {
        let path = ctx.model_path(stage);
        if path.is_file() {
            let m = load_module(
                VideoClassifier::<B>::new(backbone, classes, device),
                &path,
                device,
            )?;
            models.push((row, m));
        } else {
            ctx.log.line(&format!(
                "[eval] no {row} row: {} is missing",
                path.display()
            ));
        }
    }
    if models.is_empty() {
        bail!("nothing to evaluate: no stage has produced a model yet");
    }
    let recipe = eval_recipe(ctx.config)?;
    let items: Vec<LoaderItem> = ctx
        .data
        .test
        .iter()
        .map(|t| (t.path.clone(), Some(t.label)))
        .collect();
    let dataset = Arc::new(ctx.clip_dataset(items, recipe, ctx.seed(seed_offset::EVAL))?);
    let loader = ctx.loader(
        ClipBatcher,
        SharedDataset(dataset.clone()),
        ctx.config.eval.batch_size,
        None,
        device,
    );
    let total = ctx.data.test.len();
    let only_models: Vec<&VideoClassifier<B>> = models.iter().map(|(_, m)| m).collect();
    let probabilities = view_probabilities(&only_models, &*loader, classes, |done| {
        ctx.log.line(&format!("[eval] {done}/{total} test videos"))
    })?;
    write_predictions(ctx, &models, &probabilities)?;
    let skipped = dataset.skipped().len();
    let scores_path = ctx.stage_dir(Stage::Score).join(SCORES_FILE);
    let scores = if scores_path.is_file() {
        Some(read_scores(&scores_path)?)
    } else {
        None
    };
    let report = build_report(ctx, &models, &probabilities, scores.as_deref(), skipped);
    let path = ctx.dir.join(METRICS_FILE);
    ctx.disk
        .write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
    Ok(path)
}

/// Each model's class probabilities per video (keyed by the video's index in the loader's item
/// list): the softmax of every view's logits, averaged over the video's views. `progress` is
/// told how many videos are done after each batch.
pub fn view_probabilities<B: Backend>(
    models: &[&VideoClassifier<B>],
    loader: &dyn DataLoader<B, ClipTensors<B>>,
    classes: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<BTreeMap<usize, Vec<f32>>>> {
    let mut probabilities: Vec<BTreeMap<usize, Vec<f32>>> = vec![BTreeMap::new(); models.len()];
    for batch in loader.iter() {
        let [b, n, ..] = batch.clips.dims();
        let x = batch.flattened();
        for (model, store) in models.iter().zip(probabilities.iter_mut()) {
            let p = softmax(model.forward(x.clone()), 1)
                .reshape([b, n, classes])
                .mean_dim(1)
                .reshape([b * classes]);
            let values = host_values(p, "predictions")?;
            for (k, &v) in batch.videos.iter().enumerate() {
                store
                    .entry(v)
                    .or_insert_with(|| values[k * classes..(k + 1) * classes].to_vec());
            }
        }
        progress(probabilities.first().map_or(0, BTreeMap::len));
    }
    Ok(probabilities)
}

/// [`PREDICTIONS_FILE`]: a row per evaluated test video (its path under the data root, its
/// class, then each model's predicted class), tab-separated with a header.
fn write_predictions<B: Backend>(
    ctx: &StageContext<'_>,
    models: &[(&str, VideoClassifier<B>)],
    probabilities: &[BTreeMap<usize, Vec<f32>>],
) -> Result<()> {
    let names = &ctx.data.classes;
    let mut text = String::from("video\tlabel");
    for (row, _) in models {
        text.push('\t');
        text.push_str(row);
    }
    text.push('\n');
    for &v in probabilities
        .first()
        .map(|p| p.keys())
        .into_iter()
        .flatten()
    {
        let video = &ctx.data.test[v];
        text.push_str(&ctx.data.key(&video.path));
        text.push('\t');
        text.push_str(&names[video.label]);
        for store in probabilities {
            text.push('\t');
            text.push_str(store.get(&v).map_or("", |p| names[argmax(p)].as_str()));
        }
        text.push('\n');
    }
    ctx.disk
        .write_atomic(&ctx.dir.join(PREDICTIONS_FILE), text.as_bytes())
}

/// Lets a dataset be shared with the loader while the caller keeps reading its skip list.
pub(crate) struct SharedDataset(pub(crate) Arc<VideoClipDataset>);

impl Dataset<crate::data::clips::VideoClips> for SharedDataset {
    fn get(&self, index: usize) -> Option<crate::data::clips::VideoClips> {
        self.0.get(index)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn build_report<B: Backend>(
    ctx: &StageContext<'_>,
    models: &[(&str, VideoClassifier<B>)],
    probabilities: &[BTreeMap<usize, Vec<f32>>],
    scores: Option<&[VideoScore]>,
    skipped: usize,
) -> serde_json::Value {
    let classes = ctx.data.num_classes();
    let mut report = serde_json::Map::new();
    let mut accuracies: Vec<(&str, Accuracy)> = Vec::new();
    for ((row, _), store) in models.iter().zip(probabilities) {
        let labels: Vec<usize> = store.keys().map(|&v| ctx.data.test[v].label).collect();
        let probs: Vec<Vec<f32>> = store.values().cloned().collect();
        let a = accuracy(&probs, &labels, classes);
        let families = ctx
            .data
            .families
            .as_ref()
            .map(|f| FamilyAccuracy::of(&a.per_class, f));
        report.insert(
            row.to_string(),
            serde_json::json!({
                "top1": a.top1,
                "top5": a.top5,
                "mean_class_acc": a.mean_class_acc,
                "videos": a.videos,
                "families": families,
                "confusion": a.confusion,
            }),
        );
        accuracies.push((row, a));
    }
    let score_mean = |c: usize| -> Option<f64> {
        let s: Vec<f64> = scores?
            .iter()
            .filter(|s| s.label == c)
            .map(|s| s.score as f64)
            .collect();
        (!s.is_empty()).then(|| s.iter().sum::<f64>() / s.len() as f64)
    };
    let per_class: Vec<ClassReport> = (0..classes)
        .map(|c| ClassReport {
            name: ctx.data.classes[c].clone(),
            family: ctx.data.families.as_ref().map(|f| f[c]),
            score_mean: score_mean(c),
            accuracy: accuracies
                .iter()
                .map(|(row, a)| (row.to_string(), a.per_class[c]))
                .collect(),
        })
        .collect();
    report.insert(
        "classes".into(),
        serde_json::to_value(&per_class).unwrap_or_default(),
    );
    if let (Some(families), Some(scores)) = (&ctx.data.families, scores) {
        // Each family's scores, and the invariant teacher's weight w(v) the student gives
        // those videos (after `tstr.normalization`): how differently the families are treated.
        let all: Vec<f32> = scores.iter().map(|s| s.score).collect();
        let weights = teacher_weights(&all, ctx.config.tstr.normalization);
        let of = |f: Family| -> (Vec<f32>, Vec<f32>) {
            scores
                .iter()
                .zip(&weights)
                .filter(|(s, _)| families.get(s.label) == Some(&f))
                .map(|(s, &w)| (s.score, w))
                .unzip()
        };
        let (inv, inv_weights) = of(Family::Invariant);
        let (dis, dis_weights) = of(Family::Distinctive);
        let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64;
        report.insert(
            "tstr".into(),
            serde_json::json!({
                "score_mean_invariant_classes": mean(&inv),
                "score_mean_distinctive_classes": mean(&dis),
                "auroc": auroc(&inv, &dis),
                "weight_mean_invariant_classes": mean(&inv_weights),
                "weight_mean_distinctive_classes": mean(&dis_weights),
            }),
        );
    }
    let probe = ctx.stage_dir(Stage::Probe).join(PROBE_FILE);
    if let Some(value) = std::fs::read_to_string(&probe)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
    {
        report.insert("probe".into(), value);
    }
    report.insert("test_videos".into(), ctx.data.test.len().into());
    report.insert("skipped_videos".into(), skipped.into());
    let mut report = serde_json::Value::Object(report);
    if let Some(c) = &ctx.config.checks {
        let verdicts = prerequisites(&report, c);
        for p in &verdicts {
            if p.passed {
                ctx.log.line(&format!(
                    "[eval] prerequisite ({}) holds: {} — {}",
                    p.id, p.requirement, p.measured
                ));
            } else {
                ctx.log.line(&format!(
                    "[eval] !!! PREREQUISITE ({}) FAILED: {} — measured: {} — the claim cannot be read from this run alone (`timebalance summarize` decides each prerequisite across seeds)",
                    p.id, p.requirement, p.measured
                ));
            }
        }
        report["prerequisites"] = serde_json::to_value(&verdicts).unwrap_or_default();
    }
    report
}

/// Print the accuracy table of `metrics.json`.
pub fn print_summary(log: &RunLog, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    log.line(&format!(
        "{:<22} {:>7} {:>7} {:>9}",
        "model", "top1", "top5", "mean_cls"
    ));
    for (row, _) in EVAL_ROWS {
        if let Some(r) = v.get(row) {
            let f = |k: &str| r.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
            log.line(&format!(
                "{row:<22} {:>7.2} {:>7.2} {:>9.2}",
                f("top1"),
                f("top5"),
                f("mean_class_acc")
            ));
        }
    }
    if let Some(t) = v.get("tstr") {
        log.line(&format!("tstr {t}"));
    }
    if let Some(list) = v.get("prerequisites").and_then(|p| p.as_array()) {
        let failed: Vec<&str> = list
            .iter()
            .filter(|p| p.get("passed").and_then(|x| x.as_bool()) != Some(true))
            .filter_map(|p| p.get("id").and_then(|x| x.as_str()))
            .collect();
        log.line(&if failed.is_empty() {
            format!("prerequisites: all {} hold", list.len())
        } else {
            format!(
                "prerequisites: !!! {} of {} FAILED ({}) — see metrics.json",
                failed.len(),
                list.len(),
                failed.join(", ")
            )
        });
    }
    Ok(())
}
