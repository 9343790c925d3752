//! TimeBalance's losses as batched tensor operations (docs/method.md).

pub mod contrastive;
pub mod student;
pub mod teacher;

pub use contrastive::{global_local, local_local, nt_xent, nt_xent_grouped};
pub use student::{DistillKind, StudentLoss, StudentWeights, cross_entropy, distill, student_loss};
pub use teacher::{SslEmbeddings, TeacherLoss, distinctive_loss, invariant_loss};

/// docs/method.md's temperature τ.
pub const DEFAULT_TAU: f64 = 0.1;
