//! Direct 3-D convolution for unit-stride kernels on x86-64 with AVX2 and FMA: no im2col.
//!
//! Issue 13's profiles of the width-8 training step put a third of its time in im2col/col2im
//! and most of the rest in GEMMs whose `m` is 8 or 16 output channels, where the `gemm`
//! crate's tiles run half empty. Here one sample's input is copied once into a zero-padded
//! grid; on that grid every kernel tap is a constant offset, so an output position `p` (its
//! flat index on the grid) is `Σ_{ci, tap} W[co, ci, tap] · grid[ci][p + offset(tap)]`. The
//! microkernel holds 4 output channels × 16 consecutive positions in eight vector registers
//! over all `c_in · taps` products (PyTorch's oneDNN path blocks its output the same way),
//! then writes the positions that are real outputs (a row of the grid also holds the padding
//! columns, which are computed and dropped).
//!
//! The input gradient is the same correlation on the output gradient placed in a grid with
//! `dilation · (kernel − 1)` zeros around it, with the weight flipped in every axis and its
//! channel axes swapped. The weight gradient `dW[co, ci, tap] = Σ_p dY[co, p] · X[ci, p +
//! offset(tap)]` places `dY` on the input's padded grid (zero at every non-output position),
//! so it is a dot product of two flat runs per frame, 4 output channels × 2 taps at a time.
//!
//! Sums run in another order than [`super::conv_kernel`]'s GEMMs; both are checked against
//! the same f64 definition (this module's tests). Used for stride 1 only: the strided
//! convolutions (stem, stage entries) keep im2col, whose columns are then smaller than the
//! input.

use rayon::prelude::*;

use super::conv_kernel::ConvGeometry;

/// Most positions per forward microkernel call (two AVX-512 registers).
const MAX_BLOCK: usize = 32;
/// Most output channels per microkernel call.
const MAX_CO: usize = 8;
/// Source channels per forward microkernel call: the tile is accumulated over chunks of
/// them, so that one chunk's input rows (16 channels × 3 frames × 3 rows of ~34 values at
/// width 64's first stage: ~20 KB) stay in the L1 cache while every block of output
/// channels reads them.
const CHANNEL_CHUNK: usize = 16;
/// Taps per weight-gradient microkernel call, sharing the output-gradient vectors they read.
const TAP_GROUP: usize = 2;

/// One microkernel's output tile.
type Tile = [[f32; MAX_BLOCK]; MAX_CO];

/// The vector instruction set the microkernels are compiled for, picked at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// 8 lanes, 16 registers: 4 output channels × 2 registers of positions (8 accumulators).
    Avx2,
    /// 16 lanes, 32 registers: 8 output channels × 2 registers (16 accumulators), so that
    /// one tile covers R3D's 8-channel first stage at width 8.
    Avx512,
}

