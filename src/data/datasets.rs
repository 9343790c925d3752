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
//!   `train.csv` and `validate.csv` with header
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

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of official train/test splits of UCF101 and HMDB51.
pub const NUM_OFFICIAL_SPLITS: u8 = 3;
/// The only split index accepted by single-split datasets (Kinetics, generic).
pub const SINGLE_SPLIT: u8 = 1;

/// Sub-folder of the UCF101 root that holds the annotation files, if present.
const UCF_ANNOTATION_DIR: &str = "ucfTrainTestlist";
/// Sub-folder of the UCF101 root that holds the class folders, if present.
const UCF_VIDEO_DIR: &str = "UCF-101";
/// UCF101 class index file.
const UCF_CLASS_FILE: &str = "classInd.txt";
/// Candidate HMDB51 split-file folders, in lookup order (root is the fallback).
const HMDB_SPLIT_DIRS: [&str; 2] = ["splits", "testTrainMulti_7030_splits"];
/// Sub-folder of the HMDB51 (and generic video) root holding the videos, if present.
const VIDEO_DIR: &str = "videos";
/// HMDB51 split tag: the video is not used in this split.
const HMDB_TAG_UNUSED: u8 = 0;
/// HMDB51 split tag: training video.
const HMDB_TAG_TRAIN: u8 = 1;
/// HMDB51 split tag: test video.
const HMDB_TAG_TEST: u8 = 2;
/// Kinetics annotation sub-folder, if present.
const K400_ANNOTATION_DIR: &str = "annotations";
/// Kinetics training CSV.
const K400_TRAIN_CSV: &str = "train.csv";
/// Kinetics validation CSV (used as the test set).
const K400_VAL_CSV: &str = "validate.csv";
/// Kinetics training video folder.
const K400_TRAIN_DIR: &str = "train";
/// Candidate Kinetics validation video folders, in lookup order.
const K400_VAL_DIRS: [&str; 3] = ["val", "validate", "valid"];
/// Zero-padded width of the start/end seconds in Kinetics file names.
const K400_TIME_WIDTH: usize = 6;
/// Kinetics clip extension.
const K400_EXT: &str = "mp4";
/// Generic format: training list.
const GENERIC_TRAIN: &str = "train.txt";
/// Generic format: test list.
const GENERIC_TEST: &str = "test.txt";
/// Generic format: optional class-name file.
const GENERIC_CLASSES: &str = "classes.txt";

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

/// Non-empty, non-comment lines with their 1-based line numbers, trimmed.
fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
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

/// Class-name lookup that tolerates case differences (UCF101 spells
/// `HandstandPushups` / `HandStandPushups` inconsistently).
struct ClassLookup {
    exact: HashMap<String, usize>,
    folded: HashMap<String, usize>,
}

impl ClassLookup {
    fn new(classes: &[String]) -> Self {
        let exact = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i))
            .collect();
        let folded = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_lowercase(), i))
            .collect();
        Self { exact, folded }
    }

    fn get(&self, name: &str) -> Option<usize> {
        self.exact
            .get(name)
            .or_else(|| self.folded.get(&name.to_lowercase()))
            .copied()
    }
}

// ---------------------------------------------------------------- UCF101 ----

fn load_ucf101(root: &Path, split: u8) -> Result<DatasetIndex> {
    let ann = subdir_or_root(root, UCF_ANNOTATION_DIR);
    let videos = subdir_or_root(root, UCF_VIDEO_DIR);
    let class_file = ann.join(UCF_CLASS_FILE);
    let classes = parse_ucf_classes(&class_file)?;
    let lookup = ClassLookup::new(&classes);
    let train_file = ann.join(format!("trainlist0{split}.txt"));
    let test_file = ann.join(format!("testlist0{split}.txt"));
    let train = parse_ucf_list(&train_file, &videos, &lookup, classes.len(), true)?;
    let test = parse_ucf_list(&test_file, &videos, &lookup, classes.len(), false)?;
    Ok(DatasetIndex {
        classes,
        train,
        test,
        missing: Vec::new(),
    })
}

