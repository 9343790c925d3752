//! `bench data`: how fast the training loader turns video files into batches — the same
//! [`EpochLoader`] over [`VideoClipDataset`] and [`ClipBatcher`] that every stage runs, the
//! batches stacked into tensors of the CPU backend.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burn::backend::Flex;
use burn::data::dataloader::DataLoader;

use super::clips::{ClipError, ClipRecipe};
use super::loader::{EpochLoader, LoaderItem};
use super::tensors::{ClipBatcher, VideoClipDataset};

/// Batch size of [`bench_loader`] (the fine-tuning batch of docs/method.md).
pub const BENCH_BATCH_SIZE: usize = 16;
/// Seed of [`bench_loader`]'s order and sampling.
const BENCH_SEED: u64 = 0;

/// Loader throughput, measured by [`bench_loader`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// Clips rendered per second.
    pub clips_per_s: f64,
    /// Videos loaded per second.
    pub videos_per_s: f64,
    /// Videos loaded.
    pub videos: usize,
    /// Videos skipped.
    pub skipped: usize,
    /// Wall-clock seconds from loader start to the last batch.
    pub seconds: f64,
}

/// Why a benchmark has no figure.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The recipe is invalid.
    #[error(transparent)]
    Recipe(#[from] ClipError),
    /// Every video failed.
    #[error("no video could be loaded ({skipped} skipped)")]
    NothingLoaded {
        /// Videos skipped.
        skipped: usize,
    },
}

/// Measures how fast `workers` threads turn `paths` into batches of `recipe` clips (batch size
/// [`BENCH_BATCH_SIZE`], or fewer if there are fewer paths), for `batches` batches of one
/// shuffled epoch. The paths are cycled to fill the batches (each repeat is a different item,
/// so it gets fresh random clips). The consumer drops each batch at once: this is the
/// loader's ceiling, not a training-loop measurement.
pub fn bench_loader(
    paths: &[PathBuf],
    recipe: &ClipRecipe,
    workers: usize,
    batches: usize,
) -> Result<BenchResult, BenchError> {
    let batch_size = BENCH_BATCH_SIZE.min(paths.len()).max(1);
    let items: Vec<LoaderItem> = paths
        .iter()
        .cycle()
        .take(batch_size * batches)
        .map(|p| (p.clone(), None))
        .collect();
    let start = Instant::now();
    let dataset = Arc::new(VideoClipDataset::new(items, *recipe, BENCH_SEED)?);
    let loader = EpochLoader::<Flex, _, _>::new(
        ClipBatcher,
        Arc::clone(&dataset),
        batch_size,
        workers,
        Some(BENCH_SEED),
        Default::default(),
    );
    let videos: usize = loader.iter().map(|b| b.videos.len()).sum();
    let seconds = start.elapsed().as_secs_f64();
    let skipped = dataset.skipped().len();
    if videos == 0 {
        return Err(BenchError::NothingLoaded { skipped });
    }
    let clips = videos * recipe.n_clips();
    Ok(BenchResult {
        clips_per_s: clips as f64 / seconds,
        videos_per_s: videos as f64 / seconds,
        videos,
        skipped,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_videos::{OUT, fixture};

    #[test]
    fn bench_loader_counts_what_it_loaded() {
        let f = fixture();
        let paths: Vec<PathBuf> = f.good.iter().map(|(p, _)| p.clone()).collect();
        let recipe = ClipRecipe::train(OUT, true);
        let result = bench_loader(&paths, &recipe, 2, 2).expect("bench");
        assert_eq!((result.videos, result.skipped), (12, 0));
        assert!(result.clips_per_s > 0.0 && result.videos_per_s > 0.0);
        let bad = bench_loader(std::slice::from_ref(&f.zero), &recipe, 1, 1);
        assert!(matches!(bad, Err(BenchError::NothingLoaded { skipped: 1 })));
    }
}
