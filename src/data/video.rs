//! Exact, frame-accurate video decoding.
//!
//! Clip samplers ask for frames by *index* (0-based position in presentation order) and expect
//! exactly the frame FFmpeg's own decoder would produce at that position. video-rs 0.12's
//! high-level seeking does not deliver that (`seek_to_frame` passes a frame number where FFmpeg
//! expects a timestamp; `seek` lands on a nearby keyframe in either direction), and its
//! `DecoderSplit` converts *every* decoded frame to RGB. This module therefore drives the
//! `ffmpeg-next` bindings that video-rs re-exports (`video_rs::ffmpeg`, so the FFmpeg binding
//! version stays the one video-rs was built against) directly:
//!
//! 1. One cheap demux pass (no decoding) collects every video packet's timestamp and keyframe
//!    flag. Sorting the timestamps gives the presentation order, so frame `n` is the packet with
//!    the `n`-th smallest timestamp. This is also where the trustworthy frame count comes from.
//! 2. To reach frame `n` the reader either decodes forward, or — when `n` is far ahead and a
//!    keyframe lies in between — seeks *backward* to the last keyframe at or before `n`, flushes
//!    the decoder, and decodes forward, selecting frames by their timestamp.
//! 3. Only the frames that are kept are converted to RGB, into reused buffers.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use video_rs::ffmpeg;
use video_rs::ffmpeg::Rational;
use video_rs::ffmpeg::codec::packet::Packet;
use video_rs::ffmpeg::format::Pixel;
use video_rs::ffmpeg::format::context::Input;
use video_rs::ffmpeg::media::Type as MediaType;
use video_rs::ffmpeg::software::scaling::{Context as Scaler, Flags as ScalerFlags};
use video_rs::ffmpeg::util::frame::Video as AvFrame;

/// Seek instead of decoding forward only when the next wanted frame is more than this many
/// frames ahead. Decoding a small-resolution frame costs far less than a seek plus the decode
/// from the keyframe, so short gaps (the usual stride of a clip) are always decoded through.
pub const SEEK_AHEAD_THRESHOLD: usize = 32;

/// A corrupt file can make the decoder reject packet after packet; give up after this many
/// consecutive rejections instead of spinning through a file of garbage.
const MAX_CONSECUTIVE_DECODE_ERRORS: usize = 64;

/// Scaler flags for the YUV → RGB24 conversion. `BICUBIC` is what the `ffmpeg` command-line
/// tool uses by default, so frames match a CLI decode to the last bit.
const RGB_SCALER_FLAGS: ScalerFlags = ScalerFlags::BICUBIC;

/// Bytes per packed RGB24 pixel.
const RGB_CHANNELS: usize = 3;

/// Largest sample value written to PPM files (8 bits per channel).
const PPM_MAX_VALUE: u32 = 255;

/// Errors from reading or decoding a video. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file could not be opened or its container could not be parsed.
    #[error("cannot open video {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// FFmpeg's reason.
        source: ffmpeg::Error,
    },
    /// The path is a FIFO, a device, a socket or a directory: opening it could block forever
    /// (a FIFO waits for a writer), so it is never handed to FFmpeg.
    #[error("{} is not a regular file ({kind})", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The container has no video stream.
    #[error("no video stream in {}", path.display())]
    NoVideoStream {
        /// The file.
        path: PathBuf,
    },
    /// The codec could not be set up, or decoding or colour conversion failed.
    #[error("cannot decode video {}: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A requested frame index is past the end of the video.
    #[error("video {} has {available} frames, frame {requested} was requested", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// The first out-of-range index.
        requested: usize,
        /// Number of frames in the video.
        available: usize,
    },
    /// Frame indices were not sorted ascending.
    #[error("frame indices for {} must be sorted ascending", path.display())]
    UnsortedIndices {
        /// The file.
        path: PathBuf,
    },
}

/// Basic facts about a video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Frames per second (average frame rate of the stream).
    pub fps: f64,
    /// Number of frames, counted from the packets actually present (see [`read_info`]).
    pub frame_count: usize,
    /// `frame_count / fps`: the duration of the frames that are really there.
    pub duration_s: f64,
}

/// One decoded frame, packed RGB24, row-major, `width * height * 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel data, `R G B` per pixel, rows top to bottom.
    pub data: Vec<u8>,
}

