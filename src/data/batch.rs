//! A batch of videos' clips as tensors, the input of every training step
//! ([`crate::pipeline::train_steps`]). Kept apart from the decoding side (`tensors`, `clips`) so
//! that the steps, and the benchmarks and tests that drive them on random clips, build
//! without the `video` feature (e.g. for a GPU machine without FFmpeg).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

/// Videos' clips as tensors: `clips` is `[B, n_clips, 3, T, S, S]`.
#[derive(Debug, Clone)]
pub struct ClipTensors<B: Backend> {
    pub clips: Tensor<B, 6>,
    /// Class indices `[B]` when every video of the batch is labeled.
    pub labels: Option<Tensor<B, 1, Int>>,
    /// Index of each video in its item list.
    pub videos: Vec<usize>,
}

impl<B: Backend> ClipTensors<B> {
    /// Clip `k` of every video, `[B, 3, T, S, S]`.
    pub fn clip(&self, k: usize) -> Tensor<B, 5> {
        let [b, _, c, t, h, w] = self.clips.dims();
        self.clips
            .clone()
            .slice([0..b, k..k + 1])
            .reshape([b, c, t, h, w])
    }

    /// All clips folded into the batch axis, `[B·n_clips, 3, T, S, S]` (video-major).
    pub fn flattened(&self) -> Tensor<B, 5> {
        let [b, n, c, t, h, w] = self.clips.dims();
        self.clips.clone().reshape([b * n, c, t, h, w])
    }

    /// Clips `[B, n_clips, 3, T, S, S]` from flat `data`, labels as class indices.
    pub fn new(
        data: Vec<f32>,
        shape: [usize; 6],
        labels: Option<Vec<usize>>,
        videos: Vec<usize>,
        device: &B::Device,
    ) -> Self {
        let clips = Tensor::from_data(TensorData::new(data, shape), device);
        let labels = labels.map(|l| {
            let n = l.len();
            let ints: Vec<i64> = l.into_iter().map(|x| x as i64).collect();
            Tensor::from_data(TensorData::new(ints, [n]), device)
        });
        Self {
            clips,
            labels,
            videos,
        }
    }
}
