//! Helpers shared by the integration tests: make real videos and reference decodes with the
//! `ffmpeg` command-line tool.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Width of the generated test videos.
pub const WIDTH: u32 = 64;
/// Height of the generated test videos.
pub const HEIGHT: u32 = 48;
/// Frames per test video.
pub const FRAMES: usize = 120;
/// Frame rate of the test videos.
pub const FPS: u32 = 25;

/// One test video format: file extension and encoder arguments.
pub struct Format {
    pub name: &'static str,
    pub extension: &'static str,
    pub codec_args: &'static [&'static str],
}

/// MPEG-4 Part 2 in AVI (the UCF101 layout), keyframe every 12 frames.
pub const AVI: Format = Format {
    name: "avi_mpeg4",
    extension: "avi",
    codec_args: &["-c:v", "mpeg4", "-g", "12", "-q:v", "4"],
};
/// H.264 with B-frames and a single keyframe at frame 0 (no seeking possible).
pub const MP4_ONE_KEY: Format = Format {
    name: "mp4_h264_one_key",
    extension: "mp4",
    codec_args: &[
        "-c:v", "libx264", "-bf", "3", "-g", "250", "-pix_fmt", "yuv420p",
    ],
};
/// H.264 with B-frames and a keyframe every 30 frames (seeking exercised).
pub const MP4_GOP: Format = Format {
    name: "mp4_h264_gop30",
    extension: "mp4",
    codec_args: &[
        "-c:v",
        "libx264",
        "-bf",
        "3",
        "-g",
        "30",
        "-keyint_min",
        "30",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
    ],
};
/// VP9 in WebM, keyframe every 30 frames.
pub const WEBM: Format = Format {
    name: "webm_vp9",
    extension: "webm",
    codec_args: &[
        "-c:v",
        "libvpx-vp9",
        "-g",
        "30",
        "-b:v",
        "200k",
        "-deadline",
        "realtime",
    ],
};

/// All formats under test.
pub const ALL_FORMATS: [&Format; 4] = [&AVI, &MP4_ONE_KEY, &MP4_GOP, &WEBM];

fn run(command: &mut Command) {
    let output = command.output().expect("cannot run ffmpeg/ffprobe");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Hue rotation per frame (degrees) applied on top of `testsrc2`: at 64×48 the pattern alone
/// repeats frames, the hue shift makes every frame clearly differ from its neighbours.
const HUE_DEGREES_PER_FRAME: u32 = 37;

/// Encodes a hue-cycling `testsrc2` pattern (every frame differs) into `dir`.
pub fn make_video(dir: &Path, format: &Format) -> PathBuf {
    let path = dir.join(format!("{}.{}", format.name, format.extension));
    let source =
        format!("testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS},hue=h=n*{HUE_DEGREES_PER_FRAME}");
    let mut command = Command::new("ffmpeg");
    command
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", &source])
        .args(["-frames:v", &FRAMES.to_string()])
        .args(format.codec_args)
        .arg(&path);
    run(&mut command);
    path
}

/// All frames as FFmpeg's own decoder gives them, converted to RGB24 by the CLI.
pub fn reference_frames(path: &Path) -> Vec<Vec<u8>> {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .expect("cannot run ffmpeg");
    assert!(
        output.status.success(),
        "reference decode of {path:?} failed"
    );
    let frame_bytes = (WIDTH * HEIGHT * 3) as usize;
    output
        .stdout
        .chunks(frame_bytes)
        .map(<[u8]>::to_vec)
        .collect()
}

/// Number of frames `ffprobe -count_frames` decodes.
pub fn ffprobe_frame_count(path: &Path) -> usize {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .expect("cannot run ffprobe");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("unexpected ffprobe output {text:?} for {path:?}"))
}

/// Writes the first `fraction` of `source`'s bytes to `target`.
pub fn truncate_copy(source: &Path, target: &Path, keep_numerator: usize, keep_denominator: usize) {
    let bytes = std::fs::read(source).expect("read source video");
    let keep = bytes.len() * keep_numerator / keep_denominator;
    std::fs::write(target, &bytes[..keep]).expect("write truncated video");
}

/// Largest absolute per-channel difference of two equally sized images.
pub fn max_abs_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

/// Mean absolute per-channel difference of two equally sized images.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: u64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.len() as f64
}
