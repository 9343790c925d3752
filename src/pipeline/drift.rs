//! A run directory remembers the resolved configuration that produced it (`config.toml`). A
//! rerun whose configuration differs in anything that changes results would otherwise mix
//! stages of two experiments — evaluate old weights under a new width, or fail to load them
//! under another architecture — so it stops before any work and lists the differing keys;
//! with `--force` the stages the changes touch (and everything built on them) start afresh.

use std::collections::BTreeMap;
use std::fmt;

use super::stage::Stage;

/// Keys that do not change results: the description, and how many loader workers read the
/// videos (batches depend only on the seed, not on the workers).
pub const NEUTRAL_KEYS: [&str; 2] = ["description", "data.workers"];

/// One key whose value differs (`None`: absent on that side).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub key: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |v: &Option<String>| v.clone().unwrap_or_else(|| "(absent)".into());
        write!(f, "{}: {} → {}", self.key, side(&self.old), side(&self.new))
    }
}

/// The result-changing keys whose values differ between two resolved configurations.
pub fn changes(old: &toml::Table, new: &toml::Table) -> Vec<Change> {
    let (old, new) = (flatten(old), flatten(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !NEUTRAL_KEYS.contains(&k.as_str()))
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| Change {
            key: k.clone(),
            old: old.get(k).cloned(),
            new: new.get(k).cloned(),
        })
        .collect()
}

/// `a.b.c` → value as TOML text, for every leaf of `table`.
fn flatten(table: &toml::Table) -> BTreeMap<String, String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
        for (k, v) in table {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(t) => walk(&key, t, out),
                other => {
                    out.insert(key, other.to_string());
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", table, &mut out);
    out
}

/// The stages a key's section configures directly (`seed`, `data` and `model`: all).
fn configured_by(key: &str) -> Vec<Stage> {
    use Stage::*;
    match key.split('.').next().unwrap_or_default() {
        "pretrain" => vec![PretrainInvariant, PretrainDistinctive],
        "finetune" => vec![FinetuneInvariant, FinetuneDistinctive],
        // Clip batches of the score and the probe; score normalisation of the student and eval.
        "tstr" => vec![Score, Probe, Student, Eval],
        "probe" => vec![Probe],
        "student" => vec![Student, StudentAverage],
        "baseline" => vec![Baseline],
        "all_labels" => vec![SupervisedAllLabels],
        "eval" | "checks" => vec![Eval],
        _ => Stage::ALL.to_vec(),
    }
}

/// Every stage whose results the changes make stale: those the changed sections configure and
/// every stage that reads their outputs, in pipeline order.
pub fn affected(changes: &[Change]) -> Vec<Stage> {
    let mut stale: Vec<Stage> = changes.iter().flat_map(|c| configured_by(&c.key)).collect();
    // Stages come in pipeline order and read only earlier ones: one pass closes the set.
    for stage in Stage::ALL {
        if stage.inputs().iter().any(|s| stale.contains(s)) {
            stale.push(stage);
        }
    }
    stale.sort();
    stale.dedup();
    stale
}

/// Whether the changes touch what the data preparation drew or generated: the labeled list
/// (`seed`, `data.*`) and the synthetic videos (`data.synthetic.*`).
pub fn touches_labeled_list(changes: &[Change]) -> bool {
    changes
        .iter()
        .any(|c| c.key == "seed" || c.key.starts_with("data."))
}

/// Whether the changes touch the generated synthetic videos.
pub fn touches_synthetic_videos(changes: &[Change]) -> bool {
    changes.iter().any(|c| c.key.starts_with("data.synthetic."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    #[test]
    fn changed_keys_are_listed_and_neutral_ones_ignored() {
        let old = table("description = \"a\"\nseed = 1\n[data]\nworkers = 2\n[model]\nwidth = 8\n");
        let new = table(
            "description = \"b\"\nseed = 1\n[data]\nworkers = 4\n[model]\nwidth = 12\n[probe]\nepochs = 3\n",
        );
        let c = changes(&old, &new);
        let keys: Vec<&str> = c.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["model.width", "probe.epochs"]);
        assert_eq!(c[0].to_string(), "model.width: 8 → 12");
        assert_eq!(c[1].to_string(), "probe.epochs: (absent) → 3");
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn a_change_stales_its_stages_and_everything_built_on_them() {
        let change = |key: &str| Change {
            key: key.into(),
            old: None,
            new: None,
        };
        use Stage::*;
        assert_eq!(affected(&[change("baseline.lr")]), vec![Baseline, Eval]);
        assert_eq!(
            affected(&[change("finetune.epochs")]),
            vec![
                FinetuneInvariant,
                FinetuneDistinctive,
                Student,
                StudentAverage,
                Eval
            ]
        );
        assert_eq!(
            affected(&[change("pretrain.tau")]),
            vec![
                PretrainInvariant,
                PretrainDistinctive,
                FinetuneInvariant,
                FinetuneDistinctive,
                Score,
                Probe,
                Student,
                StudentAverage,
                Eval
            ]
        );
        assert_eq!(affected(&[change("model.width")]), Stage::ALL.to_vec());
        assert!(touches_labeled_list(&[change("data.labeled_per_class")]));
        assert!(!touches_labeled_list(&[change("student.lr")]));
    }
}
