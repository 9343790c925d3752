//! Gradients of a bias-free 3-D convolution on host slices, as im2col + GEMM.
//!
//! For one sample and one output frame, `col[k][p]` holds the input value that kernel tap
//! `k = (c_in, a, b, c)` meets at output position `p = (h_out, w_out)` (zero in the
//! padding). Then, per frame,
//! - forward: `Y[:, t_out] = W · col`, one GEMM;
//! - weight gradient: `dW[c_out][k] += Σ_p dY[c_out][p] · col[k][p]`, one GEMM;
//! - input gradient: `dcol = Wᵀ · dY` (one GEMM), scattered back into `dX` (col2im).
//!
//! A frame's `col` (`K × H_out·W_out` values) is the unit of work: it bounds the scratch
//! memory to a few MB per thread instead of the whole clip's `K × T_out·H_out·W_out`. (Blocks
//! of several frames, for the GEMMs' sake at 32², were measured slower: issue 13's note.)
//! Samples are processed in parallel (each thread with its own scratch and, for the
//! weight gradient, its own accumulator); with fewer samples than threads the GEMMs are
//! parallel instead. The weight gradient comes out row-major `[c_out, c_in, kt, kh, kw]`.
//!
//! im2col writes only the positions an input value reaches: the forward and weight-gradient
//! scratch starts zeroed, and its padding positions, the same for every frame of a geometry,
//! stay zero. A "same" convolution (spatial stride 1, `W' = W`: R3D's 3×3×3 with padding 1)
//! copies each tap's frame as one contiguous run and re-zeroes the padding columns the run
//! crosses, instead of a copy and two fills per output row (im2col was 30 % of a width-8
//! training step, issue 13's profile). Doing without im2col for unit-stride kernels — one GEMM
//! per tap on a shifted view of a padded copy of the sample, `K = c_in` — was measured slower
//! at width 8 and 64 (small-`K` GEMMs reload their output tile every few steps; commit
//! 341182d, reverted, `benches/results/2026-12-01-shifted-views-rejected.txt`).
//!
//! Spatially pointwise kernels (`kt × 1 × 1`, spatial stride 1, no spatial padding: the
//! temporal factor of R(2+1)D, most convolutions of a bottleneck block) need no im2col:
//! tap `(c_in, a)` reads input frame rows as they are, so each temporal tap is one GEMM on
//! the input (and into the input gradient) in place; a `1 × 1 × 1` stride-1 kernel is one
//! GEMM per sample over all its positions.

use rayon::prelude::*;

/// Shapes and geometry of one convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    /// Input `[T, H, W]`.
    pub input: [usize; 3],
    /// Kernel `[kt, kh, kw]`.
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub padding: [usize; 3],
    pub dilation: [usize; 3],
    /// Output `[T', H', W']`.
    pub output: [usize; 3],
}

impl ConvGeometry {
    /// From the input `[N, C_in, T, H, W]` and weight `[C_out, C_in, kt, kh, kw]` shapes;
    /// `None` when the kernel does not fit the padded input.
    pub fn new(
        x: [usize; 5],
        w: [usize; 5],
        stride: [usize; 3],
        padding: [usize; 3],
        dilation: [usize; 3],
    ) -> Option<Self> {
        let mut output = [0; 3];
        for d in 0..3 {
            let span = dilation[d] * (w[2 + d].checked_sub(1)?) + 1;
            let padded = x[2 + d] + 2 * padding[d];
            output[d] = padded.checked_sub(span)? / stride[d] + 1;
        }
        Some(Self {
            batch: x[0],
            c_in: x[1],
            c_out: w[0],
            input: [x[2], x[3], x[4]],
            kernel: [w[2], w[3], w[4]],
            stride,
            padding,
            dilation,
            output,
        })
    }

    /// Kernel taps per output channel (`C_in · kt · kh · kw`).
    fn taps(&self) -> usize {
        self.c_in * self.kernel.iter().product::<usize>()
    }

    pub(super) fn input_len(&self) -> usize {
        self.c_in * self.input.iter().product::<usize>()
    }

    pub(super) fn output_len(&self) -> usize {
        self.c_out * self.output.iter().product::<usize>()
    }

    /// Output positions of one frame.
    fn frame(&self) -> usize {
        self.output[1] * self.output[2]
    }

