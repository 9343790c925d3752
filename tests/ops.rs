//! Our CPU kernels against Burn's own operations and against finite differences: the fused
//! batch norm (training and inference, flex and ndarray), the 3-D convolution's autodiff node,
//! and the convolution's gradients. Here rather than as the library's unit tests: the unit-test
//! harness is a second compilation of the crate that shares no generic instance with the
//! library, while this binary links the library's (`docs/architecture.md`).

/// The fused batch norm against Burn's `BatchNorm::forward`.
#[allow(clippy::disallowed_methods)] // Burn's forward is the reference.
mod batch_norm {
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::nn::{BatchNorm, BatchNormConfig};
    use burn::tensor::Distribution;
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::backend::Backend;
    use burn::tensor::{Tensor, TensorData};
    use timebalance::ops::batch_norm;

    fn close(a: Vec<f32>, b: Vec<f32>, tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs Burn {y}"
            );
        }
    }

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().into_vec().unwrap()
    }

    /// A batch norm whose parameters and running statistics are not the defaults; each call
    /// builds a fresh one (clones would share their running statistics).
    fn module<B: Backend>(channels: usize, device: &B::Device) -> BatchNorm<B> {
        let mut bn = BatchNormConfig::new(channels).init::<B>(device);
        let p = |offset: f32, step: f32| {
            let v: Vec<f32> = (0..channels).map(|c| offset + step * c as f32).collect();
            Tensor::<B, 1>::from_data(TensorData::new(v, [channels]), device)
        };
        bn.gamma = burn::module::Param::from_tensor(p(0.5, 0.4));
        bn.beta = burn::module::Param::from_tensor(p(-0.3, 0.2));
        bn.running_mean = burn::module::RunningState::new(p(0.1, -0.2));
        bn.running_var = burn::module::RunningState::new(p(0.7, 0.3));
        bn
    }

    /// Training mode: output, gradients of input and parameters, and the running
    /// statistics equal those of Burn's own `BatchNorm::forward` on the same backend.
    fn training_matches_burn<B: AutodiffBackend>() {
        let device = Default::default();
        let x = Tensor::<B, 5>::random([2, 3, 2, 3, 4], Distribution::Normal(0.5, 2.0), &device);
        let w = Tensor::<B, 5>::random([2, 3, 2, 3, 4], Distribution::Normal(0.0, 1.0), &device);
        let run = |fused: bool| {
            let bn = module::<B>(3, &device);
            let x = x.clone().detach().require_grad();
            let y = if fused {
                batch_norm(&bn, x.clone())
            } else {
                bn.forward(x.clone())
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            (
                values(y),
                values(x.grad(&grads).unwrap()),
                values(bn.gamma.val().grad(&grads).unwrap()),
                values(bn.beta.val().grad(&grads).unwrap()),
                values(bn.running_mean.value()),
                values(bn.running_var.value()),
            )
        };
        let (ours, burn) = (run(true), run(false));
        close(ours.0, burn.0, 1e-5, "output");
        close(ours.1, burn.1, 1e-4, "input gradient");
        close(ours.2, burn.2, 1e-4, "gamma gradient");
        close(ours.3, burn.3, 1e-4, "beta gradient");
        close(ours.4, burn.4, 1e-6, "running mean");
        close(ours.5, burn.5, 1e-6, "running var");
    }

    /// Inference (no autodiff): the same as Burn's module with running statistics.
    fn inference_matches_burn<B: Backend>() {
        let device = Default::default();
        let bn = module::<B>(4, &device);
        let x = Tensor::<B, 5>::random([3, 4, 2, 2, 5], Distribution::Normal(0.0, 3.0), &device);
        close(
            values(batch_norm(&bn, x.clone())),
            values(bn.forward(x)),
            1e-5,
            "output",
        );
        let x2 = Tensor::<B, 2>::random([5, 4], Distribution::Normal(0.0, 3.0), &device);
        close(
            values(batch_norm(&bn, x2.clone())),
            values(bn.forward(x2)),
            1e-5,
            "2-D output",
        );
    }

    #[test]
    fn flex_training_matches_burn() {
        training_matches_burn::<Autodiff<Flex>>();
    }

    #[test]
    fn ndarray_training_matches_burn() {
        training_matches_burn::<Autodiff<NdArray>>();
    }

    #[test]
    fn flex_inference_matches_burn() {
        inference_matches_burn::<Flex>();
    }

    #[test]
    fn ndarray_inference_matches_burn() {
        inference_matches_burn::<NdArray>();
    }

    /// A permuted (non-contiguous) input takes the copying path and gives the same result.
    #[test]
    fn non_contiguous_input() {
        type B = Autodiff<Flex>;
        let device = Default::default();
        let x = Tensor::<B, 4>::random([4, 2, 3, 5], Distribution::Normal(0.0, 1.0), &device)
            .swap_dims(1, 2);
        let ours = batch_norm(&module::<B>(3, &device), x.clone());
        close(
            values(ours),
            values(module::<B>(3, &device).forward(x)),
            1e-5,
            "output",
        );
    }
}

