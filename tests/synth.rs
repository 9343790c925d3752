//! The synthetic generator writes a valid UCF101-style dataset of real, decodable videos whose
//! distinctive classes change in the advertised direction, deterministically in the seed.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use timebalance::data::synth::{
    ClassInfo, ClassesFile, DistinctiveChange, Family, SynthConfig, generate,
};
use timebalance::data::video::{RgbFrame, decode_frames, read_info};

const TINY_CLASSES: usize = 4;
const TINY_TRAIN: usize = 2;
const TINY_TEST: usize = 1;
const TINY_SIZE: u32 = 32;
const TINY_FRAMES: usize = 24;

/// A pixel belongs to the foreground when some channel differs from the background estimate
/// by more than this (8-bit levels); the noise is ±8 and objects contrast by ≥ 64 in luma.
const FOREGROUND_THRESHOLD: u8 = 40;
/// Minimum centroid travel (pixels) between the first and last frame of a move class.
const MIN_TRAVEL_PX: f64 = 3.0;
/// A posture video's bar (length 2.5× its width, tilted ≤ 10°) is at least this much taller
/// than wide when standing, and wider than tall by the same factor when lying; a lying bar at
/// the tilt limit measures ≈ 0.5 at 32² (it is ≈ 0.4 flat).
const MIN_UPRIGHTNESS_RATIO: f64 = 1.5;

