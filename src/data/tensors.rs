//! Burn adapters: a `Dataset` of videos' clips and a `Batcher` that stacks them into
//! tensors on the training device — what the stages' [`EpochLoader`] (a Burn `DataLoader`,
//! and so burn-train's `Learner`) consumes.
//!
//! [`EpochLoader`]: crate::data::loader::EpochLoader

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;

use super::batch::ClipTensors;
use super::clips::{ClipError, ClipMaker, ClipRecipe, VideoClips, video_rng};
use super::input::InputPixels;
use super::loader::{DrawCounts, LoaderItem};

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
}

/// A video the loader could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedVideo {
    /// Index in the item list.
    pub video: usize,
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub error: String,
}

/// The videos skipped by every dataset that reports to it (each path once), shared between a
/// stage's datasets and the run, which counts them per stage in `log.txt` and `done.json`.
#[derive(Debug, Clone, Default)]
pub struct SkipLog(Arc<Mutex<BTreeSet<PathBuf>>>);

impl SkipLog {
    /// The skipped files, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.0
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn insert(&self, path: &Path) {
        if let Ok(mut s) = self.0.lock() {
            s.insert(path.to_path_buf());
        }
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
    /// Where skipped videos are also reported (the stage's count).
    report: Option<SkipLog>,
    /// Conversion of every clip to the network's input convention (identity by default).
    pixels: InputPixels,
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
            report: None,
            pixels: InputPixels::default(),
            len,
        })
    }

    /// Hand out clips converted to what the network reads (channel order, normalisation).
    pub fn with_pixels(mut self, pixels: InputPixels) -> Self {
        self.pixels = pixels;
        self
    }

    /// Also report skipped videos to `log`.
    pub fn reporting_to(mut self, log: SkipLog) -> Self {
        self.report = Some(log);
        self
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

    /// Videos opened so far, over all epochs (failed ones and substitutes included).
    pub fn loads(&self) -> u64 {
        self.draws.iter().map(|d| d.load(Ordering::Relaxed)).sum()
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
        let mut clips = maker.load(path, index, *label, &mut rng)?;
        self.pixels.apply(&mut clips);
        Ok(clips)
    }

    fn record_skip(&self, index: usize, path: &Path, error: &ClipError) {
        if let Ok(mut skipped) = self.skipped.lock()
            && !skipped.contains_key(&index)
        {
            eprintln!("warning: skipping video {}: {error}", path.display());
            if let Some(report) = &self.report {
                report.insert(path);
            }
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

impl DrawCounts for VideoClipDataset {
    fn drawn_elsewhere(&self, index: usize) {
        let n = self.items.len();
        if index < self.len && n > 0 {
            self.draws[index % n].fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    //! The dataset and batcher through the stages' loader, on real video files.

    use std::sync::Arc;

    use burn::backend::NdArray;
    use burn::data::dataloader::DataLoader;

    use super::*;
    use crate::data::loader::EpochLoader;
    use crate::data::test_videos::{OUT, fixture};

    type B = NdArray;

    /// What a test compares of a batch: video indices, labels and pixels.
    type Plain = (Vec<usize>, Option<Vec<i64>>, Vec<f32>, [usize; 6]);

    fn plain(batch: ClipTensors<B>) -> Plain {
        let labels = batch
            .labels
            .map(|l| l.into_data().convert::<i64>().to_vec::<i64>().unwrap());
        let shape = batch.clips.dims();
        let pixels = batch.clips.into_data().to_vec::<f32>().unwrap();
        (batch.videos, labels, pixels, shape)
    }

    fn loader(
        dataset: Arc<VideoClipDataset>,
        batch: usize,
        workers: usize,
        shuffle: Option<u64>,
    ) -> EpochLoader<B, VideoClips, ClipTensors<B>> {
        EpochLoader::new(
            ClipBatcher,
            dataset,
            batch,
            workers,
            shuffle,
            Default::default(),
        )
    }

    fn epoch(loader: &EpochLoader<B, VideoClips, ClipTensors<B>>) -> Vec<Plain> {
        loader.iter().map(plain).collect()
    }

    #[test]
    fn same_batches_for_one_and_two_workers() {
        let f = fixture();
        let recipe = ClipRecipe::ssl(OUT, true);
        let data = || Arc::new(VideoClipDataset::new(f.good.clone(), recipe, 42).unwrap());
        let one = loader(data(), 4, 1, Some(3));
        let two = loader(data(), 4, 2, Some(3));
        let first = epoch(&one);
        assert_eq!(first.len(), 2);
        assert_eq!(first, epoch(&two));
        let next = epoch(&one);
        assert_ne!(first[0].2, next[0].2, "the next epoch draws other clips");
    }

    #[test]
    fn shapes_values_and_labels() {
        let f = fixture();
        let recipe = ClipRecipe::ssl(OUT, false);
        let dataset = Arc::new(VideoClipDataset::new(f.good.clone(), recipe, 42).unwrap());
        let batches = epoch(&loader(Arc::clone(&dataset), 4, 2, Some(3)));
        assert!(dataset.skipped().is_empty());
        let sizes: Vec<usize> = batches.iter().map(|b| b.0.len()).collect();
        assert_eq!(sizes, [4, 2]);
        let side = OUT as usize;
        for (videos, labels, pixels, shape) in &batches {
            assert_eq!(*shape, [videos.len(), 10, 3, 16, side, side]);
            assert_eq!(pixels.len(), shape.iter().product::<usize>());
            assert!(pixels.iter().all(|v| (0.0..=1.0).contains(v)));
            let labels = labels.as_ref().expect("labeled items");
            for (&video, &label) in videos.iter().zip(labels) {
                assert_eq!(Some(label as usize), f.good[video].1);
            }
        }
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.0.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..f.good.len()).collect::<Vec<_>>());

        let train = ClipRecipe::train(OUT, true);
        let dataset = Arc::new(VideoClipDataset::new(f.good.clone(), train, 42).unwrap());
        let batches = epoch(&loader(dataset, 4, 2, None));
        assert_eq!(batches[0].0, [0, 1, 2, 3], "no seed: item order");
        assert_eq!(batches[0].3, [4, 1, 3, 8, side, side]);
    }

    #[test]
    fn bad_videos_are_skipped_and_replaced_by_the_next_readable_one() {
        let f = fixture();
        let mut items = f.good.clone();
        items.insert(1, (f.zero.clone(), Some(0)));
        items.insert(4, (f.truncated.clone(), None));
        let recipe = ClipRecipe::train(OUT, true);
        let dataset = Arc::new(VideoClipDataset::new(items, recipe, 42).unwrap());
        let batches = epoch(&loader(Arc::clone(&dataset), 4, 2, None));
        let sizes: Vec<usize> = batches.iter().map(|b| b.0.len()).collect();
        assert_eq!(sizes, [4, 4], "batches stay full");
        let videos: Vec<usize> = batches.iter().flat_map(|b| b.0.clone()).collect();
        assert_eq!(videos, [0, 2, 2, 3, 5, 5, 6, 7]);
        let skipped = dataset.skipped();
        let bad: Vec<(usize, &Path)> = skipped.iter().map(|s| (s.video, &*s.path)).collect();
        assert_eq!(bad, [(1, &*f.zero), (4, &*f.truncated)]);
        assert!(skipped.iter().all(|s| !s.error.is_empty()));
    }

    #[test]
    fn dropping_mid_epoch_stops_every_thread() {
        let f = fixture();
        let items: Vec<LoaderItem> = f.good.iter().cycle().take(40).cloned().collect();
        let recipe = ClipRecipe::ssl(OUT, true);
        let dataset = Arc::new(VideoClipDataset::new(items, recipe, 42).unwrap());
        let l = loader(Arc::clone(&dataset), 2, 2, Some(1));
        let mut it = l.iter();
        assert_eq!(it.next().map(|b| b.videos.len()), Some(2));
        drop(it);
        // Dropping joined the workers: nothing decodes any more, and they stopped within their
        // window (the batch taken + 2 workers × PREFETCH_PER_WORKER batches ahead, 2 videos
        // each), not at the end of the 40-video epoch.
        let loads = dataset.loads();
        let window = (1 + 2 * crate::data::loader::PREFETCH_PER_WORKER) * 2;
        assert!(loads <= window as u64, "{loads} videos decoded");
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(dataset.loads(), loads, "a worker outlived the epoch");
    }

    #[test]
    fn invalid_recipes_are_rejected_and_empty_sets_give_no_batch() {
        assert!(VideoClipDataset::new(Vec::new(), ClipRecipe::train(0, true), 1).is_err());
        let recipe = ClipRecipe::train(OUT, true);
        let empty = Arc::new(VideoClipDataset::new(Vec::new(), recipe, 1).unwrap());
        assert!(loader(empty, 2, 2, Some(1)).iter().next().is_none());
    }
}
