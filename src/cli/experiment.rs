//! `experiment` and the per-stage commands: which experiment, where, on which device.

use std::path::PathBuf;

use anyhow::{Context, Result};

use timebalance::device::DeviceSpec;
use timebalance::disk::Disk;
use timebalance::nodes::{Endpoint, NodeGroup};
use timebalance::pipeline::{RunOptions, Stage, prepare_run};
use timebalance::report::report_run;

/// Which experiment, where, on which device.
#[derive(clap::Args)]
pub struct RunArgs {
    /// A named experiment (`timebalance experiments`) or a path to a .toml file.
    experiment: String,
    /// Dataset directory (required except for the synthetic experiments).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// cpu (flex, default), ndarray, cuda[:N], wgpu, metal, vulkan.
    #[arg(long, default_value = "cpu", conflicts_with = "devices")]
    device: DeviceSpec,
    /// Data-parallel training on several devices of one backend: cuda:0,cuda:1 (each takes
    /// an equal part of every batch; batch sizes stay global). Stages that do not train use
    /// the first.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    devices: Vec<DeviceSpec>,
    /// Parent of the run directory.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Override a configuration value: --set pretrain.epochs=10 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Start every model trained from scratch (teachers' pre-training, baseline, all-label
    /// reference, a random-init student) from this PyTorch file's backbone: the same as
    /// `--set model.init_from=PATH` (see also model.init_layout, model.channels).
    #[arg(long, value_name = "PATH")]
    init_from: Option<PathBuf>,
    /// Rerun the selected stages even if they are complete.
    #[arg(long)]
    force: bool,
    /// Multi-node training: how many nodes (processes, one device each) train together;
    /// with --node-rank, --coordinator and --node-address (README, "Several machines").
    #[arg(long, requires_all = ["node_rank", "coordinator", "node_address"], conflicts_with = "devices")]
    nodes: Option<usize>,
    /// This node's rank: 0 to nodes - 1.
    #[arg(long, requires = "nodes")]
    node_rank: Option<usize>,
    /// Where the coordinator listens (`timebalance coordinator --port PORT`).
    #[arg(long, value_name = "HOST:PORT", requires = "nodes")]
    coordinator: Option<Endpoint>,
    /// Where the other nodes reach this one; it listens on PORT, on every interface.
    #[arg(long, value_name = "HOST:PORT", requires = "nodes")]
    node_address: Option<Endpoint>,
}

impl RunArgs {
    pub fn run(mut self, stages: Option<Vec<Stage>>) -> Result<()> {
        if let Some(path) = &self.init_from {
            // Absolute, so that a resume from another directory reads the same file (and the
            // drift check compares the same string); as a TOML string, so that no path is
            // read as another type.
            let path = std::fs::canonicalize(path)
                .with_context(|| format!("--init-from {}", path.display()))?;
            let path = toml::Value::String(path.display().to_string());
            self.overrides.push(format!("model.init_from={path}"));
        }
        let opts = RunOptions {
            experiment: self.experiment,
            data_root: self.data_root,
            devices: match self.devices.is_empty() {
                true => vec![self.device],
                false => self.devices,
            },
            out: self.out,
            overrides: self.overrides,
            stages,
            force: self.force,
            nodes: match (
                self.nodes,
                self.node_rank,
                self.coordinator,
                self.node_address,
            ) {
                (Some(nodes), Some(rank), Some(coordinator), Some(address)) => {
                    Some(NodeGroup::new(nodes, rank, coordinator, address)?)
                }
                _ => None,
            },
        };
        let dir = prepare_run(&opts)?.run_on(&opts.devices)?;
        println!("run directory: {}", dir.display());
        // The run's results are complete at this point: a report that cannot be drawn is
        // said, not a failed run (`timebalance report DIR` draws it again).
        match Disk::from_env().and_then(|disk| report_run(&dir, None, &disk)) {
            Ok(page) => println!("report: {}", page.display()),
            Err(e) => eprintln!("warning: the report of {} failed: {e:#}", dir.display()),
        }
        Ok(())
    }
}