fn tiny_config(out: &Path, seed: u64) -> SynthConfig {
    SynthConfig {
        out: out.to_path_buf(),
        classes: TINY_CLASSES,
        videos_per_class: TINY_TRAIN,
        test_videos_per_class: TINY_TEST,
        frames: TINY_FRAMES,
        size: TINY_SIZE,
        seed,
        fps: 25,
        ..SynthConfig::default()
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {path:?}: {e}"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Group number from a UCF101 file name `v_Class_gXX_cYY.avi`.
fn group_of(path: &str) -> usize {
    let start = path.rfind("_g").expect("group marker") + 2;
    path[start..start + 2].parse().expect("group number")
}

fn all_frames(path: &Path) -> Vec<RgbFrame> {
    let indices: Vec<usize> = (0..TINY_FRAMES).collect();
    decode_frames(path, &indices).expect("decode")
}

/// Per-pixel, per-channel median over many frames: the static background of a group, because
/// the objects of different videos sit in different places.
fn median_background(frames: &[RgbFrame]) -> Vec<u8> {
    let len = frames[0].data.len();
    (0..len)
        .map(|i| {
            let mut values: Vec<u8> = frames.iter().map(|f| f.data[i]).collect();
            values.sort_unstable();
            values[values.len() / 2]
        })
        .collect()
}

/// Pixel coordinates (x, y) of the largest 4-connected foreground component (the object; the
/// distractor is smaller).
fn object_pixels(frame: &RgbFrame, background: &[u8]) -> Vec<(f64, f64)> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mask: Vec<bool> = frame
        .data
        .chunks_exact(3)
        .zip(background.chunks_exact(3))
        .map(|(p, b)| {
            p.iter()
                .zip(b)
                .any(|(x, y)| x.abs_diff(*y) > FOREGROUND_THRESHOLD)
        })
        .collect();
    let mut seen = vec![false; w * h];
    let mut best: Vec<usize> = Vec::new();
    for start in 0..w * h {
        if !mask[start] || seen[start] {
            continue;
        }
        let mut component = vec![start];
        seen[start] = true;
        let mut next = 0;
        while next < component.len() {
            let i = component[next];
            next += 1;
            let (x, y) = (i % w, i / w);
            let neighbours = [
                (x > 0).then(|| i - 1),
                (x + 1 < w).then(|| i + 1),
                (y > 0).then(|| i - w),
                (y + 1 < h).then(|| i + w),
            ];
            for j in neighbours.into_iter().flatten() {
                if mask[j] && !seen[j] {
                    seen[j] = true;
                    component.push(j);
                }
            }
        }
        if component.len() > best.len() {
            best = component;
        }
    }
    assert!(!best.is_empty(), "no foreground found");
    best.iter()
        .map(|&i| ((i % w) as f64, (i / w) as f64))
        .collect()
}

/// Mean x, y of a set of pixel coordinates.
fn centroid(pixels: &[(f64, f64)]) -> (f64, f64) {
    let n = pixels.len() as f64;
    let sx: f64 = pixels.iter().map(|p| p.0).sum();
    let sy: f64 = pixels.iter().map(|p| p.1).sum();
    (sx / n, sy / n)
}

/// Centroid x, y of [`object_pixels`].
fn object_centroid(frame: &RgbFrame, background: &[u8]) -> (f64, f64) {
    centroid(&object_pixels(frame, background))
}

/// How much taller than wide the object is: its spread along y over its spread along x
/// (standard deviations of its pixels' coordinates); above 1 standing, below 1 lying.
fn object_uprightness(frame: &RgbFrame, background: &[u8]) -> f64 {
    let pixels = object_pixels(frame, background);
    let (cx, cy) = centroid(&pixels);
    let n = pixels.len() as f64;
    let var_x: f64 = pixels.iter().map(|p| (p.0 - cx).powi(2)).sum::<f64>() / n;
    let var_y: f64 = pixels.iter().map(|p| (p.1 - cy).powi(2)).sum::<f64>() / n;
    (var_y / var_x).sqrt()
}

#[test]
fn tiny_dataset_layout_decodes_and_moves_in_the_right_direction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("synth");
    let summary = generate(&tiny_config(&out, 7)).expect("generate");

    // classInd.txt: "label Name", labels 1..=n.
    let class_ind = read_lines(&out.join("classInd.txt"));
    assert_eq!(class_ind.len(), TINY_CLASSES);
    let mut names = BTreeMap::new();
    for (i, line) in class_ind.iter().enumerate() {
        let (label, name) = line.split_once(' ').expect("label and name");
        assert_eq!(label.parse::<usize>().expect("label"), i + 1);
        assert!(!name.contains(char::is_whitespace));
        names.insert(name.to_string(), i + 1);
    }

    // classes.json: same classes, half of each family.
    let json = std::fs::read_to_string(out.join("classes.json")).expect("classes.json");
    let classes: ClassesFile = serde_json::from_str(&json).expect("parse classes.json");
    assert_eq!(classes.classes, summary.classes);
    for family in [Family::Invariant, Family::Distinctive] {
        let count = classes
            .classes
            .iter()
            .filter(|c| c.family == family)
            .count();
        assert_eq!(count, TINY_CLASSES / 2, "{family:?}");
    }
    for class in &classes.classes {
        assert_eq!(names[&class.name], class.label);
    }

    // trainlist01.txt: "Class/v_Class_gXX_cYY.avi label"; testlist01.txt: path only.
    let train = read_lines(&out.join("trainlist01.txt"));
    let test = read_lines(&out.join("testlist01.txt"));
    assert_eq!(train.len(), TINY_CLASSES * TINY_TRAIN);
    assert_eq!(test.len(), TINY_CLASSES * TINY_TEST);
    let mut train_groups = BTreeSet::new();
    let mut videos: Vec<(String, PathBuf)> = Vec::new();
    for line in &train {
        let (path, label) = line.split_once(' ').expect("path and label");
        let class = path.split('/').next().expect("class dir");
        assert_eq!(label.parse::<usize>().expect("label"), names[class]);
        assert!(path.starts_with(&format!("{class}/v_{class}_g")), "{path}");
        train_groups.insert((class.to_string(), group_of(path)));
        videos.push((class.to_string(), out.join(path)));
    }
    for path in &test {
        assert!(!path.contains(' '), "{path}");
        let class = path.split('/').next().expect("class dir");
        assert!(
            !train_groups.contains(&(class.to_string(), group_of(path))),
            "test group of {path} also in train"
        );
        videos.push((class.to_string(), out.join(path)));
    }

    // Every video is real: its metadata reads with the configured geometry and frame count.
    for (_, path) in &videos {
        let info = read_info(path).expect("read_info");
        assert_eq!(info.frame_count, TINY_FRAMES, "{path:?}");
        assert_eq!(
            (info.width, info.height),
            (TINY_SIZE, TINY_SIZE),
            "{path:?}"
        );
        assert!((info.fps - 25.0).abs() < 1e-9, "{path:?}");
    }

    // Distinctive move classes move: centroid of the object against the group's background.
    let checked = check_travel(
        &videos,
        &[("DistMoveRight", 0, 1.0), ("DistMoveLeft", 0, -1.0)],
    );
    assert_eq!(checked, 2 * (TINY_TRAIN + TINY_TEST));
}

