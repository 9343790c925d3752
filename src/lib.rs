//! timebalance — semi-supervised video action recognition with TimeBalance (CVPR 2023),
//! on Burn. See `README.md` and docs/method.md for the method.

pub mod bench;
pub mod checkpoint;
#[cfg(feature = "video")]
pub mod commands;
pub mod data;
pub mod device;
pub mod disk;
pub mod loss;
pub mod model;
pub mod names;
pub mod nodes;
pub mod ops;
pub mod optim;
pub mod pipeline;
#[cfg(feature = "video")]
pub mod report;
pub mod smoke;
pub mod tstr;
pub mod weights;
