//! Video backbones, heads and the two model shapes the method uses.
//!
//! Everything here is generic over `B: Backend` and written once for every device.

pub mod conv;
pub mod heads;
pub mod import;
pub mod norm;
pub mod slow;
pub mod video_resnet;

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module::adaptive_avg_pool1d;
use serde::{Deserialize, Serialize};

use crate::ops::ConvAlgorithm;

use burn::nn::{Dropout, DropoutConfig, Linear};
pub use heads::{ClassifierConfig, ProjectionHead, ProjectionHeadConfig};
use slow::{BOTTLENECK_EXPANSION, SlowResNet};
use video_resnet::VideoResNet;

/// PyTorch's batch-norm defaults (torchvision and PyTorchVideo use them).
pub const BATCH_NORM_EPS: f64 = 1e-5;
pub const BATCH_NORM_MOMENTUM: f64 = 0.1;
/// docs/method.md: backbone features are pooled to 4 temporal slots.
pub const TEMPORAL_SLOTS: usize = 4;
/// The real models' base width; smaller widths are for tests and quick runs.
pub const FULL_WIDTH: usize = 64;
/// Channel multiplier of the last stage of an "-18" network relative to its base width.
const RESNET18_FEATURE_MULTIPLIER: usize = 8;
/// PyTorchVideo's head dropout (`pytorchvideo/models/head.py`, `dropout_rate = 0.5`).
const SLOW_HEAD_DROPOUT: f64 = 0.5;
/// Inner-width multiplier of res5 of the slow pathway relative to its base width.
const SLOW_RES5_INNER_MULTIPLIER: usize = 8;

/// The backbone architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// torchvision `r3d_18`.
    #[serde(rename = "r3d18")]
    R3d18,
    /// TimeBalance's R3D-18: layer4 keeps the temporal length (dilated first conv).
    #[serde(rename = "r3d18_dilated")]
    R3d18Dilated,
    /// torchvision `r2plus1d_18`.
    #[serde(rename = "r2plus1d18")]
    R2plus1d18,
    /// torchvision `mc3_18`.
    #[serde(rename = "mc3_18")]
    Mc3_18,
    /// PyTorchVideo `slow_r50` (3D-ResNet-50, the paper's headline backbone).
    #[serde(rename = "slow_r50")]
    SlowR50,
}

impl Arch {
    /// Width of the backbone's output features for a base width.
    pub fn feature_dim(self, width: usize) -> usize {
        match self {
            Arch::SlowR50 => width * SLOW_RES5_INNER_MULTIPLIER * BOTTLENECK_EXPANSION,
            _ => width * RESNET18_FEATURE_MULTIPLIER,
        }
    }

    /// Dropout before the classifier: PyTorchVideo's `create_res_basic_head` default (0.5)
    /// for `slow_r50`, whose head the official release keeps; torchvision's video ResNets
    /// have none.
    pub fn default_dropout(self) -> f64 {
        match self {
            Arch::SlowR50 => SLOW_HEAD_DROPOUT,
            _ => 0.0,
        }
    }

    /// docs/method.md's hidden width F' of the projection head: 512 for R3D-18 (= F),
    /// 128 for R3D-50 (scaled with the base width).
    pub fn projection_hidden(self, width: usize) -> usize {
        match self {
            Arch::SlowR50 => 2 * width,
            _ => self.feature_dim(width),
        }
    }
}

/// Which backbone, how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneConfig {
    pub arch: Arch,
    /// Base width (64 for the real models).
    pub width: usize,
    /// How its convolutions are computed ([`ConvAlgorithm::Auto`]: the fastest measured).
    #[serde(default)]
    pub conv: ConvAlgorithm,
}

impl BackboneConfig {
    pub fn new(arch: Arch, width: usize) -> Self {
        Self {
            arch,
            width,
            conv: ConvAlgorithm::default(),
        }
    }

    /// The same backbone computing its convolutions with `conv`.
    pub fn with_conv(self, conv: ConvAlgorithm) -> Self {
        Self { conv, ..self }
    }

    pub fn feature_dim(&self) -> usize {
        self.arch.feature_dim(self.width)
    }

    pub fn init<B: Backend>(&self, device: &B::Device) -> Backbone<B> {
        match self.arch {
            Arch::SlowR50 => Backbone::Slow(SlowResNet::new(self.width, self.conv, device)),
            arch => Backbone::ResNet(VideoResNet::new(arch, self.width, self.conv, device)),
        }
    }
}

/// One of the supported backbones (held once per model, so the variants' size difference
/// costs nothing worth boxing for).
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Backbone<B: Backend> {
    ResNet(VideoResNet<B>),
    Slow(SlowResNet<B>),
}

/// What a backbone gives the heads.
#[derive(Debug, Clone)]
pub struct Features<B: Backend> {
    /// Features pooled to [`TEMPORAL_SLOTS`] temporal slots, `[B, F, 4]`.
    pub slots: Tensor<B, 3>,
    /// Global average over time and space, `[B, F]` (torchvision's `avgpool`).
    pub pooled: Tensor<B, 2>,
}

