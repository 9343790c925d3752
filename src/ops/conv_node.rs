//! The autodiff node of a 3-D convolution, shared by the CPU kernels' path ([`super::conv`])
//! and the GPU GEMM path ([`super::conv_gemm`]): both record the same state (input, weight,
//! geometry) and differ only in their backward pass.

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;

use super::conv_kernel::ConvGeometry;

/// The autodiff output `y` of a convolution of `x` and `weight`, whose backward pass is
/// `node` with state (input, weight, geometry): shared by the CPU kernels' node and
/// [`super::conv_gemm`]'s.
pub(super) fn record<I, N>(
    node: N,
    x: FloatTensor<Autodiff<I>>,
    weight: FloatTensor<Autodiff<I>>,
    g: ConvGeometry,
    y: FloatTensor<I>,
) -> FloatTensor<Autodiff<I>>
where
    I: Backend,
    N: Backward<I, 2, State = (FloatTensor<I>, FloatTensor<I>, ConvGeometry)>,
{
    match node
        .prepare::<NoCheckpointing>([x.node.clone(), weight.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((x.primitive, weight.primitive, g), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
