//! `timebalance summarize RUN_DIR…`: the runs of one experiment (seeds, generator seeds)
//! side by side, as markdown: every model's test top-1 as mean ± standard error over the
//! runs, per class family where families are known, the student's paired differences
//! against each other model, the score's separation, the linear probes, and every
//! prerequisite's verdict per run (re-decided from each `metrics.json` with the thresholds
//! of the run's own `[checks]`) and across runs (each margin's one-sided 95 % lower bound).
//!
//! The standard error is the sample standard deviation over runs divided by √n; a
//! difference is paired (per run, then averaged), which removes what the runs share.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use super::checks::{ChecksConfig, Margin, margins, number, prerequisites};
use super::config::ExperimentConfig;
use super::context::{CONFIG_FILE, METRICS_FILE};
use super::stages::evaluate::EVAL_ROWS;

/// Fewest runs (seeds) a claim is read from.
pub const MIN_RUNS: usize = 3;

/// One run as the summary reads it.
struct Run {
    dir: PathBuf,
    metrics: Value,
    config: ExperimentConfig,
}

fn read_run(dir: &Path) -> Result<Run> {
    let path = dir.join(METRICS_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: no metrics (has `eval` run?)", path.display()))?;
    let metrics: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let config = ExperimentConfig::from_file(&dir.join(CONFIG_FILE), &[])?;
    Ok(Run {
        dir: dir.to_path_buf(),
        metrics,
        config,
    })
}

/// Mean and standard error (`None` below two values).
pub fn mean_se(values: &[f64]) -> Option<(f64, Option<f64>)> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let se = (n >= 2).then(|| {
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    });
    Some((mean, se))
}

/// One-sided 95 % quantiles of Student's t for 1, 2, … 30 degrees of freedom (any table of
/// the t distribution); above 30 the last one is used, which errs on the cautious side (the
/// normal quantile is 1.645).
const T95_ONE_SIDED: [f64; 30] = [
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771,
    1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706,
    1.703, 1.701, 1.699, 1.697,
];

/// The one-sided 95 % lower confidence bound of the mean of `values` (mean − t·SE with
/// n − 1 degrees of freedom); `None` below two values.
pub fn lower_bound_95(values: &[f64]) -> Option<f64> {
    let (mean, se) = mean_se(values)?;
    let se = se?;
    let df = values.len() - 1;
    let t = T95_ONE_SIDED[df.min(T95_ONE_SIDED.len()) - 1];
    Some(mean - t * se)
}

fn cell(values: &[f64], digits: usize) -> String {
    match mean_se(values) {
        None => "—".into(),
        Some((m, None)) => format!("{m:.digits$}"),
        Some((m, Some(se))) => format!("{m:.digits$} ± {se:.digits$}"),
    }
}

/// `path` in every run that has it.
fn across(runs: &[Run], path: &[&str]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| number(&r.metrics, path))
        .collect()
}

/// `a − b` in every run that has both (a paired difference).
fn paired(runs: &[Run], a: &[&str], b: &[&str]) -> Vec<f64> {
    runs.iter()
        .filter_map(|r| Some(number(&r.metrics, a)? - number(&r.metrics, b)?))
        .collect()
}

