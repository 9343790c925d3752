//! The `timebalance` command line: argument parsing (clap) and the dispatch of each command
//! to the library. Binary side only: the library knows nothing of clap's commands, and each
//! command's work lives in the library (`timebalance::pipeline`, `commands`, `bench`).
//!
//! One file per command group: [`experiment`] (the pipeline and its stages), [`data`],
//! [`bench`], [`weights`]; [`allocator`] sets how the process keeps freed memory.

pub mod allocator;
pub mod bench;
#[cfg(feature = "video")]
pub mod data;
#[cfg(feature = "video")]
pub mod experiment;
pub mod weights;

#[cfg(feature = "video")]
use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use bench::BenchCommand;
#[cfg(feature = "video")]
use data::DataCommand;
#[cfg(feature = "video")]
use experiment::RunArgs;
use timebalance::device::{DeviceSpec, compiled_devices};
#[cfg(feature = "video")]
use timebalance::names::by_name;
use timebalance::nodes::{DEFAULT_COORDINATOR_PORT, serve_coordinator};
#[cfg(feature = "video")]
use timebalance::pipeline::predict::PredictTask;
#[cfg(feature = "video")]
use timebalance::pipeline::{Stage, TeacherKind, registry};
use timebalance::smoke::SmokeRun;
use weights::WeightsCommand;

