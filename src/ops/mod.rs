//! Tensor operations Burn 0.21 lacks or that we route through one place.

mod adam;
mod batch_norm;
mod conv;
pub mod conv_direct;
pub mod conv_gemm;
pub mod conv_kernel;
mod conv_node;
pub mod conv_winograd;
mod dispatch;
pub mod norm_kernel;

pub use adam::{AdamStep, adam_update, fused_adam_applies};
pub use batch_norm::batch_norm;
pub use conv::{ConvAlgorithm, conv3d};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module;

/// Max pooling over the spatial axes only (kernel `[1, k, k]`), built from 2-D pooling
/// over frames folded into the batch: Burn 0.21 has no 3-D pooling.
pub fn max_pool_spatial<B: Backend>(
    x: Tensor<B, 5>,
    kernel: usize,
    stride: usize,
    padding: usize,
) -> Tensor<B, 5> {
    let [b, c, t, h, w] = x.dims();
    let frames = x.swap_dims(1, 2).reshape([b * t, c, h, w]);
    let pooled = module::max_pool2d(
        frames,
        [kernel, kernel],
        [stride, stride],
        [padding, padding],
        [1, 1],
        false,
    );
    let [_, _, h2, w2] = pooled.dims();
    pooled.reshape([b, t, c, h2, w2]).swap_dims(1, 2)
}
