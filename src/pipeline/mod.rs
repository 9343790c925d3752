//! The TimeBalance pipeline (docs/method.md's four stages plus references and evaluation),
//! driven by burn-train's `Learner`, from typed experiment configurations.
//!
//! Layers, bottom up (a module imports only from layers below it):
//! - settings: [`config`] (the experiment TOML; [`extends`]: files built on a base), [`augment_settings`], [`checks`] (a claim
//!   experiment's prerequisites), [`registry`] (the built-in experiments);
//! - training machinery: [`train_steps`] (Burn `TrainStep`s of the three objectives),
//!   [`train_metrics`] (what the Learner logs), [`metric_files`] and [`burn_log`] (where it
//!   goes), [`learner`] (`fit`), [`accuracy`] (test-set metrics);
//! - [`stage`] (the stage type, its directory names and inputs), [`drift`] (what a changed
//!   configuration makes stale), [`lock`] (one command per run directory), [`context`] (what a
//!   stage works with);
//! - [`stages`], one module per stage;
//! - [`run`] (the `experiment` command: data, stage order, resume), [`summary`] (seeds side
//!   by side) and [`predict`] (a run's model on video files).
//!
//! Without the `video` feature the settings, the training machinery and the stage type remain;
//! what reads video files (the context, the stages, the run, accuracy and summaries, which
//! read the stages' outputs) needs it.

#[cfg(feature = "video")]
pub mod accuracy;
pub mod augment_settings;
pub mod burn_log;
pub mod checks;
pub mod config;
#[cfg(feature = "video")]
pub mod context;
pub mod drift;
pub mod extends;
pub mod learner;
pub mod lock;
pub mod metric_files;
#[cfg(feature = "video")]
pub mod predict;
pub mod registry;
#[cfg(feature = "video")]
pub mod run;
pub mod runlog;
pub mod stage;
#[cfg(feature = "video")]
pub mod stages;
#[cfg(feature = "video")]
pub mod summary;
pub mod train_metrics;
pub mod train_steps;

pub use config::ExperimentConfig;
#[cfg(feature = "video")]
pub use run::{PreparedRun, RunOptions, prepare_run};
pub use stage::Stage;
pub use train_steps::TeacherKind;
