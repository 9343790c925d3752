//! Unit-stride convolutions as shifted views of a padded sample: no im2col, no col2im.
//!
//! With stride 1 on every axis, kernel tap `(a, b, c)` moves the whole output grid by one
//! constant offset. Copy a sample once into a zero-padded grid `xp[c_in][Tp][Hp][Wp]` and number
//! output positions on the same grid, `p = t'·Hp·Wp + h'·Wp + w'`: the value tap `(a, b, c)`
//! meets at `p` is `xp[ci][p + off]` with `off = a·dt·Hp·Wp + b·dh·Wp + c·dw`. So a tap's input
//! is a `c_in × positions` operand with plain strides `(Tp·Hp·Wp, 1)`, and each tap is one GEMM
//! per sample with `K = c_in`, on all of a sample's positions at once:
//! - forward: `Yp += W[:, :, a, b, c] · Xp[:, off..]`, then the valid positions copied out;
//! - weight gradient: `dW[:, :, a, b, c] += dYp · Xp[:, off..]ᵀ` (`K` = positions);
//! - input gradient: `dXp[:, off..] += W[:, :, a, b, c]ᵀ · dYp`, then the interior copied out.
//!
//! Grid positions with `h' ≥ H'` or `w' ≥ W'` are not outputs: the forward pass computes and
//! drops them, and the backward passes see a zero output gradient there (the padded copy of
//! `dY` is zero outside the valid positions), so they add nothing. `positions` ends at the last
//! valid output, and then `positions + off` never passes the end of a channel's grid (see
//! [`Grid::new`]): every tap's view stays inside its own channel.
//!
//! Against im2col this reads each input value in place instead of copying it `kt·kh·kw` times
//! (im2col and col2im were 28 % of a width-8 training step, issue 13's profile), at the price
//! of a small `K` per GEMM and one padded copy of the input and of `dY` per sample.

use super::{ConvGeometry, Dst, Operand, matmul_into, over_samples, samples_per_job};
use rayon::prelude::*;

/// Whether the shifted-view path applies: unit stride on every axis, a kernel that is not
/// spatially pointwise (those read the input in place already) and at least one output.
pub(super) fn applies(g: &ConvGeometry) -> bool {
    g.stride == [1, 1, 1] && !g.spatially_pointwise() && g.output_len() > 0
}

/// The padded grid of one sample and where tensors sit in it.
struct Grid {
    /// Padded input extents `[Tp, Hp, Wp]`.
    padded: [usize; 3],
    /// Values of one channel of the grid (`Tp·Hp·Wp`).
    channel: usize,
    /// Grid positions up to the last valid output: `(T'−1)·Hp·Wp + (H'−1)·Wp + W'`.
    positions: usize,
}

impl Grid {
    fn new(g: &ConvGeometry) -> Self {
        let padded: [usize; 3] = std::array::from_fn(|d| g.input[d] + 2 * g.padding[d]);
        let [_, hp, wp] = padded;
        let [to, ho, wo] = g.output;
        // With unit stride `out + (k−1)·dil = padded` on each axis, so the last valid position
        // plus the largest offset is `Tp·Hp·Wp − 1`: the last value of the channel's grid.
        let positions = if to * ho * wo == 0 {
            0
        } else {
            (to - 1) * hp * wp + (ho - 1) * wp + wo
        };
        Self {
            padded,
            channel: padded.iter().product(),
            positions,
        }
    }

    /// Offset of kernel tap `(a, b, c)` on the grid.
    fn offset(&self, g: &ConvGeometry, [a, b, c]: [usize; 3]) -> usize {
        let [_, hp, wp] = self.padded;
        a * g.dilation[0] * hp * wp + b * g.dilation[1] * wp + c * g.dilation[2]
    }

    /// Calls `visit(dense, grid, len)` for every row of a dense `[channels, T, H, W]` tensor:
    /// its start in the tensor, its start on a grid whose channels are `channel_stride`
    /// apart and whose origin is `origin`, and its length `W`.
    fn rows(
        &self,
        [channels, t, h, w]: [usize; 4],
        channel_stride: usize,
        origin: usize,
        mut visit: impl FnMut(usize, usize, usize),
    ) {
        let [_, hp, wp] = self.padded;
        let mut dense = 0;
        for ch in 0..channels {
            for ti in 0..t {
                for hi in 0..h {
                    visit(
                        dense,
                        ch * channel_stride + origin + ti * hp * wp + hi * wp,
                        w,
                    );
                    dense += w;
                }
            }
        }
    }

    /// Where the input sits: channels `channel` apart, behind the padding.
    fn input_rows(&self, g: &ConvGeometry, visit: impl FnMut(usize, usize, usize)) {
        let [_, hp, wp] = self.padded;
        let [pt, ph, pw] = g.padding;
        let dims = [g.c_in, g.input[0], g.input[1], g.input[2]];
        self.rows(dims, self.channel, pt * hp * wp + ph * wp + pw, visit);
    }

    /// Where the output sits: channels `positions` apart, from position 0.
    fn output_rows(&self, g: &ConvGeometry, visit: impl FnMut(usize, usize, usize)) {
        let dims = [g.c_out, g.output[0], g.output[1], g.output[2]];
        self.rows(dims, self.positions, 0, visit);
    }

    /// Every kernel tap `[a, b, c]` with its index in weight order (`a·kh·kw + b·kw + c`).
    fn taps(g: &ConvGeometry) -> impl Iterator<Item = (usize, [usize; 3])> + '_ {
        let [kt, kh, kw] = g.kernel;
        (0..kt * kh * kw).map(move |i| (i, [i / (kh * kw), i / kw % kh, i % kw]))
    }
}

