//! Batch-norm arithmetic on host slices: the fused CPU kernels behind
//! [`super::batch_norm`].
//!
//! Burn 0.21's `BatchNorm` composes eight full-size tensor operations per forward pass
//! (two of them layout copies) and as many again in the backward pass, and on `flex` the
//! per-channel broadcasts of a batch larger than one fall off its SIMD fast path onto an
//! element-by-element strided iterator. Measured on R3D-18 training, that made batch norm
//! and its gradient a third of the step. These kernels do the same arithmetic in two passes
//! forward (statistics, normalise) and two backward (two sums per channel, then the input
//! gradient), with rows processed in parallel.
//!
//! Layout: a tensor `[batch, channels, rest…]` is seen as `batch × channels` rows of
//! `inner = ∏ rest` contiguous values; channel `c`'s values are the rows `b·channels + c`.

use rayon::prelude::*;

/// Values summed in `f32` lanes before the partial sum is carried into an `f64` total:
/// long enough to vectorise, short enough that `f32` rounding stays at the 1e-7 level.
const SUM_BLOCK: usize = 1024;

/// Shape of a batch-norm input as rows (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowShape {
    pub batch: usize,
    pub channels: usize,
    pub inner: usize,
}

impl RowShape {
    /// `[batch, channels, rest…]` → rows; `None` for fewer than two dimensions.
    pub fn of(dims: &[usize]) -> Option<Self> {
        if dims.len() < 2 {
            return None;
        }
        Some(Self {
            batch: dims[0],
            channels: dims[1],
            inner: dims[2..].iter().product(),
        })
    }

    /// Number of values that share one channel's statistics.
    pub fn per_channel(&self) -> usize {
        self.batch * self.inner
    }

    fn len(&self) -> usize {
        self.batch * self.channels * self.inner
    }

    /// The rows of channel `c` in `data`.
    fn channel_rows<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        (0..self.batch).map(move |b| {
            let start = (b * self.channels + c) * self.inner;
            &data[start..start + self.inner]
        })
    }
}

/// Sum of `f(v)` over a row: `f32` lanes per block, blocks carried in `f64`.
fn row_sum(row: &[f32], f: impl Fn(f32) -> f32 + Copy) -> f64 {
    row.chunks(SUM_BLOCK)
        .map(|block| block.iter().map(|&v| f(v)).sum::<f32>() as f64)
        .sum()
}

/// Sum of `f(a, b)` over two rows of equal length, as [`row_sum`].
fn row_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32 + Copy) -> f64 {
    a.chunks(SUM_BLOCK)
        .zip(b.chunks(SUM_BLOCK))
        .map(|(x, y)| x.iter().zip(y).map(|(&u, &v)| f(u, v)).sum::<f32>() as f64)
        .sum()
}

/// Per-channel mean and biased variance (two passes: mean, then centred squares, as
/// Burn's and PyTorch's batch norm compute them in training).
pub fn channel_stats(x: &[f32], shape: RowShape) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), shape.len(), "batch-norm input length");
    let count = shape.per_channel().max(1) as f64;
    (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = shape.channel_rows(x, c).map(|r| row_sum(r, |v| v)).sum();
            let mean = (sum / count) as f32;
            let sq: f64 = shape
                .channel_rows(x, c)
                .map(|r| row_sum(r, |v| (v - mean) * (v - mean)))
                .sum();
            (mean, (sq / count) as f32)
        })
        .unzip()
}

/// `1 / sqrt(var + eps)` per channel.
pub fn inv_std(var: &[f32], epsilon: f64) -> Vec<f32> {
    var.iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect()
}

/// `y = x · scale[c] + shift[c]`, row by row in parallel.
pub fn affine_rows(x: &[f32], shape: RowShape, scale: &[f32], shift: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), shape.len(), "batch-norm input length");
    let mut y = vec![0.0f32; x.len()];
    if shape.inner == 0 {
        return y;
    }
    y.par_chunks_mut(shape.inner)
        .zip(x.par_chunks(shape.inner))
        .enumerate()
        .for_each(|(row, (out, inp))| {
            let c = row % shape.channels;
            let (s, t) = (scale[c], shift[c]);
            for (o, &v) in out.iter_mut().zip(inp) {
                *o = v * s + t;
            }
        });
    y
}

/// Scale and shift that normalise with `mean`/`inv_std` and apply `gamma`/`beta`.
pub fn normalising_affine(
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    mean.iter()
        .zip(inv_std)
        .zip(gamma.iter().zip(beta))
        .map(|((&m, &is), (&g, &b))| {
            let scale = g * is;
            (scale, b - m * scale)
        })
        .unzip()
}

