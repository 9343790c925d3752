//! 3-D convolution as GEMMs built from Burn tensor operations: the path of every non-CPU
//! backend (and selectable on the CPU, `ConvAlgorithm::Gemm`, for parity tests).
//!
//! Why not Burn's own: Burn 0.21's CubeCL convolutions autotune by compiling and timing every
//! candidate kernel (8 for the forward, 7 for the weight gradient, 6 for the input gradient)
//! for every distinct convolution geometry, and strided layers' input gradients fall back to an
//! untiled gather kernel: on an H200 the first R3D-18 training step did not finish in 150 s
//! (issue 11). Worse, on wgpu its input gradient of a strided 1×1×1 kernel is zero (test
//! below) — with it, wgpu training left PyTorch's trajectory after one update. The path here
//! uses slices, stacking, reshapes and matmuls, whose autotune keys are bucketed by size.
//! Measured on lavapipe (no GPU; README, Benchmarks) it is slower than Burn's there, first
//! step and steady step: correctness decided the default, a GPU measurement is pending.
//!
//! For a chunk of samples, with `taps = kt·kh·kw` and `P = T'·H'·W'`:
//! - forward: the zero-padded input's strided slice under each kernel tap, stacked into
//!   columns `[n, C_in·taps, P]` (row `(c, a, b, c')`, the order of the weight's
//!   `[C_out, C_in, kt, kh, kw]`), then `W [C_out, C_in·taps] · cols` — one batched matmul;
//! - weight gradient: `dY [n, C_out, P] · colsᵀ`, summed over the samples (the columns are
//!   recomputed from the input: the node keeps the input, not the columns);
//! - input gradient: `Wᵀ · dY` gives the columns' gradient, added back tap by tap into the
//!   padded input's gradient by strided slice-assignment (col2im), then the padding cropped.
//!
//! Samples are processed in chunks whose columns stay under [`COLUMN_BUDGET_BYTES`], so memory
//! stays bounded at 224² and large batches; a sample whose columns alone exceed it is split
//! further into windows of output frames. `Tensor::unfold` is not used: its backward loops
//! over windows.

use std::marker::PhantomData;

use burn::backend::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Slice, Tensor, TensorPrimitive};

use super::conv_kernel::ConvGeometry;
use super::dispatch::{primitive, same, tensor};

/// Largest column buffer of one chunk (bytes of f32): a chunk of samples (or of one sample's
/// output frames) is convolved at a time, so that a 224² clip at batch 16+ never materialises
/// every sample's columns at once. 128 MiB is WebGPU's default `maxStorageBufferBindingSize`,
/// the largest buffer CubeCL's wgpu runtime allocates on devices that report no more (Mesa's
/// lavapipe: R3D-18's first stage at width 64, 8×112², batch 2 needs 331 MiB of columns and
/// panicked with "can't allocate buffer" under the former 512 MiB budget). One output frame of
/// one sample is always a chunk, whatever its size.
pub const COLUMN_BUDGET_BYTES: usize = 128 << 20;

/// Bytes of one f32 column entry.
const F32_BYTES: usize = 4;

/// Bias-free 3-D convolution by GEMM. On an autodiff backend over a known GPU backend
/// (and on the CPU autodiff backends) the backward pass is our node below; on other
/// backends Burn differentiates the forward's operations itself (correct, more memory).
pub fn conv3d<B: Backend>(x: Tensor<B, 5>, weight: Tensor<B, 5>, g: ConvGeometry) -> Tensor<B, 5> {
    #[cfg(feature = "wgpu")]
    if same::<B, Autodiff<burn::backend::Wgpu>>() {
        return tracked::<burn::backend::Wgpu, B>(x, weight, g);
    }
    #[cfg(feature = "cuda")]
    if same::<B, Autodiff<burn::backend::Cuda>>() {
        return tracked::<burn::backend::Cuda, B>(x, weight, g);
    }
    #[cfg(feature = "metal")]
    if same::<B, Autodiff<burn::backend::Metal>>() {
        return tracked::<burn::backend::Metal, B>(x, weight, g);
    }
    #[cfg(feature = "vulkan")]
    if same::<B, Autodiff<burn::backend::Vulkan>>() {
        return tracked::<burn::backend::Vulkan, B>(x, weight, g);
    }
    if same::<B, Autodiff<burn::backend::Flex>>() {
        return tracked::<burn::backend::Flex, B>(x, weight, g);
    }
    if same::<B, Autodiff<burn::backend::NdArray>>() {
        return tracked::<burn::backend::NdArray, B>(x, weight, g);
    }
    forward(x, weight, &g, COLUMN_BUDGET_BYTES)
}

