//! The optimiser every training loop uses: Adam with PyTorch's hyper-parameters.
//!
//! Burn's `AdamConfig` defaults to ε = 1e-5; PyTorch (and so the official release, which uses
//! `optim.Adam` defaults in every stage) uses 1e-8. With gradients as small as a 3-D ResNet's
//! late layers get, ε = 1e-5 is not negligible against √v̂ and damps those updates: the
//! training-trajectory tests (`tests/parity/trajectory.rs`) match PyTorch step by step only
//! with the same ε.
//!
//! [`Adam`] is Burn's Adam with one change of speed, none of result: on the default CPU
//! backend each parameter's step runs as one fused pass ([`crate::ops::adam_update`], bit
//! for bit Burn's arithmetic), elsewhere Burn's own step. Its state is Burn's `AdamState`,
//! so checkpoints keep their format.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamState, AdaptiveMomentumState, LearningRate, SimpleOptimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::ops::{AdamStep, adam_update, fused_adam_applies};

/// PyTorch's `torch.optim.Adam` default ε.
pub const ADAM_EPSILON: f32 = 1e-8;
/// PyTorch's default (β₁, β₂) (also Burn's).
pub const ADAM_BETAS: (f32, f32) = (0.9, 0.999);

/// Adam as PyTorch's `optim.Adam(params, lr, weight_decay=weight_decay)`: coupled (L2)
/// weight decay added to the gradient, none when `weight_decay` is 0.
pub fn adam(weight_decay: f64) -> AdamSettings {
    AdamSettings {
        weight_decay: (weight_decay > 0.0).then_some(weight_decay as f32),
    }
}

/// What [`adam`] was given; [`AdamSettings::init`] makes the optimiser of a module.
#[derive(Debug, Clone, Copy)]
pub struct AdamSettings {
    weight_decay: Option<f32>,
}

impl AdamSettings {
    /// The optimiser for module `M` (as Burn's `AdamConfig::init`).
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(&self) -> OptimizerAdaptor<Adam, M, B> {
        OptimizerAdaptor::from(self.build())
    }

    /// The per-parameter optimiser ([`SimpleOptimizer`]) that [`AdamSettings::init`] wraps.
    fn build(&self) -> Adam {
        Adam {
            burn: self.burn_config().build(),
            weight_decay: self.weight_decay,
        }
    }

    /// Burn's configuration of the same optimiser.
    fn burn_config(&self) -> AdamConfig {
        AdamConfig::new()
            .with_beta_1(ADAM_BETAS.0)
            .with_beta_2(ADAM_BETAS.1)
            .with_epsilon(ADAM_EPSILON)
            .with_weight_decay(self.weight_decay.map(WeightDecayConfig::new))
    }
}

/// Burn's Adam, fused on the default CPU backend (see the module doc).
#[derive(Clone)]
pub struct Adam {
    burn: burn::optim::Adam,
    weight_decay: Option<f32>,
}

impl<B: Backend> SimpleOptimizer<B> for Adam {
    type State<const D: usize> = AdamState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        param: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        if !fused_adam_applies(&param, &grad) {
            return self.burn.step(lr, param, grad, state);
        }
        let (time, moments) = match state {
            Some(AdamState { momentum }) => (
                momentum.time + 1,
                Some((momentum.moment_1, momentum.moment_2)),
            ),
            None => (1, None),
        };
        let step = AdamStep {
            beta_1: ADAM_BETAS.0,
            beta_2: ADAM_BETAS.1,
            epsilon: ADAM_EPSILON,
            weight_decay: self.weight_decay,
            lr,
            time: i32::try_from(time).expect("Adam: step count beyond i32"),
        };
        let (param, moment_1, moment_2) = adam_update(param, grad, moments, &step);
        let momentum = AdaptiveMomentumState::new(time, moment_1, moment_2);
        (param, Some(AdamState::new(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <burn::optim::Adam as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::backend::flex::FlexDevice;
    use burn::tensor::Distribution;

    use super::*;

    /// Values of a tensor as bit patterns (the fused step must equal Burn's exactly).
    fn bits<const D: usize>(t: &Tensor<Flex, D>) -> Vec<u32> {
        t.to_data()
            .to_vec::<f32>()
            .expect("f32 tensor")
            .iter()
            .map(|v| v.to_bits())
            .collect()
    }

    /// Several steps of the fused Adam equal Burn's Adam bit for bit, with and without weight
    /// decay, on a parameter of several parallel chunks and an odd length; a clone of the
    /// parameter taken before a step keeps its values (the in-place update copies shared
    /// storage).
    #[test]
    fn fused_adam_equals_burn() {
        let device = FlexDevice;
        for weight_decay in [0.0, 5e-4] {
            let settings = adam(weight_decay);
            let ours = settings.build();
            let burn = settings.burn_config().build();
            let shape = [3, 5, 6_701];
            let mut p_ours = Tensor::<Flex, 3>::random(shape, Distribution::Default, &device);
            let mut p_burn = p_ours.clone();
            let initial = bits(&p_ours);
            let (mut s_ours, mut s_burn) = (None, None);
            for step in 0..4 {
                let grad =
                    Tensor::<Flex, 3>::random(shape, Distribution::Normal(0.0, 1e-3), &device);
                assert!(fused_adam_applies(&p_ours, &grad));
                let before = p_ours.clone();
                let kept = bits(&before);
                let lr = 1e-3 * (step + 1) as f64;
                let (p, s) = ours.step(lr, p_ours, grad.clone(), s_ours);
                (p_ours, s_ours) = (p, s);
                let (p, s) = burn.step(lr, p_burn, grad, s_burn);
                (p_burn, s_burn) = (p, s);
                assert_eq!(
                    bits(&before),
                    kept,
                    "the step wrote into a shared parameter"
                );
                assert!(
                    bits(&p_ours) == bits(&p_burn),
                    "weight decay {weight_decay}, step {step}: parameters differ"
                );
                let (a, b) = (
                    &s_ours.as_ref().expect("state").momentum,
                    &s_burn.as_ref().expect("state").momentum,
                );
                assert_eq!(a.time, b.time);
                assert!(
                    bits(&a.moment_1) == bits(&b.moment_1),
                    "first moments differ"
                );
                assert!(
                    bits(&a.moment_2) == bits(&b.moment_2),
                    "second moments differ"
                );
            }
            // The parameter moved: the comparison above compared updates, not copies.
            assert!(
                bits(&p_ours) != initial,
                "four steps left the parameter unchanged"
            );
        }
    }
}
