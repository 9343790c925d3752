//! Temporal Similarity based Teacher Reweighting (docs/method.md, Stage 3).
//!
//! A video's score is the mean off-diagonal cosine similarity between the embeddings of
//! n clips taken at different times, averaged over the two teachers: high when the video
//! looks the same over time (trust the invariant teacher).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

/// Guards the normalisation of an all-zero embedding.
const NORM_EPS: f64 = 1e-12;

/// Mean off-diagonal cosine similarity of `n` clip embeddings per video:
/// `[V, n, D]` (need not be normalised) → `[V]`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use timebalance::tstr::self_similarity;
///
/// // Video 0 looks the same at every time (score 1); video 1's clips are orthogonal (0).
/// let e = Tensor::<Flex, 3>::from_floats(
///     [[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]],
///     &Default::default(),
/// );
/// let s: Vec<f32> = self_similarity(e).into_data().to_vec().unwrap();
/// assert!((s[0] - 1.0).abs() < 1e-6 && s[1].abs() < 1e-6);
/// ```
pub fn self_similarity<B: Backend>(embeddings: Tensor<B, 3>) -> Tensor<B, 1> {
    let [v, n, _] = embeddings.dims();
    let norm = embeddings
        .clone()
        .powi_scalar(2)
        .sum_dim(2)
        .sqrt()
        .clamp_min(NORM_EPS);
    let z = embeddings / norm;
    let diagonal = z.clone().powi_scalar(2).sum_dim(2).sum_dim(1).reshape([v]);
    let total = z
        .clone()
        .matmul(z.swap_dims(1, 2))
        .sum_dim(2)
        .sum_dim(1)
        .reshape([v]);
    (total - diagonal).div_scalar((n * (n - 1)) as f64)
}

/// s(v): the two teachers' self-similarities averaged, `[V]`.
pub fn temporal_similarity<B: Backend>(
    invariant: Tensor<B, 3>,
    distinctive: Tensor<B, 3>,
) -> Tensor<B, 1> {
    (self_similarity(invariant) + self_similarity(distinctive)).div_scalar(2.0)
}

/// How raw scores become the invariant teacher's weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ScoreNormalization {
    /// w = clamp(s, 0, 1) (the paper's default).
    #[default]
    None,
    /// w = (s − min) / (max − min) over the training set.
    MinMax,
}

/// The invariant teacher's weight w(v) for every score.
///
/// ```
/// use timebalance::tstr::{ScoreNormalization, teacher_weights};
///
/// assert_eq!(teacher_weights(&[-0.2, 0.5, 1.3], ScoreNormalization::None), [0.0, 0.5, 1.0]);
/// assert_eq!(teacher_weights(&[1.0, 2.0, 3.0], ScoreNormalization::MinMax), [0.0, 0.5, 1.0]);
/// ```
pub fn teacher_weights(scores: &[f32], normalization: ScoreNormalization) -> Vec<f32> {
    match normalization {
        ScoreNormalization::None => scores.iter().map(|s| s.clamp(0.0, 1.0)).collect(),
        ScoreNormalization::MinMax => {
            let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let range = max - min;
            if range > 0.0 {
                scores.iter().map(|s| (s - min) / range).collect()
            } else {
                // Every score equal: no evidence either way, weigh the teachers equally.
                vec![0.5; scores.len()]
            }
        }
    }
}

/// p_T = w·p_I + (1 − w)·p_D with `weights` `[V]` and probabilities `[V, C]`.
///
/// ```
/// use burn::backend::Flex;
/// use burn::tensor::Tensor;
/// use timebalance::tstr::teacher_target;
///
/// let d = Default::default();
/// let p_i = Tensor::<Flex, 2>::from_floats([[1.0, 0.0]], &d);
/// let p_d = Tensor::<Flex, 2>::from_floats([[0.0, 1.0]], &d);
/// let w = Tensor::<Flex, 1>::from_floats([0.75], &d);
/// let p: Vec<f32> = teacher_target(w, p_i, p_d).into_data().to_vec().unwrap();
/// assert_eq!(p, [0.75, 0.25]);
/// ```
pub fn teacher_target<B: Backend>(
    weights: Tensor<B, 1>,
    p_invariant: Tensor<B, 2>,
    p_distinctive: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let w = weights.unsqueeze_dim::<2>(1);
    p_invariant * w.clone() + p_distinctive * (w.neg() + 1.0)
}