/// Checks that every video of a class in `moves` (class, axis 0 = x or 1 = y, sign) carries its
/// object at least [`MIN_TRAVEL_PX`] along that axis and in that direction, from the first frame
/// to the last, and less across it; returns how many videos were checked. The object is found
/// against each group's median background.
fn check_travel(videos: &[(String, PathBuf)], moves: &[(&str, usize, f64)]) -> usize {
    let mut checked = 0;
    for clips in frames_by_group(videos).values() {
        let pooled: Vec<RgbFrame> = clips.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        let background = median_background(&pooled);
        for (class, frames) in clips {
            let Some(&(_, axis, sign)) = moves.iter().find(|m| m.0 == class) else {
                continue;
            };
            let first = object_centroid(&frames[0], &background);
            let last = object_centroid(&frames[TINY_FRAMES - 1], &background);
            let along = |p: (f64, f64)| if axis == 0 { p.0 } else { p.1 };
            let across = |p: (f64, f64)| if axis == 0 { p.1 } else { p.0 };
            let travel = (along(last) - along(first)) * sign;
            assert!(
                travel >= MIN_TRAVEL_PX,
                "{class}: centroid {first:?} -> {last:?}"
            );
            assert!(
                (across(last) - across(first)).abs() < travel,
                "{class}: moved across its axis, {first:?} -> {last:?}"
            );
            checked += 1;
        }
    }
    checked
}

/// Each video's class and decoded frames, by group (a group shares its background).
fn frames_by_group(videos: &[(String, PathBuf)]) -> BTreeMap<usize, Vec<(String, Vec<RgbFrame>)>> {
    let mut by_group: BTreeMap<usize, Vec<(String, Vec<RgbFrame>)>> = BTreeMap::new();
    for (class, path) in videos {
        let group = group_of(&path.to_string_lossy());
        by_group
            .entry(group)
            .or_default()
            .push((class.clone(), all_frames(path)));
    }
    by_group
}

/// Every video of a generated set with its class directory, from the list files.
fn listed_videos(out: &Path) -> Vec<(String, PathBuf)> {
    let train = read_lines(&out.join("trainlist01.txt"));
    let test = read_lines(&out.join("testlist01.txt"));
    train
        .iter()
        .map(|line| line.split_once(' ').expect("path and label").0.to_string())
        .chain(test)
        .map(|path| {
            let class = path.split('/').next().expect("class dir").to_string();
            (class, out.join(path))
        })
        .collect()
}

#[test]
fn distinctive_changes_pick_the_pairs_and_keep_the_invariant_videos() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (default_out, vertical_out) = (dir.path().join("default"), dir.path().join("vertical"));
    let default = generate(&tiny_config(&default_out, 7)).expect("generate default");
    let vertical = generate(&SynthConfig {
        distinctive_changes: vec![DistinctiveChange::MoveVertical, DistinctiveChange::Scale],
        ..tiny_config(&vertical_out, 7)
    })
    .expect("generate vertical");
    let names = |classes: &[ClassInfo]| classes.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&default.classes),
        ["InvCircle", "InvCross", "DistMoveRight", "DistMoveLeft"]
    );
    assert_eq!(
        names(&vertical.classes),
        ["InvCircle", "InvCross", "DistMoveDown", "DistMoveUp"]
    );

    // Image y points down: moving down is +y.
    let checked = check_travel(
        &listed_videos(&vertical_out),
        &[("DistMoveDown", 1, 1.0), ("DistMoveUp", 1, -1.0)],
    );
    assert_eq!(checked, 2 * (TINY_TRAIN + TINY_TEST));

    // Same video numbers and streams: the invariant classes' files are identical.
    for class in ["InvCircle", "InvCross"] {
        let (a, b) = (
            all_files(&default_out.join(class)),
            all_files(&vertical_out.join(class)),
        );
        assert_eq!(a.len(), TINY_TRAIN + TINY_TEST, "{class}");
        assert!(
            a == b,
            "{class}: the invariant videos changed with distinctive_changes"
        );
    }
}

