//! Parity with the reference values in `tests/fixtures/golden/` (computed with PyTorch in
//! float64): every loss case and both tiny models, on every CPU backend, and on wgpu when
//! that feature is compiled (CI runs it on Mesa's software Vulkan driver).

#[path = "parity/gradients.rs"]
mod gradients;
#[path = "parity/trajectory.rs"]
mod trajectory;

use crate::common::*;
use burn::backend::Autodiff;
use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use serde_json::Value;
use timebalance::loss::{
    DistillKind, SslEmbeddings, StudentWeights, distill, distinctive_loss, global_local,
    invariant_loss, local_local, nt_xent, student_loss,
};
use timebalance::model::import::{HeadPolicy, KeyLayout, load_pytorch_weights};
use timebalance::model::{Arch, BackboneConfig, VideoClassifier};
use timebalance::ops::ConvAlgorithm;
use timebalance::tstr::{ScoreNormalization, teacher_target, teacher_weights, temporal_similarity};

fn case(name: &str) -> Value {
    read_json("losses.json")["cases"][name].clone()
}

fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    values(t)[0]
}

fn tau(c: &Value) -> f64 {
    number(&c["tau"])
}

/// `[views][B, 4, D]` from a JSON `[2, B, 4, D]` array.
fn per_view<B: Backend>(v: &Value, device: &B::Device) -> [Tensor<B, 3>; 2] {
    let all: Tensor<B, 4> = tensor(v, device);
    let [_, b, s, d] = all.dims();
    let view = |i: usize| all.clone().narrow(0, i, 1).reshape([b, s, d]);
    [view(0), view(1)]
}

/// Inputs of the invariant case as [`SslEmbeddings`] (its dense clips come as
/// `[2 views][4 clips][B, D]`; ours are `[B, 4, D]` per view).
fn invariant_inputs<B: Backend>(c: &Value, device: &B::Device) -> SslEmbeddings<B> {
    let dense: Tensor<B, 4> = tensor(&c["dense"], device);
    let [_, clips, b, d] = dense.dims();
    let view = |i: usize| {
        dense
            .clone()
            .narrow(0, i, 1)
            .reshape([clips, b, d])
            .swap_dims(0, 1)
    };
    let s1: Tensor<B, 2> = tensor(&c["sparse_view1"], device);
    let s2: Tensor<B, 2> = tensor(&c["sparse_view2"], device);
    let unused = Tensor::zeros([b, clips, d], device);
    SslEmbeddings {
        sparse_global: [s1, s2],
        sparse_slices: [unused.clone(), unused],
        dense: [view(0), view(1)],
    }
}

fn distinctive_inputs<B: Backend>(c: &Value, device: &B::Device) -> SslEmbeddings<B> {
    let slices = per_view::<B>(&c["sparse_slices"], device);
    let dense = per_view::<B>(&c["dense_pooled"], device);
    let [b, _, d] = dense[0].dims();
    let unused = Tensor::zeros([b, d], device);
    SslEmbeddings {
        sparse_global: [unused.clone(), unused],
        sparse_slices: slices,
        dense,
    }
}

fn labels<B: Backend>(v: &Value, device: &B::Device) -> Tensor<B, 1, Int> {
    let (vals, shape) = flatten(v);
    let ints: Vec<i64> = vals.into_iter().map(|x| x as i64).collect();
    Tensor::from_data(TensorData::new(ints, shape), device)
}

fn check_contrastive<B: Backend>(device: &B::Device) {
    let c = case("nt_xent");
    let loss = nt_xent::<B>(tensor(&c["zi"], device), tensor(&c["zj"], device), tau(&c));
    assert_rel_close(scalar(loss), number(&c["loss"]), LOSS_RTOL, "nt_xent");

    let c = case("global_local");
    let loss = global_local::<B>(
        tensor(&c["sparse_slices"], device),
        tensor(&c["dense_pooled"], device),
        tau(&c),
    );
    assert_rel_close(scalar(loss), number(&c["loss"]), LOSS_RTOL, "global_local");

    let c = case("local_local");
    let loss = local_local::<B>(
        tensor(&c["dense_view1"], device),
        tensor(&c["dense_view2"], device),
        tau(&c),
    );
    assert_rel_close(scalar(loss), number(&c["loss"]), LOSS_RTOL, "local_local");
}

