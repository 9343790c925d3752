//! Parsing of the official train/test split files of UCF101, HMDB51,
//! Kinetics-400 and a generic MMAction2-style list format into one
//! [`DatasetIndex`].
//!
//! # Expected layouts
//!
//! All list files may use `\n` or `\r\n` line endings (the UCF101 lists ship
//! with CRLF). Blank lines and lines starting with `#` are skipped.
//!
//! * **UCF101** (`ucf101`): annotation files in `<root>/ucfTrainTestlist/` if
//!   that folder exists, otherwise directly in `<root>`:
//!   `classInd.txt` (`1 ApplyEyeMakeup`), `trainlist0{s}.txt`
//!   (`ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`, 1-based label) and
//!   `testlist0{s}.txt` (path only, the label comes from the class folder).
//!   Videos live in `<root>/UCF-101/` if that folder exists, otherwise in
//!   `<root>`, at the relative path given in the list.
//! * **HMDB51** (`hmdb51`): split files `<class>_test_split{s}.txt` with lines
//!   `<video>.avi <0|1|2>` (0 = unused, 1 = train, 2 = test) in the first of
//!   `<root>/splits/`, `<root>/testTrainMulti_7030_splits/`, `<root>` that
//!   exists. Videos live under `<root>/videos/` if that folder exists, otherwise
//!   `<root>`; each video is looked up first as `<videos>/<class>/<video>`,
//!   then flat as `<videos>/<video>`. Classes are sorted alphabetically.
//! * **Kinetics-400** (`k400`, single split, `split` must be 1): CSV files
//!   `train.csv` and `validate.csv` (or `val.csv`, the CVDF mirror's name) with header
//!   `label,youtube_id,time_start,time_end,split` (extra columns are ignored)
//!   in `<root>/annotations/` if it exists, otherwise `<root>`. The validation
//!   set is used as the test set (the official test set has no labels). Files
//!   are `{youtube_id}_{start:06}_{end:06}.mp4`, looked up in
//!   `<root>/<dir>/<label>/`, `<root>/<dir>/<label with '_' for ' '>/` and flat
//!   `<root>/<dir>/`, where `<dir>` is `train` for the training set and the
//!   first existing of `val`, `validate`, `valid` for the validation set.
//!   Classes are the training labels sorted alphabetically.
//! * **Generic** (`generic`, single split): `<root>/train.txt` and
//!   `<root>/test.txt`, lines `<relative path> <label>` with a 0-based integer
//!   label (the path may contain spaces; the label is the last token).
//!   Optional `<root>/classes.txt` holds one class name per line (line `i` is
//!   label `i`); without it the classes are named `"0"`, `"1"`, ... up to the
//!   largest label seen.
//!
//! # Missing files
//!
//! [`load_index`] checks that every video exists. Videos that do not are left
//! out of `train`/`test` and listed in [`DatasetIndex::missing`] instead of
//! failing, because public mirrors of Kinetics always lack some clips. Use
//! [`load_index_with`] and [`ExistencePolicy::Keep`] to skip the check (e.g. when
//! frames were pre-extracted elsewhere).
//!
//! # Where the code lives
//!
//! This file holds what every format shares: the index types, [`load_index`] and its
//! existence check, the errors, and the helpers that read list files line by line and name
//! the file and line in every error. Each format's parser is its own file (`ucf101.rs`,
//! `hmdb51.rs`, `kinetics.rs`, `generic.rs`), because the formats share only these helpers:
//! each one's file names, label conventions and look-up rules stay next to its tests.

use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

mod generic;
mod hmdb51;
mod kinetics;
mod ucf101;

use generic::load_generic;
use hmdb51::load_hmdb51;
use kinetics::load_kinetics;
use ucf101::load_ucf101;

/// Number of official train/test splits of UCF101 and HMDB51.
pub const NUM_OFFICIAL_SPLITS: u8 = 3;
/// The only split index accepted by single-split datasets (Kinetics, generic).
pub const SINGLE_SPLIT: u8 = 1;

/// One labeled video.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VideoEntry {
    /// Absolute path, or the list path joined onto the dataset root.
    pub path: PathBuf,
    /// 0-based class index into [`DatasetIndex::classes`].
    pub label: usize,
}

