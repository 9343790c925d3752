//! Linear probe: do the teachers' frozen self-supervised features carry class information
//! beyond what random weights give? Features of every training and test video (averaged over
//! a few centre-crop clips) are standardised with the training statistics, and a linear
//! classifier is trained on *all* training labels with burn-train's Learner, for the random,
//! invariant and distinctive backbones alike. A representation diagnostic, not part of the
//! method: it uses labels the method never sees.
//!
//! What is read ([`ProbeReadout`]) and from which clips ([`ProbeClips`]) are settings, because
//! a time average cannot tell a video from its time reversal: the distinctive teacher is
//! trained to tell apart its 4 temporal slots of a self-supervised clip, and the order of
//! those slots is where it keeps direction, so its probe reads them in order.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use burn::train::{InferenceStep, TrainOutput, TrainStep};
use serde::{Deserialize, Serialize};

use crate::checkpoint::load_module;
use crate::data::clips::ClipRecipe;
use crate::data::datasets::VideoEntry;
use crate::data::loader::LoaderItem;
use crate::data::synth::Family;
use crate::data::tensors::ClipBatcher;
use crate::loss::cross_entropy;
use crate::model::{Backbone, Features, SslModel};
use crate::pipeline::accuracy::{Accuracy, FamilyAccuracy, accuracy};
use crate::pipeline::config::{Optimisation, ProbeClips, ProbeReadout};
use crate::pipeline::context::{MODEL_FILE, PROBE_FILE, StageContext, host_values, seed_offset};
use crate::pipeline::learner::{FitSpec, fit};
use crate::pipeline::runlog::RunLog;
use crate::pipeline::stage::Stage;
use crate::pipeline::train_metrics::StepOutput;
use crate::pipeline::train_steps::TeacherKind;

/// Seed step between the random backbones of [`ProbeConfig::random_draws`](crate::pipeline::config::ProbeConfig::random_draws).
const SEED_RANDOM_DRAW: u64 = 7_919;
/// Guards the standardisation against constant features.
const STD_EPS: f32 = 1e-6;
/// Under a backbone's probe directory: the cross-validation fits of the L2 strength.
const SELECTION_DIR: &str = "select";
/// Their epoch lines (kept out of the run's log: folds × strengths × epochs of them).
const SELECTION_LOG: &str = "log.txt";

/// One video's standardised features and label.
#[derive(Debug, Clone)]
pub struct FeatureItem {
    pub x: Vec<f32>,
    pub y: usize,
}

/// A batch of features and labels.
#[derive(Debug, Clone)]
pub struct FeatureBatch<B: Backend> {
    pub x: Tensor<B, 2>,
    pub y: Tensor<B, 1, Int>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FeatureBatcher;

impl<B: Backend> Batcher<B, FeatureItem, FeatureBatch<B>> for FeatureBatcher {
    fn batch(&self, items: Vec<FeatureItem>, device: &B::Device) -> FeatureBatch<B> {
        let n = items.len();
        let d = items.first().map_or(0, |i| i.x.len());
        let x: Vec<f32> = items.iter().flat_map(|i| i.x.iter().copied()).collect();
        let y: Vec<i64> = items.iter().map(|i| i.y as i64).collect();
        FeatureBatch {
            x: Tensor::from_data(TensorData::new(x, [n, d]), device),
            y: Tensor::from_data(TensorData::new(y, [n]), device),
        }
    }
}

/// The linear classifier on frozen features.
#[derive(Module, Debug)]
pub struct LinearProbe<B: Backend> {
    pub fc: Linear<B>,
}

fn probe_output<B: Backend>(m: &LinearProbe<B>, batch: &FeatureBatch<B>) -> StepOutput<B> {
    let logits = m.fc.forward(batch.x.clone());
    let n = batch.y.dims()[0];
    StepOutput {
        total: cross_entropy(logits.clone(), batch.y.clone()),
        components: Vec::new(),
        predictions: Some((logits, batch.y.clone())),
        videos: n,
        clips: n,
    }
}

impl<B: AutodiffBackend> TrainStep for LinearProbe<B> {
    type Input = FeatureBatch<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: FeatureBatch<B>) -> TrainOutput<StepOutput<B>> {
        let out = probe_output(self, &batch);
        let grads = out.total.backward();
        TrainOutput::new(self, grads, out)
    }
}

