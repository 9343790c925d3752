//! The two teachers' self-supervised objectives (docs/method.md, Stage 1).

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use super::contrastive::{global_local, local_local, nt_xent, nt_xent_grouped};

/// Number of augmented views of every clip.
pub const VIEWS: usize = 2;
/// Number of dense clips (and of slices of the sparse clip).
pub const DENSE_CLIPS: usize = 4;
/// docs/method.md: the dense-clip term of the invariant loss is weighted ¼.
const INVARIANT_DENSE_WEIGHT: f64 = 0.25;

/// Embeddings of one self-supervised batch of B videos.
#[derive(Debug, Clone)]
pub struct SslEmbeddings<B: Backend> {
    /// Sparse clip's global embedding per view, `[B, D]`.
    pub sparse_global: [Tensor<B, 2>; VIEWS],
    /// Sparse clip's 4 slice embeddings per view, `[B, 4, D]`.
    pub sparse_slices: [Tensor<B, 3>; VIEWS],
    /// The 4 dense clips' pooled embeddings per view, `[B, 4, D]` (clip axis second).
    pub dense: [Tensor<B, 3>; VIEWS],
}

/// The parts of a teacher loss, for logging.
#[derive(Debug, Clone)]
pub struct TeacherLoss<B: Backend> {
    pub total: Tensor<B, 1>,
    /// Invariant: sparse-global term; distinctive: local–local term.
    pub first: Tensor<B, 1>,
    /// Invariant: dense-pairs term; distinctive: global–local term.
    pub second: Tensor<B, 1>,
}

/// Invariant teacher: NT-Xent(sparse view 1, sparse view 2) + ¼ Σ over the 56 ordered
/// pairs of distinct (view, dense clip) of NT-Xent(d_c^a, d_c'^b).
pub fn invariant_loss<B: Backend>(e: &SslEmbeddings<B>, tau: f64) -> TeacherLoss<B> {
    let [s1, s2] = e.sparse_global.clone();
    let first = nt_xent(s1, s2, tau);
    // [8, B, D] with index view·4 + clip.
    let all = Tensor::cat(
        e.dense.iter().map(|d| d.clone().swap_dims(0, 1)).collect(),
        0,
    );
    let n = VIEWS * DENSE_CLIPS;
    let (left, right): (Vec<i64>, Vec<i64>) = (0..n)
        .flat_map(|p| {
            (0..n)
                .filter(move |&q| q != p)
                .map(move |q| (p as i64, q as i64))
        })
        .unzip();
    let device = all.device();
    let pairs = left.len();
    let left = Tensor::<B, 1, Int>::from_data(TensorData::new(left, [pairs]), &device);
    let right = Tensor::<B, 1, Int>::from_data(TensorData::new(right, [pairs]), &device);
    let zi = all.clone().select(0, left);
    let zj = all.select(0, right);
    let second = nt_xent_grouped(zi, zj, tau)
        .sum()
        .mul_scalar(INVARIANT_DENSE_WEIGHT);
    TeacherLoss {
        total: first.clone() + second.clone(),
        first,
        second,
    }
}

/// Distinctive teacher: local–local(dense view 1, dense view 2) + Σ over (sparse view a,
/// dense view b) of global–local(slices_a, dense_b).
pub fn distinctive_loss<B: Backend>(e: &SslEmbeddings<B>, tau: f64) -> TeacherLoss<B> {
    let [d1, d2] = e.dense.clone();
    let first = local_local(d1, d2, tau);
    let second = e
        .sparse_slices
        .iter()
        .flat_map(|s| {
            e.dense
                .iter()
                .map(move |d| global_local(s.clone(), d.clone(), tau))
        })
        .reduce(|a, b| a + b)
        .expect("two views give four terms");
    TeacherLoss {
        total: first.clone() + second.clone(),
        first,
        second,
    }
}
