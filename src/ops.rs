//! Tensor operations Burn 0.21 lacks or that we route through one place.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module;
use burn::tensor::ops::ConvOptions;

/// Bias-free 3-D convolution; the single entry point used by every backbone.
pub fn conv3d<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    stride: [usize; 3],
    padding: [usize; 3],
    dilation: [usize; 3],
) -> Tensor<B, 5> {
    module::conv3d(
        x,
        weight,
        None,
        ConvOptions::new(stride, padding, dilation, 1),
    )
}

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
