//! What a run directory holds, read for the report: `metrics.json` (the `eval` stage),
//! each stage's `metrics.csv`, `score/scores.tsv`, `config.toml`'s description and
//! `classes.txt`. Every file is optional; a run with none of them is an error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::pipeline::context::{
    CLASSES_FILE, CONFIG_FILE, METRICS_FILE, SCORES_FILE, read_class_list,
};
use crate::pipeline::metric_files::{METRICS_CSV, read_table};
use crate::pipeline::stage::Stage;
use crate::pipeline::stages::evaluate::EVAL_ROWS;
use crate::pipeline::stages::score::{VideoScore, read_scores};

/// The optimised loss's column in `metrics.csv`.
pub const LOSS: &str = "Loss";
/// The training accuracy's column.
pub const ACCURACY: &str = "Accuracy";
/// The learning rate's column (its last value in the epoch).
pub const LEARNING_RATE: &str = "Learning Rate";
/// Throughput: not a curve of the report.
const CLIPS_PER_SECOND: &str = "ClipsPerSecond";
/// The rows of `metrics.csv` the curves are drawn from.
const TRAIN_SPLIT: &str = "train";

/// One stage's `metrics.csv`: epoch → metric → value (training split).
pub struct Curves(BTreeMap<usize, BTreeMap<String, f64>>);

impl Curves {
    fn read(path: &Path) -> Result<Self> {
        let table = read_table(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self(
            table
                .into_iter()
                .filter(|((_, split), _)| split == TRAIN_SPLIT)
                .map(|((epoch, _), row)| (epoch, row))
                .collect(),
        ))
    }

    /// `metric` per epoch, if the stage logged it.
    pub fn series(&self, metric: &str) -> Option<Vec<(f64, f64)>> {
        let points: Vec<(f64, f64)> = self
            .0
            .iter()
            .filter_map(|(&epoch, row)| row.get(metric).map(|&v| (epoch as f64, v)))
            .collect();
        (!points.is_empty()).then_some(points)
    }

    /// `metric` as a one-series list (empty when absent).
    pub fn named(&self, metric: &str) -> Vec<(String, Vec<(f64, f64)>)> {
        self.series(metric)
            .map(|p| vec![(metric.to_string(), p)])
            .unwrap_or_default()
    }

    /// Every loss column: the optimised loss and each component the stage logs.
    pub fn losses(&self) -> Vec<(String, Vec<(f64, f64)>)> {
        let mut names: Vec<&String> = self.0.values().flat_map(|row| row.keys()).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|n| ![ACCURACY, LEARNING_RATE, CLIPS_PER_SECOND].contains(&n.as_str()))
            .filter_map(|n| Some((n.clone(), self.series(n)?)))
            .collect()
    }
}

/// One class's line of `metrics.json`.
pub struct ClassLine {
    pub name: String,
    pub family: Option<String>,
    pub score_mean: Option<f64>,
    pub accuracy: BTreeMap<String, Option<f64>>,
}

/// `metrics.json`'s `classes`.
pub struct ClassTable(pub Vec<ClassLine>);

/// Named series over the classes (one value per class, `None` where undefined).
type ClassSeries = Vec<(String, Vec<Option<f64>>)>;

impl ClassTable {
    fn from_metrics(metrics: &Value) -> Option<Self> {
        let lines = metrics.get("classes")?.as_array()?;
        Some(Self(
            lines
                .iter()
                .map(|c| ClassLine {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    family: c["family"].as_str().map(str::to_string),
                    score_mean: c["score_mean"].as_f64(),
                    accuracy: c["accuracy"]
                        .as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_f64())).collect())
                        .unwrap_or_default(),
                })
                .collect(),
        ))
    }

    /// The class names ordered by mean score (lowest first: the most temporally distinctive;
    /// classes without a score last, in label order) and each of `rows`' accuracy in that
    /// order (rows without any value are left out).
    pub fn by_score(&self, rows: &[&str]) -> (Vec<String>, ClassSeries) {
        let mut order: Vec<usize> = (0..self.0.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| self.0[i].score_mean.unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        });
        let names = order.iter().map(|&i| self.0[i].name.clone()).collect();
        let series = rows
            .iter()
            .map(|row| {
                let values: Vec<Option<f64>> = order
                    .iter()
                    .map(|&i| self.0[i].accuracy.get(*row).copied().flatten())
                    .collect();
                (row.to_string(), values)
            })
            .filter(|(_, v)| v.iter().any(Option::is_some))
            .collect();
        (names, series)
    }
}

