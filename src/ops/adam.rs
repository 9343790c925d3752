//! Adam's update of one parameter in a single parallel pass over its values, on the default
//! CPU backend (Flex).
//!
//! Burn 0.21's Adam composes the update from a dozen tensor operations (`AdaptiveMomentum::
//! transform`, `WeightDecay::transform`, then `tensor - delta · lr`), each a pass over the
//! parameter into a fresh buffer: 0.13 s of the width-64 R3D-18 training step (33 M
//! parameters; `timebalance bench train --phases`) against PyTorch's 0.08 s. Here the same
//! f32 operations, in the same order, run per element in one pass over parameter, gradient
//! and both moments, in place where a tensor is not shared: the results are Burn's, bit for
//! bit (tested on a parameter with and without weight decay over several steps).

use burn::backend::Flex;
use burn::backend::flex::{FlexDevice, FlexTensor};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use rayon::prelude::*;

use super::dispatch::{CpuBackend, HostBackend, cast, from_host, primitive, tensor};

/// Values per parallel job: large enough that a job's start costs nothing against it (a
/// bias is one job), small enough that the large weights split evenly over the threads
/// (R3D-18's 7.1 M-value stage-4 convolution: 216 jobs).
const CHUNK: usize = 1 << 15;

/// The constants of one Adam step of one parameter (Burn's `AdamConfig` fields, the
/// learning rate and the step's count `time`, 1 for the first step).
#[derive(Debug, Clone, Copy)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Coupled (L2) weight decay: the gradient gets `penalty · parameter` added.
    pub weight_decay: Option<f32>,
    pub lr: f64,
    pub time: i32,
}

/// Whether [`adam_update`] runs for these tensors: f32 on the Flex backend.
pub fn fused_adam_applies<B: Backend, const D: usize>(
    param: &Tensor<B, D>,
    grad: &Tensor<B, D>,
) -> bool {
    CpuBackend::of_f32(param) == Some(CpuBackend::Flex) && CpuBackend::of_f32(grad).is_some()
}

/// The parameter and both moments after one Adam step; `moments` are Burn's `moment_1` and
/// `moment_2`, `None` before the first step (zeros). [`fused_adam_applies`] must hold.
pub fn adam_update<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    moments: Option<(Tensor<B, D>, Tensor<B, D>)>,
    step: &AdamStep,
) -> (Tensor<B, D>, Tensor<B, D>, Tensor<B, D>) {
    assert!(
        fused_adam_applies(&param, &grad),
        "adam_update: needs f32 tensors of the Flex backend"
    );
    let dims = param.dims();
    let device = param.device();
    let flex_device = cast::<B::Device, FlexDevice>(device);
    let zeros = || from_host::<Flex>(vec![0.0; dims.iter().product()], &dims, &flex_device);
    let grad = primitive::<Flex, B, D>(grad);
    let mut p = exclusive(primitive::<Flex, B, D>(param), &dims, &flex_device);
    let (mut m, mut v) = match moments {
        Some((m, v)) => (
            exclusive(primitive::<Flex, B, D>(m), &dims, &flex_device),
            exclusive(primitive::<Flex, B, D>(v), &dims, &flex_device),
        ),
        None => (zeros(), zeros()),
    };
    let g = <Flex as HostBackend>::host::<D>(&grad);
    update(
        p.storage_mut::<f32>(),
        m.storage_mut::<f32>(),
        v.storage_mut::<f32>(),
        &g,
        step,
    );
    (
        tensor::<Flex, B, D>(p),
        tensor::<Flex, B, D>(m),
        tensor::<Flex, B, D>(v),
    )
}

/// `t` with its own contiguous storage holding exactly its values, so that `storage_mut`
/// writes the tensor's values in order (copying only if `t` is shared or a view).
fn exclusive(t: FlexTensor, dims: &[usize], device: &FlexDevice) -> FlexTensor {
    let whole = t.storage::<f32>().len();
    if t.layout().contiguous_offsets() == Some((0, whole)) {
        t
    } else {
        let values = <Flex as HostBackend>::host::<1>(&t).into_owned();
        from_host::<Flex>(values, dims, device)
    }
}

/// One Adam step on host slices (the same f32 operations in the same order as Burn's; see
/// the module doc).
fn update(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: &AdamStep) {
    assert!(
        p.len() == g.len() && m.len() == g.len() && v.len() == g.len(),
        "adam_update: parameter, gradient and moments differ in length"
    );
    let (factor_1, factor_2) = (1.0 - s.beta_1, 1.0 - s.beta_2);
    let bias_correction2_sqrt = (1.0 - s.beta_2.powi(s.time)).sqrt();
    let combined_factor = bias_correction2_sqrt / (1.0 - s.beta_1.powi(s.time));
    let epsilon = s.epsilon * bias_correction2_sqrt;
    // Burn multiplies by the learning rate as a scalar of the tensor's type.
    let lr = s.lr as f32;
    p.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| {
            for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                let g = match s.weight_decay {
                    Some(penalty) => *p * penalty + g,
                    None => g,
                };
                *m = *m * s.beta_1 + g * factor_1;
                *v = *v * s.beta_2 + (g * g) * factor_2;
                let delta = (*m * combined_factor) / (v.sqrt() + epsilon);
                *p -= delta * lr;
            }
        });
}
