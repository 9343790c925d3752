//! The optimiser every training loop uses: Adam with PyTorch's hyper-parameters.
//!
//! Burn's `AdamConfig` defaults to ε = 1e-5; PyTorch (and so the official release, which uses
//! `optim.Adam` defaults in every stage) uses 1e-8. With gradients as small as a 3-D ResNet's
//! late layers get, ε = 1e-5 is not negligible against √v̂ and damps those updates: the
//! training-trajectory tests (`tests/parity/trajectory.rs`) match PyTorch step by step only
//! with the same ε.

use burn::optim::AdamConfig;
use burn::optim::decay::WeightDecayConfig;

/// PyTorch's `torch.optim.Adam` default ε.
pub const ADAM_EPSILON: f32 = 1e-8;
/// PyTorch's default (β₁, β₂) (also Burn's).
pub const ADAM_BETAS: (f32, f32) = (0.9, 0.999);

/// Adam as PyTorch's `optim.Adam(params, lr, weight_decay=weight_decay)`: coupled (L2)
/// weight decay added to the gradient, none when `weight_decay` is 0.
pub fn adam(weight_decay: f64) -> AdamConfig {
    let config = AdamConfig::new()
        .with_beta_1(ADAM_BETAS.0)
        .with_beta_2(ADAM_BETAS.1)
        .with_epsilon(ADAM_EPSILON);
    if weight_decay > 0.0 {
        config.with_weight_decay(Some(WeightDecayConfig::new(weight_decay as f32)))
    } else {
        config
    }
}
