//! `timebalance report`: what a finished run wrote, as figures (PNG and SVG, drawn with
//! plotters) and a markdown page linking them — training curves of every stage, per-class
//! accuracy of the student and each teacher ordered by the class's mean temporal-similarity
//! score (the paper's Figure 1 view), the score's histogram per class family, each model's
//! confusion matrix, and the metrics table; or several runs side by side (seeds, label
//! fractions). Reads only the files a run leaves (`metrics.json`, `STAGE/metrics.csv`,
//! `score/scores.tsv`), so it works on any run directory, finished or not.

pub mod figures;
mod run_files;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::disk::Disk;
use figures::{CURVES_SIZE, Categories, FIGURE_SIZE, Figure, Heatmap, Histogram, Lines, Panels};
use run_files::RunFiles;

/// The report's page, in the directory it is written to.
pub const REPORT_FILE: &str = "report.md";
/// Where the figures go, beside [`REPORT_FILE`].
pub const FIGURES_DIR: &str = "figures";
/// Bins of the score histogram.
const SCORE_BINS: usize = 40;
/// The models compared class by class (the student against each teacher).
const PER_CLASS_ROWS: [&str; 3] = ["student", "teacher_invariant", "teacher_distinctive"];

/// Write `report.md` and `figures/` for the run in `run_dir` into `out` (the run directory
/// itself unless given). Returns the page's path.
pub fn report_run(run_dir: &Path, out: Option<&Path>, disk: &Disk) -> Result<PathBuf> {
    let run = RunFiles::read(run_dir)?;
    let out = out.unwrap_or(run_dir);
    let figures = Figures::new(out, disk)?;
    let description = run
        .description
        .as_deref()
        .map(|d| format!("\n\n> {d}"))
        .unwrap_or_default();
    let mut md = format!(
        "# Report: {}\n\nRun directory `{}`; written by `timebalance report {}`. Every figure \
         is also an SVG beside its PNG.{description}\n",
        run.name,
        run_dir.display(),
        run_dir.display()
    );
    md.push_str(&run.metrics_table());
    md.push_str(&run.tstr_section());
    md.push_str(&run.prerequisites_section());

    md.push_str("\n## Training curves\n\n");
    if run.curves.is_empty() {
        md.push_str("No stage has written `metrics.csv` yet.\n");
    }
    for (stage, curves) in &run.curves {
        let link = figures.save(
            &format!("curves_{stage}"),
            &curves_figure(stage, curves),
            CURVES_SIZE,
        )?;
        md.push_str(&format!("### {stage}\n\n{link}\n\n"));
    }

    if let Some(classes) = &run.classes {
        md.push_str("\n## Per class, ordered by the mean temporal-similarity score\n\n");
        let (names, series) = classes.by_score(&PER_CLASS_ROWS);
        if series.is_empty() {
            md.push_str("No student or teacher row in `metrics.json`.\n");
        } else {
            let figure = Categories {
                title: "test top-1 per class (left: most temporally distinctive)".into(),
                x: "class, by its training videos' mean score s(v)".into(),
                y: "top-1 (%)".into(),
                names: names.clone(),
                series,
                y_range: (0.0, 100.0),
                lines: true,
            };
            md.push_str(&figures.save("per_class", &figure, FIGURE_SIZE)?);
            md.push_str(&format!(
                "\n\nClasses from left to right: {}.\n",
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| format!("{i} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    if let Some(samples) = run.score_samples() {
        md.push_str("\n## Temporal-similarity score of the training videos\n\n");
        let figure = Histogram {
            title: "s(v) per training video".into(),
            x: "s(v)".into(),
            samples,
            bins: SCORE_BINS,
        };
        md.push_str(&figures.save("scores", &figure, FIGURE_SIZE)?);
        md.push('\n');
    }

    if !run.confusions.is_empty() {
        md.push_str("\n## Confusion matrices (test split)\n\n");
        for (row, counts) in &run.confusions {
            let figure = Heatmap {
                title: format!("{row}: true class (rows) vs prediction"),
                names: run.class_names.clone(),
                counts: counts.clone(),
            };
            let link = figures.save(&format!("confusion_{row}"), &figure, FIGURE_SIZE)?;
            md.push_str(&format!("### {row}\n\n{link}\n\n"));
        }
    }
    let page = out.join(REPORT_FILE);
    disk.write_atomic(&page, md.as_bytes())?;
    Ok(page)
}

/// Write a side-by-side report of `runs` into `out`: each model's test top-1 per run, and each
/// stage's training loss per run. Returns the page's path.
pub fn compare_runs(runs: &[PathBuf], out: &Path, disk: &Disk) -> Result<PathBuf> {
    if runs.len() < 2 {
        bail!("comparing runs needs at least two run directories");
    }
    let runs: Vec<RunFiles> = runs
        .iter()
        .map(|r| RunFiles::read(r))
        .collect::<Result<_>>()?;
    let labels = run_labels(&runs);
    let figures = Figures::new(out, disk)?;
    let mut md = format!(
        "# Runs side by side\n\nWritten by `timebalance report {} --out {}`.\n\n",
        runs.iter()
            .map(|r| r.dir.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
        out.display()
    );
    md.push_str("| run | directory |\n| --- | --- |\n");
    for (label, r) in labels.iter().zip(&runs) {
        md.push_str(&format!("| {label} | `{}` |\n", r.dir.display()));
    }
    let models = run_files::models_in(&runs);
    md.push_str("\n## Test top-1 (%)\n\n| model |");
    for label in &labels {
        md.push_str(&format!(" {label} |"));
    }
    md.push_str("\n| --- |");
    md.push_str(&" ---: |".repeat(labels.len()));
    md.push('\n');
    for m in &models {
        md.push_str(&format!("| {m} |"));
        for r in &runs {
            md.push_str(&match r.top1(m) {
                Some(v) => format!(" {v:.2} |"),
                None => " – |".into(),
            });
        }
        md.push('\n');
    }
    if !models.is_empty() {
        let figure = Categories {
            title: "test top-1 per model and run".into(),
            x: "model".into(),
            y: "top-1 (%)".into(),
            names: models.clone(),
            series: labels
                .iter()
                .zip(&runs)
                .map(|(label, r)| (label.clone(), models.iter().map(|m| r.top1(m)).collect()))
                .collect(),
            y_range: (0.0, 100.0),
            lines: false,
        };
        md.push('\n');
        md.push_str(&figures.save("top1_by_run", &figure, FIGURE_SIZE)?);
        md.push('\n');
    }
    md.push_str("\n## Training loss per stage\n\n");
    let stages = run_files::stages_in(&runs);
    if stages.is_empty() {
        md.push_str("No run has a stage's `metrics.csv`.\n");
    }
    for stage in stages {
        let series = labels
            .iter()
            .zip(&runs)
            .filter_map(|(label, r)| Some((label.clone(), r.series(&stage, run_files::LOSS)?)))
            .collect();
        let figure = Lines {
            title: format!("{stage}: training loss"),
            x: "epoch".into(),
            y: "loss (epoch mean)".into(),
            series,
        };
        let link = figures.save(&format!("loss_{stage}"), &figure, FIGURE_SIZE)?;
        md.push_str(&format!("### {stage}\n\n{link}\n\n"));
    }
    let page = out.join(REPORT_FILE);
    disk.write_atomic(&page, md.as_bytes())?;
    Ok(page)
}

/// A name per run: the run directory's name, with its parent's where two runs share it
/// (`s0/synthetic_claim`, `s1/synthetic_claim`).
fn run_labels(runs: &[RunFiles]) -> Vec<String> {
    let names: Vec<String> = runs.iter().map(|r| r.name.clone()).collect();
    runs.iter()
        .map(|r| {
            let shared = names.iter().filter(|n| **n == r.name).count() > 1;
            match r.dir.parent().and_then(Path::file_name) {
                Some(parent) if shared => format!("{}/{}", parent.to_string_lossy(), r.name),
                _ => r.name.clone(),
            }
        })
        .collect()
}

/// A stage's metrics as three panels: every loss component, accuracy, learning rate.
fn curves_figure(stage: &str, curves: &run_files::Curves) -> Panels {
    let panel = |title: &str, y: &str, series| Lines {
        title: format!("{stage}: {title}"),
        x: "epoch".into(),
        y: y.into(),
        series,
    };
    Panels(vec![
        panel("losses", "epoch mean", curves.losses()),
        panel(
            "accuracy",
            "training top-1 (%)",
            curves.named(run_files::ACCURACY),
        ),
        panel(
            "learning rate",
            "last value of the epoch",
            curves.named(run_files::LEARNING_RATE),
        ),
    ])
}

/// Saves figures under `OUT/figures/` and gives the markdown that shows them.
struct Figures<'a> {
    dir: PathBuf,
    disk: &'a Disk,
}

impl<'a> Figures<'a> {
    fn new(out: &Path, disk: &'a Disk) -> Result<Self> {
        let dir = out.join(FIGURES_DIR);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir, disk })
    }

    /// Write `name.svg` and `name.png`; the markdown image (PNG) with a link to the SVG.
    fn save(&self, name: &str, figure: &impl Figure, size: (u32, u32)) -> Result<String> {
        let (svg, png) = figures::render(figure, size).with_context(|| format!("figure {name}"))?;
        self.disk
            .write_atomic(&self.dir.join(format!("{name}.svg")), svg.as_bytes())?;
        self.disk
            .write_atomic(&self.dir.join(format!("{name}.png")), &png)?;
        Ok(format!(
            "![{name}]({FIGURES_DIR}/{name}.png) ([SVG]({FIGURES_DIR}/{name}.svg))"
        ))
    }
}
