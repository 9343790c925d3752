//! Class-balanced, seeded split of the training set into a small labeled
//! subset and the unlabeled remainder, persisted to a text file so that a run
//! (and its resume) always sees the same labeled videos.
//!
//! # File format
//!
//! ```text
//! # timebalance labeled subset
//! # amount: fraction 0.01        (or: per_class 5)
//! # seed: 42
//! # count: 101
//! ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi
//! ...
//! ```
//!
//! Each non-comment line is a labeled video path relative to the longest
//! common directory of all training paths (for the official layouts that is
//! the video root), written with `/` separators. Storing relative paths keeps
//! the file valid when the dataset is moved to another machine. The header is
//! optional when loading, so hand-written lists are accepted too.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Component, Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::datasets::VideoEntry;
use crate::disk::Disk;

/// First header line written by [`Partition::save`].
const HEADER_TITLE: &str = "# timebalance labeled subset";
/// Header key for the labeled amount.
const KEY_AMOUNT: &str = "amount:";
/// Header key for the seed.
const KEY_SEED: &str = "seed:";
/// Header key for the number of labeled videos.
const KEY_COUNT: &str = "count:";
/// Amount kind written for [`LabeledAmount::Fraction`].
const AMOUNT_FRACTION: &str = "fraction";
/// Amount kind written for [`LabeledAmount::PerClass`].
const AMOUNT_PER_CLASS: &str = "per_class";
/// Tolerance when comparing a stored fraction with a requested one (the file
/// stores the shortest round-trip representation, so this only absorbs
/// hand-edited values like `0.1` vs `0.10000001`).
const FRACTION_TOLERANCE: f64 = 1e-9;

/// How many training videos per class get a label.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabeledAmount {
    /// `round(fraction · n_c)` videos of class `c`, clamped to `[1, n_c]`.
    Fraction(f64),
    /// `min(k, n_c)` videos of class `c`.
    PerClass(usize),
}

impl LabeledAmount {
    /// Number of labeled videos for a class with `n` training videos (`n ≥ 1`).
    fn count_for(self, n: usize) -> usize {
        match self {
            Self::Fraction(f) => ((f * n as f64).round() as usize).clamp(1, n),
            Self::PerClass(k) => k.min(n),
        }
    }

    fn validate(self) -> Result<()> {
        match self {
            Self::Fraction(f) if !(f > 0.0 && f <= 1.0) => Err(PartitionError::InvalidAmount(
                format!("fraction {f} must be in (0, 1]"),
            )),
            Self::PerClass(0) => Err(PartitionError::InvalidAmount(
                "per-class count must be at least 1".into(),
            )),
            _ => Ok(()),
        }
    }

    fn same_as(self, other: Self) -> bool {
        match (self, other) {
            (Self::Fraction(a), Self::Fraction(b)) => (a - b).abs() <= FRACTION_TOLERANCE,
            (Self::PerClass(a), Self::PerClass(b)) => a == b,
            _ => false,
        }
    }

    fn to_header(self) -> String {
        match self {
            Self::Fraction(f) => format!("{AMOUNT_FRACTION} {f}"),
            Self::PerClass(k) => format!("{AMOUNT_PER_CLASS} {k}"),
        }
    }

    fn from_header(text: &str) -> Option<Self> {
        let (kind, value) = text.trim().split_once(char::is_whitespace)?;
        match kind {
            AMOUNT_FRACTION => value.trim().parse().ok().map(Self::Fraction),
            AMOUNT_PER_CLASS => value.trim().parse().ok().map(Self::PerClass),
            _ => None,
        }
    }
}

/// Indices into the training list, split into labeled and unlabeled.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    /// Labeled training videos, ascending.
    pub labeled: Vec<usize>,
    /// All other training videos, ascending.
    pub unlabeled: Vec<usize>,
    /// How the subset was drawn (`None` for a file without header).
    pub amount: Option<LabeledAmount>,
    /// Seed it was drawn with (`None` for a file without header).
    pub seed: Option<u64>,
}

