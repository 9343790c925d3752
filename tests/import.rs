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
use timebalance::model::import::{HeadPolicy, ImportReport, KeyLayout, load_pytorch_weights};
use timebalance::model::{Arch, BackboneConfig, VideoClassifier};

type B = Autodiff<Flex>;
const DEVICE: FlexDevice = FlexDevice;
const TINY_WIDTH: usize = 8;
const TINY_CLASSES: usize = 5;

fn tiny(arch: Arch) -> VideoClassifier<B> {
    VideoClassifier::new(BackboneConfig::new(arch, TINY_WIDTH), TINY_CLASSES, &DEVICE)
}

/// Import the golden torchvision-layout R3D file (`r3d_tiny.safetensors`) into `model`,
/// every head key required.
fn import_golden_r3d(model: &mut VideoClassifier<B>) -> anyhow::Result<ImportReport> {
    load_pytorch_weights(
        model,
        &golden_dir().join("r3d_tiny.safetensors"),
        KeyLayout::Torchvision,
        HeadPolicy::Require,
    )
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
/// entries, `model_state_dict` checkpoints of other scripts and PyTorchVideo's `.pyth`
/// (`model_state`). The weights must give
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
    // PyTorchVideo's model zoo: `.pyth` files with the weights under `model_state`.
    let zoo = make_pth(
        "r3d_tiny",
        dir.path(),
        PthLayout {
            wrapper: Some("model_state"),
            ..PLAIN
        },
    );
    let pyth = zoo.with_extension("pyth");
    std::fs::rename(&zoo, &pyth).unwrap();
    assert_full_import_matches("r3d_tiny", Arch::R3d18, &pyth, &expected);
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
            .any(|k| k.ends_with("head.pretraining.fc2.weight")),
        "{:?}",
        report.ignored
    );
    // The backbone is the file's (its classifier is never loaded by a backbone-only import):
    // the same pooled features as a full import of the golden file.
    let mut reference = tiny(Arch::R3d18);
    import_golden_r3d(&mut reference).unwrap();
    let pooled = |m: &VideoClassifier<B>| {
        let x: Tensor<Flex, 5> = tensor(&read_json("r3d_tiny.json")["input"], &DEVICE);
        values(m.valid().backbone.features(x).pooled)
    };
    assert_logits_match(&pooled(&model), &pooled(&reference));
}

#[test]
fn wrong_architecture_lists_missing_and_unexpected_keys() {
    let mut model = tiny(Arch::R2plus1d18);
    let err = import_golden_r3d(&mut model).unwrap_err();
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
    let err = import_golden_r3d(&mut model).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("Shape mismatch") || msg.contains("mismatch"),
        "{msg}"
    );
    assert!(msg.contains("backbone.stem.conv.weight"), "{msg}");
}

#[test]
fn backbone_only_import_never_loads_the_files_head() {
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
        report.ignored.iter().any(|k| k.ends_with("fc.weight")),
        "{:?}",
        report.ignored
    );
    // A head whose shape fits (the file's 5 classes) is not loaded either: the model's own
    // classifier stays, so its logits differ from PyTorch's.
    let mut same_classes = tiny(Arch::R3d18);
    let before = values(same_classes.fc.weight.val());
    load_pytorch_weights(
        &mut same_classes,
        &path,
        KeyLayout::Torchvision,
        HeadPolicy::BackboneOnly,
    )
    .unwrap();
    assert_eq!(values(same_classes.fc.weight.val()), before);
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
    import_golden_r3d(&mut model).unwrap();
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

/// `--init-from` (`model.init_from`): a stage trained from scratch starts its backbone from
/// the file. The baseline trained with a vanishing learning rate keeps the file's weights
/// (compared through features with batch statistics, which the running averages that
/// training updates do not enter); a random start would not. A file that does not fit the
/// configured backbone is an error naming the stage and the mismatched keys.
#[cfg(feature = "video")]
#[test]
fn init_from_starts_a_stage_from_the_files_backbone() {
    use crate::pipeline::{run, text};

    const SYNTHETIC_CLASSES: usize = 4;
    let tmp = tempfile::tempdir().unwrap();
    let file = golden_dir().join("r3d_tiny.safetensors");
    let args = [
        "experiment",
        "synthetic",
        "--stages",
        "baseline",
        "--init-from",
        file.to_str().unwrap(),
    ];
    // The tiny experiment's width 4 does not fit the width-8 file.
    let out = run(&args, &tmp.path().join("narrow"), &[]);
    assert!(!out.status.success(), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("[baseline] model.init_from") && msg.contains("mismatches"),
        "{msg}"
    );

    let width = format!("model.width={TINY_WIDTH}");
    let out = run(
        &args,
        &tmp.path().join("fits"),
        &[width.as_str(), "baseline.lr=1e-12"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("[baseline] backbone initialised from"),
        "{}",
        text(&out)
    );
    let template = || {
        VideoClassifier::<B>::new(
            BackboneConfig::new(Arch::R3d18, TINY_WIDTH),
            SYNTHETIC_CLASSES,
            &DEVICE,
        )
    };
    let trained = load_module(
        template(),
        &tmp.path().join("fits/synthetic/baseline/model.mpk"),
        &DEVICE,
    )
    .unwrap();
    let mut imported = template();
    load_pytorch_weights(
        &mut imported,
        &file,
        KeyLayout::Torchvision,
        HeadPolicy::BackboneOnly,
    )
    .unwrap();
    let input = || -> Tensor<B, 5> { tensor(&read_json("r3d_tiny.json")["input"], &DEVICE) };
    let pooled = |m: &VideoClassifier<B>| values(m.backbone.features(input()).pooled);
    let (got, expected) = (pooled(&trained), pooled(&imported));
    assert!(
        rel_l2(&got, &expected) < 1e-6,
        "the baseline's backbone is not the file's: relative L2 {}",
        rel_l2(&got, &expected)
    );
}
