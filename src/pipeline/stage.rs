//! The pipeline's stages as a type: their order, their names on the command line and the
//! directories they write in a run. Every stage directory is derived from [`Stage::name`], so a
//! directory name is written once, here.

use std::str::FromStr;

use anyhow::{Context, Result, bail};

use super::checks::ALL_LABELS_ROW;
use super::train_steps::TeacherKind;

/// A step of the pipeline, in execution order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    PretrainInvariant,
    PretrainDistinctive,
    FinetuneInvariant,
    FinetuneDistinctive,
    Score,
    Probe,
    Student,
    StudentAverage,
    Baseline,
    /// The all-label reference (`[all_labels]`; nothing to do without that section).
    SupervisedAllLabels,
    Eval,
}

impl Stage {
    pub const ALL: [Stage; 11] = [
        Stage::PretrainInvariant,
        Stage::PretrainDistinctive,
        Stage::FinetuneInvariant,
        Stage::FinetuneDistinctive,
        Stage::Score,
        Stage::Probe,
        Stage::Student,
        Stage::StudentAverage,
        Stage::Baseline,
        Stage::SupervisedAllLabels,
        Stage::Eval,
    ];

    /// Name on the command line, directory name in the run, and prefix of the stage's log
    /// lines.
    pub fn name(self) -> &'static str {
        match self {
            Stage::PretrainInvariant => "pretrain_invariant",
            Stage::PretrainDistinctive => "pretrain_distinctive",
            Stage::FinetuneInvariant => "finetune_invariant",
            Stage::FinetuneDistinctive => "finetune_distinctive",
            Stage::Score => "score",
            Stage::Probe => "probe",
            Stage::Student => "student",
            Stage::StudentAverage => "student_average",
            Stage::Baseline => "baseline",
            // The all-label reference's directory is also its `metrics.json` row.
            Stage::SupervisedAllLabels => ALL_LABELS_ROW,
            Stage::Eval => "eval",
        }
    }

    /// The stages whose outputs this stage reads (evaluation: every other stage).
    pub fn inputs(self) -> &'static [Stage] {
        use Stage::*;
        const TEACHERS: [Stage; 5] = [
            PretrainInvariant,
            PretrainDistinctive,
            FinetuneInvariant,
            FinetuneDistinctive,
            Score,
        ];
        match self {
            PretrainInvariant | PretrainDistinctive | Baseline | SupervisedAllLabels => &[],
            FinetuneInvariant => &[PretrainInvariant],
            FinetuneDistinctive => &[PretrainDistinctive],
            Score | Probe => &TEACHERS[..2],
            // The student starts from a pre-trained backbone when configured so.
            Student | StudentAverage => &TEACHERS,
            Eval => &Stage::ALL,
        }
    }

    /// Self-supervised pre-training of `t`.
    pub fn pretrain(t: TeacherKind) -> Stage {
        match t {
            TeacherKind::Invariant => Stage::PretrainInvariant,
            TeacherKind::Distinctive => Stage::PretrainDistinctive,
        }
    }

    /// Fine-tuning of `t`.
    pub fn finetune(t: TeacherKind) -> Stage {
        match t {
            TeacherKind::Invariant => Stage::FinetuneInvariant,
            TeacherKind::Distinctive => Stage::FinetuneDistinctive,
        }
    }

    /// Parse a comma-separated list; `pretrain` and `finetune` stand for both teachers.
    pub fn parse_list(text: &str) -> Result<Vec<Stage>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "pretrain" => out.extend(TeacherKind::BOTH.map(Stage::pretrain)),
                "finetune" => out.extend(TeacherKind::BOTH.map(Stage::finetune)),
                other => out.push(other.parse()?),
            }
        }
        if out.is_empty() {
            bail!("--stages: no stage named");
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stage {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Stage::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .with_context(|| {
                let names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown stage {s:?}; expected pretrain, finetune or one of {}",
                    names.join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_lists_expand_and_sort() {
        let s = Stage::parse_list("eval,pretrain,score").unwrap();
        assert_eq!(
            s,
            vec![
                Stage::PretrainInvariant,
                Stage::PretrainDistinctive,
                Stage::Score,
                Stage::Eval
            ]
        );
        let err = Stage::parse_list("pretrian").unwrap_err().to_string();
        assert!(
            err.contains("pretrian") && err.contains("finetune_invariant"),
            "{err}"
        );
    }

    #[test]
    fn teacher_stages_are_named_after_the_teacher() {
        for t in TeacherKind::BOTH {
            assert_eq!(Stage::pretrain(t).name(), format!("pretrain_{}", t.name()));
            assert_eq!(Stage::finetune(t).name(), format!("finetune_{}", t.name()));
        }
    }

    #[test]
    fn every_name_parses_back() {
        for s in Stage::ALL {
            assert_eq!(s.name().parse::<Stage>().unwrap(), s);
        }
    }
}