    /// Input index along axis `d` met by output `o` at kernel offset `tap`, if inside.
    fn source(&self, d: usize, o: usize, tap: usize) -> Option<usize> {
        let i = (o * self.stride[d] + tap * self.dilation[d]).checked_sub(self.padding[d])?;
        (i < self.input[d]).then_some(i)
    }

    /// The outputs `lo..hi` along axis `d` whose source at kernel offset `tap` is inside.
    fn valid_outputs(&self, d: usize, tap: usize) -> (usize, usize) {
        let (s, offset, pad) = (self.stride[d], tap * self.dilation[d], self.padding[d]);
        let lo = pad.saturating_sub(offset).div_ceil(s).min(self.output[d]);
        // o·s + offset − pad ≤ input − 1  ⇔  o ≤ (input − 1 + pad − offset) / s
        let hi = match (self.input[d] + pad).checked_sub(offset + 1) {
            Some(limit) => (limit / s + 1).min(self.output[d]),
            None => 0,
        };
        (lo, hi.max(lo))
    }

    /// Whether every kernel tap reads whole input frames unchanged (a `1 × 1` spatial
    /// kernel, spatial stride 1, no spatial padding): the im2col rows of a tap are then rows
    /// of the input itself, and output frames have the input's `H × W`.
    pub(super) fn spatially_pointwise(&self) -> bool {
        self.kernel[1..] == [1, 1] && self.stride[1..] == [1, 1] && self.padding[1..] == [0, 0]
    }

    /// A pointwise kernel that is also trivial in time (`1 × 1 × 1`, stride 1, no padding)
    /// maps every input position to the same output position: the same convolution seen as
    /// one frame of `T·H × W` per sample, so that a sample is a single GEMM. Otherwise `self`.
    fn folded(self) -> Self {
        let trivial_in_time = self.kernel[0] == 1 && self.stride[0] == 1 && self.padding[0] == 0;
        if !(self.spatially_pointwise() && trivial_in_time) {
            return self;
        }
        let [t, h, w] = self.input;
        Self {
            input: [1, t * h, w],
            output: [1, t * h, w],
            ..self
        }
    }

    /// The temporal taps `(a, t_in)` of output frame `t_out` whose input frame exists.
    fn temporal_taps(&self, t_out: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.kernel[0]).filter_map(move |a| self.source(0, t_out, a).map(|t_in| (a, t_in)))
    }

    /// Scratch values for one frame's im2col columns (none for pointwise kernels).
    fn scratch(&self) -> usize {
        if self.spatially_pointwise() {
            0
        } else {
            self.taps() * self.frame()
        }
    }

    /// Values per input plane as im2col reads it, `stride · H · ⌈W / stride⌉`: with a column
    /// stride its columns regrouped by phase ([`split_columns`]); with stride 1 the plane itself
    /// (`H · W`, one phase).
    fn source_plane(&self) -> usize {
        let (h, w, s) = (self.input[1], self.input[2], self.stride[2]);
        s * h * w.div_ceil(s)
    }

    /// Scratch values for one sample's phase-regrouped input (none without a column stride).
    fn split_scratch(&self) -> usize {
        if self.stride[2] > 1 {
            self.c_in * self.input[0] * self.source_plane()
        } else {
            0
        }
    }

    /// A "same" convolution in the plane: spatial stride 1 and `W' = W`, so the valid
    /// outputs of a tap read one contiguous run of the input plane ([`Tap::run`]).
    fn same_in_plane(&self) -> bool {
        self.stride[1..] == [1, 1] && self.output[2] == self.input[2]
    }

    /// Tap `a` of the weight as a `c_out × c_in` operand (pointwise kernels: `taps = c_in·kt`).
    fn weight_tap<'a>(&self, w: &'a [f32], a: usize) -> Operand<'a> {
        Operand {
            data: &w[a..],
            row_stride: self.taps(),
            col_stride: self.kernel[0],
        }
    }

    /// Input frame `t_in` of one sample as a `c_in × H·W` operand (pointwise kernels).
    fn input_frame<'a>(&self, x_n: &'a [f32], t_in: usize) -> Operand<'a> {
        Operand {
            data: &x_n[t_in * self.frame()..],
            row_stride: self.input.iter().product(),
            col_stride: 1,
        }
    }
}

