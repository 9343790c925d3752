//! `weights`: import PyTorch state dicts into our model files.

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;

use timebalance::names::by_name;

use timebalance::device::DeviceSpec;
use timebalance::model::import::KeyLayout;
use timebalance::model::{Arch, BackboneConfig, FULL_WIDTH};
use timebalance::weights::ImportTask;

#[derive(Subcommand)]
pub enum WeightsCommand {
    /// Load a torchvision/PyTorchVideo state dict (.safetensors, .pth, .pt), check it fits
    /// the architecture and save it as a timebalance model file (.mpk).
    Import {
        file: PathBuf,
        /// r3d18, r3d18_dilated, r2plus1d18, mc3_18 or slow_r50.
        #[arg(long, value_parser = by_name::<Arch>)]
        arch: Arch,
        #[arg(long, default_value_t = FULL_WIDTH)]
        width: usize,
        /// Number of classes of the file's classifier (torchvision's Kinetics models: 400).
        #[arg(long)]
        classes: usize,
        /// torchvision or pytorchvideo.
        #[arg(long, value_parser = by_name::<KeyLayout>, default_value = "torchvision")]
        layout: KeyLayout,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
    },
}

/// Run a `weights` command.
pub fn run(what: WeightsCommand) -> Result<()> {
    match what {
        WeightsCommand::Import {
            file,
            arch,
            width,
            classes,
            layout,
            out,
            device,
        } => {
            let task = ImportTask {
                file,
                backbone: BackboneConfig::new(arch, width),
                classes,
                layout,
                out,
            };
            let written = task.run_on(device)?;
            println!("wrote {}", written.display());
            Ok(())
        }
    }
}
