//! The whole method through the command line, on a tiny generated dataset on the CPU: every
//! stage, skipping finished stages, resuming a killed run, and configuration errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "learning/mod.rs"]
mod learning;

/// Overrides that shrink the built-in `synthetic` experiment to seconds: 4 classes × 4
/// training videos, 32×32 frames, width 4, one epoch per stage.
pub(crate) const TINY: &[&str] = &[
    "data.synthetic.classes=4",
    "data.synthetic.videos_per_class=4",
    "data.synthetic.test_videos_per_class=2",
    "data.synthetic.frames=24",
    "data.labeled_per_class=2",
    "model.width=4",
    "pretrain.epochs=1",
    "pretrain.batch_size=4",
    "finetune.epochs=1",
    "finetune.batch_size=4",
    "student.epochs=1",
    // The default (the release's): an epoch is one pass over the labeled set.
    "student.epoch=\"labeled\"",
    "student.batch_size=4",
    "baseline.epochs=1",
    "baseline.batch_size=4",
    "all_labels.epochs=1",
    "all_labels.batch_size=4",
    "student.warmup_epochs=0",
    "finetune.warmup_epochs=0",
    "baseline.warmup_epochs=0",
    "all_labels.warmup_epochs=0",
    "tstr.batch_size=4",
    "eval.clips=2",
    "eval.batch_size=4",
    "probe.enabled=true",
    "probe.epochs=2",
    "probe.clips=2",
    "probe.random_draws=2",
];

/// Iterations per pre-training epoch of [`TINY`]: 16 training videos in batches of 4.
const RESUME_ITERATIONS: usize = 4;

/// How long the resume test waits for the first checkpoint before giving up.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(600);

pub(crate) fn command(args: &[&str], out: &Path, extra_sets: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_timebalance"));
    c.args(args).arg("--out").arg(out);
    for s in TINY.iter().chain(extra_sets) {
        c.arg("--set").arg(s);
    }
    c
}

