//! The command line, run as a user would: `data frames` against FFmpeg's own decode,
//! `data splits`, `data check`, `data synth`, device errors, weights import.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::ffmpeg::{ALL_FORMATS, make_video, reference_frames};
use crate::common::golden_dir;
use timebalance::data::video::read_ppm;

fn timebalance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn synth(dir: &Path) -> PathBuf {
    let root = dir.join("synth");
    let out = timebalance(&[
        "data",
        "synth",
        "--out",
        root.to_str().unwrap(),
        "--classes",
        "4",
        "--videos-per-class",
        "3",
        "--test-videos-per-class",
        "1",
        "--frames",
        "24",
        "--size",
        "32",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    root
}

#[test]
fn data_frames_match_ffmpegs_own_decode() {
    let dir = tempfile::tempdir().unwrap();
    let indices = [0usize, 17, 33, 34, 90, 119];
    let list = indices.map(|i| i.to_string()).join(",");
    for format in ALL_FORMATS {
        let video = make_video(dir.path(), format);
        let reference = reference_frames(&video);
        let out_dir = dir.path().join(format!("frames_{}", format.name));
        let out = timebalance(&[
            "data",
            "frames",
            video.to_str().unwrap(),
            "--indices",
            &list,
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}: {}", format.name, text(&out));
        for &i in &indices {
            let frame = read_ppm(&out_dir.join(format!("frame_{i}.ppm"))).unwrap();
            assert_eq!(
                frame.data, reference[i],
                "{}: frame {i} differs from ffmpeg",
                format.name
            );
        }
    }
}

#[test]
fn data_frames_reports_a_bad_index_and_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let frames = |indices: &str| {
        timebalance(&[
            "data",
            "frames",
            "/nonexistent.avi",
            "--indices",
            indices,
            "--out",
            out_dir.to_str().unwrap(),
        ])
    };
    let out = frames("0");
    assert!(!out.status.success());
    assert!(text(&out).contains("/nonexistent.avi"), "{}", text(&out));
    let out = frames("1,x");
    assert!(!out.status.success());
    assert!(text(&out).contains("\"x\""), "{}", text(&out));
}

#[test]
fn data_splits_are_balanced_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth(dir.path());
    let split = |name: &str, seed: &str| {
        let path = dir.path().join(name);
        let out = timebalance(&[
            "data",
            "splits",
            "--dataset",
            "ucf101",
            "--root",
            root.to_str().unwrap(),
            "--per-class",
            "1",
            "--seed",
            seed,
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("4 labeled"), "{}", text(&out));
        std::fs::read_to_string(path).unwrap()
    };
    let a = split("a.txt", "0");
    let b = split("b.txt", "0");
    assert_eq!(a, b);
    let labeled: Vec<&str> = a
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(labeled.len(), 4);
    let classes: std::collections::BTreeSet<&str> = labeled
        .iter()
        .map(|l| l.split('/').next().unwrap())
        .collect();
    assert_eq!(classes.len(), 4, "one per class: {labeled:?}");
}

#[test]
fn data_check_reports_corrupt_videos() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth(dir.path());
    let out = timebalance(&[
        "data",
        "check",
        "--dataset",
        "ucf101",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("checked 16 videos: 0 unreadable"),
        "{}",
        text(&out)
    );
    // Corrupt one training video: zero bytes.
    let train = std::fs::read_to_string(root.join("trainlist01.txt")).unwrap();
    let victim = train
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    std::fs::write(root.join(victim), b"").unwrap();
    let out = timebalance(&[
        "data",
        "check",
        "--dataset",
        "ucf101",
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let report = text(&out);
    assert!(
        report.contains("unreadable") && report.contains(victim),
        "{report}"
    );
    assert!(report.contains("1 unreadable"), "{report}");
}

#[test]
fn devices_not_compiled_in_name_their_feature() {
    for (device, feature) in [("cuda", "cuda"), ("metal", "metal"), ("vulkan", "vulkan")] {
        if cfg!(feature = "cuda") && feature == "cuda" {
            continue;
        }
        let out = timebalance(&["smoke", "--device", device]);
        assert!(!out.status.success());
        assert!(
            text(&out).contains(&format!("--features {feature}")),
            "{}",
            text(&out)
        );
    }
    let out = timebalance(&["smoke", "--device", "tpu"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("unknown device"), "{}", text(&out));
}

#[test]
fn smoke_trains_on_the_cpu() {
    let out = timebalance(&["smoke", "--device", "cpu", "--steps", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("smoke ok"), "{}", text(&out));
}

#[test]
fn weights_import_writes_a_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("r3d_tiny");
    let weights = golden_dir().join("r3d_tiny.safetensors");
    let import = |arch: &str| {
        timebalance(&[
            "weights",
            "import",
            weights.to_str().unwrap(),
            "--arch",
            arch,
            "--width",
            "8",
            "--classes",
            "5",
            "--out",
            out_path.to_str().unwrap(),
        ])
    };
    let out = import("r3d18");
    assert!(out.status.success(), "{}", text(&out));
    assert!(out_path.with_extension("mpk").exists());
    let out = import("r2plus1d18");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not fit the model"),
        "{}",
        text(&out)
    );
}

#[test]
fn data_clips_writes_what_each_recipe_feeds_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let root = synth(dir.path());
    let video = std::fs::read_dir(root.join("InvCircle"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "avi"))
        .expect("a generated video");
    // (recipe, clips, frames per clip): SSL 2 views × (sparse + 4 dense) of 16 frames,
    // train one clip of 8, eval 10 clips of 8.
    for (recipe, clips, frames) in [("ssl", 10, 16), ("train", 1, 8), ("eval", 10, 8)] {
        let out_dir = dir.path().join(recipe);
        let out = timebalance(&[
            "data",
            "clips",
            video.to_str().unwrap(),
            "--recipe",
            recipe,
            "--size",
            "24",
            "--out",
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{recipe}: {}", text(&out));
        let files = std::fs::read_dir(&out_dir).unwrap().count();
        assert_eq!(files, clips * frames, "{recipe}");
        let frame = read_ppm(&out_dir.join("clip0_frame00.ppm")).unwrap();
        assert_eq!((frame.width, frame.height), (24, 24));
        assert!(frame.data.iter().any(|&v| v > 0), "{recipe}: a blank frame");
    }
}

/// Every command and subcommand answers `--help`: the binary is built with debug assertions,
/// under which clap checks each command it builds (conflicting flags, duplicate names, bad
/// defaults) — the check `Command::debug_assert` makes, reached through the real binary.
#[test]
fn every_command_has_consistent_help() {
    let mut pending: Vec<Vec<String>> = vec![Vec::new()];
    let mut checked = 0;
    while let Some(path) = pending.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = timebalance(&args);
        let help = text(&out);
        assert!(out.status.success(), "{args:?}: {help}");
        checked += 1;
        for name in subcommands(&help).into_iter().filter(|n| n != "help") {
            let mut sub = path.clone();
            sub.push(name);
            pending.push(sub);
        }
    }
    // info, smoke, experiment, the stage commands, summarize, data (+5), bench (+5), weights (+1)…
    assert!(checked >= 20, "only {checked} commands answered --help");
}

/// The names listed under `Commands:` of a clap help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}