impl Isa {
    #[cfg(target_arch = "x86_64")]
    fn detect() -> Option<Self> {
        use std::is_x86_feature_detected as has;
        if has!("avx512f") {
            Some(Self::Avx512)
        } else if has!("avx2") && has!("fma") {
            Some(Self::Avx2)
        } else {
            None
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Option<Self> {
        None
    }

    /// Every instruction set of this CPU the kernels are written for (tests run each).
    #[cfg(all(test, target_arch = "x86_64"))]
    fn all_supported() -> Vec<Self> {
        use std::is_x86_feature_detected as has;
        let mut isas = Vec::new();
        if has!("avx2") && has!("fma") {
            isas.push(Self::Avx2);
        }
        if has!("avx512f") {
            isas.push(Self::Avx512);
        }
        isas
    }

    #[cfg(all(test, not(target_arch = "x86_64")))]
    fn all_supported() -> Vec<Self> {
        Vec::new()
    }

    fn lanes(self) -> usize {
        match self {
            Self::Avx2 => 8,
            Self::Avx512 => 16,
        }
    }

    /// Consecutive grid positions per forward tile (two registers).
    fn block(self) -> usize {
        2 * self.lanes()
    }

    /// Output channels per tile.
    fn co_block(self) -> usize {
        match self {
            Self::Avx2 => 4,
            Self::Avx512 => 8,
        }
    }
}

/// Whether this machine and geometry can use the direct kernels' forward and weight
/// gradient (the input gradient needs unit stride, [`pays_off`]): unit stride or no
/// dilation ([`Layout`]), more than one tap (a `1 × 1 × 1` kernel is a plain GEMM already)
/// and a CPU with AVX2 and FMA, or AVX-512.
pub fn available(g: &ConvGeometry) -> bool {
    let layout_ok = g.stride == [1, 1, 1] || g.dilation == [1, 1, 1];
    layout_ok && taps(g) > 1 && Isa::detect().is_some()
}

/// A pass of a convolution, for [`pays_off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    Forward,
    InputGrad,
    WeightGrad,
}

// The choice below was measured per convolution of R3D-18 (a scratch program timing both
// kernels on the same inputs; 2-core AVX-512 Xeon, 2 threads, `gemm` on AVX-512 too; issue
// 13's note has the table). Width 8 at 16 × 32² (batch 80), direct / im2col speed:
// stem forward 1.4–2.1×, weight gradient 1.8–3.7×; first stage 1.7–1.8 / 1.8–2.1 /
// 2.3–3.6× (forward / input / weight gradient); second 1.3 / 1.5 / 1.2–1.5×; third
// 1.2–1.3 / 1.5–1.8 / 0.3–0.4×; fourth 0.8–0.9 / 1.1 / 0.1×; the second stage's strided
// entry 0.7 / – / 0.9–1.1×. Width 64 at 8 × 112² (batch 2): stem 0.8–1.1 / – / 0.6×; first
// stage 0.9 / 0.9 / 1.0×; later stages 0.05–0.8×. Timings vary by ±20 % between runs on
// this VM; the thresholds sit where the verdict did not. Not measured on an AVX2-only CPU
// (there `gemm` runs AVX2 too, and the direct tiles are half as wide).

/// Longest sum per output value (`c_in · taps` forward, on the phase layout for a strided
/// kernel; `c_out · taps` for the input gradient) for which the direct kernels go: width 8's
/// first three stages (216–864); not its last (1728: 0.9–1.1×) nor width 64's stages
/// (1728 and more, where the GEMMs' tiles are full).
const MAX_DIRECT_SUM: usize = 864;

/// The weight gradient's kernel sums one frame's positions per call (at least one vector
/// each): on frames under this many output positions (R3D-18's last two stages at 32²) it
/// was 0.1–0.3× im2col's speed.
const MIN_WEIGHT_GRAD_FRAME: usize = 64;

/// Fewest positions per frame of what a pass computes (the output forward, the input for
/// the input gradient) for the direct forward and input gradient to go: on a 2 × 2 frame 4 of
/// a tile's 32 positions are real, and width 8's fourth stage ran 0.8–1.1× im2col's speed.
const MIN_DIRECT_FRAME: usize = 16;

/// Longest `c_in · taps` for which the direct weight gradient goes (width 8's 147–432:
/// 1.2–2.3×; width 64's 1728: 1.0×).
const MAX_WEIGHT_GRAD_SUM: usize = 864;

/// Most channels a pass may compute (output channels forward and for the weight gradient,
/// input channels for the input gradient) for the direct kernels to go: with 64 (width 64)
/// im2col's GEMMs have full tiles and were faster (the stem's weight gradient 0.6×, its
/// forward 0.8–1.1×); with 8–32 they are not.
const MAX_DIRECT_CHANNELS: usize = 32;

/// Most products a strided kernel's phase layout may compute per real one ([`Layout`]): the
/// stem's `3 × 7 × 7` at stride `(1, 2, 2)` computes 1.31 (a `4 × 4` sub-kernel per phase
/// for 7 × 7 taps), a `3 × 3 × 3` at stride 2 would compute 2.37 (and its weight gradient,
/// which computes only real products, was 0.9× im2col's speed).
const MAX_PHASE_WASTE: f64 = 1.5;

/// Whether the direct kernel is the faster one for `pass` of `g` on this CPU (and can run).
///
/// Never for spatially pointwise kernels (`kt × 1 × 1`): im2col's path runs its GEMMs on the
/// input in place there, with no columns to build, and the direct kernels measured 0.94×,
/// 0.81× and 0.55× its speed (forward, input and weight gradient) on R(2+1)D's temporal
/// convolutions at width 8 (`cargo bench --bench conv_kernels`).
pub fn pays_off(g: &ConvGeometry, pass: Pass) -> bool {
    let taps = taps(g);
    let layout = Layout::of(g);
    let waste = (layout.phases * layout.sub_taps()) as f64 / taps as f64;
    available(g)
        && !g.spatially_pointwise()
        && match pass {
            Pass::Forward => {
                g.output[1] * g.output[2] >= MIN_DIRECT_FRAME
                    && waste <= MAX_PHASE_WASTE
                    && g.c_in * layout.phases * layout.sub_taps() <= MAX_DIRECT_SUM
                    && g.c_out <= MAX_DIRECT_CHANNELS
            }
            Pass::InputGrad => {
                g.input[1] * g.input[2] >= MIN_DIRECT_FRAME
                    && g.stride == [1, 1, 1]
                    && g.c_out * taps <= MAX_DIRECT_SUM
                    && g.c_in <= MAX_DIRECT_CHANNELS
            }
            Pass::WeightGrad => {
                waste <= MAX_PHASE_WASTE
                    && g.output[1] * g.output[2] >= MIN_WEIGHT_GRAD_FRAME
                    && g.c_in * taps <= MAX_WEIGHT_GRAD_SUM
                    && g.c_out <= MAX_DIRECT_CHANNELS
            }
        }
}

fn isa() -> Isa {
    Isa::detect().expect("direct conv: `available` is false on this CPU")
}

/// A zero-filled buffer of `channels` grids of `dims`, each followed by `MAX_BLOCK` zeros so
/// that the last block of positions may read past the grid's end.
struct Grid {
    dims: [usize; 3],
    channels: usize,
    data: Vec<f32>,
}

impl Grid {
    fn new(channels: usize, dims: [usize; 3]) -> Self {
        let mut grid = Self {
            dims,
            channels,
            data: Vec::new(),
        };
        grid.data = vec![0.0; channels * grid.channel_len()];
        grid
    }

    fn volume(&self) -> usize {
        self.dims.iter().product()
    }

    fn channel_len(&self) -> usize {
        self.volume() + MAX_BLOCK
    }

    /// Flat strides of a frame and a row.
    fn strides(&self) -> (usize, usize) {
        (self.dims[1] * self.dims[2], self.dims[2])
    }

