//! Unit-stride convolutions as shifted views of a padded sample: no im2col, no col2im.
//!
//! With stride 1 on every axis, kernel tap `(a, b, c)` moves the whole output grid by one
//! constant offset. Copy a sample once into a zero-padded grid `xp[c_in][Tp][Hp][Wp]` and number
//! output positions on the same grid, `p = t'·Hp·Wp + h'·Wp + w'`: the value tap `(a, b, c)`
//! meets at `p` is `xp[ci][p + off]` with `off = a·dt·Hp·Wp + b·dh·Wp + c·dw`. So a tap's input
//! is a `c_in × positions` operand with plain strides, and each tap is one GEMM with
//! `K = c_in` on all of a sample's positions at once (on a block of samples laid one after the
//! other in each channel's row, when their grids are small: [`BLOCK_VALUES`]):
//! - forward: `Yp += W[:, :, a, b, c] · Xp[:, off..]`, then the valid positions copied out;
//! - weight gradient: `dW[:, :, a, b, c] += dYp · Xp[:, off..]ᵀ` (`K` = positions);
//! - input gradient: `dXp[:, off..] += W[:, :, a, b, c]ᵀ · dYp`, then the interior copied out.
//!
//! Grid positions with `h' ≥ H'` or `w' ≥ W'` (and those between two samples of a block) are
//! not outputs: the forward pass computes and drops them, and the backward passes see a zero
//! output gradient there (the padded copy of `dY` is zero outside the valid positions), so
//! they add nothing. A sample's positions end at its last valid output, and then
//! `positions + off` never passes the end of the sample's grid (see [`Grid::new`]): a tap's
//! view of a valid output stays inside its own sample and channel.
//!
//! Against im2col this reads each input value in place instead of copying it `kt·kh·kw` times
//! (im2col and col2im were 28 % of a width-8 training step, issue 13's profile), at the price
//! of a small `K` per GEMM and one padded copy of the input and of `dY` per sample.

use super::{ConvGeometry, Dst, Operand, matmul_into, over_samples, samples_per_job};
use rayon::prelude::*;

/// Whether the shifted-view path applies: unit stride on every axis, a kernel that is not
/// spatially pointwise (those read the input in place already) and at least one output.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.stride == [1, 1, 1] && !g.spatially_pointwise() && g.output_len() > 0 && g.batch > 0
}

/// Grid values (on the wider of the input and output side) that one GEMM should cover: the
/// samples of a block share each tap's GEMM, so that deep stages, whose grids hold a few
/// hundred values per channel, do not pay `gemm`'s fixed cost per call (its thread-local
/// workspace and dispatch, 5 % of a width-8 step with one sample per GEMM) once per sample.
/// One sample's grid is already larger at R3D's first stage; 256 KiB stays in L2.
const BLOCK_VALUES: usize = 1 << 16;

/// The padded grids of a block of samples and where tensors sit in them.
///
/// A channel's row holds the block's samples one after the other (`channel` values each);
/// output positions are numbered on the same rows, so a tap's view never leaves the sample
/// for a valid output (the argument of the module doc holds per sample).
struct Grid {
    /// Padded input extents `[Tp, Hp, Wp]`.
    padded: [usize; 3],
    /// Values of one sample's channel (`Tp·Hp·Wp`).
    channel: usize,
    /// Samples per block: the layout's strides are those of a full block, also for a last,
    /// shorter one (the zero padding stays where it was written).
    block: usize,
    /// Grid positions of one sample up to its last valid output:
    /// `(T'−1)·Hp·Wp + (H'−1)·Wp + W'`.
    single: usize,
}

impl Grid {
    fn new(g: &ConvGeometry) -> Self {
        let padded: [usize; 3] = std::array::from_fn(|d| g.input[d] + 2 * g.padding[d]);
        let [_, hp, wp] = padded;
        let [to, ho, wo] = g.output;
        // With unit stride `out + (k−1)·dil = padded` on each axis, so the last valid position
        // plus the largest offset is `Tp·Hp·Wp − 1`: the last value of the sample's grid.
        // (`applies` guarantees at least one output.)
        let single = (to - 1) * hp * wp + (ho - 1) * wp + wo;
        let channel = padded.iter().product::<usize>();
        let widest = g.c_in.max(g.c_out) * channel;
        let block = (BLOCK_VALUES / widest).clamp(1, samples_per_job(g));
        Self {
            padded,
            channel,
            block,
            single,
        }
    }

    /// Positions of `samples` consecutive samples (the GEMMs' extent).
    fn positions(&self, samples: usize) -> usize {
        (samples - 1) * self.channel + self.single
    }

    /// Stride between the input grid's channels.
    fn input_row(&self) -> usize {
        self.block * self.channel
    }

    /// Stride between the output grid's channels.
    fn output_row(&self) -> usize {
        self.positions(self.block)
    }