/// One kernel tap as im2col and col2im visit it: its index `k` in weight order, its input
/// channel and temporal offset `a`, its spatial offsets `(b, c)`, and the valid output rows
/// of `b` and columns of `c` ([`ConvGeometry::valid_outputs`]).
#[derive(Debug, Clone, Copy)]
struct Tap {
    k: usize,
    ci: usize,
    a: usize,
    bc: (usize, usize),
    rows: (usize, usize),
    cols: (usize, usize),
}

/// Calls `visit` with every kernel tap in weight order (plain loops: an iterator of nested
/// `flat_map`s cost 5 % of a width-8 training step in the profile).
fn for_each_tap(g: &ConvGeometry, mut visit: impl FnMut(Tap)) {
    let [kt, kh, kw] = g.kernel;
    let mut k = 0;
    for ci in 0..g.c_in {
        for a in 0..kt {
            for b in 0..kh {
                let rows = g.valid_outputs(1, b);
                for c in 0..kw {
                    let cols = g.valid_outputs(2, c);
                    visit(Tap {
                        k,
                        ci,
                        a,
                        bc: (b, c),
                        rows,
                        cols,
                    });
                    k += 1;
                }
            }
        }
    }
}

impl Tap {
    /// Whether some output position reads the input at this tap's spatial offsets (the
    /// methods below assume it does).
    fn reads_input(&self) -> bool {
        self.rows.1 > self.rows.0 && self.cols.1 > self.cols.0
    }

    /// Where the valid outputs `rows × cols` start in an input plane: the input row and
    /// column read by output `(rows.0, cols.0)`.
    fn first_source(&self, g: &ConvGeometry) -> (usize, usize) {
        let (b, c) = self.bc;
        (
            self.rows.0 * g.stride[1] + b * g.dilation[1] - g.padding[1],
            self.cols.0 * g.stride[2] + c * g.dilation[2] - g.padding[2],
        )
    }

    /// Valid outputs per row.
    fn width(&self) -> usize {
        self.cols.1 - self.cols.0
    }

    /// For a same convolution ([`ConvGeometry::same_in_plane`]): output (oh, ow) reads input
    /// (ih0 + oh − rows.0, iw0 + ow − cols.0), and rows of both are `W` apart, so the valid
    /// outputs are one run — `(output offset, input offset, length)` — which also crosses
    /// the padding columns between rows ([`Tap::zero_crossed_padding`]).
    fn run(&self, g: &ConvGeometry) -> (usize, usize, usize) {
        let w = g.input[2];
        let (ih0, iw0) = self.first_source(g);
        let len = (self.rows.1 - self.rows.0 - 1) * w + self.width();
        (self.rows.0 * w + self.cols.0, ih0 * w + iw0, len)
    }

    /// Zeroes, in one frame of columns `buf` of a same convolution, the padding columns
    /// between consecutive valid rows that [`Tap::run`] crosses.
    fn zero_crossed_padding(&self, buf: &mut [f32], g: &ConvGeometry) {
        let w = g.input[2];
        if self.width() < w {
            for oh in self.rows.0..self.rows.1 - 1 {
                buf[oh * w + self.cols.1..(oh + 1) * w + self.cols.0].fill(0.0);
            }
        }
    }
}

/// Copies the input values `tap` meets into one frame's row of columns `dst` (`H'·W'`), at
/// its valid outputs only.
fn copy_tap(plane: &[f32], dst: &mut [f32], g: &ConvGeometry, tap: &Tap) {
    if g.same_in_plane() {
        let (out, input, len) = tap.run(g);
        dst[out..][..len].copy_from_slice(&plane[input..][..len]);
        tap.zero_crossed_padding(dst, g);
        return;
    }
    let (w_out, width, s) = (g.output[2], tap.width(), g.stride[2]);
    let (ih0, iw0) = tap.first_source(g);
    // The columns the tap reads are consecutive in phase `iw0 % s` of each row (`⌈W / s⌉`
    // values; with stride 1 the only phase is the row itself).
    let row_len = g.input[2].div_ceil(s);
    let phase_start = (iw0 % s) * g.input[1] * row_len + iw0 / s;
    for (i, oh) in (tap.rows.0..tap.rows.1).enumerate() {
        let src = &plane[(ih0 + i * g.stride[1]) * row_len + phase_start..][..width];
        dst[oh * w_out + tap.cols.0..][..width].copy_from_slice(src);
    }
}