/// Reads a video's metadata with a trustworthy frame count.
///
/// The frame count is the number of video packets found by demuxing the whole file without
/// decoding it. Container headers are not trusted: WebM stores no frame count at all, and a
/// truncated AVI still reports the frame count of the complete file. Demuxing reads the file
/// once but decodes nothing, which costs far less than decoding (see the crate's timing tests).
/// For the codecs used here (MPEG-4 Part 2, H.264, VP8/9) one packet carries one displayed
/// frame, so this equals what `ffprobe -count_frames` reports (tested for AVI/MPEG-4,
/// MP4/H.264 with B-frames, WebM/VP9 and a half-truncated AVI).
///
/// Fallbacks and limits: if some packet has no timestamp (or two share one), frames are
/// indexed by counting decoder output from the start of the file, which is exact but disables
/// seeking. A packet the decoder rejects (corruption) yields no frame; [`decode_frames`] then
/// reports a [`VideoError::Decode`] for that index instead of silently shifting indices.
/// `fps` is the stream's average frame rate (else `r_frame_rate`, else derived from the
/// timestamps); `duration_s` is `frame_count / fps`, not the (unreliable) container duration.
pub fn read_info(path: &Path) -> Result<VideoInfo, VideoError> {
    let mut input = open_input(path)?;
    let index = StreamIndex::build(path, &mut input)?;
    Ok(index.info)
}

/// Decodes the frames at `indices` (sorted ascending, repeats allowed), one output per index.
///
/// Convenience wrapper around [`FrameReader`]; use the reader directly to keep buffers between
/// calls on the same file.
pub fn decode_frames(path: &Path, indices: &[usize]) -> Result<Vec<RgbFrame>, VideoError> {
    FrameReader::open(path)?.read_frames(indices)
}

/// Makes sure FFmpeg is initialised exactly once; video-rs's `init` also routes FFmpeg's log
/// output to `tracing`, so decoding corrupt files does not spam stderr.
pub(crate) fn ensure_ffmpeg_initialised() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        // Initialisation only registers codecs and a log callback; if it fails, opening the
        // file fails right after with a message that names the file, so nothing is lost here.
        let _ = video_rs::init();
    });
}

