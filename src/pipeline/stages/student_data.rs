//! The student's data: each item pairs one labeled video with one unlabeled video, each with
//! its invariant-teacher weight w(v), so one Burn batch is a labeled and an unlabeled batch
//! of the same size.
//!
//! What an epoch is ([`StudentEpoch`]): by default one pass over the labeled set, as the
//! official release zips its labeled and unlabeled loaders (the shorter, labeled one ends the
//! epoch); each epoch pairs the labeled videos with the next stretch of unlabeled videos, so
//! successive epochs walk through the whole unlabeled set. Or one pass over the unlabeled
//! set, the labeled videos reused cyclically (docs/method.md, "Where we differ").

use std::sync::atomic::{AtomicUsize, Ordering};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::data::batch::ClipTensors;
use crate::data::clips::VideoClips;
use crate::data::loader::DrawCounts;
use crate::data::tensors::VideoClipDataset;
use crate::pipeline::config::StudentEpoch;
use crate::pipeline::train_steps::PairedBatch;

/// One labeled and one unlabeled video's clips with their teacher weights.
#[derive(Debug, Clone)]
pub struct StudentItem {
    pub labeled: VideoClips,
    pub unlabeled: VideoClips,
    pub weight_labeled: f32,
    pub weight_unlabeled: f32,
}

/// A labeled and an unlabeled set paired item by item (see the module docs).
pub struct StudentDataset {
    pub labeled: VideoClipDataset,
    pub unlabeled: VideoClipDataset,
    /// w(v) of each labeled video, by its index in the labeled list.
    pub weights_labeled: Vec<f32>,
    /// w(v) of each unlabeled video, by its index in the unlabeled list.
    pub weights_unlabeled: Vec<f32>,
    pub epoch: StudentEpoch,
    /// How many times each item was drawn: with labeled epochs, item `i` of draw `k` takes
    /// unlabeled video `(i + k·len) mod U`, a fresh stretch of the unlabeled set per epoch
    /// that does not depend on which loader thread asked.
    draws: Vec<AtomicUsize>,
}

impl StudentDataset {
    pub fn new(
        labeled: VideoClipDataset,
        unlabeled: VideoClipDataset,
        weights_labeled: Vec<f32>,
        weights_unlabeled: Vec<f32>,
        epoch: StudentEpoch,
    ) -> Self {
        let mut dataset = Self {
            labeled,
            unlabeled,
            weights_labeled,
            weights_unlabeled,
            epoch,
            draws: Vec::new(),
        };
        dataset.draws = (0..dataset.len()).map(|_| AtomicUsize::new(0)).collect();
        dataset
    }
}

/// Counts as [`Dataset::get`] draws: the item's own count, and each part's.
impl DrawCounts for StudentDataset {
    fn drawn_elsewhere(&self, index: usize) {
        let (l, u) = (self.labeled.videos(), self.unlabeled.videos());
        if l == 0 || u == 0 || index >= self.len() {
            return;
        }
        match self.epoch {
            StudentEpoch::Unlabeled => {
                self.labeled.drawn_elsewhere(index % l);
                self.unlabeled.drawn_elsewhere(index);
            }
            StudentEpoch::Labeled => {
                let draw = self.draws[index].fetch_add(1, Ordering::Relaxed);
                self.labeled.drawn_elsewhere(index);
                self.unlabeled
                    .drawn_elsewhere((index + draw * self.len()) % u);
            }
        }
    }
}

impl Dataset<StudentItem> for StudentDataset {
    fn get(&self, index: usize) -> Option<StudentItem> {
        let (l, u) = (self.labeled.videos(), self.unlabeled.videos());
        if l == 0 || u == 0 || index >= self.len() {
            return None;
        }
        let (labeled, unlabeled) = match self.epoch {
            StudentEpoch::Unlabeled => (self.labeled.get(index % l)?, self.unlabeled.get(index)?),
            StudentEpoch::Labeled => {
                let draw = self.draws[index].fetch_add(1, Ordering::Relaxed);
                let u_index = (index + draw * self.len()) % u;
                (self.labeled.get(index)?, self.unlabeled.get(u_index)?)
            }
        };
        // Weights follow the video actually loaded (a corrupt one is replaced by another).
        Some(StudentItem {
            weight_labeled: self.weights_labeled[labeled.video],
            weight_unlabeled: self.weights_unlabeled[unlabeled.video],
            labeled,
            unlabeled,
        })
    }

    fn len(&self) -> usize {
        match self.epoch {
            StudentEpoch::Labeled => self.labeled.len(),
            StudentEpoch::Unlabeled => self.unlabeled.len(),
        }
    }
}

/// Stacks [`StudentItem`]s into a [`PairedBatch`].
#[derive(Debug, Clone, Copy, Default)]
pub struct StudentBatcher;

impl<B: Backend> Batcher<B, StudentItem, PairedBatch<B>> for StudentBatcher {
    fn batch(&self, items: Vec<StudentItem>, device: &B::Device) -> PairedBatch<B> {
        let n = items.len();
        let weights = |f: fn(&StudentItem) -> f32| {
            let w: Vec<f32> = items.iter().map(f).collect();
            Tensor::from_data(TensorData::new(w, [n]), device)
        };
        let weight_labeled = weights(|i| i.weight_labeled);
        let weight_unlabeled = weights(|i| i.weight_unlabeled);
        let (labeled, unlabeled): (Vec<VideoClips>, Vec<VideoClips>) =
            items.into_iter().map(|i| (i.labeled, i.unlabeled)).unzip();
        PairedBatch {
            labeled: ClipTensors::from_videos(&labeled, device),
            unlabeled: ClipTensors::from_videos(&unlabeled, device),
            weight_labeled,
            weight_unlabeled,
        }
    }
}
