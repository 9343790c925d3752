//! The named experiments, embedded from `experiments/*.toml` at build time so that the
//! binary lists and runs them from any directory, and the bases they extend
//! (`experiments/base/`).

/// One named experiment: its name and its TOML text.
#[derive(Debug, Clone, Copy)]
pub struct NamedExperiment {
    pub name: &'static str,
    pub text: &'static str,
}

impl NamedExperiment {
    /// The `description` line of the TOML (for listings), without parsing the whole file.
    pub fn description(&self) -> &'static str {
        self.text
            .lines()
            .find_map(|l| l.strip_prefix("description = "))
            .map(|d| d.trim().trim_matches('"'))
            .unwrap_or("")
    }
}

macro_rules! entry {
    ($name:literal) => {
        NamedExperiment {
            name: $name,
            text: include_str!(concat!("../../experiments/", $name, ".toml")),
        }
    };
}

/// Every file of `experiments/`, demo first.
pub const EXPERIMENTS: &[NamedExperiment] = &[
    entry!("synthetic"),
    entry!("synthetic_claim"),
    entry!("hmdb51_40pct"),
    entry!("hmdb51_40pct_r18"),
    entry!("hmdb51_50pct"),
    entry!("hmdb51_50pct_r18"),
    entry!("hmdb51_60pct"),
    entry!("hmdb51_60pct_r18"),
    entry!("k400_10pct"),
    entry!("k400_10pct_r18"),
    entry!("k400_1pct"),
    entry!("k400_1pct_r18"),
    entry!("k400_5pct"),
    entry!("k400_5pct_r18"),
    entry!("ucf101_10pct"),
    entry!("ucf101_10pct_r18"),
    entry!("ucf101_1pct"),
    entry!("ucf101_1pct_r18"),
    entry!("ucf101_20pct"),
    entry!("ucf101_20pct_r18"),
    entry!("ucf101_50pct"),
    entry!("ucf101_50pct_r18"),
    entry!("ucf101_5pct"),
    entry!("ucf101_5pct_r18"),
];

/// The shared settings the experiment files extend (`extends = "base/paper"`): not
/// experiments by themselves (they name no dataset), so not listed or runnable.
pub const BASES: &[NamedExperiment] = &[entry!("base/paper"), entry!("base/paper_r18")];

/// The experiment called `name`.
///
/// ```
/// use timebalance::pipeline::ExperimentConfig;
/// use timebalance::pipeline::registry::find;
///
/// let named = find("ucf101_1pct").expect("built in");
/// let config = ExperimentConfig::from_toml(named.text, named.name, &["seed=7".into()]).unwrap();
/// assert_eq!((config.seed, config.data.labeled_fraction), (7, Some(0.01)));
/// ```
pub fn find(name: &str) -> Option<NamedExperiment> {
    EXPERIMENTS.iter().copied().find(|e| e.name == name)
}

/// What `extends = "name"` names: a base, or a named experiment.
pub fn find_base(name: &str) -> Option<NamedExperiment> {
    BASES
        .iter()
        .copied()
        .find(|e| e.name == name)
        .or_else(|| find(name))
}