fn open_input(path: &Path) -> Result<Input, VideoError> {
    // `metadata` follows links and never blocks; a missing file is left to FFmpeg's error.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        return Err(VideoError::NotAFile {
            path: path.to_path_buf(),
            kind: file_kind(&meta.file_type()),
        });
    }
    ensure_ffmpeg_initialised();
    ffmpeg::format::input(path).map_err(|source| VideoError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// What a non-regular file is, in words.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

fn decode_error(path: &Path, message: impl Into<String>) -> VideoError {
    VideoError::Decode {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads the next packet of the file, skipping packets the demuxer flags as invalid data.
///
/// Returns `None` at the end of the file. Any other read error also ends the stream: FFmpeg
/// latches I/O errors, so retrying would return the same error forever (a hang), and a
/// truncated file should yield the frames that are there.
fn read_packet(input: &mut Input) -> Option<Packet> {
    let mut packet = Packet::empty();
    loop {
        match packet.read(input) {
            Ok(()) => return Some(packet),
            Err(ffmpeg::Error::InvalidData) => continue,
            Err(_) => return None,
        }
    }
}

/// A point the reader can seek to: a keyframe.
#[derive(Debug, Clone, Copy)]
struct SeekPoint {
    /// The keyframe's position in presentation order.
    frame: usize,
    /// Timestamp to pass to `av_seek_frame`: the keyframe's decode timestamp, which is never
    /// later than its presentation timestamp, so a backward seek to it lands on this keyframe
    /// or an earlier one whether the demuxer indexes by decode or by presentation time.
    seek_ts: i64,
}

/// Everything learned from the demux pass.
#[derive(Debug, Clone)]
struct StreamIndex {
    stream: usize,
    time_base: Rational,
    info: VideoInfo,
    /// Presentation timestamps sorted ascending; position = frame index. `None` when some packet
    /// has no timestamp or two share one, in which case frames are counted from the start of
    /// the file instead (exact, but no seeking).
    timestamps: Option<Vec<i64>>,
    /// Keyframes in presentation order.
    seek_points: Vec<SeekPoint>,
}

/// What the demux pass records for one video packet.
struct PacketStamp {
    ts: Option<i64>,
    dts: Option<i64>,
    key: bool,
}

impl StreamIndex {
    fn build(path: &Path, input: &mut Input) -> Result<Self, VideoError> {
        let stream =
            input
                .streams()
                .best(MediaType::Video)
                .ok_or_else(|| VideoError::NoVideoStream {
                    path: path.to_path_buf(),
                })?;
        let stream_index = stream.index();
        let time_base = stream.time_base();
        let declared_fps = [stream.avg_frame_rate(), stream.rate()]
            .into_iter()
            .find(|r| r.numerator() > 0 && r.denominator() > 0)
            .map(f64::from);
        let (width, height) = stream_dimensions(path, &stream)?;

        let stamps = collect_packet_stamps(input, stream_index);
        let timestamps = sorted_unique_timestamps(&stamps);
        let seek_points = timestamps
            .as_ref()
            .map(|ts| seek_points(&stamps, ts))
            .unwrap_or_default();
        let frame_count = stamps.len();
        let fps = declared_fps
            .or_else(|| fps_from_timestamps(timestamps.as_deref(), time_base))
            .unwrap_or(0.0);
        let duration_s = if fps > 0.0 {
            frame_count as f64 / fps
        } else {
            0.0
        };
        Ok(Self {
            stream: stream_index,
            time_base,
            info: VideoInfo {
                width,
                height,
                fps,
                frame_count,
                duration_s,
            },
            timestamps,
            seek_points,
        })
    }

    /// Frame index of a decoded frame's timestamp, if the index is timestamp based.
    fn frame_of(&self, ts: i64) -> Option<usize> {
        self.timestamps.as_ref()?.binary_search(&ts).ok()
    }

    /// The last keyframe at or before `frame`.
    fn seek_point_before(&self, frame: usize) -> Option<SeekPoint> {
        let after = self.seek_points.partition_point(|p| p.frame <= frame);
        after.checked_sub(1).map(|i| self.seek_points[i])
    }
}

fn stream_dimensions(path: &Path, stream: &ffmpeg::Stream) -> Result<(u32, u32), VideoError> {
    let context = ffmpeg::codec::Context::from_parameters(stream.parameters())
        .map_err(|e| decode_error(path, format!("bad codec parameters: {e}")))?;
    let video = context
        .decoder()
        .video()
        .map_err(|e| decode_error(path, format!("not a video codec: {e}")))?;
    Ok((video.width(), video.height()))
}

fn collect_packet_stamps(input: &mut Input, stream: usize) -> Vec<PacketStamp> {
    let mut stamps = Vec::new();
    while let Some(packet) = read_packet(input) {
        if packet.stream() == stream {
            stamps.push(PacketStamp {
                ts: packet.pts().or(packet.dts()),
                dts: packet.dts(),
                key: packet.is_key(),
            });
        }
    }
    stamps
}

fn sorted_unique_timestamps(stamps: &[PacketStamp]) -> Option<Vec<i64>> {
    let mut ts: Vec<i64> = stamps.iter().map(|s| s.ts).collect::<Option<_>>()?;
    ts.sort_unstable();
    let unique = ts.windows(2).all(|w| w[0] < w[1]);
    unique.then_some(ts)
}

fn seek_points(stamps: &[PacketStamp], sorted_ts: &[i64]) -> Vec<SeekPoint> {
    let mut points: Vec<SeekPoint> = stamps
        .iter()
        .filter(|s| s.key)
        .filter_map(|s| {
            let ts = s.ts?;
            let frame = sorted_ts.binary_search(&ts).ok()?;
            Some(SeekPoint {
                frame,
                seek_ts: s.dts.unwrap_or(ts).min(ts),
            })
        })
        .collect();
    points.sort_by_key(|p| p.frame);
    points
}

fn fps_from_timestamps(ts: Option<&[i64]>, time_base: Rational) -> Option<f64> {
    let ts = ts?;
    let (first, last) = (*ts.first()?, *ts.last()?);
    let span_s = (last - first) as f64 * f64::from(time_base);
    (ts.len() > 1 && span_s > 0.0).then(|| (ts.len() - 1) as f64 / span_s)
}

/// A decoder for one file that keeps its demux index, decoder state and conversion buffers
/// between calls, so reading several clips from the same video pays the setup once and a clip
/// that follows the previous one continues decoding where it stopped.
pub struct FrameReader {
    path: PathBuf,
    index: StreamIndex,
    input: Input,
    decoder: ffmpeg::decoder::Video,
    /// Reused frame the decoder writes into.
    decoded: AvFrame,
    /// Reused RGB frame and the scaler that fills it, rebuilt only if the input format changes.
    rgb: AvFrame,
    scaler: Option<OwnedScaler>,
    /// Presentation index of the frame most likely to come out of the decoder next.
    next_frame: usize,
    /// The demuxer has no more packets and the decoder was told so.
    eof_sent: bool,
    /// Cleared after a seek landed somewhere unexpected; then only forward decoding is used.
    seeking_enabled: bool,
    /// Diagnostics: successful keyframe seeks and restarts from frame 0.
    seeks: usize,
    restarts: usize,
}

/// A swscale context owned by exactly one [`FrameReader`].
///
/// `ffmpeg-next` does not mark its scaler `Send` because it wraps a raw pointer, which would
/// keep readers out of data-loader worker threads.
struct OwnedScaler(Scaler);

// SAFETY: the SwsContext is created, used and freed only through this wrapper, which is never
// shared (no `Sync`, no clones); libswscale contexts have no thread affinity, so moving one to
// another thread is sound. video-rs relies on the same for its `DecoderSplit`.
unsafe impl Send for OwnedScaler {}

/// Outcome of pulling one frame out of the decoder.
enum Pulled {
    /// A frame is in `FrameReader::decoded`.
    Frame,
    /// The decoder is fully drained.
    End,
}

impl FrameReader {
    /// Opens `path`, demuxes it once to build the frame index, and prepares the decoder.
    pub fn open(path: &Path) -> Result<Self, VideoError> {
        let mut input = open_input(path)?;
        let index = StreamIndex::build(path, &mut input)?;
        // Reopen rather than seek to the start: some files (truncated AVI without an index)
        // cannot seek, and opening costs little next to decoding.
        let input = open_input(path)?;
        let decoder = open_decoder(path, &input, &index)?;
        Ok(Self {
            path: path.to_path_buf(),
            index,
            input,
            decoder,
            decoded: AvFrame::empty(),
            rgb: AvFrame::empty(),
            scaler: None,
            next_frame: 0,
            eof_sent: false,
            seeking_enabled: true,
            seeks: 0,
            restarts: 0,
        })
    }

    /// Metadata of the open video (same as [`read_info`]).
    pub fn info(&self) -> &VideoInfo {
        &self.index.info
    }

    /// How many keyframe seeks and restarts from frame 0 this reader has done, so callers and
    /// tests can see whether far-apart requests really skip decoding.
    pub fn seek_stats(&self) -> (usize, usize) {
        (self.seeks, self.restarts)
    }

    /// Decodes the frames at `indices` (sorted ascending, repeats allowed), one per index.
    ///
    /// Each distinct frame is decoded once; repeats are copies. Fails with
    /// [`VideoError::TooShort`] before decoding anything if an index is past the end.
    pub fn read_frames(&mut self, indices: &[usize]) -> Result<Vec<RgbFrame>, VideoError> {
        self.validate(indices)?;
        let mut frames: Vec<RgbFrame> = Vec::with_capacity(indices.len());
        let mut previous: Option<usize> = None;
        for &target in indices {
            let frame = match (previous, frames.last()) {
                (Some(p), Some(last)) if p == target => last.clone(),
                _ => self.read_frame(target)?,
            };
            frames.push(frame);
            previous = Some(target);
        }
        Ok(frames)
    }

    fn validate(&self, indices: &[usize]) -> Result<(), VideoError> {
        if indices.windows(2).any(|w| w[0] > w[1]) {
            return Err(VideoError::UnsortedIndices {
                path: self.path.clone(),
            });
        }
        let available = self.index.info.frame_count;
        match indices.last() {
            Some(&requested) if requested >= available => Err(VideoError::TooShort {
                path: self.path.clone(),
                requested,
                available,
            }),
            _ => Ok(()),
        }
    }

    /// Decodes and converts the single frame at presentation index `target`.
    fn read_frame(&mut self, target: usize) -> Result<RgbFrame, VideoError> {
        self.position_for(target)?;
        match self.decode_until(target)? {
            true => self.convert_decoded(),
            false if self.seeking_enabled => {
                // The seek landed past the target (a demuxer with an inexact index): restart
                // from the beginning and never seek in this file again.
                self.seeking_enabled = false;
                self.restart()?;
                match self.decode_until(target)? {
                    true => self.convert_decoded(),
                    false => Err(self.missing_frame(target)),
                }
            }
            false => Err(self.missing_frame(target)),
        }
    }

    fn missing_frame(&self, target: usize) -> VideoError {
        decode_error(
            &self.path,
            format!("the decoder never produced frame {target}"),
        )
    }

    /// Moves the read position so that decoding forward reaches `target` cheaply.
    fn position_for(&mut self, target: usize) -> Result<(), VideoError> {
        let behind = target < self.next_frame;
        let far_ahead = target > self.next_frame + SEEK_AHEAD_THRESHOLD;
        if !behind && !far_ahead {
            return Ok(());
        }
        let point = if self.seeking_enabled {
            self.index.seek_point_before(target)
        } else {
            None
        };
        match point {
            // Seeking only pays off if the keyframe is past what is already decoded.
            Some(p) if behind || p.frame > self.next_frame => self.seek_to(p),
            _ if behind => self.restart(),
            _ => Ok(()),
        }
    }

    /// Seeks backward to `point` and flushes the decoder.
    fn seek_to(&mut self, point: SeekPoint) -> Result<(), VideoError> {
        let stream = i32::try_from(self.index.stream)
            .map_err(|_| decode_error(&self.path, "stream index out of range"))?;
        // SAFETY: `self.input` owns a valid, open AVFormatContext for as long as `self` lives,
        // and av_seek_frame only reads/updates that context.
        let status = unsafe {
            ffmpeg::ffi::av_seek_frame(
                self.input.as_mut_ptr(),
                stream,
                point.seek_ts,
                ffmpeg::ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        if status < 0 {
            // A file that cannot seek can still be read from the start.
            self.seeking_enabled = false;
            return self.restart();
        }
        self.decoder.flush();
        self.eof_sent = false;
        self.next_frame = point.frame;
        self.seeks += 1;
        Ok(())
    }

    /// Reopens the file and decoder so that decoding starts again at frame 0.
    fn restart(&mut self) -> Result<(), VideoError> {
        self.input = open_input(&self.path)?;
        self.decoder = open_decoder(&self.path, &self.input, &self.index)?;
        self.eof_sent = false;
        self.next_frame = 0;
        self.restarts += 1;
        Ok(())
    }

    /// Decodes forward until frame `target` is in `self.decoded`.
    ///
    /// Returns `false` if the decoder skipped past `target` or ran out of frames.
    fn decode_until(&mut self, target: usize) -> Result<bool, VideoError> {
        loop {
            if let Pulled::End = self.pull_frame()? {
                return Ok(false);
            }
            let frame = self.current_frame_index();
            self.next_frame = frame + 1;
            if frame == target {
                return Ok(true);
            }
            if frame > target {
                return Ok(false);
            }
        }
    }

    /// Presentation index of the frame in `self.decoded`: looked up by timestamp when the file
    /// has usable timestamps, otherwise counted (valid because counting mode never seeks).
    fn current_frame_index(&self) -> usize {
        self.decoded
            .timestamp()
            .and_then(|ts| self.index.frame_of(ts))
            .unwrap_or(self.next_frame)
    }

    /// Pulls the next decoded frame into `self.decoded`, feeding packets as needed.
    fn pull_frame(&mut self) -> Result<Pulled, VideoError> {
        let mut consecutive_errors = 0;
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => return Ok(Pulled::Frame),
                Err(ffmpeg::Error::Eof) => return Ok(Pulled::End),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    // Nothing more can come once end-of-stream was sent.
                    if self.eof_sent {
                        return Ok(Pulled::End);
                    }
                }
                Err(e) => return Err(decode_error(&self.path, e.to_string())),
            }
            if self.feed_packet().is_err() {
                consecutive_errors += 1;
                if consecutive_errors > MAX_CONSECUTIVE_DECODE_ERRORS {
                    return Err(decode_error(
                        &self.path,
                        format!("{consecutive_errors} packets in a row failed to decode"),
                    ));
                }
            } else {
                consecutive_errors = 0;
            }
        }
    }

    /// Sends the next video packet (or end-of-stream) to the decoder. A packet the decoder
    /// rejects is dropped, as the `ffmpeg` tool does, and reported so the caller can give up on
    /// a file that is garbage throughout.
    fn feed_packet(&mut self) -> Result<(), ffmpeg::Error> {
        loop {
            match read_packet(&mut self.input) {
                Some(packet) if packet.stream() == self.index.stream => {
                    return self.decoder.send_packet(&packet);
                }
                Some(_) => continue,
                None => {
                    self.eof_sent = true;
                    return self.decoder.send_eof();
                }
            }
        }
    }

    /// Converts the frame in `self.decoded` to packed RGB24.
    fn convert_decoded(&mut self) -> Result<RgbFrame, VideoError> {
        let (format, width, height) = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        let scaler_fits = self.scaler.as_ref().is_some_and(|s| {
            let input = s.0.input();
            input.format == format && input.width == width && input.height == height
        });
        if !scaler_fits {
            let scaler = Scaler::get(
                format,
                width,
                height,
                Pixel::RGB24,
                width,
                height,
                RGB_SCALER_FLAGS,
            )
            .map_err(|e| decode_error(&self.path, format!("no RGB conversion: {e}")))?;
            self.scaler = Some(OwnedScaler(scaler));
            self.rgb = AvFrame::empty();
        }
        if let Some(OwnedScaler(scaler)) = self.scaler.as_mut() {
            scaler
                .run(&self.decoded, &mut self.rgb)
                .map_err(|e| decode_error(&self.path, format!("RGB conversion failed: {e}")))?;
        }
        Ok(packed_rgb(&self.rgb))
    }
}

fn open_decoder(
    path: &Path,
    input: &Input,
    index: &StreamIndex,
) -> Result<ffmpeg::decoder::Video, VideoError> {
    let stream = input
        .stream(index.stream)
        .ok_or_else(|| VideoError::NoVideoStream {
            path: path.to_path_buf(),
        })?;
    let context = ffmpeg::codec::Context::from_parameters(stream.parameters())
        .map_err(|e| decode_error(path, format!("bad codec parameters: {e}")))?;
    let mut decoder = context.decoder();
    // Packets go in with the stream's timestamps untouched, so decoded frames carry
    // timestamps in the stream time base and can be matched against the demux index.
    decoder.set_packet_time_base(index.time_base);
    decoder
        .video()
        .map_err(|e| decode_error(path, format!("cannot open the video decoder: {e}")))
}

/// Copies an RGB24 frame (rows possibly padded to a stride) into a tightly packed buffer.
fn packed_rgb(frame: &AvFrame) -> RgbFrame {
    let (width, height) = (frame.width(), frame.height());
    let row_bytes = width as usize * RGB_CHANNELS;
    let stride = frame.stride(0);
    let plane = frame.data(0);
    let mut data = Vec::with_capacity(row_bytes * height as usize);
    for row in plane.chunks(stride).take(height as usize) {
        data.extend_from_slice(&row[..row_bytes]);
    }
    RgbFrame {
        width,
        height,
        data,
    }
}

/// Writes `frame` as a binary PPM (P6) at its native resolution, for eyeballing decoded frames.
pub fn write_ppm(frame: &RgbFrame, path: &Path) -> std::io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    write!(
        out,
        "P6\n{} {}\n{PPM_MAX_VALUE}\n",
        frame.width, frame.height
    )?;
    out.write_all(&frame.data)?;
    out.flush()
}

/// Reads a binary PPM (P6, 8-bit) such as [`write_ppm`] or `ffmpeg -f image2` writes.
pub fn read_ppm(path: &Path) -> std::io::Result<RgbFrame> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut fields = [0u32; 3];
    expect_magic(&mut reader)?;
    for field in &mut fields {
        *field = read_header_number(&mut reader)?;
    }
    let [width, height, max_value] = fields;
    if max_value != PPM_MAX_VALUE {
        return Err(invalid_ppm("only 8-bit PPM files are supported"));
    }
    let mut data = vec![0u8; width as usize * height as usize * RGB_CHANNELS];
    reader.read_exact(&mut data)?;
    Ok(RgbFrame {
        width,
        height,
        data,
    })
}

fn invalid_ppm(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_string())
}

fn expect_magic(reader: &mut impl BufRead) -> std::io::Result<()> {
    let mut magic = [0u8; 2];
    reader.read_exact(&mut magic)?;
    if &magic != b"P6" {
        return Err(invalid_ppm("not a binary PPM (P6) file"));
    }
    Ok(())
}

/// Reads one decimal header field, skipping whitespace and `#` comments, and consumes the single
/// whitespace byte that ends it (after the last field that byte separates header and pixels).
fn read_header_number(reader: &mut impl BufRead) -> std::io::Result<u32> {
    let mut digits = String::new();
    let mut byte = [0u8; 1];
    loop {
        reader.read_exact(&mut byte)?;
        match byte[0] {
            b'#' if digits.is_empty() => {
                let mut comment = Vec::new();
                reader.read_until(b'\n', &mut comment)?;
            }
            b if b.is_ascii_whitespace() && digits.is_empty() => {}
            b if b.is_ascii_whitespace() => break,
            b if b.is_ascii_digit() => digits.push(char::from(b)),
            _ => return Err(invalid_ppm("malformed PPM header")),
        }
    }
    digits
        .parse()
        .map_err(|_| invalid_ppm("PPM header number out of range"))
}