/// Errors while building, saving or loading a partition.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// The requested amount is unusable.
    #[error("invalid labeled amount: {0}")]
    InvalidAmount(String),
    /// A training entry has a label outside `0..num_classes`.
    #[error("training video {index} ({path}) has label {label}, expected < {num_classes}")]
    LabelOutOfRange {
        /// Index into the training list.
        index: usize,
        /// Video path.
        path: PathBuf,
        /// Its label.
        label: usize,
        /// Number of classes.
        num_classes: usize,
    },
    /// A class has no training video, so no balanced subset exists.
    #[error("class {0} has no training videos; cannot draw at least one labeled video per class")]
    EmptyClass(usize),
    /// File-system error.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// File involved.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line of a partition file is invalid.
    #[error("{file}:{line}: {problem}: {content:?}")]
    BadLine {
        /// Partition file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        content: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A partition file lists another number of videos than its `# count:` header says (a
    /// file cut short), or none at all.
    #[error(
        "{file}: lists {listed} labeled videos, but {expected}; the file is damaged — delete it to draw the subset again"
    )]
    WrongCount {
        /// Partition file.
        file: PathBuf,
        /// Videos listed.
        listed: usize,
        /// What was expected, in words.
        expected: String,
    },
    /// Writing the partition file failed.
    #[error("{0:#}")]
    Write(anyhow::Error),
    /// An existing partition file was drawn with other settings.
    #[error(
        "{file} was drawn with {found}, but {requested} was requested; delete it or change the settings"
    )]
    SettingsMismatch {
        /// Partition file.
        file: PathBuf,
        /// Settings in the file.
        found: String,
        /// Requested settings.
        requested: String,
    },
    /// A training path cannot be written as UTF-8 text.
    #[error("training path {0} is not valid UTF-8")]
    NonUtf8Path(PathBuf),
}

type Result<T> = std::result::Result<T, PartitionError>;

/// Draws a class-balanced labeled subset of `train`.
///
/// Per class `c` with `n_c` videos, `amount` decides how many are labeled
/// (at least one); which ones is a seeded shuffle (ChaCha8, classes visited in
/// label order), so the same inputs always give the same partition.
pub fn partition(
    train: &[VideoEntry],
    num_classes: usize,
    amount: LabeledAmount,
    seed: u64,
) -> Result<Partition> {
    amount.validate()?;
    let by_class = group_by_class(train, num_classes)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut is_labeled = vec![false; train.len()];
    for mut members in by_class {
        members.shuffle(&mut rng);
        for &i in &members[..amount.count_for(members.len())] {
            is_labeled[i] = true;
        }
    }
    let (labeled, unlabeled) = split_flags(&is_labeled);
    Ok(Partition {
        labeled,
        unlabeled,
        amount: Some(amount),
        seed: Some(seed),
    })
}

/// Training indices per class, in list order; errors on bad labels or empty classes.
fn group_by_class(train: &[VideoEntry], num_classes: usize) -> Result<Vec<Vec<usize>>> {
    let mut by_class = vec![Vec::new(); num_classes];
    for (index, entry) in train.iter().enumerate() {
        let slot =
            by_class
                .get_mut(entry.label)
                .ok_or_else(|| PartitionError::LabelOutOfRange {
                    index,
                    path: entry.path.clone(),
                    label: entry.label,
                    num_classes,
                })?;
        slot.push(index);
    }
    if let Some(empty) = by_class.iter().position(Vec::is_empty) {
        return Err(PartitionError::EmptyClass(empty));
    }
    Ok(by_class)
}

/// (indices with `true`, indices with `false`), both ascending.
fn split_flags(flags: &[bool]) -> (Vec<usize>, Vec<usize>) {
    (0..flags.len()).partition(|&i| flags[i])
}

