//! Projection head (self-supervised stage) and linear classifier.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::{BatchNorm, Linear, LinearConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;

use super::norm::{Normalise, new_batch_norm};

/// docs/method.md: the projection head's embedding width.
pub const EMBEDDING_DIM: usize = 128;
/// Guards the L2 normalisation against an all-zero row.
const NORM_EPS: f64 = 1e-12;
/// torchvision initialises `VideoResNet.fc` with N(0, 0.01).
const CLASSIFIER_INIT_STD: f64 = 0.01;

/// `Linear(F→F') → BN → ReLU → Linear(F'→128, no bias) → BN → L2-normalise`.
#[derive(Config, Debug)]
pub struct ProjectionHeadConfig {
    pub features: usize,
    pub hidden: usize,
    #[config(default = "EMBEDDING_DIM")]
    pub embedding: usize,
}

impl ProjectionHeadConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> ProjectionHead<B> {
        ProjectionHead {
            fc1: LinearConfig::new(self.features, self.hidden).init(device),
            bn1: new_batch_norm(self.hidden, device),
            fc2: LinearConfig::new(self.hidden, self.embedding)
                .with_bias(false)
                .init(device),
            bn2: new_batch_norm(self.embedding, device),
        }
    }
}

#[derive(Module, Debug)]
pub struct ProjectionHead<B: Backend> {
    pub fc1: Linear<B>,
    pub bn1: BatchNorm<B>,
    pub fc2: Linear<B>,
    pub bn2: BatchNorm<B>,
}

impl<B: Backend> ProjectionHead<B> {
    /// `[N, F]` → unit-norm embeddings `[N, D]`.
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let x = relu(self.bn1.normalise(self.fc1.forward(x)));
        let x = self.bn2.normalise(self.fc2.forward(x));
        l2_normalize(x)
    }
}

/// Row-wise L2 normalisation.
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS);
    x / norm
}

/// Linear classifier on globally pooled features (torchvision's `fc`).
#[derive(Config, Debug)]
pub struct ClassifierConfig {
    pub features: usize,
    pub classes: usize,
}

impl ClassifierConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Linear<B> {
        LinearConfig::new(self.features, self.classes)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: CLASSIFIER_INIT_STD,
            })
            .init(device)
    }
}
