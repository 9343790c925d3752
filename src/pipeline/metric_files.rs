//! The Learner's per-epoch metric files — `STAGE/train/epoch-N/<Metric>.log`, one serialized
//! value per iteration, the layout of burn-train's own file logger — written so that:
//! - a failed write (a full disk) stops training with the cause, which [`fit`](super::learner::fit)
//!   reports as the stage's error, instead of panicking in a logger thread;
//! - epochs are numbered from where training started: burn-train's event store counts epochs
//!   from 1 in every process, so after a resume from epoch 2 its logger wrote epoch 3's values
//!   into `epoch-1/` and left `epoch-3/` with the killed attempt's values;
//! - the files an epoch writes are started afresh the first time this process writes them, so a
//!   resumed epoch replaces what a killed attempt left there;
//! - every write goes through the run's [`Disk`], so tests can make one fail.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::train::Interrupter;
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use crate::disk::{Disk, WriteError};

/// Prefix of an epoch's directory (burn-train's).
const EPOCH_PREFIX: &str = "epoch-";

/// A [`MetricLogger`] writing burn-train's file layout under a stage directory.
pub struct MetricFiles {
    dir: PathBuf,
    disk: Disk,
    interrupter: Interrupter,
    names: HashMap<MetricId, String>,
    /// Files open in the current epoch, by path.
    open: HashMap<PathBuf, File>,
    /// The epoch each split is in (`Split` as text → epoch), counted from `first_epoch`.
    epochs: HashMap<String, usize>,
    first_epoch: usize,
    /// A write failed: training was told to stop, nothing more is written.
    failed: bool,
}

impl MetricFiles {
    /// Files under `dir` for training that starts at `first_epoch` (1, or the epoch after the
    /// checkpoint it resumes from); a failed write stops training through `interrupter`.
    pub fn new(dir: &Path, first_epoch: usize, disk: Disk, interrupter: Interrupter) -> Self {
        Self {
            dir: dir.to_path_buf(),
            disk,
            interrupter,
            names: HashMap::new(),
            open: HashMap::new(),
            epochs: HashMap::new(),
            first_epoch,
            failed: false,
        }
    }

    /// `dir/<split>[/<tag>]/epoch-N/<Name>.log` (spaces in names become `_`, as Burn's).
    pub fn path(dir: &Path, name: &str, epoch: usize, split: &Split) -> PathBuf {
        let split_dir = match split {
            Split::Test(Some(tag)) => dir
                .join(split.to_string())
                .join(tag.trim().replace(' ', "-").to_lowercase()),
            other => dir.join(other.to_string()),
        };
        split_dir
            .join(format!("{EPOCH_PREFIX}{epoch}"))
            .join(format!("{}.log", name.replace(' ', "_")))
    }

    fn write(&mut self, path: PathBuf, value: &str) -> std::io::Result<()> {
        self.disk.before_write(&path)?;
        if !self.open.contains_key(&path) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            // Truncated: a resumed epoch starts its files afresh.
            let file = File::create(&path)?;
            self.open.insert(path.clone(), file);
        }
        let file = self.open.get_mut(&path).expect("inserted above");
        writeln!(file, "{value}")
    }
}

impl MetricLogger for MetricFiles {
    /// `_store_epoch` is burn-train's count, which restarts at 1 in a resumed process.
    fn log(&mut self, update: MetricsUpdate, _store_epoch: usize, split: &Split) {
        let epoch = *self
            .epochs
            .entry(split.to_string())
            .or_insert(self.first_epoch);
        let entries = update
            .entries
            .iter()
            .chain(update.entries_numeric.iter().map(|n| &n.entry));
        for entry in entries {
            if self.failed {
                return;
            }
            let Some(name) = self.names.get(&entry.metric_id) else {
                continue;
            };
            let path = Self::path(&self.dir, name, epoch, split);
            if let Err(e) = self.write(path.clone(), &entry.serialized_entry.serialized) {
                self.failed = true;
                self.interrupter
                    .stop(Some(&WriteError::new(&path, None, e).to_string()));
            }
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let path = Self::path(&self.dir, name, epoch, split);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|l| NumericEntry::deserialize(l).map_err(|e| format!("{}: {e}", path.display())))
            .collect()
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        self.epochs
            .insert(summary.split.to_string(), summary.epoch_number + 1);
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_burn_train_layout() {
        let p = MetricFiles::path(Path::new("s"), "Learning Rate", 3, &Split::Train);
        assert_eq!(p, Path::new("s/train/epoch-3/Learning_Rate.log"));
    }
}
