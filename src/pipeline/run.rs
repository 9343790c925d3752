//! `timebalance experiment NAME`: resolve the configuration, prepare the data, and run the
//! stages in order in `runs/NAME/`, skipping finished stages and resuming interrupted ones.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;

use super::burn_log::BurnLog;
use super::config::{DataSource, ExperimentConfig};
use super::context::{
    CLASSES_FILE, CONFIG_FILE, DONE_FILE, LABELED_FILE, LOG_FILE, PreparedData, StageContext,
    class_list,
};
use super::drift;
use super::lock::RunLock;
use super::registry;
use super::runlog::RunLog;
use super::stage::Stage;
use super::stages::run_stage;
use crate::data::datasets::load_index;
use crate::data::partition::load_or_create;
use crate::data::synth::{self, ClassesFile, SynthConfig};
use crate::data::tensors::SkipLog;
use crate::device::{BackendTask, DeviceSpec, dispatch_on};
use crate::disk::Disk;
use crate::nodes::NodeGroup;

/// Where a synthetic dataset is generated in the run directory (without `--data-root`).
const SYNTH_DIR: &str = "data";
/// Marker of a completely generated synthetic dataset.
const SYNTH_DONE: &str = ".complete";
/// Frame rate of generated synthetic videos.
const SYNTH_FPS: u32 = 25;

/// What `experiment` (and each stage subcommand) was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// A named experiment or a path to a TOML file.
    pub experiment: String,
    pub data_root: Option<PathBuf>,
    /// Where training runs: one device, or several of one backend (data-parallel: each
    /// takes an equal part of every batch, `crate::pipeline::learner`).
    pub devices: Vec<DeviceSpec>,
    pub out: PathBuf,
    pub overrides: Vec<String>,
    /// Stages to run (all when `None`).
    pub stages: Option<Vec<Stage>>,
    /// Rerun the selected stages even when finished (their directories are cleared).
    pub force: bool,
    /// In a multi-node run: this node's place (`crate::nodes`; one device per node).
    pub nodes: Option<NodeGroup>,
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
        check_run_name(&name, experiment)?;
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

/// A run directory's name (`--out/NAME`) must be one plain path component: an experiment file
/// named `...toml` would otherwise make the run directory `--out`'s parent (and `--force`
/// clear stage-named folders there).
fn check_run_name(name: &str, experiment: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.starts_with('.');
    if !plain {
        bail!(
            "{experiment}: the run directory would be named {name:?}; name the experiment file NAME.toml with a plain NAME (letters, digits, _ or -)"
        );
    }
    Ok(())
}

/// A run resolved and its data prepared, ready to train on a backend: [`PreparedRun::run_on`]
/// (or [`crate::device::dispatch`]; it returns the run directory).
pub struct PreparedRun {
    config: ExperimentConfig,
    data: PreparedData,
    dir: PathBuf,
    log: RunLog,
    stages: Vec<Stage>,
    disk: Disk,
    burn_log: BurnLog,
    nodes: Option<NodeGroup>,
    /// Held until the run ends: one command per run directory.
    _lock: RunLock,
}

