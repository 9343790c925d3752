//! Weights import from safetensors and real `.pth` files, error reporting, and our own
//! checkpoints round-tripping.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use burn::backend::flex::FlexDevice;
use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use timebalance::checkpoint::{load_module, save_module};
use timebalance::disk::Disk;
use timebalance::model::import::{HeadPolicy, KeyLayout, load_pytorch_weights};
use timebalance::model::{Arch, BackboneConfig, VideoClassifier};

type B = Autodiff<Flex>;
const DEVICE: FlexDevice = FlexDevice;
const TINY_WIDTH: usize = 8;
const TINY_CLASSES: usize = 5;

fn tiny(arch: Arch) -> VideoClassifier<B> {
    VideoClassifier::new(BackboneConfig::new(arch, TINY_WIDTH), TINY_CLASSES, &DEVICE)
}

fn logits(model: &VideoClassifier<B>, name: &str) -> Vec<f64> {
    let reference = read_json(&format!("{name}.json"));
    let x: Tensor<Flex, 5> = tensor(&reference["input"], &DEVICE);
    values(model.valid().forward(x))
}

fn golden_logits(name: &str) -> Vec<f64> {
    flatten(&read_json(&format!("{name}.json"))["logits"]).0
}

fn assert_logits_match(actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() <= LOGIT_ATOL, "got {a}, expected {e}");
    }
}

/// A full (head included) torchvision-layout import of `path` gives PyTorch's logits.
fn assert_full_import_matches(name: &str, arch: Arch, path: &Path, expected: &[f64]) {
    let mut model = tiny(arch);
    load_pytorch_weights(
        &mut model,
        path,
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    assert_logits_match(&logits(&model, name), expected);
}

/// How a `.pth` file made from a golden safetensors file is laid out.
#[derive(Clone, Copy)]
struct PthLayout<'a> {
    /// Nest the state dict in a training checkpoint under this key.
    wrapper: Option<&'a str>,
    /// Prepended to every key.
    prefix: &'a str,
    /// Add a toy projection head under this prefix (the releases' `module.1.`).
    head: Option<&'a str>,
}

const PLAIN: PthLayout = PthLayout {
    wrapper: None,
    prefix: "",
    head: None,
};

/// Convert a golden safetensors file into a real PyTorch zip file with the test tool.
fn make_pth(name: &str, dir: &Path, layout: PthLayout) -> PathBuf {
    let out = dir.join(format!(
        "{name}-{}-{}-{}.pth",
        layout.wrapper.unwrap_or("plain"),
        layout.prefix.replace('.', "_"),
        layout
            .head
            .map_or("nohead".to_string(), |h| h.replace('.', "_"))
    ));
    let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tools/safetensors_to_pth.py");
    let mut cmd = Command::new("python3");
    cmd.arg(tool)
        .arg(golden_dir().join(format!("{name}.safetensors")))
        .arg(&out)
        .args(["--prefix", layout.prefix]);
    if let Some(w) = layout.wrapper {
        cmd.args(["--checkpoint", "--wrapper", w]);
    }
    if let Some(h) = layout.head {
        cmd.args(["--head", h]);
    }
    let status = cmd.status().expect("python3 runs");
    assert!(status.success(), "safetensors_to_pth.py failed");
    out
}

#[test]
fn pth_state_dict_and_checkpoint_import_like_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, arch) in [
        ("r3d_tiny", Arch::R3d18),
        ("r2plus1d_tiny", Arch::R2plus1d18),
    ] {
        let expected = golden_logits(name);
        let checkpoint = PthLayout {
            wrapper: Some("state_dict"),
            prefix: "module.",
            head: None,
        };
        for layout in [PLAIN, checkpoint] {
            let path = make_pth(name, dir.path(), layout);
            assert_full_import_matches(name, arch, &path, &expected);
        }
    }
}