#[test]
fn posture_videos_lie_then_stand_and_their_reversals_stand_then_lie() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("posture");
    let summary = generate(&SynthConfig {
        distinctive_changes: vec![DistinctiveChange::Posture],
        ..tiny_config(&out, 7)
    })
    .expect("generate");
    let names: Vec<_> = summary.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["InvCircle", "InvCross", "DistStandUp", "DistLieDown"]
    );

    let mut checked = 0;
    for clips in frames_by_group(&listed_videos(&out)).values() {
        let pooled: Vec<RgbFrame> = clips.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
        let background = median_background(&pooled);
        for (class, frames) in clips {
            let standing_last = match class.as_str() {
                "DistStandUp" => true,
                "DistLieDown" => false,
                _ => continue,
            };
            let first = object_uprightness(&frames[0], &background);
            let last = object_uprightness(&frames[TINY_FRAMES - 1], &background);
            let (lying, standing) = if standing_last {
                (first, last)
            } else {
                (last, first)
            };
            assert!(
                standing >= MIN_UPRIGHTNESS_RATIO && lying <= 1.0 / MIN_UPRIGHTNESS_RATIO,
                "{class}: uprightness {first:.2} in the first frame, {last:.2} in the last"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * (TINY_TRAIN + TINY_TEST));
}

fn all_files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                let relative = path.strip_prefix(root).expect("prefix").to_path_buf();
                files.insert(relative, bytes);
            }
        }
    }
    files
}

#[test]
fn same_seed_gives_identical_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let [a, b, c] = ["a", "b", "c"].map(|n| dir.path().join(n));
    generate(&tiny_config(&a, 3)).expect("generate a");
    generate(&tiny_config(&b, 3)).expect("generate b");
    generate(&tiny_config(&c, 4)).expect("generate c");
    let (files_a, files_b, files_c) = (all_files(&a), all_files(&b), all_files(&c));
    assert_eq!(files_a.len(), TINY_CLASSES * (TINY_TRAIN + TINY_TEST) + 4);
    assert!(files_a == files_b, "same seed must give identical files");
    let videos_differ = files_a
        .iter()
        .filter(|(p, _)| p.extension().is_some_and(|e| e == "avi"))
        .all(|(p, bytes)| files_c.get(p) != Some(bytes));
    assert!(videos_differ, "a different seed must change every video");
}

#[test]
fn invalid_configs_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (classes, size) in [(3, 32), (0, 32), (100, 32), (4, 31), (4, 8)] {
        let cfg = SynthConfig {
            classes,
            size,
            ..tiny_config(dir.path(), 0)
        };
        assert!(generate(&cfg).is_err(), "classes {classes}, size {size}");
    }
    // 8 classes need 2 distinctive pairs; a pair may not be listed twice.
    let (scale, vertical) = (DistinctiveChange::Scale, DistinctiveChange::MoveVertical);
    for changes in [vec![scale], vec![vertical, vertical], vec![]] {
        let cfg = SynthConfig {
            classes: 8,
            distinctive_changes: changes.clone(),
            ..tiny_config(dir.path(), 0)
        };
        let error = generate(&cfg)
            .expect_err(&format!("{changes:?}"))
            .to_string();
        assert!(
            error.contains("distinctive_changes"),
            "{changes:?}: {error}"
        );
    }
}
