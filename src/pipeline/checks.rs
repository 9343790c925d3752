//! Prerequisites of a claim experiment (`[checks]`), checked by the `eval` stage on the
//! figures it has just written to `metrics.json`.
//!
//! A claim ("the TSTR-weighted student beats both teachers") can only be tested on data and
//! models where the comparison means something. Each prerequisite below names what must hold
//! and why; the run reports every one in `metrics.json` (`prerequisites`) and prints a failed
//! one loudly, with its numbers, so that a result is never read without them:
//!
//! - (a) the backbone trained with every training label learns the data (the upper
//!   reference, stage `supervised_all_labels`);
//! - (b) the supervised baseline on the labeled subset stays clearly below it (room for the
//!   unlabeled videos to help);
//! - (c) each teacher's frozen self-supervised features beat random features in a linear
//!   probe, and each teacher is the better one on its own family of classes (the distinctive
//!   teacher on the direction classes, the invariant one on the appearance classes);
//! - (d) the temporal-similarity score separates the two families (AUROC), with neither
//!   family's mean pinned at 0 or 1;
//! - (e) enough test videos per class that a few points are resolved (seeds are the
//!   multi-run summary's business: `timebalance summarize`).
//!
//! Each prerequisite is decided on its margins ([`margins`]: a figure minus its threshold,
//! which must be above zero), so that the multi-run summary can decide the same rule across
//! runs: a margin of a few points that one run measures with noise of its own size (the
//! family clause of (c) on 200 test videos) is resolved by several runs' lower confidence
//! bound (`summary.rs`), not by any one run.
//!
//! The checks read `metrics.json`'s JSON rather than typed stage results, so that a finished
//! run can be re-checked (and summarised) from its files alone.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Thresholds of the prerequisites; the defaults are the values the claim experiment was
/// specified with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChecksConfig {
    /// (a) Lowest test top-1 of the all-label model, percent.
    pub all_labels_min_top1: f64,
    /// (b) Fewest points the baseline must stay below the all-label model.
    pub label_gap_min: f64,
    /// (c) Fewest points each teacher's probe must beat the random-feature probe by.
    pub probe_margin_min: f64,
    /// (d) Lowest AUROC of the score, invariant classes against distinctive ones.
    pub auroc_min: f64,
    /// (d) Each family's mean score must lie in `[score_margin, 1 - score_margin]`.
    pub score_margin: f64,
    /// (e) Fewest test videos in any class.
    pub min_test_videos_per_class: usize,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        Self {
            all_labels_min_top1: 90.0,
            label_gap_min: 15.0,
            probe_margin_min: 15.0,
            auroc_min: 0.85,
            score_margin: 0.05,
            min_test_videos_per_class: 50,
        }
    }
}

/// One prerequisite's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prerequisite {
    /// `a` … `e`, as in the module docs.
    pub id: String,
    /// What must hold.
    pub requirement: String,
    /// The measured numbers it was decided on (or what was missing).
    pub measured: String,
    pub passed: bool,
}

/// `metrics.json` row names the checks read.
pub const ALL_LABELS_ROW: &str = "supervised_all_labels";
const BASELINE_ROW: &str = "baseline_supervised";

/// The number at `path` in a `metrics.json` value, if there is one.
pub(super) fn number(v: &Value, path: &[&str]) -> Option<f64> {
    path.iter().try_fold(v, |node, key| node.get(key))?.as_f64()
}

fn verdict(id: &str, requirement: String, measured: Option<(String, bool)>) -> Prerequisite {
    let (measured, passed) =
        measured.unwrap_or_else(|| ("missing: its stage has not run".to_string(), false));
    Prerequisite {
        id: id.to_string(),
        requirement,
        measured,
        passed,
    }
}

