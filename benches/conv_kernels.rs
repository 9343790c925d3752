//! The CPU convolution kernels against each other, per convolution of R3D-18: im2col + GEMM
//! (`ops::conv_kernel`) and the direct kernels (`ops::conv_direct`), forward, input and
//! weight gradient, on the same inputs, with the pass each one is chosen for
//! (`conv_direct::pays_off`). The thresholds in `conv_direct.rs` were set from this table.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo bench --bench conv_kernels -- [REPS]   # best of REPS (default 5)
//! ```
//!
//! Columns: seconds per call (best of REPS after one warm-up) of im2col and of the direct
//! kernel, and their ratio (above 1: direct faster); `*` marks the pass `Auto` runs direct.
//! A strided kernel has no direct input gradient (`-`). Without AVX2/AVX-512 only im2col runs.

use std::hint::black_box;
use std::time::Instant;

use timebalance::ops::conv_direct::{self as direct, Pass};
use timebalance::ops::conv_kernel::{self as im2col, ConvGeometry};

/// One convolution: name, input `[N, C, T, H, W]`, weight, stride, padding.
type Case = (&'static str, [usize; 5], [usize; 5], [usize; 3], [usize; 3]);

/// R3D-18's convolutions at width 8 (16 × 32², batch 80: the demo's regime) and width 64
/// (8 × 112², batch 2).
const CASES: [Case; 14] = [
    (
        "w8 stem",
        [80, 3, 16, 32, 32],
        [8, 3, 3, 7, 7],
        [1, 2, 2],
        [1, 3, 3],
    ),
    (
        "w8 stage 1",
        [80, 8, 16, 16, 16],
        [8, 8, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w8 stage 2 entry",
        [80, 8, 16, 16, 16],
        [16, 8, 3, 3, 3],
        [2, 2, 2],
        [1, 1, 1],
    ),
    (
        "w8 stage 2",
        [80, 16, 8, 8, 8],
        [16, 16, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w8 stage 3",
        [80, 32, 4, 4, 4],
        [32, 32, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w8 stage 4",
        [80, 64, 2, 2, 2],
        [64, 64, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w64 stem",
        [2, 3, 8, 112, 112],
        [64, 3, 3, 7, 7],
        [1, 2, 2],
        [1, 3, 3],
    ),
    (
        "w64 stage 1",
        [2, 64, 8, 56, 56],
        [64, 64, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w64 stage 2 entry",
        [2, 64, 8, 56, 56],
        [128, 64, 3, 3, 3],
        [2, 2, 2],
        [1, 1, 1],
    ),
    (
        "w64 stage 2",
        [2, 128, 4, 28, 28],
        [128, 128, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w64 stage 3",
        [2, 256, 2, 14, 14],
        [256, 256, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "w64 stage 4",
        [2, 512, 1, 7, 7],
        [512, 512, 3, 3, 3],
        [1, 1, 1],
        [1, 1, 1],
    ),
    (
        "r2+1d w8 spatial",
        [80, 8, 16, 16, 16],
        [18, 8, 1, 3, 3],
        [1, 1, 1],
        [0, 1, 1],
    ),
    (
        "r2+1d w8 temporal",
        [80, 18, 16, 16, 16],
        [8, 18, 3, 1, 1],
        [1, 1, 1],
        [1, 0, 0],
    ),
];

fn values(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (i * 7919 % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// Best of `reps` timed calls after one warm-up, in seconds.
fn best(reps: usize, mut f: impl FnMut() -> Vec<f32>) -> f64 {
    black_box(f());
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let reps = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    println!(
        "threads {}, best of {reps}; per pass: im2col_s direct_s speed-up (* = chosen)",
        rayon::current_num_threads()
    );
    println!(
        "{:<20} {:>28} {:>28} {:>28}",
        "convolution", "forward", "input gradient", "weight gradient"
    );
    for (name, xs, ws, stride, padding) in CASES {
        let g = ConvGeometry::new(xs, ws, stride, padding, [1, 1, 1]).expect("geometry");
        let x = values(xs.iter().product());
        let w = values(ws.iter().product());
        let dy = values(g.batch * g.c_out * g.output.iter().product::<usize>());
        let cell = |pass: Pass,
                    slow: &mut dyn FnMut() -> Vec<f32>,
                    fast: &mut dyn FnMut() -> Vec<f32>| {
            let a = best(reps, slow);
            let runs = direct::available(&g) && (pass != Pass::InputGrad || stride == [1, 1, 1]);
            if !runs {
                return format!("{a:>9.4} {:>9} {:>6}  ", "-", "-");
            }
            let b = best(reps, fast);
            let mark = if direct::pays_off(&g, pass) { '*' } else { ' ' };
            format!("{a:>9.4} {b:>9.4} {:>6.2}{mark} ", a / b)
        };
        let f = cell(
            Pass::Forward,
            &mut || im2col::forward(&x, &w, &g),
            &mut || direct::forward(&x, &w, &g),
        );
        let i = cell(
            Pass::InputGrad,
            &mut || im2col::input_grad(&w, &dy, &g),
            &mut || direct::input_grad(&w, &dy, &g),
        );
        let d = cell(
            Pass::WeightGrad,
            &mut || im2col::weight_grad(&x, &dy, &g),
            &mut || direct::weight_grad(&x, &dy, &g),
        );
        println!("{name:<20} {f:>28} {i:>28} {d:>28}");
    }
}
