//! Real synthetic videos for the data layer's unit tests: six good files, a zero-byte one and
//! one cut inside its container header.

use std::path::PathBuf;

use super::loader::LoaderItem;
use super::synth::{SynthConfig, generate};

/// Frame side of the files.
pub const TEST_SIZE: u32 = 32;
/// Frames per file: short for SSL, so the lowered stride is exercised.
pub const TEST_FRAMES: usize = 40;
/// Clip side the tests render.
pub const OUT: u32 = 16;
/// 2 classes × 3 videos = 6 good videos.
const VIDEOS_PER_CLASS: usize = 3;
/// Bytes kept of a good file to make a truncated one: inside the container header, so
/// no frame survives (a file truncated half-way still decodes its first half, correctly).
const TRUNCATED_BYTES: u64 = 200;

/// The files, deleted with the value.
pub struct Fixture {
    _dir: tempfile::TempDir,
    /// Labeled 10 and 11, alternating.
    pub good: Vec<LoaderItem>,
    /// An empty file.
    pub zero: PathBuf,
    /// A file cut inside its container header: no frame survives.
    pub truncated: PathBuf,
}

/// Writes the files into a fresh temporary directory.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = SynthConfig {
        out: dir.path().join("synth"),
        classes: 2,
        videos_per_class: VIDEOS_PER_CLASS,
        test_videos_per_class: 0,
        frames: TEST_FRAMES,
        size: TEST_SIZE,
        seed: 1,
        fps: 25,
        ..SynthConfig::default()
    };
    let summary = generate(&cfg).expect("synthetic videos");
    let good: Vec<LoaderItem> = summary
        .train
        .iter()
        .enumerate()
        .map(|(i, p)| (cfg.out.join(p), Some(i % 2 + 10)))
        .collect();
    let zero = dir.path().join("zero.avi");
    std::fs::write(&zero, b"").expect("write zero-byte file");
    let truncated = dir.path().join("truncated.avi");
    std::fs::copy(&good[0].0, &truncated).expect("copy");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .and_then(|f| f.set_len(TRUNCATED_BYTES))
        .expect("truncate");
    Fixture {
        _dir: dir,
        good,
        zero,
        truncated,
    }
}
