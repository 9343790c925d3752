//! The TimeBalance pipeline (docs/method.md's four stages plus baseline and evaluation), driven
//! by burn-train's `Learner`, from typed experiment configurations.

pub mod config;
pub mod evaluation;
pub mod learner;
pub mod metrics;
pub mod probe;
pub mod registry;
pub mod run;
pub mod runlog;
pub mod stages;
pub mod steps;
pub mod student_data;

pub use config::ExperimentConfig;
pub use run::{RunOptions, Stage, run_experiment};
pub use steps::TeacherKind;