impl<B: Backend> Backbone<B> {
    /// The last stage's feature map `[B, F, T', H', W']`.
    pub fn feature_map(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        match self {
            Backbone::ResNet(net) => net.forward(x),
            Backbone::Slow(net) => net.forward(x),
        }
    }

    /// Clip `[B, 3, T, H, W]` → slot features and globally pooled features.
    pub fn features(&self, x: Tensor<B, 5>) -> Features<B> {
        let map = self.feature_map(x);
        let [b, f, t, h, w] = map.dims();
        let per_time = map.reshape([b, f, t, h * w]).mean_dim(3).reshape([b, f, t]);
        let pooled = per_time.clone().mean_dim(2).reshape([b, f]);
        let slots = adaptive_avg_pool1d(per_time, TEMPORAL_SLOTS);
        Features { slots, pooled }
    }
}

/// Backbone + (dropout) + linear classifier: fine-tuned teachers, the student, the baseline.
#[derive(Module, Debug)]
pub struct VideoClassifier<B: Backend> {
    pub backbone: Backbone<B>,
    /// Before the classifier, active only while training (Burn's `Dropout` is the identity
    /// on a backend without autodiff): PyTorchVideo's `slow_r50` head keeps p = 0.5.
    pub dropout: Dropout,
    pub fc: Linear<B>,
}

impl<B: Backend> VideoClassifier<B> {
    /// A classifier with the architecture's usual dropout ([`Arch::default_dropout`]).
    ///
    /// ```
    /// use burn::backend::Flex;
    /// use burn::tensor::Tensor;
    /// use timebalance::model::{Arch, BackboneConfig, VideoClassifier};
    ///
    /// // A width-2 R3D-18 (64 is the published width) on one clip of 4 frames of 16².
    /// let device = Default::default();
    /// let model = VideoClassifier::<Flex>::new(BackboneConfig::new(Arch::R3d18, 2), 5, &device);
    /// let clip = Tensor::<Flex, 5>::zeros([1, 3, 4, 16, 16], &device);
    /// assert_eq!(model.forward(clip).dims(), [1, 5]);
    /// ```
    pub fn new(backbone: BackboneConfig, num_classes: usize, device: &B::Device) -> Self {
        Self {
            backbone: backbone.init(device),
            dropout: DropoutConfig::new(backbone.arch.default_dropout()).init(),
            fc: ClassifierConfig::new(backbone.feature_dim(), num_classes).init(device),
        }
    }

    /// The same classifier with dropout probability `prob` before its linear layer.
    pub fn with_dropout(self, prob: f64) -> Self {
        Self {
            dropout: DropoutConfig::new(prob).init(),
            ..self
        }
    }

    /// Logits `[B, classes]`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 2> {
        let pooled = self.backbone.features(x).pooled;
        self.fc.forward(self.dropout.forward(pooled))
    }
}

/// Backbone + projection head: the self-supervised teachers.
#[derive(Module, Debug)]
pub struct SslModel<B: Backend> {
    pub backbone: Backbone<B>,
    pub head: ProjectionHead<B>,
}

/// The embeddings of one clip batch.
#[derive(Debug, Clone)]
pub struct Embeddings<B: Backend> {
    /// From the average of the 4 slots, `[B, D]`, unit norm.
    pub global: Tensor<B, 2>,
    /// One per slot, `[B, 4, D]`, unit norm.
    pub slices: Tensor<B, 3>,
}

impl<B: Backend> SslModel<B> {
    pub fn new(backbone: BackboneConfig, device: &B::Device) -> Self {
        let head = ProjectionHeadConfig::new(
            backbone.feature_dim(),
            backbone.arch.projection_hidden(backbone.width),
        );
        Self {
            backbone: backbone.init(device),
            head: head.init(device),
        }
    }

    /// Pooled embedding only (dense clips, TSTR), `[B, D]`.
    pub fn embed(&self, x: Tensor<B, 5>) -> Tensor<B, 2> {
        let slots = self.backbone.features(x).slots;
        self.head.forward(slot_mean(slots))
    }

    /// Global and per-slot embeddings (sparse clips).
    pub fn embed_with_slices(&self, x: Tensor<B, 5>) -> Embeddings<B> {
        let slots = self.backbone.features(x).slots;
        let [b, f, s] = slots.dims();
        let global = self.head.forward(slot_mean(slots.clone()));
        // One head call per slot, as the official release: in training, the head's batch
        // norm normalises each slot over the B clips, never slots of one clip together.
        let slices = (0..s)
            .map(|t| {
                self.head
                    .forward(slots.clone().narrow(2, t, 1).reshape([b, f]))
            })
            .collect();
        Embeddings {
            global,
            slices: Tensor::stack(slices, 1),
        }
    }
}

/// docs/method.md: "for a dense clip, average the 4 slots".
fn slot_mean<B: Backend>(slots: Tensor<B, 3>) -> Tensor<B, 2> {
    let [b, f, _] = slots.dims();
    slots.mean_dim(2).reshape([b, f])
}
