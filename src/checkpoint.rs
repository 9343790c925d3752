//! Saving and loading our own model files with Burn's recorders, atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;

/// Burn's default recorder: named MessagePack, full precision.
pub type ModelRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;
/// The extension the recorder adds.
pub const MODEL_EXTENSION: &str = "mpk";

/// Write `module` to `path` (extension `.mpk`) through a temporary file and a rename, so
/// that a killed process never leaves a half-written model behind.
pub fn save_module<B: Backend, M: Module<B>>(module: M, path: &Path) -> Result<PathBuf> {
    let final_path = path.with_extension(MODEL_EXTENSION);
    let tmp_base = partial_path(&final_path);
    if let Some(dir) = final_path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
    }
    ModelRecorder::new()
        .record(module.into_record(), tmp_base.clone())
        .with_context(|| format!("writing model {}", final_path.display()))?;
    let tmp_file = tmp_base.with_extension(MODEL_EXTENSION);
    std::fs::rename(&tmp_file, &final_path)
        .with_context(|| format!("moving {} to {}", tmp_file.display(), final_path.display()))?;
    Ok(final_path)
}

/// Load weights recorded by [`save_module`] into a module of the same structure.
pub fn load_module<B: Backend, M: Module<B>>(
    module: M,
    path: &Path,
    device: &B::Device,
) -> Result<M> {
    let path = path.with_extension(MODEL_EXTENSION);
    let record = ModelRecorder::new()
        .load(path.clone(), device)
        .with_context(|| format!("reading model {}", path.display()))?;
    Ok(module.load_record(record))
}

/// Hidden temporary name next to `path` (`dir/.stem.partial`) under which a file is written
/// before being renamed into place: a reader never sees a half-written file.
pub fn partial_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{stem}.partial"))
}

/// Write `bytes` to `path` through [`partial_path`] and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = partial_path(path);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