    /// Copies `src` (`channels × size`, row-major) into the grid with its origin at
    /// `offset`. Positions outside are left as they are: zero, for a grid filled only by
    /// this function with one `size` and `offset`.
    fn place(&mut self, src: &[f32], size: [usize; 3], offset: [usize; 3]) {
        let (st, sh) = self.strides();
        let [_, h, w] = size;
        let channel_len = self.channel_len();
        for (c, values) in src.chunks_exact(size.iter().product()).enumerate() {
            let dst = &mut self.data[c * channel_len..];
            for (i, row) in values.chunks_exact(w).enumerate() {
                let (ti, hi) = (i / h, i % h);
                let start = (ti + offset[0]) * st + (hi + offset[1]) * sh + offset[2];
                dst[start..start + w].copy_from_slice(row);
            }
        }
    }
}

/// Flat offsets, on a grid of `dims`, of every tap of `kernel` with taps `spacing` apart,
/// in weight order.
fn tap_offsets(kernel: [usize; 3], spacing: [usize; 3], dims: [usize; 3]) -> Vec<usize> {
    let (st, sh) = (dims[1] * dims[2], dims[2]);
    let [kt, kh, kw] = kernel;
    let [dt, dh, dw] = spacing;
    let mut offsets = Vec::with_capacity(kt * kh * kw);
    for a in 0..kt {
        for b in 0..kh {
            for c in 0..kw {
                offsets.push(a * dt * st + b * dh * sh + c * dw);
            }
        }
    }
    offsets
}

/// Weights packed for the forward microkernel: `[dst block][src channel][tap][co]` with
/// `co_block` channels a block, `value(dst, src, tap)` for each, zero for destination
/// channels past `c_dst`.
fn pack(
    (c_dst, c_src, taps): (usize, usize, usize),
    co_block: usize,
    value: impl Fn(usize, usize, usize) -> f32,
) -> Vec<f32> {
    let blocks = c_dst.div_ceil(co_block);
    let mut packed = vec![0.0; blocks * c_src * taps * co_block];
    for (i, v) in packed.iter_mut().enumerate() {
        let j = i % co_block;
        let k = (i / co_block) % taps;
        let s = (i / (co_block * taps)) % c_src;
        let d = (i / (co_block * taps * c_src)) * co_block + j;
        if d < c_dst {
            *v = value(d, s, k);
        }
    }
    packed
}

/// One correlation over a grid: for every destination channel `d` and every position of
/// the region `size` starting at `start` on the grid,
/// `Σ_{s, tap} packed(d, s, tap) · grid[s][position + offsets[tap]]`.
struct Correlation<'a> {
    isa: Isa,
    packed: &'a [f32],
    offsets: &'a [usize],
    c_dst: usize,
    start: [usize; 3],
    size: [usize; 3],
}

impl Correlation<'_> {
    /// Writes destination channel blocks `blocks` of one sample into `dst`, which holds
    /// exactly those channels (`channels × size`, row-major).
    fn run(&self, grid: &Grid, blocks: std::ops::Range<usize>, dst: &mut [f32]) {
        let (block_len, co_block) = (self.isa.block(), self.isa.co_block());
        let (st, sh) = grid.strides();
        let [nt, nh, nw] = self.size;
        let (frame, taps, channel_len) = (nh * nw, self.offsets.len(), grid.channel_len());
        let volume = nt * frame;
        let span = (nh - 1) * sh + nw;
        let per_block = grid.channels * taps * co_block;
        let first = blocks.start;
        // The furthest read: the last block of the last frame, at the furthest tap, in the
        // last channel; checked once here instead of per microkernel call.
        let furthest = self.offsets.iter().max().copied().unwrap_or(0);
        let last_base = (self.start[0] + nt - 1) * st + self.start[1] * sh + self.start[2];
        let last_block = (span - 1) / block_len * block_len;
        assert!(
            (grid.channels - 1) * channel_len + last_base + last_block + furthest + block_len
                <= grid.data.len(),
            "direct conv: reads past the grid"
        );
        assert!(
            blocks.end * per_block <= self.packed.len(),
            "direct conv: packed weights"
        );
        let mut tiles: Vec<Tile> = vec![[[0.0; MAX_BLOCK]; MAX_CO]; blocks.len()];
        for t in 0..nt {
            let base = (self.start[0] + t) * st + self.start[1] * sh + self.start[2];
            for p in (0..span).step_by(block_len) {
                // Source channels in chunks, every block's tile accumulated chunk by chunk:
                // a chunk's input rows stay in the L1 cache across the blocks.
                for first_channel in (0..grid.channels).step_by(CHANNEL_CHUNK) {
                    let channels = CHANNEL_CHUNK.min(grid.channels - first_channel);
                    let src = &grid.data[first_channel * channel_len + base + p..];
                    for (block, tile) in blocks.clone().zip(tiles.iter_mut()) {
                        let start = block * per_block + first_channel * taps * co_block;
                        let packed = &self.packed[start..][..channels * taps * co_block];
                        // SAFETY: the furthest read was checked above; `isa` was detected
                        // on this CPU.
                        unsafe {
                            microkernel(
                                self.isa,
                                src,
                                (channel_len, channels),
                                self.offsets,
                                packed,
                                tile,
                                first_channel > 0,
                            )
                        };
                    }
                }
                for (block, out) in blocks.clone().zip(&tiles) {
                    let channels = (self.c_dst - block * co_block).min(co_block);
                    for (j, values) in out.iter().enumerate().take(channels) {
                        let d = (block - first) * co_block + j;
                        let channel = &mut dst[d * volume + t * frame..][..frame];
                        // Grid position p + i is row h, column w of the region: copy
                        // each row's run of real outputs.
                        let (end, mut at) = (block_len.min(span - p), 0);
                        while at < end {
                            let (h, w) = ((p + at) / sh, (p + at) % sh);
                            let run = (sh - w).min(end - at);
                            if w < nw {
                                let n = run.min(nw - w);
                                channel[h * nw + w..][..n].copy_from_slice(&values[at..at + n]);
                            }
                            at += run;
                        }
                    }
                }
            }
        }
    }
}

