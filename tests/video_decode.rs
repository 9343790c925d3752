//! Frame-exactness and robustness of `data::video` against FFmpeg's own decode.

use std::path::Path;
use std::process::Command;

use crate::common::ffmpeg::*;
use timebalance::data::video::{
    FrameReader, RgbFrame, VideoError, decode_frames, read_info, read_ppm, write_ppm,
};

/// Neighbouring frames of `testsrc2` must differ by at least this mean absolute difference, so
/// that matching within the tolerance above really identifies the frame.
const MIN_NEIGHBOUR_MEAN_DIFF: f64 = 1.0;

/// Irregular requests: repeats, first and last frame, short gaps, and long gaps that trigger a
/// seek (longer than `SEEK_AHEAD_THRESHOLD`).
const INDICES: [usize; 16] = [
    0, 0, 1, 5, 17, 17, 18, 40, 41, 44, 90, 91, 91, 100, 118, 119,
];

fn assert_same_frame(ours: &RgbFrame, reference: &[Vec<u8>], index: usize, what: &str) {
    assert_eq!((ours.width, ours.height), (WIDTH, HEIGHT), "{what}");
    // Bit-exact: our swscale conversion uses the CLI's default (bicubic) settings, so any
    // difference at all would mean a different frame.
    let diff = max_abs_diff(&ours.data, &reference[index]);
    assert_eq!(diff, 0, "{what}: frame {index} differs by {diff}");
    for neighbour in [index.wrapping_sub(1), index + 1] {
        if let Some(other) = reference.get(neighbour) {
            let separation = mean_abs_diff(&ours.data, other);
            assert!(
                separation >= MIN_NEIGHBOUR_MEAN_DIFF,
                "{what}: frame {index} is too close to neighbour {neighbour} ({separation})"
            );
        }
    }
}

fn check_format(dir: &Path, format: &Format) {
    let path = make_video(dir, format);
    let reference = reference_frames(&path);
    assert_eq!(reference.len(), FRAMES, "{}: reference decode", format.name);

    let mut reader = FrameReader::open(&path).expect("open reader");
    let frames = reader.read_frames(&INDICES).expect("decode");
    assert_eq!(frames.len(), INDICES.len());
    let (seeks, restarts) = reader.seek_stats();
    assert_eq!(
        restarts, 0,
        "{}: forward requests never restart",
        format.name
    );
    // With keyframes after frame 0 the long gaps must be skipped by seeking.
    let has_later_keyframes = format.name != MP4_ONE_KEY.name;
    assert_eq!(
        seeks > 0,
        has_later_keyframes,
        "{}: {seeks} seeks",
        format.name
    );
    for (frame, &index) in frames.iter().zip(&INDICES) {
        assert_same_frame(frame, &reference, index, format.name);
    }

    // A reused reader must also go backwards (seek or restart) and forwards across calls.
    for request in [&[110usize, 111][..], &[3, 60, 61], &[2], &[119]] {
        let frames = reader.read_frames(request).expect("reader decode");
        for (frame, &index) in frames.iter().zip(request) {
            assert_same_frame(frame, &reference, index, format.name);
        }
    }
}

#[test]
fn decoded_frames_match_ffmpeg_for_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ALL_FORMATS {
        check_format(dir.path(), format);
    }
}

#[test]
fn read_info_frame_count_matches_ffprobe_including_truncated_avi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut paths: Vec<_> = ALL_FORMATS
        .iter()
        .map(|f| make_video(dir.path(), f))
        .collect();
    let truncated = dir.path().join("truncated.avi");
    truncate_copy(&paths[0], &truncated, 1, 2);
    paths.push(truncated.clone());
    for path in &paths {
        let info = read_info(path).expect("read_info");
        assert_eq!(info.frame_count, ffprobe_frame_count(path), "{path:?}");
        assert_eq!((info.width, info.height), (WIDTH, HEIGHT), "{path:?}");
        assert!(
            (info.fps - f64::from(FPS)).abs() < 1e-6,
            "{path:?}: fps {}",
            info.fps
        );
    }
    // The truncated file really is shorter, and its frames up to the last decode exactly. The
    // last packet is cut in half, so the decoder conceals it by repeating the previous picture:
    // compare it bit-exactly but skip the neighbour check there.
    let info = read_info(&truncated).expect("read_info truncated");
    assert!(
        info.frame_count < FRAMES,
        "truncated has {}",
        info.frame_count
    );
    let reference = reference_frames(&truncated);
    assert_eq!(reference.len(), info.frame_count);
    let (middle, last) = (info.frame_count / 2, info.frame_count - 1);
    let frames = decode_frames(&truncated, &[middle, last]).expect("decode truncated");
    assert_same_frame(&frames[0], &reference, middle, "truncated avi");
    assert_eq!(max_abs_diff(&frames[1].data, &reference[last]), 0);
}

