//! Import of PyTorch weights: torchvision `VideoResNet` and PyTorchVideo `slow_r50`
//! state dicts, from `.safetensors` or `.pth`/`.pt` files.
//!
//! Keys keep their PyTorch names in the file; regex rules map them onto our module paths
//! and burn-store's `PyTorchToBurnAdapter` transposes linear weights and renames
//! batch-norm `weight`/`bias` to `gamma`/`beta`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::store::{
    ApplyError, ApplyResult, KeyRemapper, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::backend::Backend;

/// PyTorch batch norm's step counter: kept in state dicts, not a parameter.
pub const BATCH_COUNTER_SUFFIX: &str = "num_batches_tracked";
/// Keys PyTorch keeps in a state dict that have no parameter counterpart.
const IGNORED_KEY_SUFFIXES: &[&str] = &[BATCH_COUNTER_SUFFIX];
/// Prefixes of checkpoint keys written by `DataParallel`/`DistributedDataParallel`.
const WRAPPER_PREFIX_RULE: (&str, &str) = (r"^module\.", "");
/// The official TCLR and TimeBalance releases' pre-training checkpoints hold
/// `nn.Sequential(backbone, projection_head)`: backbone keys under `0.` (TimeBalance wraps
/// PyTorchVideo's `slow_r50` as `0.r3d50.`), the projection head under `1.`. The backbone's
/// keys are then torchvision's (TCLR's R3D-18) or PyTorchVideo's (TimeBalance's R3D-50); the
/// projection head is not part of a classifier and is named as a head, so a backbone-only
/// import skips it and a full import reports it.
const RELEASE_PREFIX_RULES: &[(&str, &str)] = &[
    (r"^0\.r3d50\.", ""),
    (r"^0\.", ""),
    (r"^1\.", "head.pretraining."),
];
/// The keys under which training checkpoints keep the state dict (the releases and most
/// PyTorch scripts: `state_dict`; others `model_state_dict`; PyTorchVideo's model zoo
/// `.pyth` files, `model_state`).
const CHECKPOINT_STATE_KEYS: [&str; 3] = ["state_dict", "model_state_dict", "model_state"];
/// Extensions of PyTorch pickle/zip files (`.pyth`: PyTorchVideo's model zoo).
const PYTORCH_EXTENSIONS: [&str; 5] = ["pth", "pt", "pyth", "bin", "ckpt"];
/// Our parameter paths of the classifier (not present in a backbone-only file).
const HEAD_PREFIXES: &[&str] = &["fc.", "head."];
/// A backbone-only import renames every head key of the file under a path no model has, so
/// that a head whose shape happens to fit (the same class count) is still not loaded.
const SKIPPED_HEAD_RULE: (&str, &str) = (r"^(fc|head)\.", "head.skipped.$1.");

/// torchvision `VideoResNet` key names → our module paths.
const TORCHVISION_RULES: &[(&str, &str)] = &[
    (r"^stem\.0\.", "backbone.stem.conv."),
    (r"^stem\.1\.", "backbone.stem.bn."),
    (r"^stem\.3\.", "backbone.stem.conv_t."),
    (r"^stem\.4\.", "backbone.stem.bn_t."),
    (r"^(layer\d\.\d+)\.(conv\d)\.0\.0\.", "backbone.$1.$2.conv."),
    (
        r"^(layer\d\.\d+)\.(conv\d)\.0\.1\.",
        "backbone.$1.$2.mid_bn.",
    ),
    (
        r"^(layer\d\.\d+)\.(conv\d)\.0\.3\.",
        "backbone.$1.$2.temporal.",
    ),
    (r"^(layer\d\.\d+)\.(conv\d)\.0\.", "backbone.$1.$2.conv."),
    (r"^(layer\d\.\d+)\.conv(\d)\.1\.", "backbone.$1.bn$2."),
    (
        r"^(layer\d\.\d+)\.downsample\.0\.",
        "backbone.$1.downsample.conv.",
    ),
    (
        r"^(layer\d\.\d+)\.downsample\.1\.",
        "backbone.$1.downsample.bn.",
    ),
];