/// One sample's input planes with their columns regrouped by phase, for a column stride `s`:
/// phase `q` holds columns `q, q + s, q + 2s, …` of every row (`⌈W / s⌉` values per row; a
/// shorter phase leaves its last value as it was), so that the columns a strided output row
/// reads are one contiguous run (the stem's im2col gathered them value by value, 13 % of a
/// width-8 training step after issue 13's first change).
fn split_columns(x: &[f32], g: &ConvGeometry, out: &mut [f32]) {
    let (h, w, s) = (g.input[1], g.input[2], g.stride[2]);
    let ws = w.div_ceil(s);
    for (plane, split) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(s * h * ws)) {
        for (q, phase) in split.chunks_exact_mut(h * ws).enumerate() {
            for (row, dst) in plane.chunks_exact(w).zip(phase.chunks_exact_mut(ws)) {
                let columns = row.get(q..).unwrap_or_default().iter().step_by(s);
                dst.iter_mut().zip(columns).for_each(|(d, &v)| *d = v);
            }
        }
    }
}

/// Adds one frame's row of the columns' gradient `src` (`H'·W'`) into the input plane's
/// gradient, at `tap`'s valid outputs (the transpose of [`copy_tap`]). `src`'s values
/// outside them may be zeroed on the way (they are the padding's gradient).
fn add_tap(src: &mut [f32], plane: &mut [f32], g: &ConvGeometry, tap: &Tap) {
    if g.same_in_plane() {
        tap.zero_crossed_padding(src, g);
        let (out, input, len) = tap.run(g);
        plane[input..][..len]
            .iter_mut()
            .zip(&src[out..][..len])
            .for_each(|(d, &v)| *d += v);
        return;
    }
    let (w, w_out, width) = (g.input[2], g.output[2], tap.width());
    let (ih0, iw0) = tap.first_source(g);
    for (i, oh) in (tap.rows.0..tap.rows.1).enumerate() {
        let dst = &mut plane[(ih0 + i * g.stride[1]) * w + iw0..];
        let run = &src[oh * w_out + tap.cols.0..][..width];
        if g.stride[2] == 1 {
            dst[..width].iter_mut().zip(run).for_each(|(d, &v)| *d += v);
        } else {
            dst.iter_mut()
                .step_by(g.stride[2])
                .zip(run)
                .for_each(|(d, &v)| *d += v);
        }
    }
}

/// The sample as [`im2col_frame`] reads it, and the scratch for its columns: with a column
/// stride, the sample regrouped by phase ([`split_columns`], once per sample) into the tail of
/// `scratch` (`g.scratch() + g.split_scratch()` values).
fn im2col_source<'a>(
    x_n: &'a [f32],
    g: &ConvGeometry,
    scratch: &'a mut [f32],
) -> (&'a [f32], &'a mut [f32]) {
    let (col, split) = scratch.split_at_mut(g.scratch());
    if g.stride[2] > 1 {
        split_columns(x_n, g, split);
        (split, col)
    } else {
        (x_n, col)
    }
}

/// `col` (`taps × frame`) of one sample's output frame `t_out`. Only the positions an input
/// value reaches are written (a tap with no input frame zeroes its row): `col` must start
/// zeroed and be written by this function alone, for one geometry.
///
/// `x` is the sample as it is, or with a column stride as [`split_columns`] regrouped it.
fn im2col_frame(x: &[f32], g: &ConvGeometry, t_out: usize, col: &mut [f32]) {
    let (frames_in, plane_len, frame) = (g.input[0], g.source_plane(), g.frame());
    for_each_tap(g, |tap| {
        let dst = &mut col[tap.k * frame..][..frame];
        let Some(t) = g.source(0, t_out, tap.a) else {
            dst.fill(0.0);
            return;
        };
        if tap.reads_input() {
            let plane = &x[(tap.ci * frames_in + t) * plane_len..][..plane_len];
            copy_tap(plane, dst, g, &tap);
        }
    });
}

/// Adds `col` (`taps × frame`) of output frame `t_out` back into one sample's input
/// gradient (the transpose of [`im2col_frame`]); `col` is scratch and is changed.
fn col2im_frame(col: &mut [f32], g: &ConvGeometry, t_out: usize, dx: &mut [f32]) {
    let (frames_in, plane_len, frame) = (g.input[0], g.input[1] * g.input[2], g.frame());
    for_each_tap(g, |tap| {
        let Some(t) = g.source(0, t_out, tap.a) else {
            return;
        };
        if tap.reads_input() {
            let src = &mut col[tap.k * frame..][..frame];
            let plane = &mut dx[(tap.ci * frames_in + t) * plane_len..][..plane_len];
            add_tap(src, plane, g, &tap);
        }
    });
}

