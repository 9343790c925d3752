//! `timebalance experiment NAME`: resolve the configuration, prepare the data, and run the
//! stages in order in `runs/NAME/`, skipping finished stages and resuming interrupted ones.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;

use super::config::{DataSource, ExperimentConfig};
use super::registry;
use super::runlog::RunLog;
use super::stages::{
    self, FIXED_MIX_WEIGHT, PreparedData, StageContext, finetune_dir, pretrain_dir,
};
use super::steps::TeacherKind;
use crate::checkpoint::write_atomic;
use crate::data::datasets::load_index;
use crate::data::partition::load_or_create;
use crate::data::synth::{self, ClassesFile, SynthConfig};
use crate::device::{BackendTask, DeviceSpec, dispatch};

/// Marker written (atomically) when a stage has finished; its presence skips the stage.
const DONE_FILE: &str = "done.json";
/// The resolved configuration each run directory holds.
pub const CONFIG_FILE: &str = "config.toml";
/// Marker of a completely generated synthetic dataset.
const SYNTH_DONE: &str = ".complete";
/// Frame rate of generated synthetic videos.
const SYNTH_FPS: u32 = 25;

/// A step of the pipeline, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    PretrainInvariant,
    PretrainDistinctive,
    FinetuneInvariant,
    FinetuneDistinctive,
    Score,
    Probe,
    Student,
    StudentAverage,
    Baseline,
    /// The all-label reference (`[all_labels]`; nothing to do without that section).
    SupervisedAllLabels,
    Eval,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::PretrainInvariant,
        Stage::PretrainDistinctive,
        Stage::FinetuneInvariant,
        Stage::FinetuneDistinctive,
        Stage::Score,
        Stage::Probe,
        Stage::Student,
        Stage::StudentAverage,
        Stage::Baseline,
        Stage::SupervisedAllLabels,
        Stage::Eval,
    ];

    /// Name on the command line and directory name in the run.
    pub fn name(self) -> String {
        match self {
            Stage::PretrainInvariant => pretrain_dir(TeacherKind::Invariant),
            Stage::PretrainDistinctive => pretrain_dir(TeacherKind::Distinctive),
            Stage::FinetuneInvariant => finetune_dir(TeacherKind::Invariant),
            Stage::FinetuneDistinctive => finetune_dir(TeacherKind::Distinctive),
            Stage::Score => "score".into(),
            Stage::Probe => "probe".into(),
            Stage::Student => "student".into(),
            Stage::StudentAverage => "student_average".into(),
            Stage::Baseline => "baseline".into(),
            Stage::SupervisedAllLabels => stages::ALL_LABELS_STAGE.into(),
            Stage::Eval => "eval".into(),
        }
    }

    pub fn pretrain(t: TeacherKind) -> Stage {
        match t {
            TeacherKind::Invariant => Stage::PretrainInvariant,
            TeacherKind::Distinctive => Stage::PretrainDistinctive,
        }
    }

    pub fn finetune(t: TeacherKind) -> Stage {
        match t {
            TeacherKind::Invariant => Stage::FinetuneInvariant,
            TeacherKind::Distinctive => Stage::FinetuneDistinctive,
        }
    }

    /// Parse a comma-separated list; `pretrain` and `finetune` stand for both teachers.
    pub fn parse_list(text: &str) -> Result<Vec<Stage>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "pretrain" => out.extend(TeacherKind::BOTH.map(Stage::pretrain)),
                "finetune" => out.extend(TeacherKind::BOTH.map(Stage::finetune)),
                other => out.push(other.parse()?),
            }
        }
        if out.is_empty() {
            bail!("--stages: no stage named");
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl FromStr for Stage {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .with_context(|| {
                let names: Vec<String> = Stage::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown stage {s:?}; expected pretrain, finetune or one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What `experiment` (and each stage subcommand) was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A named experiment or a path to a TOML file.
    pub experiment: String,
    pub data_root: Option<PathBuf>,
    pub device: DeviceSpec,
    pub out: PathBuf,
    pub overrides: Vec<String>,
    /// Stages to run (all when `None`).
    pub stages: Option<Vec<Stage>>,
    /// Rerun the selected stages even when finished (their directories are cleared).
    pub force: bool,
}

/// The configuration and run-directory name of `experiment` (a name or a `.toml` path).
pub fn resolve(experiment: &str, overrides: &[String]) -> Result<(String, ExperimentConfig)> {
    let as_path = Path::new(experiment);
    if experiment.ends_with(".toml") || as_path.is_file() {
        let name = as_path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("experiment file name")?
            .to_string();
        return Ok((name, ExperimentConfig::from_file(as_path, overrides)?));
    }
    let named = registry::find(experiment).with_context(|| {
        format!(
            "unknown experiment {experiment:?}; `timebalance experiments` lists them (or give a .toml path)"
        )
    })?;
    let config = ExperimentConfig::from_toml(
        named.text,
        &format!("experiments/{}.toml", named.name),
        overrides,
    )?;
    Ok((named.name.to_string(), config))
}

/// Run an experiment; returns the run directory.
pub fn run_experiment(opts: &RunOptions) -> Result<PathBuf> {
    let (name, config) = resolve(&opts.experiment, &opts.overrides)?;
    if config.data.source != DataSource::Synthetic {
        match &opts.data_root {
            None => bail!(
                "experiment {name} reads {:?} data: give its directory with --data-root DIR",
                config.data.source
            ),
            Some(root) if !root.is_dir() => {
                bail!("--data-root {}: not a directory", root.display())
            }
            _ => {}
        }
    }
    let dir = opts.out.join(&name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let log = RunLog::open(&dir.join("log.txt"))?;
    write_atomic(&dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    log.line(&format!(
        "experiment {name} on {} → {}",
        opts.device,
        dir.display()
    ));
    let data = prepare_data(&config, opts.data_root.as_deref(), &dir, &log)?;
    let stages = opts.stages.clone().unwrap_or_else(|| Stage::ALL.to_vec());
    if opts.force {
        for s in &stages {
            let d = dir.join(s.name());
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("clearing {}", d.display()))?;
            }
        }
    }
    let task = PipelineTask {
        config: &config,
        data: &data,
        dir: &dir,
        log: &log,
        stages: &stages,
    };
    dispatch(opts.device, task)?;
    Ok(dir)
}

/// Index the dataset (generating the synthetic one if needed) and draw or reload the
/// labeled partition (`labeled.txt` in the run directory).
fn prepare_data(
    config: &ExperimentConfig,
    data_root: Option<&Path>,
    dir: &Path,
    log: &RunLog,
) -> Result<PreparedData> {
    let d = &config.data;
    let root = match (d.source, data_root) {
        (_, Some(root)) => root.to_path_buf(),
        (DataSource::Synthetic, None) => {
            let root = dir.join("data");
            let s = d.synthetic.as_ref().context("[data.synthetic] section")?;
            if !root.join(SYNTH_DONE).is_file() {
                log.line(&format!(
                    "generating the synthetic dataset into {} ({} classes × {} + {} videos)",
                    root.display(),
                    s.classes,
                    s.videos_per_class,
                    s.test_videos_per_class
                ));
                let started = Instant::now();
                synth::generate(&SynthConfig {
                    out: root.clone(),
                    classes: s.classes,
                    videos_per_class: s.videos_per_class,
                    test_videos_per_class: s.test_videos_per_class,
                    frames: s.frames,
                    size: s.size,
                    seed: s.seed,
                    fps: SYNTH_FPS,
                    object_scale: s.object_scale,
                    clutter: s.clutter,
                })?;
                std::fs::write(root.join(SYNTH_DONE), b"")?;
                log.line(&format!(
                    "generated in {:.1} s",
                    started.elapsed().as_secs_f64()
                ));
            }
            root
        }
        (_, None) => bail!("--data-root is required"),
    };
    let index = load_index(d.source.layout(), &root, d.split)
        .with_context(|| format!("indexing {}", root.display()))?;
    if !index.missing.is_empty() {
        log.line(&format!(
            "warning: {} listed videos are missing under {} (e.g. {})",
            index.missing.len(),
            root.display(),
            index.missing[0].display()
        ));
    }
    if index.train.is_empty() || index.test.is_empty() {
        bail!(
            "{}: the split has no training or no test videos",
            root.display()
        );
    }
    let partition = load_or_create(
        &dir.join("labeled.txt"),
        &index.train,
        index.num_classes(),
        d.labeled_amount()?,
        config.seed,
    )?;
    let families = read_families(&root)?;
    log.line(&format!(
        "data: {} classes, {} training videos ({} labeled, {} unlabeled), {} test videos",
        index.num_classes(),
        index.train.len(),
        partition.labeled.len(),
        partition.unlabeled.len(),
        index.test.len()
    ));
    Ok(PreparedData {
        root,
        classes: index.classes,
        families,
        train: index.train,
        test: index.test,
        partition,
    })
}

/// Class families from a synthetic dataset's `classes.json`, when there is one.
fn read_families(root: &Path) -> Result<Option<Vec<synth::Family>>> {
    let path = root.join("classes.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let file: ClassesFile =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(file.classes.iter().map(|c| c.family).collect()))
}

struct PipelineTask<'a> {
    config: &'a ExperimentConfig,
    data: &'a PreparedData,
    dir: &'a Path,
    log: &'a RunLog,
    stages: &'a [Stage],
}

impl BackendTask for PipelineTask<'_> {
    type Output = ();

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<()> {
        let ctx = StageContext {
            config: self.config,
            data: self.data,
            dir: self.dir,
            log: self.log,
        };
        for &stage in self.stages {
            let name = stage.name();
            let done = self.dir.join(&name).join(DONE_FILE);
            if stage != Stage::Eval && done.is_file() {
                self.log.line(&format!(
                    "[{name}] already complete, skipped (--force reruns it)"
                ));
                continue;
            }
            self.log.line(&format!("[{name}] starting"));
            let started = Instant::now();
            run_stage::<B>(&ctx, stage, &device).with_context(|| format!("stage {name}"))?;
            let seconds = started.elapsed().as_secs_f64();
            std::fs::create_dir_all(self.dir.join(&name))?;
            write_atomic(
                &done,
                serde_json::json!({ "stage": name, "seconds": seconds })
                    .to_string()
                    .as_bytes(),
            )?;
            self.log
                .line(&format!("[{name}] complete in {seconds:.1} s"));
        }
        Ok(())
    }
}

fn run_stage<B: AutodiffBackend>(
    ctx: &StageContext<'_>,
    stage: Stage,
    device: &B::Device,
) -> Result<()> {
    match stage {
        Stage::PretrainInvariant => stages::pretrain::<B>(ctx, TeacherKind::Invariant, device),
        Stage::PretrainDistinctive => stages::pretrain::<B>(ctx, TeacherKind::Distinctive, device),
        Stage::FinetuneInvariant => stages::finetune::<B>(ctx, TeacherKind::Invariant, device),
        Stage::FinetuneDistinctive => stages::finetune::<B>(ctx, TeacherKind::Distinctive, device),
        Stage::Score => stages::score::<B::InnerBackend>(ctx, device).map(|_| ()),
        Stage::Probe => super::probe::probe::<B>(ctx, device),
        Stage::Student => stages::student::<B>(ctx, "student", None, device),
        Stage::StudentAverage => {
            stages::student::<B>(ctx, "student_average", Some(FIXED_MIX_WEIGHT), device)
        }
        Stage::Baseline => stages::baseline::<B>(ctx, device),
        Stage::SupervisedAllLabels => stages::supervised_all_labels::<B>(ctx, device),
        Stage::Eval => {
            let path = stages::evaluate::<B::InnerBackend>(ctx, device)?;
            ctx.log.line(&format!("[eval] wrote {}", path.display()));
            print_summary(ctx.log, &path)
        }
    }
}

/// Print the accuracy table of `metrics.json`.
fn print_summary(log: &RunLog, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    log.line(&format!(
        "{:<22} {:>7} {:>7} {:>9}",
        "model", "top1", "top5", "mean_cls"
    ));
    for (row, _) in stages::EVAL_ROWS {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_lists_expand_and_sort() {
        let s = Stage::parse_list("eval,pretrain,score").unwrap();
        assert_eq!(
            s,
            vec![
                Stage::PretrainInvariant,
                Stage::PretrainDistinctive,
                Stage::Score,
                Stage::Eval
            ]
        );
        let err = Stage::parse_list("pretrian").unwrap_err().to_string();
        assert!(
            err.contains("pretrian") && err.contains("finetune_invariant"),
            "{err}"
        );
    }
}
