//! timebalance — semi-supervised video action recognition with TimeBalance (CVPR 2023),
//! on Burn. See `README.md` and METHOD.md for the method.

pub mod checkpoint;
pub mod device;
pub mod loss;
pub mod model;
pub mod ops;
pub mod tstr;
pub mod bench;
pub mod smoke;
pub mod weights;
pub mod data;
