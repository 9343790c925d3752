//! 3-D convolution: the algorithm choice, and on the CPU backends an autodiff node of our
//! own whose passes are host kernels: [`super::conv_winograd`] (Winograd F(2×2×2, 3×3×3))
//! for the "same" 3×3×3 convolutions with many channels and large frames,
//! [`super::conv_direct`] (no im2col; x86-64 with AVX2 or AVX-512) for the other passes
//! where it was measured faster, [`super::conv_kernel`] (im2col + GEMM per output frame)
//! for the rest. The other backends use [`super::conv_gemm`] (GEMMs
//! of Burn operations) unless Burn's own convolution is asked for.
//!
//! Burn's generic gradients are a transposed convolution for the input and, for the weight,
//! a convolution of the swapped input with the swapped output gradient returned as a
//! swapped (non-contiguous) view. Every Adam operation on such a gradient then walks it
//! element by element through `flex`'s strided iterator: measured on R3D-18, the optimizer
//! step took ~12 % of the training step for that reason alone. The kernels here compute
//! both gradients on host slices and return row-major tensors.

use std::marker::PhantomData;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::{Autodiff, Flex, NdArray};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, FloatTensor};

use serde::{Deserialize, Serialize};

use super::conv_direct::{self as direct, Pass};
use super::conv_gemm;
use super::conv_kernel::{self as kernel, ConvGeometry};
use super::conv_node;
use super::conv_winograd as winograd;
use super::dispatch::{CpuBackend, HostBackend, from_host, primitive, tensor};

/// How a 3-D convolution is computed. Every algorithm gives the same values (tested against
/// each other and against PyTorch); they differ in speed and, on GPUs, in compile time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConvAlgorithm {
    /// The fastest measured per backend: on the CPU backends our host kernels, Winograd
    /// ([`super::conv_winograd`]) where it pays off (3×3×3 "same" convolutions, ≥ 64
    /// channels, large frames), else the direct ones ([`super::conv_direct`]) for each pass
    /// where they were measured faster, and im2col + GEMM ([`super::conv_kernel`]) for the
    /// rest; GEMMs of Burn operations
    /// elsewhere ([`super::conv_gemm`]). `direct`, its name while it was not the default,
    /// still selects it.
    #[default]
    #[serde(alias = "direct")]
    Auto,
    /// On the CPU backends our host kernels with im2col + GEMM for every pass (the default
    /// before the direct kernels; for comparisons). Elsewhere as `Auto`.
    Im2col,
    /// GEMMs of Burn operations on every backend (on the CPU: for parity tests).
    Gemm,
    /// Burn's own `conv3d` (on GPUs: CubeCL's kernels, autotuned per geometry).
    Burn,
}

/// Bias-free 3-D convolution; the single entry point used by every backbone.
pub fn conv3d<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    stride: [usize; 3],
    padding: [usize; 3],
    dilation: [usize; 3],
    algorithm: ConvAlgorithm,
) -> Tensor<B, 5> {
    let geometry = ConvGeometry::new(x.dims(), weight.dims(), stride, padding, dilation);
    let burn = |x, weight| {
        let options = ConvOptions::new(stride, padding, dilation, 1);
        module::conv3d(x, weight, None, options)
    };
    let Some(g) = geometry else {
        // Burn's check names the mismatch.
        return burn(x, weight);
    };
    match (algorithm, CpuBackend::of_f32(&x)) {
        (ConvAlgorithm::Burn, _) => burn(x, weight),
        (ConvAlgorithm::Gemm, _) | (ConvAlgorithm::Auto | ConvAlgorithm::Im2col, None) => {
            conv_gemm::conv3d(x, weight, g)
        }
        (ConvAlgorithm::Auto | ConvAlgorithm::Im2col, Some(cpu)) => {
            let kernels = if algorithm == ConvAlgorithm::Im2col {
                HostKernels::Im2col
            } else {
                HostKernels::Fastest
            };
            match cpu {
                CpuBackend::FlexAutodiff => train::<Flex, B>(x, weight, g, kernels),
                CpuBackend::NdArrayAutodiff => train::<NdArray, B>(x, weight, g, kernels),
                CpuBackend::Flex => infer::<Flex, B>(x, weight, g, kernels),
                CpuBackend::NdArray => infer::<NdArray, B>(x, weight, g, kernels),
            }
        }
    }
}

