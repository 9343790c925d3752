//! Our CPU kernels against Burn's own operations in the full graph: one training-mode batch
//! through each backbone (and through the projection head, whose batch norms see 2-D input),
//! every parameter's gradient with our conv3d / batch norm against the exact gradient.
//!
//! The exact gradient is Burn's own operations in f64: `Autodiff<NdArray,
//! BalancedCheckpointing>` (a strategy `ops::dispatch` does not recognise, so every operation
//! there is Burn's: its direct-loop convolution and its `BatchNorm`) with every parameter
//! and the input cast to f64. (Burn's Flex operations in f64 agree with it to 3e-13.) The
//! same graph in f32 is what our kernels are held to: in f32 no implementation is exact, and
//! how far one may be from the exact gradient depends on the network. slow_r50 at width 4 is
//! ill-conditioned (a 1e-6 relative change of the input moves its gradients by 3.4e-2):
//! there our im2col kernels and the GEMMs of Burn operations miss the exact gradient by up
//! to 6.0e-3 (as Burn's own f32 operations do, within 1.4e-4 of each other), while our
//! direct kernels miss it by 4.6e-5 (issue 13's note of 2026-12-03). So each parameter's
//! gradient must be as close to the exact one as Burn's f32 gradient is, within a factor
//! ([`ACCURACY_FACTOR`]), or within [`GRADIENT_RTOL`] of it. The unit tests of `src/ops/`
//! check each kernel alone against an f64 definition; this checks that, wired into the
//! networks, they give the gradients training consumes. Weights come from the trajectory
//! fixtures (PyTorch-made, randomised batch-norm parameters).

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::BalancedCheckpointing;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, Tensor, TensorData};
use timebalance::loss::cross_entropy;
use timebalance::model::import::{HeadPolicy, KeyLayout, load_pytorch_weights};
use timebalance::model::{Arch, BackboneConfig, SslModel, VideoClassifier};
use timebalance::ops::ConvAlgorithm;

use super::rel_l2;

/// Bound on every parameter's gradient (relative L2 to the exact one) where Burn's own f32
/// operations are closer than [`GRADIENT_RTOL`] / [`ACCURACY_FACTOR`]. The issue asked 1e-4;
/// correct float32 implementations miss the exact gradient by 1–3e-4 at these tiny widths,
/// where batch norm's backward pass cancels most of each sum (r3d18 width 8 stays under 1e-4,
/// the width-4 models and the head do not). A wrong kernel shows as a localised error of 1e-2
/// or more (a weight gradient scaled by 1.01 is 1e-2 on that tensor).
const GRADIENT_RTOL: f64 = 1e-3;
/// How many times further from the exact gradient than Burn's own f32 operations a gradient
/// may be. Where the network is ill-conditioned (slow_r50: up to 6.0e-3) our im2col kernels
/// land within 1.4e-4 of Burn's f32 gradients, so their error is Burn's to a few percent. A
/// gradient scaled by 1.01 still fails where Burn's f32 misses by less than 5e-3 (shown:
/// slow_r50's stem weight, 1.0e-2 against a bound of 6.8e-3); on slow_r50's worst-conditioned
/// one (its stem batch-norm scale, which Burn's f32 misses by 6.0e-3) it passes, as no f32
/// computation resolves a 1 % error there.
const ACCURACY_FACTOR: f64 = 2.0;
/// A gradient whose norm is under this fraction of the largest one is judged against that
/// fraction of the largest norm instead of against itself. Batch norm's backward pass makes such
/// gradients sums that cancel almost entirely (a bias that feeds a batch norm has no true
/// gradient at all, and the shift of a batch norm followed by another one has little), so the
/// relative difference of two correct float32 implementations grows as one over their norm and
/// depends on how the CPU's matrix kernels group their sums: r2plus1d18 width 4's stem
/// batch-norm shift (2 values, 0.6 % of the largest norm) differs by 2.45e-3 relative on an
/// AVX2-only AMD EPYC (3–4e-4 on every other parameter), under 1e-3 on the machines that set
/// the tolerance. A wrong kernel still shows: a 1 % error on a gradient of 0.5 % of the largest
/// norm is 1e-3 of this floor, and a wrong kernel's error reaches every parameter upstream.
const SMALL_GRADIENT: f64 = 5e-2;
/// Clips per batch and their shape (the trajectory fixtures' supervised shape).
const BATCH: usize = 4;
const CLIP: [usize; 4] = [3, 8, 32, 32];
const CLASSES: usize = 5;
/// Seed of the input batch (the same values on every backend).
const INPUT_SEED: u64 = 7;