impl Partition {
    /// Number of labeled videos per class (for logging and checks).
    pub fn labeled_per_class(&self, train: &[VideoEntry], num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; num_classes];
        for e in self.labeled.iter().filter_map(|&i| train.get(i)) {
            if let Some(c) = counts.get_mut(e.label) {
                *c += 1;
            }
        }
        counts
    }

    /// Writes the labeled video paths (relative, see the module docs) through `disk`
    /// (atomically: a failed write leaves no empty or partial list behind).
    pub fn save(&self, disk: &Disk, path: &Path, train: &[VideoEntry]) -> Result<()> {
        let root = common_dir(train);
        let mut text = format!("{HEADER_TITLE}\n");
        if let Some(amount) = self.amount {
            let _ = writeln!(text, "# {KEY_AMOUNT} {}", amount.to_header());
        }
        if let Some(seed) = self.seed {
            let _ = writeln!(text, "# {KEY_SEED} {seed}");
        }
        let _ = writeln!(text, "# {KEY_COUNT} {}", self.labeled.len());
        for &i in &self.labeled {
            let _ = writeln!(text, "{}", relative_key(&train[i].path, &root)?);
        }
        disk.write_atomic(path, text.as_bytes())
            .map_err(PartitionError::Write)
    }

    /// Reads a labeled list written by [`save`](Self::save) (or by hand) and
    /// rebuilds the partition against `train`. Every listed path must be in
    /// `train`, at most once; the list must not be empty, and must hold as many
    /// paths as its `# count:` header says when it has one.
    pub fn load(path: &Path, train: &[VideoEntry]) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(|source| PartitionError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let root = common_dir(train);
        let keys = train
            .iter()
            .enumerate()
            .map(|(i, e)| relative_key(&e.path, &root).map(|k| (k, i)))
            .collect::<Result<HashMap<_, _>>>()?;
        let mut is_labeled = vec![false; train.len()];
        let (mut amount, mut seed, mut count) = (None, None, None);
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let bad = |problem| PartitionError::BadLine {
                file: path.to_path_buf(),
                line: n + 1,
                content: line.to_string(),
                problem,
            };
            if let Some(comment) = line.strip_prefix('#') {
                parse_header(comment, &mut amount, &mut seed, &mut count).map_err(bad)?;
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let &i = keys
                .get(line)
                .ok_or_else(|| bad("not in the training list"))?;
            if std::mem::replace(&mut is_labeled[i], true) {
                return Err(bad("listed twice"));
            }
        }
        let (labeled, unlabeled) = split_flags(&is_labeled);
        let wrong_count = |expected: String| PartitionError::WrongCount {
            file: path.to_path_buf(),
            listed: labeled.len(),
            expected,
        };
        match count {
            Some(c) if c != labeled.len() => {
                return Err(wrong_count(format!("its header says `# count: {c}`")));
            }
            None if labeled.is_empty() => {
                return Err(wrong_count("a labeled list needs at least one".into()));
            }
            _ => {}
        }
        Ok(Self {
            labeled,
            unlabeled,
            amount,
            seed,
        })
    }
}

/// Reads `amount:` / `seed:` / `count:` header comments; other comments are ignored.
fn parse_header(
    comment: &str,
    amount: &mut Option<LabeledAmount>,
    seed: &mut Option<u64>,
    count: &mut Option<usize>,
) -> std::result::Result<(), &'static str> {
    let comment = comment.trim();
    if let Some(value) = comment.strip_prefix(KEY_AMOUNT) {
        *amount = Some(
            LabeledAmount::from_header(value)
                .ok_or("expected `amount: fraction <f>` or `amount: per_class <k>`")?,
        );
    } else if let Some(value) = comment.strip_prefix(KEY_SEED) {
        *seed = Some(value.trim().parse().map_err(|_| "expected `seed: <u64>`")?);
    } else if let Some(value) = comment.strip_prefix(KEY_COUNT) {
        *count = Some(
            value
                .trim()
                .parse()
                .map_err(|_| "expected `count: <number of videos>`")?,
        );
    }
    Ok(())
}