/// Parses `classInd.txt`; indices must be exactly `1..=N` in any order.
fn parse_ucf_classes(file: &Path) -> Result<Vec<String>> {
    const EXPECTED: &str = "`<1-based index> <ClassName>`";
    let text = read_list(file, "UCF101 class index")?;
    let mut pairs = Vec::new();
    for (line, content) in content_lines(&text) {
        let ctx = LineCtx {
            file,
            line,
            content,
        };
        let mut tokens = content.split_whitespace();
        let (Some(idx), Some(name), None) = (tokens.next(), tokens.next(), tokens.next()) else {
            return Err(ctx.malformed(EXPECTED));
        };
        let idx: usize = idx.parse().map_err(|_| ctx.malformed(EXPECTED))?;
        pairs.push((idx, name.to_string(), line, content.to_string()));
    }
    if pairs.is_empty() {
        return Err(DatasetError::NoClasses(file.to_path_buf()));
    }
    let n = pairs.len();
    let mut classes = vec![None; n];
    for (idx, name, line, content) in pairs {
        let ctx = LineCtx {
            file,
            line,
            content: &content,
        };
        if idx == 0 || idx > n {
            return Err(ctx.out_of_range(idx as i64, 1, n as i64));
        }
        if classes[idx - 1].replace(name).is_some() {
            return Err(ctx.malformed("each class index exactly once"));
        }
    }
    Ok(classes.into_iter().flatten().collect())
}

/// Parses a UCF101 train (`path label`) or test (`path`) list.
fn parse_ucf_list(
    file: &Path,
    videos: &Path,
    lookup: &ClassLookup,
    num_classes: usize,
    has_label: bool,
) -> Result<Vec<VideoEntry>> {
    let what = if has_label {
        "UCF101 train"
    } else {
        "UCF101 test"
    };
    let text = read_list(file, what)?;
    content_lines(&text)
        .map(|(line, content)| {
            let ctx = LineCtx {
                file,
                line,
                content,
            };
            parse_ucf_line(&ctx, videos, lookup, num_classes, has_label)
        })
        .collect()
}

fn parse_ucf_line(
    ctx: &LineCtx<'_>,
    videos: &Path,
    lookup: &ClassLookup,
    num_classes: usize,
    has_label: bool,
) -> Result<VideoEntry> {
    const EXPECTED_TRAIN: &str = "`<Class>/<video>.avi <1-based label>`";
    const EXPECTED_TEST: &str = "`<Class>/<video>.avi`";
    let expected = if has_label {
        EXPECTED_TRAIN
    } else {
        EXPECTED_TEST
    };
    let tokens: Vec<&str> = ctx.content.split_whitespace().collect();
    let rel = match (has_label, tokens.as_slice()) {
        (true, [rel, _]) | (false, [rel]) => *rel,
        _ => return Err(ctx.malformed(expected)),
    };
    let Some((folder, _)) = rel.split_once('/') else {
        return Err(ctx.malformed(expected));
    };
    let folder_label = lookup.get(folder);
    let label = if has_label {
        let raw: i64 = tokens[1].parse().map_err(|_| ctx.malformed(expected))?;
        if raw < 1 || raw > num_classes as i64 {
            return Err(ctx.out_of_range(raw, 1, num_classes as i64));
        }
        let label = (raw - 1) as usize;
        if folder_label.is_some_and(|f| f != label) {
            return Err(ctx.malformed("a label that matches the class folder"));
        }
        label
    } else {
        folder_label.ok_or_else(|| ctx.unknown_class(folder))?
    };
    Ok(VideoEntry {
        path: videos.join(rel),
        label,
    })
}

// ---------------------------------------------------------------- HMDB51 ----

fn load_hmdb51(root: &Path, split: u8) -> Result<DatasetIndex> {
    let split_dir = hmdb_split_dir(root);
    let suffix = format!("_test_split{split}.txt");
    let classes = hmdb_classes(&split_dir, &suffix)?;
    let videos = subdir_or_root(root, VIDEO_DIR);
    let mut index = DatasetIndex {
        classes: classes.clone(),
        ..DatasetIndex::default()
    };
    for (label, class) in classes.iter().enumerate() {
        let file = split_dir.join(format!("{class}{suffix}"));
        parse_hmdb_file(&file, &videos, class, label, &mut index)?;
    }
    Ok(index)
}