fn check_teachers<B: Backend>(device: &B::Device) {
    let c = case("invariant_teacher");
    let loss = invariant_loss(&invariant_inputs::<B>(&c, device), tau(&c));
    assert_rel_close(
        scalar(loss.total),
        number(&c["loss"]),
        LOSS_RTOL,
        "invariant_teacher",
    );

    let c = case("distinctive_teacher");
    let loss = distinctive_loss(&distinctive_inputs::<B>(&c, device), tau(&c));
    assert_rel_close(
        scalar(loss.total),
        number(&c["loss"]),
        LOSS_RTOL,
        "distinctive_teacher",
    );
}

fn check_tstr<B: Backend>(device: &B::Device) {
    let c = case("tstr");
    let score = temporal_similarity::<B>(
        tensor(&c["clip_embeddings_invariant"], device),
        tensor(&c["clip_embeddings_distinctive"], device),
    );
    let score = values(score);
    let (expected, _) = flatten(&c["score"]);
    assert_all_rel_close(&score, &expected, LOSS_RTOL, "tstr score");

    let scores32: Vec<f32> = score.iter().map(|&s| s as f32).collect();
    let weights = teacher_weights(&scores32, ScoreNormalization::None);
    let weights: Vec<f64> = weights.into_iter().map(f64::from).collect();
    let (expected, _) = flatten(&c["weight"]);
    assert_all_rel_close(&weights, &expected, LOSS_RTOL, "tstr weight");

    let n = weights.len();
    let w = Tensor::<B, 1>::from_data(
        TensorData::new(weights.iter().map(|&x| x as f32).collect::<Vec<_>>(), [n]),
        device,
    );
    let p = teacher_target(
        w,
        tensor(&c["p_invariant"], device),
        tensor(&c["p_distinctive"], device),
    );
    let (expected, _) = flatten(&c["p_teacher"]);
    assert_all_rel_close(&values(p), &expected, LOSS_RTOL, "tstr p_teacher");
}

fn student_weights(c: &Value) -> StudentWeights {
    let (w, _) = flatten(&c["weights"]);
    StudentWeights {
        supervised: w[0],
        labeled: w[1],
        unlabeled: w[2],
    }
}

fn check_student<B: Backend>(device: &B::Device) {
    let c = case("student");
    let loss = student_loss::<B>(
        tensor(&c["logits_labeled"], device),
        labels(&c["labels"], device),
        tensor(&c["p_teacher_labeled"], device),
        tensor(&c["logits_unlabeled"], device),
        tensor(&c["p_teacher_unlabeled"], device),
        student_weights(&c),
        DistillKind::Mse,
    );
    assert_rel_close(scalar(loss.ce), number(&c["ce"]), LOSS_RTOL, "student ce");
    assert_rel_close(
        scalar(loss.distill_labeled),
        number(&c["mse_labeled"]),
        LOSS_RTOL,
        "student mse_labeled",
    );
    assert_rel_close(
        scalar(loss.distill_unlabeled),
        number(&c["mse_unlabeled"]),
        LOSS_RTOL,
        "student mse_unlabeled",
    );
    assert_rel_close(
        scalar(loss.total),
        number(&c["total"]),
        LOSS_RTOL,
        "student total",
    );
}

/// The KL option against PyTorch's `F.kl_div(log_softmax(logits), p, reduction='mean')` on
/// the golden student inputs (float64; the official release's reduction, over N·C). On the
/// CPU backends: Burn 0.21's wgpu backend panics evaluating this expression's value (an index
/// out of bounds in its fusion code generation), while its gradient runs (see
/// `every_loss_backpropagates`).
fn check_student_kl<B: Backend>(device: &B::Device) {
    let c = case("student");
    for (logits, target, expected) in [
        ("logits_labeled", "p_teacher_labeled", KL_MEAN_LABELED),
        ("logits_unlabeled", "p_teacher_unlabeled", KL_MEAN_UNLABELED),
    ] {
        let kl = distill::<B>(
            tensor(&c[logits], device),
            tensor(&c[target], device),
            DistillKind::Kl,
        );
        assert_rel_close(scalar(kl), expected, LOSS_RTOL, "student KL (mean)");
    }
}

