//! The run's log: every line goes to standard output and is appended, time-stamped, to
//! `runs/NAME/log.txt`, so a run leaves a record whether or not anyone watched it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// A cloneable handle on the log file.
#[derive(Clone)]
pub struct RunLog {
    file: Arc<Mutex<File>>,
}

impl RunLog {
    /// Open (append to) `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening log {}", path.display()))?;
        Ok(Self {
            file: Arc::new(Mutex::new(file)),
        })
    }

    /// Print `text` and append it to the log. A failed log write is reported once on
    /// standard error and never stops the run.
    pub fn line(&self, text: &str) {
        println!("{text}");
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Ok(mut f) = self.file.lock()
            && let Err(e) = writeln!(f, "{stamp} {text}")
        {
            eprintln!("warning: cannot write the run log: {e}");
        }
    }
}