/// Loads `path` if it exists (checking that its header matches `amount` and
/// `seed` when present), otherwise draws a new partition and saves it there.
pub fn load_or_create(
    disk: &Disk,
    path: &Path,
    train: &[VideoEntry],
    num_classes: usize,
    amount: LabeledAmount,
    seed: u64,
) -> Result<Partition> {
    if !path.exists() {
        let fresh = partition(train, num_classes, amount, seed)?;
        fresh.save(disk, path, train)?;
        return Ok(fresh);
    }
    let loaded = Partition::load(path, train)?;
    let amount_ok = loaded.amount.is_none_or(|a| a.same_as(amount));
    let seed_ok = loaded.seed.is_none_or(|s| s == seed);
    if amount_ok && seed_ok {
        return Ok(loaded);
    }
    Err(PartitionError::SettingsMismatch {
        file: path.to_path_buf(),
        found: describe(loaded.amount, loaded.seed),
        requested: describe(Some(amount), Some(seed)),
    })
}

fn describe(amount: Option<LabeledAmount>, seed: Option<u64>) -> String {
    let amount = amount.map_or("unknown amount".into(), LabeledAmount::to_header);
    let seed = seed.map_or("unknown seed".into(), |s| format!("seed {s}"));
    format!("{amount}, {seed}")
}

/// Longest directory that contains every training path.
fn common_dir(train: &[VideoEntry]) -> PathBuf {
    let mut dirs = train.iter().filter_map(|e| e.path.parent());
    let Some(first) = dirs.next() else {
        return PathBuf::new();
    };
    let mut common: Vec<Component<'_>> = first.components().collect();
    for dir in dirs {
        let shared = common
            .iter()
            .zip(dir.components())
            .take_while(|(a, b)| **a == *b)
            .count();
        common.truncate(shared);
    }
    common.iter().collect()
}