    /// Offset of kernel tap `(a, b, c)` on the grid.
    fn offset(&self, g: &ConvGeometry, [a, b, c]: [usize; 3]) -> usize {
        let [_, hp, wp] = self.padded;
        a * g.dilation[0] * hp * wp + b * g.dilation[1] * wp + c * g.dilation[2]
    }

    /// Calls `visit(dense, grid, len)` for every row of `samples` dense `[channels, T, H, W]`
    /// tensors one after the other: its start in them, its start on a grid whose channels are
    /// `row` apart and whose first sample starts at `origin`, and its length `W`.
    fn rows(
        &self,
        samples: usize,
        [channels, t, h, w]: [usize; 4],
        row: usize,
        origin: usize,
        mut visit: impl FnMut(usize, usize, usize),
    ) {
        let [_, hp, wp] = self.padded;
        let mut dense = 0;
        for s in 0..samples {
            for ch in 0..channels {
                let start = ch * row + s * self.channel + origin;
                for ti in 0..t {
                    for hi in 0..h {
                        visit(dense, start + ti * hp * wp + hi * wp, w);
                        dense += w;
                    }
                }
            }
        }
    }

    /// Where the input of `samples` samples sits: behind the padding.
    fn input_rows(&self, g: &ConvGeometry, samples: usize, visit: impl FnMut(usize, usize, usize)) {
        let [_, hp, wp] = self.padded;
        let [pt, ph, pw] = g.padding;
        let dims = [g.c_in, g.input[0], g.input[1], g.input[2]];
        let origin = pt * hp * wp + ph * wp + pw;
        self.rows(samples, dims, self.input_row(), origin, visit);
    }

    /// Where the output of `samples` samples sits: from each sample's position 0.
    fn output_rows(
        &self,
        g: &ConvGeometry,
        samples: usize,
        visit: impl FnMut(usize, usize, usize),
    ) {
        let dims = [g.c_out, g.output[0], g.output[1], g.output[2]];
        self.rows(samples, dims, self.output_row(), 0, visit);
    }

    /// Every kernel tap `[a, b, c]` with its index in weight order (`a·kh·kw + b·kw + c`).
    fn taps(g: &ConvGeometry) -> impl Iterator<Item = (usize, [usize; 3])> + '_ {
        let [kt, kh, kw] = g.kernel;
        (0..kt * kh * kw).map(move |i| (i, [i / (kh * kw), i / kw % kh, i % kw]))
    }
}

/// Per-thread scratch: a block's input (or input gradient) grid and its output (or output
/// gradient) on the grid's positions. Padding and off-grid positions of `x` and `y` are
/// written by nobody once zeroed (the same rows are copied for every block of a call).
struct Scratch {
    x: Vec<f32>,
    y: Vec<f32>,
}

impl Scratch {
    fn new(g: &ConvGeometry, grid: &Grid) -> Self {
        Self {
            x: vec![0.0; g.c_in * grid.input_row()],
            y: vec![0.0; g.c_out * grid.output_row()],
        }
    }
}

/// Copies the rows that `rows` visits from `src` (dense) into `dst` (grid).
fn to_grid(src: &[f32], dst: &mut [f32], rows: impl FnOnce(&mut dyn FnMut(usize, usize, usize))) {
    rows(&mut |dense, grid, len| dst[grid..][..len].copy_from_slice(&src[dense..][..len]));
}

/// Copies the rows that `rows` visits from `src` (grid) into `dst` (dense).
fn from_grid(src: &[f32], dst: &mut [f32], rows: impl FnOnce(&mut dyn FnMut(usize, usize, usize))) {
    rows(&mut |dense, grid, len| dst[dense..][..len].copy_from_slice(&src[grid..][..len]));
}

/// Weight tap `i` (weight order) as a `c_out × c_in` operand.
fn weight_tap<'a>(g: &ConvGeometry, w: &'a [f32], i: usize) -> Operand<'a> {
    Operand {
        data: &w[i..],
        row_stride: g.taps(),
        col_stride: g.kernel.iter().product(),
    }
}

/// A block of consecutive samples: the first one and how many.
#[derive(Clone, Copy)]
struct Block {
    first: usize,
    samples: usize,
}

/// Runs `job(block, out_block, scratch, parallel)` over `out` (`per` values per sample) in
/// blocks of `grid.block` samples: in parallel over blocks (each GEMM sequential) when there
/// are enough samples, else with parallel GEMMs.
fn per_block(
    g: &ConvGeometry,
    grid: &Grid,
    out: &mut [f32],
    per: usize,
    job: impl Fn(Block, &mut [f32], &mut Scratch, bool) + Sync,
) {
    let block = |i: usize, chunk: &[f32]| Block {
        first: i * grid.block,
        samples: chunk.len() / per,
    };
    if over_samples(g) {
        out.par_chunks_mut(per * grid.block)
            .enumerate()
            .with_min_len((samples_per_job(g) / grid.block).max(1))
            .for_each_init(
                || Scratch::new(g, grid),
                |s, (i, chunk)| job(block(i, chunk), chunk, s, false),
            );
    } else {
        let mut s = Scratch::new(g, grid);
        for (i, chunk) in out.chunks_mut(per * grid.block).enumerate() {
            job(block(i, chunk), chunk, &mut s, true);
        }
    }
}