/// Kernel taps per input channel (`kt·kh·kw`).
fn taps(g: &ConvGeometry) -> usize {
    g.kernel.iter().product()
}

/// A window of output frames: the first one and how many.
type Window = (usize, usize);

/// How a convolution is cut: samples per chunk, and output frames per window within one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkPlan {
    samples: usize,
    frames: usize,
}

impl ChunkPlan {
    /// As many samples per chunk as keep its columns under `budget` bytes; when one sample's
    /// columns exceed it, one sample per chunk and as many output frames per window as fit.
    fn new(g: &ConvGeometry, budget: usize) -> Self {
        let [t_out, h_out, w_out] = g.output;
        let per_frame = (g.c_in * taps(g) * h_out * w_out * F32_BYTES).max(1);
        let per_sample = per_frame * t_out.max(1);
        if per_sample <= budget {
            Self {
                samples: (budget / per_sample).clamp(1, g.batch.max(1)),
                frames: t_out,
            }
        } else {
            Self {
                samples: 1,
                frames: (budget / per_frame).clamp(1, t_out.max(1)),
            }
        }
    }

    /// The sample ranges `(start, len)` of the chunks.
    fn chunks(self, g: &ConvGeometry) -> impl Iterator<Item = (usize, usize)> {
        let batch = g.batch;
        (0..batch)
            .step_by(self.samples)
            .map(move |start| (start, self.samples.min(batch - start)))
    }

    /// The output-frame windows of one chunk.
    fn windows(self, g: &ConvGeometry) -> impl Iterator<Item = Window> {
        let t_out = g.output[0];
        (0..t_out)
            .step_by(self.frames)
            .map(move |first| (first, self.frames.min(t_out - first)))
    }
}

/// Output positions of one sample in a window (`frames·H'·W'`).
fn positions(g: &ConvGeometry, (_, frames): Window) -> usize {
    frames * g.output[1] * g.output[2]
}

/// `x` zero-padded by the convolution's padding.
fn padded<B: Backend>(x: Tensor<B, 5>, g: &ConvGeometry) -> Tensor<B, 5> {
    if g.padding == [0; 3] {
        return x;
    }
    let [n, c, t, h, w] = x.dims();
    let [pt, ph, pw] = g.padding;
    let dims = [n, c, t + 2 * pt, h + 2 * ph, w + 2 * pw];
    Tensor::zeros(dims, &x.device())
        .slice_assign([0..n, 0..c, pt..pt + t, ph..ph + h, pw..pw + w], x)
}

/// The region of the padded input that kernel tap `(a, b, c)` meets over the outputs of a
/// window of output frames (all rows and columns).
fn tap_region(g: &ConvGeometry, tap: [usize; 3], (first, frames): Window) -> [Slice; 5] {
    let axis = |d: usize, first: usize, count: usize| {
        let start = first * g.stride[d] + tap[d] * g.dilation[d];
        let end = start + (count - 1) * g.stride[d] + 1;
        Slice::new(start as isize, Some(end as isize), g.stride[d] as isize)
    };
    [
        Slice::full(),
        Slice::full(),
        axis(0, first, frames),
        axis(1, 0, g.output[1]),
        axis(2, 0, g.output[2]),
    ]
}