/// Resolve the experiment, create and lock the run directory, check the configuration against
/// the one that made the directory, index the data, draw (or reload) the labeled split, check
/// that the selected stages can run, and only then write the resolved configuration; `--force`
/// clears the selected stages (and those a changed configuration makes stale).
pub fn prepare_run(opts: &RunOptions) -> Result<PreparedRun> {
    let disk = Disk::from_env()?;
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
    let lock = RunLock::acquire(&dir)?;
    let log = RunLog::open(&dir.join(LOG_FILE))?;
    let stages = opts.stages.clone().unwrap_or_else(|| Stage::ALL.to_vec());
    let mut to_clear = if opts.force {
        stages.clone()
    } else {
        Vec::new()
    };
    to_clear.extend(check_drift(&config, &dir, opts.force, &log)?);
    for s in &to_clear {
        let d = dir.join(s.name());
        if d.exists() {
            std::fs::remove_dir_all(&d).with_context(|| format!("clearing {}", d.display()))?;
        }
    }
    let devices: Vec<String> = opts.devices.iter().map(ToString::to_string).collect();
    let node = match &opts.nodes {
        Some(group) => format!(" (node {} of {})", group.rank, group.nodes),
        None => String::new(),
    };
    log.line(&format!(
        "experiment {name} on {}{node} → {}",
        devices.join(","),
        dir.display()
    ));
    let data = prepare_data(&config, opts.data_root.as_deref(), &dir, &log, &disk)?;
    check_runnable(&data, &stages)?;
    disk.write_atomic(&dir.join(CONFIG_FILE), config.to_toml()?.as_bytes())?;
    disk.write_atomic(
        &dir.join(CLASSES_FILE),
        class_list(&data.classes).as_bytes(),
    )?;
    Ok(PreparedRun {
        config,
        data,
        dir,
        log,
        stages,
        disk,
        burn_log: BurnLog::default(),
        nodes: opts.nodes.clone(),
        _lock: lock,
    })
}

/// Compare `config` with the configuration that made `dir` (its `config.toml`). Without
/// `--force` a difference that changes results is an error listing the keys; with it, the
/// stale stages are returned (to be cleared), and the labeled list and generated videos are
/// removed when the changes touch them.
fn check_drift(
    config: &ExperimentConfig,
    dir: &Path,
    force: bool,
    log: &RunLog,
) -> Result<Vec<Stage>> {
    let path = dir.join(CONFIG_FILE);
    if !path.is_file() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    // Read through the typed configuration when it still parses, so that a key added since
    // the directory was made, at its default, is no difference; else compare the raw text.
    let old: toml::Table = match toml::from_str::<ExperimentConfig>(&text) {
        Ok(typed) => toml::Table::try_from(&typed).context("the old configuration as TOML")?,
        Err(_) => text
            .parse()
            .with_context(|| format!("{}: not a TOML table", path.display()))?,
    };
    let new = toml::Table::try_from(config).context("the resolved configuration as TOML")?;
    let changes = drift::changes(&old, &new);
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let stale = drift::affected(&changes);
    let listed: Vec<String> = changes.iter().map(|c| format!("  {c}")).collect();
    let names: Vec<&str> = stale.iter().map(|s| s.name()).collect();
    if !force {
        bail!(
            "{} was made with another configuration ({}); the differences that change results:\n{}\nRerun with --force to start the stages they touch afresh ({}), or give another --out",
            dir.display(),
            path.display(),
            listed.join("\n"),
            names.join(", ")
        );
    }
    log.line(&format!(
        "--force: the configuration changed ({}); starting afresh: {}",
        changes
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        names.join(", ")
    ));
    if drift::touches_labeled_list(&changes) {
        remove_if_present(&dir.join(LABELED_FILE))?;
    }
    if drift::touches_synthetic_videos(&changes) {
        remove_if_present(&dir.join(SYNTH_DIR))?;
    }
    Ok(stale)
}