/// The parsed split of one dataset.
#[derive(Debug, Clone, Default)]
pub struct DatasetIndex {
    /// Class names; the position is the 0-based label.
    pub classes: Vec<String>,
    /// Training videos (labeled and unlabeled pools are carved from these).
    pub train: Vec<VideoEntry>,
    /// Test videos.
    pub test: Vec<VideoEntry>,
    /// Listed videos that were not found on disk (left out of train/test).
    pub missing: Vec<PathBuf>,
}

impl DatasetIndex {
    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// Supported dataset formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DatasetKind {
    /// UCF101 with the official three splits.
    #[serde(rename = "ucf101")]
    Ucf101,
    /// HMDB51 with the official three splits.
    #[serde(rename = "hmdb51")]
    Hmdb51,
    /// Kinetics-400 (train / validate CSVs).
    #[serde(rename = "k400", alias = "kinetics400")]
    Kinetics400,
    /// MMAction2-style `<path> <label>` lists.
    #[serde(rename = "generic")]
    Generic,
}

impl DatasetKind {
    /// Canonical lowercase name (also the serde name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ucf101 => "ucf101",
            Self::Hmdb51 => "hmdb51",
            Self::Kinetics400 => "k400",
            Self::Generic => "generic",
        }
    }

    /// Largest accepted split index.
    fn max_split(self) -> u8 {
        match self {
            Self::Ucf101 | Self::Hmdb51 => NUM_OFFICIAL_SPLITS,
            Self::Kinetics400 | Self::Generic => SINGLE_SPLIT,
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DatasetKind {
    type Err = DatasetError;

    /// Accepts the canonical names and a few common spellings, case-insensitively.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ucf101" | "ucf-101" | "ucf" => Ok(Self::Ucf101),
            "hmdb51" | "hmdb-51" | "hmdb" => Ok(Self::Hmdb51),
            "k400" | "kinetics400" | "kinetics-400" | "kinetics" => Ok(Self::Kinetics400),
            "generic" => Ok(Self::Generic),
            _ => Err(DatasetError::UnknownKind(s.to_string())),
        }
    }
}

/// What [`load_index_with`] does with listed videos that are not on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExistencePolicy {
    /// Move them to [`DatasetIndex::missing`] (default).
    #[default]
    MoveToMissing,
    /// Keep every listed video without touching the file system.
    Keep,
}

/// Errors while reading split files. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Unknown dataset name given to [`DatasetKind::from_str`].
    #[error("unknown dataset kind {0:?}; expected one of ucf101, hmdb51, k400, generic")]
    UnknownKind(String),
    /// The split index is out of range for this dataset.
    #[error("split {split} is not valid for {kind}: expected 1..={max}")]
    InvalidSplit {
        /// Dataset kind.
        kind: DatasetKind,
        /// Requested split.
        split: u8,
        /// Largest valid split.
        max: u8,
    },
    /// A required list file is missing.
    #[error("missing {what} list file {path}")]
    MissingListFile {
        /// What the file should contain.
        what: &'static str,
        /// Path that was looked up.
        path: PathBuf,
    },
    /// A list file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File being read.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A line does not have the expected shape.
    #[error("{file}:{line}: expected {expected}, found {content:?}")]
    Malformed {
        /// File being parsed.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        content: String,
        /// Description of the expected format.
        expected: &'static str,
    },
    /// A line names a class that is not in the class list.
    #[error("{file}:{line}: unknown class {class:?}")]
    UnknownClass {
        /// File being parsed.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The class name found.
        class: String,
    },
    /// A numeric label is outside the class range.
    #[error("{file}:{line}: label {label} out of range (expected {min}..={max})")]
    LabelOutOfRange {
        /// File being parsed.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The label as written in the file.
        label: i64,
        /// Smallest valid label as written in the file.
        min: i64,
        /// Largest valid label as written in the file.
        max: i64,
    },
    /// A listed video lies outside the dataset's directory (`..`, an absolute path, or a
    /// symbolic link that leads out).
    #[error(
        "{file}:{line}: {entry:?} is outside the dataset directory {base}; entries must be relative paths inside it"
    )]
    OutsideRoot {
        /// File being parsed.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The entry as listed.
        entry: String,
        /// The directory it must stay in.
        base: PathBuf,
    },
    /// A CSV file could not be parsed.
    #[error("{file}: CSV error: {source}")]
    Csv {
        /// File being parsed.
        file: PathBuf,
        /// Underlying error (carries the record position).
        source: csv::Error,
    },
    /// No class could be found.
    #[error("no classes found in {0}")]
    NoClasses(PathBuf),
}

