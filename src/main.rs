//! The `timebalance` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use timebalance::bench::{BenchMode, ModelBench};
use timebalance::device::{DeviceSpec, compiled_devices, dispatch};
use timebalance::model::import::KeyLayout;
use timebalance::model::{Arch, BackboneConfig, FULL_WIDTH};
use timebalance::smoke::SmokeRun;
use timebalance::weights::ImportTask;

#[derive(Parser)]
#[command(name = "timebalance", version, about = "Semi-supervised video action recognition with TimeBalance (CVPR 2023)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Model weights: import PyTorch files into our checkpoint format.
    Weights {
        #[command(subcommand)]
        what: WeightsCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Forward + backward + Adam step on random clips; last line `median_s <seconds>`.
    Train(BenchArgs),
    /// Inference forward pass on random clips; last line `median_s <seconds>`.
    Forward(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    #[arg(long, value_enum, default_value = "r3d18")]
    arch: Arch,
    /// Base width (64 = the real model).
    #[arg(long, default_value_t = FULL_WIDTH)]
    width: usize,
    #[arg(long, default_value_t = 8)]
    frames: usize,
    #[arg(long, default_value_t = 112)]
    size: usize,
    #[arg(long, default_value_t = 2)]
    batch: usize,
    #[arg(long, default_value_t = 101)]
    classes: usize,
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Timed iterations (after warm-up).
    #[arg(long, default_value_t = 5)]
    iters: usize,
    #[arg(long, default_value_t = 1)]
    warmup: usize,
}

#[derive(Subcommand)]
enum WeightsCommand {
    /// Load a torchvision/PyTorchVideo state dict (.safetensors, .pth, .pt), check it fits
    /// the architecture and save it as a timebalance model file (.mpk).
    Import {
        file: PathBuf,
        #[arg(long, value_enum)]
        arch: Arch,
        #[arg(long, default_value_t = FULL_WIDTH)]
        width: usize,
        /// Number of classes of the file's classifier (torchvision's Kinetics models: 400).
        #[arg(long)]
        classes: usize,
        #[arg(long, value_enum, default_value = "torchvision")]
        layout: KeyLayout,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info => {
            println!("devices: {}", compiled_devices().join(", "));
            println!("backbones: r3d18, r3d18_dilated, r2plus1d18, mc3_18, slow_r50");
            Ok(())
        }
        Command::Smoke { device, steps } => {
            let report = dispatch(device, SmokeRun { steps })?;
            println!("{report}");
            Ok(())
        }
        Command::Bench { what } => {
            let (mode, args) = match what {
                BenchCommand::Train(a) => (BenchMode::Train, a),
                BenchCommand::Forward(a) => (BenchMode::Forward, a),
            };
            let task = ModelBench {
                mode,
                backbone: BackboneConfig::new(args.arch, args.width),
                classes: args.classes,
                batch: args.batch,
                frames: args.frames,
                size: args.size,
                iters: args.iters,
                warmup: args.warmup,
            };
            let times = dispatch(args.device, task).context("running the benchmark")?;
            for (i, s) in times.seconds.iter().enumerate() {
                println!("iter {i}: {s:.4} s");
            }
            println!("median_s {:.6}", times.median());
            Ok(())
        }
        Command::Weights { what } => match what {
            WeightsCommand::Import {
                file,
                arch,
                width,
                classes,
                layout,
                out,
                device,
            } => {
                let task = ImportTask {
                    file,
                    backbone: BackboneConfig::new(arch, width),
                    classes,
                    layout,
                    out,
                };
                let written = dispatch(device, task)?;
                println!("wrote {}", written.display());
                Ok(())
            }
        },
    }
}
