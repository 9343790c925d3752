//! Generic MMAction2-style lists: `train.txt` / `test.txt` with `<relative path> <label>`
//! lines and an optional `classes.txt` (the layout is in the [parent module's docs](super)).
//! Separate from the other formats because it is the catch-all for any dataset converted to
//! plain lists: 0-based labels, paths that may hold spaces, classes numbered when unnamed.

use std::path::Path;

use super::{
    DatasetError, DatasetIndex, ListRoot, Result, VideoEntry, line_contexts, read_class_names,
    read_list,
};

/// Generic format: training list.
const GENERIC_TRAIN: &str = "train.txt";
/// Generic format: test list.
const GENERIC_TEST: &str = "test.txt";
/// Generic format: optional class-name file.
const GENERIC_CLASSES: &str = "classes.txt";

/// Loads the generic lists under `root` (the videos are not checked here).
pub(super) fn load_generic(root: &Path) -> Result<DatasetIndex> {
    let class_file = root.join(GENERIC_CLASSES);
    let named_classes = if class_file.is_file() {
        Some(read_class_names(&class_file, "generic class names")?)
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
    let root = ListRoot::new(root);
    line_contexts(file, &text)
        .map(|ctx| {
            let (rel, label) = ctx
                .content
                .rsplit_once(char::is_whitespace)
                .ok_or_else(|| ctx.malformed(EXPECTED))?;
            let raw: i64 = label.parse().map_err(|_| ctx.malformed(EXPECTED))?;
            let max = num_classes.map_or(i64::MAX, |n| n as i64 - 1);
            if raw < 0 || raw > max {
                return Err(ctx.out_of_range(raw, 0, max));
            }
            Ok(VideoEntry {
                path: ctx.inside(&root, rel.trim_end())?,
                label: raw as usize,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use crate::data::datasets::fixtures::write;
    use crate::data::datasets::{
        DatasetError, DatasetKind, ExistencePolicy, load_index, load_index_with,
    };

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
    fn entries_outside_the_root_are_errors_naming_file_and_line() {
        let tmp = TempDir::new().unwrap();
        let r = tmp.path().join("data");
        std::fs::create_dir_all(r.join("clips")).unwrap();
        write(
            &r,
            "test.txt",
            "clips/d.mp4 0
",
        );
        let outside = tmp.path().join("secret.mp4");
        std::fs::write(&outside, b"x").unwrap();
        for (entry, line) in [
            ("../secret.mp4".to_string(), 2),
            ("clips/../../secret.mp4".to_string(), 2),
            (outside.display().to_string(), 2),
        ] {
            write(&r, "train.txt", &format!("clips/a.mp4 0\n{entry} 0\n"));
            let err =
                load_index_with(DatasetKind::Generic, &r, 1, ExistencePolicy::Keep).unwrap_err();
            assert!(
                matches!(&err, DatasetError::OutsideRoot { line: l, .. } if *l == line),
                "{entry}: {err}"
            );
            assert!(err.to_string().contains("train.txt:2"), "{err}");
        }
        // A symbolic link inside the root that leads out is caught where the file exists.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&outside, r.join("clips/link.mp4")).unwrap();
            write(&r, "train.txt", "clips/link.mp4 0\n");
            let err =
                load_index_with(DatasetKind::Generic, &r, 1, ExistencePolicy::Keep).unwrap_err();
            assert!(matches!(err, DatasetError::OutsideRoot { .. }), "{err}");
        }
        // A link that stays inside is fine.
        #[cfg(unix)]
        {
            std::fs::write(r.join("clips/real.mp4"), b"x").unwrap();
            std::os::unix::fs::symlink(r.join("clips/real.mp4"), r.join("clips/alias.mp4"))
                .unwrap();
            write(&r, "train.txt", "clips/alias.mp4 0\n");
            load_index_with(DatasetKind::Generic, &r, 1, ExistencePolicy::Keep).unwrap();
        }
    }
}
