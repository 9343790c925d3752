//! Batch norm as the models use it, beside [`Conv3dUnit`](super::conv::Conv3dUnit).
//!
//! The layers stay Burn's `BatchNorm` (so records, state-dict keys and imported weights are
//! Burn's and torchvision's), but a model normalises only through [`Normalise::normalise`],
//! which takes the fused CPU kernel where there is one (`crate::ops::batch_norm`) and Burn's
//! `BatchNorm::forward` elsewhere. Calling `BatchNorm::forward` directly would silently skip
//! the CPU kernel; `clippy.toml` forbids it outside `crate::ops`.

use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use super::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM};

/// A batch-norm layer with PyTorch's defaults (torchvision's and PyTorchVideo's).
pub fn new_batch_norm<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(channels)
        .with_epsilon(BATCH_NORM_EPS)
        .with_momentum(BATCH_NORM_MOMENTUM)
        .init(device)
}

/// How a model applies a batch-norm layer.
pub trait Normalise<B: Backend> {
    /// Batch norm of `x` (`[batch, channels, …]`): batch statistics and a running-statistics
    /// update when the backend tracks gradients, running statistics otherwise — the
    /// semantics of `BatchNorm::forward`.
    fn normalise<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D>;
}

impl<B: Backend> Normalise<B> for BatchNorm<B> {
    fn normalise<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        crate::ops::batch_norm(self, x)
    }
}
