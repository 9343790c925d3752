//! Shared helpers of the integration tests: golden fixtures and tolerances.
#![allow(dead_code)]

pub mod ffmpeg;

use std::path::PathBuf;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde_json::Value;

/// README of the golden set: 1e-4 relative for losses and scores.
pub const LOSS_RTOL: f64 = 1e-4;
/// README of the golden set: 1e-4 absolute for logits.
pub const LOGIT_ATOL: f64 = 1e-4;

/// Overrides the fixture directory (another golden set, or a test binary run elsewhere).
pub const GOLDEN_DIR_ENV: &str = "TIMEBALANCE_GOLDEN_DIR";

pub fn golden_dir() -> PathBuf {
    std::env::var_os(GOLDEN_DIR_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden"))
}

pub fn read_json(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A number that may be stored as a JSON number or a string.
pub fn number(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("finite number"),
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a number: {s}")),
        other => panic!("expected a number, found {other}"),
    }
}

/// Flatten a nested JSON array into values and its shape.
pub fn flatten(v: &Value) -> (Vec<f64>, Vec<usize>) {
    fn walk(v: &Value, depth: usize, shape: &mut Vec<usize>, out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => {
                if shape.len() <= depth {
                    shape.push(items.len());
                } else {
                    assert_eq!(shape[depth], items.len(), "ragged array");
                }
                for item in items {
                    walk(item, depth + 1, shape, out);
                }
            }
            other => out.push(number(other)),
        }
    }
    let (mut out, mut shape) = (Vec::new(), Vec::new());
    walk(v, 0, &mut shape, &mut out);
    (out, shape)
}

/// A float tensor of rank D from a nested JSON array (shape checked).
pub fn tensor<B: Backend, const D: usize>(v: &Value, device: &B::Device) -> Tensor<B, D> {
    let (values, shape) = flatten(v);
    assert_eq!(shape.len(), D, "expected rank {D}, found shape {shape:?}");
    let values: Vec<f32> = values.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

pub fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// `‖a − b‖ / ‖b‖` (L2), or `‖a − b‖` when `b` is all zeros.
pub fn rel_l2(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}

/// [`rel_l2`] of `f32` values (weights read back from a model).
pub fn rel_l2_f32(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "compared values of different lengths");
    let wide = |v: &[f32]| v.iter().copied().map(f64::from).collect::<Vec<_>>();
    rel_l2(&wide(a), &wide(b))
}

pub fn assert_rel_close(actual: f64, expected: f64, rtol: f64, what: &str) {
    let err = (actual - expected).abs() / expected.abs().max(f64::MIN_POSITIVE);
    assert!(
        err <= rtol,
        "{what}: got {actual}, expected {expected} (relative error {err:.3e} > {rtol:.0e})"
    );
}

pub fn assert_all_rel_close(actual: &[f64], expected: &[f64], rtol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        // Values near zero (e.g. raw TSTR scores) are compared on the absolute scale rtol.
        let scale = e.abs().max(1.0);
        let err = (a - e).abs() / scale;
        assert!(
            err <= rtol,
            "{what}[{i}]: got {a}, expected {e} (error {err:.3e})"
        );
    }
}