fn hmdb_split_dir(root: &Path) -> PathBuf {
    HMDB_SPLIT_DIRS
        .iter()
        .map(|d| root.join(d))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| root.to_path_buf())
}

/// Class names are the split-file names without `suffix`, sorted.
fn hmdb_classes(split_dir: &Path, suffix: &str) -> Result<Vec<String>> {
    let io_err = |source| DatasetError::Io {
        path: split_dir.to_path_buf(),
        source,
    };
    let mut classes = BTreeSet::new();
    for entry in fs::read_dir(split_dir).map_err(io_err)? {
        let name = entry.map_err(io_err)?.file_name();
        if let Some(class) = name.to_str().and_then(|n| n.strip_suffix(suffix)) {
            classes.insert(class.to_string());
        }
    }
    if classes.is_empty() {
        return Err(DatasetError::MissingListFile {
            what: "HMDB51 split (`<class>_test_split<N>.txt`)",
            path: split_dir.join(format!("*{suffix}")),
        });
    }
    Ok(classes.into_iter().collect())
}

fn parse_hmdb_file(
    file: &Path,
    videos: &Path,
    class: &str,
    label: usize,
    index: &mut DatasetIndex,
) -> Result<()> {
    const EXPECTED: &str = "`<video>.avi <0|1|2>`";
    let text = read_list(file, "HMDB51 split")?;
    for (line, content) in content_lines(&text) {
        let ctx = LineCtx {
            file,
            line,
            content,
        };
        let tokens: Vec<&str> = content.split_whitespace().collect();
        let [video, tag] = tokens.as_slice() else {
            return Err(ctx.malformed(EXPECTED));
        };
        let tag: u8 = tag.parse().map_err(|_| ctx.malformed(EXPECTED))?;
        let entry = VideoEntry {
            path: hmdb_video_path(videos, class, video),
            label,
        };
        match tag {
            HMDB_TAG_UNUSED => {}
            HMDB_TAG_TRAIN => index.train.push(entry),
            HMDB_TAG_TEST => index.test.push(entry),
            _ => return Err(ctx.malformed(EXPECTED)),
        }
    }
    Ok(())
}

/// `<videos>/<class>/<video>` if it exists, else flat `<videos>/<video>` if
/// that exists, else the per-class path (reported as missing later).
fn hmdb_video_path(videos: &Path, class: &str, video: &str) -> PathBuf {
    let nested = videos.join(class).join(video);
    let flat = videos.join(video);
    if !nested.exists() && flat.exists() {
        flat
    } else {
        nested
    }
}

// ------------------------------------------------------------ Kinetics ----

/// One parsed Kinetics CSV row.
struct KineticsRow {
    label: String,
    file_name: String,
    line: usize,
}

fn load_kinetics(root: &Path) -> Result<DatasetIndex> {
    let ann = subdir_or_root(root, K400_ANNOTATION_DIR);
    let train_csv = ann.join(K400_TRAIN_CSV);
    let val_csv = ann.join(K400_VAL_CSV);
    let train_rows = read_kinetics_csv(&train_csv, "Kinetics train")?;
    let val_rows = read_kinetics_csv(&val_csv, "Kinetics validate")?;
    let classes: Vec<String> = train_rows
        .iter()
        .map(|r| r.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if classes.is_empty() {
        return Err(DatasetError::NoClasses(train_csv));
    }
    let lookup: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let train_dir = root.join(K400_TRAIN_DIR);
    let val_dir = K400_VAL_DIRS
        .iter()
        .map(|d| root.join(d))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| root.join(K400_VAL_DIRS[0]));
    let train = kinetics_entries(&train_rows, &train_csv, &train_dir, &lookup)?;
    let test = kinetics_entries(&val_rows, &val_csv, &val_dir, &lookup)?;
    Ok(DatasetIndex {
        classes,
        train,
        test,
        missing: Vec::new(),
    })
}

