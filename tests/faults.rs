//! Runs that never lie: the cases a hostile new user found, each through the command line on
//! the tiny synthetic experiment — failed writes (injected with `TIMEBALANCE_FAIL_WRITE`, or
//! real: a file where a directory belongs), two commands on one run directory, a changed
//! configuration, a run name that points outside, settings that would train nothing, and the
//! per-stage count of skipped videos. Dataset entries outside `--data-root`, FIFOs and the
//! fault plan itself are tested next to their code (`datasets/generic.rs`, `metadata.rs`,
//! `disk.rs`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::pipeline::{command, read_json, run, text};

/// The environment variable of the fault plan (`timebalance::disk::FAULT_ENV`).
const FAULT: &str = "TIMEBALANCE_FAIL_WRITE";
/// How long a test waits for a background command to reach a point.
const WAIT: Duration = Duration::from_secs(600);
/// The cheapest command that prepares a run directory (data, labeled list, configuration)
/// without training: the `score` stage, which then stops for want of pre-trained teachers.
const PREPARE_ONLY: [&str; 4] = ["experiment", "synthetic", "--stages", "score"];
/// One stage that trains (width 4, 16 videos).
const PRETRAIN: [&str; 4] = ["experiment", "synthetic", "--stages", "pretrain_invariant"];

fn run_with_fault(args: &[&str], out: &Path, sets: &[&str], fault: &str) -> Output {
    command(args, out, sets)
        .env(FAULT, fault)
        .output()
        .expect("the binary runs")
}

/// The error of a command that must fail, with its output.
fn failure(out: &Output) -> String {
    let log = text(out);
    assert!(!out.status.success(), "expected a failure:\n{log}");
    assert!(
        !log.contains("panicked"),
        "a failure must be an error, not a panic:\n{log}"
    );
    log
}

/// The one prepare-only run's expected end: no teachers yet.
fn prepared(out: &Output) {
    let log = text(out);
    assert!(
        log.contains("run the stage `pretrain_invariant` first"),
        "expected the missing-teacher error:\n{log}"
    );
}

fn model_width(run_dir: &Path) -> i64 {
    let text = std::fs::read_to_string(run_dir.join("config.toml")).unwrap();
    let config: toml::Table = text.parse().unwrap();
    config["model"]["width"].as_integer().unwrap()
}

/// Hidden temporary files left anywhere under `dir`.
fn partial_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                stack.push(e.path());
            } else if name.ends_with(".partial") || name.contains(".partial.") {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

#[test]
fn a_failed_labeled_list_write_stops_the_run_and_a_cut_list_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synthetic");
    let log = failure(&run_with_fault(
        &PREPARE_ONLY,
        tmp.path(),
        &[],
        "labeled.txt:ENOSPC",
    ));
    assert!(
        log.contains("no space left on device while writing") && log.contains("labeled.txt"),
        "{log}"
    );
    assert!(!dir.join("labeled.txt").exists(), "no empty list left");
    assert!(
        !dir.join("config.toml").exists(),
        "config.toml is written after the checks"
    );
    assert!(partial_files(&dir).is_empty(), "{:?}", partial_files(&dir));

    prepared(&run(&PREPARE_ONLY, tmp.path(), &[]));
    let list = dir.join("labeled.txt");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains("# count: 8"), "{text}");
    // Cut at a line boundary: two of the eight paths gone.
    let lines: Vec<&str> = text.lines().collect();
    let cut: String = lines[..lines.len() - 2]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&list, cut).unwrap();
    let log = failure(&run(&PREPARE_ONLY, tmp.path(), &[]));
    assert!(
        log.contains("lists 6 labeled videos") && log.contains("count: 8"),
        "{log}"
    );
}

#[test]
fn a_failed_checkpoint_write_fails_the_stage_and_a_rerun_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let stage = tmp.path().join("synthetic/pretrain_invariant");
    let sets = ["pretrain.epochs=2"];
    let log = failure(&run_with_fault(
        &PRETRAIN,
        tmp.path(),
        &sets,
        "checkpoint/model-1:ENOSPC",
    ));
    assert!(
        log.contains("no space left on device while writing") && log.contains("model-1.mpk"),
        "{log}"
    );
    assert!(!stage.join("done.json").exists(), "not marked complete");
    assert!(!stage.join("model.mpk").exists());
    assert!(
        partial_files(&stage).is_empty(),
        "{:?}",
        partial_files(&stage)
    );

    // A real failure: a file where the checkpoint directory belongs.
    std::fs::remove_dir_all(&stage).unwrap();
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("checkpoint"), b"").unwrap();
    let log = failure(&run(&PRETRAIN, tmp.path(), &sets));
    assert!(log.contains("checkpoint"), "{log}");
    assert!(!stage.join("done.json").exists(), "not marked complete");

    std::fs::remove_file(stage.join("checkpoint")).unwrap();
    let out = run(&PRETRAIN, tmp.path(), &sets);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stage.join("done.json").is_file() && stage.join("model.mpk").is_file());
}

