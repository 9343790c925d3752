//! Burn's application log (its `log` records: epochs started, interruptions and their reasons,
//! backend messages) into each training stage's own `experiment.log`.
//!
//! burn-train installs its file logger as the process's global subscriber at the first
//! `launch`; every later launch fails to install its own, so all stages' records went into the
//! first stage's file. Here the run owns one [`BurnLog`] sink; each stage's `fit` points it at the
//! stage's file through [`StageLogInstaller`], and the subscriber — installed once per process,
//! by the first stage — writes wherever the sink points. (A process that runs several runs
//! keeps writing to the first run's sink; the binary runs one.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::train::ApplicationLoggerInstaller;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// A stage's Burn log file, inside the stage directory.
pub const BURN_LOG_FILE: &str = "experiment.log";

/// Where Burn's log records go: the current stage's file (none before the first stage).
#[derive(Debug, Clone, Default)]
pub struct BurnLog {
    file: Arc<Mutex<Option<File>>>,
}

impl BurnLog {
    /// Append from now on to `path` (created if missing).
    fn switch_to(&self, path: &Path) -> io::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        if let Ok(mut current) = self.file.lock() {
            *current = Some(file);
        }
        Ok(())
    }
}

/// One record's writer: appends to the sink's current file.
pub struct SinkWriter(BurnLog);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.file.lock() {
            Ok(mut current) => match current.as_mut() {
                Some(file) => file.write(buf),
                None => Ok(buf.len()),
            },
            Err(_) => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.file.lock() {
            Ok(mut current) => current.as_mut().map_or(Ok(()), |f| f.flush()),
            Err(_) => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for BurnLog {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        SinkWriter(self.clone())
    }
}

/// Handed to burn-train's `with_application_logger`: points the run's sink at one stage's file.
pub struct StageLogInstaller {
    pub sink: BurnLog,
    /// The stage's `experiment.log`.
    pub path: PathBuf,
}

impl ApplicationLoggerInstaller for StageLogInstaller {
    fn install(&self) -> Result<(), String> {
        self.sink
            .switch_to(&self.path)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(self.sink.clone())
            .with_filter(LevelFilter::INFO)
            // As burn-train's own logger: wgpu's info records would drown the rest.
            .with_filter(filter_fn(|m| {
                !(m.module_path().is_some_and(|p| p.starts_with("wgpu"))
                    && *m.level() >= LevelFilter::INFO)
            }));
        // Installed once per process; a later stage only switches the sink, so the error of a
        // second installation is expected and ignored.
        let _ = tracing_subscriber::registry().with(layer).try_init();
        Ok(())
    }
}
