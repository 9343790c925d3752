//! UCF101: `classInd.txt` and the `trainlist0{s}.txt` / `testlist0{s}.txt` lists (the layout
//! is in the [parent module's docs](super)). Separate from the other formats because its rules
//! are its own: 1-based labels, test lines without a label (the class folder gives it) and
//! class names spelled with inconsistent case.

use std::collections::HashMap;
use std::path::Path;

use super::{
    DatasetError, DatasetIndex, LineCtx, ListRoot, Result, VideoEntry, line_contexts, read_list,
    subdir_or_root,
};

/// Sub-folder of the UCF101 root that holds the annotation files, if present.
const UCF_ANNOTATION_DIR: &str = "ucfTrainTestlist";
/// Sub-folder of the UCF101 root that holds the class folders, if present.
const UCF_VIDEO_DIR: &str = "UCF-101";
/// UCF101 class index file.
const UCF_CLASS_FILE: &str = "classInd.txt";

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

/// Loads split `split` of UCF101 under `root` (the videos are not checked here).
pub(super) fn load_ucf101(root: &Path, split: u8) -> Result<DatasetIndex> {
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
    for ctx in line_contexts(file, &text) {
        let mut tokens = ctx.content.split_whitespace();
        let (Some(idx), Some(name), None) = (tokens.next(), tokens.next(), tokens.next()) else {
            return Err(ctx.malformed(EXPECTED));
        };
        let idx: usize = idx.parse().map_err(|_| ctx.malformed(EXPECTED))?;
        pairs.push((idx, name.to_string(), ctx));
    }
    if pairs.is_empty() {
        return Err(DatasetError::NoClasses(file.to_path_buf()));
    }
    let n = pairs.len();
    let mut classes = vec![None; n];
    for (idx, name, ctx) in pairs {
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
    let root = ListRoot::new(videos);
    line_contexts(file, &text)
        .map(|ctx| parse_ucf_line(&ctx, &root, lookup, num_classes, has_label))
        .collect()
}

fn parse_ucf_line(
    ctx: &LineCtx<'_>,
    videos: &ListRoot,
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
        path: ctx.inside(videos, rel)?,
        label,
    })
}

#[cfg(test)]
mod tests {
    use crate::data::datasets::fixtures::{ucf_fixture, write};
    use crate::data::datasets::{
        DatasetError, DatasetKind, ExistencePolicy, load_index, load_index_with,
    };

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
}