/// Kernel taps in the weight's order (`a` slowest).
fn tap_offsets(g: &ConvGeometry) -> impl Iterator<Item = [usize; 3]> {
    let [kt, kh, kw] = g.kernel;
    (0..kt).flat_map(move |a| (0..kh).flat_map(move |b| (0..kw).map(move |c| [a, b, c])))
}

/// Columns `[C_in·taps, n·P]` of a window of a padded chunk held channel-major,
/// `[C_in, n, T, H, W]`.
fn columns<B: Backend>(xp: &Tensor<B, 5>, g: &ConvGeometry, window: Window) -> Tensor<B, 2> {
    let n = xp.dims()[1];
    let slices: Vec<Tensor<B, 5>> = tap_offsets(g)
        .map(|tap| xp.clone().slice(tap_region(g, tap, window)))
        .collect();
    let stacked: Tensor<B, 6> = Tensor::stack(slices, 1);
    stacked.reshape([g.c_in * taps(g), n * positions(g, window)])
}

/// The chunk `start..start + len` of `[N, C, T, H, W]`, channel-major `[C, len, T, H, W]`.
fn channel_major<B: Backend>(t: &Tensor<B, 5>, start: usize, len: usize) -> Tensor<B, 5> {
    t.clone().narrow(0, start, len).swap_dims(0, 1)
}

/// The weight as a `[C_out, C_in·taps]` matrix.
fn weight_matrix<B: Backend>(weight: Tensor<B, 5>, g: &ConvGeometry) -> Tensor<B, 2> {
    weight.reshape([g.c_out, g.c_in * taps(g)])
}

/// The output gradient of a window of a chunk (held channel-major) as `[C_out, n·P]`.
fn output_rows<B: Backend>(dy: &Tensor<B, 5>, g: &ConvGeometry, window: Window) -> Tensor<B, 2> {
    let n = dy.dims()[1];
    dy.clone()
        .narrow(2, window.0, window.1)
        .reshape([g.c_out, n * positions(g, window)])
}

/// The convolution, chunk by chunk, with Burn operations only. Every matmul is 2-D, the
/// samples of a chunk side by side in its columns: one large GEMM per chunk (and with CubeCL's
/// autotuning, Burn 0.21's batched wgpu matmul returned wrong values for
/// `[2, 8, 216] · [2, 216, 2048]` on lavapipe, while 2-D products of every size tried were
/// right). Chunks keep their columns under `budget` bytes ([`COLUMN_BUDGET_BYTES`] in training).
pub fn forward<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    g: &ConvGeometry,
    budget: usize,
) -> Tensor<B, 5> {
    let w = weight_matrix(weight, g);
    let [_, h, wd] = g.output;
    let plan = ChunkPlan::new(g, budget);
    let parts: Vec<Tensor<B, 5>> = plan
        .chunks(g)
        .map(|(start, len)| {
            let xp = padded(channel_major(&x, start, len), g);
            let windows: Vec<Tensor<B, 5>> = plan
                .windows(g)
                .map(|window| {
                    w.clone()
                        .matmul(columns(&xp, g, window))
                        .reshape([g.c_out, len, window.1, h, wd])
                })
                .collect();
            cat_or_single(windows, 2).swap_dims(0, 1)
        })
        .collect();
    cat_or_single(parts, 0)
}

/// Concatenates along `dim` (no copy for a single part).
fn cat_or_single<B: Backend>(mut parts: Vec<Tensor<B, 5>>, dim: usize) -> Tensor<B, 5> {
    if parts.len() == 1 {
        parts.remove(0)
    } else {
        Tensor::cat(parts, dim)
    }
}

