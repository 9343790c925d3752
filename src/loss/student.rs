//! The student's semi-supervised objective (docs/method.md, Stage 4).

use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Keeps `log p` finite where a teacher probability is exactly zero (KL option).
const LOG_EPS: f64 = 1e-12;

/// How the student is pulled toward the teacher target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DistillKind {
    /// Mean squared error between probabilities, averaged over batch × classes.
    #[default]
    Mse,
    /// KL(p_teacher ‖ p_student) terms averaged over batch × classes (the release's
    /// `reduction='mean'`).
    Kl,
}

/// `w_s`, `w_l`, `w_u` of docs/method.md.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudentWeights {
    pub supervised: f64,
    pub labeled: f64,
    pub unlabeled: f64,
}

impl Default for StudentWeights {
    fn default() -> Self {
        Self {
            supervised: 1.0,
            labeled: 50.0,
            unlabeled: 100.0,
        }
    }
}

/// Every component (unweighted) and the weighted total, each `[1]`.
#[derive(Debug, Clone)]
pub struct StudentLoss<B: Backend> {
    pub ce: Tensor<B, 1>,
    pub distill_labeled: Tensor<B, 1>,
    pub distill_unlabeled: Tensor<B, 1>,
    pub total: Tensor<B, 1>,
}

/// Mean cross-entropy of logits `[N, C]` against class indices `[N]`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::{Int, Tensor};
/// use timebalance::loss::cross_entropy;
///
/// // Uniform logits over 4 classes: ln 4 whatever the label.
/// let d = Default::default();
/// let logits = Tensor::<Flex, 2>::zeros([2, 4], &d);
/// let labels = Tensor::<Flex, 1, Int>::from_ints([0, 3], &d);
/// let loss: f32 = cross_entropy(logits, labels).into_scalar();
/// assert!((loss - 4f32.ln()).abs() < 1e-6);
/// ```
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, labels: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let n = labels.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, labels.reshape([n, 1]));
    picked.mean().neg()
}

/// Distillation term between student logits `[N, C]` and teacher probabilities `[N, C]`.
pub fn distill<B: Backend>(
    logits: Tensor<B, 2>,
    target: Tensor<B, 2>,
    kind: DistillKind,
) -> Tensor<B, 1> {
    match kind {
        DistillKind::Mse => (softmax(logits, 1) - target).powi_scalar(2).mean(),
        // Averaged over batch × classes, as the release's `KLDivLoss(reduction='mean')`
        // (not PyTorch's `batchmean`, the true KL per sample): its weight w_u was tuned so.
        DistillKind::Kl => {
            let [n, c] = target.dims();
            let log_target = target.clone().clamp_min(LOG_EPS).log();
            // sum / (N·C) rather than `mean()`: the same value, and Burn 0.21's wgpu fusion
            // fails to compile the fused `mean` of this expression (index out of bounds).
            (target * (log_target - log_softmax(logits, 1)))
                .sum()
                .div_scalar((n * c) as f64)
        }
    }
}

/// The student's loss on a labeled and an unlabeled batch.
pub fn student_loss<B: Backend>(
    logits_labeled: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    teacher_labeled: Tensor<B, 2>,
    logits_unlabeled: Tensor<B, 2>,
    teacher_unlabeled: Tensor<B, 2>,
    weights: StudentWeights,
    kind: DistillKind,
) -> StudentLoss<B> {
    let ce = cross_entropy(logits_labeled.clone(), labels);
    let distill_labeled = distill(logits_labeled, teacher_labeled, kind);
    let distill_unlabeled = distill(logits_unlabeled, teacher_unlabeled, kind);
    let total = ce.clone().mul_scalar(weights.supervised)
        + distill_labeled.clone().mul_scalar(weights.labeled)
        + distill_unlabeled.clone().mul_scalar(weights.unlabeled);
    StudentLoss {
        ce,
        distill_labeled,
        distill_unlabeled,
        total,
    }
}
