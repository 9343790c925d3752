//! Contrastive losses of the self-supervised stage (docs/method.md, Stage 1), batched.
//!
//! All inputs are unit-norm embeddings, so dot products are cosine similarities.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Subtracted from self-similarities so that `exp` makes them vanish exactly; finite
/// (not −∞) so that no backend produces NaN from `−∞ − (−∞)`.
const SELF_SIMILARITY_MASK: f32 = 1.0e9;

/// Row-wise log-sum-exp over `dim`, stabilised by the (detached) maximum.
fn log_sum_exp<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let max = x.clone().max_dim(dim).detach();
    (x - max.clone()).exp().sum_dim(dim).log() + max
}

/// NT-Xent for `G` independent groups of `N` pairs: `zi`, `zj` are `[G, N, D]`.
///
/// For each group the 2N embeddings are anchors; an anchor's positive is its partner,
/// its negatives the other 2N−2 of the same group. Returns the mean loss per group, `[G]`.
pub fn nt_xent_grouped<B: Backend>(zi: Tensor<B, 3>, zj: Tensor<B, 3>, tau: f64) -> Tensor<B, 1> {
    let [g, n, _] = zi.dims();
    let device = zi.device();
    let positive = (zi.clone() * zj.clone())
        .sum_dim(2)
        .reshape([g, n])
        .div_scalar(tau);
    let z = Tensor::cat(vec![zi, zj], 1);
    let sim = z.clone().matmul(z.swap_dims(1, 2)).div_scalar(tau);
    let eye = Tensor::<B, 2>::eye(2 * n, &device)
        .mul_scalar(SELF_SIMILARITY_MASK)
        .unsqueeze::<3>();
    let lse = log_sum_exp(sim - eye, 2).reshape([g, 2 * n]);
    // Anchors i and i+N share the positive similarity z_i·z_j.
    (lse.sum_dim(1).reshape([g]) - positive.sum_dim(1).reshape([g]).mul_scalar(2.0))
        .div_scalar((2 * n) as f64)
}

/// SimCLR's NT-Xent between `N` paired embeddings `[N, D]`; a scalar `[1]`.
pub fn nt_xent<B: Backend>(zi: Tensor<B, 2>, zj: Tensor<B, 2>, tau: f64) -> Tensor<B, 1> {
    nt_xent_grouped(zi.unsqueeze::<3>(), zj.unsqueeze::<3>(), tau)
}

/// Local–local loss: per video, NT-Xent between its 4 dense clips in view 1 and the same
/// clips in view 2 (negatives: the other clips of the same video), summed over videos.
/// `view1`, `view2`: `[B, 4, D]`.
pub fn local_local<B: Backend>(view1: Tensor<B, 3>, view2: Tensor<B, 3>, tau: f64) -> Tensor<B, 1> {
    nt_xent_grouped(view1, view2, tau).sum()
}

/// Global–local loss: per video `S[t,t'] = slice_t · dense_t' / τ`, cross-entropy with
/// target t over every row and every column, summed over videos and divided by 2B.
/// `slices`, `dense`: `[B, 4, D]`.
pub fn global_local<B: Backend>(
    slices: Tensor<B, 3>,
    dense: Tensor<B, 3>,
    tau: f64,
) -> Tensor<B, 1> {
    let [b, _, _] = slices.dims();
    let diagonal = (slices.clone() * dense.clone())
        .sum_dim(2)
        .sum()
        .div_scalar(tau);
    let sim = slices.matmul(dense.swap_dims(1, 2)).div_scalar(tau);
    let rows = log_sum_exp(sim.clone(), 2).sum();
    let cols = log_sum_exp(sim, 1).sum();
    (rows + cols - diagonal.mul_scalar(2.0)).div_scalar((2 * b) as f64)
}