/// PyTorch batch norm's affine parameters are Burn's `gamma`/`beta` (applied after the
/// layout rules, to every batch-norm path of our modules).
const BATCH_NORM_RULES: &[(&str, &str)] = &[
    (
        r"^(.+\.(?:bn|bn1|bn2|bn_t|mid_bn|norm|norm_a|norm_b|norm_c|branch1_norm))\.weight$",
        "$1.gamma",
    ),
    (
        r"^(.+\.(?:bn|bn1|bn2|bn_t|mid_bn|norm|norm_a|norm_b|norm_c|branch1_norm))\.bias$",
        "$1.beta",
    ),
];

/// PyTorchVideo `slow_r50` key names → our module paths.
const PYTORCHVIDEO_SLOW_RULES: &[(&str, &str)] = &[
    (r"^blocks\.0\.conv\.", "backbone.stem.conv."),
    (r"^blocks\.0\.norm\.", "backbone.stem.norm."),
    (r"^blocks\.1\.res_blocks\.", "backbone.res2."),
    (r"^blocks\.2\.res_blocks\.", "backbone.res3."),
    (r"^blocks\.3\.res_blocks\.", "backbone.res4."),
    (r"^blocks\.4\.res_blocks\.", "backbone.res5."),
    (r"^(backbone\.res\d\.\d+)\.branch2\.", "$1."),
    (r"^blocks\.5\.proj\.", "fc."),
];

/// Which naming scheme the file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyLayout {
    /// torchvision `VideoResNet` (`stem.0.weight`, `layer1.0.conv1.0.weight`, `fc.weight`).
    Torchvision,
    /// PyTorchVideo `slow_r50` (`blocks.0.conv.weight`, …, `blocks.5.proj.weight`).
    Pytorchvideo,
}

impl KeyLayout {
    fn remapper(self, heads: HeadPolicy) -> Result<KeyRemapper> {
        let specific = match self {
            KeyLayout::Torchvision => TORCHVISION_RULES,
            KeyLayout::Pytorchvideo => PYTORCHVIDEO_SLOW_RULES,
        };
        let skip_heads = (heads == HeadPolicy::BackboneOnly).then_some(SKIPPED_HEAD_RULE);
        let rules: Vec<(&str, &str)> = std::iter::once(WRAPPER_PREFIX_RULE)
            .chain(RELEASE_PREFIX_RULES.iter().copied())
            .chain(specific.iter().copied())
            .chain(BATCH_NORM_RULES.iter().copied())
            .chain(skip_heads)
            .collect();
        Ok(KeyRemapper::from_patterns(rules)?)
    }
}

/// What to do with the classifier weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPolicy {
    /// Every parameter, classifier included, must be in the file.
    Require,
    /// Load the backbone only: classifier keys missing from the model or the file are fine.
    BackboneOnly,
}

/// What an import applied.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub applied: usize,
    /// File keys deliberately not used (e.g. `num_batches_tracked`, a skipped head).
    pub ignored: Vec<String>,
}

/// Load PyTorch weights into `model` (a [`crate::model::VideoClassifier`] or any module
/// whose paths start with `backbone.`/`fc.`), failing with a list of every missing and
/// unexpected key and every shape mismatch.
pub fn load_pytorch_weights<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    layout: KeyLayout,
    heads: HeadPolicy,
) -> Result<ImportReport> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !path.exists() {
        bail!("weights file {} does not exist", path.display());
    }
    let result = match extension.as_str() {
        "safetensors" => {
            let mut store = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .skip_enum_variants(true)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false)
                .remap(layout.remapper(heads)?);
            model
                .load_from(&mut store)
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("reading safetensors file {}", path.display()))?
        }
        e if PYTORCH_EXTENSIONS.contains(&e) => load_pth(model, path, layout, heads)?,
        other => bail!(
            "weights file {}: unknown extension {other:?}; expected .safetensors, .pth, .pt or .pyth",
            path.display()
        ),
    };
    check_result(&result, path, heads)
}

