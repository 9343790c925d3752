//! Batch norm for every model: fused host kernels ([`super::norm_kernel`]) on the CPU
//! backends (`flex`, `ndarray`, with or without autodiff; see [`super::dispatch`]), Burn's
//! `BatchNorm::forward` on the GPU backends. The training path registers its own autodiff
//! node whose backward pass is the fused kernel; the parameters, running statistics and
//! their update rule are Burn's own (`BatchNorm`'s record is unchanged), so checkpoints and
//! imported weights work either way.

use std::marker::PhantomData;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::{Autodiff, Flex, NdArray};
use burn::nn::BatchNorm;
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Tensor, TensorData};

use super::dispatch::{CpuBackend, HostBackend, from_host, owned_values, primitive, tensor};
use super::norm_kernel::{self as kernel, RowShape};

/// Batch norm of `x` (`[batch, channels, …]`) with `bn`'s parameters: batch statistics
/// and a running-statistics update when the backend tracks gradients (training), running
/// statistics otherwise — the same semantics as `BatchNorm::forward`, which is the fallback
/// here and nowhere else (`clippy.toml`).
#[allow(clippy::disallowed_methods)]
pub fn batch_norm<B: Backend, const D: usize>(bn: &BatchNorm<B>, x: Tensor<B, D>) -> Tensor<B, D> {
    if D < 2 {
        return bn.forward(x);
    }
    match CpuBackend::of_f32(&x) {
        Some(CpuBackend::FlexAutodiff) => train::<Flex, B, D>(bn, x),
        Some(CpuBackend::NdArrayAutodiff) => train::<NdArray, B, D>(bn, x),
        Some(CpuBackend::Flex) => infer::<Flex, B, D>(bn, x),
        Some(CpuBackend::NdArray) => infer::<NdArray, B, D>(bn, x),
        None => bn.forward(x),
    }
}

fn param_values<B: Backend>(t: Tensor<B, 1>) -> Vec<f32> {
    owned_values(t.into_data().convert::<f32>())
}

/// Inference: `y = x · gamma/√(running_var + ε) + (beta − running_mean · scale)`.
fn infer<I: HostBackend, B: Backend, const D: usize>(
    bn: &BatchNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let dims = x.dims();
    let shape = RowShape::of(&dims).expect("rank checked");
    let mean = param_values(bn.running_mean.value());
    let var = param_values(bn.running_var.value());
    let gamma = param_values(bn.gamma.val());
    let beta = param_values(bn.beta.val());
    let (scale, shift) =
        kernel::normalising_affine(&mean, &kernel::inv_std(&var, bn.epsilon), &gamma, &beta);
    let x: FloatTensor<I> = primitive::<I, B, D>(x);
    let device = I::float_device(&x);
    let y = kernel::affine_rows(&I::host::<D>(&x), shape, &scale, &shift);
    tensor::<I, B, D>(from_host::<I>(y, &dims, &device))
}

/// What the backward pass of one training-mode batch norm needs.
#[derive(Debug, Clone)]
struct TrainState<I: Backend> {
    x: FloatTensor<I>,
    dims: Vec<usize>,
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
}

/// The autodiff node of training-mode batch norm; parents: input, gamma, beta.
#[derive(Debug)]
struct BatchNormBackward<I, const D: usize>(PhantomData<I>);

impl<I: HostBackend, const D: usize> Backward<I, 3> for BatchNormBackward<I, D> {
    type State = TrainState<I>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy = grads.consume::<I>(&ops.node);
        let state = ops.state;
        let shape = RowShape::of(&state.dims).expect("rank checked");
        let device = I::float_device(&state.x);
        let g = kernel::backward(
            &I::host::<D>(&state.x),
            &I::host::<D>(&dy),
            shape,
            &state.mean,
            &state.inv_std,
            &state.gamma,
        );
        let channels = [shape.channels];
        if let Some(node) = node_x {
            grads.register::<I>(node.id, from_host::<I>(g.x, &state.dims, &device));
        }
        if let Some(node) = node_gamma {
            grads.register::<I>(node.id, from_host::<I>(g.gamma, &channels, &device));
        }
        if let Some(node) = node_beta {
            grads.register::<I>(node.id, from_host::<I>(g.beta, &channels, &device));
        }
    }
}

/// Training: batch statistics, Burn's running-statistics update
/// (`running ← (1 − momentum)·running + momentum·batch`, biased variance), and a node
/// whose backward pass is [`kernel::backward`].
fn train<I: HostBackend, B: Backend, const D: usize>(
    bn: &BatchNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    let dims = x.dims().to_vec();
    let device = x.device();
    let shape = RowShape::of(&dims).expect("rank checked");
    let x: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, D>(x);
    let gamma: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, 1>(bn.gamma.val());
    let beta: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, 1>(bn.beta.val());
    let gamma_values = I::host::<1>(&gamma.primitive).into_owned();
    let beta_values = I::host::<1>(&beta.primitive).into_owned();

    let host_x = I::host::<D>(&x.primitive);
    let (mean, var) = kernel::channel_stats(&host_x, shape);
    let inv_std = kernel::inv_std(&var, bn.epsilon);
    let (scale, shift) = kernel::normalising_affine(&mean, &inv_std, &gamma_values, &beta_values);
    let y = kernel::affine_rows(&host_x, shape, &scale, &shift);
    drop(host_x);
    let y = from_host::<I>(y, &dims, &I::float_device(&x.primitive));

    update_running(bn, &mean, &var, &device);

    let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
    let out = match BatchNormBackward::<I, D>(PhantomData)
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            TrainState {
                x: x.primitive,
                dims,
                mean,
                inv_std,
                gamma: gamma_values,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    tensor::<Autodiff<I>, B, D>(out)
}

fn update_running<B: Backend>(bn: &BatchNorm<B>, mean: &[f32], var: &[f32], device: &B::Device) {
    let momentum = bn.momentum as f32;
    let blend = |running: Tensor<B, 1>, batch: &[f32]| -> Tensor<B, 1> {
        let old = param_values(running);
        let new: Vec<f32> = old
            .iter()
            .zip(batch)
            .map(|(&r, &b)| (1.0 - momentum) * r + momentum * b)
            .collect();
        Tensor::from_data(TensorData::new(new, [batch.len()]), device)
    };
    bn.running_mean
        .update(blend(bn.running_mean.value_sync(), mean));
    bn.running_var
        .update(blend(bn.running_var.value_sync(), var));
}
