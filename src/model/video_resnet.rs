//! torchvision's `VideoResNet` family (R3D-18, MC3-18, R(2+1)D-18) and TimeBalance's
//! dilated R3D-18, with a configurable base width.
//!
//! The structure follows torchvision exactly so that its state dicts import
//! (`crate::model::import` maps the key names): a stem, four stages of two basic blocks
//! each, channels `w, 2w, 4w, 8w` (w = 64 is the real model).

use crate::ops::ConvAlgorithm;
use burn::module::Module;
use burn::nn::BatchNorm;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use super::Arch;
use super::conv::{Conv3dSpec, Conv3dUnit};
use super::norm::{Normalise, new_batch_norm};

/// Number of basic blocks in each of the four stages of an "-18" network.
const BLOCKS_PER_STAGE: [usize; 4] = [2, 2, 2, 2];
/// Channel multiplier of each stage relative to the base width.
const STAGE_WIDTH_MULTIPLIER: [usize; 4] = [1, 2, 4, 8];
/// Spatial/temporal stride of the first block of each stage.
const STAGE_STRIDE: [usize; 4] = [1, 2, 2, 2];
/// torchvision's R(2+1)D stem has 45 mid channels for a base width of 64.
const R2PLUS1D_STEM_MID_NUMERATOR: usize = 45;
const REFERENCE_BASE_WIDTH: usize = 64;
/// TimeBalance's R3D-18: layer4's first conv keeps the temporal resolution with a
/// temporal dilation instead of a temporal stride.
const DILATED_LAYER4_TEMPORAL_DILATION: usize = 2;

/// The kind of convolution a block uses (torchvision's "conv makers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvKind {
    /// Full 3×3×3 kernel (`Conv3DSimple`).
    Full,
    /// 1×3×3 kernel, no temporal extent (`Conv3DNoTemporal`).
    NoTemporal,
    /// 1×3×3 spatial conv, BN, ReLU, then 3×1×1 temporal conv (`Conv2Plus1D`).
    Factorised,
}

impl ConvKind {
    /// Stride of the block's downsample shortcut for a given block stride.
    fn downsample_stride(self, stride: usize) -> [usize; 3] {
        match self {
            ConvKind::NoTemporal => [1, stride, stride],
            ConvKind::Full | ConvKind::Factorised => [stride; 3],
        }
    }
}

/// One "conv maker" of torchvision: a full, spatial-only or (2+1)D factorised convolution.
///
/// For the factorised case `conv` is the spatial conv, `mid_bn`/`temporal` the rest.
#[derive(Module, Debug)]
pub struct SpatioTemporalConv<B: Backend> {
    pub conv: Conv3dUnit<B>,
    pub mid_bn: Option<BatchNorm<B>>,
    pub temporal: Option<Conv3dUnit<B>>,
}

impl<B: Backend> SpatioTemporalConv<B> {
    /// `mid_planes` is the factorised conv's middle width; torchvision computes it once per
    /// block from the block's input and output widths and uses it for both convs.
    fn new(
        kind: ConvKind,
        in_planes: usize,
        out_planes: usize,
        mid_planes: usize,
        stride: usize,
        conv: ConvAlgorithm,
        device: &B::Device,
    ) -> Self {
        match kind {
            ConvKind::Full => Self::plain(
                Conv3dSpec::new(in_planes, out_planes, [3, 3, 3])
                    .stride([stride; 3])
                    .padding([1; 3]),
                conv,
                device,
            ),
            ConvKind::NoTemporal => Self::plain(
                Conv3dSpec::new(in_planes, out_planes, [1, 3, 3])
                    .stride([1, stride, stride])
                    .padding([0, 1, 1]),
                conv,
                device,
            ),
            ConvKind::Factorised => {
                let mid = mid_planes;
                Self {
                    conv: Conv3dSpec::new(in_planes, mid, [1, 3, 3])
                        .stride([1, stride, stride])
                        .padding([0, 1, 1])
                        .init(conv, device),
                    mid_bn: Some(new_batch_norm(mid, device)),
                    temporal: Some(
                        Conv3dSpec::new(mid, out_planes, [3, 1, 1])
                            .stride([stride, 1, 1])
                            .padding([1, 0, 0])
                            .init(conv, device),
                    ),
                }
            }
        }
    }