type Result<T> = std::result::Result<T, DatasetError>;

/// Loads the given split of a dataset, moving videos that are not on disk to
/// [`DatasetIndex::missing`]. See the module docs for the expected layouts.
pub fn load_index(kind: DatasetKind, root: &Path, split: u8) -> Result<DatasetIndex> {
    load_index_with(kind, root, split, ExistencePolicy::MoveToMissing)
}

/// [`load_index`] with an explicit policy for videos that are not on disk.
pub fn load_index_with(
    kind: DatasetKind,
    root: &Path,
    split: u8,
    policy: ExistencePolicy,
) -> Result<DatasetIndex> {
    check_split(kind, split)?;
    let mut index = match kind {
        DatasetKind::Ucf101 => load_ucf101(root, split)?,
        DatasetKind::Hmdb51 => load_hmdb51(root, split)?,
        DatasetKind::Kinetics400 => load_kinetics(root)?,
        DatasetKind::Generic => load_generic(root)?,
    };
    if policy == ExistencePolicy::MoveToMissing {
        index.train = keep_existing(std::mem::take(&mut index.train), &mut index.missing);
        index.test = keep_existing(std::mem::take(&mut index.test), &mut index.missing);
    }
    Ok(index)
}

fn check_split(kind: DatasetKind, split: u8) -> Result<()> {
    let max = kind.max_split();
    if (1..=max).contains(&split) {
        Ok(())
    } else {
        Err(DatasetError::InvalidSplit { kind, split, max })
    }
}

/// Splits `entries` into those on disk (returned) and those not (appended to `missing`).
fn keep_existing(entries: Vec<VideoEntry>, missing: &mut Vec<PathBuf>) -> Vec<VideoEntry> {
    let (found, lost): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.path.exists());
    missing.extend(lost.into_iter().map(|e| e.path));
    found
}

/// Returns `root/sub` if it is a directory, otherwise `root`.
fn subdir_or_root(root: &Path, sub: &str) -> PathBuf {
    let candidate = root.join(sub);
    if candidate.is_dir() {
        candidate
    } else {
        root.to_path_buf()
    }
}

fn read_list(path: &Path, what: &'static str) -> Result<String> {
    if !path.is_file() {
        return Err(DatasetError::MissingListFile {
            what,
            path: path.to_path_buf(),
        });
    }
    fs::read_to_string(path).map_err(|source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Class names in label order, one per non-empty, non-comment line: a generic dataset's
/// class file and the `classes.txt` every run writes (`what` names the file in errors).
pub fn read_class_names(file: &Path, what: &'static str) -> Result<Vec<String>> {
    let text = read_list(file, what)?;
    let classes: Vec<String> = content_lines(&text).map(|(_, l)| l.to_string()).collect();
    if classes.is_empty() {
        return Err(DatasetError::NoClasses(file.to_path_buf()));
    }
    Ok(classes)
}

/// Non-empty, non-comment lines with their 1-based line numbers, trimmed.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// The directory a list's entries must stay inside, with its real path (symbolic links
/// resolved) computed once per list rather than once per entry: a Kinetics list has
/// hundreds of thousands of entries, each otherwise costing a directory walk.
struct ListRoot<'a> {
    dir: &'a Path,
    /// `None` when the directory does not exist: then no entry exists to resolve either.
    real: Option<PathBuf>,
}

impl<'a> ListRoot<'a> {
    fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            real: dir.canonicalize().ok(),
        }
    }
}

/// Context for errors raised while parsing one line.
struct LineCtx<'a> {
    file: &'a Path,
    line: usize,
    content: &'a str,
}