fn per_run(runs: &[Run], path: &[&str], digits: usize) -> String {
    runs.iter()
        .map(|r| number(&r.metrics, path).map_or("—".into(), |v| format!("{v:.digits$}")))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The markdown summary of the run directories `dirs`.
pub fn summarize(dirs: &[PathBuf]) -> Result<String> {
    if dirs.is_empty() {
        bail!("summarize: name at least one run directory");
    }
    let runs: Vec<Run> = dirs.iter().map(|d| read_run(d)).collect::<Result<_>>()?;
    let mut md = String::new();
    let n = runs.len();
    writeln!(md, "### {n} run(s)\n")?;
    writeln!(md, "| run | seed | generator seed | test videos |")?;
    writeln!(md, "|---|---|---|---|")?;
    // Each run's generator seed (`None`: not synthetic data).
    let generators: Vec<Option<u64>> = runs
        .iter()
        .map(|r| r.config.data.synthetic.as_ref().map(|s| s.seed))
        .collect();
    for (r, generator) in runs.iter().zip(&generators) {
        let generator = generator.map_or("—".into(), |seed| seed.to_string());
        let videos = r
            .metrics
            .get("test_videos")
            .map_or("—".into(), Value::to_string);
        writeln!(
            md,
            "| `{}` | {} | {generator} | {videos} |",
            r.dir.display(),
            r.config.seed
        )?;
    }
    if let Some(note) = mixed_generators_note(&generators) {
        writeln!(md, "\n{note}")?;
    }
    writeln!(
        md,
        "\n#### Test top-1, % (mean ± standard error over runs; per run in the last column)\n"
    )?;
    writeln!(
        md,
        "| model | top-1 | invariant classes | distinctive classes | per run |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for (row, _) in EVAL_ROWS {
        let top1 = across(&runs, &[row, "top1"]);
        if top1.is_empty() {
            continue;
        }
        writeln!(
            md,
            "| {row} | {} | {} | {} | {} |",
            cell(&top1, 2),
            cell(&across(&runs, &[row, "families", "invariant"]), 2),
            cell(&across(&runs, &[row, "families", "distinctive"]), 2),
            per_run(&runs, &[row, "top1"], 2)
        )?;
    }
    writeln!(
        md,
        "\n#### The student against each model, paired per run (points of top-1)\n"
    )?;
    writeln!(
        md,
        "| student − | difference | runs where the student is ahead |"
    )?;
    writeln!(md, "|---|---|---|")?;
    for (row, _) in EVAL_ROWS.iter().skip(1) {
        let diffs = paired(&runs, &["student", "top1"], &[row, "top1"]);
        if diffs.is_empty() {
            continue;
        }
        let ahead = diffs.iter().filter(|d| **d > 0.0).count();
        writeln!(
            md,
            "| {row} | {} | {ahead} of {} |",
            cell(&diffs, 2),
            diffs.len()
        )?;
    }
    writeln!(md, "\n#### Score and linear probes\n")?;
    writeln!(md, "| figure | mean ± SE | per run |")?;
    writeln!(md, "|---|---|---|")?;
    let figures: [(&str, &[&str], usize); 8] = [
        (
            "score AUROC (invariant vs distinctive)",
            &["tstr", "auroc"],
            3,
        ),
        (
            "mean score, invariant classes",
            &["tstr", "score_mean_invariant_classes"],
            3,
        ),
        (
            "mean score, distinctive classes",
            &["tstr", "score_mean_distinctive_classes"],
            3,
        ),
        (
            "invariant teacher's weight w(v), invariant classes",
            &["tstr", "weight_mean_invariant_classes"],
            3,
        ),
        (
            "invariant teacher's weight w(v), distinctive classes",
            &["tstr", "weight_mean_distinctive_classes"],
            3,
        ),
        (
            "probe top-1, random features",
            &["probe", "random", "test_top1"],
            2,
        ),
        (
            "probe top-1, invariant teacher",
            &["probe", "invariant", "test_top1"],
            2,
        ),
        (
            "probe top-1, distinctive teacher",
            &["probe", "distinctive", "test_top1"],
            2,
        ),
    ];
    for (name, path, digits) in figures {
        let v = across(&runs, path);
        if !v.is_empty() {
            writeln!(
                md,
                "| {name} | {} | {} |",
                cell(&v, digits),
                per_run(&runs, path, digits)
            )?;
        }
    }
    probe_gaps(&mut md, &runs)?;
    writeln!(md, "\n#### Prerequisites (each run's `[checks]`)\n")?;
    writeln!(md, "| | requirement | holds in | measured, per run |")?;
    writeln!(md, "|---|---|---|---|")?;
    let verdicts: Vec<_> = runs
        .iter()
        .map(|r| prerequisites(&r.metrics, &checks_of(r)))
        .collect();
    for (i, first) in verdicts[0].iter().enumerate() {
        let held = verdicts.iter().filter(|v| v[i].passed).count();
        let measured: Vec<String> = verdicts
            .iter()
            .map(|v| {
                let mark = if v[i].passed { "✓" } else { "✗" };
                format!("{mark} {}", v[i].measured)
            })
            .collect();
        writeln!(
            md,
            "| ({}) | {} | {held} of {n} | {} |",
            first.id,
            first.requirement,
            measured.join("<br>")
        )?;
    }
    prerequisites_across_runs(&mut md, &runs)?;
    Ok(md)
}

/// One margin of [`margins`] over the runs.
#[derive(Debug, Clone, PartialEq)]
struct MarginAcross {
    /// The first run's margin (its id, name, requirement and digits).
    margin: Margin,
    /// Its value in every run that has it.
    values: Vec<f64>,
    /// The one-sided 95 % lower bound of the mean (for a count: the least run); `None` when a
    /// run lacks the figure or there are fewer than two runs.
    bound: Option<f64>,
    /// Runs whose own value meets it.
    met: usize,
    /// Whether the bound meets the margin's requirement.
    holds: bool,
}

/// Decides every margin, and each prerequisite (by id, in order), across runs, from each
/// run's [`margins`]. A margin holds across runs when its one-sided 95 % lower bound
/// (Student t, n − 1 degrees of freedom) meets its requirement (≥ 0, or > 0 for a "beats"):
/// a run's own check reads one draw of test-set and training noise, which for (c)'s family
/// gaps is as large as the gap itself (a few points on 200 videos); the bound asks whether
/// the runs together resolve it. A count ((e)'s test videos) is exact, so every run must
/// meet it. A figure missing from any run, or a single run, leaves the margin without a
/// bound: not shown. A prerequisite holds when all its margins do, an intersection–union
/// test, still at 5 % without a correction for their number.
fn decide_across_runs(per_run: &[Vec<Margin>]) -> (Vec<MarginAcross>, Vec<(&'static str, bool)>) {
    let Some(first) = per_run.first() else {
        return (Vec::new(), Vec::new());
    };
    let n = per_run.len();
    let rows: Vec<MarginAcross> = first
        .iter()
        .enumerate()
        .map(|(i, margin)| {
            let values: Vec<f64> = per_run.iter().filter_map(|m| m[i].value).collect();
            let met = values.iter().filter(|v| margin.met_by(**v)).count();
            let bound = if values.len() < n.max(2) {
                None
            } else if margin.count {
                values.iter().copied().reduce(f64::min)
            } else {
                lower_bound_95(&values)
            };
            MarginAcross {
                margin: margin.clone(),
                holds: bound.is_some_and(|b| margin.met_by(b)),
                values,
                bound,
                met,
            }
        })
        .collect();
    let mut verdicts: Vec<(&'static str, bool)> = Vec::new();
    for row in &rows {
        match verdicts.last_mut() {
            Some((id, all)) if *id == row.margin.id => *all &= row.holds,
            _ => verdicts.push((row.margin.id, row.holds)),
        }
    }
    if let Some((_, e)) = verdicts.iter_mut().find(|(id, _)| *id == "e") {
        *e &= n >= MIN_RUNS;
    }
    (rows, verdicts)
}

/// The `[checks]` a run was decided with (the defaults when it has none).
fn checks_of(run: &Run) -> ChecksConfig {
    run.config.checks.clone().unwrap_or_default()
}

/// A warning when the runs were made on more than one generator seed (`None`: not synthetic
/// data): their mean ± standard error then pools different datasets, and the across-runs
/// verdict is one over all of them, while a claim is judged per generator seed (issue 12
/// asks a second generator seed to give the same verdicts by itself).
fn mixed_generators_note(generators: &[Option<u64>]) -> Option<String> {
    let seeds: BTreeSet<u64> = generators.iter().flatten().copied().collect();
    (seeds.len() > 1).then(|| {
        let list: Vec<String> = seeds.iter().map(u64::to_string).collect();
        format!(
            "**These runs come from {} generator seeds ({})**: every mean ± SE below pools \
             different data, and the verdicts across runs are one over all of them; for a \
             verdict per generator seed, summarize each seed's runs on their own.",
            seeds.len(),
            list.join(", ")
        )
    })
}

/// The "Prerequisites across runs" section: [`decide_across_runs`] as a table and a verdict
/// line (a prerequisite not shown across runs is said so loudly).
fn prerequisites_across_runs(md: &mut String, runs: &[Run]) -> Result<()> {
    let n = runs.len();
    let per_run: Vec<_> = runs
        .iter()
        .map(|r| margins(&r.metrics, &checks_of(r)))
        .collect();
    let (rows, verdicts) = decide_across_runs(&per_run);
    writeln!(
        md,
        "\n#### Prerequisites across runs (each margin: figure − threshold; one-sided 95 % \
         lower bound, Student t with n − 1 degrees of freedom; for a count, the least run)\n"
    )?;
    if runs.iter().any(|r| checks_of(r) != checks_of(&runs[0])) {
        writeln!(
            md,
            "The runs' `[checks]` differ: each margin is taken with its run's own thresholds, \
             named with the first run's.\n"
        )?;
    }
    writeln!(
        md,
        "| | margin | mean ± SE | lower bound | runs meeting it |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for row in &rows {
        let digits = row.margin.digits;
        let missing = n - row.values.len();
        let of = if missing > 0 {
            format!(" ({} of {n} runs)", row.values.len())
        } else {
            String::new()
        };
        writeln!(
            md,
            "| ({}) | {} | {}{of} | {} | {} of {n} |",
            row.margin.id,
            row.margin.name,
            cell(&row.values, digits),
            row.bound.map_or("—".into(), |b| format!("{b:.digits$}")),
            row.met,
        )?;
    }
    let word = |ok: bool| if ok { "holds" } else { "NOT SHOWN" };
    writeln!(
        md,
        "\n(e) across runs: {n} run(s), at least {MIN_RUNS} needed: {}.",
        if n >= MIN_RUNS {
            "holds"
        } else {
            "DOES NOT HOLD"
        }
    )?;
    let line: Vec<String> = verdicts
        .iter()
        .map(|(id, ok)| format!("({id}) {}", word(*ok)))
        .collect();
    writeln!(md, "\nAcross runs: {}.", line.join(" · "))?;
    Ok(())
}

/// The probe comparisons behind prerequisite (c), paired per run: each teacher against random
/// features, and each teacher against the other on its own family. Each run's check decides
/// on its own numbers; this table says how far the margins stand from zero across runs (a
/// family gap of a few points is within one standard error of a 200-video family).
fn probe_gaps(md: &mut String, runs: &[Run]) -> Result<()> {
    const PROBE: &str = "probe";
    let gap = |a: &[&str], b: &[&str]| paired(runs, a, b);
    let rows: [(&str, Vec<f64>); 4] = [
        (
            "invariant teacher − random features, all classes",
            gap(
                &[PROBE, "invariant", "test_top1"],
                &[PROBE, "random", "test_top1"],
            ),
        ),
        (
            "distinctive teacher − random features, all classes",
            gap(
                &[PROBE, "distinctive", "test_top1"],
                &[PROBE, "random", "test_top1"],
            ),
        ),
        (
            "distinctive − invariant teacher, direction classes",
            gap(
                &[PROBE, "distinctive", "test_families", "distinctive"],
                &[PROBE, "invariant", "test_families", "distinctive"],
            ),
        ),
        (
            "invariant − distinctive teacher, appearance classes",
            gap(
                &[PROBE, "invariant", "test_families", "invariant"],
                &[PROBE, "distinctive", "test_families", "invariant"],
            ),
        ),
    ];
    if rows.iter().all(|(_, v)| v.is_empty()) {
        return Ok(());
    }
    writeln!(
        md,
        "\n#### Linear probes, paired per run (points of probe top-1; prerequisite (c))\n"
    )?;
    writeln!(
        md,
        "| probe − probe | difference | per run | runs above 0 |"
    )?;
    writeln!(md, "|---|---|---|---|")?;
    for (name, v) in rows {
        if v.is_empty() {
            continue;
        }
        let per_run = v
            .iter()
            .map(|d| format!("{d:.2}"))
            .collect::<Vec<_>>()
            .join(" / ");
        let above = v.iter().filter(|d| **d > 0.0).count();
        writeln!(
            md,
            "| {name} | {} | {per_run} | {above} of {} |",
            cell(&v, 2),
            v.len()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_standard_error() {
        assert_eq!(mean_se(&[]), None);
        assert_eq!(mean_se(&[3.0]), Some((3.0, None)));
        let (m, se) = mean_se(&[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(m, 2.0);
        // Sample deviation 1, over √3.
        assert!((se.unwrap() - 1.0 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!(cell(&[1.0, 2.0, 3.0], 2), "2.00 ± 0.58");
    }

    fn margin(id: &'static str, strict: bool, count: bool, value: Option<f64>) -> Margin {
        Margin {
            id,
            name: format!("{id} margin"),
            value,
            strict,
            count,
            digits: 2,
        }
    }

    /// Runs of the margins `spec` (id, strict, count) with `values[run][margin]`.
    fn runs_of(spec: &[(&'static str, bool, bool)], values: &[&[Option<f64>]]) -> Vec<Vec<Margin>> {
        values
            .iter()
            .map(|run| {
                spec.iter()
                    .zip(run.iter())
                    .map(|(&(id, strict, count), v)| margin(id, strict, count, *v))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn across_runs_every_margin_of_a_prerequisite_needs_its_bound() {
        let spec = [
            ("a", false, false),
            ("c", false, false),
            ("c", true, false),
            ("d", false, false),
        ];
        let v = |a: f64, c1: f64, c2: f64, d: f64| [Some(a), Some(c1), Some(c2), Some(d)];
        let (r0, r1, r2) = (
            v(1.0, 5.0, 0.0, 0.0),
            v(2.0, 5.0, 0.0, 0.0),
            v(3.0, 5.0, 0.0, 0.0),
        );
        let (rows, verdicts) = decide_across_runs(&runs_of(&spec, &[&r0, &r1, &r2]));
        // (a): mean 2, SE 1/√3, t(0.95, 2 df) 2.920 → 0.314.
        assert!((rows[0].bound.unwrap() - (2.0 - 2.920 / 3f64.sqrt())).abs() < 1e-12);
        assert_eq!(rows[0].met, 3);
        // A bound of exactly 0 meets "at least" ((d)) but not "beats" ((c)'s second margin),
        // and one margin short fails its whole prerequisite.
        assert_eq!(verdicts, [("a", true), ("c", false), ("d", true)]);
        // Spread the first run's (a) away: the bound drops below zero.
        let r0 = v(-4.0, 5.0, 0.0, 0.0);
        let (_, verdicts) = decide_across_runs(&runs_of(&spec, &[&r0, &r1, &r2]));
        assert_eq!(verdicts[0], ("a", false));
    }

    #[test]
    fn across_runs_a_missing_figure_or_a_single_run_shows_nothing() {
        let spec = [("a", false, false)];
        let (rows, verdicts) =
            decide_across_runs(&runs_of(&spec, &[&[Some(5.0)], &[None], &[Some(6.0)]]));
        assert_eq!((rows[0].values.len(), rows[0].bound), (2, None));
        assert_eq!(verdicts, [("a", false)]);
        let (rows, verdicts) = decide_across_runs(&runs_of(&spec, &[&[Some(5.0)]]));
        assert_eq!((rows[0].met, rows[0].bound), (1, None));
        assert_eq!(verdicts, [("a", false)]);
    }

    #[test]
    fn across_runs_a_count_must_hold_in_every_run_and_e_needs_three() {
        let spec = [("e", false, true)];
        // One run one video short: a t bound would be ≈ 18.8, the count's is the least run.
        let mut values: Vec<[Option<f64>; 1]> = vec![[Some(30.0)]; 7];
        values.push([Some(-1.0)]);
        let refs: Vec<&[Option<f64>]> = values.iter().map(|v| &v[..]).collect();
        let (rows, verdicts) = decide_across_runs(&runs_of(&spec, &refs));
        assert_eq!(rows[0].bound, Some(-1.0));
        assert_eq!(verdicts, [("e", false)]);
        // Every run meets it, but two runs are fewer than MIN_RUNS.
        let (rows, verdicts) = decide_across_runs(&runs_of(&spec, &[&[Some(0.0)], &[Some(0.0)]]));
        assert!(rows[0].holds);
        assert_eq!(verdicts, [("e", false)]);
        let three = [&[Some(0.0)][..]; 3];
        assert_eq!(decide_across_runs(&runs_of(&spec, &three)).1, [("e", true)]);
    }

    #[test]
    fn runs_of_several_generator_seeds_are_flagged() {
        assert_eq!(mixed_generators_note(&[Some(7), Some(7), Some(7)]), None);
        assert_eq!(mixed_generators_note(&[None, None]), None);
        let note = mixed_generators_note(&[Some(9), Some(7), Some(9)]).unwrap();
        assert!(note.contains("2 generator seeds (7, 9)"), "{note}");
    }

    #[test]
    fn lower_bound_uses_students_t() {
        assert_eq!(lower_bound_95(&[3.0]), None);
        // Mean 2, SE 1/√3, t(0.95, 2 df) = 2.920.
        let b = lower_bound_95(&[1.0, 2.0, 3.0]).unwrap();
        assert!((b - (2.0 - 2.920 / 3f64.sqrt())).abs() < 1e-12, "{b}");
        // The 8 appearance-class margins of synthetic_claim's seeds 0–7 (invariant −
        // distinctive probe): mean 3.875, SE 1.695, t(0.95, 7 df) = 1.895 → 0.663.
        let gaps = [-1.5, 4.0, 6.5, 5.5, 13.0, 0.0, -1.0, 4.5];
        let b = lower_bound_95(&gaps).unwrap();
        assert!((b - 0.663).abs() < 0.001, "{b}");
        // The last row of the table (30 degrees), and past it the same quantile.
        let thirty_one: Vec<f64> = (0..31).map(f64::from).collect();
        let (m, se) = mean_se(&thirty_one).unwrap();
        assert!((lower_bound_95(&thirty_one).unwrap() - (m - 1.697 * se.unwrap())).abs() < 1e-9);
        let many: Vec<f64> = (0..100).map(f64::from).collect();
        let (m, se) = mean_se(&many).unwrap();
        assert!((lower_bound_95(&many).unwrap() - (m - 1.697 * se.unwrap())).abs() < 1e-9);
    }
}