/// Everything the report reads from one run directory.
pub struct RunFiles {
    pub dir: PathBuf,
    /// The run directory's name.
    pub name: String,
    pub description: Option<String>,
    pub metrics: Option<Value>,
    /// Stage name → its curves, in stage order.
    pub curves: Vec<(String, Curves)>,
    pub classes: Option<ClassTable>,
    pub class_names: Vec<String>,
    /// Evaluated model → confusion counts `[true][predicted]`.
    pub confusions: Vec<(String, Vec<Vec<usize>>)>,
    pub scores: Option<Vec<VideoScore>>,
}

impl RunFiles {
    pub fn read(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{}: not a run directory", dir.display());
        }
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        let description = std::fs::read_to_string(dir.join(CONFIG_FILE))
            .ok()
            .and_then(|t| t.parse::<toml::Table>().ok())
            .and_then(|t| t.get("description")?.as_str().map(str::to_string));
        let metrics_path = dir.join(METRICS_FILE);
        let metrics: Option<Value> = if metrics_path.is_file() {
            let text = std::fs::read_to_string(&metrics_path)
                .with_context(|| format!("reading {}", metrics_path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{}: not JSON", metrics_path.display()))?,
            )
        } else {
            None
        };
        let mut curves = Vec::new();
        for stage in Stage::ALL {
            let path = dir.join(stage.name()).join(METRICS_CSV);
            if path.is_file() {
                curves.push((stage.name().to_string(), Curves::read(&path)?));
            }
        }
        if metrics.is_none() && curves.is_empty() {
            bail!(
                "{}: nothing to report (no {METRICS_FILE} and no STAGE/{METRICS_CSV}); is this a run directory?",
                dir.display()
            );
        }
        let classes = metrics.as_ref().and_then(ClassTable::from_metrics);
        let class_names = if dir.join(CLASSES_FILE).is_file() {
            read_class_list(&dir.join(CLASSES_FILE))?
        } else {
            classes
                .as_ref()
                .map(|c| c.0.iter().map(|l| l.name.clone()).collect())
                .unwrap_or_default()
        };
        let confusions = metrics
            .as_ref()
            .map(|m| {
                EVAL_ROWS
                    .iter()
                    .filter_map(|(row, _)| Some((row.to_string(), confusion(&m[*row])?)))
                    .filter(|(_, c)| c.len() == class_names.len())
                    .collect()
            })
            .unwrap_or_default();
        let scores_path = dir.join(Stage::Score.name()).join(SCORES_FILE);
        let scores = if scores_path.is_file() {
            Some(read_scores(&scores_path)?)
        } else {
            None
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            name,
            description,
            metrics,
            curves,
            classes,
            class_names,
            confusions,
            scores,
        })
    }

    /// A model's test top-1, if evaluated.
    pub fn top1(&self, model: &str) -> Option<f64> {
        self.metrics.as_ref()?.get(model)?.get("top1")?.as_f64()
    }

    /// A stage's `metric` per epoch.
    pub fn series(&self, stage: &str, metric: &str) -> Option<Vec<(f64, f64)>> {
        self.curves
            .iter()
            .find(|(s, _)| s == stage)
            .and_then(|(_, c)| c.series(metric))
    }

    /// The training videos' scores, per class family where the families are known.
    pub fn score_samples(&self) -> Option<Vec<(String, Vec<f64>)>> {
        let scores = self.scores.as_ref()?;
        let family = |label: usize| -> Option<&str> {
            self.classes.as_ref()?.0.get(label)?.family.as_deref()
        };
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in scores {
            let group = family(s.label).map_or("every training video".to_string(), |f| {
                format!("{f} classes")
            });
            groups.entry(group).or_default().push(s.score as f64);
        }
        Some(groups.into_iter().collect())
    }

    /// The accuracy table of `metrics.json`, as markdown.
    pub fn metrics_table(&self) -> String {
        let Some(m) = &self.metrics else {
            return format!(
                "\n## Test accuracy\n\nNo `{METRICS_FILE}` yet (the `eval` stage writes it).\n"
            );
        };
        let mut md = String::from(
            "\n## Test accuracy (%)\n\n| model | top-1 | top-5 | mean class | invariant classes | distinctive classes | videos |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        let number = |v: &Value| v.as_f64().map_or("–".to_string(), |x| format!("{x:.2}"));
        for (row, _) in EVAL_ROWS {
            let r = &m[row];
            if r.is_null() {
                continue;
            }
            md.push_str(&format!(
                "| {row} | {} | {} | {} | {} | {} | {} |\n",
                number(&r["top1"]),
                number(&r["top5"]),
                number(&r["mean_class_acc"]),
                number(&r["families"]["invariant"]),
                number(&r["families"]["distinctive"]),
                r["videos"].as_u64().map_or("–".into(), |v| v.to_string()),
            ));
        }
        if let Some(skipped) = m["skipped_videos"].as_u64().filter(|&s| s > 0) {
            md.push_str(&format!("\n{skipped} test videos could not be read.\n"));
        }
        md
    }

    /// The score's separation of the families (`metrics.json`'s `tstr`), as markdown.
    pub fn tstr_section(&self) -> String {
        let Some(t) = self.metrics.as_ref().and_then(|m| m.get("tstr")) else {
            return String::new();
        };
        let f = |k: &str| t[k].as_f64().map_or("–".to_string(), |x| format!("{x:.3}"));
        format!(
            "\n## Temporal-similarity score\n\nAUROC (invariant vs distinctive classes) {}; mean \
             score {} on invariant and {} on distinctive classes; the invariant teacher's mean \
             weight in the student's target {} on invariant and {} on distinctive classes.\n",
            f("auroc"),
            f("score_mean_invariant_classes"),
            f("score_mean_distinctive_classes"),
            f("weight_mean_invariant_classes"),
            f("weight_mean_distinctive_classes"),
        )
    }

    /// A claim experiment's prerequisites, as markdown.
    pub fn prerequisites_section(&self) -> String {
        let Some(list) = self
            .metrics
            .as_ref()
            .and_then(|m| m.get("prerequisites")?.as_array())
        else {
            return String::new();
        };
        let mut md = String::from(
            "\n## Prerequisites\n\n| | holds | requirement | measured |\n| --- | --- | --- | --- |\n",
        );
        for p in list {
            md.push_str(&format!(
                "| ({}) | {} | {} | {} |\n",
                p["id"].as_str().unwrap_or("?"),
                if p["passed"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "**NO**"
                },
                p["requirement"].as_str().unwrap_or_default(),
                p["measured"]
                    .as_str()
                    .unwrap_or_default()
                    .replace('\n', " "),
            ));
        }
        md
    }
}

/// A `confusion` array of arrays of counts.
fn confusion(row: &Value) -> Option<Vec<Vec<usize>>> {
    row.get("confusion")?
        .as_array()?
        .iter()
        .map(|r| {
            r.as_array()?
                .iter()
                .map(|c| c.as_u64().map(|c| c as usize))
                .collect()
        })
        .collect()
}

/// The evaluated models of any of `runs`, in `metrics.json`'s row order.
pub fn models_in(runs: &[RunFiles]) -> Vec<String> {
    EVAL_ROWS
        .iter()
        .map(|(row, _)| row.to_string())
        .filter(|row| runs.iter().any(|r| r.top1(row).is_some()))
        .collect()
}

/// The stages with curves in any of `runs`, in stage order.
pub fn stages_in(runs: &[RunFiles]) -> Vec<String> {
    Stage::ALL
        .iter()
        .map(|s| s.name().to_string())
        .filter(|s| runs.iter().any(|r| r.series(s, LOSS).is_some()))
        .collect()
}