/// A matrix operand: a slice with its row and column strides.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    pub(super) data: &'a [f32],
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
}

impl Operand<'_> {
    /// The same values read as the transposed matrix.
    fn transposed(self) -> Self {
        Self {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Offset of the last element of an `rows × cols` matrix, for bounds checks.
    fn last(&self, rows: usize, cols: usize) -> usize {
        (rows - 1) * self.row_stride + (cols - 1) * self.col_stride
    }
}

/// A matrix destination: a slice with its row and column strides, overwritten by the
/// product or (`accumulate`) added to.
pub(super) struct Dst<'a> {
    pub(super) data: &'a mut [f32],
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
    pub(super) accumulate: bool,
}

/// `dst (m × n, row-major) = [dst +] lhs (m × k) · rhs (k × n)`.
fn matmul(
    dst: &mut [f32],
    accumulate: bool,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    shape: (usize, usize, usize),
    parallel: bool,
) {
    let dst = Dst {
        data: dst,
        row_stride: shape.1,
        col_stride: 1,
        accumulate,
    };
    matmul_into(dst, lhs, rhs, shape, parallel)
}

/// [`matmul`] into a strided destination.
pub(super) fn matmul_into(
    dst: Dst<'_>,
    lhs: Operand<'_>,
    rhs: Operand<'_>,
    (m, n, k): (usize, usize, usize),
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // Rows `[i·rs, i·rs + (n−1)·cs]` are disjoint and in order: no element is written twice.
    assert!(
        dst.col_stride >= 1 && dst.row_stride >= n * dst.col_stride,
        "matmul: destination elements overlap"
    );
    assert!(
        dst.data.len() > (m - 1) * dst.row_stride + (n - 1) * dst.col_stride,
        "matmul: destination too small"
    );
    if k == 0 {
        if !dst.accumulate {
            for i in 0..m {
                for j in 0..n {
                    dst.data[i * dst.row_stride + j * dst.col_stride] = 0.0;
                }
            }
        }
        return;
    }
    assert!(lhs.last(m, k) < lhs.data.len(), "matmul: lhs out of bounds");
    assert!(rhs.last(k, n) < rhs.data.len(), "matmul: rhs out of bounds");
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three regions were bounds-checked above for the given shapes and
    // strides; `dst` is a unique borrow that does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            dst.col_stride as isize,
            dst.row_stride as isize,
            dst.accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// Samples per parallel job: one job per thread, so that each thread allocates (and zeroes)
/// its scratch once per call rather than once per rayon split (page faults and `memset` were
/// 8 % of a width-8 step with larger scratch).
fn samples_per_job(g: &ConvGeometry) -> usize {
    g.batch.div_ceil(rayon::current_num_threads()).max(1)
}

/// Whether to parallelise over samples (each sequential inside) or inside each GEMM.
fn over_samples(g: &ConvGeometry) -> bool {
    g.batch >= rayon::current_num_threads()
}

/// One sample's output `y_n` from output frame `t_out` on, as a `c_out × positions`
/// destination (the frames of a channel are consecutive).
fn output_frame<'a>(
    y_n: &'a mut [f32],
    g: &ConvGeometry,
    t_out: usize,
    accumulate: bool,
) -> Dst<'a> {
    Dst {
        data: &mut y_n[t_out * g.frame()..],
        row_stride: g.output.iter().product(),
        col_stride: 1,
        accumulate,
    }
}

/// `dY[n][:, t_out..]` as a `c_out × positions` operand.
fn dy_frame<'a>(dy: &'a [f32], g: &ConvGeometry, n: usize, t_out: usize) -> Operand<'a> {
    let per_channel = g.output.iter().product::<usize>();
    let start = n * g.output_len() + t_out * g.frame();
    Operand {
        data: &dy[start..],
        row_stride: per_channel,
        col_stride: 1,
    }
}

