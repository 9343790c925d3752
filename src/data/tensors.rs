//! Burn adapters: a `Dataset` of videos' clips and a `Batcher` that stacks them into
//! tensors on the training device — what the stages' [`crate::data::epoch_loader::EpochLoader`]
//! (a Burn `DataLoader`, and so burn-train's `Learner`) consumes.
//! [`crate::data::loader::ClipLoader`] is the standalone alternative with its own worker pool
//! and prefetch (used by `bench data`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;

use super::batch::ClipTensors;
use super::clips::{ClipError, ClipMaker, ClipRecipe, VideoClips, video_rng};
use super::loader::{ClipBatch, LoaderItem, SkippedVideo};

/// How many following videos a failed item may be replaced by before giving up: a
/// corrupt file never ends an epoch early (Burn's loaders stop at the first `None`).
const MAX_SUBSTITUTES: usize = 16;

impl<B: Backend> ClipTensors<B> {
    /// Stack videos' clips on `device`.
    pub fn from_videos(items: &[VideoClips], device: &B::Device) -> Self {
        let first = items.first().expect("a batch has at least one video");
        let shape = [
            items.len(),
            first.n_clips,
            3,
            first.frames,
            first.size,
            first.size,
        ];
        let mut data = Vec::with_capacity(shape.iter().product());
        for item in items {
            data.extend_from_slice(&item.clips);
        }
        let labels: Option<Vec<usize>> = items.iter().map(|i| i.label).collect();
        Self::new(
            data,
            shape,
            labels,
            items.iter().map(|i| i.video).collect(),
            device,
        )
    }

    /// Move a [`ClipBatch`] of the standalone loader onto `device`.
    pub fn from_batch(batch: ClipBatch, device: &B::Device) -> Self {
        let labels: Option<Vec<usize>> = batch.labels.iter().copied().collect();
        Self::new(batch.clips, batch.shape, labels, batch.videos, device)
    }
}

/// A Burn [`Dataset`] whose item `i` is the clips of video `i`, decoded on demand.
///
/// Randomness is per item: the k-th time video `i` is drawn uses the stream
/// `video_rng(seed, k, i)`, so clips do not depend on which worker thread asked. A video
/// that cannot be read is recorded in [`VideoClipDataset::skipped`] and replaced by the
/// next readable one.
pub struct VideoClipDataset {
    items: Arc<[LoaderItem]>,
    recipe: ClipRecipe,
    seed: u64,
    draws: Vec<AtomicU64>,
    skipped: Mutex<BTreeMap<usize, SkippedVideo>>,
    /// Reported length: the number of videos, or more after [`Self::padded_to_batches`].
    len: usize,
}

impl VideoClipDataset {
    pub fn new(
        items: impl Into<Arc<[LoaderItem]>>,
        recipe: ClipRecipe,
        seed: u64,
    ) -> Result<Self, ClipError> {
        recipe.validate()?;
        let items = items.into();
        let draws = (0..items.len()).map(|_| AtomicU64::new(0)).collect();
        let len = items.len();
        Ok(Self {
            items,
            recipe,
            seed,
            draws,
            skipped: Mutex::new(BTreeMap::new()),
            len,
        })
    }

    /// Report a length rounded up to a multiple of `batch_size`, the extra items repeating
    /// videos from the start (as a distributed sampler pads): Burn's loaders keep a short
    /// last batch, and a batch of one video breaks batch norm's statistics.
    pub fn padded_to_batches(mut self, batch_size: usize) -> Self {
        let n = self.items.len();
        let batch_size = batch_size.max(1);
        self.len = n.div_ceil(batch_size) * batch_size;
        self
    }

    /// Number of distinct videos.
    pub fn videos(&self) -> usize {
        self.items.len()
    }

    /// Videos that could not be used so far (each once), in item order.
    pub fn skipped(&self) -> Vec<SkippedVideo> {
        self.skipped
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    fn try_load(&self, index: usize, maker: &mut ClipMaker) -> Result<VideoClips, ClipError> {
        let (path, label) = &self.items[index];
        let draw = self.draws[index].fetch_add(1, Ordering::Relaxed);
        let mut rng = video_rng(self.seed, draw, index);
        maker.load(path, index, *label, &mut rng)
    }

    fn record_skip(&self, index: usize, path: &Path, error: &ClipError) {
        if let Ok(mut skipped) = self.skipped.lock()
            && !skipped.contains_key(&index)
        {
            eprintln!("warning: skipping video {}: {error}", path.display());
            skipped.insert(
                index,
                SkippedVideo {
                    video: index,
                    path: path.to_path_buf(),
                    error: error.to_string(),
                },
            );
        }
    }
}

impl Dataset<VideoClips> for VideoClipDataset {
    fn get(&self, index: usize) -> Option<VideoClips> {
        let n = self.items.len();
        if index >= self.len || n == 0 {
            return None;
        }
        let index = index % n;
        let mut maker = ClipMaker::new(self.recipe).ok()?;
        (0..=MAX_SUBSTITUTES.min(n - 1))
            .map(|k| (index + k) % n)
            .find_map(|i| match self.try_load(i, &mut maker) {
                Ok(clips) => Some(clips),
                Err(e) => {
                    self.record_skip(i, &self.items[i].0, &e);
                    None
                }
            })
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// Stacks [`VideoClips`] into [`ClipTensors`] on the loader's device.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClipBatcher;

impl<B: Backend> Batcher<B, VideoClips, ClipTensors<B>> for ClipBatcher {
    fn batch(&self, items: Vec<VideoClips>, device: &B::Device) -> ClipTensors<B> {
        ClipTensors::from_videos(&items, device)
    }
}
