//! One command per run directory: an OS file lock on `RUN/.lock`, held for the command's life
//! and released by the OS when the process ends, however it ends (a crash or `kill -9` leaves
//! no stale lock). Two commands on one run directory would both run every stage, interleave
//! the log and leave a `config.toml` that describes neither; the second one stops instead and
//! says which process holds the directory.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// The lock file in a run directory; it holds a line naming the process that holds it.
pub const LOCK_FILE: &str = ".lock";

/// The held lock of a run directory (released when dropped or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Lock `dir` for this process, or fail naming the process that holds it.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening the run lock {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                let holder = holder.trim();
                bail!(
                    "{} is in use by another command ({}); one command per run directory — wait for it to end, stop it, or give another --out",
                    dir.display(),
                    if holder.is_empty() {
                        "process unknown"
                    } else {
                        holder
                    }
                );
            }
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let command: Vec<String> = std::env::args().collect();
        file.set_len(0)
            .and_then(|()| {
                writeln!(
                    file,
                    "process {} ({}), since unix time {since}",
                    std::process::id(),
                    command.join(" ")
                )
            })
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("in use by another command")
                && err.contains(&format!("process {}", std::process::id())),
            "{err}"
        );
        drop(first);
        RunLock::acquire(dir.path()).unwrap();
    }
}