fn fixture(case: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/trajectory")
        .join(case)
        .join("init.safetensors")
}

/// The same pseudo-random values on any backend.
fn input<B: Backend, const D: usize>(shape: [usize; D], seed: u64) -> Tensor<B, D> {
    let n: usize = shape.iter().product();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Whose operations compute a gradient, and in which float type.
#[derive(Clone, Copy, PartialEq)]
enum Run {
    /// Our kernels (the default convolution algorithm), f32.
    Ours,
    /// Burn's own convolution (`ConvAlgorithm::Burn`), f32.
    BurnF32,
    /// Burn's own convolution with every parameter and the input cast to f64: the exact
    /// gradient, to compare against.
    Exact,
}

/// Every float parameter cast to f64, as a new leaf (the gradient lands on it).
struct ToF64;

impl<B: Backend> ModuleMapper<B> for ToF64 {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let wide = tensor.cast(DType::F64).detach().require_grad();
        Param::from_mapped_value(id, wide, mapper)
    }
}

impl Run {
    fn conv(self) -> ConvAlgorithm {
        match self {
            Self::Ours => ConvAlgorithm::default(),
            Self::BurnF32 | Self::Exact => ConvAlgorithm::Burn,
        }
    }

    fn model<B: AutodiffBackend, M: Module<B>>(self, model: M) -> M {
        match self {
            Self::Exact => model.map(&mut ToF64),
            _ => model,
        }
    }

    fn tensor<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::Exact => x.cast(DType::F64),
            _ => x,
        }
    }
}

/// Every parameter's gradient, in visiting order (the same order for the same structure).
struct Gradients<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    out: Vec<Vec<f64>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Gradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            self.out
                .push(g.into_data().convert::<f64>().to_vec::<f64>().expect("f64"));
        }
    }
}

fn gradients<B: AutodiffBackend, M: Module<B>>(model: &M, loss: Tensor<B, 1>) -> Vec<Vec<f64>> {
    let grads = loss.backward();
    let mut visitor = Gradients::<B> {
        grads: &grads,
        out: Vec::new(),
    };
    model.visit(&mut visitor);
    visitor.out
}

fn classifier<B: AutodiffBackend>(
    arch: Arch,
    width: usize,
    case: &str,
    run: Run,
) -> VideoClassifier<B> {
    let mut model = VideoClassifier::<B>::new(
        BackboneConfig::new(arch, width).with_conv(run.conv()),
        CLASSES,
        &Default::default(),
    )
    .with_dropout(0.0);
    let layout = match arch {
        Arch::SlowR50 => KeyLayout::Pytorchvideo,
        _ => KeyLayout::Torchvision,
    };
    load_pytorch_weights(&mut model, &fixture(case), layout, HeadPolicy::Require)
        .expect("fixture weights");
    run.model(model)
}

fn classifier_gradients<B: AutodiffBackend>(
    arch: Arch,
    width: usize,
    case: &str,
    run: Run,
) -> Vec<Vec<f64>> {
    let model = classifier::<B>(arch, width, case, run);
    let x = input::<B, 5>([BATCH, CLIP[0], CLIP[1], CLIP[2], CLIP[3]], INPUT_SEED);
    let x = run.tensor(x);
    let labels = Tensor::from_data(
        TensorData::new((0..BATCH as i64).collect::<Vec<_>>(), [BATCH]),
        &Default::default(),
    );
    let loss = cross_entropy(model.forward(x), labels);
    gradients(&model, loss)
}

