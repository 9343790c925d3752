//! 3D-ResNet-50 "slow" pathway, PyTorchVideo's `slow_r50` structure.
//!
//! Stem: (1,7,7) conv stride (1,2,2) + BN + ReLU + (1,3,3) max-pool stride (1,2,2).
//! Stages res2..res5 of 3-4-6-3 bottleneck blocks, temporal kernel 1 in res2/res3 and 3 in
//! res4/res5 (on the first 1×1 conv of each bottleneck), spatial stride 2 from res3 on,
//! no temporal stride anywhere. Field names follow PyTorchVideo (`conv_a`, `norm_a`, …).

use crate::ops::ConvAlgorithm;
use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use super::conv::{Conv3dSpec, Conv3dUnit};
use super::norm::{Normalise, new_batch_norm};
use crate::ops::max_pool_spatial;

const BLOCKS_PER_STAGE: [usize; 4] = [3, 4, 6, 3];
const STAGE_TEMPORAL_KERNEL: [usize; 4] = [1, 1, 3, 3];
const STAGE_SPATIAL_STRIDE: [usize; 4] = [1, 2, 2, 2];
/// A bottleneck's output has 4× its inner width.
pub const BOTTLENECK_EXPANSION: usize = 4;
const STEM_POOL_KERNEL: usize = 3;
const STEM_POOL_STRIDE: usize = 2;
const STEM_POOL_PADDING: usize = 1;

#[derive(Module, Debug)]
pub struct SlowStem<B: Backend> {
    pub conv: Conv3dUnit<B>,
    pub norm: BatchNorm<B>,
}

/// PyTorchVideo's `ResBlock` with a `BottleneckBlock` branch2.
#[derive(Module, Debug)]
pub struct Bottleneck<B: Backend> {
    pub branch1_conv: Option<Conv3dUnit<B>>,
    pub branch1_norm: Option<BatchNorm<B>>,
    pub conv_a: Conv3dUnit<B>,
    pub norm_a: BatchNorm<B>,
    pub conv_b: Conv3dUnit<B>,
    pub norm_b: BatchNorm<B>,
    pub conv_c: Conv3dUnit<B>,
    pub norm_c: BatchNorm<B>,
}

impl<B: Backend> Bottleneck<B> {
    fn new(
        dim_in: usize,
        inner: usize,
        temporal_kernel: usize,
        spatial_stride: usize,
        conv: ConvAlgorithm,
        device: &B::Device,
    ) -> Self {
        let dim_out = inner * BOTTLENECK_EXPANSION;
        let needs_projection = dim_in != dim_out || spatial_stride != 1;
        Self {
            branch1_conv: needs_projection.then(|| {
                Conv3dSpec::new(dim_in, dim_out, [1, 1, 1])
                    .stride([1, spatial_stride, spatial_stride])
                    .init(conv, device)
            }),
            branch1_norm: needs_projection.then(|| new_batch_norm(dim_out, device)),
            conv_a: Conv3dSpec::new(dim_in, inner, [temporal_kernel, 1, 1])
                .padding([temporal_kernel / 2, 0, 0])
                .init(conv, device),
            norm_a: new_batch_norm(inner, device),
            conv_b: Conv3dSpec::new(inner, inner, [1, 3, 3])
                .stride([1, spatial_stride, spatial_stride])
                .padding([0, 1, 1])
                .init(conv, device),
            norm_b: new_batch_norm(inner, device),
            conv_c: Conv3dSpec::new(inner, dim_out, [1, 1, 1]).init(conv, device),
            norm_c: new_batch_norm(dim_out, device),
        }
    }

    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let y = relu(self.norm_a.normalise(self.conv_a.forward(x.clone())));
        let y = relu(self.norm_b.normalise(self.conv_b.forward(y)));
        let y = self.norm_c.normalise(self.conv_c.forward(y));
        let shortcut = match (&self.branch1_conv, &self.branch1_norm) {
            (Some(conv), Some(norm)) => norm.normalise(conv.forward(x)),
            _ => x,
        };
        relu(y + shortcut)
    }
}

/// The slow pathway without its head: features `[B, 32w, T, H/32, W/32]`.
#[derive(Module, Debug)]
pub struct SlowResNet<B: Backend> {
    pub stem: SlowStem<B>,
    pub res2: Vec<Bottleneck<B>>,
    pub res3: Vec<Bottleneck<B>>,
    pub res4: Vec<Bottleneck<B>>,
    pub res5: Vec<Bottleneck<B>>,
}

impl<B: Backend> SlowResNet<B> {
    pub fn new(width: usize, conv: ConvAlgorithm, device: &B::Device) -> Self {
        let stem = SlowStem {
            conv: Conv3dSpec::new(3, width, [1, 7, 7])
                .stride([1, 2, 2])
                .padding([0, 3, 3])
                .init(conv, device),
            norm: new_batch_norm(width, device),
        };
        let mut dim_in = width;
        let mut stages = Vec::with_capacity(4);
        for stage in 0..4 {
            let inner = width << stage;
            let blocks: Vec<Bottleneck<B>> = (0..BLOCKS_PER_STAGE[stage])
                .map(|i| {
                    let block_in = if i == 0 {
                        dim_in
                    } else {
                        inner * BOTTLENECK_EXPANSION
                    };
                    let stride = if i == 0 {
                        STAGE_SPATIAL_STRIDE[stage]
                    } else {
                        1
                    };
                    Bottleneck::new(
                        block_in,
                        inner,
                        STAGE_TEMPORAL_KERNEL[stage],
                        stride,
                        conv,
                        device,
                    )
                })
                .collect();
            stages.push(blocks);
            dim_in = inner * BOTTLENECK_EXPANSION;
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        Self {
            stem,
            res2: next(),
            res3: next(),
            res4: next(),
            res5: next(),
        }
    }

    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = relu(self.stem.norm.normalise(self.stem.conv.forward(x)));
        let mut x = max_pool_spatial(x, STEM_POOL_KERNEL, STEM_POOL_STRIDE, STEM_POOL_PADDING);
        for block in self
            .res2
            .iter()
            .chain(&self.res3)
            .chain(&self.res4)
            .chain(&self.res5)
        {
            x = block.forward(x);
        }
        x
    }
}
