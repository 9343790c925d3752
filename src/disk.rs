//! Every file a run relies on is written through a [`Disk`]: under a hidden temporary name,
//! flushed to the device (`fsync`), renamed into place, and the directory flushed too, so a
//! killed process or a power cut leaves either the old file or the whole new one — never an
//! empty or truncated file under the final name. A failed write is an error that names the file
//! and, for a full disk, says so and how much was being written.
//!
//! # Fault injection
//! A `Disk` can be told to fail one of its writes, so that full-disk and failed-write paths
//! are tested without mounting anything: the environment variable [`FAULT_ENV`] holds
//! `PATTERN[#N]:ERROR` — the `N`-th write (1 by default) whose path contains `PATTERN` fails
//! with `ERROR` (`ENOSPC`, `ENOTDIR` or `EIO`), e.g.
//! `TIMEBALANCE_FAIL_WRITE='checkpoint/model-#2:ENOSPC'`. The plan is read once, when a command
//! starts, into the `Disk` that command hands down; nothing global counts writes.

use std::fmt;
use std::fs::File;
use std::io::{self, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};

/// The environment variable that plans an injected write failure (see the module docs).
pub const FAULT_ENV: &str = "TIMEBALANCE_FAIL_WRITE";

/// Bytes in a mebibyte, for sizes in error messages.
const MIB: f64 = 1024.0 * 1024.0;

/// Where a command writes; cheap to clone (clones share the fault plan's count).
#[derive(Debug, Clone, Default)]
pub struct Disk {
    fault: Option<Arc<Fault>>,
}

/// One planned failure: the `nth` write whose path contains `pattern` fails with `kind`.
#[derive(Debug)]
struct Fault {
    pattern: String,
    nth: usize,
    kind: ErrorKind,
    seen: AtomicUsize,
}

/// The errors a fault plan can name, with the `io::ErrorKind` each one stands for.
const FAULT_ERRORS: [(&str, ErrorKind); 3] = [
    ("ENOSPC", ErrorKind::StorageFull),
    ("ENOTDIR", ErrorKind::NotADirectory),
    ("EIO", ErrorKind::Other),
];

impl Disk {
    /// A disk whose writes fail only when the device does.
    pub fn new() -> Self {
        Self::default()
    }

    /// A disk with the fault plan of [`FAULT_ENV`], if set.
    pub fn from_env() -> Result<Self> {
        match std::env::var(FAULT_ENV) {
            Ok(spec) => Self::with_fault(&spec).with_context(|| format!("{FAULT_ENV}={spec}")),
            Err(_) => Ok(Self::new()),
        }
    }

    /// A disk that fails the write `PATTERN[#N]:ERROR` names (see the module docs).
    pub fn with_fault(spec: &str) -> Result<Self> {
        let Some((target, error)) = spec.rsplit_once(':') else {
            bail!("expected PATTERN[#N]:ERROR, e.g. labeled.txt:ENOSPC");
        };
        let kind = FAULT_ERRORS
            .iter()
            .find(|(name, _)| *name == error)
            .map(|(_, kind)| *kind)
            .with_context(|| {
                let names: Vec<&str> = FAULT_ERRORS.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown error {error:?}; expected one of {}",
                    names.join(", ")
                )
            })?;
        let (pattern, nth) = match target.rsplit_once('#') {
            Some((pattern, n)) => (
                pattern,
                n.parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .with_context(|| format!("#{n}: expected a write number ≥ 1"))?,
            ),
            None => (target, 1),
        };
        Ok(Self {
            fault: Some(Arc::new(Fault {
                pattern: pattern.to_string(),
                nth,
                kind,
                seen: AtomicUsize::new(0),
            })),
        })
    }

    /// Called before every write of `path`: the planned fault, when this is its write.
    pub fn before_write(&self, path: &Path) -> io::Result<()> {
        let Some(fault) = &self.fault else {
            return Ok(());
        };
        if !path.to_string_lossy().contains(&fault.pattern) {
            return Ok(());
        }
        if fault.seen.fetch_add(1, Ordering::SeqCst) + 1 == fault.nth {
            return Err(io::Error::new(
                fault.kind,
                format!("injected by {FAULT_ENV} ({})", describe_kind(fault.kind)),
            ));
        }
        Ok(())
    }

    /// Write `bytes` to `path` durably: a hidden temporary file ([`partial_path`]), flushed
    /// to the device, renamed into place, the directory flushed. On failure the temporary
    /// file is removed and the error names `path` (and a full disk as such).
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = partial_path(path);
        let written = (|| -> io::Result<()> {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            self.before_write(path)?;
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&tmp, path)?;
            sync_parent(path)
        })();
        written.map_err(|e| {
            // Best effort: the temporary file may not exist.
            let _ = std::fs::remove_file(&tmp);
            WriteError::new(path, Some(bytes.len()), e).into()
        })
    }
}

/// Flush `path`'s directory entry to the device, so a rename survives a power cut.
fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Hidden temporary name next to `path` (`dir/.stem.partial`) under which a file is written
/// before being renamed into place: a reader never sees a half-written file.
pub fn partial_path(path: &Path) -> PathBuf {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{stem}.partial"))
}

/// A failed write, said so that a user can act on it.
#[derive(Debug)]
pub struct WriteError {
    pub path: PathBuf,
    /// How many bytes were being written, when known.
    pub bytes: Option<usize>,
    pub source: io::Error,
}

impl WriteError {
    pub fn new(path: &Path, bytes: Option<usize>, source: io::Error) -> Self {
        Self {
            path: path.to_path_buf(),
            bytes,
            source,
        }
    }
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        if self.source.kind() == ErrorKind::StorageFull {
            write!(f, "no space left on device while writing {path}")?;
            if let Some(bytes) = self.bytes {
                write!(f, " ({:.1} MB needed)", bytes as f64 / MIB)?;
            }
            return write!(f, "; free some space and rerun: the run resumes");
        }
        write!(f, "writing {path}: {}", self.source)
    }
}

impl std::error::Error for WriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn describe_kind(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::StorageFull => "no space left on device",
        ErrorKind::NotADirectory => "not a directory",
        _ => "input/output error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_land_whole_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/a.txt");
        Disk::new().write_atomic(&path, b"one").unwrap();
        Disk::new().write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert!(!partial_path(&path).exists());
    }

    #[test]
    fn the_planned_write_fails_and_the_old_file_survives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labeled.txt");
        let disk = Disk::with_fault("labeled.txt#2:ENOSPC").unwrap();
        disk.write_atomic(&path, b"first").unwrap();
        let err = disk.write_atomic(&path, &[0; 3 * 1024 * 1024]).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("no space left on device while writing")
                && text.contains("labeled.txt")
                && text.contains("3.0 MB needed"),
            "{text}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert!(!partial_path(&path).exists());
        // Only the planned write fails; other paths never count.
        disk.write_atomic(&path, b"third").unwrap();
        disk.write_atomic(&dir.path().join("other"), b"x").unwrap();
    }

    #[test]
    fn fault_plans_are_checked() {
        for bad in ["labeled.txt", "x:ENOSPACE", "x#0:EIO", "x#a:EIO"] {
            assert!(Disk::with_fault(bad).is_err(), "{bad}");
        }
        let disk = Disk::with_fault("#1:ENOTDIR").unwrap();
        let err = disk.before_write(Path::new("any")).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotADirectory);
    }
}