pub(crate) fn run(args: &[&str], out: &Path, extra_sets: &[&str]) -> Output {
    command(args, out, extra_sets)
        .output()
        .expect("the binary runs")
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub(crate) fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

const STAGES: [&str; 10] = [
    "pretrain_invariant",
    "pretrain_distinctive",
    "finetune_invariant",
    "finetune_distinctive",
    "score",
    "probe",
    "student",
    "student_average",
    "baseline",
    "supervised_all_labels",
];

#[test]
fn every_stage_runs_and_metrics_have_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(&["experiment", "synthetic"], tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tmp.path().join("synthetic");

    for stage in STAGES {
        assert!(
            dir.join(stage).join("done.json").is_file(),
            "{stage} not done"
        );
    }
    for stage in [
        "pretrain_invariant",
        "finetune_invariant",
        "student",
        "baseline",
    ] {
        assert!(dir.join(stage).join("model.mpk").is_file(), "{stage} model");
    }
    // The per-epoch table pandas reads: a row per epoch with every metric.
    let csv = std::fs::read_to_string(dir.join("baseline/metrics.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 2, "{csv}");
    for column in [
        "epoch",
        "split",
        "Loss",
        "Accuracy",
        "Learning Rate",
        "ClipsPerSecond",
    ] {
        assert!(rows[0].split(',').any(|c| c == column), "{column}: {csv}");
    }
    assert!(rows[1].starts_with("1,train,"), "{csv}");
    // Burn's application log: each training stage's records in its own directory (burn-train's
    // own logger put every stage's into the first stage's file).
    for stage in [
        "pretrain_invariant",
        "pretrain_distinctive",
        "finetune_invariant",
        "student",
        "baseline",
    ] {
        let path = dir.join(stage).join("experiment.log");
        let log =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            log.contains("Executing training step for epoch 1"),
            "{}:\n{log}",
            path.display()
        );
    }
    // burn-train's per-epoch metric logs: every loss component, accuracy, lr, throughput.
    for (stage, metric) in [
        ("pretrain_invariant", "global"),
        ("pretrain_invariant", "dense"),
        ("pretrain_distinctive", "local_local"),
        ("pretrain_distinctive", "global_local"),
        ("finetune_distinctive", "Accuracy"),
        ("student", "distill_unlabeled"),
        ("student", "ce"),
        ("baseline", "Learning_Rate"),
        ("baseline", "ClipsPerSecond"),
    ] {
        let log = dir
            .join(stage)
            .join("train/epoch-1")
            .join(format!("{metric}.log"));
        assert!(log.is_file(), "missing {}", log.display());
    }

    let scores = std::fs::read_to_string(dir.join("score/scores.tsv")).unwrap();
    let rows: Vec<&str> = scores.lines().skip(1).collect();
    assert_eq!(rows.len(), 16, "one score per training video");
    for row in rows {
        let s: f32 = row.split('\t').nth(2).unwrap().parse().unwrap();
        assert!((-1.0..=1.0).contains(&s), "score {s} out of [-1, 1]");
    }

    let m = read_json(&dir.join("metrics.json"));
    for row in [
        "student",
        "teacher_invariant",
        "teacher_distinctive",
        "teacher_average",
        "baseline_supervised",
        "supervised_all_labels",
    ] {
        for family in ["invariant", "distinctive"] {
            let v = m[row]["families"][family].as_f64();
            assert!(
                v.is_some_and(|v| (0.0..=100.0).contains(&v)),
                "{row}.families.{family} in {m}"
            );
        }
        for key in ["top1", "top5", "mean_class_acc"] {
            let v = m[row][key]
                .as_f64()
                .unwrap_or_else(|| panic!("{row}.{key} in {m}"));
            assert!((0.0..=100.0).contains(&v), "{row}.{key} = {v}");
        }
        assert_eq!(m[row]["videos"], 8, "{row}: every test video evaluated");
        let confusion: u64 = m[row]["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap())
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(confusion, 8);
    }
    let tstr = &m["tstr"];
    for key in [
        "score_mean_invariant_classes",
        "score_mean_distinctive_classes",
    ] {
        assert!(tstr[key].as_f64().is_some(), "tstr.{key} in {m}");
    }
    let auroc = tstr["auroc"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auroc));
    for backbone in ["random", "invariant", "distinctive"] {
        for split in ["train_top1", "test_top1"] {
            let v = m["probe"][backbone][split].as_f64();
            assert!(
                v.is_some_and(|v| (0.0..=100.0).contains(&v)),
                "probe.{backbone}.{split} in {m}"
            );
        }
    }
    // The random reference is the mean of its draws, each kept.
    let draws = m["probe"]["random"]["test_top1_draws"].as_array().unwrap();
    assert_eq!(draws.len(), 2, "probe.random.test_top1_draws in {m}");
    let mean = draws.iter().map(|d| d.as_f64().unwrap()).sum::<f64>() / 2.0;
    let reported = m["probe"]["random"]["test_top1"].as_f64().unwrap();
    assert!((mean - reported).abs() < 1e-9, "{mean} vs {reported}");
    let classes = m["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 4);
    assert!(classes.iter().all(|c| c["score_mean"].as_f64().is_some()));
    for file in ["config.toml", "log.txt", "labeled.txt", "classes.txt"] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    predict_agrees_with_eval(&dir);
    reports_are_drawn(&dir, tmp.path());

    // A second run skips every finished stage; a stage subcommand reruns evaluation.
    let again = run(&["experiment", "synthetic"], tmp.path(), &[]);
    assert!(again.status.success(), "{}", text(&again));
    let skipped = text(&again).matches("already complete, skipped").count();
    assert_eq!(skipped, STAGES.len(), "{}", text(&again));
    std::fs::remove_file(dir.join("metrics.json")).unwrap();
    let eval = run(&["eval", "synthetic"], tmp.path(), &[]);
    assert!(eval.status.success(), "{}", text(&eval));
    assert!(dir.join("metrics.json").is_file());

    // Runs side by side: the same run twice gives zero standard errors, the paired
    // differences are the run's own; the prerequisites are re-decided from the files.
    let md_path = tmp.path().join("summary.md");
    let summary = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .arg("summarize")
        .args([&dir, &dir])
        .arg("--out")
        .arg(&md_path)
        .output()
        .unwrap();
    assert!(summary.status.success(), "{}", text(&summary));
    let md = std::fs::read_to_string(&md_path).unwrap();
    assert_eq!(md, String::from_utf8_lossy(&summary.stdout));
    let student = m["student"]["top1"].as_f64().unwrap();
    assert!(
        md.contains(&format!("| student | {student:.2} ± 0.00 |")),
        "{md}"
    );
    let gap = student - m["baseline_supervised"]["top1"].as_f64().unwrap();
    assert!(
        md.contains(&format!("| baseline_supervised | {gap:.2} ± 0.00 |")),
        "{md}"
    );
    let probe = |teacher: &str| m["probe"][teacher]["test_top1"].as_f64().unwrap();
    let over_random = probe("invariant") - probe("random");
    assert!(
        md.contains(&format!(
            "| invariant teacher − random features, all classes | {over_random:.2} ± 0.00 |"
        )),
        "{md}"
    );
    assert!(md.contains("| (a) |") && md.contains("| (e) |"), "{md}");
    assert!(
        md.contains("2 run(s), at least 3 needed: DOES NOT HOLD"),
        "{md}"
    );
    let missing = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .args(["summarize"])
        .arg(tmp.path().join("nothing-here"))
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("nothing-here"),
        "{}",
        text(&missing)
    );
}

/// `predict` on a run's test videos gives each the class `eval` predicted for it
/// (`predictions.tsv`), with the run's class names; an unreadable file among them is listed
/// and fails the command, the others still answered.
fn predict_agrees_with_eval(dir: &Path) {
    let table = std::fs::read_to_string(dir.join("predictions.tsv")).unwrap();
    let mut rows = table.lines();
    let header: Vec<&str> = rows.next().unwrap().split('\t').collect();
    let student = header
        .iter()
        .position(|h| *h == "student")
        .expect("student column");
    let expected: Vec<(PathBuf, String)> = rows
        .map(|r| {
            let cells: Vec<&str> = r.split('\t').collect();
            (dir.join("data").join(cells[0]), cells[student].to_string())
        })
        .collect();
    assert_eq!(expected.len(), 8, "every test video has a row: {table}");
    let videos: Vec<&PathBuf> = expected.iter().map(|(v, _)| v).collect();
    let predict = |extra: &[&Path]| {
        Command::new(env!("CARGO_BIN_EXE_timebalance"))
            .arg("predict")
            .args(&videos)
            .args(extra)
            .args(["--top", "2", "--json", "--checkpoint"])
            .arg(dir.join("student"))
            .output()
            .unwrap()
    };
    let out = predict(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let predictions = report["predictions"].as_array().unwrap();
    assert_eq!(predictions.len(), expected.len(), "{report}");
    for (p, (video, class)) in predictions.iter().zip(&expected) {
        assert_eq!(p["video"].as_str().unwrap(), video.to_str().unwrap());
        assert_eq!(p["top"].as_array().unwrap().len(), 2, "{p}");
        assert_eq!(p["top"][0]["class"].as_str().unwrap(), class, "{p}");
        let (p0, p1) = (
            p["top"][0]["probability"].as_f64().unwrap(),
            p["top"][1]["probability"].as_f64().unwrap(),
        );
        assert!(p0 >= p1 && p0 <= 1.0, "{p}");
    }
    let broken = dir.join("not_a_video.avi");
    std::fs::write(&broken, b"not a video").unwrap();
    let out = predict(&[broken.as_path()]);
    assert!(!out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["predictions"].as_array().unwrap().len(),
        expected.len()
    );
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{report}");
    assert_eq!(unreadable[0]["video"].as_str(), broken.to_str());
    assert!(
        text(&out).contains("1 of 9 files could not be read"),
        "{}",
        text(&out)
    );
    std::fs::remove_file(&broken).unwrap();
    // A run directory is not a checkpoint: the error says which to give.
    let out = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .arg("predict")
        .arg(videos[0])
        .arg("--checkpoint")
        .arg(dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("RUN_DIR/student"), "{}", text(&out));
}

/// A PNG that decodes, of the expected size, not blank; an SVG that parses as XML with an
/// `svg` root and some text.
fn check_figure(png_path: &Path) {
    let file =
        std::fs::File::open(png_path).unwrap_or_else(|e| panic!("{}: {e}", png_path.display()));
    let mut reader = png::Decoder::new(std::io::BufReader::new(file))
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", png_path.display()));
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert!(
        info.width >= 640 && info.height >= 400,
        "{}",
        png_path.display()
    );
    let inked = pixels.iter().filter(|&&v| v < 128).count();
    assert!(
        inked > 1000,
        "{}: only {inked} dark values",
        png_path.display()
    );
    let svg_path = png_path.with_extension("svg");
    let svg = std::fs::read(&svg_path).unwrap();
    let mut root = None;
    let mut texts = 0;
    for event in xml::reader::EventReader::new(svg.as_slice()) {
        let event = event.unwrap_or_else(|e| panic!("{}: {e}", svg_path.display()));
        if let xml::reader::XmlEvent::StartElement { name, .. } = event {
            root.get_or_insert(name.local_name.clone());
            texts += usize::from(name.local_name == "text");
        }
    }
    assert_eq!(root.as_deref(), Some("svg"), "{}", svg_path.display());
    assert!(texts > 0, "{}: no text", svg_path.display());
}

/// `experiment` drew the run's report: every figure the page links decodes, and the page
/// holds the metrics table; `report A B --out` compares runs; a directory that is not a run
/// is an error naming it.
fn reports_are_drawn(dir: &Path, tmp: &Path) {
    let page = std::fs::read_to_string(dir.join("report.md")).expect("experiment wrote report.md");
    let m = read_json(&dir.join("metrics.json"));
    let student = m["student"]["top1"].as_f64().unwrap();
    assert!(
        page.contains(&format!("| student | {student:.2} |")),
        "{page}"
    );
    let mut figures: Vec<String> = page
        .split("](figures/")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|f| f.ends_with(".png"))
        .map(str::to_string)
        .collect();
    figures.sort();
    for expected in [
        "curves_pretrain_invariant.png",
        "curves_student.png",
        "curves_baseline.png",
        "per_class.png",
        "scores.png",
        "confusion_student.png",
        "confusion_supervised_all_labels.png",
    ] {
        assert!(
            figures.iter().any(|f| f == expected),
            "{expected} in {figures:?}"
        );
    }
    for f in &figures {
        check_figure(&dir.join("figures").join(f));
    }
    let compared = tmp.join("compared");
    let out = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .arg("report")
        .args([dir, dir])
        .arg("--out")
        .arg(&compared)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let page = std::fs::read_to_string(compared.join("report.md")).unwrap();
    assert!(
        page.contains(&format!("| student | {student:.2} | {student:.2} |")),
        "{page}"
    );
    check_figure(&compared.join("figures/top1_by_run.png"));
    check_figure(&compared.join("figures/loss_student.png"));
    let out = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .arg("report")
        .arg(dir.join("student"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing to report"), "{}", text(&out));
}

fn checkpoint_files(stage_dir: &Path, epoch: usize) -> Vec<PathBuf> {
    ["model", "optim", "scheduler"]
        .iter()
        .map(|p| {
            stage_dir
                .join("checkpoint")
                .join(format!("{p}-{epoch}.mpk"))
        })
        .collect()
}

#[test]
fn a_killed_stage_resumes_from_its_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let epochs = ["pretrain.epochs=6"];
    let args = ["experiment", "synthetic", "--stages", "pretrain_invariant"];
    let stage_dir = tmp.path().join("synthetic/pretrain_invariant");

    let mut child = command(&args, tmp.path(), &epochs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let started = Instant::now();
    while !checkpoint_files(&stage_dir, 1).iter().all(|f| f.is_file()) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before its first checkpoint");
        }
        assert!(
            started.elapsed() < CHECKPOINT_WAIT,
            "no checkpoint after {CHECKPOINT_WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGKILL: no chance to clean up, as with a crash or a pulled plug.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !stage_dir.join("done.json").exists(),
        "the stage was killed before the end"
    );
    assert!(!stage_dir.join("model.mpk").exists());

    let out = run(&args, tmp.path(), &epochs);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    let resumed = log
        .lines()
        .find(|l| l.contains("resuming from the checkpoint of epoch"))
        .unwrap_or_else(|| panic!("no resume line in:\n{log}"));
    let epoch: usize = resumed
        .split("epoch ")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert!((1..6).contains(&epoch), "{resumed}");
    // Training went on from there, not from epoch 1, and finished.
    assert!(!log.contains("train epoch 1/6"), "{log}");
    assert!(log.contains("train epoch 6/6"), "{log}");
    assert!(stage_dir.join("done.json").is_file());
    assert!(stage_dir.join("model.mpk").is_file());
    // Every epoch's metric files hold one value per iteration: the resumed epoch replaced
    // what the killed attempt had written there.
    for epoch in 1..=6 {
        let epoch_dir = stage_dir.join(format!("train/epoch-{epoch}"));
        let files: Vec<PathBuf> = std::fs::read_dir(&epoch_dir)
            .unwrap_or_else(|e| panic!("{}: {e}", epoch_dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!files.is_empty(), "{}", epoch_dir.display());
        for f in files {
            let lines = std::fs::read_to_string(&f).unwrap().lines().count();
            assert_eq!(lines, RESUME_ITERATIONS, "{}", f.display());
        }
    }
    // metrics.csv keeps the killed attempt's finished epochs and adds the resumed ones: one row
    // per epoch.
    let csv = std::fs::read_to_string(stage_dir.join("metrics.csv")).unwrap();
    let epochs: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(epochs, ["1", "2", "3", "4", "5", "6"], "{csv}");
}

#[test]
fn configuration_errors_are_reported_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let bad_key = run(
        &["experiment", "synthetic"],
        tmp.path(),
        &["pretrain.epoch=3"],
    );
    assert!(!bad_key.status.success());
    assert!(
        text(&bad_key).contains("pretrain.epoch"),
        "{}",
        text(&bad_key)
    );
    let bad_type = run(
        &["experiment", "synthetic"],
        tmp.path(),
        &["pretrain.epochs=\"x\""],
    );
    assert!(!bad_type.status.success());
    assert!(text(&bad_type).contains("epochs"), "{}", text(&bad_type));
    assert!(
        !tmp.path().join("synthetic").exists(),
        "nothing written on a bad config"
    );

    let no_root = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .args(["experiment", "ucf101_1pct_r18", "--out"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!no_root.status.success());
    assert!(text(&no_root).contains("--data-root"), "{}", text(&no_root));

    let list = Command::new(env!("CARGO_BIN_EXE_timebalance"))
        .arg("experiments")
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(names.len(), 24, "{names:?}");
    for n in [
        "synthetic",
        "synthetic_claim",
        "ucf101_1pct",
        "hmdb51_60pct_r18",
        "k400_10pct",
    ] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
}