/// Which host kernels a convolution on a CPU backend runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostKernels {
    /// Per pass the first that pays off of Winograd ([`winograd::pays_off`]) and the direct
    /// kernels ([`direct::pays_off`]); im2col + GEMM ([`kernel`]) for the rest.
    Fastest,
    /// im2col + GEMM for every pass.
    Im2col,
}

impl HostKernels {
    fn winograd(self, g: &ConvGeometry, pass: Pass) -> bool {
        self == Self::Fastest && winograd::pays_off(g, pass)
    }

    fn direct(self, g: &ConvGeometry, pass: Pass) -> bool {
        self == Self::Fastest && direct::pays_off(g, pass)
    }

    fn forward(self, x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
        if self.winograd(g, Pass::Forward) {
            winograd::forward(x, w, g)
        } else if self.direct(g, Pass::Forward) {
            direct::forward(x, w, g)
        } else {
            kernel::forward(x, w, g)
        }
    }

    fn input_grad(self, w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
        if self.winograd(g, Pass::InputGrad) {
            winograd::input_grad(w, dy, g)
        } else if self.direct(g, Pass::InputGrad) {
            direct::input_grad(w, dy, g)
        } else {
            kernel::input_grad(w, dy, g)
        }
    }

    fn weight_grad(self, x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
        if self.winograd(g, Pass::WeightGrad) {
            winograd::weight_grad(x, dy, g)
        } else if self.direct(g, Pass::WeightGrad) {
            direct::weight_grad(x, dy, g)
        } else {
            kernel::weight_grad(x, dy, g)
        }
    }
}

/// The convolution of two backend tensors by the host kernels.
fn host_forward<I: HostBackend>(
    x: &FloatTensor<I>,
    weight: &FloatTensor<I>,
    g: &ConvGeometry,
    kernels: HostKernels,
) -> FloatTensor<I> {
    let y = kernels.forward(&I::host::<5>(x), &I::host::<5>(weight), g);
    let dims = [g.batch, g.c_out, g.output[0], g.output[1], g.output[2]];
    from_host::<I>(y, &dims, &I::float_device(x))
}

fn infer<I: HostBackend, B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    g: ConvGeometry,
    kernels: HostKernels,
) -> Tensor<B, 5> {
    let x = primitive::<I, B, 5>(x);
    let weight = primitive::<I, B, 5>(weight);
    tensor::<I, B, 5>(host_forward::<I>(&x, &weight, &g, kernels))
}

/// The autodiff node of a bias-free convolution; parents: input, weight.
#[derive(Debug)]
struct Conv3dBackward<I> {
    kernels: HostKernels,
    backend: PhantomData<I>,
}

/// What the backward pass needs: input, weight, geometry.
type ConvState<I> = (FloatTensor<I>, FloatTensor<I>, ConvGeometry);

impl<I: HostBackend> Backward<I, 2> for Conv3dBackward<I> {
    type State = ConvState<I>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let dy = grads.consume::<I>(&ops.node);
        let (x, weight, g) = ops.state;
        let device = I::float_device(&x);
        let dy = I::host::<5>(&dy);
        if let Some(node) = node_x {
            let dx = self.kernels.input_grad(&I::host::<5>(&weight), &dy, &g);
            let dims = [g.batch, g.c_in, g.input[0], g.input[1], g.input[2]];
            grads.register::<I>(node.id, from_host::<I>(dx, &dims, &device));
        }
        if let Some(node) = node_weight {
            let dw = self.kernels.weight_grad(&I::host::<5>(&x), &dy, &g);
            let [kt, kh, kw] = g.kernel;
            let dims = [g.c_out, g.c_in, kt, kh, kw];
            grads.register::<I>(node.id, from_host::<I>(dw, &dims, &device));
        }
    }
}

fn train<I: HostBackend, B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    g: ConvGeometry,
    kernels: HostKernels,
) -> Tensor<B, 5> {
    let x: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, 5>(x);
    let weight: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, 5>(weight);
    let y = host_forward::<I>(&x.primitive, &weight.primitive, &g, kernels);
    let node = Conv3dBackward::<I> {
        kernels,
        backend: PhantomData,
    };
    tensor::<Autodiff<I>, B, 5>(conv_node::record(node, x, weight, g, y))
}