fn remove_if_present(path: &Path) -> Result<()> {
    let removed = if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// What can be checked before any training: the student stages need unlabeled videos.
fn check_runnable(data: &PreparedData, stages: &[Stage]) -> Result<()> {
    let students: Vec<&str> = stages
        .iter()
        .filter(|s| matches!(s, Stage::Student | Stage::StudentAverage))
        .map(|s| s.name())
        .collect();
    if !students.is_empty() && data.partition.unlabeled.is_empty() {
        bail!(
            "every training video is labeled ({} videos), so the stages {} have no unlabeled videos to distil on; label fewer (data.labeled_fraction or data.labeled_per_class) or leave those stages out with --stages",
            data.partition.labeled.len(),
            students.join(", ")
        );
    }
    Ok(())
}

/// Index the dataset (generating the synthetic one if needed) and draw or reload the
/// labeled partition (`labeled.txt` in the run directory).
fn prepare_data(
    config: &ExperimentConfig,
    data_root: Option<&Path>,
    dir: &Path,
    log: &RunLog,
    disk: &Disk,
) -> Result<PreparedData> {
    let d = &config.data;
    let root = match (d.source, data_root) {
        (_, Some(root)) => root.to_path_buf(),
        (DataSource::Synthetic, None) => {
            let root = dir.join(SYNTH_DIR);
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
                    distinctive_changes: s.distinctive_changes.clone(),
                })?;
                disk.write_atomic(&root.join(SYNTH_DONE), b"")?;
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
        disk,
        &dir.join(LABELED_FILE),
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

impl PreparedRun {
    /// Run on the backend `device` names; not generic, so compiled once, in the library
    /// (see [`crate::device`]).
    pub fn run_on(self, devices: &[DeviceSpec]) -> Result<PathBuf> {
        dispatch_on(devices, self)
    }
}

impl BackendTask for PreparedRun {
    type Output = PathBuf;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<PathBuf> {
        self.run_on_devices::<B>(vec![device])
    }

    /// Run the stages in order, skipping finished ones (evaluation always reruns). Training
    /// stages use every device, the others the first. In a multi-node run, the node first
    /// joins the others, and before each stage they check that they agree on it.
    fn run_on_devices<B: AutodiffBackend>(self, devices: Vec<B::Device>) -> Result<PathBuf> {
        let membership = match &self.nodes {
            None => None,
            Some(group) => {
                if devices.len() != 1 {
                    bail!(
                        "a multi-node run trains on one device per node (got {}): start one node per device, each with its own --node-rank",
                        devices.len()
                    );
                }
                self.log.line(&format!(
                    "node {} of {}: joining through the coordinator at {}, serving tensors at {}",
                    group.rank, group.nodes, group.coordinator, group.address
                ));
                let membership = group.join::<B::InnerBackend>(&devices[0])?;
                self.log
                    .line(&format!("node {}: every node joined", group.rank));
                Some(membership)
            }
        };
        let peer = membership.as_ref().map(|m| m.peer());
        let fingerprint = crate::nodes::fingerprint(&self.config.to_toml()?);
        for &stage in &self.stages {
            // A fresh context per stage: its skipped videos are counted for it alone.
            let ctx = StageContext {
                config: &self.config,
                data: &self.data,
                dir: &self.dir,
                log: &self.log,
                disk: &self.disk,
                burn_log: &self.burn_log,
                skips: SkipLog::default(),
                nodes: peer,
            };
            let name = stage.name();
            let done = ctx.stage_dir(stage).join(DONE_FILE);
            if let Some(peer) = peer {
                let index = Stage::ALL
                    .iter()
                    .position(|&s| s == stage)
                    .unwrap_or_default();
                let skipped = stage != Stage::Eval && done.is_file();
                peer.check_agree::<B::InnerBackend>(
                    &format!("[{name}] the configuration, the stage and whether it is complete"),
                    &[fingerprint, index as u32, u32::from(skipped)],
                    &devices[0],
                )?;
            }
            if stage != Stage::Eval && done.is_file() {
                self.log.line(&format!(
                    "[{name}] already complete, skipped (--force reruns it)"
                ));
                continue;
            }
            self.log.line(&format!("[{name}] starting"));
            let started = Instant::now();
            run_stage::<B>(&ctx, stage, &devices).with_context(|| format!("stage {name}"))?;
            let seconds = started.elapsed().as_secs_f64();
            let skipped: Vec<String> = ctx.skips.paths().iter().map(|p| self.data.key(p)).collect();
            self.disk.write_atomic(
                &done,
                serde_json::json!({
                    "stage": name,
                    "seconds": seconds,
                    "skipped_videos": skipped.len(),
                    "skipped": skipped,
                })
                .to_string()
                .as_bytes(),
            )?;
            let skipped_note = match skipped.first() {
                None => String::new(),
                Some(first) => format!(
                    "; {} unreadable videos skipped (e.g. {first}; all in {}/{DONE_FILE})",
                    skipped.len(),
                    name
                ),
            };
            self.log.line(&format!(
                "[{name}] complete in {seconds:.1} s{skipped_note}"
            ));
        }
        Ok(self.dir)
    }
}