/// Every prerequisite, decided on `metrics` (the JSON `eval` writes).
pub fn prerequisites(metrics: &Value, c: &ChecksConfig) -> Vec<Prerequisite> {
    // The decision is the margins' (one rule for a run and for the multi-run summary); the
    // text below only says what was measured.
    let margins = margins(metrics, c);
    let holds = |id: &str| {
        let mut of_id = margins.iter().filter(|m| m.id == id).peekable();
        debug_assert!(of_id.peek().is_some(), "no margin for prerequisite ({id})");
        of_id.all(|m| m.value.is_some_and(|v| m.met_by(v)))
    };
    let all = number(metrics, &[ALL_LABELS_ROW, "top1"]);
    let base = number(metrics, &[BASELINE_ROW, "top1"]);
    let a = verdict(
        "a",
        format!(
            "the backbone trained with every label reaches ≥ {:.0} % test top-1",
            c.all_labels_min_top1
        ),
        all.map(|t| (format!("{t:.2} %"), holds("a"))),
    );
    let b = verdict(
        "b",
        format!(
            "the supervised baseline stays ≥ {:.0} points below the all-label model",
            c.label_gap_min
        ),
        all.zip(base).map(|(t, b)| {
            (
                format!("baseline {b:.2} % vs all labels {t:.2} %"),
                holds("b"),
            )
        }),
    );
    let probe = |teacher: &str, key: &[&str]| -> Option<f64> {
        let mut path = vec!["probe", teacher];
        path.extend_from_slice(key);
        number(metrics, &path)
    };
    let random = probe("random", &["test_top1"]);
    let inv = probe("invariant", &["test_top1"]);
    let dis = probe("distinctive", &["test_top1"]);
    let family = |t: &str, f: &str| probe(t, &["test_families", f]);
    // Several random backbones: the reference is their mean, each draw shown beside it.
    let draws: Vec<f64> = metrics
        .pointer("/probe/random/test_top1_draws")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let random_name = if draws.len() > 1 {
        let each: Vec<String> = draws.iter().map(|d| format!("{d:.2}")).collect();
        format!(
            "random (mean of {} backbones: {})",
            draws.len(),
            each.join(" / ")
        )
    } else {
        "random".to_string()
    };
    let c_measured = (|| {
        let (r, i, d) = (random?, inv?, dis?);
        let (inv_on_inv, dis_on_inv) = (
            family("invariant", "invariant")?,
            family("distinctive", "invariant")?,
        );
        let (inv_on_dis, dis_on_dis) = (
            family("invariant", "distinctive")?,
            family("distinctive", "distinctive")?,
        );
        Some((
            format!(
                "probe test top-1: {random_name} {r:.2}, invariant {i:.2}, distinctive {d:.2} %; \
                 direction classes: distinctive {dis_on_dis:.2} vs invariant {inv_on_dis:.2} %; \
                 appearance classes: invariant {inv_on_inv:.2} vs distinctive {dis_on_inv:.2} %"
            ),
            holds("c"),
        ))
    })();
    let c_check = verdict(
        "c",
        format!(
            "each teacher's linear probe beats random features by ≥ {:.0} points, and each \
             teacher's probe is the better one on its own family",
            c.probe_margin_min
        ),
        c_measured,
    );
    let d_measured = (|| {
        let auroc = number(metrics, &["tstr", "auroc"])?;
        let mi = number(metrics, &["tstr", "score_mean_invariant_classes"])?;
        let md = number(metrics, &["tstr", "score_mean_distinctive_classes"])?;
        Some((
            format!("AUROC {auroc:.3}; mean score invariant {mi:.3}, distinctive {md:.3}"),
            holds("d"),
        ))
    })();
    let d = verdict(
        "d",
        format!(
            "the score separates the families: AUROC ≥ {:.2}, both means in [{:.2}, {:.2}]",
            c.auroc_min,
            c.score_margin,
            1.0 - c.score_margin
        ),
        d_measured,
    );
    let fewest = fewest_test_videos(metrics);
    let e = verdict(
        "e",
        format!(
            "≥ {} test videos in every class",
            c.min_test_videos_per_class
        ),
        fewest.map(|n| (format!("fewest test videos in a class: {n}"), holds("e"))),
    );
    vec![a, b, c_check, d, e]
}

/// The fewest test videos of any class, from the baseline's (or the all-label model's)
/// confusion matrix.
fn fewest_test_videos(metrics: &Value) -> Option<u64> {
    metrics
        .get(BASELINE_ROW)
        .or_else(|| metrics.get(ALL_LABELS_ROW))
        .and_then(|r| r.get("confusion"))
        .and_then(Value::as_array)
        .and_then(|rows| {
            rows.iter()
                .map(|row| {
                    row.as_array()
                        .map(|r| r.iter().filter_map(Value::as_u64).sum::<u64>())
                })
                .collect::<Option<Vec<u64>>>()
        })
        .and_then(|counts| counts.into_iter().min())
}

/// One quantity a prerequisite needs above zero: a measured figure minus its threshold.
///
/// A run's verdict ([`prerequisites`]) holds exactly when every margin of its prerequisite
/// does; the multi-run summary tests the same margins across runs (`summary.rs`), where a
/// margin of a few points that one run measures with noise of the same size can still be
/// resolved from several.
#[derive(Debug, Clone, PartialEq)]
pub struct Margin {
    /// The prerequisite it belongs to (`a` … `e`).
    pub id: &'static str,
    /// What is measured against what.
    pub name: String,
    /// Figure minus threshold, in the figure's unit; `None` when its stage has not run.
    pub value: Option<f64>,
    /// `true` when the margin must be strictly positive ("beats"), `false` when zero is
    /// enough ("at least").
    pub strict: bool,
    /// `true` for a count (test videos), which is exact in every run: across runs each run
    /// must meet it, no confidence bound.
    pub count: bool,
    /// Decimals to print it with (its unit's resolution).
    pub digits: usize,
}