/// `out[j][i] (+)= Σ_{s, tap} packed[s][tap][j] · src[s·channel_len + offsets[tap] + i]`
/// for the `isa`'s tile of channels `j` and positions `i`, over `channels` source channels;
/// added to `out` when `accumulate`.
///
/// # Safety
/// Every read, up to `(channels − 1)·channel_len + max(offsets) + isa.block()` values into
/// `src` and `channels · offsets.len() · isa.co_block()` into `packed`, must be inside the
/// slices, and `isa` must have been detected on this CPU.
unsafe fn microkernel(
    isa: Isa,
    src: &[f32],
    (channel_len, channels): (usize, usize),
    offsets: &[usize],
    packed: &[f32],
    out: &mut Tile,
    accumulate: bool,
) {
    debug_assert!(packed.len() >= channels * offsets.len() * isa.co_block());
    let (src, packed) = (src.as_ptr(), packed.as_ptr());
    #[cfg(target_arch = "x86_64")]
    unsafe {
        match isa {
            Isa::Avx2 => {
                x86::microkernel_avx2(src, channel_len, channels, offsets, packed, out, accumulate)
            }
            Isa::Avx512 => x86::microkernel_avx512(
                src,
                channel_len,
                channels,
                offsets,
                packed,
                out,
                accumulate,
            ),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv on {isa:?} off x86-64: `available` is false")
}

/// `acc[j][g] += Σ_i d[j·d_len + i] · x[offsets[g] + i]` lane by lane over the positions
/// `run = (start, len)`, for the `isa`'s block of channels `j` and up to `TAP_GROUP` taps `g`:
/// `acc` holds `co_block × TAP_GROUP` vectors, summed across lanes once at the end
/// ([`weight_grad`]), so that a call can cover one frame's run, whose `dY` and input stay in
/// the L1 cache over all the channels and taps that read them.
fn dot_block(
    isa: Isa,
    d: &[f32],
    d_len: usize,
    x: &[f32],
    offsets: &[usize],
    run: (usize, usize),
    acc: &mut [f32],
) {
    let end = run.0 + run.1;
    let furthest = offsets.iter().max().copied().unwrap_or(0);
    assert!(
        (isa.co_block() - 1) * d_len + end <= d.len(),
        "direct conv: dY block"
    );
    assert!(furthest + end <= x.len(), "direct conv: input run");
    assert!(
        run.1.is_multiple_of(isa.lanes()),
        "direct conv: a run of whole vectors"
    );
    assert!(!offsets.is_empty() && offsets.len() <= TAP_GROUP);
    assert_eq!(acc.len(), isa.co_block() * TAP_GROUP * isa.lanes());
    let (d, x, acc) = (d.as_ptr(), x.as_ptr(), acc.as_mut_ptr());
    // SAFETY: the reads were checked above; `isa` was detected on this CPU.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        match isa {
            Isa::Avx2 => x86::dot_block_avx2(d, d_len, x, offsets, run, acc),
            Isa::Avx512 => x86::dot_block_avx512(d, d_len, x, offsets, run, acc),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct conv on {isa:?} off x86-64: `available` is false")
}

/// The microkernels, one per instruction set; the same loops with the vector type, its
/// width and the channels per tile changed.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{TAP_GROUP, Tile};
    use std::arch::x86_64::*;

    macro_rules! kernels {
        ($feature:literal, $micro:ident, $dot:ident, $vec:ty, $lanes:expr, $co:expr,
         $zero:ident, $load:ident, $store:ident, $set1:ident, $fma:ident) => {
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $micro(
                src: *const f32,
                channel_len: usize,
                channels: usize,
                offsets: &[usize],
                packed: *const f32,
                out: &mut Tile,
                accumulate: bool,
            ) {
                unsafe {
                    let mut acc: [[$vec; 2]; $co] = if accumulate {
                        std::array::from_fn(|j| {
                            let o = out[j].as_ptr();
                            [$load(o), $load(o.add($lanes))]
                        })
                    } else {
                        [[$zero(); 2]; $co]
                    };
                    let mut w = packed;
                    for s in 0..channels {
                        let channel = src.add(s * channel_len);
                        for &offset in offsets {
                            let p = channel.add(offset);
                            let x0 = $load(p);
                            let x1 = $load(p.add($lanes));
                            for a in acc.iter_mut() {
                                let wv = $set1(*w);
                                a[0] = $fma(wv, x0, a[0]);
                                a[1] = $fma(wv, x1, a[1]);
                                w = w.add(1);
                            }
                        }
                    }
                    for (a, o) in acc.iter().zip(out.iter_mut()) {
                        $store(o.as_mut_ptr(), a[0]);
                        $store(o.as_mut_ptr().add($lanes), a[1]);
                    }
                }
            }

            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $dot(
                d: *const f32,
                d_len: usize,
                x: *const f32,
                offsets: &[usize],
                (start, len): (usize, usize),
                sums: *mut f32,
            ) {
                unsafe {
                    let slot = |j: usize, g: usize| sums.add((j * TAP_GROUP + g) * $lanes);
                    let mut acc: [[$vec; TAP_GROUP]; $co] =
                        std::array::from_fn(|j| std::array::from_fn(|g| $load(slot(j, g))));
                    // A group shorter than TAP_GROUP repeats its last tap; those sums are
                    // never read.
                    let last = offsets.len() - 1;
                    let xs: [*const f32; TAP_GROUP] =
                        std::array::from_fn(|g| x.add(offsets[g.min(last)]));
                    let mut i = start;
                    while i < start + len {
                        let dv: [$vec; $co] = std::array::from_fn(|j| $load(d.add(j * d_len + i)));
                        for g in 0..TAP_GROUP {
                            let xv = $load(xs[g].add(i));
                            for j in 0..$co {
                                acc[j][g] = $fma(dv[j], xv, acc[j][g]);
                            }
                        }
                        i += $lanes;
                    }
                    for (j, row) in acc.iter().enumerate() {
                        for (g, v) in row.iter().enumerate() {
                            $store(slot(j, g), *v);
                        }
                    }
                }
            }
        };
    }

    kernels!(
        "avx2,fma",
        microkernel_avx2,
        dot_block_avx2,
        __m256,
        8,
        4,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps
    );
    kernels!(
        "avx512f",
        microkernel_avx512,
        dot_block_avx512,
        __m512,
        16,
        8,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps
    );
}

/// Samples per parallel job (one job per thread: each allocates its grids once).
fn samples_per_job(batch: usize) -> usize {
    batch.div_ceil(rayon::current_num_threads()).max(1)
}

/// Runs `correlation` for every sample: `fill(n, grid)` places sample `n` in its grid,
/// `out` receives `batch × c_dst × volume`. Over samples when there are as many as threads,
/// else over blocks of destination channels inside each sample.
fn correlate_batch(
    batch: usize,
    grid_shape: (usize, [usize; 3]),
    correlation: &Correlation<'_>,
    fill: impl Fn(usize, &mut Grid) + Sync,
) -> Vec<f32> {
    let volume: usize = correlation.size.iter().product();
    let per_sample = correlation.c_dst * volume;
    let mut out = vec![0.0f32; batch * per_sample];
    if per_sample == 0 {
        return out;
    }
    let co_block = correlation.isa.co_block();
    let blocks = correlation.c_dst.div_ceil(co_block);
    if batch >= rayon::current_num_threads() {
        out.par_chunks_mut(per_sample)
            .enumerate()
            .with_min_len(samples_per_job(batch))
            .for_each_init(
                || Grid::new(grid_shape.0, grid_shape.1),
                |grid, (n, dst)| {
                    fill(n, grid);
                    correlation.run(grid, 0..blocks, dst);
                },
            );
    } else {
        let mut grid = Grid::new(grid_shape.0, grid_shape.1);
        for (n, sample) in out.chunks_mut(per_sample).enumerate() {
            fill(n, &mut grid);
            let grid = &grid;
            sample
                .par_chunks_mut(co_block * volume)
                .enumerate()
                .for_each(|(block, dst)| correlation.run(grid, block..block + 1, dst));
        }
    }
    out
}

fn taps(g: &ConvGeometry) -> usize {
    g.kernel.iter().product()
}

/// Where a convolution's input sits on the grids. With unit stride: each channel's padded
/// input as it is, the kernel's taps dilated. With a stride `s` (and no dilation): each
/// channel's padded input split into its `s_t·s_h·s_w` phases (phase `q` holds the
/// positions `s·i + q`, a grid of `⌈padded / s⌉`), so that tap `k` of output `o` reads
/// phase `k mod s` at `o + k div s`: a unit-stride kernel over `c_in · phases` channels
/// with the sub-kernel `⌈k / s⌉` (its taps past the kernel weigh zero).
struct Layout {
    stride: [usize; 3],
    phases: usize,
    dims: [usize; 3],
    sub_kernel: [usize; 3],
    /// Tap spacing on the grid (the dilation with unit stride, 1 on phases).
    spacing: [usize; 3],
}

impl Layout {
    fn of(g: &ConvGeometry) -> Self {
        let s = g.stride;
        Self {
            stride: s,
            phases: s.iter().product(),
            dims: std::array::from_fn(|d| (g.input[d] + 2 * g.padding[d]).div_ceil(s[d])),
            sub_kernel: std::array::from_fn(|d| g.kernel[d].div_ceil(s[d])),
            spacing: if s == [1, 1, 1] {
                g.dilation
            } else {
                [1, 1, 1]
            },
        }
    }

    fn sub_taps(&self) -> usize {
        self.sub_kernel.iter().product()
    }

    /// Grid offsets of the sub-kernel's taps, in weight order.
    fn offsets(&self) -> Vec<usize> {
        tap_offsets(self.sub_kernel, self.spacing, self.dims)
    }

    /// The grid channel (of `c_in · phases`) and sub-kernel tap that kernel tap
    /// `(a, b, c)` of input channel `ci` reads.
    fn source(&self, ci: usize, tap: [usize; 3]) -> (usize, [usize; 3]) {
        let s = self.stride;
        let q = (tap[0] % s[0] * s[1] + tap[1] % s[1]) * s[2] + tap[2] % s[2];
        (ci * self.phases + q, std::array::from_fn(|d| tap[d] / s[d]))
    }

    /// Places one sample's input (`c_in × T × H × W`) on its grid channels.
    fn place(&self, grid: &mut Grid, sample: &[f32], g: &ConvGeometry) {
        if self.phases == 1 {
            grid.place(sample, g.input, g.padding);
            return;
        }
        let (st, sh) = grid.strides();
        let (channel_len, [t, h, w]) = (grid.channel_len(), g.input);
        for (ci, values) in sample.chunks_exact(t * h * w).enumerate() {
            for (i, row) in values.chunks_exact(w).enumerate() {
                let (pt, ph) = (i / h + g.padding[0], i % h + g.padding[1]);
                for (iw, &v) in row.iter().enumerate() {
                    let pw = iw + g.padding[2];
                    let (channel, at) = self.source(ci, [pt, ph, pw]);
                    grid.data[channel * channel_len + at[0] * st + at[1] * sh + at[2]] = v;
                }
            }
        }
    }
}

/// Output `[N, c_out, T', H', W']` of the convolution of `x` with `w` ([`available`] must hold).
pub fn forward(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    forward_on(isa(), x, w, g)
}

fn forward_on(isa: Isa, x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (taps, input) = (taps(g), g.input.iter().product::<usize>());
    assert_eq!(x.len(), g.batch * g.c_in * input, "conv input length");
    assert_eq!(w.len(), g.c_out * g.c_in * taps, "conv weight length");
    let layout = Layout::of(g);
    let (sub, [_, kh, kw], s) = (layout.sub_kernel, g.kernel, layout.stride);
    let channels = g.c_in * layout.phases;
    // Grid channel `src` = (ci, phase q), sub-kernel tap k' = (a', b', c'): kernel tap
    // s·k' + q, if inside the kernel.
    let weight = |co: usize, src: usize, k: usize| {
        let (ci, q) = (src / layout.phases, src % layout.phases);
        let phase = [q / (s[1] * s[2]), q / s[2] % s[1], q % s[2]];
        let at = [k / (sub[1] * sub[2]), k / sub[2] % sub[1], k % sub[2]];
        let tap: [usize; 3] = std::array::from_fn(|d| s[d] * at[d] + phase[d]);
        if (0..3).all(|d| tap[d] < g.kernel[d]) {
            w[(co * g.c_in + ci) * taps + (tap[0] * kh + tap[1]) * kw + tap[2]]
        } else {
            0.0
        }
    };
    let packed = pack(
        (g.c_out, channels, layout.sub_taps()),
        isa.co_block(),
        weight,
    );
    let offsets = layout.offsets();
    let correlation = Correlation {
        isa,
        packed: &packed,
        offsets: &offsets,
        c_dst: g.c_out,
        start: [0; 3],
        size: g.output,
    };
    correlate_batch(g.batch, (channels, layout.dims), &correlation, |n, grid| {
        layout.place(grid, &x[n * g.c_in * input..][..g.c_in * input], g);
    })
}

/// Input gradient `[N, c_in, T, H, W]` of `y = conv(x, w)` for `dy` ([`available`] must hold).
pub fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    input_grad_on(isa(), w, dy, g)
}

