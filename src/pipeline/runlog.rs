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
    /// Whether lines are also printed (false for side logs of many short fits, which
    /// would bury the run's own lines).
    echo: bool,
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
            echo: true,
        })
    }

    /// Open (append to) `path` as a side log: lines go to the file only.
    pub fn open_quiet(path: &Path) -> Result<Self> {
        Ok(Self {
            echo: false,
            ..Self::open(path)?
        })
    }

    /// Print `text` and append it to the log. A failed log write is reported once on
    /// standard error and never stops the run.
    pub fn line(&self, text: &str) {
        if self.echo {
            println!("{text}");
        }
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