impl<B: Backend> InferenceStep for LinearProbe<B> {
    type Input = FeatureBatch<B>;
    type Output = StepOutput<B>;

    fn step(&self, batch: FeatureBatch<B>) -> StepOutput<B> {
        probe_output(self, &batch)
    }
}

/// Probe accuracy of one backbone, percent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub train_top1: f64,
    pub test_top1: f64,
    /// Test accuracy per class (label order).
    pub test_per_class: Vec<Option<f64>>,
    /// Test accuracy per class family, where families are known (synthetic sets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_families: Option<FamilyAccuracy>,
    /// Test top-1 of each draw, where this result is the mean of several random backbones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test_top1_draws: Vec<f64>,
    /// The L2 strength the classifier was trained with (absent in a mean of draws, each of
    /// which chose its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Cross-validated top-1 of each strength of `probe.weight_decay_grid`, where it was
    /// chosen from one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<ValidationPoint>,
}

/// One L2 strength's validation top-1 (percent, pooled over the folds).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub weight_decay: f64,
    pub top1: f64,
}

impl ProbeResult {
    /// The mean of several draws (each accuracy averaged; families recomputed from the mean
    /// per-class accuracies), keeping each draw's test top-1.
    fn mean_of(draws: &[ProbeResult], families: Option<&[Family]>) -> Self {
        let n = draws.len().max(1) as f64;
        let mean = |f: &dyn Fn(&ProbeResult) -> f64| draws.iter().map(f).sum::<f64>() / n;
        let classes = draws.first().map_or(0, |d| d.test_per_class.len());
        let test_per_class: Vec<Option<f64>> = (0..classes)
            .map(|k| {
                let v: Vec<f64> = draws.iter().filter_map(|d| d.test_per_class[k]).collect();
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            })
            .collect();
        Self {
            train_top1: mean(&|d| d.train_top1),
            test_top1: mean(&|d| d.test_top1),
            test_families: families.map(|f| FamilyAccuracy::of(&test_per_class, f)),
            test_per_class,
            test_top1_draws: draws.iter().map(|d| d.test_top1).collect(),
            weight_decay: None,
            validation: Vec::new(),
        }
    }
}

/// One feature vector per clip, `[B, F]` (pooled) or `[B, 4·F]` (slots; feature-major, each
/// feature's slots in time order).
fn read_out<B: Backend>(features: Features<B>, readout: ProbeReadout) -> Tensor<B, 2> {
    match readout {
        ProbeReadout::Pooled => features.pooled,
        ProbeReadout::Slots => features.slots.flatten(1, 2),
    }
}

/// Backbone features per video (the configured readout, averaged over the clips), in
/// `entries` order (a video that cannot be read keeps zeros and is counted in the log).
fn features<B: Backend>(
    ctx: &StageContext<'_>,
    backbone: &Backbone<B>,
    entries: &[VideoEntry],
    device: &B::Device,
) -> Result<Vec<Vec<f32>>> {
    let d = &ctx.config.data;
    let c = &ctx.config.probe;
    let (frames, stride, out_size) = match c.clip {
        ProbeClips::Finetune => (d.frames, d.stride, d.size),
        ProbeClips::Ssl => (d.ssl_frames, d.ssl_stride, d.ssl_size),
    };
    let recipe = ClipRecipe::Tstr {
        clips: c.clips,
        frames,
        stride,
        out_size,
    };
    let items: Vec<LoaderItem> = entries
        .iter()
        .map(|e| (e.path.clone(), Some(e.label)))
        .collect();
    let dataset = ctx.clip_dataset(items, recipe, 0)?;
    let loader = ctx.loader(
        ClipBatcher,
        dataset,
        ctx.config.tstr.batch_size,
        None,
        device,
    );
    let mut out: Vec<Option<Vec<f32>>> = vec![None; entries.len()];
    for batch in loader.iter() {
        let [b, n, ..] = batch.clips.dims();
        let per_clip = read_out(backbone.features(batch.flattened()), c.readout);
        let f = per_clip.dims()[1];
        let mean = host_values(
            per_clip.reshape([b, n, f]).mean_dim(1).reshape([b * f]),
            "features",
        )?;
        for (k, &v) in batch.videos.iter().enumerate() {
            out[v].get_or_insert_with(|| mean[k * f..(k + 1) * f].to_vec());
        }
    }
    let dim = out.iter().flatten().next().map_or(0, Vec::len);
    let missing = out.iter().filter(|o| o.is_none()).count();
    if missing > 0 {
        ctx.log.line(&format!(
            "[probe] {missing} unreadable videos get zero features"
        ));
    }
    Ok(out
        .into_iter()
        .map(|o| o.unwrap_or_else(|| vec![0.0; dim]))
        .collect())
}