    fn plain(spec: Conv3dSpec, conv: ConvAlgorithm, device: &B::Device) -> Self {
        Self {
            conv: spec.init(conv, device),
            mid_bn: None,
            temporal: None,
        }
    }

    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = self.conv.forward(x);
        match (&self.mid_bn, &self.temporal) {
            (Some(bn), Some(temporal)) => temporal.forward(relu(bn.normalise(x))),
            _ => x,
        }
    }
}

/// torchvision's mid width for a (2+1)D block: keeps the parameter count of a full
/// 3×3×3 conv, `⌊in·out·27 / (in·9 + 3·out)⌋`.
pub fn r2plus1d_mid_planes(in_planes: usize, out_planes: usize) -> usize {
    (in_planes * out_planes * 27) / (in_planes * 9 + 3 * out_planes)
}

/// 1×1×1 strided conv + BN on the shortcut when the block changes shape.
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    pub conv: Conv3dUnit<B>,
    pub bn: BatchNorm<B>,
}

/// torchvision's `BasicBlock` for video.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    pub conv1: SpatioTemporalConv<B>,
    pub bn1: BatchNorm<B>,
    pub conv2: SpatioTemporalConv<B>,
    pub bn2: BatchNorm<B>,
    pub downsample: Option<Downsample<B>>,
}

impl<B: Backend> BasicBlock<B> {
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let out = relu(self.bn1.normalise(self.conv1.forward(x.clone())));
        let out = self.bn2.normalise(self.conv2.forward(out));
        let shortcut = match &self.downsample {
            Some(ds) => ds.bn.normalise(ds.conv.forward(x)),
            None => x,
        };
        relu(out + shortcut)
    }
}

/// The stem: one conv (R3D, MC3) or a factorised pair (R(2+1)D), each followed by BN+ReLU.
#[derive(Module, Debug)]
pub struct Stem<B: Backend> {
    pub conv: Conv3dUnit<B>,
    pub bn: BatchNorm<B>,
    pub conv_t: Option<Conv3dUnit<B>>,
    pub bn_t: Option<BatchNorm<B>>,
}

impl<B: Backend> Stem<B> {
    fn new(factorised: bool, width: usize, conv: ConvAlgorithm, device: &B::Device) -> Self {
        if factorised {
            let mid = R2PLUS1D_STEM_MID_NUMERATOR * width / REFERENCE_BASE_WIDTH;
            Self {
                conv: Conv3dSpec::new(3, mid, [1, 7, 7])
                    .stride([1, 2, 2])
                    .padding([0, 3, 3])
                    .init(conv, device),
                bn: new_batch_norm(mid, device),
                conv_t: Some(
                    Conv3dSpec::new(mid, width, [3, 1, 1])
                        .padding([1, 0, 0])
                        .init(conv, device),
                ),
                bn_t: Some(new_batch_norm(width, device)),
            }
        } else {
            Self {
                conv: Conv3dSpec::new(3, width, [3, 7, 7])
                    .stride([1, 2, 2])
                    .padding([1, 3, 3])
                    .init(conv, device),
                bn: new_batch_norm(width, device),
                conv_t: None,
                bn_t: None,
            }
        }
    }

    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = relu(self.bn.normalise(self.conv.forward(x)));
        match (&self.conv_t, &self.bn_t) {
            (Some(conv), Some(bn)) => relu(bn.normalise(conv.forward(x))),
            _ => x,
        }
    }
}

/// A `VideoResNet` without its classifier: stem and four stages.
#[derive(Module, Debug)]
pub struct VideoResNet<B: Backend> {
    pub stem: Stem<B>,
    pub layer1: Vec<BasicBlock<B>>,
    pub layer2: Vec<BasicBlock<B>>,
    pub layer3: Vec<BasicBlock<B>>,
    pub layer4: Vec<BasicBlock<B>>,
}