/// `path` relative to `root`, with `/` separators.
fn relative_key(path: &Path, root: &Path) -> Result<String> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let parts = rel
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| PartitionError::NonUtf8Path(path.to_path_buf()))?;
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    /// `per_class` videos for each of `classes` classes, interleaved.
    fn train_set(classes: usize, per_class: usize) -> Vec<VideoEntry> {
        (0..classes * per_class)
            .map(|i| VideoEntry {
                path: PathBuf::from(format!("/data/ucf/c{}/v{i}.avi", i % classes)),
                label: i % classes,
            })
            .collect()
    }

    fn check_disjoint_complete(p: &Partition, n: usize) {
        let mut all: Vec<usize> = p.labeled.iter().chain(&p.unlabeled).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn fraction_is_balanced_disjoint_complete() {
        let train = train_set(5, 40);
        let p = partition(&train, 5, LabeledAmount::Fraction(0.1), 7).unwrap();
        assert_eq!(p.labeled_per_class(&train, 5), vec![4; 5]);
        check_disjoint_complete(&p, train.len());
    }

    #[test]
    fn tiny_fraction_still_labels_one_per_class() {
        let train = train_set(4, 3);
        let p = partition(&train, 4, LabeledAmount::Fraction(0.01), 1).unwrap();
        assert_eq!(p.labeled_per_class(&train, 4), vec![1; 4]);
        check_disjoint_complete(&p, train.len());
    }

    #[test]
    fn per_class_count_is_capped_by_class_size() {
        let train = train_set(3, 4);
        let p = partition(&train, 3, LabeledAmount::PerClass(6), 1).unwrap();
        assert_eq!(p.labeled.len(), 12);
        assert!(p.unlabeled.is_empty());
        let p = partition(&train, 3, LabeledAmount::PerClass(2), 1).unwrap();
        assert_eq!(p.labeled_per_class(&train, 3), vec![2; 3]);
    }

    #[test]
    fn seeded_reproducible_and_seed_sensitive() {
        let train = train_set(10, 50);
        let amount = LabeledAmount::Fraction(0.2);
        let a = partition(&train, 10, amount, 3).unwrap();
        let b = partition(&train, 10, amount, 3).unwrap();
        let c = partition(&train, 10, amount, 4).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.labeled, c.labeled);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let train = train_set(3, 2);
        for bad in [LabeledAmount::Fraction(0.0), LabeledAmount::Fraction(1.5)] {
            assert!(partition(&train, 3, bad, 0).is_err());
        }
        assert!(partition(&train, 3, LabeledAmount::PerClass(0), 0).is_err());
        let err = partition(&train, 4, LabeledAmount::PerClass(1), 0).unwrap_err();
        assert!(matches!(err, PartitionError::EmptyClass(3)));
        let err = partition(&train, 2, LabeledAmount::PerClass(1), 0).unwrap_err();
        assert!(matches!(
            err,
            PartitionError::LabelOutOfRange { label: 2, .. }
        ));
    }

    #[test]
    fn save_load_round_trip_with_relative_paths() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("splits/labeled.txt");
        let train = train_set(3, 10);
        let p = partition(&train, 3, LabeledAmount::Fraction(0.3), 9).unwrap();
        p.save(&Disk::new(), &file, &train).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains("# amount: fraction 0.3") && text.contains("# seed: 9"));
        assert!(text.lines().any(|l| l.starts_with("c0/v")), "{text}");
        // The same list under another root still matches (paths are relative).
        let moved: Vec<VideoEntry> = train
            .iter()
            .map(|e| VideoEntry {
                path: Path::new("/mnt/other").join(e.path.strip_prefix("/data/ucf").unwrap()),
                label: e.label,
            })
            .collect();
        assert_eq!(Partition::load(&file, &moved).unwrap(), p);
    }

    #[test]
    fn load_rejects_unknown_and_duplicate_paths() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("labeled.txt");
        let train = train_set(2, 3);
        fs::write(&file, "c0/v0.avi\nc1/v9.avi\n").unwrap();
        let err = Partition::load(&file, &train).unwrap_err();
        assert!(err.to_string().contains("labeled.txt:2"), "{err}");
        fs::write(&file, "c0/v0.avi\n\nc0/v0.avi\n").unwrap();
        let err = Partition::load(&file, &train).unwrap_err();
        assert!(
            matches!(err, PartitionError::BadLine { line: 3, .. }),
            "{err}"
        );
    }

    #[test]
    fn load_or_create_reuses_and_checks_settings() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("labeled.txt");
        let train = train_set(4, 10);
        let amount = LabeledAmount::PerClass(2);
        let disk = Disk::new();
        let first = load_or_create(&disk, &file, &train, 4, amount, 5).unwrap();
        let again = load_or_create(&disk, &file, &train, 4, amount, 5).unwrap();
        assert_eq!(first, again);
        let err = load_or_create(&disk, &file, &train, 4, amount, 6).unwrap_err();
        assert!(
            matches!(err, PartitionError::SettingsMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_cut_or_empty_list_is_an_error_and_a_failed_write_leaves_none() {
        let tmp = TempDir::new().unwrap();
        let file = tmp.path().join("labeled.txt");
        let train = train_set(3, 4);
        let p = partition(&train, 3, LabeledAmount::PerClass(2), 1).unwrap();
        p.save(&Disk::new(), &file, &train).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains("# count: 6"), "{text}");
        // Cut at a line boundary: 3 of the 6 paths.
        let cut: String = text.lines().take(7).map(|l| format!("{l}\n")).collect();
        fs::write(&file, &cut).unwrap();
        let err = Partition::load(&file, &train).unwrap_err();
        assert!(
            matches!(err, PartitionError::WrongCount { listed: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("count: 6"), "{err}");
        fs::write(&file, "").unwrap();
        let err = Partition::load(&file, &train).unwrap_err();
        assert!(
            matches!(err, PartitionError::WrongCount { listed: 0, .. }),
            "{err}"
        );
        // A full disk while writing: an error naming the file, and no list under its name.
        fs::remove_file(&file).unwrap();
        let full = Disk::with_fault("labeled.txt:ENOSPC").unwrap();
        let err =
            load_or_create(&full, &file, &train, 3, LabeledAmount::PerClass(2), 1).unwrap_err();
        assert!(err.to_string().contains("no space left on device"), "{err}");
        assert!(!file.exists());
    }
}