fn load_pth<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    model: &mut M,
    path: &Path,
    layout: KeyLayout,
    heads: HeadPolicy,
) -> Result<ApplyResult> {
    let open = |top: Option<&str>| -> Result<PytorchStore> {
        let mut store = PytorchStore::from_file(path)
            .skip_enum_variants(true)
            .map_indices_contiguous(false)
            .allow_partial(true)
            .validate(false);
        if let Some(key) = top {
            store = store.with_top_level_key(key);
        }
        Ok(store.remap(layout.remapper(heads)?))
    };
    let mut store = open(None)?;
    let keys = store
        .keys()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading PyTorch file {}", path.display()))?;
    // A training checkpoint nests the state dict under one of CHECKPOINT_STATE_KEYS (beside
    // plain entries: epoch, optimizer, …); a plain state dict has parameter keys.
    let wrapper = CHECKPOINT_STATE_KEYS.into_iter().find(|w| {
        let prefix = format!("{w}.");
        keys.iter().any(|k| k.starts_with(&prefix))
            && keys
                .iter()
                .all(|k| k.starts_with(&prefix) || !k.contains('.'))
    });
    if let Some(w) = wrapper {
        store = open(Some(w))?;
    } else if keys.is_empty() {
        store = open(Some(CHECKPOINT_STATE_KEYS[0]))?;
    }
    model
        .load_from(&mut store)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading PyTorch file {}", path.display()))
}

fn is_head(path: &str) -> bool {
    HEAD_PREFIXES.iter().any(|p| path.starts_with(p))
}

fn check_result(result: &ApplyResult, path: &Path, heads: HeadPolicy) -> Result<ImportReport> {
    let tolerated = |key: &str| {
        IGNORED_KEY_SUFFIXES.iter().any(|s| key.ends_with(s))
            || (heads == HeadPolicy::BackboneOnly && is_head(key))
    };
    let missing: Vec<&str> = result
        .missing
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !(heads == HeadPolicy::BackboneOnly && is_head(p)))
        .collect();
    let (ignored, unexpected): (Vec<&String>, Vec<&String>) =
        result.unused.iter().partition(|k| tolerated(k));
    let errors: Vec<String> = result
        .errors
        .iter()
        .filter(|e| !(heads == HeadPolicy::BackboneOnly && is_head(error_path(e))))
        .map(|e| e.to_string())
        .collect();
    if missing.is_empty() && unexpected.is_empty() && errors.is_empty() {
        let skipped_head = result
            .errors
            .iter()
            .map(error_path)
            .filter(|p| is_head(p))
            .map(str::to_string);
        return Ok(ImportReport {
            applied: result.applied.len(),
            ignored: ignored.into_iter().cloned().chain(skipped_head).collect(),
        });
    }
    let mut msg = format!("weights file {} does not fit the model:", path.display());
    if !missing.is_empty() {
        msg.push_str(&format!(
            "\n  missing in file ({}): {}",
            missing.len(),
            missing.join(", ")
        ));
    }
    if !unexpected.is_empty() {
        let list: Vec<&str> = unexpected.iter().map(|s| s.as_str()).collect();
        msg.push_str(&format!(
            "\n  unexpected keys ({}): {}",
            list.len(),
            list.join(", ")
        ));
    }
    if !errors.is_empty() {
        msg.push_str(&format!(
            "\n  mismatches ({}): {}",
            errors.len(),
            errors.join("; ")
        ));
    }
    bail!(msg)
}

fn error_path(error: &ApplyError) -> &str {
    match error {
        ApplyError::ShapeMismatch { path, .. }
        | ApplyError::DTypeMismatch { path, .. }
        | ApplyError::AdapterError { path, .. }
        | ApplyError::LoadError { path, .. } => path,
    }
}
