//! The `timebalance` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use timebalance::bench::{BenchMode, ModelBench};
#[cfg(feature = "video")]
use timebalance::commands;
#[cfg(feature = "video")]
use timebalance::data::clips::ClipRecipe;
#[cfg(feature = "video")]
use timebalance::data::datasets::DatasetKind;
#[cfg(feature = "video")]
use timebalance::data::synth::{self, SynthConfig};
use timebalance::device::{DeviceSpec, compiled_devices, dispatch};
use timebalance::model::import::KeyLayout;
use timebalance::model::{Arch, BackboneConfig, FULL_WIDTH};
use timebalance::ops::ConvAlgorithm;
use timebalance::pipeline::TeacherKind;
#[cfg(feature = "video")]
use timebalance::pipeline::{RunOptions, Stage, registry, run_experiment};
use timebalance::smoke::SmokeRun;
use timebalance::weights::ImportTask;

#[derive(Parser)]
#[command(
    name = "timebalance",
    version,
    about = "Semi-supervised video action recognition with TimeBalance (CVPR 2023)"
)]
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
        #[arg(long, value_enum)]
        teacher: TeacherKind,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Stage: fine-tune a pre-trained teacher on the labeled subset.
    #[cfg(feature = "video")]
    Finetune {
        #[arg(long, value_enum)]
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

/// Which experiment, where, on which device.
#[cfg(feature = "video")]
#[derive(clap::Args)]
struct RunArgs {
    /// A named experiment (`timebalance experiments`) or a path to a .toml file.
    experiment: String,
    /// Dataset directory (required except for the synthetic experiments).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// cpu (flex, default), ndarray, cuda[:N], wgpu, metal, vulkan.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Parent of the run directory.
    #[arg(long, default_value = "runs")]
    out: PathBuf,
    /// Override a configuration value: --set pretrain.epochs=10 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Rerun the selected stages even if they are complete.
    #[arg(long)]
    force: bool,
}

#[cfg(feature = "video")]
impl RunArgs {
    fn run(self, stages: Option<Vec<Stage>>) -> Result<()> {
        let opts = RunOptions {
            experiment: self.experiment,
            data_root: self.data_root,
            device: self.device,
            out: self.out,
            overrides: self.overrides,
            stages,
            force: self.force,
        };
        let dir = run_experiment(&opts)?;
        println!("run directory: {}", dir.display());
        Ok(())
    }
}

#[cfg(feature = "video")]
#[derive(Subcommand)]
enum DataCommand {
    /// Decode exactly the given frames of a video and write DIR/frame_<index>.ppm (P6).
    Frames {
        video: PathBuf,
        /// Comma-separated frame indices (0-based, presentation order).
        #[arg(long)]
        indices: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Render one video's clips as a recipe makes them (augmentation included) and write
    /// DIR/clip<k>_frame<t>.ppm: look at what a model is fed.
    Clips {
        video: PathBuf,
        #[arg(long, value_enum, default_value = "train")]
        recipe: commands::RecipeKind,
        /// Output side in pixels.
        #[arg(long, default_value_t = timebalance::data::clips::DEFAULT_OUT_SIZE)]
        size: u32,
        /// Horizontal flips allowed in the augmentation.
        #[arg(long)]
        hflip: bool,
        /// Seed of the augmentation draw.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Draw a class-balanced labeled subset of a training split and write it to a file.
    Splits {
        #[command(flatten)]
        data: DatasetArgs,
        /// Fraction of each class to label (at least one video per class).
        #[arg(long)]
        fraction: Option<f64>,
        /// Or: number of labeled videos per class.
        #[arg(long)]
        per_class: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Read every video's metadata in parallel; report unreadable and too-short files.
    Check {
        #[command(flatten)]
        data: DatasetArgs,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Videos with fewer frames are reported as too short.
        #[arg(long, default_value_t = timebalance::data::sampling::SSL_CLIP_FRAMES)]
        min_frames: usize,
    },
    /// Render and encode the synthetic dataset (UCF101 layout, MPEG-4 AVI files).
    Synth {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 8)]
        classes: usize,
        #[arg(long, default_value_t = 40)]
        videos_per_class: usize,
        #[arg(long, default_value_t = 20)]
        test_videos_per_class: usize,
        #[arg(long, default_value_t = 48)]
        frames: usize,
        #[arg(long, default_value_t = 64)]
        size: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Object size relative to the default.
        #[arg(long, default_value_t = 1.0)]
        object_scale: f32,
        /// Nuisance strength relative to the default (0 = plain background).
        #[arg(long, default_value_t = 1.0)]
        clutter: f32,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Loader throughput (clips/s) on the video files of a directory.
    #[cfg(feature = "video")]
    Data {
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "ssl")]
        sampler: Sampler,
        #[arg(long, default_value_t = 1)]
        workers: usize,
        #[arg(long, default_value_t = 4)]
        batches: usize,
        #[arg(long, default_value_t = timebalance::data::clips::DEFAULT_OUT_SIZE)]
        size: u32,
    },
    /// Forward + backward + Adam step on random clips; the first step's time on the line
    /// `first_s <seconds>` (compilation included), last line `median_s <seconds>` of the
    /// steps after warm-up. `CUBECL_DEBUG_LOG=stderr` prints CubeCL's compilation and
    /// autotune logs.
    Train(BenchArgs),
    /// Inference forward pass on random clips; `first_s` and `median_s` as `bench train`.
    Forward(BenchArgs),
    /// One self-supervised teacher step (10 clips per video, `--batch` videos; the paper's
    /// clips are `--frames 16 --size 112`); last line `median_s <seconds>`.
    Ssl {
        #[arg(long, value_enum)]
        teacher: TeacherKind,
        #[command(flatten)]
        args: BenchArgs,
    },
    /// One student step (`--batch` labeled + `--batch` unlabeled clips, two frozen
    /// teachers); last line `median_s <seconds>`.
    Student(BenchArgs),
}

/// Which dataset, where, which official split.
#[cfg(feature = "video")]
#[derive(clap::Args)]
struct DatasetArgs {
    /// ucf101, hmdb51, k400 or generic.
    #[arg(long)]
    dataset: DatasetKind,
    #[arg(long)]
    root: PathBuf,
    /// Official split (1-3 for UCF101 and HMDB51).
    #[arg(long, default_value_t = 1)]
    split: u8,
}

/// Which clip sampler `bench data` times.
#[cfg(feature = "video")]
#[derive(Clone, Copy, clap::ValueEnum)]
enum Sampler {
    /// Self-supervised: 10 clips of 16 frames per video.
    Ssl,
    /// Fine-tuning: one 8-frame clip at stride 2.
    Train,
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
    /// Convolution algorithm: auto (our CPU kernels on the CPU, GEMM elsewhere), gemm or
    /// burn (Burn's own; on GPUs autotuned per geometry).
    #[arg(long, value_enum, default_value = "auto")]
    conv: ConvAlgorithm,
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
        #[cfg(feature = "video")]
        Command::Data { what } => run_data(what),
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
        Command::Summarize { runs, out } => {
            let md = timebalance::pipeline::summary::summarize(&runs)?;
            print!("{md}");
            if let Some(path) = out {
                timebalance::checkpoint::write_atomic(&path, md.as_bytes())?;
            }
            Ok(())
        }
        Command::Bench { what } => {
            let (mode, args) = match what {
                BenchCommand::Train(a) => (BenchMode::Train, a),
                BenchCommand::Forward(a) => (BenchMode::Forward, a),
                BenchCommand::Ssl { teacher, args } => (BenchMode::Ssl(teacher), args),
                BenchCommand::Student(a) => (BenchMode::Student, a),
                #[cfg(feature = "video")]
                BenchCommand::Data {
                    dir,
                    sampler,
                    workers,
                    batches,
                    size,
                } => {
                    let recipe = match sampler {
                        Sampler::Ssl => ClipRecipe::ssl(size, true),
                        Sampler::Train => ClipRecipe::train(size, true),
                    };
                    let r = commands::bench_data(&dir, &recipe, workers, batches)?;
                    println!(
                        "videos {} skipped {} seconds {:.3} videos_per_s {:.2}",
                        r.videos, r.skipped, r.seconds, r.videos_per_s
                    );
                    println!("clips_per_s {:.2}", r.clips_per_s);
                    return Ok(());
                }
            };
            let task = ModelBench {
                mode,
                backbone: BackboneConfig::new(args.arch, args.width).with_conv(args.conv),
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
            println!("first_s {:.6}", times.first);
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

#[cfg(feature = "video")]
fn run_data(what: DataCommand) -> Result<()> {
    match what {
        DataCommand::Frames {
            video,
            indices,
            out,
        } => {
            let indices = commands::parse_indices(&indices)?;
            let written = commands::write_frames(&video, &indices, &out)?;
            println!("wrote {} frames to {}", written.len(), out.display());
        }
        DataCommand::Clips {
            video,
            recipe,
            size,
            hflip,
            seed,
            out,
        } => {
            let recipe = match recipe {
                commands::RecipeKind::Ssl => ClipRecipe::ssl(size, hflip),
                commands::RecipeKind::Train => ClipRecipe::train(size, hflip),
                commands::RecipeKind::Eval => {
                    ClipRecipe::eval(size, timebalance::data::augment::EvalCrops::One)
                }
            };
            let written = commands::write_clips(&video, &recipe, seed, &out)?;
            println!("wrote {} frames to {}", written.len(), out.display());
        }
        DataCommand::Splits {
            data,
            fraction,
            per_class,
            seed,
            out,
        } => {
            let amount = commands::labeled_amount(fraction, per_class)?;
            println!(
                "{}",
                commands::write_splits(data.dataset, &data.root, data.split, amount, seed, &out)?
            );
        }
        DataCommand::Check {
            data,
            threads,
            min_frames,
        } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let report =
                commands::check_dataset(data.dataset, &data.root, data.split, threads, min_frames)?;
            for (path, err) in &report.unreadable {
                println!("unreadable: {} ({err})", path.display());
            }
            for (path, frames) in &report.too_short {
                println!(
                    "too short: {} ({frames} frames < {min_frames})",
                    path.display()
                );
            }
            for path in &report.missing {
                println!("missing: {}", path.display());
            }
            println!(
                "checked {} videos: {} unreadable, {} too short, {} missing",
                report.checked,
                report.unreadable.len(),
                report.too_short.len(),
                report.missing.len()
            );
            if !report.is_clean() {
                anyhow::bail!("dataset check found problems (listed above)");
            }
        }
        DataCommand::Synth {
            out,
            classes,
            videos_per_class,
            test_videos_per_class,
            frames,
            size,
            seed,
            object_scale,
            clutter,
        } => {
            let cfg = SynthConfig {
                out: out.clone(),
                classes,
                videos_per_class,
                test_videos_per_class,
                frames,
                size,
                seed,
                object_scale,
                clutter,
                ..SynthConfig::default()
            };
            let summary = synth::generate(&cfg)?;
            println!(
                "wrote {} training and {} test videos of {} classes to {}",
                summary.train.len(),
                summary.test.len(),
                summary.classes.len(),
                out.display()
            );
        }
    }
    Ok(())
}
