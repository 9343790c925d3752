//! The TimeBalance pipeline (docs/method.md's four stages plus baseline and evaluation), driven
//! by burn-train's `Learner`, from typed experiment configurations.
//!
//! Without the `video` feature only the training steps and their metrics remain (what the
//! benchmarks and the trajectory tests drive on random clips).

#[cfg(feature = "video")]
pub mod augment_settings;
#[cfg(feature = "video")]
pub mod checks;
#[cfg(feature = "video")]
pub mod config;
#[cfg(feature = "video")]
pub mod evaluation;
#[cfg(feature = "video")]
pub mod learner;
pub mod metrics;
#[cfg(feature = "video")]
pub mod probe;
#[cfg(feature = "video")]
pub mod registry;
#[cfg(feature = "video")]
pub mod run;
#[cfg(feature = "video")]
pub mod runlog;
#[cfg(feature = "video")]
pub mod stages;
pub mod steps;
#[cfg(feature = "video")]
pub mod student_data;
#[cfg(feature = "video")]
pub mod summary;

#[cfg(feature = "video")]
pub use config::ExperimentConfig;
#[cfg(feature = "video")]
pub use run::{RunOptions, Stage, run_experiment};
pub use steps::TeacherKind;