/// The convolution's own autodiff node against Burn's convolution.
mod conv {
    use burn::backend::{Autodiff, Flex, NdArray};
    use burn::tensor::Distribution;
    use burn::tensor::Tensor;
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::backend::Backend;
    use burn::tensor::module;
    use burn::tensor::ops::ConvOptions;
    use timebalance::ops::conv_direct::Pass;
    use timebalance::ops::conv_kernel::ConvGeometry;
    use timebalance::ops::conv_winograd;
    use timebalance::ops::{ConvAlgorithm, conv3d};

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().into_vec().unwrap()
    }

    /// Largest difference from Burn's values, relative to the largest of them, that f32
    /// rounding of long sums explains (a wrong kernel misses by far more: a Winograd
    /// transform entry off by 0.1 misses by 1e-1).
    const SUM_TOLERANCE: f32 = 1e-5;

    /// Output and both gradients equal Burn's own convolution node's.
    fn matches_burn<B: AutodiffBackend>() {
        matches_burn_on::<B>([2, 3, 4, 6, 5], [4, 3, 3, 3, 3], [1, 2, 2]);
    }

    /// [`matches_burn`] for one input and weight shape and stride (padding 1).
    fn matches_burn_on<B: AutodiffBackend>(
        x_dims: [usize; 5],
        w_dims: [usize; 5],
        stride: [usize; 3],
    ) {
        let device = Default::default();
        let x = Tensor::<B, 5>::random(x_dims, Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<B, 5>::random(w_dims, Distribution::Normal(0.0, 0.3), &device);
        let (padding, dilation) = ([1, 1, 1], [1, 1, 1]);
        let run = |ours: bool| {
            let x = x.clone().detach().require_grad();
            let w = w.clone().detach().require_grad();
            let y = if ours {
                conv3d(
                    x.clone(),
                    w.clone(),
                    stride,
                    padding,
                    dilation,
                    ConvAlgorithm::Auto,
                )
            } else {
                let options = ConvOptions::new(stride, padding, dilation, 1);
                module::conv3d(x.clone(), w.clone(), None, options)
            };
            let grads = (y.clone() * y.clone()).sum().backward();
            let gw = w.grad(&grads).unwrap();
            (values(y), values(x.grad(&grads).unwrap()), gw)
        };
        let (ours, burn) = (run(true), run(false));
        let (gw, gw_burn) = (values(ours.2), values(burn.2));
        for (what, a, b) in [
            ("output", &ours.0, &burn.0),
            ("input grad", &ours.1, &burn.1),
            ("weight grad", &gw, &gw_burn),
        ] {
            // Both sides round sums of up to C_in·27 (or N·T·H·W) f32 products: an element
            // near zero carries the rounding of the sum's larger terms, hence a floor
            // relative to the largest value.
            let floor = SUM_TOLERANCE * b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(b).enumerate() {
                assert!(
                    (p - q).abs() <= (1e-4 * (1.0 + q.abs())).max(floor),
                    "{what}[{i}]: {p} vs {q}"
                );
            }
        }
    }

    #[test]
    fn flex_gradients_match_burn() {
        matches_burn::<Autodiff<Flex>>();
    }

    #[test]
    fn ndarray_gradients_match_burn() {
        matches_burn::<Autodiff<NdArray>>();
    }

    /// A geometry on which `Auto` takes the Winograd kernels for every pass (R3D-18's first
    /// stage at its real width, on a smaller frame): through the dispatch and the autodiff
    /// node, the same values as Burn's.
    #[test]
    fn winograd_gradients_match_burn() {
        let (x_dims, w_dims) = ([1, 64, 2, 32, 32], [64, 64, 3, 3, 3]);
        let g = ConvGeometry::new(x_dims, w_dims, [1; 3], [1; 3], [1; 3]).unwrap();
        for pass in [Pass::Forward, Pass::InputGrad, Pass::WeightGrad] {
            assert!(
                conv_winograd::pays_off(&g, pass),
                "{pass:?} not on Winograd"
            );
        }
        matches_burn_on::<Autodiff<Flex>>(x_dims, w_dims, [1; 3]);
    }
}

/// The convolution's gradients against central finite differences.
mod finite_differences {
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Tensor;
    use burn::tensor::{Distribution, TensorData};
    use timebalance::ops::{ConvAlgorithm, conv3d};

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