/// Output `[N, c_out, T', H', W']` of the convolution of `x` with `w`.
pub fn forward(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let g = &g.folded();
    let (taps, frame) = (g.taps(), g.frame());
    assert_eq!(x.len(), g.batch * g.input_len(), "conv input length");
    assert_eq!(w.len(), g.c_out * taps, "conv weight length");
    let weight = Operand {
        data: w,
        row_stride: taps,
        col_stride: 1,
    };
    let sample = |n: usize, y_n: &mut [f32], col: &mut Vec<f32>, parallel: bool| {
        let x_n = &x[n * g.input_len()..][..g.input_len()];
        if g.spatially_pointwise() {
            for t_out in 0..g.output[0] {
                // `y_n` starts at zero: a frame without taps inside the input stays zero.
                for (i, (a, t_in)) in g.temporal_taps(t_out).enumerate() {
                    let (lhs, rhs) = (g.weight_tap(w, a), g.input_frame(x_n, t_in));
                    let dst = output_frame(y_n, g, t_out, i > 0);
                    matmul_into(dst, lhs, rhs, (g.c_out, frame, g.c_in), parallel);
                }
            }
            return;
        }
        let (source, col) = im2col_source(x_n, g, col);
        for t_out in 0..g.output[0] {
            im2col_frame(source, g, t_out, col);
            let col = Operand {
                data: col,
                row_stride: frame,
                col_stride: 1,
            };
            let dst = output_frame(y_n, g, t_out, false);
            matmul_into(dst, weight, col, (g.c_out, frame, taps), parallel);
        }
    };
    let mut y = vec![0.0f32; g.batch * g.output_len()];
    if g.output_len() == 0 {
        return y;
    }
    let scratch = g.scratch() + g.split_scratch();
    if over_samples(g) {
        y.par_chunks_mut(g.output_len())
            .enumerate()
            .with_min_len(samples_per_job(g))
            .for_each_init(
                || vec![0.0f32; scratch],
                |col, (n, y_n)| sample(n, y_n, col, false),
            );
    } else {
        let mut col = vec![0.0f32; scratch];
        for (n, y_n) in y.chunks_mut(g.output_len()).enumerate() {
            sample(n, y_n, &mut col, true);
        }
    }
    y
}

/// Weight gradient `[c_out, c_in, kt, kh, kw]` (row-major) of `y = conv(x, w)` for `dy`.
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.input_len(), "conv input length");
    assert_eq!(
        dy.len(),
        g.batch * g.output_len(),
        "conv output-gradient length"
    );
    let g = &g.folded();
    let (taps, frame) = (g.taps(), g.frame());
    let sample = |n: usize, acc: &mut Vec<f32>, col: &mut Vec<f32>, parallel: bool| {
        let x_n = &x[n * g.input_len()..][..g.input_len()];
        if g.spatially_pointwise() {
            for t_out in 0..g.output[0] {
                // dW[:, :, a] (c_out × c_in, columns kt apart) += dY(t_out) · X(t_in)ᵀ.
                for (a, t_in) in g.temporal_taps(t_out) {
                    let dst = Dst {
                        data: &mut acc[a..],
                        row_stride: taps,
                        col_stride: g.kernel[0],
                        accumulate: true,
                    };
                    let x_t = g.input_frame(x_n, t_in).transposed();
                    let shape = (g.c_out, g.c_in, frame);
                    matmul_into(dst, dy_frame(dy, g, n, t_out), x_t, shape, parallel);
                }
            }
            return;
        }
        let (source, col) = im2col_source(x_n, g, col);
        for t_out in 0..g.output[0] {
            im2col_frame(source, g, t_out, col);
            let col_t = Operand {
                data: col,
                row_stride: 1,
                col_stride: frame,
            };
            let shape = (g.c_out, taps, frame);
            matmul(acc, true, dy_frame(dy, g, n, t_out), col_t, shape, parallel);
        }
    };
    let scratch = g.scratch() + g.split_scratch();
    let zeros = || (vec![0.0f32; g.c_out * taps], vec![0.0f32; scratch]);
    if over_samples(g) {
        (0..g.batch)
            .into_par_iter()
            .with_min_len(samples_per_job(g))
            .fold(zeros, |(mut acc, mut col), n| {
                sample(n, &mut acc, &mut col, false);
                (acc, col)
            })
            .map(|(acc, _)| acc)
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            })
            .unwrap_or_else(|| vec![0.0; g.c_out * taps])
    } else {
        let (mut acc, mut col) = zeros();
        for n in 0..g.batch {
            sample(n, &mut acc, &mut col, true);
        }
        acc
    }
}

