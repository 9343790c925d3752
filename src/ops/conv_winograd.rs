//! Winograd convolution F(2×2×2, 3×3×3) on host slices, for the "same" 3×3×3 convolutions
//! of R3D (stride 1, padding 1, no dilation) with many channels.
//!
//! Along one axis, two outputs of a 3-tap correlation are `y = Aᵀ[(G g) ⊙ (Bᵀ d)]` for the
//! four inputs `d` they read (Lavin & Gray, "Fast Algorithms for Convolutional Neural
//! Networks", 2016; `docs/winograd.md`): four products instead of six. In three dimensions a
//! tile of 2×2×2 outputs reads 4×4×4 inputs, and after the transforms the convolution is 64
//! independent matrix products, one per transformed point `ξ`,
//! `M_ξ (C_out × tiles) = U_ξ (C_out × C_in) · V_ξ (C_in × tiles)`: 64 · C_out · C_in
//! multiply-adds per tile instead of 8 · 27 · C_out · C_in, 3.4× fewer. With 64 channels
//! the GEMMs dominate the transforms, and R3D-18's first stage (60 % of its operations at
//! 8×112²) is this geometry.
//!
//! - Forward: `Y = Aᵀ M A` per tile, with `U = G w Gᵀ`, `V = Bᵀ d B` (each along three axes).
//! - Input gradient: for this geometry the same correlation of `dY` with the weight flipped
//!   in space and time and its channel axes swapped — the forward on `dY`.
//! - Weight gradient: by the bilinearity of the forward identity,
//!   `dW = Gᵀ [Σ_tiles (A dY_tile Aᵀ) ⊙ V] G`: the same input transform, a transform of each
//!   2×2×2 output-gradient tile to 4×4×4, and per point `ξ` one GEMM over the tiles,
//!   `Σ_ξ (C_out × C_in) += Z_ξ (C_out × tiles) · V_ξᵀ`.
//!
//! Tiles past an odd output size read zeros (input beyond the padding) and, for the weight
//! gradient, a zero output gradient; the forward drops their extra outputs. Every transform
//! has entries 0, ±1 and ±½, so the rounding stays close to a direct sum (tested against
//! the im2col kernels, themselves tested against the f64 definition).
//!
//! Work is split into jobs of (sample, block of tiles): a block is one temporal row of
//! tiles and a few spatial rows, sized so that its transformed input and products stay
//! near the cache ([`BLOCK_TILES`]).

use std::ops::Range;

use rayon::prelude::*;

use super::conv_direct::Pass;
use super::conv_kernel::{ConvGeometry, Dst, Operand, matmul_into};

/// Outputs of a tile along each axis.
const OUT: usize = 2;
/// Inputs of a tile along each axis (`OUT + kernel − 1`).
const SPAN: usize = 4;
/// Transformed points of a tile (`SPAN³`): one GEMM each.
const POINTS: usize = SPAN * SPAN * SPAN;
/// Kernel taps along each axis.
const TAPS: usize = 3;
/// Weights per channel pair (`TAPS³`).
const KERNEL: usize = TAPS * TAPS * TAPS;

/// Target tiles per block: whole spatial rows of tiles up to about this many (at least one
/// row). Measured on R3D-18's first stage at width 64 (8×112², batch 2; `cargo bench --bench
/// conv_kernels`): see [`pays_off`].
const BLOCK_TILES: usize = 128;

/// Job groups per thread (see [`job_groups`]): more than one, so that a thread that
/// finishes early takes another group.
const GROUPS_PER_THREAD: usize = 2;

/// Fewest input and output channels for which the Winograd kernels are chosen. With fewer,
/// the transforms (linear in the channels) outweigh the GEMMs (quadratic): measured in
/// `cargo bench --bench conv_kernels`, see `docs/winograd.md`.
const MIN_CHANNELS: usize = 64;

/// Fewest tiles per output frame: smaller frames leave the GEMMs too short.
const MIN_FRAME_TILES: usize = 128;

/// The weight transform `G` along one axis (rows: transformed points, columns: taps).
const G: [[f32; TAPS]; SPAN] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Whether the convolution is one these kernels compute: 3×3×3, stride 1, padding 1, no
/// dilation (output size = input size).
pub fn applies(g: &ConvGeometry) -> bool {
    g.kernel == [TAPS; 3] && g.stride == [1; 3] && g.padding == [1; 3] && g.dilation == [1; 3]
}

