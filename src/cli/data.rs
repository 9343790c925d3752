//! `data`: decode frames, render clips, draw label splits, check a dataset, make the synthetic
//! set.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use timebalance::commands;
use timebalance::data::clips::ClipRecipe;
use timebalance::data::datasets::DatasetKind;
use timebalance::data::synth::{self, DistinctiveChange, SynthConfig};

#[derive(Subcommand)]
pub enum DataCommand {
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
        recipe: RecipeKind,
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
        /// The distinctive pairs, in order (the distinctive classes take the first ones).
        #[arg(long, value_delimiter = ',', default_values_t = synth::DEFAULT_DISTINCTIVE_CHANGES)]
        distinctive_changes: Vec<DistinctiveChange>,
    },
}

/// Which dataset, where, which official split.
#[derive(clap::Args)]
pub struct DatasetArgs {
    /// ucf101, hmdb51, k400 or generic.
    #[arg(long)]
    dataset: DatasetKind,
    #[arg(long)]
    root: PathBuf,
    /// Official split (1-3 for UCF101 and HMDB51).
    #[arg(long, default_value_t = 1)]
    split: u8,
}

/// Which clip recipe `data clips` renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RecipeKind {
    /// Self-supervised: 2 views × (sparse + 4 dense) clips of 16 frames.
    Ssl,
    /// Fine-tuning / student: one augmented clip.
    Train,
    /// Evaluation: evenly spread centre-crop clips.
    Eval,
}

/// Run a `data` command.
pub fn run(what: DataCommand) -> Result<()> {
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
                RecipeKind::Ssl => ClipRecipe::ssl(size, hflip),
                RecipeKind::Train => ClipRecipe::train(size, hflip),
                RecipeKind::Eval => {
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
            distinctive_changes,
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
                distinctive_changes,
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
