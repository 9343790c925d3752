//! TimeBalance's losses as batched tensor operations (METHOD.md).

pub mod contrastive;
pub mod student;
pub mod teacher;

pub use contrastive::{global_local, local_local, nt_xent, nt_xent_grouped};
pub use student::{DistillKind, StudentLoss, StudentWeights, cross_entropy, distill, student_loss};
pub use teacher::{SslEmbeddings, TeacherLoss, distinctive_loss, invariant_loss};

/// METHOD.md's temperature τ.
pub const DEFAULT_TAU: f64 = 0.1;