/// Whether the Winograd kernels are the faster ones for `pass` of `g` (on this crate's CPU
/// kernels, measured per convolution of R3D-18 in `cargo bench --bench conv_kernels`): from
/// [`MIN_CHANNELS`] channels in and out and frames of at least [`MIN_FRAME_TILES`] tiles.
/// The same for every pass: each was measured faster than the direct and im2col kernels
/// there, and slower (or no faster) below.
pub fn pays_off(g: &ConvGeometry, _pass: Pass) -> bool {
    let tiles = Tiling::of(g.output);
    applies(g)
        && g.c_in >= MIN_CHANNELS
        && g.c_out >= MIN_CHANNELS
        && tiles.tiles[1] * tiles.tiles[2] >= MIN_FRAME_TILES
}

/// The tiles of a volume and their blocks.
#[derive(Debug, Clone, Copy)]
struct Tiling {
    /// Volume `[T, H, W]` (input = output).
    dims: [usize; 3],
    /// Tiles along each axis (`⌈dim / 2⌉`).
    tiles: [usize; 3],
    /// Spatial rows of tiles per block.
    rows: usize,
}

/// One temporal row `i` of tiles, spatial rows `rows`, every column.
#[derive(Debug, Clone)]
struct Block {
    i: usize,
    rows: Range<usize>,
}

impl Tiling {
    fn of(dims: [usize; 3]) -> Self {
        let tiles = dims.map(|d| d.div_ceil(OUT));
        let rows = (BLOCK_TILES / tiles[2].max(1)).clamp(1, tiles[1].max(1));
        Self { dims, tiles, rows }
    }

    fn blocks(&self) -> Vec<Block> {
        let mut blocks = Vec::new();
        for i in 0..self.tiles[0] {
            let mut j = 0;
            while j < self.tiles[1] {
                let end = (j + self.rows).min(self.tiles[1]);
                blocks.push(Block { i, rows: j..end });
                j = end;
            }
        }
        blocks
    }

    /// Tiles of the largest block.
    fn max_block(&self) -> usize {
        self.rows * self.tiles[2]
    }

    fn volume(&self) -> usize {
        self.dims.iter().product()
    }
}

impl Block {
    fn tiles(&self, t: &Tiling) -> usize {
        self.rows.len() * t.tiles[2]
    }
}

/// Input index of padded coordinate `p` (input + 1) along an axis of length `n`, if inside.
fn inside(p: usize, n: usize) -> Option<usize> {
    p.checked_sub(1).filter(|&i| i < n)
}

/// Index `ξ` of the transformed point `(a, b, c')` (along time, height, width).
fn point(a: usize, b: usize, cw: usize) -> usize {
    (a * SPAN + b) * SPAN + cw
}

/// `Bᵀ` along one axis: four runs `d` to four runs, run `q` at `out[q·n..]`.
#[inline(always)]
fn bt(d: [&[f32]; SPAN], out: &mut [f32]) {
    let n = d[0].len();
    let (d0, d1, d2, d3) = (d[0], &d[1][..n], &d[2][..n], &d[3][..n]);
    let (o0, rest) = out[..SPAN * n].split_at_mut(n);
    let (o1, rest) = rest.split_at_mut(n);
    let (o2, o3) = rest.split_at_mut(n);
    for k in 0..n {
        let (a, b, c, e) = (d0[k], d1[k], d2[k], d3[k]);
        o0[k] = a - c;
        o1[k] = b + c;
        o2[k] = c - b;
        o3[k] = b - e;
    }
}

/// `Aᵀ` along one axis: four runs to two, run `q` at `out[q·n..]`.
#[inline(always)]
fn at(d: [&[f32]; SPAN], out: &mut [f32]) {
    let n = d[0].len();
    let (d0, d1, d2, d3) = (d[0], &d[1][..n], &d[2][..n], &d[3][..n]);
    let (o0, o1) = out[..OUT * n].split_at_mut(n);
    for k in 0..n {
        o0[k] = d0[k] + d1[k] + d2[k];
        o1[k] = d1[k] - d2[k] - d3[k];
    }
}

