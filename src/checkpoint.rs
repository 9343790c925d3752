//! Saving and loading our own model files with Burn's recorders, atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::Backend;

use crate::disk::Disk;

/// Burn's default recorder: named MessagePack, full precision.
pub type ModelRecorder = NamedMpkFileRecorder<FullPrecisionSettings>;
/// The same encoding into memory: what [`save_module`] hands to a [`Disk`].
pub type ModelBytesRecorder = NamedMpkBytesRecorder<FullPrecisionSettings>;
/// The extension the recorder adds.
pub const MODEL_EXTENSION: &str = "mpk";

/// Write `module` to `path` (extension `.mpk`) through `disk`: durably and atomically, so
/// that a killed process never leaves a half-written model behind and a failed write is an
/// error naming the file.
pub fn save_module<B: Backend, M: Module<B>>(
    disk: &Disk,
    module: M,
    path: &Path,
) -> Result<PathBuf> {
    let final_path = path.with_extension(MODEL_EXTENSION);
    let bytes = ModelBytesRecorder::new()
        .record(module.into_record(), ())
        .with_context(|| format!("encoding model {}", final_path.display()))?;
    disk.write_atomic(&final_path, &bytes)?;
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