/// Input gradient `[N, c_in, T, H, W]` of `y = conv(x, w)` for `dy`.
pub fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let g = &g.folded();
    let (taps, frame) = (g.taps(), g.frame());
    assert_eq!(w.len(), g.c_out * taps, "conv weight length");
    assert_eq!(
        dy.len(),
        g.batch * g.output_len(),
        "conv output-gradient length"
    );
    let w_t = Operand {
        data: w,
        row_stride: 1,
        col_stride: taps,
    };
    let sample = |n: usize, dx: &mut [f32], col: &mut Vec<f32>, parallel: bool| {
        if g.spatially_pointwise() {
            for t_out in 0..g.output[0] {
                // dX(t_in) += W[:, :, a]ᵀ · dY(t_out); `dx` starts at zero.
                for (a, t_in) in g.temporal_taps(t_out) {
                    let dst = Dst {
                        data: &mut dx[t_in * frame..],
                        row_stride: g.input.iter().product(),
                        col_stride: 1,
                        accumulate: true,
                    };
                    let w_a = g.weight_tap(w, a).transposed();
                    let shape = (g.c_in, frame, g.c_out);
                    matmul_into(dst, w_a, dy_frame(dy, g, n, t_out), shape, parallel);
                }
            }
            return;
        }
        for t_out in 0..g.output[0] {
            let shape = (taps, frame, g.c_out);
            matmul(col, false, w_t, dy_frame(dy, g, n, t_out), shape, parallel);
            col2im_frame(col, g, t_out, dx);
        }
    };
    let mut dx = vec![0.0f32; g.batch * g.input_len()];
    if g.input_len() == 0 {
        return dx;
    }
    let scratch = g.scratch();
    if over_samples(g) {
        dx.par_chunks_mut(g.input_len())
            .enumerate()
            .with_min_len(samples_per_job(g))
            .for_each_init(
                || vec![0.0f32; scratch],
                |col, (n, dx_n)| sample(n, dx_n, col, false),
            );
    } else {
        let mut col = vec![0.0f32; scratch];
        for (n, dx_n) in dx.chunks_mut(g.input_len()).enumerate() {
            sample(n, dx_n, &mut col, true);
        }
    }
    dx
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the convolution and its gradients in f64.
    fn reference(
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        g: &ConvGeometry,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut y = vec![0.0f64; dy.len()];
        let mut dx = vec![0.0f64; x.len()];
        let mut dw = vec![0.0f64; w.len()];
        let [t, h, wd] = g.input;
        let [kt, kh, kw] = g.kernel;
        let [to, ho, wo] = g.output;
        for n in 0..g.batch {
            for co in 0..g.c_out {
                for (ot, oh, ow) in
                    (0..to).flat_map(|a| (0..ho).flat_map(move |b| (0..wo).map(move |c| (a, b, c))))
                {
                    let yi = (((n * g.c_out + co) * to + ot) * ho + oh) * wo + ow;
                    let gy = dy[yi] as f64;
                    for ci in 0..g.c_in {
                        for (a, b, c) in (0..kt).flat_map(|a| {
                            (0..kh).flat_map(move |b| (0..kw).map(move |c| (a, b, c)))
                        }) {
                            let (Some(it), Some(ih), Some(iw)) =
                                (g.source(0, ot, a), g.source(1, oh, b), g.source(2, ow, c))
                            else {
                                continue;
                            };
                            let xi = (((n * g.c_in + ci) * t + it) * h + ih) * wd + iw;
                            let wi = (((co * g.c_in + ci) * kt + a) * kh + b) * kw + c;
                            y[yi] += x[xi] as f64 * w[wi] as f64;
                            dx[xi] += gy * w[wi] as f64;
                            dw[wi] += gy * x[xi] as f64;
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn check(
        x: [usize; 5],
        w: [usize; 5],
        stride: [usize; 3],
        padding: [usize; 3],
        dilation: [usize; 3],
    ) {
        let g = ConvGeometry::new(x, w, stride, padding, dilation).unwrap();
        let xs = values(x.iter().product(), 1);
        let ws = values(w.iter().product(), 2);
        let dy = values(g.batch * g.output_len(), 3);
        let (y_ref, dx_ref, dw_ref) = reference(&xs, &ws, &dy, &g);
        let y = forward(&xs, &ws, &g);
        for (i, (a, b)) in y.iter().zip(&y_ref).enumerate() {
            assert!(
                (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{g:?} y[{i}]: {a} vs {b}"
            );
        }
        let dw = weight_grad(&xs, &dy, &g);
        let dx = input_grad(&ws, &dy, &g);
        for (i, (a, b)) in dw.iter().zip(&dw_ref).enumerate() {
            assert!(
                (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{g:?} dw[{i}]: {a} vs {b}"
            );
        }
        for (i, (a, b)) in dx.iter().zip(&dx_ref).enumerate() {
            assert!(
                (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                "{g:?} dx[{i}]: {a} vs {b}"
            );
        }
    }

    /// Input, weight, stride, padding, dilation of each checked geometry: 3×3×3 stride 1 (a
    /// block's second conv), a strided stage entry, the 1×1×1 strided downsample, the
    /// 3×7×7 stem, a (2+1)D spatial and temporal factor, a temporally dilated conv; then the
    /// pointwise paths: a 1×1×1 stride-1 conv (one GEMM per sample), a temporally strided and
    /// dilated 3×1×1 conv, a 1×1×1 conv strided in time only; then "same" convolutions (one
    /// run per tap): spatially dilated, 5×5 (two padding columns per row), a 1×2 plane whose
    /// border taps read nothing, and one padded in width only (`H' ≠ H`).
    #[allow(clippy::type_complexity)]
    const CASES: [([usize; 5], [usize; 5], [usize; 3], [usize; 3], [usize; 3]); 14] = [
        (
            [2, 3, 4, 5, 6],
            [4, 3, 3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
        ),
        (
            [3, 2, 5, 7, 6],
            [3, 2, 3, 3, 3],
            [2, 2, 2],
            [1, 1, 1],
            [1, 1, 1],
        ),
        (
            [2, 4, 4, 6, 6],
            [5, 4, 1, 1, 1],
            [2, 2, 2],
            [0, 0, 0],
            [1, 1, 1],
        ),
        (
            [1, 3, 4, 11, 9],
            [2, 3, 3, 7, 7],
            [1, 2, 2],
            [1, 3, 3],
            [1, 1, 1],
        ),
        (
            [2, 2, 3, 5, 5],
            [3, 2, 1, 3, 3],
            [1, 1, 1],
            [0, 1, 1],
            [1, 1, 1],
        ),
        (
            [2, 2, 6, 4, 4],
            [2, 2, 3, 1, 1],
            [1, 1, 1],
            [1, 0, 0],
            [1, 1, 1],
        ),
        (
            [2, 2, 6, 5, 5],
            [2, 2, 3, 3, 3],
            [1, 1, 1],
            [2, 1, 1],
            [2, 1, 1],
        ),
        (
            [3, 3, 5, 3, 4],
            [4, 3, 1, 1, 1],
            [1, 1, 1],
            [0, 0, 0],
            [1, 1, 1],
        ),
        (
            [1, 2, 7, 3, 3],
            [3, 2, 3, 1, 1],
            [2, 1, 1],
            [1, 0, 0],
            [2, 1, 1],
        ),
        (
            [2, 3, 5, 2, 3],
            [2, 3, 1, 1, 1],
            [2, 1, 1],
            [0, 0, 0],
            [1, 1, 1],
        ),
        (
            [2, 2, 5, 6, 7],
            [3, 2, 3, 3, 3],
            [1, 1, 1],
            [1, 2, 2],
            [1, 2, 2],
        ),
        (
            [1, 2, 4, 5, 6],
            [2, 2, 3, 5, 5],
            [1, 1, 1],
            [1, 2, 2],
            [1, 1, 1],
        ),
        (
            [2, 2, 3, 1, 2],
            [2, 2, 3, 3, 3],
            [1, 1, 1],
            [1, 1, 1],
            [1, 1, 1],
        ),
        (
            [2, 2, 4, 6, 5],
            [2, 2, 3, 3, 3],
            [1, 1, 1],
            [1, 0, 1],
            [1, 1, 1],
        ),
    ];

    #[test]
    fn gradients_match_the_definition() {
        for (x, w, stride, padding, dilation) in CASES {
            check(x, w, stride, padding, dilation);
        }
    }
}
