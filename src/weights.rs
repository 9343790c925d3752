//! Weights import as a task on any device (`timebalance weights import`).

use std::path::PathBuf;

use anyhow::Result;
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::save_module;
use crate::device::{BackendTask, DeviceSpec, dispatch};
use crate::disk::Disk;
use crate::model::import::{HeadPolicy, KeyLayout, load_pytorch_weights};
use crate::model::{BackboneConfig, VideoClassifier};

/// Import a PyTorch state dict into a [`VideoClassifier`] and save it as our model file.
pub struct ImportTask {
    pub file: PathBuf,
    pub backbone: BackboneConfig,
    pub classes: usize,
    pub layout: KeyLayout,
    pub out: PathBuf,
}

impl ImportTask {
    /// Run on the backend `device` names; not generic, so compiled once, in the library
    /// (see [`crate::device`]).
    pub fn run_on(self, device: DeviceSpec) -> Result<PathBuf> {
        dispatch(device, self)
    }
}

impl BackendTask for ImportTask {
    type Output = PathBuf;

    fn run<B: AutodiffBackend>(self, device: B::Device) -> Result<PathBuf> {
        let mut model = VideoClassifier::<B>::new(self.backbone, self.classes, &device);
        let report =
            load_pytorch_weights(&mut model, &self.file, self.layout, HeadPolicy::Require)?;
        eprintln!(
            "imported {} tensors from {} ({} ignored: {})",
            report.applied,
            self.file.display(),
            report.ignored.len(),
            report.ignored.join(", ")
        );
        save_module(&Disk::from_env()?, model, &self.out)
    }
}