impl LineCtx<'_> {
    fn malformed(&self, expected: &'static str) -> DatasetError {
        DatasetError::Malformed {
            file: self.file.to_path_buf(),
            line: self.line,
            content: self.content.to_string(),
            expected,
        }
    }

    fn unknown_class(&self, class: &str) -> DatasetError {
        DatasetError::UnknownClass {
            file: self.file.to_path_buf(),
            line: self.line,
            class: class.to_string(),
        }
    }

    /// `root/rel`, checked to stay inside `root`: [`LineCtx::relative`], then
    /// [`LineCtx::resolves_inside`] on the joined path.
    fn inside(&self, root: &ListRoot, rel: &str) -> Result<PathBuf> {
        self.relative(root, rel)?;
        let path = root.dir.join(rel);
        self.resolves_inside(root, &path, rel)?;
        Ok(path)
    }

    /// `rel` is a non-empty relative path without `..` (a lexical check: no file system access).
    fn relative(&self, root: &ListRoot, rel: &str) -> Result<()> {
        let plain = Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !plain || rel.is_empty() {
            return Err(self.outside(root.dir, rel));
        }
        Ok(())
    }

    /// An existing `path` must resolve (symbolic links followed) inside `root` (`entry` names
    /// it in the error); a missing one is reported later, by the existence policy.
    fn resolves_inside(&self, root: &ListRoot, path: &Path, entry: &str) -> Result<()> {
        if let (Some(real_root), Ok(real)) = (&root.real, path.canonicalize())
            && !real.starts_with(real_root)
        {
            return Err(self.outside(root.dir, entry));
        }
        Ok(())
    }

    fn outside(&self, base: &Path, entry: &str) -> DatasetError {
        DatasetError::OutsideRoot {
            file: self.file.to_path_buf(),
            line: self.line,
            entry: entry.to_string(),
            base: base.to_path_buf(),
        }
    }

    fn out_of_range(&self, label: i64, min: i64, max: i64) -> DatasetError {
        DatasetError::LabelOutOfRange {
            file: self.file.to_path_buf(),
            line: self.line,
            label,
            min,
            max,
        }
    }
}

/// [`content_lines`] of `text`, the contents of `file`, each as the [`LineCtx`] that names
/// the file and line in the errors it raises.
fn line_contexts<'a>(file: &'a Path, text: &'a str) -> impl Iterator<Item = LineCtx<'a>> {
    content_lines(text).map(move |(line, content)| LineCtx {
        file,
        line,
        content,
    })
}

#[cfg(test)]
mod fixtures {
    //! File-system fixtures shared by the tests of every format.

    use std::fs;
    use std::path::Path;

    use tempfile::TempDir;

    /// Writes `text` to `dir/rel`, creating the parent folders.
    pub(super) fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Creates the empty file `dir/rel`.
    pub(super) fn touch(dir: &Path, rel: &str) {
        write(dir, rel, "");
    }

    /// A UCF101 root with split 1 (CRLF lists) and all but one of its videos.
    pub(super) fn ucf_fixture() -> TempDir {
        let tmp = TempDir::new().unwrap();
        let r = tmp.path();
        write(
            r,
            "ucfTrainTestlist/classInd.txt",
            "1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n",
        );
        write(
            r,
            "ucfTrainTestlist/trainlist01.txt",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n\
             HandstandPushups/v_HandStandPushups_g08_c01.avi 2\r\n",
        );
        write(
            r,
            "ucfTrainTestlist/testlist01.txt",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n\
             HandStandPushups/v_HandStandPushups_g01_c01.avi\r\n",
        );
        for v in [
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
            "HandstandPushups/v_HandStandPushups_g08_c01.avi",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        ] {
            touch(r, &format!("UCF-101/{v}"));
        }
        tmp
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::ucf_fixture;
    use super::*;

    #[test]
    fn missing_list_and_bad_split_are_errors() {
        let tmp = ucf_fixture();
        let err = load_index(DatasetKind::Ucf101, tmp.path(), 2).unwrap_err();
        assert!(matches!(err, DatasetError::MissingListFile { .. }), "{err}");
        let err = load_index(DatasetKind::Ucf101, tmp.path(), 4).unwrap_err();
        assert!(matches!(err, DatasetError::InvalidSplit { split: 4, .. }));
        let err = load_index(DatasetKind::Hmdb51, tmp.path(), 0).unwrap_err();
        assert!(matches!(err, DatasetError::InvalidSplit { split: 0, .. }));
        let err = load_index(DatasetKind::Generic, tmp.path(), 2).unwrap_err();
        assert!(matches!(err, DatasetError::InvalidSplit { max: 1, .. }));
    }

    #[test]
    fn kind_names_round_trip() {
        for kind in [
            DatasetKind::Ucf101,
            DatasetKind::Hmdb51,
            DatasetKind::Kinetics400,
            DatasetKind::Generic,
        ] {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<DatasetKind>(&json).unwrap(), kind);
            assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
        }
        assert!("ucf999".parse::<DatasetKind>().is_err());
    }
}