fn input_grad_on(isa: Isa, w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (taps, output) = (taps(g), g.output.iter().product::<usize>());
    assert_eq!(w.len(), g.c_out * g.c_in * taps, "conv weight length");
    assert_eq!(
        dy.len(),
        g.batch * g.c_out * output,
        "conv output-gradient length"
    );
    assert_eq!(
        g.stride,
        [1, 1, 1],
        "direct conv: input gradient of a strided kernel"
    );
    // dX[i] = Σ_k W[K−1−k] · Z[i + padding + dilation·k], with Z = dY placed `margin =
    // dilation · (kernel − 1)` from the grid's origin (zeros around it).
    let margin: [usize; 3] = std::array::from_fn(|d| g.dilation[d] * (g.kernel[d] - 1));
    let dims: [usize; 3] = std::array::from_fn(|d| g.output[d] + 2 * margin[d]);
    let packed = pack((g.c_in, g.c_out, taps), isa.co_block(), |ci, co, k| {
        w[(co * g.c_in + ci) * taps + taps - 1 - k]
    });
    let offsets = tap_offsets(g.kernel, g.dilation, dims);
    let correlation = Correlation {
        isa,
        packed: &packed,
        offsets: &offsets,
        c_dst: g.c_in,
        start: g.padding,
        size: g.input,
    };
    correlate_batch(g.batch, (g.c_out, dims), &correlation, |n, grid| {
        let sample = &dy[n * g.c_out * output..][..g.c_out * output];
        grid.place(sample, g.output, margin);
    })
}

