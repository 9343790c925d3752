//! HMDB51: one split file per class, `<class>_test_split{s}.txt`, that tags each video as
//! unused, train or test (the layout is in the [parent module's docs](super)). Separate from
//! the other formats because the class list is the set of split-file names and each video may
//! sit in a class folder or flat.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::{
    DatasetError, DatasetIndex, ListRoot, Result, VideoEntry, line_contexts, read_list,
    subdir_or_root,
};

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

/// Loads split `split` of HMDB51 under `root` (the videos are not checked here).
pub(super) fn load_hmdb51(root: &Path, split: u8) -> Result<DatasetIndex> {
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
    let root = ListRoot::new(videos);
    for ctx in line_contexts(file, &text) {
        let tokens: Vec<&str> = ctx.content.split_whitespace().collect();
        let [video, tag] = tokens.as_slice() else {
            return Err(ctx.malformed(EXPECTED));
        };
        let tag: u8 = tag.parse().map_err(|_| ctx.malformed(EXPECTED))?;
        ctx.relative(&root, video)?;
        let path = hmdb_video_path(videos, class, video);
        ctx.resolves_inside(&root, &path, video)?;
        let entry = VideoEntry { path, label };
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

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use crate::data::datasets::fixtures::{touch, write};
    use crate::data::datasets::{DatasetKind, load_index};

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
}