/// The weight gradient `[C_out, C_in, kt, kh, kw]`, chunked under `budget` bytes of columns.
pub fn weight_grad<B: Backend>(
    x: Tensor<B, 5>,
    dy: Tensor<B, 5>,
    g: &ConvGeometry,
    budget: usize,
) -> Tensor<B, 5> {
    let [kt, kh, kw] = g.kernel;
    let plan = ChunkPlan::new(g, budget);
    let mut total: Option<Tensor<B, 2>> = None;
    for (start, len) in plan.chunks(g) {
        let xp = padded(channel_major(&x, start, len), g);
        let dy = channel_major(&dy, start, len);
        for window in plan.windows(g) {
            let cols = columns(&xp, g, window);
            let part = output_rows(&dy, g, window).matmul(cols.transpose());
            total = Some(match total {
                Some(t) => t + part,
                None => part,
            });
        }
    }
    let total = total.expect("a convolution has at least one sample");
    total.reshape([g.c_out, g.c_in, kt, kh, kw])
}

/// The input gradient `[N, C_in, T, H, W]`, chunked under `budget` bytes of columns.
pub fn input_grad<B: Backend>(
    weight: Tensor<B, 5>,
    dy: Tensor<B, 5>,
    g: &ConvGeometry,
    budget: usize,
) -> Tensor<B, 5> {
    let wt = weight_matrix(weight, g).transpose();
    let [_, h_out, w_out] = g.output;
    let [t, h, w] = g.input;
    let [pt, ph, pw] = g.padding;
    let k = taps(g);
    let plan = ChunkPlan::new(g, budget);
    let parts: Vec<Tensor<B, 5>> = plan
        .chunks(g)
        .map(|(start, len)| {
            let dy = channel_major(&dy, start, len);
            let dims = [g.c_in, len, t + 2 * pt, h + 2 * ph, w + 2 * pw];
            let mut dxp = Tensor::<B, 5>::zeros(dims, &dy.device());
            // Windows meet overlapping input frames: each adds to what is there (col2im).
            for window in plan.windows(g) {
                let frames = window.1;
                let dcols: Tensor<B, 6> = wt
                    .clone()
                    .matmul(output_rows(&dy, g, window))
                    .reshape([g.c_in, k, len, frames, h_out, w_out]);
                for (index, tap) in tap_offsets(g).enumerate() {
                    let region = tap_region(g, tap, window);
                    let part: Tensor<B, 5> = dcols
                        .clone()
                        .narrow(1, index, 1)
                        .reshape([g.c_in, len, frames, h_out, w_out]);
                    let current = dxp.clone().slice(region);
                    dxp = dxp.slice_assign(region, current + part);
                }
            }
            let dx = if g.padding == [0; 3] {
                dxp
            } else {
                dxp.slice([0..g.c_in, 0..len, pt..pt + t, ph..ph + h, pw..pw + w])
            };
            dx.swap_dims(0, 1)
        })
        .collect();
    cat_or_single(parts, 0)
}

/// The autodiff node of the GEMM convolution; parents: input, weight.
#[derive(Debug)]
struct GemmConvBackward<I>(PhantomData<I>);

/// What the backward pass needs: input, weight, geometry (the columns are recomputed).
type GemmState<I> = (FloatTensor<I>, FloatTensor<I>, ConvGeometry);

/// A tensor of backend `I` from its float primitive.
fn wrap<I: Backend>(p: FloatTensor<I>) -> Tensor<I, 5> {
    Tensor::from_primitive(TensorPrimitive::Float(p))
}

impl<I: Backend> Backward<I, 2> for GemmConvBackward<I> {
    type State = GemmState<I>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let dy = wrap::<I>(grads.consume::<I>(&ops.node));
        let (x, weight, g) = ops.state;
        if let Some(node) = node_x {
            let dx = input_grad(wrap::<I>(weight), dy.clone(), &g, COLUMN_BUDGET_BYTES);
            grads.register::<I>(node.id, dx.into_primitive().tensor());
        }
        if let Some(node) = node_weight {
            let dw = weight_grad(wrap::<I>(x), dy, &g, COLUMN_BUDGET_BYTES);
            grads.register::<I>(node.id, dw.into_primitive().tensor());
        }
    }
}