/// Standardise `train` and `test` features with the training mean and deviation.
fn standardise(train: &mut [Vec<f32>], test: &mut [Vec<f32>]) {
    let Some(dim) = train.first().map(Vec::len) else {
        return;
    };
    let n = train.len() as f32;
    for j in 0..dim {
        let mean = train.iter().map(|x| x[j]).sum::<f32>() / n;
        let var = train.iter().map(|x| (x[j] - mean).powi(2)).sum::<f32>() / n;
        let std = var.sqrt().max(STD_EPS);
        for x in train.iter_mut().chain(test.iter_mut()) {
            x[j] = (x[j] - mean) / std;
        }
    }
}

/// Accuracy of `model` on `items`.
fn probe_accuracy<B: Backend>(
    model: &LinearProbe<B>,
    items: &[FeatureItem],
    classes: usize,
    device: &B::Device,
) -> Result<Accuracy> {
    let batch: FeatureBatch<B> = FeatureBatcher.batch(items.to_vec(), device);
    let n = items.len();
    let probs = host_values(
        burn::tensor::activation::softmax(model.fc.forward(batch.x), 1).reshape([n * classes]),
        "probe outputs",
    )?;
    let rows: Vec<Vec<f32>> = probs.chunks(classes).map(<[f32]>::to_vec).collect();
    let labels: Vec<usize> = items.iter().map(|i| i.y).collect();
    Ok(accuracy(&rows, &labels, classes))
}

/// Train a linear classifier on `items` with burn-train's Learner (checkpoints and metric
/// files under `dir`, epoch lines to `log`).
#[allow(clippy::too_many_arguments)]
fn fit_probe<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    stage: &str,
    dir: &Path,
    log: &RunLog,
    items: &[FeatureItem],
    classes: usize,
    weight_decay: f64,
    seed: u64,
    device: &B::Device,
) -> Result<LinearProbe<B::InnerBackend>> {
    let c = &ctx.config.probe;
    let dim = items.first().map_or(0, |i| i.x.len());
    B::seed(device, seed);
    let model = LinearProbe::<B> {
        fc: LinearConfig::new(dim, classes).init(device),
    };
    let batch_size = c.batch_size.min(items.len()).max(1);
    let iterations = items.len().div_ceil(batch_size);
    let loader = burn::data::dataloader::DataLoaderBuilder::new(FeatureBatcher)
        .batch_size(batch_size)
        .shuffle(seed)
        .set_device(device.clone())
        .build(InMemDataset::new(items.to_vec()));
    let valid = burn::data::dataloader::DataLoaderBuilder::new(FeatureBatcher)
        .batch_size(batch_size)
        .set_device(device.clone())
        .build(InMemDataset::<FeatureItem>::new(Vec::new()));
    let spec = FitSpec {
        stage,
        dir,
        optim: Optimisation {
            weight_decay,
            ..c.optimisation()
        },
        iterations_per_epoch: iterations,
        components: &[],
        accuracy: true,
        log,
        disk: ctx.disk,
        burn_log: ctx.burn_log,
        // Not data-parallel: on every node of a multi-node run the probe trains alone, on
        // every video (the same run on each).
        nodes: None,
    };
    fit(model, &spec, std::slice::from_ref(device), loader, valid)
}

