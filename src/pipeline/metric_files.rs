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
//!
//! It also keeps `STAGE/metrics.csv`: a row per epoch and split (`epoch,split,` then every
//! metric: the epoch's mean, the learning rate's last value), rewritten atomically at each
//! epoch's end and kept across resumes — what pandas reads with `pd.read_csv`.

use std::collections::{BTreeMap, HashMap};
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
/// The per-epoch table in a stage directory.
pub const METRICS_CSV: &str = "metrics.csv";
/// Metrics reported as their latest value rather than the epoch's mean.
pub const LATEST_VALUE_METRICS: [&str; 1] = ["Learning Rate"];

/// Rows of `metrics.csv`: (epoch, split) → metric → value.
type Table = BTreeMap<(usize, String), BTreeMap<String, f64>>;

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
    /// The current epoch's values per split (split → metric → running mean or latest value).
    current: HashMap<String, BTreeMap<String, f64>>,
    /// Every finished epoch's row (the rows of earlier attempts read back on resume).
    table: Table,
    /// A write failed: training was told to stop, nothing more is written.
    failed: bool,
}

impl MetricFiles {
    /// Files under `dir` for training that starts at `first_epoch` (1, or the epoch after the
    /// checkpoint it resumes from); a failed write stops training through `interrupter`.
    pub fn new(dir: &Path, first_epoch: usize, disk: Disk, interrupter: Interrupter) -> Self {
        // Rows of epochs this run does not redo; an unreadable table starts afresh.
        let mut table = read_table(&dir.join(METRICS_CSV)).unwrap_or_default();
        table.retain(|(epoch, _), _| *epoch < first_epoch);
        Self {
            dir: dir.to_path_buf(),
            disk,
            interrupter,
            names: HashMap::new(),
            open: HashMap::new(),
            epochs: HashMap::new(),
            first_epoch,
            current: HashMap::new(),
            table,
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

    /// Stop training after a failed write (once), with the error as the reason.
    fn fail(&mut self, error: &WriteError) {
        if !self.failed {
            self.failed = true;
            self.interrupter.stop(Some(&error.to_string()));
        }
    }

    /// Rewrite `metrics.csv` from [`Self::table`].
    fn write_table(&self) -> anyhow::Result<()> {
        let mut names: Vec<&String> = self.table.values().flat_map(|row| row.keys()).collect();
        names.sort();
        names.dedup();
        let mut csv = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["epoch", "split"];
        header.extend(names.iter().map(|n| n.as_str()));
        csv.write_record(&header)?;
        for ((epoch, split), row) in &self.table {
            let mut record = vec![epoch.to_string(), split.clone()];
            record.extend(
                names
                    .iter()
                    .map(|n| row.get(*n).map(|v| v.to_string()).unwrap_or_default()),
            );
            csv.write_record(&record)?;
        }
        let bytes = csv.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        self.disk.write_atomic(&self.dir.join(METRICS_CSV), &bytes)
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
        let values = self.current.entry(split.to_string()).or_default();
        for numeric in &update.entries_numeric {
            if let Some(name) = self.names.get(&numeric.entry.metric_id) {
                let value = if LATEST_VALUE_METRICS.contains(&name.as_str()) {
                    numeric.numeric_entry.current()
                } else {
                    numeric.running_entry.current()
                };
                values.insert(name.clone(), value);
            }
        }
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
                self.fail(&WriteError::new(&path, None, e));
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

    /// `summary.epoch_number` is the Learner's own epoch (right after a resume too).
    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let split = summary.split.to_string();
        self.epochs.insert(split.clone(), summary.epoch_number + 1);
        self.open.clear();
        if let Some(values) = self.current.remove(&split)
            && !values.is_empty()
            && !self.failed
        {
            self.table.insert((summary.epoch_number, split), values);
            if let Err(e) = self.write_table() {
                let path = self.dir.join(METRICS_CSV);
                let error = match e.downcast::<WriteError>() {
                    Ok(w) => w,
                    Err(other) => WriteError::new(&path, None, std::io::Error::other(other)),
                };
                self.fail(&error);
            }
        }
    }
}

/// The rows of a `metrics.csv` written by [`MetricFiles`].
pub fn read_table(path: &Path) -> anyhow::Result<Table> {
    let mut reader = csv::Reader::from_path(path)?;
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    let mut table = Table::new();
    for record in reader.records() {
        let record = record?;
        let epoch: usize = record.get(0).unwrap_or_default().parse()?;
        let split = record.get(1).unwrap_or_default().to_string();
        let row = header
            .iter()
            .zip(record.iter())
            .skip(2)
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| Ok((n.clone(), v.parse::<f64>()?)))
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        table.insert((epoch, split), row);
    }
    Ok(table)
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