/// Per-thread scratch: the sample's input (or input gradient) grid and its output (or output
/// gradient) on the grid's positions. Padding and off-grid positions of `x` and `y` are
/// written by nobody once zeroed (the same rows are copied for every sample of a call).
struct Scratch {
    x: Vec<f32>,
    y: Vec<f32>,
}

impl Scratch {
    fn new(g: &ConvGeometry, grid: &Grid) -> Self {
        Self {
            x: vec![0.0; g.c_in * grid.channel],
            y: vec![0.0; g.c_out * grid.positions],
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

/// Runs `sample(n, out_n, scratch, parallel)` for every sample: in parallel over samples
/// (each GEMM sequential) when there are enough, else with parallel GEMMs.
fn per_sample(
    g: &ConvGeometry,
    grid: &Grid,
    out: &mut [f32],
    per: usize,
    sample: impl Fn(usize, &mut [f32], &mut Scratch, bool) + Sync,
) {
    if over_samples(g) {
        out.par_chunks_mut(per)
            .enumerate()
            .with_min_len(samples_per_job(g))
            .for_each_init(
                || Scratch::new(g, grid),
                |s, (n, out_n)| sample(n, out_n, s, false),
            );
    } else {
        let mut s = Scratch::new(g, grid);
        for (n, out_n) in out.chunks_mut(per).enumerate() {
            sample(n, out_n, &mut s, true);
        }
    }
}

/// Output `[N, c_out, T', H', W']` (see [`super::forward`]).
pub(super) fn forward(x: &[f32], w: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let grid = Grid::new(g);
    let mut y = vec![0.0f32; g.batch * g.output_len()];
    if g.output_len() == 0 {
        return y;
    }
    let sample = |n: usize, y_n: &mut [f32], s: &mut Scratch, parallel: bool| {
        let x_n = &x[n * g.input_len()..][..g.input_len()];
        to_grid(x_n, &mut s.x, |v| grid.input_rows(g, v));
        for (i, tap) in Grid::taps(g) {
            let dst = Dst {
                data: &mut s.y,
                row_stride: grid.positions,
                col_stride: 1,
                accumulate: i > 0,
            };
            let view = Operand {
                data: &s.x[grid.offset(g, tap)..],
                row_stride: grid.channel,
                col_stride: 1,
            };
            let shape = (g.c_out, grid.positions, g.c_in);
            matmul_into(dst, weight_tap(g, w, i), view, shape, parallel);
        }
        from_grid(&s.y, y_n, |v| grid.output_rows(g, v));
    };
    per_sample(g, &grid, &mut y, g.output_len(), sample);
    y
}

/// Weight gradient `[c_out, c_in, kt, kh, kw]` (see [`super::weight_grad`]).
pub(super) fn weight_grad(x: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let grid = Grid::new(g);
    let (taps, volume) = (g.taps(), g.kernel.iter().product::<usize>());
    let sample = |n: usize, acc: &mut Vec<f32>, s: &mut Scratch, parallel: bool| {
        let x_n = &x[n * g.input_len()..][..g.input_len()];
        let dy_n = &dy[n * g.output_len()..][..g.output_len()];
        to_grid(x_n, &mut s.x, |v| grid.input_rows(g, v));
        to_grid(dy_n, &mut s.y, |v| grid.output_rows(g, v));
        let dy_grid = Operand {
            data: &s.y,
            row_stride: grid.positions,
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
                col_stride: grid.channel,
            };
            let shape = (g.c_out, g.c_in, grid.positions);
            matmul_into(dst, dy_grid, view_t, shape, parallel);
        }
    };
    let zeros = || (vec![0.0f32; g.c_out * taps], Scratch::new(g, &grid));
    if over_samples(g) {
        (0..g.batch)
            .into_par_iter()
            .with_min_len(samples_per_job(g))
            .fold(zeros, |(mut acc, mut s), n| {
                sample(n, &mut acc, &mut s, false);
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
        for n in 0..g.batch {
            sample(n, &mut acc, &mut s, true);
        }
        acc
    }
}

/// Input gradient `[N, c_in, T, H, W]` (see [`super::input_grad`]).
pub(super) fn input_grad(w: &[f32], dy: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let grid = Grid::new(g);
    let mut dx = vec![0.0f32; g.batch * g.input_len()];
    if g.input_len() == 0 {
        return dx;
    }
    let sample = |n: usize, dx_n: &mut [f32], s: &mut Scratch, parallel: bool| {
        let dy_n = &dy[n * g.output_len()..][..g.output_len()];
        to_grid(dy_n, &mut s.y, |v| grid.output_rows(g, v));
        // The whole grid accumulates, padding included (its gradient is dropped).
        s.x.fill(0.0);
        for (i, tap) in Grid::taps(g) {
            let dst = Dst {
                data: &mut s.x[grid.offset(g, tap)..],
                row_stride: grid.channel,
                col_stride: 1,
                accumulate: true,
            };
            let dy_grid = Operand {
                data: &s.y,
                row_stride: grid.positions,
                col_stride: 1,
            };
            let shape = (g.c_in, grid.positions, g.c_out);
            matmul_into(
                dst,
                weight_tap(g, w, i).transposed(),
                dy_grid,
                shape,
                parallel,
            );
        }
        from_grid(&s.x, dx_n, |v| grid.input_rows(g, v));
    };
    per_sample(g, &grid, &mut dx, g.input_len(), sample);
    dx
}
