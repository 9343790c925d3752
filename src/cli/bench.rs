//! `bench`: model steps on random clips and loader throughput (benches/README.md).

#[cfg(feature = "video")]
use std::path::PathBuf;

use anyhow::{Context, Result};

use clap::Subcommand;
use timebalance::names::by_name;

use timebalance::bench::{BenchMode, ModelBench};
#[cfg(feature = "video")]
use timebalance::commands;
#[cfg(feature = "video")]
use timebalance::data::clips::ClipRecipe;
use timebalance::device::DeviceSpec;
use timebalance::model::{Arch, BackboneConfig, FULL_WIDTH};
use timebalance::ops::ConvAlgorithm;
use timebalance::pipeline::TeacherKind;

#[derive(Subcommand)]
pub enum BenchCommand {
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
        /// invariant or distinctive.
        #[arg(long, value_parser = by_name::<TeacherKind>)]
        teacher: TeacherKind,
        #[command(flatten)]
        args: BenchArgs,
    },
    /// One student step (`--batch` labeled + `--batch` unlabeled clips, two frozen
    /// teachers); last line `median_s <seconds>`.
    Student(BenchArgs),
}

/// Which clip sampler `bench data` times.
#[cfg(feature = "video")]
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Sampler {
    /// Self-supervised: 10 clips of 16 frames per video.
    Ssl,
    /// Fine-tuning: one 8-frame clip at stride 2.
    Train,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// r3d18, r3d18_dilated, r2plus1d18, mc3_18 or slow_r50.
    #[arg(long, value_parser = by_name::<Arch>, default_value = "r3d18")]
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
    /// Convolution algorithm: auto (on the CPU our kernels, direct where measured faster and
    /// im2col + GEMM for the rest; GEMM elsewhere), im2col (our CPU kernels without the
    /// direct ones), gemm or burn (Burn's own; on GPUs autotuned per geometry).
    #[arg(long, value_parser = by_name::<ConvAlgorithm>, default_value = "auto")]
    conv: ConvAlgorithm,
    /// `bench train` only: also time the step's forward, backward and optimiser apart (each
    /// waited for), printed as `phases_s forward … backward … optimizer …` (medians). The
    /// waits between phases can cost a GPU some overlap, so `median_s` is timed as without.
    #[arg(long)]
    phases: bool,
}

/// Run a benchmark and print its figures (the last line is the one scripts read).
pub fn run(what: BenchCommand) -> Result<()> {
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
        phases: args.phases,
    };
    let times = task.run_on(args.device).context("running the benchmark")?;
    for (i, s) in times.seconds.iter().enumerate() {
        println!("iter {i}: {s:.4} s");
    }
    if let Some([forward, backward, optimizer]) = times.phase_medians() {
        println!("phases_s forward {forward:.4} backward {backward:.4} optimizer {optimizer:.4}");
    }
    println!("first_s {:.6}", times.first);
    println!("median_s {:.6}", times.median());
    Ok(())
}