impl Margin {
    /// An estimated "at least" margin in points (2 decimals).
    fn at_least(id: &'static str, name: String, value: Option<f64>) -> Self {
        Self {
            id,
            name,
            value,
            strict: false,
            count: false,
            digits: 2,
        }
    }

    /// The same margin, required strictly above zero.
    fn strictly(self) -> Self {
        Self {
            strict: true,
            ..self
        }
    }

    /// The same margin, printed with `digits` decimals.
    fn digits(self, digits: usize) -> Self {
        Self { digits, ..self }
    }

    /// The same margin, a count.
    fn counted(self) -> Self {
        Self {
            count: true,
            digits: 0,
            ..self
        }
    }

    /// Whether `value` meets this margin's sign requirement.
    pub fn met_by(&self, value: f64) -> bool {
        if self.strict {
            value > 0.0
        } else {
            value >= 0.0
        }
    }
}

/// Decimals of a margin on the score's 0–1 scale (AUROC, mean scores).
const SCORE_DIGITS: usize = 3;

/// The margins behind each prerequisite of [`prerequisites`], in the order of the
/// prerequisites and with each prerequisite's margins next to each other (the summary
/// groups them by consecutive id); (e)'s is the fewest test videos of a class. The list is
/// the same for every metrics file (a missing figure is a `None` value), so that runs line
/// up margin by margin. Thresholds print as Rust prints an `f64` (90, 0.85), unrounded.
pub fn margins(metrics: &Value, c: &ChecksConfig) -> Vec<Margin> {
    let get = |path: &[&str]| number(metrics, path);
    let all = get(&[ALL_LABELS_ROW, "top1"]);
    let base = get(&[BASELINE_ROW, "top1"]);
    let probe = |teacher: &str| get(&["probe", teacher, "test_top1"]);
    let family = |teacher: &str, f: &str| get(&["probe", teacher, "test_families", f]);
    let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let auroc = get(&["tstr", "auroc"]);
    let mean_inv = get(&["tstr", "score_mean_invariant_classes"]);
    let mean_dis = get(&["tstr", "score_mean_distinctive_classes"]);
    let (low, high) = (c.score_margin, 1.0 - c.score_margin);
    let above = |m: Option<f64>| m.map(|m| m - low);
    let below = |m: Option<f64>| m.map(|m| high - m);
    let over_random = |teacher: &str| {
        Margin::at_least(
            "c",
            format!("{teacher} probe − random − {} points", c.probe_margin_min),
            diff(probe(teacher), probe("random")).map(|g| g - c.probe_margin_min),
        )
    };
    let score =
        |name: String, value: Option<f64>| Margin::at_least("d", name, value).digits(SCORE_DIGITS);
    vec![
        Margin::at_least(
            "a",
            format!("all-label top-1 − {} %", c.all_labels_min_top1),
            all.map(|t| t - c.all_labels_min_top1),
        ),
        Margin::at_least(
            "b",
            format!("all labels − baseline − {} points", c.label_gap_min),
            diff(all, base).map(|g| g - c.label_gap_min),
        ),
        over_random("invariant"),
        over_random("distinctive"),
        Margin::at_least(
            "c",
            "distinctive − invariant probe, direction classes".into(),
            diff(
                family("distinctive", "distinctive"),
                family("invariant", "distinctive"),
            ),
        )
        .strictly(),
        Margin::at_least(
            "c",
            "invariant − distinctive probe, appearance classes".into(),
            diff(
                family("invariant", "invariant"),
                family("distinctive", "invariant"),
            ),
        )
        .strictly(),
        score(
            format!("AUROC − {}", c.auroc_min),
            auroc.map(|a| a - c.auroc_min),
        ),
        score(
            format!("mean score, invariant classes − {low}"),
            above(mean_inv),
        ),
        score(
            format!("{high} − mean score, invariant classes"),
            below(mean_inv),
        ),
        score(
            format!("mean score, distinctive classes − {low}"),
            above(mean_dis),
        ),
        score(
            format!("{high} − mean score, distinctive classes"),
            below(mean_dis),
        ),
        Margin::at_least(
            "e",
            format!(
                "fewest test videos in a class − {}",
                c.min_test_videos_per_class
            ),
            fewest_test_videos(metrics).map(|n| n as f64 - c.min_test_videos_per_class as f64),
        )
        .counted(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passing() -> Value {
        let fam = |i: f64, d: f64| json!({ "invariant": i, "distinctive": d });
        json!({
            "supervised_all_labels": { "top1": 95.0, "confusion": [[50, 0], [0, 50]] },
            "baseline_supervised": { "top1": 60.0, "confusion": [[30, 20], [20, 30]] },
            "probe": {
                "random": { "test_top1": 30.0, "test_families": fam(40.0, 20.0) },
                "invariant": { "test_top1": 60.0, "test_families": fam(90.0, 30.0) },
                "distinctive": { "test_top1": 70.0, "test_families": fam(70.0, 70.0) }
            },
            "tstr": {
                "auroc": 0.9,
                "score_mean_invariant_classes": 0.8,
                "score_mean_distinctive_classes": 0.3
            }
        })
    }

    fn failed(m: &Value) -> Vec<String> {
        prerequisites(m, &ChecksConfig::default())
            .into_iter()
            .filter(|p| !p.passed)
            .map(|p| p.id)
            .collect()
    }

    #[test]
    fn margins_are_each_figure_minus_its_threshold() {
        let m = margins(&passing(), &ChecksConfig::default());
        let got: Vec<(&str, f64, bool)> = m
            .iter()
            .map(|g| (g.id, (g.value.unwrap() * 1000.0).round() / 1000.0, g.strict))
            .collect();
        assert_eq!(
            got,
            [
                ("a", 5.0, false),  // 95 − 90
                ("b", 20.0, false), // 95 − 60 − 15
                ("c", 15.0, false), // 60 − 30 − 15
                ("c", 25.0, false), // 70 − 30 − 15
                ("c", 40.0, true),  // 70 − 30, direction classes
                ("c", 20.0, true),  // 90 − 70, appearance classes
                ("d", 0.05, false), // 0.9 − 0.85
                ("d", 0.75, false), // 0.8 − 0.05
                ("d", 0.15, false), // 0.95 − 0.8
                ("d", 0.25, false), // 0.3 − 0.05
                ("d", 0.65, false), // 0.95 − 0.3
                ("e", 0.0, false),  // 50 − 50
            ]
        );
        assert!(!m[4].met_by(0.0) && m[0].met_by(0.0));
        assert!(m[11].count && m.iter().filter(|g| g.count).count() == 1);
    }

    #[test]
    fn each_perturbed_figure_fails_exactly_its_prerequisite() {
        let ok = passing();
        assert!(failed(&ok).is_empty(), "{:?}", failed(&ok));
        let perturb = |path: &[&str], v: Value| {
            let mut m = ok.clone();
            let (last, parents) = path.split_last().unwrap();
            let node = parents.iter().fold(&mut m, |n, k| n.get_mut(*k).unwrap());
            node[*last] = v;
            failed(&m)
        };
        assert_eq!(
            perturb(&["supervised_all_labels", "top1"], json!(89.9)),
            ["a"]
        );
        assert_eq!(
            perturb(&["baseline_supervised", "top1"], json!(81.0)),
            ["b"]
        );
        assert_eq!(
            perturb(&["probe", "invariant", "test_top1"], json!(44.0)),
            ["c"]
        );
        let swapped = json!({ "invariant": 60.0, "distinctive": 70.0 });
        assert_eq!(
            perturb(&["probe", "invariant", "test_families"], swapped),
            ["c"]
        );
        // A tie is not "better on its own family".
        let tied = json!({ "invariant": 70.0, "distinctive": 30.0 });
        assert_eq!(
            perturb(&["probe", "invariant", "test_families"], tied),
            ["c"]
        );
        assert_eq!(perturb(&["tstr", "auroc"], json!(0.84)), ["d"]);
        assert_eq!(
            perturb(&["tstr", "score_mean_invariant_classes"], json!(0.99)),
            ["d"]
        );
        assert_eq!(
            perturb(
                &["baseline_supervised", "confusion"],
                json!([[49, 0], [0, 50]])
            ),
            ["e"]
        );
    }

    #[test]
    fn a_missing_stage_fails_its_prerequisites_and_says_so() {
        let mut m = passing();
        m.as_object_mut().unwrap().remove("probe");
        m.as_object_mut().unwrap().remove("supervised_all_labels");
        let p = prerequisites(&m, &ChecksConfig::default());
        let bad: Vec<&Prerequisite> = p.iter().filter(|p| !p.passed).collect();
        assert_eq!(
            bad.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(bad.iter().all(|p| p.measured.starts_with("missing")));
    }

    #[test]
    fn a_mean_of_random_draws_is_named_with_each_draw() {
        let mut m = passing();
        m["probe"]["random"]["test_top1_draws"] = json!([20.0, 30.0, 40.0]);
        let c = prerequisites(&m, &ChecksConfig::default())
            .into_iter()
            .find(|p| p.id == "c")
            .unwrap();
        assert!(c.passed);
        assert!(
            c.measured
                .contains("random (mean of 3 backbones: 20.00 / 30.00 / 40.00) 30.00"),
            "{}",
            c.measured
        );
    }
}