/// `Bᵀ` along one axis into four destinations (the last transform of a tile row: its runs
/// go straight to their points' rows of `V`).
#[inline(always)]
fn bt_to(d: [&[f32]; SPAN], [o0, o1, o2, o3]: [&mut [f32]; SPAN]) {
    let n = d[0].len();
    let (d0, d1, d2, d3) = (d[0], &d[1][..n], &d[2][..n], &d[3][..n]);
    let (o0, o1, o2, o3) = (&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for k in 0..n {
        let (a, b, c, e) = (d0[k], d1[k], d2[k], d3[k]);
        o0[k] = a - c;
        o1[k] = b + c;
        o2[k] = c - b;
        o3[k] = b - e;
    }
}

/// `A` along one axis into four destinations (see [`bt_to`]).
#[inline(always)]
fn a_to(d: [&[f32]; OUT], [o0, o1, o2, o3]: [&mut [f32]; SPAN]) {
    let n = d[0].len();
    let (d0, d1) = (d[0], &d[1][..n]);
    let (o0, o1, o2, o3) = (&mut o0[..n], &mut o1[..n], &mut o2[..n], &mut o3[..n]);
    for k in 0..n {
        let (y0, y1) = (d0[k], d1[k]);
        o0[k] = y0;
        o1[k] = y0 + y1;
        o2[k] = y0 - y1;
        o3[k] = -y1;
    }
}

/// The four runs of `n` values at `start(a)`, `a` = 0..4, of `v` (disjoint: the points
/// `(a, b, c')` of one `(b, c')` are 16 point-rows apart).
#[inline(always)]
fn point_runs(v: &mut [f32], start: impl Fn(usize) -> usize, n: usize) -> [&mut [f32]; SPAN] {
    v.get_disjoint_mut([0, 1, 2, 3].map(|a| start(a)..start(a) + n))
        .expect("winograd: point runs overlap")
}

/// `A` along one axis (the output-gradient transform): two runs to four.
#[inline(always)]
fn a(d: [&[f32]; OUT], out: &mut [f32]) {
    let n = d[0].len();
    let (d0, d1) = (d[0], &d[1][..n]);
    let (o0, rest) = out[..SPAN * n].split_at_mut(n);
    let (o1, rest) = rest.split_at_mut(n);
    let (o2, o3) = rest.split_at_mut(n);
    for k in 0..n {
        let (y0, y1) = (d0[k], d1[k]);
        o0[k] = y0;
        o1[k] = y0 + y1;
        o2[k] = y0 - y1;
        o3[k] = -y1;
    }
}

/// Per-thread buffers of the tile transforms of a [`Tiling`].
///
/// The transforms run axis by axis over whole blocks: after the first axis every
/// intermediate is stored as `[..][tile]` with the block's tiles in row order (the layout
/// of `V`, `Z` and `M`), so the later axes are element-wise over runs of all the block's
/// tiles (`rows · n` values: full vectors) rather than over one tile row (`n`, e.g. 28 at
/// 8×112²: one vector and a scalar tail). Only the width axis, which reads or writes the
/// rows of the volume, works row by row.
struct Scratch {
    /// A row's values at columns `2k − 1` and `2k` (`n + 1` each).
    odd: Vec<f32>,
    even: Vec<f32>,
    /// After the width axis (and, in [`transform_products`], the height axis).
    wt: Vec<f32>,
    /// After the height axis (in [`transform_products`], the time axis).
    ht: Vec<f32>,
    /// The even and odd output columns of a frame row of tiles ([`transform_products`]).
    runs: Vec<f32>,
}

impl Scratch {
    fn new(t: &Tiling) -> Self {
        let (n, rows) = (t.tiles[2], t.rows);
        Self {
            odd: vec![0.0; n + 1],
            even: vec![0.0; n + 1],
            // Input: `[frame][point_w][row parity][row pair 0..=rows][k]`; the others less.
            wt: vec![0.0; SPAN * SPAN * OUT * (rows + 1) * n],
            // Input: `[frame][point_w][point_h][tile]`; the others less.
            ht: vec![0.0; SPAN * SPAN * SPAN * rows * n],
            runs: vec![0.0; OUT * rows * n],
        }
    }
}

/// `V[ξ][c][tile]` (`ξ = (a·4 + b)·4 + c'`, tiles of the block in row order) of one sample
/// `x` (`[channels, T, H, W]`) for `block`: `v` holds `POINTS · channels · tiles` values.
///
/// Tile row `jj` of the block reads padded rows `2·jj .. 2·jj + 4` (relative to the block's
/// first); row `2·p + parity` goes through `Bᵀ` along the width once, to
/// `wt[frame][c'][parity][p]`, where the four rows of every tile row are the runs starting
/// at pairs `jj` and `jj + 1` of both parities: the height axis is then one pass over the
/// block's tiles.
fn transform_input(
    x: &[f32],
    channels: usize,
    t: &Tiling,
    block: &Block,
    v: &mut [f32],
    s: &mut Scratch,
) {
    let [td, hd, wd] = t.dims;
    let n = t.tiles[2];
    let tb = block.tiles(t);
    let pairs = block.rows.len() + 1;
    // One (frame, c', parity) run of row pairs.
    let run_len = pairs * n;
    let (plane, volume) = (hd * wd, t.volume());
    let first_row = OUT * block.rows.start;
    for c in 0..channels {
        let xc = &x[c * volume..][..volume];
        // Along the width, each padded row once.
        for f in 0..SPAN {
            let wt_f = &mut s.wt[f * SPAN * OUT * run_len..][..SPAN * OUT * run_len];
            let Some(fi) = inside(OUT * block.i + f, td) else {
                wt_f.fill(0.0);
                continue;
            };
            for row in 0..OUT * pairs {
                let (pair, parity) = (row / OUT, row % OUT);
                let start = |cw: usize| (cw * OUT + parity) * run_len + pair * n;
                let dst = point_runs(wt_f, start, n);
                match inside(first_row + row, hd) {
                    Some(hi) => {
                        split_row(&xc[fi * plane + hi * wd..][..wd], &mut s.odd, &mut s.even);
                        let (odd, even) = (&s.odd, &s.even);
                        bt_to([&odd[..n], &even[..n], &odd[1..], &even[1..]], dst);
                    }
                    None => dst.into_iter().for_each(|d| d.fill(0.0)),
                }
            }
        }
        // Along the height: rows 2·jj, 2·jj + 1, 2·jj + 2, 2·jj + 3 of every tile row at once.
        for f in 0..SPAN {
            for cw in 0..SPAN {
                let even = &s.wt[((f * SPAN + cw) * OUT) * run_len..][..run_len];
                let odd = &s.wt[((f * SPAN + cw) * OUT + 1) * run_len..][..run_len];
                let out = &mut s.ht[(f * SPAN + cw) * SPAN * tb..][..SPAN * tb];
                bt([&even[..tb], &odd[..tb], &even[n..], &odd[n..]], out);
            }
        }
        // Along time: for each (width, height) point, the four frames → `V[a][b][cw]`.
        for cw in 0..SPAN {
            for b in 0..SPAN {
                let run = |f: usize| &s.ht[((f * SPAN + cw) * SPAN + b) * tb..][..tb];
                let start = |a: usize| (point(a, b, cw) * channels + c) * tb;
                bt_to([run(0), run(1), run(2), run(3)], point_runs(v, start, tb));
            }
        }
    }
}

/// `odd[k]` = `row[2k − 1]`, `even[k]` = `row[2k]`, zero outside the row (`odd` and
/// `even` hold at least `⌈len / 2⌉ + 1` values).
fn split_row(row: &[f32], odd: &mut [f32], even: &mut [f32]) {
    let pairs = row.len() / 2;
    odd[0] = 0.0;
    for (k, pair) in row.chunks_exact(2).enumerate() {
        even[k] = pair[0];
        odd[k + 1] = pair[1];
    }
    even[pairs..].fill(0.0);
    odd[pairs + 1..].fill(0.0);
    if row.len() % 2 == 1 {
        even[pairs] = row[row.len() - 1];
    }
}

/// `Z[ξ][c][tile]` of one sample's output gradient `dy` (`[channels, T, H, W]`) for `block`:
/// each 2×2×2 tile through `A` along the three axes (zeros past the volume). Width first,
/// row by row, into `wt[p][q][c'][tile]`; then height and time over the block's tiles.
fn transform_output_grad(
    dy: &[f32],
    channels: usize,
    t: &Tiling,
    block: &Block,
    z: &mut [f32],
    s: &mut Scratch,
) {
    let [td, hd, wd] = t.dims;
    let n = t.tiles[2];
    let tb = block.tiles(t);
    let (plane, volume) = (hd * wd, t.volume());
    for c in 0..channels {
        let yc = &dy[c * volume..][..volume];
        for p in 0..OUT {
            let frame = OUT * block.i + p;
            for q in 0..OUT {
                let wt_pq = &mut s.wt[(p * OUT + q) * SPAN * tb..][..SPAN * tb];
                if frame >= td {
                    wt_pq.fill(0.0);
                    continue;
                }
                for (jj, j) in block.rows.clone().enumerate() {
                    let dst = point_runs(wt_pq, |cw| cw * tb + jj * n, n);
                    let row = OUT * j + q;
                    if row >= hd {
                        dst.into_iter().for_each(|d| d.fill(0.0));
                        continue;
                    }
                    // `odd[k]` = column 2k − 1: shifted by one, `odd[k + 1]` = column 2k + 1.
                    split_row(
                        &yc[frame * plane + row * wd..][..wd],
                        &mut s.odd,
                        &mut s.even,
                    );
                    a_to([&s.even[..n], &s.odd[1..]], dst);
                }
            }
        }
        // Along the height: `ht[p][c'][b][tile]`.
        for p in 0..OUT {
            for cw in 0..SPAN {
                let run = |q: usize| &s.wt[((p * OUT + q) * SPAN + cw) * tb..][..tb];
                a(
                    [run(0), run(1)],
                    &mut s.ht[(p * SPAN + cw) * SPAN * tb..][..SPAN * tb],
                );
            }
        }
        // Along time: the two frames → `Z[a][b][c']`.
        for cw in 0..SPAN {
            for b in 0..SPAN {
                let run = |p: usize| &s.ht[((p * SPAN + cw) * SPAN + b) * tb..][..tb];
                let start = |a_: usize| (point(a_, b, cw) * channels + c) * tb;
                a_to([run(0), run(1)], point_runs(z, start, tb));
            }
        }
    }
}

/// The output of `block` from `M[ξ][co][tile]`: each tile through `Aᵀ` along the three axes
/// (time, height, then width, each over all the block's tiles at once), the two columns of
/// each tile then interleaved into the output rows of `y_n` (one sample, `[c_out, T, H, W]`)
/// through [`OutputRows`].
fn transform_products(
    m: &[f32],
    c_out: usize,
    t: &Tiling,
    block: &Block,
    y: &OutputRows,
    sample: usize,
    s: &mut Scratch,
) {
    let [td, hd, wd] = t.dims;
    let n = t.tiles[2];
    let tb = block.tiles(t);
    for co in 0..c_out {
        let run = |xi: usize| &m[(xi * c_out + co) * tb..][..tb];
        // Along time: `ht[b·4 + c'][p][tile]`.
        for bw in 0..SPAN * SPAN {
            let r = |a_: usize| run(a_ * SPAN * SPAN + bw);
            at(
                [r(0), r(1), r(2), r(3)],
                &mut s.ht[bw * OUT * tb..][..OUT * tb],
            );
        }
        // Along height: `wt[p][c'][q][tile]`.
        for p in 0..OUT {
            for cw in 0..SPAN {
                let r = |b: usize| &s.ht[((b * SPAN + cw) * OUT + p) * tb..][..tb];
                at(
                    [r(0), r(1), r(2), r(3)],
                    &mut s.wt[(p * SPAN + cw) * OUT * tb..][..OUT * tb],
                );
            }
        }
        // Along width, then the two columns of each tile interleaved into the rows.
        for p in 0..OUT {
            let frame = OUT * block.i + p;
            if frame >= td {
                continue;
            }
            for q in 0..OUT {
                let r = |cw: usize| &s.wt[((p * SPAN + cw) * OUT + q) * tb..][..tb];
                at([r(0), r(1), r(2), r(3)], &mut s.runs[..OUT * tb]);
                let (even, odd) = s.runs[..OUT * tb].split_at(tb);
                for (jj, j) in block.rows.clone().enumerate() {
                    let row = OUT * j + q;
                    if row >= hd {
                        continue;
                    }
                    let (even, odd) = (&even[jj * n..][..n], &odd[jj * n..][..n]);
                    // SAFETY: see `OutputRows`: this job alone writes this row.
                    let dst = unsafe { y.row(sample, co, frame, row) };
                    for (k, pair) in dst.chunks_mut(OUT).enumerate() {
                        pair[0] = even[k];
                        if let Some(v) = pair.get_mut(1) {
                            *v = odd[k];
                        }
                    }
                    debug_assert_eq!(dst.len(), wd);
                }
            }
        }
    }
}

/// The output `[N, C, T, H, W]`, written by parallel jobs row by row.
///
/// Jobs are (sample, block) pairs, blocks partition a sample's tiles and tiles partition its
/// output positions, so every output row (sample, channel, frame, row) belongs to exactly one
/// job: the rows handed out by [`OutputRows::row`] never overlap across jobs.
struct OutputRows {
    ptr: *mut f32,
    len: usize,
    channels: usize,
    dims: [usize; 3],
}

// SAFETY: the pointer is only used for disjoint rows (see the type's doc) while the buffer it
// points into is borrowed mutably by the function that made it.
unsafe impl Sync for OutputRows {}

impl OutputRows {
    fn new(y: &mut [f32], channels: usize, dims: [usize; 3]) -> Self {
        Self {
            ptr: y.as_mut_ptr(),
            len: y.len(),
            channels,
            dims,
        }
    }

    /// Row `row` of frame `frame` of channel `c` of sample `n`.
    ///
    /// # Safety
    /// No other live slice from this value may cover the same row.
    #[allow(clippy::mut_from_ref)]
    unsafe fn row(&self, n: usize, c: usize, frame: usize, row: usize) -> &mut [f32] {
        let [td, hd, wd] = self.dims;
        let start = (((n * self.channels + c) * td + frame) * hd + row) * wd;
        assert!(start + wd <= self.len, "winograd: output row out of bounds");
        // SAFETY: in bounds (checked above); disjoint per the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), wd) }
    }
}

/// `U[ξ][co][ci]` = `G w[co][ci] Gᵀ` along the three axes, for a weight `[c_out, c_in, 3, 3, 3]`.
///
/// Each pair's 64 points are computed in parallel into `[pair][ξ]`, then transposed to the
/// GEMMs' `[ξ][pair]` in parallel (a serial transform left a thread idle: ~4 % of the
/// width-64 step's idle time, `perf record -a`).
fn transform_weight(w: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let pairs = c_out * c_in;
    let mut per_pair = vec![0.0f32; POINTS * pairs];
    per_pair
        .par_chunks_mut(POINTS)
        .zip(w.par_chunks_exact(KERNEL))
        .for_each(|(points, g)| weight_points(g, points));
    let mut u = vec![0.0f32; POINTS * pairs];
    u.par_chunks_mut(pairs).enumerate().for_each(|(xi, row)| {
        for (pair, value) in row.iter_mut().enumerate() {
            *value = per_pair[pair * POINTS + xi];
        }
    });
    u
}

/// `G g Gᵀ` along the three axes of one 3×3×3 kernel `g`, into its 64 points `ξ`.
fn weight_points(g: &[f32], points: &mut [f32]) {
    {
        let mut t1 = [[[0.0f32; SPAN]; TAPS]; TAPS];
        for x in 0..TAPS {
            for y in 0..TAPS {
                for (cw, row) in G.iter().enumerate() {
                    t1[x][y][cw] = (0..TAPS)
                        .map(|z| row[z] * g[(x * TAPS + y) * TAPS + z])
                        .sum();
                }
            }
        }
        let mut t2 = [[[0.0f32; SPAN]; SPAN]; TAPS];
        for x in 0..TAPS {
            for (b, row) in G.iter().enumerate() {
                for cw in 0..SPAN {
                    t2[x][b][cw] = (0..TAPS).map(|y| row[y] * t1[x][y][cw]).sum();
                }
            }
        }
        for (a_, row) in G.iter().enumerate() {
            for b in 0..SPAN {
                for cw in 0..SPAN {
                    points[point(a_, b, cw)] = (0..TAPS).map(|x| row[x] * t2[x][b][cw]).sum();
                }
            }
        }
    }
}

/// `dW[co][ci]` = `Gᵀ Σ[co][ci] G` along the three axes, from `Σ[ξ][co][ci]`.
fn weight_from_points(sum: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let pairs = c_out * c_in;
    let mut dw = vec![0.0f32; pairs * KERNEL];
    dw.par_chunks_exact_mut(KERNEL)
        .enumerate()
        .for_each(|(pair, out)| {
            let m = |a_: usize, b: usize, cw: usize| sum[point(a_, b, cw) * pairs + pair];
            let mut t1 = [[[0.0f32; TAPS]; SPAN]; SPAN];
            for (a_, t1a) in t1.iter_mut().enumerate() {
                for (b, t1ab) in t1a.iter_mut().enumerate() {
                    for (z, v) in t1ab.iter_mut().enumerate() {
                        *v = (0..SPAN).map(|cw| G[cw][z] * m(a_, b, cw)).sum();
                    }
                }
            }
            let mut t2 = [[[0.0f32; TAPS]; TAPS]; SPAN];
            for a_ in 0..SPAN {
                for y in 0..TAPS {
                    for z in 0..TAPS {
                        t2[a_][y][z] = (0..SPAN).map(|b| G[b][y] * t1[a_][b][z]).sum();
                    }
                }
            }
            for x in 0..TAPS {
                for y in 0..TAPS {
                    for z in 0..TAPS {
                        out[(x * TAPS + y) * TAPS + z] =
                            (0..SPAN).map(|a_| G[a_][x] * t2[a_][y][z]).sum();
                    }
                }
            }
        });
    dw
}

/// The (sample, block) jobs of a batch, in groups that each run on one thread with one set
/// of buffers: [`GROUPS_PER_THREAD`] per thread. (Buffers per rayon split instead —
/// `for_each_init` — zeroed a few MB each time a split was made or stolen: 4 % of the
/// width-64 step in `memset`.)
fn job_groups(batch: usize, t: &Tiling) -> Vec<Vec<(usize, Block)>> {
    let blocks = t.blocks();
    let jobs: Vec<_> = (0..batch)
        .flat_map(|n| blocks.iter().map(move |b| (n, b.clone())))
        .collect();
    let groups = rayon::current_num_threads() * GROUPS_PER_THREAD;
    let per_group = jobs.len().div_ceil(groups).max(1);
    jobs.chunks(per_group).map(<[_]>::to_vec).collect()
}

/// Output `[N, c_out, T, H, W]` of the convolution of `x` with `w` ([`applies`] must hold).
pub fn forward(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(applies(g), "winograd: unsupported geometry {g:?}");
    assert_eq!(x.len(), g.batch * g.input_len(), "conv input length");
    assert_eq!(w.len(), g.c_out * g.c_in * KERNEL, "conv weight length");
    let u = transform_weight(w, g.c_out, g.c_in);
    products(x, &u, g.batch, g.c_in, g.c_out, g.input)
}

/// The forward for transformed weights `u` (shared with the input gradient).
fn products(
    x: &[f32],
    u: &[f32],
    batch: usize,
    c_in: usize,
    c_out: usize,
    dims: [usize; 3],
) -> Vec<f32> {
    let t = Tiling::of(dims);
    let volume = t.volume();
    let mut y = vec![0.0f32; batch * c_out * volume];
    if y.is_empty() {
        return y;
    }
    let rows = OutputRows::new(&mut y, c_out, dims);
    let tbm = t.max_block();
    job_groups(batch, &t).into_par_iter().for_each(|group| {
        let mut v = vec![0.0f32; POINTS * c_in * tbm];
        let mut m = vec![0.0f32; POINTS * c_out * tbm];
        let mut s = Scratch::new(&t);
        let (v, m, s) = (&mut v, &mut m, &mut s);
        for (n, block) in group {
            let tb = block.tiles(&t);
            let x_n = &x[n * c_in * volume..][..c_in * volume];
            transform_input(x_n, c_in, &t, &block, v, s);
            for xi in 0..POINTS {
                let lhs = Operand {
                    data: &u[xi * c_out * c_in..][..c_out * c_in],
                    row_stride: c_in,
                    col_stride: 1,
                };
                let rhs = Operand {
                    data: &v[xi * c_in * tb..][..c_in * tb],
                    row_stride: tb,
                    col_stride: 1,
                };
                let dst = Dst {
                    data: &mut m[xi * c_out * tb..][..c_out * tb],
                    row_stride: tb,
                    col_stride: 1,
                    accumulate: false,
                };
                matmul_into(dst, lhs, rhs, (c_out, tb, c_in), false);
            }
            transform_products(m, c_out, &t, &block, &rows, n, s);
        }
    });
    y
}

/// Input gradient `[N, c_in, T, H, W]` of `y = conv(x, w)` for `dy` ([`applies`] must
/// hold): the forward on `dy` with the weight flipped and its channel axes swapped.
pub fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(applies(g), "winograd: unsupported geometry {g:?}");
    assert_eq!(
        dy.len(),
        g.batch * g.output_len(),
        "conv output-gradient length"
    );
    assert_eq!(w.len(), g.c_out * g.c_in * KERNEL, "conv weight length");
    let mut flipped = vec![0.0f32; w.len()];
    for co in 0..g.c_out {
        for ci in 0..g.c_in {
            let src = &w[(co * g.c_in + ci) * KERNEL..][..KERNEL];
            let dst = &mut flipped[(ci * g.c_out + co) * KERNEL..][..KERNEL];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    let u = transform_weight(&flipped, g.c_in, g.c_out);
    products(dy, &u, g.batch, g.c_out, g.c_in, g.output)
}

/// Weight gradient `[c_out, c_in, 3, 3, 3]` of `y = conv(x, w)` for `dy` ([`applies`] must
/// hold).
pub fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    assert!(applies(g), "winograd: unsupported geometry {g:?}");
    assert_eq!(x.len(), g.batch * g.input_len(), "conv input length");
    assert_eq!(
        dy.len(),
        g.batch * g.output_len(),
        "conv output-gradient length"
    );
    let (c_in, c_out) = (g.c_in, g.c_out);
    let t = Tiling::of(g.input);
    let volume = t.volume();
    let tbm = t.max_block();
    let pairs = c_out * c_in;
    let sum = job_groups(g.batch, &t)
        .into_par_iter()
        .map(|group| {
            let mut acc = vec![0.0f32; POINTS * pairs];
            let mut v = vec![0.0f32; POINTS * c_in * tbm];
            let mut z = vec![0.0f32; POINTS * c_out * tbm];
            let mut s = Scratch::new(&t);
            for (n, block) in group {
                let tb = block.tiles(&t);
                transform_input(
                    &x[n * c_in * volume..][..c_in * volume],
                    c_in,
                    &t,
                    &block,
                    &mut v,
                    &mut s,
                );
                let dy_n = &dy[n * c_out * volume..][..c_out * volume];
                transform_output_grad(dy_n, c_out, &t, &block, &mut z, &mut s);
                for xi in 0..POINTS {
                    let lhs = Operand {
                        data: &z[xi * c_out * tb..][..c_out * tb],
                        row_stride: tb,
                        col_stride: 1,
                    };
                    let rhs = Operand {
                        data: &v[xi * c_in * tb..][..c_in * tb],
                        row_stride: 1,
                        col_stride: tb,
                    };
                    let dst = Dst {
                        data: &mut acc[xi * pairs..][..pairs],
                        row_stride: c_in,
                        col_stride: 1,
                        accumulate: true,
                    };
                    matmul_into(dst, lhs, rhs, (c_out, c_in, tb), false);
                }
            }
            acc
        })
        .reduce_with(|mut a_, b| {
            a_.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a_
        })
        .unwrap_or_else(|| vec![0.0; POINTS * pairs]);
    weight_from_points(&sum, c_out, c_in)
}

#[cfg(test)]
mod tests {
    use super::super::conv_direct::tests::values;
    use super::super::conv_kernel;
    use super::*;

    /// Largest difference relative to the largest magnitude of the reference.
    fn relative(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-30);
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
            / scale
    }

    /// Every pass equals the im2col kernels' on odd and even sizes, one and several blocks.
    #[test]
    fn winograd_equals_im2col() {
        let cases: [([usize; 5], usize); 5] = [
            ([2, 3, 4, 5, 6], 4),
            ([1, 2, 3, 3, 3], 2),
            ([3, 5, 5, 7, 9], 3),
            ([2, 4, 6, 40, 36], 5),
            ([1, 8, 2, 1, 2], 6),
        ];
        for (x_dims, c_out) in cases {
            let w_dims = [c_out, x_dims[1], 3, 3, 3];
            let g = ConvGeometry::new(x_dims, w_dims, [1; 3], [1; 3], [1; 3]).unwrap();
            let x = values(x_dims.iter().product(), 1);
            let w = values(w_dims.iter().product(), 2);
            let dy = values(g.batch * g.output_len(), 3);
            let y = forward(&x, &w, &g);
            let dx = input_grad(&w, &dy, &g);
            let dw = weight_grad(&x, &dy, &g);
            let tol = 1e-5;
            let e = relative(&y, &conv_kernel::forward(&x, &w, &g));
            assert!(e < tol, "{x_dims:?} forward: {e:e}");
            let e = relative(&dx, &conv_kernel::input_grad(&w, &dy, &g));
            assert!(e < tol, "{x_dims:?} input gradient: {e:e}");
            let e = relative(&dw, &conv_kernel::weight_grad(&x, &dy, &g));
            assert!(e < tol, "{x_dims:?} weight gradient: {e:e}");
        }
    }
}
