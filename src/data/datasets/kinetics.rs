//! Kinetics-400: the `train.csv` / `validate.csv` annotation tables (the layout is in the
//! [parent module's docs](super)). Separate from the other formats because it is the only CSV
//! input (read with the `csv` crate), names its files from the YouTube id and time span, and
//! looks them up under several folder spellings.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{DatasetError, DatasetIndex, LineCtx, ListRoot, Result, VideoEntry, subdir_or_root};

/// Kinetics annotation sub-folder, if present.
const K400_ANNOTATION_DIR: &str = "annotations";
/// Kinetics training CSV.
const K400_TRAIN_CSV: &str = "train.csv";
/// Kinetics validation CSV (used as the test set), in lookup order: the name in DeepMind's
/// `kinetics400.tar.gz`, then the CVDF mirror's (`annotations/val.csv`).
const K400_VAL_CSVS: [&str; 2] = ["validate.csv", "val.csv"];
/// Kinetics training video folder.
const K400_TRAIN_DIR: &str = "train";
/// Candidate Kinetics validation video folders, in lookup order.
const K400_VAL_DIRS: [&str; 3] = ["val", "validate", "valid"];
/// Zero-padded width of the start/end seconds in Kinetics file names.
const K400_TIME_WIDTH: usize = 6;
/// Kinetics clip extension.
const K400_EXT: &str = "mp4";

/// One parsed Kinetics CSV row.
struct KineticsRow {
    label: String,
    file_name: String,
    line: usize,
}

/// Loads Kinetics-400 under `root`: the training set and the validation set as the test set
/// (the videos are not checked here).
pub(super) fn load_kinetics(root: &Path) -> Result<DatasetIndex> {
    let ann = subdir_or_root(root, K400_ANNOTATION_DIR);
    let train_csv = ann.join(K400_TRAIN_CSV);
    let val_csv = K400_VAL_CSVS
        .iter()
        .map(|f| ann.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| ann.join(K400_VAL_CSVS[0]));
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
    let root = ListRoot::new(dir);
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
            ctx.relative(&root, &row.label)?;
            ctx.relative(&root, &row.file_name)?;
            let path = kinetics_video_path(dir, &row.label, &row.file_name);
            ctx.resolves_inside(&root, &path, &row.file_name)?;
            Ok(VideoEntry { path, label })
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

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use crate::data::datasets::fixtures::{touch, write};
    use crate::data::datasets::{DatasetError, DatasetKind, load_index};

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
        // The CVDF mirror's name for the same table.
        std::fs::remove_file(r.join("validate.csv")).unwrap();
        write(r, "val.csv", &format!("{header}zumba,ddd,7,17,val\n"));
        touch(r, "val/ddd_000007_000017.mp4");
        let idx = load_index(DatasetKind::Kinetics400, r, 1).unwrap();
        assert_eq!(idx.test.len(), 1);
    }
}