/// Output `[N, c_out, T', H', W']` (see [`super::forward`]).
pub(super) fn forward(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let grid = Grid::new(g);
    let mut y = vec![0.0f32; g.batch * g.output_len()];
    let job = |b: Block, y_b: &mut [f32], s: &mut Scratch, parallel: bool| {
        let x_b = &x[b.first * g.input_len()..][..b.samples * g.input_len()];
        to_grid(x_b, &mut s.x, |v| grid.input_rows(g, b.samples, v));
        let positions = grid.positions(b.samples);
        for (i, tap) in Grid::taps(g) {
            let dst = Dst {
                data: &mut s.y,
                row_stride: grid.output_row(),
                col_stride: 1,
                accumulate: i > 0,
            };
            let view = Operand {
                data: &s.x[grid.offset(g, tap)..],
                row_stride: grid.input_row(),
                col_stride: 1,
            };
            let shape = (g.c_out, positions, g.c_in);
            matmul_into(dst, weight_tap(g, w, i), view, shape, parallel);
        }
        from_grid(&s.y, y_b, |v| grid.output_rows(g, b.samples, v));
    };
    per_block(g, &grid, &mut y, g.output_len(), job);
    y
}

/// Weight gradient `[c_out, c_in, kt, kh, kw]` (see [`super::weight_grad`]).
pub(super) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let grid = Grid::new(g);
    let (taps, volume) = (g.taps(), g.kernel.iter().product::<usize>());
    let job = |b: Block, acc: &mut Vec<f32>, s: &mut Scratch, parallel: bool| {
        let x_b = &x[b.first * g.input_len()..][..b.samples * g.input_len()];
        let dy_b = &dy[b.first * g.output_len()..][..b.samples * g.output_len()];
        to_grid(x_b, &mut s.x, |v| grid.input_rows(g, b.samples, v));
        to_grid(dy_b, &mut s.y, |v| grid.output_rows(g, b.samples, v));
        let dy_grid = Operand {
            data: &s.y,
            row_stride: grid.output_row(),
            col_stride: 1,
        };
        for (i, tap) in Grid::taps(g) {
            let dst = Dst {
                data: &mut acc[i..],
                row_stride: taps,
                col_stride: volume,
                accumulate: true,
            };
            // The tap's view transposed: positions × c_in.
            let view_t = Operand {
                data: &s.x[grid.offset(g, tap)..],
                row_stride: 1,
                col_stride: grid.input_row(),
            };
            let shape = (g.c_out, g.c_in, grid.positions(b.samples));
            matmul_into(dst, dy_grid, view_t, shape, parallel);
        }
    };
    let blocks = g.batch.div_ceil(grid.block);
    let block = |i: usize| Block {
        first: i * grid.block,
        samples: grid.block.min(g.batch - i * grid.block),
    };
    let zeros = || (vec![0.0f32; g.c_out * taps], Scratch::new(g, &grid));
    if over_samples(g) {
        (0..blocks)
            .into_par_iter()
            .with_min_len((samples_per_job(g) / grid.block).max(1))
            .fold(zeros, |(mut acc, mut s), i| {
                job(block(i), &mut acc, &mut s, false);
                (acc, s)
            })
            .map(|(acc, _)| acc)
            .reduce_with(|mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            })
            .unwrap_or_else(|| vec![0.0; g.c_out * taps])
    } else {
        let (mut acc, mut s) = zeros();
        for i in 0..blocks {
            job(block(i), &mut acc, &mut s, true);
        }
        acc
    }
}

/// Input gradient `[N, c_in, T, H, W]` (see [`super::input_grad`]).
pub(super) fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let grid = Grid::new(g);
    let mut dx = vec![0.0f32; g.batch * g.input_len()];
    let job = |b: Block, dx_b: &mut [f32], s: &mut Scratch, parallel: bool| {
        let dy_b = &dy[b.first * g.output_len()..][..b.samples * g.output_len()];
        to_grid(dy_b, &mut s.y, |v| grid.output_rows(g, b.samples, v));
        // The whole grid accumulates, padding included (its gradient is dropped).
        s.x.fill(0.0);
        let dy_grid = Operand {
            data: &s.y,
            row_stride: grid.output_row(),
            col_stride: 1,
        };
        for (i, tap) in Grid::taps(g) {
            let dst = Dst {
                data: &mut s.x[grid.offset(g, tap)..],
                row_stride: grid.input_row(),
                col_stride: 1,
                accumulate: true,
            };
            let shape = (g.c_in, grid.positions(b.samples), g.c_out);
            matmul_into(
                dst,
                weight_tap(g, w, i).transposed(),
                dy_grid,
                shape,
                parallel,
            );
        }
        from_grid(&s.x, dx_b, |v| grid.input_rows(g, b.samples, v));
    };
    per_block(g, &grid, &mut dx, g.input_len(), job);
    dx
}