/// The UCF101-style group of a video file (`v_Class_g08_c01.avi` → 8), where its name has one.
fn clip_group(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_str()?;
    let (_, rest) = stem.rsplit_once("_g")?;
    let (digits, _) = rest.split_once("_c")?;
    digits.parse().ok()
}

/// The cross-validation fold of each training video: its group modulo `k` (a group's clips,
/// which share a scene, stay in one fold; the synthetic generator draws a group's background
/// from the group number, so all classes' group g are one fold too); a video without a
/// group goes by its position.
fn folds(entries: &[VideoEntry], k: usize) -> Vec<usize> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| clip_group(&e.path).unwrap_or(i) % k)
        .collect()
}

/// Choose the probe's L2 strength from `grid` by `k`-fold cross-validation on the training
/// items: the best validation top-1 pooled over the folds, the stronger one on a tie.
#[allow(clippy::too_many_arguments)]
fn choose_weight_decay<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    name: &str,
    items: &[FeatureItem],
    fold_of: &[usize],
    classes: usize,
    seed: u64,
    device: &B::Device,
) -> Result<(f64, Vec<ValidationPoint>)> {
    let c = &ctx.config.probe;
    let mut grid = c.weight_decay_grid.clone();
    grid.sort_by(f64::total_cmp);
    let dir = ctx.stage_dir(Stage::Probe).join(name).join(SELECTION_DIR);
    std::fs::create_dir_all(&dir)?;
    let log = RunLog::open_quiet(&dir.join(SELECTION_LOG))?;
    // (fold, held-out items, training items), the same for every strength.
    let splits: Vec<(usize, Vec<FeatureItem>, Vec<FeatureItem>)> = (0..c.folds)
        .map(|fold| {
            let (held, kept): (Vec<_>, Vec<_>) =
                items.iter().zip(fold_of).partition(|(_, f)| **f == fold);
            let strip = |v: Vec<(&FeatureItem, _)>| v.into_iter().map(|(x, _)| x.clone()).collect();
            (fold, strip(held), strip(kept))
        })
        .filter(|(_, held, kept): &(_, Vec<_>, Vec<_>)| !held.is_empty() && !kept.is_empty())
        .collect();
    if splits.is_empty() {
        bail!(
            "probe.folds = {}: no fold leaves videos on both sides of the cross-validation",
            c.folds
        );
    }
    let mut points = Vec::with_capacity(grid.len());
    for (i, &weight_decay) in grid.iter().enumerate() {
        let mut correct = 0.0;
        let mut total = 0usize;
        for (fold, held, kept) in &splits {
            let model = fit_probe::<B>(
                ctx,
                &format!("probe_{name}_wd{weight_decay:e}_fold{fold}"),
                &dir.join(format!("wd{i}_fold{fold}")),
                &log,
                kept,
                classes,
                weight_decay,
                seed,
                device,
            )?;
            correct +=
                probe_accuracy(&model, held, classes, device)?.top1 / 100.0 * held.len() as f64;
            total += held.len();
        }
        points.push(ValidationPoint {
            weight_decay,
            top1: 100.0 * correct / total as f64,
        });
    }
    let best = best_point(&points).context("probe.weight_decay_grid is empty")?;
    ctx.log.line(&format!(
        "[probe] {name}: weight decay {:e} by {}-fold cross-validation (validation top-1: {})",
        best.weight_decay,
        c.folds,
        points
            .iter()
            .map(|p| format!("{:e} {:.2} %", p.weight_decay, p.top1))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok((best.weight_decay, points))
}

/// The best validation top-1 of `points` (ascending strengths), the strongest one on a tie:
/// of equally good classifiers the simpler.
fn best_point(points: &[ValidationPoint]) -> Option<ValidationPoint> {
    points
        .iter()
        .copied()
        .reduce(|best, p| if best.top1 > p.top1 { best } else { p })
}

/// Train a linear probe on one frozen backbone's features and measure it.
fn probe_backbone<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    name: &str,
    backbone: &Backbone<B::InnerBackend>,
    seed: u64,
    device: &B::Device,
) -> Result<ProbeResult> {
    let c = &ctx.config.probe;
    let classes = ctx.data.num_classes();
    ctx.log
        .line(&format!("[probe] features of the {name} backbone"));
    let mut train = features::<B::InnerBackend>(ctx, backbone, &ctx.data.train, device)?;
    let mut test = features::<B::InnerBackend>(ctx, backbone, &ctx.data.test, device)?;
    standardise(&mut train, &mut test);
    let to_items = |x: Vec<Vec<f32>>, entries: &[VideoEntry]| -> Vec<FeatureItem> {
        x.into_iter()
            .zip(entries)
            .map(|(x, e)| FeatureItem { x, y: e.label })
            .collect()
    };
    let train = to_items(train, &ctx.data.train);
    let test = to_items(test, &ctx.data.test);
    let (weight_decay, validation) = if c.weight_decay_grid.is_empty() {
        (c.weight_decay, Vec::new())
    } else {
        let fold_of = folds(&ctx.data.train, c.folds);
        choose_weight_decay::<B>(ctx, name, &train, &fold_of, classes, seed, device)?
    };
    let trained = fit_probe::<B>(
        ctx,
        &format!("probe_{name}"),
        &ctx.stage_dir(Stage::Probe).join(name),
        ctx.log,
        &train,
        classes,
        weight_decay,
        seed,
        device,
    )?;
    let on_test = probe_accuracy(&trained, &test, classes, device)?;
    let result = ProbeResult {
        train_top1: probe_accuracy(&trained, &train, classes, device)?.top1,
        test_top1: on_test.top1,
        test_families: ctx
            .data
            .families
            .as_ref()
            .map(|f| FamilyAccuracy::of(&on_test.per_class, f)),
        test_per_class: on_test.per_class,
        test_top1_draws: Vec::new(),
        weight_decay: Some(weight_decay),
        validation,
    };
    ctx.log.line(&format!(
        "[probe] {name}: train {:.2} %, test {:.2} %",
        result.train_top1, result.test_top1
    ));
    Ok(result)
}

/// Run the probe for the random backbones (`random_draws` of them, reported as their mean
/// under `random`), the invariant and the distinctive teacher; writes `probe/probe.json`.
pub fn probe<B: AutodiffBackend>(ctx: &StageContext<'_>, device: &B::Device) -> Result<()> {
    let c = &ctx.config.probe;
    if !c.enabled {
        ctx.log
            .line("[probe] disabled ([probe] enabled = false); nothing to do");
        return Ok(());
    }
    if c.random_draws == 0 {
        bail!("probe.random_draws must be at least 1");
    }
    let backbone_config = ctx.config.model.backbone();
    let seed = ctx.seed(seed_offset::PROBE);
    let mut results = serde_json::Map::new();
    let mut draws = Vec::with_capacity(c.random_draws);
    for k in 0..c.random_draws {
        let name = if k == 0 {
            "random".to_string()
        } else {
            format!("random_{k}")
        };
        B::InnerBackend::seed(
            device,
            seed.wrapping_add(SEED_RANDOM_DRAW.wrapping_mul(k as u64)),
        );
        let backbone = backbone_config.init(device);
        draws.push(probe_backbone::<B>(ctx, &name, &backbone, seed, device)?);
    }
    let random = if draws.len() == 1 {
        draws.remove(0)
    } else {
        let mean = ProbeResult::mean_of(&draws, ctx.data.families.as_deref());
        ctx.log.line(&format!(
            "[probe] random features, mean of {} backbones: test {:.2} % (each: {})",
            draws.len(),
            mean.test_top1,
            mean.test_top1_draws
                .iter()
                .map(|t| format!("{t:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        mean
    };
    results.insert("random".into(), serde_json::to_value(&random)?);
    for t in TeacherKind::BOTH {
        let path = ctx.stage_dir(Stage::pretrain(t)).join(MODEL_FILE);
        if !path.is_file() {
            bail!(
                "{} is missing: run the stage `{}` first",
                path.display(),
                Stage::pretrain(t)
            );
        }
        let m = load_module(
            SslModel::<B::InnerBackend>::new(backbone_config, device),
            &path,
            device,
        )?;
        let result = probe_backbone::<B>(ctx, t.name(), &m.backbone, seed, device)?;
        results.insert(t.name().into(), serde_json::to_value(&result)?);
    }
    let dir = ctx.stage_dir(Stage::Probe);
    std::fs::create_dir_all(&dir)?;
    ctx.disk.write_atomic(
        &dir.join(PROBE_FILE),
        serde_json::to_string_pretty(&serde_json::Value::Object(results))?.as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_readout_keeps_time_order() {
        type B = burn::backend::NdArray;
        let device = Default::default();
        // Two features × 4 slots; the value says (feature, slot).
        let slots =
            Tensor::<B, 3>::from_data([[[0.0, 1.0, 2.0, 3.0], [10.0, 11.0, 12.0, 13.0]]], &device);
        let features = || Features {
            slots: slots.clone(),
            pooled: slots.clone().mean_dim(2).reshape([1, 2]),
        };
        let read = |r| read_out(features(), r).into_data().to_vec::<f32>().unwrap();
        assert_eq!(
            read(ProbeReadout::Slots),
            [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0]
        );
        assert_eq!(read(ProbeReadout::Pooled), [1.5, 11.5]);
    }

    #[test]
    fn random_draws_are_averaged_per_class_and_kept() {
        let draw = |top1, per_class: [Option<f64>; 2]| ProbeResult {
            train_top1: top1 + 40.0,
            test_top1: top1,
            test_per_class: per_class.to_vec(),
            test_families: None,
            test_top1_draws: Vec::new(),
            weight_decay: None,
            validation: Vec::new(),
        };
        let draws = [
            draw(20.0, [Some(10.0), Some(30.0)]),
            draw(30.0, [Some(20.0), None]),
            draw(40.0, [Some(60.0), Some(20.0)]),
        ];
        let families = [Family::Invariant, Family::Distinctive];
        let mean = ProbeResult::mean_of(&draws, Some(&families));
        assert_eq!((mean.test_top1, mean.train_top1), (30.0, 70.0));
        assert_eq!(mean.test_per_class, [Some(30.0), Some(25.0)]);
        let fam = mean.test_families.unwrap();
        assert_eq!((fam.invariant, fam.distinctive), (Some(30.0), Some(25.0)));
        assert_eq!(mean.test_top1_draws, [20.0, 30.0, 40.0]);
    }

    #[test]
    fn folds_keep_each_group_whole_across_classes() {
        let entry = |p: &str| VideoEntry {
            path: p.into(),
            label: 0,
        };
        let entries = [
            entry("/d/A/v_A_g01_c01.avi"),
            entry("/d/A/v_A_g01_c02.avi"),
            entry("/d/B/v_B_g01_c01.avi"),
            entry("/d/A/v_A_g02_c01.avi"),
            entry("/d/B/v_B_g07_c03.avi"),
            entry("/d/K/no_group_here.mp4"),
        ];
        assert_eq!(clip_group(&entries[4].path), Some(7));
        assert_eq!(clip_group(&entries[5].path), None);
        // g01 ×3 one fold, g02 the next, g07 ≡ g02 (mod 5); no group: position 5 ≡ 0.
        assert_eq!(folds(&entries, 5), [1, 1, 1, 2, 2, 0]);
    }

    #[test]
    fn the_strongest_of_the_best_strengths_is_chosen() {
        let p = |weight_decay, top1| ValidationPoint { weight_decay, top1 };
        let pick = |points: &[ValidationPoint]| best_point(points).unwrap().weight_decay;
        assert_eq!(pick(&[p(1e-4, 40.0), p(1e-2, 55.0), p(1.0, 30.0)]), 1e-2);
        assert_eq!(pick(&[p(1e-4, 40.0), p(1e-2, 55.0), p(1e-1, 55.0)]), 1e-1);
        assert!(best_point(&[]).is_none());
    }

    #[test]
    fn standardise_uses_training_statistics() {
        let mut train = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let mut test = vec![vec![2.0, 6.0]];
        standardise(&mut train, &mut test);
        assert_eq!(train, vec![vec![-1.0, 0.0], vec![1.0, 0.0]]);
        assert_eq!(test[0][0], 0.0);
        assert!(
            test[0][1] > 1e5,
            "constant training feature: guarded, not NaN"
        );
    }
}