fn read_kinetics_csv(file: &Path, what: &'static str) -> Result<Vec<KineticsRow>> {
    const EXPECTED: &str = "columns label,youtube_id,time_start,time_end (integer seconds)";
    if !file.is_file() {
        return Err(DatasetError::MissingListFile {
            what,
            path: file.to_path_buf(),
        });
    }
    let csv_err = |source| DatasetError::Csv {
        file: file.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .from_path(file)
        .map_err(csv_err)?;
    let headers = reader.headers().map_err(csv_err)?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (Some(c_label), Some(c_id), Some(c_start), Some(c_end)) = (
        column("label"),
        column("youtube_id"),
        column("time_start"),
        column("time_end"),
    ) else {
        return Err(DatasetError::Malformed {
            file: file.to_path_buf(),
            line: 1,
            content: headers.iter().collect::<Vec<_>>().join(","),
            expected: EXPECTED,
        });
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let content = record.iter().collect::<Vec<_>>().join(",");
        let ctx = LineCtx {
            file,
            line,
            content: &content,
        };
        let field = |c: usize| record.get(c).ok_or_else(|| ctx.malformed(EXPECTED));
        let seconds =
            |c: usize| -> Result<u64> { field(c)?.parse().map_err(|_| ctx.malformed(EXPECTED)) };
        let (start, end) = (seconds(c_start)?, seconds(c_end)?);
        let id = field(c_id)?;
        rows.push(KineticsRow {
            label: field(c_label)?.to_string(),
            file_name: format!("{id}_{start:0w$}_{end:0w$}.{K400_EXT}", w = K400_TIME_WIDTH),
            line,
        });
    }
    Ok(rows)
}

fn kinetics_entries(
    rows: &[KineticsRow],
    file: &Path,
    dir: &Path,
    lookup: &HashMap<&str, usize>,
) -> Result<Vec<VideoEntry>> {
    rows.iter()
        .map(|row| {
            let ctx = LineCtx {
                file,
                line: row.line,
                content: &row.label,
            };
            let label = *lookup
                .get(row.label.as_str())
                .ok_or_else(|| ctx.unknown_class(&row.label))?;
            Ok(VideoEntry {
                path: kinetics_video_path(dir, &row.label, &row.file_name),
                label,
            })
        })
        .collect()
}

/// First existing of `<dir>/<label>/f`, `<dir>/<label_underscored>/f`,
/// `<dir>/f`; the first candidate if none exists.
fn kinetics_video_path(dir: &Path, label: &str, file_name: &str) -> PathBuf {
    let candidates = [
        dir.join(label).join(file_name),
        dir.join(label.replace(' ', "_")).join(file_name),
        dir.join(file_name),
    ];
    candidates
        .iter()
        .find(|p| p.exists())
        .unwrap_or(&candidates[0])
        .clone()
}

// ------------------------------------------------------------- Generic ----

fn load_generic(root: &Path) -> Result<DatasetIndex> {
    let class_file = root.join(GENERIC_CLASSES);
    let named_classes = if class_file.is_file() {
        Some(parse_class_names(&class_file)?)
    } else {
        None
    };
    let limit = named_classes.as_ref().map(Vec::len);
    let train = parse_generic_list(&root.join(GENERIC_TRAIN), root, limit, "generic train")?;
    let test = parse_generic_list(&root.join(GENERIC_TEST), root, limit, "generic test")?;
    let classes = match named_classes {
        Some(c) => c,
        None => numbered_classes(&train, &test),
    };
    if classes.is_empty() {
        return Err(DatasetError::NoClasses(root.join(GENERIC_TRAIN)));
    }
    Ok(DatasetIndex {
        classes,
        train,
        test,
        missing: Vec::new(),
    })
}

/// One class name per non-empty line.
fn parse_class_names(file: &Path) -> Result<Vec<String>> {
    let text = read_list(file, "generic class names")?;
    let classes: Vec<String> = content_lines(&text).map(|(_, l)| l.to_string()).collect();
    if classes.is_empty() {
        return Err(DatasetError::NoClasses(file.to_path_buf()));
    }
    Ok(classes)
}

/// Classes `"0"..="max label"` when no class-name file is given.
fn numbered_classes(train: &[VideoEntry], test: &[VideoEntry]) -> Vec<String> {
    let count = train
        .iter()
        .chain(test)
        .map(|e| e.label + 1)
        .max()
        .unwrap_or(0);
    (0..count).map(|i| i.to_string()).collect()
}

fn parse_generic_list(
    file: &Path,
    root: &Path,
    num_classes: Option<usize>,
    what: &'static str,
) -> Result<Vec<VideoEntry>> {
    const EXPECTED: &str = "`<relative path> <0-based integer label>`";
    let text = read_list(file, what)?;
    content_lines(&text)
        .map(|(line, content)| {
            let ctx = LineCtx {
                file,
                line,
                content,
            };
            let (rel, label) = content
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| ctx.malformed(EXPECTED))?;
            let raw: i64 = label.parse().map_err(|_| ctx.malformed(EXPECTED))?;
            let max = num_classes.map_or(i64::MAX, |n| n as i64 - 1);
            if raw < 0 || raw > max {
                return Err(ctx.out_of_range(raw, 0, max));
            }
            Ok(VideoEntry {
                path: root.join(rel.trim_end()),
                label: raw as usize,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn write(dir: &Path, rel: &str, text: &str) {
        let path = dir.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn touch(dir: &Path, rel: &str) {
        write(dir, rel, "");
    }

    fn ucf_fixture() -> TempDir {
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

    #[test]
    fn ucf101_parses_and_reports_missing() {
        let tmp = ucf_fixture();
        let idx = load_index(DatasetKind::Ucf101, tmp.path(), 1).unwrap();
        assert_eq!(idx.classes, ["ApplyEyeMakeup", "HandstandPushups"]);
        assert_eq!(idx.train.len(), 2);
        assert_eq!(idx.train[1].label, 1);
        assert!(
            idx.train[0]
                .path
                .ends_with("UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi")
        );
        // Test label comes from the (case-insensitively matched) folder.
        assert_eq!(idx.test.len(), 1);
        assert_eq!(idx.test[0].label, 0);
        assert_eq!(idx.missing.len(), 1);
        let kept = load_index_with(DatasetKind::Ucf101, tmp.path(), 1, ExistencePolicy::Keep);
        let kept = kept.unwrap();
        assert_eq!(kept.test[1].label, 1);
        assert!(kept.missing.is_empty());
    }

    #[test]
    fn ucf101_malformed_line_names_file_and_line() {
        let tmp = ucf_fixture();
        write(
            tmp.path(),
            "ucfTrainTestlist/trainlist02.txt",
            "ApplyEyeMakeup/a.avi 1\nApplyEyeMakeup/b.avi one\n",
        );
        let err = load_index(DatasetKind::Ucf101, tmp.path(), 2).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("trainlist02.txt:2"), "{msg}");
        assert!(msg.contains("ApplyEyeMakeup/b.avi one"), "{msg}");
    }

    #[test]
    fn ucf101_label_out_of_range_and_unknown_class() {
        let tmp = ucf_fixture();
        write(
            tmp.path(),
            "ucfTrainTestlist/trainlist03.txt",
            "ApplyEyeMakeup/a.avi 3\n",
        );
        let err = load_index(DatasetKind::Ucf101, tmp.path(), 3).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::LabelOutOfRange {
                label: 3,
                line: 1,
                ..
            }
        ));
        write(
            tmp.path(),
            "ucfTrainTestlist/trainlist03.txt",
            "ApplyEyeMakeup/a.avi 1\n",
        );
        write(
            tmp.path(),
            "ucfTrainTestlist/testlist03.txt",
            "\nJuggling/v_x.avi\n",
        );
        let err = load_index(DatasetKind::Ucf101, tmp.path(), 3).unwrap_err();
        assert!(
            matches!(err, DatasetError::UnknownClass { line: 2, .. }),
            "{err}"
        );
    }

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
    fn hmdb51_nested_and_flat_videos() {
        let tmp = TempDir::new().unwrap();
        let r = tmp.path();
        write(
            r,
            "splits/brush_hair_test_split1.txt",
            "a.avi 1 \nb.avi 2 \nc.avi 0 \n",
        );
        write(r, "splits/wave_test_split1.txt", "d.avi 1\ne.avi 2\n");
        write(r, "splits/wave_test_split2.txt", "d.avi 2\n");
        touch(r, "videos/brush_hair/a.avi");
        touch(r, "videos/brush_hair/b.avi");
        touch(r, "videos/d.avi");
        let idx = load_index(DatasetKind::Hmdb51, r, 1).unwrap();
        assert_eq!(idx.classes, ["brush_hair", "wave"]);
        assert_eq!(idx.train.len(), 2);
        assert_eq!(idx.train[1].label, 1);
        assert!(idx.train[1].path.ends_with("videos/d.avi"));
        assert_eq!(idx.test.len(), 1);
        assert_eq!(idx.missing.len(), 1);
        assert!(idx.missing[0].ends_with("videos/wave/e.avi"));
    }

    #[test]
    fn hmdb51_bad_tag_is_error() {
        let tmp = TempDir::new().unwrap();
        write(tmp.path(), "x_test_split1.txt", "a.avi 1\nb.avi 3\n");
        let err = load_index(DatasetKind::Hmdb51, tmp.path(), 1).unwrap_err();
        assert!(err.to_string().contains("x_test_split1.txt:2"), "{err}");
    }

    #[test]
    fn kinetics_nested_flat_and_missing() {
        let tmp = TempDir::new().unwrap();
        let r = tmp.path();
        let header = "label,youtube_id,time_start,time_end,split\n";
        write(
            r,
            "train.csv",
            &format!(
                "{header}zumba,aaa,5,15,train\n\"air drumming\",bbb,100,110,train\nzumba,ccc,0,10,train\n"
            ),
        );
        write(r, "validate.csv", &format!("{header}zumba,ddd,7,17,val\n"));
        touch(r, "train/zumba/aaa_000005_000015.mp4");
        touch(r, "train/air_drumming/bbb_000100_000110.mp4");
        touch(r, "val/ddd_000007_000017.mp4");
        let idx = load_index(DatasetKind::Kinetics400, r, 1).unwrap();
        assert_eq!(idx.classes, ["air drumming", "zumba"]);
        assert_eq!(idx.train.len(), 2);
        assert_eq!(idx.train[0].label, 1);
        assert_eq!(idx.train[1].label, 0);
        assert_eq!(idx.test.len(), 1);
        assert!(idx.test[0].path.ends_with("val/ddd_000007_000017.mp4"));
        assert_eq!(idx.missing.len(), 1);
        assert!(idx.missing[0].ends_with("train/zumba/ccc_000000_000010.mp4"));
    }

    #[test]
    fn kinetics_unknown_val_class_and_bad_number() {
        let tmp = TempDir::new().unwrap();
        let r = tmp.path();
        let header = "label,youtube_id,time_start,time_end,split\n";
        write(r, "train.csv", &format!("{header}zumba,aaa,5,15,train\n"));
        write(r, "validate.csv", &format!("{header}yoga,ddd,7,17,val\n"));
        let err = load_index(DatasetKind::Kinetics400, r, 1).unwrap_err();
        assert!(
            matches!(err, DatasetError::UnknownClass { line: 2, .. }),
            "{err}"
        );
        write(r, "validate.csv", &format!("{header}zumba,ddd,x,17,val\n"));
        let err = load_index(DatasetKind::Kinetics400, r, 1).unwrap_err();
        assert!(err.to_string().contains("validate.csv:2"), "{err}");
    }

    #[test]
    fn generic_with_and_without_class_file() {
        let tmp = TempDir::new().unwrap();
        let r = tmp.path();
        write(r, "train.txt", "clips/a b.mp4 0\nclips/c.mp4 2\n");
        write(r, "test.txt", "# comment\nclips/d.mp4 1\n");
        let idx = load_index_with(DatasetKind::Generic, r, 1, ExistencePolicy::Keep).unwrap();
        assert_eq!(idx.classes, ["0", "1", "2"]);
        assert!(idx.train[0].path.ends_with("clips/a b.mp4"));
        write(r, "classes.txt", "run\njump\n");
        let err = load_index(DatasetKind::Generic, r, 1).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::LabelOutOfRange {
                label: 2,
                line: 2,
                max: 1,
                ..
            }
        ));
        write(r, "train.txt", "clips/c.mp4\n");
        let err = load_index(DatasetKind::Generic, r, 1).unwrap_err();
        assert!(err.to_string().contains("train.txt:1"), "{err}");
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