#[test]
fn a_failed_metric_log_write_is_one_error_not_a_panic_flood() {
    let tmp = tempfile::tempdir().unwrap();
    let log = failure(&run_with_fault(
        &PRETRAIN,
        tmp.path(),
        &["pretrain.epochs=2"],
        "train/epoch-1/:ENOSPC",
    ));
    assert!(
        log.contains("no space left on device while writing") && log.contains("epoch-1"),
        "{log}"
    );
    assert!(
        !tmp.path()
            .join("synthetic/pretrain_invariant/done.json")
            .exists()
    );
}

#[test]
fn a_second_command_on_a_run_directory_is_refused_until_the_first_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synthetic");
    let mut first = command(&PRETRAIN, tmp.path(), &["pretrain.epochs=100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    while !std::fs::read_to_string(dir.join("config.toml")).is_ok_and(|t| !t.is_empty()) {
        assert!(
            first.try_wait().unwrap().is_none(),
            "the first command ended early"
        );
        assert!(started.elapsed() < WAIT, "the first command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = run(&PREPARE_ONLY, tmp.path(), &[]);
    let holder = first.id();
    // SIGKILL: the OS releases the lock of a process however it ends.
    first.kill().unwrap();
    first.wait().unwrap();
    let log = failure(&second);
    assert!(
        log.contains("in use by another command") && log.contains(&format!("process {holder}")),
        "{log}"
    );
    let after = run(&PREPARE_ONLY, tmp.path(), &["pretrain.epochs=100"]);
    assert!(!text(&after).contains("in use"), "{}", text(&after));
    prepared(&after);
}

#[test]
fn a_changed_configuration_stops_before_any_work_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synthetic");
    prepared(&run(&PREPARE_ONLY, tmp.path(), &[]));
    assert_eq!(model_width(&dir), 4);

    let log = failure(&run(&PREPARE_ONLY, tmp.path(), &["model.width=8"]));
    assert!(
        log.contains("another configuration")
            && log.contains("model.width: 4 → 8")
            && log.contains("--force"),
        "{log}"
    );
    assert_eq!(
        model_width(&dir),
        4,
        "a refused rerun leaves config.toml alone"
    );

    // Loader workers do not change results: accepted as is.
    prepared(&run(&PREPARE_ONLY, tmp.path(), &["data.workers=1"]));

    // A directory made before a key existed (here: `model.channels`, at its default) is the
    // same configuration; the same key at another value is a difference.
    let config = dir.join("config.toml");
    let written = std::fs::read_to_string(&config).unwrap();
    let older: String = written
        .lines()
        .filter(|l| !l.starts_with("channels ="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(older, written, "config.toml has a `channels` key to remove");
    std::fs::write(&config, older).unwrap();
    prepared(&run(&PREPARE_ONLY, tmp.path(), &[]));
    let log = failure(&run(&PREPARE_ONLY, tmp.path(), &["model.channels=\"bgr\""]));
    assert!(log.contains("model.channels"), "{log}");

    let mut forced = PREPARE_ONLY.to_vec();
    forced.push("--force");
    let out = run(&forced, tmp.path(), &["model.width=8"]);
    prepared(&out);
    assert!(text(&out).contains("starting afresh"), "{}", text(&out));
    assert_eq!(model_width(&dir), 8);
}

#[test]
fn a_run_name_must_be_a_plain_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("...toml");
    std::fs::write(&file, "extends = \"synthetic\"\n").unwrap();
    let out_dir = tmp.path().join("runs");
    let out = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .arg("experiment")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let log = failure(&out);
    assert!(log.contains("plain NAME"), "{log}");
    assert!(!out_dir.exists(), "nothing written");
}

#[test]
fn settings_that_would_train_nothing_fail_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synthetic");
    let log = failure(&run(
        &["experiment", "synthetic"],
        tmp.path(),
        &["finetune.epochs=0"],
    ));
    assert!(log.contains("finetune.epochs must be at least 1"), "{log}");
    assert!(!dir.exists(), "nothing written");

    let log = failure(&run(
        &["experiment", "synthetic"],
        tmp.path(),
        &["data.labeled_per_class=100"],
    ));
    assert!(log.contains("every training video is labeled"), "{log}");
    assert!(!log.contains("starting"), "no stage started:\n{log}");
    assert!(!dir.join("config.toml").exists());
}

#[test]
fn skipped_videos_are_counted_per_stage_in_the_log_and_done_json() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("synthetic");
    prepared(&run(&PREPARE_ONLY, tmp.path(), &[]));
    let list = std::fs::read_to_string(dir.join("data/trainlist01.txt")).unwrap();
    let first = list.split_whitespace().next().unwrap();
    std::fs::write(dir.join("data").join(first), b"").unwrap();

    let stage = [
        "experiment",
        "synthetic",
        "--stages",
        "supervised_all_labels",
    ];
    let out = run(&stage, tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let done = read_json(&dir.join("supervised_all_labels/done.json"));
    assert_eq!(done["skipped_videos"], 1, "{done}");
    assert_eq!(done["skipped"][0], first, "{done}");
    let log = std::fs::read_to_string(dir.join("log.txt")).unwrap();
    assert!(
        log.contains("[supervised_all_labels] complete in")
            && log.contains("1 unreadable videos skipped"),
        "{log}"
    );
}