#[test]
fn index_past_end_is_too_short() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_video(dir.path(), &AVI);
    let error = decode_frames(&path, &[3, FRAMES]).expect_err("must fail");
    match &error {
        VideoError::TooShort {
            requested,
            available,
            ..
        } => assert_eq!((*requested, *available), (FRAMES, FRAMES)),
        other => panic!("unexpected error {other}"),
    }
    assert!(error.to_string().contains("avi_mpeg4.avi"), "{error}");
    assert!(matches!(
        decode_frames(&path, &[5, 3]),
        Err(VideoError::UnsortedIndices { .. })
    ));
}

/// Asserts both `read_info` and `decode_frames` fail with an error that names the file.
fn assert_clear_error(path: &Path) {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .expect("file name");
    let info_error = read_info(path).expect_err("read_info must fail");
    assert!(info_error.to_string().contains(name), "{info_error}");
    let decode_error = decode_frames(path, &[0]).expect_err("decode must fail");
    assert!(decode_error.to_string().contains(name), "{decode_error}");
    eprintln!("{name}: {info_error}");
}

#[test]
fn broken_files_give_errors_that_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").expect("write");
    let text = dir.path().join("text.avi");
    std::fs::write(&text, "this is not a video\n".repeat(100)).expect("write");
    let mp4 = make_video(dir.path(), &MP4_ONE_KEY);
    // Default MP4 muxing puts the index (moov) at the end, so half a file has no index.
    let truncated = dir.path().join("half.mp4");
    truncate_copy(&mp4, &truncated, 1, 2);
    let missing = dir.path().join("missing.avi");
    for path in [&empty, &text, &truncated, &missing] {
        assert_clear_error(path);
    }
    assert!(matches!(read_info(&missing), Err(VideoError::Open { .. })));
}

#[test]
fn ppm_round_trip_and_matches_ffmpeg_image2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = make_video(dir.path(), &MP4_GOP);
    let frame_index = 17;
    let frames = decode_frames(&path, &[frame_index]).expect("decode");
    let ours = dir.path().join("ours.ppm");
    write_ppm(&frames[0], &ours).expect("write ppm");
    assert_eq!(read_ppm(&ours).expect("read ppm"), frames[0]);

    let cli = dir.path().join("cli.ppm");
    let filter = format!("select=eq(n\\,{frame_index})");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-vf", &filter, "-fps_mode", "passthrough", "-frames:v", "1"])
        .args(["-f", "image2", "-pix_fmt", "rgb24"])
        .arg(&cli)
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let reference = read_ppm(&cli).expect("read cli ppm");
    assert_eq!(
        max_abs_diff(&reference.data, &frames[0].data),
        0,
        "frame differs from ffmpeg select"
    );
}

#[test]
fn garbage_in_the_middle_neither_panics_nor_hangs() {
    /// Bytes overwritten in the middle of the file.
    const GARBAGE_BYTES: usize = 2048;
    const GARBAGE_VALUE: u8 = 0xA5;
    let dir = tempfile::tempdir().expect("tempdir");
    for format in ALL_FORMATS {
        let path = make_video(dir.path(), format);
        let mut bytes = std::fs::read(&path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle..middle + GARBAGE_BYTES].fill(GARBAGE_VALUE);
        let damaged = dir
            .path()
            .join(format!("damaged_{}.{}", format.name, format.extension));
        std::fs::write(&damaged, &bytes).expect("write");
        let outcome = read_info(&damaged).and_then(|info| {
            let all: Vec<usize> = (0..info.frame_count).collect();
            decode_frames(&damaged, &all).map(|frames| (info.frame_count, frames.len()))
        });
        // Either outcome is acceptable; an error must name the file.
        match &outcome {
            Ok((count, decoded)) => assert_eq!(count, decoded),
            Err(e) => assert!(e.to_string().contains("damaged_"), "{e}"),
        }
    }
}

#[test]
fn frame_reader_can_move_to_a_worker_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<FrameReader>();
}
