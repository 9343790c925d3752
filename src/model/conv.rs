//! 3-D convolution as a module of our own.
//!
//! Every 3-D convolution of the backbones goes through [`Conv3dUnit`] so that the
//! convolution algorithm can be chosen in one place (see `crate::ops::conv3d`) for all
//! backbones, and so that its parameter path (`…conv.weight`) is under our control when
//! importing torchvision state dicts.

use burn::module::{Initializer, Module, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

use crate::ops::ConvAlgorithm;

/// A bias-free 3-D convolution (every conv of a video ResNet is followed by batch norm).
#[derive(Module, Debug)]
pub struct Conv3dUnit<B: Backend> {
    /// Kernel `[out, in, kt, kh, kw]`, the same layout as PyTorch's `Conv3d.weight`.
    pub weight: Param<Tensor<B, 5>>,
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
    /// How the convolution is computed (not a parameter: not saved with the weights).
    pub algorithm: ConvAlgorithm,
}

/// Shape and geometry of a [`Conv3dUnit`].
#[derive(Debug, Clone, Copy)]
pub struct Conv3dSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
}

impl Conv3dSpec {
    /// A convolution with unit stride and dilation and no padding.
    pub fn new(in_channels: usize, out_channels: usize, kernel: [usize; 3]) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel,
            stride: [1; 3],
            padding: [0; 3],
            dilation: [1; 3],
        }
    }

    pub fn stride(mut self, stride: [usize; 3]) -> Self {
        self.stride = stride;
        self
    }

    pub fn padding(mut self, padding: [usize; 3]) -> Self {
        self.padding = padding;
        self
    }

    pub fn dilation(mut self, dilation: [usize; 3]) -> Self {
        self.dilation = dilation;
        self
    }

    /// Kaiming-normal initialisation in fan-out mode for ReLU networks, as torchvision's
    /// `VideoResNet` and PyTorchVideo's ResNets initialise their convolutions.
    pub fn init<B: Backend>(&self, algorithm: ConvAlgorithm, device: &B::Device) -> Conv3dUnit<B> {
        let [kt, kh, kw] = self.kernel;
        let shape = [self.out_channels, self.in_channels, kt, kh, kw];
        let receptive = kt * kh * kw;
        let initializer = Initializer::KaimingNormal {
            gain: core::f64::consts::SQRT_2,
            fan_out_only: true,
        };
        let weight = initializer.init_with(
            shape,
            Some(self.in_channels * receptive),
            Some(self.out_channels * receptive),
            device,
        );
        Conv3dUnit {
            weight,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            algorithm,
        }
    }
}

impl<B: Backend> Conv3dUnit<B> {
    /// `[B, C_in, T, H, W] -> [B, C_out, T', H', W']`.
    pub fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        crate::ops::conv3d(
            x,
            self.weight.val(),
            self.stride,
            self.padding,
            self.dilation,
            self.algorithm,
        )
    }
}