/// The GEMM convolution on `Autodiff<I>` (named `B` by the caller) with our backward node.
fn tracked<I: Backend, B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    g: ConvGeometry,
) -> Tensor<B, 5> {
    let x: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, 5>(x);
    let weight: FloatTensor<Autodiff<I>> = primitive::<Autodiff<I>, B, 5>(weight);
    let y = forward(
        wrap::<I>(x.primitive.clone()),
        wrap::<I>(weight.primitive.clone()),
        &g,
        COLUMN_BUDGET_BYTES,
    )
    .into_primitive()
    .tensor();
    let out = super::conv_node::record(GemmConvBackward::<I>(PhantomData), x, weight, g, y);
    tensor::<Autodiff<I>, B, 5>(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::ConvAlgorithm;
    use burn::backend::{Flex, NdArray};
    use burn::tensor::backend::AutodiffBackend;

    fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().into_vec().unwrap()
    }

    fn assert_close(what: &str, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (p, q)) in a.iter().zip(b).enumerate() {
            assert!(
                (p - q).abs() <= 1e-4 * (1.0 + q.abs()),
                "{what}[{i}]: {p} vs {q}"
            );
        }
    }

    /// The convolution cases: a strided padded kernel, a dilated one, a pointwise strided
    /// one (the shortcut), R(2+1)D's spatial stem, R3D's stem (147 taps) and a kernel strided
    /// in time too (R3D's stages).
    /// Input and weight shapes, stride, padding, dilation.
    type Case = ([usize; 5], [usize; 5], [usize; 3], [usize; 3], [usize; 3]);

    const CASES: [Case; 6] = [
        (
            [2, 3, 4, 6, 5],
            [4, 3, 3, 3, 3],
            [1, 2, 2],
            [1, 1, 1],
            [1, 1, 1],
        ),
        (
            [1, 2, 6, 7, 7],
            [3, 2, 3, 3, 3],
            [1, 1, 1],
            [2, 2, 2],
            [2, 2, 2],
        ),
        (
            [3, 4, 2, 3, 3],
            [5, 4, 1, 1, 1],
            [1, 2, 2],
            [0, 0, 0],
            [1, 1, 1],
        ),
        (
            [2, 3, 4, 9, 9],
            [2, 3, 1, 7, 7],
            [1, 2, 2],
            [0, 3, 3],
            [1, 1, 1],
        ),
        (
            [2, 3, 4, 8, 8],
            [2, 3, 3, 7, 7],
            [1, 2, 2],
            [1, 3, 3],
            [1, 1, 1],
        ),
        (
            [2, 3, 4, 6, 6],
            [4, 3, 3, 3, 3],
            [2, 2, 2],
            [1, 1, 1],
            [1, 1, 1],
        ),
    ];

    /// A tensor of a fixed, sign-varying pattern in [−1, 1): the same values on every
    /// backend (no RNG differences), different per `seed`.
    fn pattern<B: Backend, const D: usize>(
        dims: [usize; D],
        seed: u64,
        device: &B::Device,
    ) -> Tensor<B, D> {
        /// Knuth's multiplicative hash constant: spreads consecutive indices.
        const SPREAD: u64 = 2_654_435_761;
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| ((i as u64 * SPREAD + seed) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        Tensor::from_data(burn::tensor::TensorData::new(v, dims), device)
    }

    /// Output, input gradient and weight gradient of `sum(y²)` on backend `B`, from host
    /// values (so that every backend sees the same numbers).
    fn run<B: AutodiffBackend>(
        case: usize,
        algorithm: ConvAlgorithm,
        device: &B::Device,
    ) -> [Vec<f32>; 3] {
        let (xs, ws, stride, padding, dilation) = CASES[case];
        let x = pattern::<B, 5>(xs, 17, device).require_grad();
        let w = (pattern::<B, 5>(ws, 29, device) * 0.3)
            .detach()
            .require_grad();
        let y = super::super::conv3d(x.clone(), w.clone(), stride, padding, dilation, algorithm);
        let grads = (y.clone() * y.clone()).sum().backward();
        [
            values(y),
            values(x.grad(&grads).unwrap()),
            values(w.grad(&grads).unwrap()),
        ]
    }

    /// Burn's own convolution on the flex backend: the reference of every comparison.
    fn reference(case: usize) -> [Vec<f32>; 3] {
        run::<Autodiff<Flex>>(case, ConvAlgorithm::Burn, &Default::default())
    }

    fn matches_reference<B: AutodiffBackend>(algorithm: ConvAlgorithm, device: &B::Device) {
        for case in 0..CASES.len() {
            let [y, gx, gw] = run::<B>(case, algorithm, device);
            let [ry, rgx, rgw] = reference(case);
            assert_close(&format!("case {case} output"), &y, &ry);
            assert_close(&format!("case {case} input grad"), &gx, &rgx);
            assert_close(&format!("case {case} weight grad"), &gw, &rgw);
        }
    }

    /// Output and both gradients of the GEMM path equal Burn's own convolution's.
    fn matches_burn<B: AutodiffBackend>(device: &B::Device) {
        matches_reference::<B>(ConvAlgorithm::Gemm, device);
    }

    #[test]
    fn flex_gemm_matches_burn() {
        matches_burn::<Autodiff<Flex>>(&Default::default());
    }

    #[test]
    fn ndarray_gemm_matches_burn() {
        matches_burn::<Autodiff<NdArray>>(&Default::default());
    }

    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_gemm_matches_burn() {
        matches_burn::<Autodiff<burn::backend::Wgpu>>(&Default::default());
    }

    /// Tripwire: Burn 0.21's own wgpu convolution returns a zero input gradient for a
    /// strided 1×1×1 kernel (case 2: every ResNet shortcut that downsamples) where flex and
    /// our GEMM path agree on −0.83. This is why wgpu training left PyTorch's trajectory after
    /// one update. If this test fails after a Burn upgrade, Burn fixed it: compare speed again
    /// before keeping GEMM as wgpu's default.
    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_burn_conv_input_grad_of_strided_pointwise_kernel_is_wrong() {
        let device = Default::default();
        let burn = run::<Autodiff<burn::backend::Wgpu>>(2, ConvAlgorithm::Burn, &device);
        let reference = reference(2);
        assert_close("output", &burn[0], &reference[0]);
        assert_close("weight grad", &burn[2], &reference[2]);
        let worst = burn[1]
            .iter()
            .zip(&reference[1])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst > 0.1,
            "Burn's wgpu input gradient now matches (off by {worst})"
        );
    }

    /// Burn 0.21's batched wgpu matmul `[2, 8, 216] · [2, 216, 2048]` (the columns of R3D-18's
    /// first stage at width 8, two samples) is wrong on lavapipe from the first element when
    /// CubeCL's autotuning picks its kernel (the `autotune` feature), while the same product per
    /// sample (2-D) is right — why [`forward`] multiplies 2-D matrices only. Without autotuning
    /// (the default) cubek's `Auto` strategy gets both right. With `autotune` this is a
    /// tripwire: if it fails after a Burn upgrade, Burn fixed the tuned kernel.
    #[cfg(feature = "wgpu")]
    #[test]
    fn wgpu_batched_matmul_is_wrong_only_when_autotuned() {
        type W = burn::backend::Wgpu;
        fn host<B: Backend, const D: usize>(dims: [usize; D], seed: u64) -> Tensor<B, D> {
            pattern(dims, seed, &Default::default())
        }
        let worst = |a: Vec<f32>, b: Vec<f32>| {
            a.iter()
                .zip(&b)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max)
        };
        let (m, k, n) = (8, 216, 2048);
        let batched = worst(
            values(host::<W, 3>([2, m, k], 3).matmul(host::<W, 3>([2, k, n], 5))),
            values(host::<Flex, 3>([2, m, k], 3).matmul(host::<Flex, 3>([2, k, n], 5))),
        );
        let flat = worst(
            values(host::<W, 2>([m, k], 3).matmul(host::<W, 2>([k, 2 * n], 5))),
            values(host::<Flex, 2>([m, k], 3).matmul(host::<Flex, 2>([k, 2 * n], 5))),
        );
        assert!(flat < 1e-4, "2-D wgpu matmul off by {flat}");
        if cfg!(feature = "autotune") {
            assert!(
                batched > 0.1,
                "Burn's autotuned batched wgpu matmul now right (off by {batched})"
            );
        } else {
            assert!(batched < 1e-4, "batched wgpu matmul off by {batched}");
        }
    }

    /// The chunk plan: several samples per chunk when they fit, one sample in windows of
    /// output frames when one sample's columns exceed the budget (R3D-18's first stage at
    /// width 64, 8×112²: 173 MB of columns per sample), every sample and frame covered once.
    #[test]
    fn chunk_plan_covers_samples_and_frames() {
        let g = ConvGeometry::new(
            [5, 64, 8, 56, 56],
            [64, 64, 3, 3, 3],
            [1; 3],
            [1; 3],
            [1; 3],
        )
        .unwrap();
        let per_frame = 64 * 27 * 56 * 56 * F32_BYTES;
        let plan = ChunkPlan::new(&g, COLUMN_BUDGET_BYTES);
        assert_eq!(plan.samples, 1);
        assert_eq!(plan.frames, COLUMN_BUDGET_BYTES / per_frame);
        assert!(plan.frames < 8, "one sample must not fit: {plan:?}");
        let windows: Vec<Window> = plan.windows(&g).collect();
        assert_eq!(windows.iter().map(|w| w.1).sum::<usize>(), 8);
        assert_eq!(windows[1].0, plan.frames);
        let roomy = ChunkPlan::new(&g, 3 * per_frame * 8);
        assert_eq!(
            roomy,
            ChunkPlan {
                samples: 3,
                frames: 8
            }
        );
        let chunks: Vec<(usize, usize)> = roomy.chunks(&g).collect();
        assert_eq!(chunks, vec![(0, 3), (3, 2)]);
    }

    /// Windows of output frames give the same output and gradients as one chunk: every case
    /// at a budget of one byte (one sample, one output frame per window) and of two frames'
    /// columns (windows of 2, the last one shorter where T' is odd), against the whole batch
    /// in one chunk — which `flex_gemm_matches_burn` holds to Burn's convolution.
    #[test]
    fn frame_windows_match_one_chunk() {
        type B = Flex;
        let device = Default::default();
        for (case, &(xs, ws, stride, padding, dilation)) in CASES.iter().enumerate() {
            let g = ConvGeometry::new(xs, ws, stride, padding, dilation).unwrap();
            let x = pattern::<B, 5>(xs, 17, &device);
            let w = pattern::<B, 5>(ws, 29, &device) * 0.3;
            let dy = pattern::<B, 5>(
                [g.batch, g.c_out, g.output[0], g.output[1], g.output[2]],
                41,
                &device,
            );
            let whole = usize::MAX;
            let two_frames = 2 * g.c_in * taps(&g) * g.output[1] * g.output[2] * F32_BYTES;
            for budget in [1, two_frames] {
                let what = |part: &str| format!("case {case} budget {budget} {part}");
                assert_close(
                    &what("output"),
                    &values(forward(x.clone(), w.clone(), &g, budget)),
                    &values(forward(x.clone(), w.clone(), &g, whole)),
                );
                assert_close(
                    &what("weight grad"),
                    &values(weight_grad(x.clone(), dy.clone(), &g, budget)),
                    &values(weight_grad(x.clone(), dy.clone(), &g, whole)),
                );
                assert_close(
                    &what("input grad"),
                    &values(input_grad(w.clone(), dy.clone(), &g, budget)),
                    &values(input_grad(w.clone(), dy.clone(), &g, whole)),
                );
            }
        }
    }
}