#[derive(Parser)]
#[command(
    name = "timebalance",
    version,
    about = "Semi-supervised video action recognition with TimeBalance (CVPR 2023)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the compiled devices and backbones.
    Info,
    /// A short end-to-end check: a tiny model trained for a few steps on random clips.
    Smoke {
        /// cpu (flex, default), ndarray, cuda[:N], wgpu, metal, vulkan.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        #[arg(long, default_value_t = 10)]
        steps: usize,
    },
    /// Benchmarks (see benches/README.md).
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Video data: decode frames, draw label splits, check a dataset, make the synthetic set.
    #[cfg(feature = "video")]
    Data {
        #[command(subcommand)]
        what: DataCommand,
    },
    /// Model weights: import PyTorch files into our checkpoint format.
    Weights {
        #[command(subcommand)]
        what: WeightsCommand,
    },
    /// Run a named experiment (or a .toml file) end to end in OUT/NAME: every stage in order,
    /// finished stages skipped, interrupted ones resumed from their last checkpoint.
    #[cfg(feature = "video")]
    Experiment {
        #[command(flatten)]
        run: RunArgs,
        /// Comma-separated stages to run (default: all): pretrain, finetune, pretrain_invariant,
        /// pretrain_distinctive, finetune_invariant, finetune_distinctive, score, probe, student,
        /// student_average, baseline, supervised_all_labels, eval.
        #[arg(long)]
        stages: Option<String>,
    },
    /// List the named experiments.
    #[cfg(feature = "video")]
    Experiments,
    /// Stage: self-supervised pre-training of one teacher.
    #[cfg(feature = "video")]
    Pretrain {
        /// invariant or distinctive.
        #[arg(long, value_parser = by_name::<TeacherKind>)]
        teacher: TeacherKind,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stage: fine-tune a pre-trained teacher on the labeled subset.
    #[cfg(feature = "video")]
    Finetune {
        /// invariant or distinctive.
        #[arg(long, value_parser = by_name::<TeacherKind>)]
        teacher: TeacherKind,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stage: temporal similarity score of every training video (cached in score/scores.tsv).
    #[cfg(feature = "video")]
    Score {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stage: distil both teachers into the student, TSTR-weighted.
    #[cfg(feature = "video")]
    Student {
        /// Train the fixed 50/50 ablation (student_average) instead.
        #[arg(long)]
        fixed_mix: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stage: the supervised baseline, trained from scratch on the labeled subset.
    #[cfg(feature = "video")]
    Baseline {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stage: multi-view evaluation of every trained model; writes metrics.json.
    #[cfg(feature = "video")]
    Eval {
        #[command(flatten)]
        run: RunArgs,
    },
    /// Classify video files with a trained model of a run: the run's multi-view evaluation
    /// and class names; per video the most probable classes. Unreadable files are listed and
    /// make the exit status non-zero.
    #[cfg(feature = "video")]
    Predict {
        /// Video files, or directories searched recursively for video files.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// A stage directory of a run (RUN_DIR/student) or its model file (…/model.mpk).
        #[arg(long)]
        checkpoint: PathBuf,
        /// Classes listed per video.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// cpu (flex, default), ndarray, cuda[:N], wgpu, metal, vulkan.
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Figures (PNG and SVG) and a markdown page of a run: training curves of every stage,
    /// per-class accuracy by temporal-similarity score, the score per class family, confusion
    /// matrices and the metrics table, written into the run directory (`report.md`,
    /// `figures/`). With several runs: each model and stage side by side, into --out.
    #[cfg(feature = "video")]
    Report {
        /// Run directories (OUT/NAME).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to write (default: the run directory; required with several runs).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Serve the coordinator of multi-node training, until interrupted: start it once, then
    /// every node's command with --nodes N --node-rank R --coordinator HOST:PORT
    /// --node-address HOST:PORT (README, "Several machines").
    Coordinator {
        /// Port to listen on, on every interface.
        #[arg(long, default_value_t = DEFAULT_COORDINATOR_PORT)]
        port: u16,
    },
    /// Runs of one experiment side by side (seeds, generator seeds): mean ± standard error
    /// of every model, paired differences, the score, the probes and the prerequisites, as
    /// markdown.
    #[cfg(feature = "video")]
    Summarize {
        /// Run directories (OUT/NAME, each holding metrics.json and config.toml).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Write the markdown here too (atomically), besides printing it.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Run the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info => {
            println!("devices: {}", compiled_devices().join(", "));
            println!("backbones: r3d18, r3d18_dilated, r2plus1d18, mc3_18, slow_r50");
            Ok(())
        }
        Command::Smoke { device, steps } => {
            let report = SmokeRun { steps }.run_on(device)?;
            println!("{report}");
            Ok(())
        }
        #[cfg(feature = "video")]
        Command::Data { what } => data::run(what),
        #[cfg(feature = "video")]
        Command::Experiment { run, stages } => {
            let stages = stages.as_deref().map(Stage::parse_list).transpose()?;
            run.run(stages)
        }
        #[cfg(feature = "video")]
        Command::Experiments => {
            for e in registry::EXPERIMENTS {
                println!("{:<22} {}", e.name, e.description());
            }
            Ok(())
        }
        #[cfg(feature = "video")]
        Command::Pretrain { teacher, run } => run.run(Some(vec![Stage::pretrain(teacher)])),
        #[cfg(feature = "video")]
        Command::Finetune { teacher, run } => run.run(Some(vec![Stage::finetune(teacher)])),
        #[cfg(feature = "video")]
        Command::Score { run } => run.run(Some(vec![Stage::Score])),
        #[cfg(feature = "video")]
        Command::Student { fixed_mix, run } => run.run(Some(vec![if fixed_mix {
            Stage::StudentAverage
        } else {
            Stage::Student
        }])),
        #[cfg(feature = "video")]
        Command::Baseline { run } => run.run(Some(vec![Stage::Baseline])),
        #[cfg(feature = "video")]
        Command::Eval { run } => run.run(Some(vec![Stage::Eval])),
        #[cfg(feature = "video")]
        Command::Predict {
            inputs,
            checkpoint,
            top,
            device,
            json,
        } => {
            let report = PredictTask {
                inputs,
                checkpoint,
                top,
                progress: true,
            }
            .run_on(device)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            if !report.unreadable.is_empty() {
                anyhow::bail!(
                    "{} of {} files could not be read as videos",
                    report.unreadable.len(),
                    report.unreadable.len() + report.predictions.len()
                );
            }
            Ok(())
        }
        #[cfg(feature = "video")]
        Command::Report { runs, out } => {
            let disk = timebalance::disk::Disk::from_env()?;
            let page = match (runs.as_slice(), out) {
                ([run], out) => timebalance::report::report_run(run, out.as_deref(), &disk)?,
                (_, Some(out)) => timebalance::report::compare_runs(&runs, &out, &disk)?,
                (_, None) => anyhow::bail!("report of several runs: give --out DIR"),
            };
            println!("report: {}", page.display());
            Ok(())
        }
        #[cfg(feature = "video")]
        Command::Summarize { runs, out } => {
            let md = timebalance::pipeline::summary::summarize(&runs)?;
            print!("{md}");
            if let Some(path) = out {
                timebalance::disk::Disk::from_env()?.write_atomic(&path, md.as_bytes())?;
            }
            Ok(())
        }
        Command::Coordinator { port } => {
            println!(
                "coordinator listening on port {port}: start each node with --coordinator THIS_HOST:{port}"
            );
            serve_coordinator(port)
        }
        Command::Bench { what } => bench::run(what),
        Command::Weights { what } => weights::run(what),
    }
}
