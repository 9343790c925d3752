//! The integration tests, one binary: a test binary per file linked Burn with all its backends
//! once each, which cost CI minutes. Each module is one former test file; `common` holds the
//! shared helpers. Run one part with a filter, e.g. `cargo test --test integration golden::`.
//! The modules that need video files come with the `video` feature (the default).

mod common;

#[cfg(feature = "video")]
mod cli;
#[cfg(feature = "video")]
mod faults;
mod golden;
mod import;
#[cfg(feature = "video")]
mod loading;
mod models;
#[cfg(feature = "video")]
mod nodes;
mod ops;
#[cfg(feature = "video")]
mod pipeline;
#[cfg(feature = "video")]
mod synth;
#[cfg(feature = "video")]
mod video_decode;