impl<B: Backend> VideoResNet<B> {
    /// Build one of the "-18" video ResNets; `arch` must not be [`Arch::SlowR50`].
    pub fn new(arch: Arch, width: usize, conv: ConvAlgorithm, device: &B::Device) -> Self {
        let kinds: [ConvKind; 4] = match arch {
            Arch::R3d18 | Arch::R3d18Dilated => [ConvKind::Full; 4],
            Arch::Mc3_18 => [
                ConvKind::Full,
                ConvKind::NoTemporal,
                ConvKind::NoTemporal,
                ConvKind::NoTemporal,
            ],
            Arch::R2plus1d18 => [ConvKind::Factorised; 4],
            Arch::SlowR50 => unreachable!("SlowR50 is built by model::slow"),
        };
        let stem = Stem::new(arch == Arch::R2plus1d18, width, conv, device);
        let mut in_planes = width;
        let mut stages: Vec<Vec<BasicBlock<B>>> = Vec::with_capacity(4);
        for stage in 0..4 {
            let planes = width * STAGE_WIDTH_MULTIPLIER[stage];
            let dilated = arch == Arch::R3d18Dilated && stage == 3;
            let plan = StagePlan {
                kind: kinds[stage],
                in_planes,
                planes,
                blocks: BLOCKS_PER_STAGE[stage],
                stride: STAGE_STRIDE[stage],
                dilated_first: dilated,
            };
            let blocks = make_stage(plan, conv, device);
            stages.push(blocks);
            in_planes = planes;
        }
        let mut stages = stages.into_iter();
        let mut next = || stages.next().unwrap_or_default();
        Self {
            stem,
            layer1: next(),
            layer2: next(),
            layer3: next(),
            layer4: next(),
        }
    }

    /// `[B, 3, T, H, W]` → the last stage's feature map `[B, 8w, T', H', W']`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let mut x = self.stem.forward(x);
        for block in self
            .layer1
            .iter()
            .chain(&self.layer2)
            .chain(&self.layer3)
            .chain(&self.layer4)
        {
            x = block.forward(x);
        }
        x
    }
}

/// One stage of basic blocks: its convolution kind, widths, depth and first stride.
struct StagePlan {
    kind: ConvKind,
    in_planes: usize,
    planes: usize,
    blocks: usize,
    stride: usize,
    /// The first block's conv keeps time (TimeBalance's dilated layer4).
    dilated_first: bool,
}

fn make_stage<B: Backend>(
    plan: StagePlan,
    conv: ConvAlgorithm,
    device: &B::Device,
) -> Vec<BasicBlock<B>> {
    let StagePlan {
        kind,
        in_planes,
        planes,
        blocks,
        stride,
        dilated_first,
    } = plan;
    (0..blocks)
        .map(|i| {
            let block_in = if i == 0 { in_planes } else { planes };
            let block_stride = if i == 0 { stride } else { 1 };
            let mid = r2plus1d_mid_planes(block_in, planes);
            let mut conv1 =
                SpatioTemporalConv::new(kind, block_in, planes, mid, block_stride, conv, device);
            let mut ds_stride = kind.downsample_stride(block_stride);
            if dilated_first && i == 0 {
                // TimeBalance keeps the temporal length in layer4: temporal stride 1,
                // dilation 2 and padding 2 on the first conv, spatial-only shortcut stride.
                let d = DILATED_LAYER4_TEMPORAL_DILATION;
                conv1.conv.stride[0] = 1;
                conv1.conv.dilation[0] = d;
                conv1.conv.padding[0] = d;
                ds_stride[0] = 1;
            }
            let downsample = (block_stride != 1 || block_in != planes).then(|| Downsample {
                conv: Conv3dSpec::new(block_in, planes, [1, 1, 1])
                    .stride(ds_stride)
                    .init(conv, device),
                bn: new_batch_norm(planes, device),
            });
            BasicBlock {
                conv1,
                bn1: new_batch_norm(planes, device),
                conv2: SpatioTemporalConv::new(kind, planes, planes, mid, 1, conv, device),
                bn2: new_batch_norm(planes, device),
                downsample,
            }
        })
        .collect()
}