/// The official TCLR/TimeBalance checkpoints: `nn.Sequential(backbone, projection_head)`
/// under `DataParallel` (`module.0.` / `module.1.`) in a `state_dict` checkpoint with other
/// entries, and `model_state_dict` checkpoints of other scripts. The weights must give
/// PyTorch's logits; the projection head is skipped by a backbone-only import and named by
/// a full one.
#[test]
fn release_checkpoint_layouts_import() {
    let dir = tempfile::tempdir().unwrap();
    let expected = golden_logits("r3d_tiny");
    for (wrapper, prefix) in [
        ("state_dict", "module.0."),
        ("model_state_dict", "0."),
        ("model_state_dict", ""),
    ] {
        let layout = PthLayout {
            wrapper: Some(wrapper),
            prefix,
            head: None,
        };
        let path = make_pth("r3d_tiny", dir.path(), layout);
        assert_full_import_matches("r3d_tiny", Arch::R3d18, &path, &expected);
    }
    let pretraining = PthLayout {
        wrapper: Some("state_dict"),
        prefix: "module.0.",
        head: Some("module.1."),
    };
    let path = make_pth("r3d_tiny", dir.path(), pretraining);
    let err = load_pytorch_weights(
        &mut tiny(Arch::R3d18),
        &path,
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains("head.pretraining.fc1.weight"),
        "{err:#}"
    );
    let mut model = tiny(Arch::R3d18);
    let report = load_pytorch_weights(
        &mut model,
        &path,
        KeyLayout::Torchvision,
        HeadPolicy::BackboneOnly,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        report
            .ignored
            .iter()
            .any(|k| k == "head.pretraining.fc2.weight"),
        "{:?}",
        report.ignored
    );
    assert_logits_match(&logits(&model, "r3d_tiny"), &expected);
}

#[test]
fn wrong_architecture_lists_missing_and_unexpected_keys() {
    let mut model = tiny(Arch::R2plus1d18);
    let err = load_pytorch_weights(
        &mut model,
        &golden_dir().join("r3d_tiny.safetensors"),
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("r3d_tiny.safetensors"), "{msg}");
    assert!(msg.contains("missing in file"), "{msg}");
    assert!(msg.contains("temporal"), "names a missing key: {msg}");
    assert!(msg.contains("mismatch"), "reports shape mismatches: {msg}");
}

#[test]
fn wrong_width_reports_shape_mismatch() {
    let mut model =
        VideoClassifier::<B>::new(BackboneConfig::new(Arch::R3d18, 16), TINY_CLASSES, &DEVICE);
    let err = load_pytorch_weights(
        &mut model,
        &golden_dir().join("r3d_tiny.safetensors"),
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("Shape mismatch") || msg.contains("mismatch"),
        "{msg}"
    );
    assert!(msg.contains("backbone.stem.conv.weight"), "{msg}");
}

#[test]
fn backbone_only_import_ignores_a_different_head() {
    let mut model =
        VideoClassifier::<B>::new(BackboneConfig::new(Arch::R3d18, TINY_WIDTH), 3, &DEVICE);
    let path = golden_dir().join("r3d_tiny.safetensors");
    assert!(
        load_pytorch_weights(
            &mut model,
            &path,
            KeyLayout::Torchvision,
            HeadPolicy::Require
        )
        .is_err()
    );
    let mut model =
        VideoClassifier::<B>::new(BackboneConfig::new(Arch::R3d18, TINY_WIDTH), 3, &DEVICE);
    let report = load_pytorch_weights(
        &mut model,
        &path,
        KeyLayout::Torchvision,
        HeadPolicy::BackboneOnly,
    )
    .unwrap();
    assert!(
        report.ignored.iter().any(|k| k.starts_with("fc.")),
        "{:?}",
        report.ignored
    );
}

#[test]
fn missing_and_unknown_files_are_clear_errors() {
    let mut model = tiny(Arch::R3d18);
    let err = load_pytorch_weights(
        &mut model,
        Path::new("/nonexistent/weights.safetensors"),
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/weights.safetensors"));
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("weights.onnx");
    std::fs::write(&odd, b"x").unwrap();
    let err = load_pytorch_weights(
        &mut model,
        &odd,
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("unknown extension"), "{err:#}");
}

#[test]
fn our_checkpoint_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = tiny(Arch::R3d18);
    load_pytorch_weights(
        &mut model,
        &golden_dir().join("r3d_tiny.safetensors"),
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
    .unwrap();
    let before = logits(&model, "r3d_tiny");
    let path = save_module(&Disk::new(), model, &dir.path().join("model")).unwrap();
    assert!(path.exists());
    // No temporary file is left behind by the atomic write.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty());
    let fresh = tiny(Arch::R3d18);
    let loaded = load_module(fresh, &path, &DEVICE).unwrap();
    assert_eq!(logits(&loaded, "r3d_tiny"), before);
}

#[test]
fn fresh_model_saved_and_loaded_gives_the_same_outputs() {
    // Burn initialises parameters lazily: a fresh model must save the weights it uses.
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(Arch::Mc3_18);
    let before = logits(&model, "r3d_tiny");
    let path = save_module(&Disk::new(), model, &dir.path().join("fresh")).unwrap();
    let loaded = load_module(tiny(Arch::Mc3_18), &path, &DEVICE).unwrap();
    assert_eq!(logits(&loaded, "r3d_tiny"), before);
}