/// Gradients of training-mode batch norm.
#[derive(Debug, Clone)]
pub struct BatchNormGrads {
    pub x: Vec<f32>,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// Backward pass of `y = (x − mean)·inv_std·gamma + beta` with batch statistics:
/// `dbeta = Σ dy`, `dgamma = Σ dy·x̂`, and
/// `dx = gamma·inv_std·(dy − dbeta/M − x̂·dgamma/M)` with `M` values per channel,
/// written as `dx = k1·dy + k2·x + k3` so the last pass is one fused multiply-add per value.
pub fn backward(
    x: &[f32],
    dy: &[f32],
    shape: RowShape,
    mean: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
) -> BatchNormGrads {
    assert_eq!(x.len(), shape.len(), "batch-norm input length");
    assert_eq!(dy.len(), shape.len(), "batch-norm gradient length");
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = (0..shape.channels)
        .into_par_iter()
        .map(|c| {
            let m = mean[c];
            let (mut sum_dy, mut sum_dy_xc) = (0.0f64, 0.0f64);
            for (xr, dr) in shape.channel_rows(x, c).zip(shape.channel_rows(dy, c)) {
                sum_dy += row_sum(dr, |g| g);
                sum_dy_xc += row_sum2(xr, dr, |v, g| (v - m) * g);
            }
            (sum_dy as f32, (sum_dy_xc * inv_std[c] as f64) as f32)
        })
        .unzip();
    let count = shape.per_channel().max(1) as f32;
    // dx = k1·dy + k2·(x − mean) + k3. The centred form matters: folding −k2·mean into k3
    // cancels catastrophically in float32 when a channel's mean is large against its spread
    // (a stem convolution of [0, 1] pixels), which showed as 1e-4 relative gradient noise.
    let coefficients: Vec<(f32, f32, f32, f32)> = (0..shape.channels)
        .map(|c| {
            let k1 = gamma[c] * inv_std[c];
            let k2 = -k1 * inv_std[c] * dgamma[c] / count;
            let k3 = -k1 * dbeta[c] / count;
            (k1, k2, k3, mean[c])
        })
        .collect();
    let mut dx = vec![0.0f32; x.len()];
    if shape.inner > 0 {
        dx.par_chunks_mut(shape.inner)
            .zip(x.par_chunks(shape.inner).zip(dy.par_chunks(shape.inner)))
            .enumerate()
            .for_each(|(row, (out, (xr, dr)))| {
                let (k1, k2, k3, m) = coefficients[row % shape.channels];
                for ((o, &v), &g) in out.iter_mut().zip(xr).zip(dr) {
                    *o = k1 * g + k2 * (v - m) + k3;
                }
            });
    }
    BatchNormGrads {
        x: dx,
        gamma: dgamma,
        beta: dbeta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Straightforward per-element reference in f64.
    fn reference_forward(
        x: &[f32],
        s: RowShape,
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
    ) -> Vec<f64> {
        let m = s.per_channel() as f64;
        let mut y = vec![0.0; x.len()];
        for c in 0..s.channels {
            let idx: Vec<usize> = (0..s.batch)
                .flat_map(|b| (0..s.inner).map(move |i| (b * s.channels + c) * s.inner + i))
                .collect();
            let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / m;
            let var = idx
                .iter()
                .map(|&i| (x[i] as f64 - mean).powi(2))
                .sum::<f64>()
                / m;
            for &i in &idx {
                y[i] = (x[i] as f64 - mean) / (var + eps).sqrt() * gamma[c] as f64 + beta[c] as f64;
            }
        }
        y
    }

    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) % 1000) as f32
                    / 250.0
                    - 2.0
            })
            .collect()
    }

    #[test]
    fn forward_matches_the_definition() {
        let s = RowShape {
            batch: 3,
            channels: 4,
            inner: 10,
        };
        let x = values(120, 1);
        let gamma = [1.0, 0.5, -2.0, 0.0];
        let beta = [0.0, 1.0, 0.25, -1.0];
        let (mean, var) = channel_stats(&x, s);
        let is = inv_std(&var, 1e-5);
        let (scale, shift) = normalising_affine(&mean, &is, &gamma, &beta);
        let y = affine_rows(&x, s, &scale, &shift);
        let want = reference_forward(&x, s, &gamma, &beta, 1e-5);
        for (a, b) in y.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// Central differences of `Σ w·y` against the analytic gradients.
    #[test]
    fn backward_matches_finite_differences() {
        let s = RowShape {
            batch: 2,
            channels: 3,
            inner: 5,
        };
        let x = values(30, 7);
        let w: Vec<f32> = values(30, 99);
        let gamma = [1.5f32, -0.7, 0.3];
        let beta = [0.1f32, 0.2, -0.3];
        let eps = 1e-5;
        let objective = |x: &[f32], gamma: &[f32], beta: &[f32]| -> f64 {
            let xs: Vec<f32> = x.to_vec();
            reference_forward(&xs, s, gamma, beta, eps)
                .iter()
                .zip(&w)
                .map(|(y, &wi)| y * wi as f64)
                .sum()
        };
        let (mean, var) = channel_stats(&x, s);
        let is = inv_std(&var, eps);
        let g = backward(&x, &w, s, &mean, &is, &gamma);
        let h = 1e-2f32;
        let central = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
        let near = |what: String, analytic: f32, numeric: f64| {
            assert!(
                (numeric - analytic as f64).abs() < 2e-3,
                "{what}: {analytic} vs {numeric}"
            );
        };
        for i in [0usize, 4, 11, 17, 29] {
            let numeric = central(&|d| {
                let mut v = x.clone();
                v[i] += d;
                objective(&v, &gamma, &beta)
            });
            near(format!("dx[{i}]"), g.x[i], numeric);
        }
        for c in 0..3 {
            let numeric = central(&|d| {
                let mut v = gamma;
                v[c] += d;
                objective(&x, &v, &beta)
            });
            near(format!("dgamma[{c}]"), g.gamma[c], numeric);
            let numeric = central(&|d| {
                let mut v = beta;
                v[c] += d;
                objective(&x, &gamma, &v)
            });
            near(format!("dbeta[{c}]"), g.beta[c], numeric);
        }
    }
}
