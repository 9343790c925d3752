//! The student's data: each item pairs one unlabeled video with one labeled video, each with
//! its invariant-teacher weight w(v), so one Burn batch is a labeled and an unlabeled batch
//! of the same size. An epoch is counted over the unlabeled set (METHOD.md); labeled videos
//! are reused cyclically.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use super::steps::PairedBatch;
use crate::data::clips::VideoClips;
use crate::data::tensors::{ClipTensors, VideoClipDataset};

/// One labeled and one unlabeled video's clips with their teacher weights.
#[derive(Debug, Clone)]
pub struct StudentItem {
    pub labeled: VideoClips,
    pub unlabeled: VideoClips,
    pub weight_labeled: f32,
    pub weight_unlabeled: f32,
}

/// Pairs item `i` of the (padded) unlabeled set with labeled video `i mod L`.
pub struct StudentDataset {
    pub labeled: VideoClipDataset,
    pub unlabeled: VideoClipDataset,
    /// w(v) of each labeled video, by its index in the labeled list.
    pub weights_labeled: Vec<f32>,
    /// w(v) of each unlabeled video, by its index in the unlabeled list.
    pub weights_unlabeled: Vec<f32>,
}

impl Dataset<StudentItem> for StudentDataset {
    fn get(&self, index: usize) -> Option<StudentItem> {
        let unlabeled = self.unlabeled.get(index)?;
        let l = self.labeled.videos();
        if l == 0 {
            return None;
        }
        let labeled = self.labeled.get(index % l)?;
        // Weights follow the video actually loaded (a corrupt one is replaced by another).
        Some(StudentItem {
            weight_labeled: self.weights_labeled[labeled.video],
            weight_unlabeled: self.weights_unlabeled[unlabeled.video],
            labeled,
            unlabeled,
        })
    }

    fn len(&self) -> usize {
        self.unlabeled.len()
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