/// `F.kl_div(F.log_softmax(l, 1), p, reduction='mean')` in float64 (PyTorch 2.x) on the
/// golden student case's labeled and unlabeled inputs.
const KL_MEAN_LABELED: f64 = 0.112_796_208_789_749_87;
const KL_MEAN_UNLABELED: f64 = 0.094_338_111_085_984_68;

fn check_model<B: AutodiffBackend>(
    device: &B::Device,
    name: &str,
    arch: Arch,
    conv: ConvAlgorithm,
) {
    let reference = read_json(&format!("{name}.json"));
    let width = number(&reference["width"]) as usize;
    let classes = number(&reference["num_classes"]) as usize;
    let backbone = BackboneConfig::new(arch, width).with_conv(conv);
    let mut model = VideoClassifier::<B>::new(backbone, classes, device);
    let weights = golden_dir().join(format!("{name}.safetensors"));
    let report = load_pytorch_weights(
        &mut model,
        &weights,
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(report.applied > 0);
    // Eval mode: the inference copy on the inner backend uses running statistics.
    let model = model.valid();
    let x: Tensor<B::InnerBackend, 5> = tensor(&reference["input"], device);
    let logits = values(model.forward(x));
    let (expected, _) = flatten(&reference["logits"]);
    assert_eq!(logits.len(), expected.len());
    for (i, (a, e)) in logits.iter().zip(&expected).enumerate() {
        assert!(
            (a - e).abs() <= LOGIT_ATOL,
            "{name} logit {i}: got {a}, expected {e} (|diff| {:.3e})",
            (a - e).abs()
        );
    }
}

/// Every loss must back-propagate finite, non-zero gradients to its inputs.
fn check_gradients<B: AutodiffBackend>(device: &B::Device) {
    fn grad_norm<B: AutodiffBackend, const D: usize>(
        loss: Tensor<B, 1>,
        inputs: &[Tensor<B, D>],
        what: &str,
    ) {
        let grads = loss.backward();
        let mut total = 0.0;
        for input in inputs {
            let g = input
                .grad(&grads)
                .unwrap_or_else(|| panic!("{what}: no gradient"));
            for v in values(g) {
                assert!(v.is_finite(), "{what}: non-finite gradient");
                total += v * v;
            }
        }
        assert!(total > 0.0, "{what}: zero gradient");
    }

    let c = case("nt_xent");
    let zi: Tensor<B, 2> = tensor::<B, 2>(&c["zi"], device).require_grad();
    let zj: Tensor<B, 2> = tensor::<B, 2>(&c["zj"], device).require_grad();
    grad_norm(
        nt_xent(zi.clone(), zj.clone(), tau(&c)),
        &[zi, zj],
        "nt_xent",
    );

    let c = case("global_local");
    let s: Tensor<B, 3> = tensor::<B, 3>(&c["sparse_slices"], device).require_grad();
    let d: Tensor<B, 3> = tensor::<B, 3>(&c["dense_pooled"], device).require_grad();
    grad_norm(
        global_local(s.clone(), d.clone(), tau(&c)),
        &[s, d],
        "global_local",
    );

    let c = case("local_local");
    let a: Tensor<B, 3> = tensor::<B, 3>(&c["dense_view1"], device).require_grad();
    let b: Tensor<B, 3> = tensor::<B, 3>(&c["dense_view2"], device).require_grad();
    grad_norm(
        local_local(a.clone(), b.clone(), tau(&c)),
        &[a, b],
        "local_local",
    );

    let c = case("invariant_teacher");
    let e = invariant_inputs::<B>(&c, device);
    let dense = e.dense.clone().map(|t| t.require_grad());
    let e = SslEmbeddings {
        sparse_global: e.sparse_global.map(|t| t.require_grad()),
        sparse_slices: e.sparse_slices,
        dense: dense.clone(),
    };
    grad_norm(
        invariant_loss(&e, tau(&c)).total,
        &dense,
        "invariant_teacher",
    );

    let c = case("distinctive_teacher");
    let e = distinctive_inputs::<B>(&c, device);
    let slices = e.sparse_slices.clone().map(|t| t.require_grad());
    let dense = e.dense.clone().map(|t| t.require_grad());
    let e = SslEmbeddings {
        sparse_global: e.sparse_global,
        sparse_slices: slices.clone(),
        dense: dense.clone(),
    };
    let inputs: Vec<Tensor<B, 3>> = slices.into_iter().chain(dense).collect();
    grad_norm(
        distinctive_loss(&e, tau(&c)).total,
        &inputs,
        "distinctive_teacher",
    );

    let c = case("tstr");
    let ei: Tensor<B, 3> = tensor::<B, 3>(&c["clip_embeddings_invariant"], device).require_grad();
    let ed: Tensor<B, 3> = tensor::<B, 3>(&c["clip_embeddings_distinctive"], device).require_grad();
    grad_norm(
        temporal_similarity(ei.clone(), ed.clone()).sum(),
        &[ei, ed],
        "tstr score",
    );

    let c = case("student");
    for kind in [DistillKind::Mse, DistillKind::Kl] {
        let ll: Tensor<B, 2> = tensor::<B, 2>(&c["logits_labeled"], device).require_grad();
        let lu: Tensor<B, 2> = tensor::<B, 2>(&c["logits_unlabeled"], device).require_grad();
        let loss = student_loss(
            ll.clone(),
            labels(&c["labels"], device),
            tensor(&c["p_teacher_labeled"], device),
            lu.clone(),
            tensor(&c["p_teacher_unlabeled"], device),
            student_weights(&c),
            kind,
        );
        grad_norm(loss.total, &[ll, lu], &format!("student {kind:?}"));
    }
}

macro_rules! golden_suite {
    ($module:ident, $backend:ty, $device:expr) => {
        mod $module {
            use super::*;
            type B = $backend;

            #[test]
            fn contrastive_losses() {
                check_contrastive::<B>(&$device);
            }

            #[test]
            fn teacher_losses() {
                check_teachers::<B>(&$device);
            }

            #[test]
            fn tstr_score_weight_and_target() {
                check_tstr::<B>(&$device);
            }

            #[test]
            fn student_loss_components() {
                check_student::<B>(&$device);
            }

            #[test]
            fn r3d18_tiny_logits() {
                check_model::<Autodiff<B>>(&$device, "r3d_tiny", Arch::R3d18, ConvAlgorithm::Auto);
            }

            #[test]
            fn r2plus1d18_tiny_logits() {
                check_model::<Autodiff<B>>(
                    &$device,
                    "r2plus1d_tiny",
                    Arch::R2plus1d18,
                    ConvAlgorithm::Auto,
                );
            }

            #[test]
            fn every_loss_backpropagates() {
                check_gradients::<Autodiff<B>>(&$device);
            }
        }
    };
}

golden_suite!(flex, burn::backend::Flex, burn::backend::flex::FlexDevice);

/// The GEMM convolution (every GPU backend's default, so the wgpu suite's `r3d18_tiny_logits`
/// already runs it) on the CPU backends.
#[test]
fn r3d18_tiny_logits_gemm_flex() {
    check_model::<Autodiff<burn::backend::Flex>>(
        &burn::backend::flex::FlexDevice,
        "r3d_tiny",
        Arch::R3d18,
        ConvAlgorithm::Gemm,
    );
}

#[test]
fn r3d18_tiny_logits_gemm_ndarray() {
    check_model::<Autodiff<burn::backend::NdArray>>(
        &burn::backend::ndarray::NdArrayDevice::Cpu,
        "r3d_tiny",
        Arch::R3d18,
        ConvAlgorithm::Gemm,
    );
}

#[test]
fn student_kl_option_flex() {
    check_student_kl::<burn::backend::Flex>(&burn::backend::flex::FlexDevice);
}

#[test]
fn student_kl_option_ndarray() {
    check_student_kl::<burn::backend::NdArray>(&burn::backend::ndarray::NdArrayDevice::Cpu);
}
golden_suite!(
    ndarray,
    burn::backend::NdArray,
    burn::backend::ndarray::NdArrayDevice::Cpu
);
#[cfg(feature = "wgpu")]
golden_suite!(
    wgpu,
    burn::backend::Wgpu,
    burn::backend::wgpu::WgpuDevice::DefaultDevice
);
// Needs an NVIDIA GPU: built with `--features cuda`, run by `benches/gpu_check.sh`.
#[cfg(feature = "cuda")]
golden_suite!(
    cuda,
    burn::backend::Cuda,
    burn::backend::cuda::CudaDevice::new(0)
);
