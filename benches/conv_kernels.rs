//! The CPU convolution kernels against each other, per convolution of R3D-18: im2col + GEMM
//! (`ops::conv_kernel`), the direct kernels (`ops::conv_direct`) and Winograd F(2³, 3³)
//! (`ops::conv_winograd`), forward, input and weight gradient, on the same inputs, with the
//! kernel `Auto` runs for each pass (`conv_winograd::pays_off`, then `conv_direct::pays_off`).
//! The thresholds in `conv_direct.rs` and `conv_winograd.rs` were set from this table.
//!
//! ```sh
//! RAYON_NUM_THREADS=2 cargo bench --bench conv_kernels -- [REPS] [NAME ...]
//! ```
//! REPS: best of that many calls (default 5); NAMEs select the cases whose name contains one.
//!
//! Columns: seconds per call (best of REPS after one warm-up) of im2col, of the direct kernel
//! and of Winograd (`-` where a kernel does not apply: the direct ones without AVX2/AVX-512
//! or for a strided input gradient, Winograd outside 3×3×3 stride 1 padding 1), then `i`,
//! `d` or `w` for the kernel chosen; the last column is the largest difference of the direct
//! and Winograd results from im2col's, relative to im2col's largest value.

use std::hint::black_box;
use std::time::Instant;

use timebalance::ops::conv_direct::{self as direct, Pass};
use timebalance::ops::conv_kernel::{self as im2col, ConvGeometry};
use timebalance::ops::conv_winograd as winograd;

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

/// Which kernel `Auto` runs for a pass: `w` Winograd, `d` direct, `i` im2col.
fn chosen(g: &ConvGeometry, pass: Pass) -> char {
    if winograd::pays_off(g, pass) {
        'w'
    } else if direct::pays_off(g, pass) {
        'd'
    } else {
        'i'
    }
}

/// Largest difference from `reference` relative to its largest magnitude.
fn relative(a: &[f32], reference: &[f32]) -> f32 {
    let scale = reference
        .iter()
        .fold(0.0f32, |m, v| m.max(v.abs()))
        .max(1e-30);
    a.iter()
        .zip(reference)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// One pass's cell: seconds of each kernel that runs (`-`: it does not), the chosen kernel,
/// and the largest relative difference of the others from im2col (a check, not a timing).
fn cell(
    reps: usize,
    choice: char,
    im2col: &mut dyn FnMut() -> Vec<f32>,
    direct: Option<&mut dyn FnMut() -> Vec<f32>>,
    winograd: Option<&mut dyn FnMut() -> Vec<f32>>,
) -> (String, f32) {
    let reference = im2col();
    let a = best(reps, im2col);
    let mut worst = 0.0f32;
    let mut time = |f: Option<&mut dyn FnMut() -> Vec<f32>>| match f {
        Some(f) => {
            worst = worst.max(relative(&f(), &reference));
            format!("{:>8.4}", best(reps, f))
        }
        None => format!("{:>8}", "-"),
    };
    let (d, w) = (time(direct), time(winograd));
    (format!("{a:>8.4} {d} {w} {choice}"), worst)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let reps = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    // Other arguments select cases whose name contains one of them (`cargo bench` adds
    // `--bench`, which selects nothing).
    let filters: Vec<&String> = args
        .iter()
        .filter(|a| a.parse::<usize>().is_err() && !a.starts_with("--"))
        .collect();
    println!(
        "threads {}, best of {reps}; per pass: im2col_s direct_s winograd_s, the kernel Auto \
         runs (i/d/w); last column: largest relative difference of direct/Winograd from im2col",
        rayon::current_num_threads()
    );
    println!(
        "{:<20} {:>29} {:>29} {:>29} {:>9}",
        "convolution", "forward", "input gradient", "weight gradient", "max diff"
    );
    for (name, xs, ws, stride, padding) in CASES {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let g = ConvGeometry::new(xs, ws, stride, padding, [1, 1, 1]).expect("geometry");
        let x = values(xs.iter().product());
        let w = values(ws.iter().product());
        let dy = values(g.batch * g.c_out * g.output.iter().product::<usize>());
        let has_direct = direct::available(&g);
        let has_winograd = winograd::applies(&g);
        let (f, ef) = cell(
            reps,
            chosen(&g, Pass::Forward),
            &mut || im2col::forward(&x, &w, &g),
            has_direct.then_some(&mut || direct::forward(&x, &w, &g) as _),
            has_winograd.then_some(&mut || winograd::forward(&x, &w, &g) as _),
        );
        let (i, ei) = cell(
            reps,
            chosen(&g, Pass::InputGrad),
            &mut || im2col::input_grad(&w, &dy, &g),
            (has_direct && stride == [1, 1, 1])
                .then_some(&mut || direct::input_grad(&w, &dy, &g) as _),
            has_winograd.then_some(&mut || winograd::input_grad(&w, &dy, &g) as _),
        );
        let (d, ed) = cell(
            reps,
            chosen(&g, Pass::WeightGrad),
            &mut || im2col::weight_grad(&x, &dy, &g),
            has_direct.then_some(&mut || direct::weight_grad(&x, &dy, &g) as _),
            has_winograd.then_some(&mut || winograd::weight_grad(&x, &dy, &g) as _),
        );
        let worst = ef.max(ei).max(ed);
        println!("{name:<20} {f:>29} {i:>29} {d:>29} {worst:>9.1e}");
    }
}