/// Weight gradient `[c_out, c_in, kt, kh, kw]` (row-major) of `y = conv(x, w)` for `dy`
/// ([`available`] must hold).
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    weight_grad_on(isa(), x, dy, g)
}

fn weight_grad_on(isa: Isa, x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let (taps, input) = (taps(g), g.input.iter().product::<usize>());
    let output = g.output.iter().product::<usize>();
    assert_eq!(x.len(), g.batch * g.c_in * input, "conv input length");
    assert_eq!(
        dy.len(),
        g.batch * g.c_out * output,
        "conv output-gradient length"
    );
    let (layout, co_block) = (Layout::of(g), isa.co_block());
    let (dims, [kt, kh, kw]) = (layout.dims, g.kernel);
    let channels = g.c_in * layout.phases;
    // Every (ci, tap) in weight order: where it starts in the sample's grids.
    let sub_offsets = layout.offsets();
    let channel_len = Grid::new(0, dims).channel_len();
    let mut offsets = Vec::with_capacity(g.c_in * taps);
    for ci in 0..g.c_in {
        for tap in (0..kt).flat_map(|a| (0..kh).flat_map(move |b| (0..kw).map(move |c| [a, b, c])))
        {
            let (channel, at) = layout.source(ci, tap);
            let sub = (at[0] * layout.sub_kernel[1] + at[1]) * layout.sub_kernel[2] + at[2];
            offsets.push(channel * channel_len + sub_offsets[sub]);
        }
    }
    let segments = output_runs(g, dims, isa.lanes());
    let blocks = g.c_out.div_ceil(co_block);
    // Vector accumulators per (block, ci, tap group): `co_block × TAP_GROUP` vectors each.
    let (groups, lanes) = (taps.div_ceil(TAP_GROUP), isa.lanes());
    let tile = co_block * TAP_GROUP * lanes;
    let slot =
        |block: usize, ci: usize, group: usize| ((block * g.c_in + ci) * groups + group) * tile;
    let sample = |n: usize, acc: &mut [f32], xg: &mut Grid, dg: &mut Grid| {
        layout.place(xg, &x[n * g.c_in * input..][..g.c_in * input], g);
        dg.place(
            &dy[n * g.c_out * output..][..g.c_out * output],
            g.output,
            [0; 3],
        );
        let d_len = dg.channel_len();
        for &run in &segments {
            for block in 0..blocks {
                let d = &dg.data[block * co_block * d_len..];
                for (ci, ci_offsets) in offsets.chunks(taps).enumerate() {
                    for (group, offs) in ci_offsets.chunks(TAP_GROUP).enumerate() {
                        let acc = &mut acc[slot(block, ci, group)..][..tile];
                        dot_block(isa, d, d_len, &xg.data, offs, run, acc);
                    }
                }
            }
        }
    };
    // dY on the input's grid (zero at every other position), its channels padded to whole
    // blocks with zeros.
    let zeros = || {
        (
            vec![0.0f32; blocks * g.c_in * groups * tile],
            Grid::new(channels, dims),
            Grid::new(blocks * co_block, dims),
        )
    };
    let vectors = (0..g.batch)
        .into_par_iter()
        .with_min_len(samples_per_job(g.batch))
        .fold(zeros, |(mut acc, mut xg, mut dg), n| {
            sample(n, &mut acc, &mut xg, &mut dg);
            (acc, xg, dg)
        })
        .map(|(acc, _, _)| acc)
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        })
        .unwrap_or_else(|| vec![0.0; blocks * g.c_in * groups * tile]);
    // Each weight's sum across its vector's lanes.
    let mut dw = vec![0.0f32; g.c_out * g.c_in * taps];
    for co in 0..g.c_out {
        let (block, j) = (co / co_block, co % co_block);
        for ci in 0..g.c_in {
            for k in 0..taps {
                let (group, i) = (k / TAP_GROUP, k % TAP_GROUP);
                let v = &vectors[slot(block, ci, group) + (j * TAP_GROUP + i) * lanes..][..lanes];
                dw[(co * g.c_in + ci) * taps + k] = v.iter().sum();
            }
        }
    }
    dw
}

