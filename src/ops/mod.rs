//! Tensor operations Burn 0.21 lacks or that we route through one place.

mod batch_norm;
mod conv;
pub mod conv_gemm;
pub mod conv_kernel;
mod conv_node;
mod dispatch;
pub mod norm_kernel;

pub use batch_norm::batch_norm;
pub use conv::{ConvAlgorithm, conv3d};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use burn::tensor::module;

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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{Distribution, TensorData};

    type B = Autodiff<Flex>;

    /// Central finite differences of sum(conv3d(x, w)²) against autodiff, for the input and
    /// the weight: the backbone only learns if this backward pass is right.
    #[test]
    fn conv3d_gradients_match_finite_differences() {
        let device = Default::default();
        let x0 = Tensor::<B, 5>::random([2, 2, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let w0 = Tensor::<B, 5>::random([3, 2, 3, 3, 3], Distribution::Normal(0.0, 0.3), &device);
        let f = |x: Tensor<B, 5>, w: Tensor<B, 5>| {
            conv3d(x, w, [1, 2, 2], [1, 1, 1], [1, 1, 1], ConvAlgorithm::Auto)
                .powi_scalar(2)
                .sum()
        };
        let x = x0.clone().require_grad();
        let w = w0.clone().require_grad();
        let grads = f(x.clone(), w.clone()).backward();
        let gx: Vec<f32> = x.grad(&grads).unwrap().into_data().to_vec().unwrap();
        let gw: Vec<f32> = w.grad(&grads).unwrap().into_data().to_vec().unwrap();
        let eps = 1e-2f32;
        let value = |x: &Tensor<B, 5>, w: &Tensor<B, 5>| -> f64 {
            f(x.clone(), w.clone()).into_scalar() as f64
        };
        let perturb = |t: &Tensor<B, 5>, i: usize, d: f32| {
            let mut v: Vec<f32> = t.clone().into_data().to_vec().unwrap();
            v[i] += d;
            Tensor::<B, 5>::from_data(TensorData::new(v, t.dims()), &device)
        };
        for i in [0usize, 7, 31, 99, 150] {
            let num = (value(&x0, &perturb(&w0, i, eps)) - value(&x0, &perturb(&w0, i, -eps)))
                / (2.0 * eps as f64);
            let rel = (num - gw[i] as f64).abs() / num.abs().max(1.0);
            assert!(
                rel < 1e-2,
                "weight {i}: autodiff {} vs numeric {num}",
                gw[i]
            );
        }
        for i in [0usize, 13, 57, 123, 199] {
            let num = (value(&perturb(&x0, i, eps), &w0) - value(&perturb(&x0, i, -eps), &w0))
                / (2.0 * eps as f64);
            let rel = (num - gx[i] as f64).abs() / num.abs().max(1.0);
            assert!(rel < 1e-2, "input {i}: autodiff {} vs numeric {num}", gx[i]);
        }
    }
}