/// The projection head's batch norms on 2-D rows (one call per slot) and the backbone under
/// them: a loss that reaches every head output.
fn ssl_gradients<B: AutodiffBackend>(run: Run) -> Vec<Vec<f64>> {
    let mut model = SslModel::<B>::new(
        BackboneConfig::new(Arch::R3d18, 4).with_conv(run.conv()),
        &Default::default(),
    );
    load_pytorch_weights(
        &mut model,
        &fixture("ssl_invariant"),
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .expect("fixture weights");
    let model = run.model(model);
    let x = run.tensor(input::<B, 5>([3, 3, 16, 16, 16], INPUT_SEED));
    let e = model.embed_with_slices(x);
    let weights = run.tensor(input::<B, 3>([3, 4, 128], INPUT_SEED + 1));
    let target = run.tensor(input::<B, 2>([3, 128], INPUT_SEED + 2));
    let loss = (e.slices * weights).sum() + (e.global * target).sum();
    gradients(&model, loss)
}

/// Every parameter's gradient of `ours` is within [`GRADIENT_RTOL`] of `exact`, or no more
/// than [`ACCURACY_FACTOR`] times as far from it as `burn` (Burn's own f32 operations).
fn assert_accurate_gradients(ours: &[Vec<f64>], burn: &[Vec<f64>], exact: &[Vec<f64>], what: &str) {
    assert_eq!(ours.len(), exact.len(), "{what}: parameter count");
    assert_eq!(
        burn.len(),
        exact.len(),
        "{what}: parameter count of Burn's f32 run"
    );
    assert!(!ours.is_empty(), "{what}: no gradient");
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let largest = exact.iter().map(|g| norm(g)).fold(0.0, f64::max);
    let floor = SMALL_GRADIENT * largest;
    // Relative L2 to the exact gradient, against the floor for a small one.
    let error = |a: &[f64], e: &[f64]| {
        if norm(e) < floor {
            rel_l2(a, e) * norm(e) / floor
        } else {
            rel_l2(a, e)
        }
    };
    let mut failures = Vec::new();
    for (i, ((a, b), e)) in ours.iter().zip(burn).zip(exact).enumerate() {
        assert_eq!(a.len(), e.len(), "{what}: parameter {i} size");
        let (ours_error, burn_error) = (error(a, e), error(b, e));
        let bound = GRADIENT_RTOL.max(ACCURACY_FACTOR * burn_error);
        // NaN fails too.
        if ours_error.is_nan() || ours_error >= bound {
            failures.push(format!(
                "parameter {i} ({} values): {ours_error:.2e} from the exact gradient (Burn's \
                 f32 ops: {burn_error:.2e})",
                a.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{what}: gradients further from the exact (f64) ones than {GRADIENT_RTOL:e} and than \
         {ACCURACY_FACTOR} times Burn's own f32 operations (relative L2), in visiting order of \
         {} parameters: {failures:#?}",
        ours.len()
    );
}

fn check_backbone<B: AutodiffBackend, R: AutodiffBackend>(
    arch: Arch,
    width: usize,
    case: &str,
    what: &str,
) {
    let exact = classifier_gradients::<R>(arch, width, case, Run::Exact);
    let burn = classifier_gradients::<R>(arch, width, case, Run::BurnF32);
    let ours = classifier_gradients::<B>(arch, width, case, Run::Ours);
    assert_accurate_gradients(&ours, &burn, &exact, what);
}

macro_rules! gradient_suite {
    ($module:ident, $backend:ty) => {
        mod $module {
            use super::*;
            /// Our kernels.
            type B = Autodiff<$backend>;
            /// Burn's operations (NdArray's), in f32 and, for the exact gradient, in f64.
            type R = Autodiff<burn::backend::NdArray, BalancedCheckpointing>;

            #[test]
            fn r3d18_gradients_equal_burns_ops() {
                check_backbone::<B, R>(Arch::R3d18, 8, "supervised_r3d18", "r3d18");
            }

            #[test]
            fn r2plus1d18_gradients_equal_burns_ops() {
                check_backbone::<B, R>(Arch::R2plus1d18, 4, "supervised_r2plus1d18", "r2plus1d18");
            }

            #[test]
            fn slow_r50_gradients_equal_burns_ops() {
                check_backbone::<B, R>(Arch::SlowR50, 4, "supervised_slow_r50", "slow_r50");
            }

            #[test]
            fn projection_head_gradients_equal_burns_ops() {
                let exact = ssl_gradients::<R>(Run::Exact);
                let burn = ssl_gradients::<R>(Run::BurnF32);
                let ours = ssl_gradients::<B>(Run::Ours);
                assert_accurate_gradients(&ours, &burn, &exact, "projection head");
            }
        }
    };
}

gradient_suite!(flex, burn::backend::Flex);
gradient_suite!(ndarray, burn::backend::NdArray);