/// The flat runs of the input's padded grid (`dims`) that hold output positions, one per
/// output frame (merged where a frame's last vector would reach the next), each rounded up
/// to whole vectors of `lanes`: the positions in between are zero in the placed `dY`, so
/// reading them adds nothing.
fn output_runs(g: &ConvGeometry, dims: [usize; 3], lanes: usize) -> Vec<(usize, usize)> {
    let (st, sh) = (dims[1] * dims[2], dims[2]);
    let [ot, oh, ow] = g.output;
    let span = (oh - 1) * sh + ow;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for t in 0..ot {
        let start = t * st;
        match runs.last_mut() {
            Some((s, l)) if *s + (*l).next_multiple_of(lanes) > start => *l = start + span - *s,
            _ => runs.push((start, span)),
        }
    }
    runs.iter()
        .map(|&(s, l)| (s, l.next_multiple_of(lanes)))
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ops::conv_kernel;

    /// `n` deterministic pseudo-random values in [−1, 1] (xorshift of `seed`), shared with
    /// the Winograd kernels' tests.
    pub(in crate::ops) fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn rel(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (num / den.max(1e-30)).sqrt()
    }

    /// The direct kernels of every instruction set this CPU has against the im2col kernels
    /// (themselves tested against the f64 definition), for geometries of R3D, R(2+1)D, the
    /// dilated R3D, R3D's strided stem, odd sizes, channel counts that leave a tile part
    /// empty and more source channels than one chunk. Strided kernels have no direct input gradient.
    #[test]
    fn direct_kernels_equal_im2col() {
        type Case = ([usize; 5], [usize; 5], [usize; 3], [usize; 3], [usize; 3]);
        let cases: [Case; 10] = [
            (
                [2, 8, 6, 9, 11],
                [8, 8, 3, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
            ),
            (
                [3, 5, 4, 7, 6],
                [6, 5, 3, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
            ),
            (
                [1, 4, 5, 8, 8],
                [12, 4, 1, 3, 3],
                [1, 1, 1],
                [0, 1, 1],
                [1, 1, 1],
            ),
            (
                [2, 4, 8, 4, 4],
                [4, 4, 3, 1, 1],
                [1, 1, 1],
                [2, 0, 0],
                [2, 1, 1],
            ),
            (
                [2, 3, 4, 5, 5],
                [8, 3, 3, 5, 5],
                [1, 1, 1],
                [1, 2, 2],
                [1, 1, 1],
            ),
            (
                [1, 16, 3, 2, 2],
                [8, 16, 3, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
            ),
            (
                [2, 3, 4, 12, 12],
                [8, 3, 3, 7, 7],
                [1, 2, 2],
                [1, 3, 3],
                [1, 1, 1],
            ),
            (
                [1, 2, 5, 9, 7],
                [4, 2, 3, 3, 3],
                [2, 2, 2],
                [1, 1, 1],
                [1, 1, 1],
            ),
            (
                [2, 3, 3, 11, 10],
                [5, 3, 1, 4, 3],
                [1, 3, 2],
                [0, 1, 0],
                [1, 1, 1],
            ),
            (
                [1, 20, 3, 5, 6],
                [20, 20, 3, 3, 3],
                [1, 1, 1],
                [1, 1, 1],
                [1, 1, 1],
            ),
        ];
        for isa in Isa::all_supported() {
            for (i, (xs, ws, stride, padding, dilation)) in cases.into_iter().enumerate() {
                let g = ConvGeometry::new(xs, ws, stride, padding, dilation).unwrap();
                assert!(available(&g), "case {i}");
                let x = values(xs.iter().product(), 1 + i as u64);
                let w = values(ws.iter().product(), 100 + i as u64);
                let dy = values(g.batch * g.c_out * g.output.iter().product::<usize>(), 200);
                let mut pairs = vec![
                    (
                        "forward",
                        forward_on(isa, &x, &w, &g),
                        conv_kernel::forward(&x, &w, &g),
                    ),
                    (
                        "weight",
                        weight_grad_on(isa, &x, &dy, &g),
                        conv_kernel::weight_grad(&x, &dy, &g),
                    ),
                ];
                if stride == [1, 1, 1] {
                    let ours = input_grad_on(isa, &w, &dy, &g);
                    pairs.push(("input", ours, conv_kernel::input_grad(&w, &dy, &g)));
                }
                for (what, ours, theirs) in pairs {
                    assert_eq!(ours.len(), theirs.len(), "{isa:?} case {i} {what}");
                    let e = rel(&ours, &theirs);
                    assert!(e < 1e-6, "{isa:?} case {i} {what}: {e:.2e}");
                }
            }
        }
    }

    /// Which passes go direct for R3D-18's convolutions at width 8 (16 × 32², the demo's
    /// regime) and width 64 (8 × 112²), as measured (the constants' docs). A perturbed
    /// threshold fails it (`MAX_DIRECT_CHANNELS` 64: width 64's stem goes direct).
    #[test]
    fn the_direct_kernels_are_chosen_where_they_were_measured_faster() {
        if Isa::detect().is_none() {
            return;
        }
        let choice = |x: [usize; 5], w: [usize; 5], s: [usize; 3], p: [usize; 3]| {
            let g = ConvGeometry::new(x, w, s, p, [1, 1, 1]).unwrap();
            [Pass::Forward, Pass::InputGrad, Pass::WeightGrad].map(|pass| pays_off(&g, pass))
        };
        let (one, same) = ([1, 1, 1], [1, 1, 1]);
        type Row = ([usize; 5], [usize; 5], [usize; 3], [usize; 3], [bool; 3]);
        let expected: [Row; 11] = [
            // Width 8: the stem, stages 1–3, stage 4 (small frames), stage 2's strided entry.
            (
                [80, 3, 16, 32, 32],
                [8, 3, 3, 7, 7],
                [1, 2, 2],
                [1, 3, 3],
                [true, false, true],
            ),
            (
                [80, 8, 16, 16, 16],
                [8, 8, 3, 3, 3],
                one,
                same,
                [true, true, true],
            ),
            (
                [80, 16, 8, 8, 8],
                [16, 16, 3, 3, 3],
                one,
                same,
                [true, true, true],
            ),
            (
                [80, 32, 4, 4, 4],
                [32, 32, 3, 3, 3],
                one,
                same,
                [true, true, false],
            ),
            (
                [80, 64, 2, 2, 2],
                [64, 64, 3, 3, 3],
                one,
                same,
                [false, false, false],
            ),
            (
                [80, 8, 16, 16, 16],
                [16, 8, 3, 3, 3],
                [2, 2, 2],
                same,
                [false, false, false],
            ),
            // R(2+1)D width 8's first stage: the spatial `1 × 3 × 3` goes direct, the temporal
            // `3 × 1 × 1` (spatially pointwise) does not.
            (
                [80, 8, 16, 16, 16],
                [18, 8, 1, 3, 3],
                one,
                [0, 1, 1],
                [true, true, true],
            ),
            (
                [80, 18, 16, 16, 16],
                [8, 18, 3, 1, 1],
                one,
                [1, 0, 0],
                [false, false, false],
            ),
            // Width 64: none (64 channels and more).
            (
                [2, 3, 8, 112, 112],
                [64, 3, 3, 7, 7],
                [1, 2, 2],
                [1, 3, 3],
                [false, false, false],
            ),
            (
                [2, 64, 8, 56, 56],
                [64, 64, 3, 3, 3],
                one,
                same,
                [false, false, false],
            ),
            (
                [2, 128, 4, 28, 28],
                [128, 128, 3, 3, 3],
                one,
                same,
                [false, false, false],
            ),
        ];
        for (x, w, s, p, passes) in expected {
            assert_eq!(choice(x, w, s, p), passes, "input {x:?}, weight {w:?}");
        }
    }
}
