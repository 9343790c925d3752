//! Writing the video files: an in-process MPEG-4 Part 2 encoder in an AVI container.
//!
//! Encoding: MPEG-4 Part 2 in AVI, like UCF101 (which is XviD MPEG-4 in AVI). It is encoded in
//! process through the `ffmpeg-next` bindings re-exported by video-rs. video-rs's own `Encoder`
//! only offers H.264 with a microsecond time base, and piping to the `ffmpeg` CLI would make the
//! library depend on an external program at run time; the in-process MPEG-4 path is a few
//! dozen lines, fast (intra/inter at fixed quantiser, no B-frames) and byte-deterministic.
//!
//! Separate from the scenes because it only turns packed RGB24 frames into a file; nothing in
//! it knows what the frames show.

use std::path::Path;

use anyhow::{Context as _, Result};
use video_rs::ffmpeg;
use video_rs::ffmpeg::Rational;
use video_rs::ffmpeg::format::Pixel;
use video_rs::ffmpeg::software::scaling::{Context as Scaler, Flags as ScalerFlags};
use video_rs::ffmpeg::util::frame::Video as AvFrame;

use crate::data::pixels::CHANNELS;

/// MPEG-4 fixed quantiser (2 = near lossless … 31 = worst); 3 keeps shapes crisp at 64 px.
const MPEG4_QUANTISER: i32 = 3;
/// Keyframe interval of the encoded videos (frames); short so that seeking is cheap.
const KEYFRAME_INTERVAL: u32 = 12;

/// In-process MPEG-4 Part 2 encoder writing an AVI file (see the module documentation).
pub(super) struct AviWriter {
    output: ffmpeg::format::context::Output,
    encoder: ffmpeg::encoder::Video,
    scaler: Scaler,
    rgb: AvFrame,
    yuv: AvFrame,
    stream_index: usize,
    encoder_time_base: Rational,
    next_pts: i64,
}

impl AviWriter {
    pub(super) fn create(path: &Path, size: u32, fps: u32) -> Result<Self> {
        crate::data::video::ensure_ffmpeg_initialised();
        let codec = ffmpeg::encoder::find(ffmpeg::codec::Id::MPEG4)
            .context("FFmpeg has no MPEG-4 encoder")?;
        let mut output = ffmpeg::format::output(path)?;
        let global_header = output
            .format()
            .flags()
            .contains(ffmpeg::format::Flags::GLOBAL_HEADER);
        let fps = i32::try_from(fps).context("fps out of range")?;
        let encoder_time_base = Rational::new(1, fps);
        let encoder = open_mpeg4_encoder(codec, size, encoder_time_base, global_header)?;
        let mut stream = output.add_stream(codec)?;
        stream.set_parameters(&encoder);
        stream.set_time_base(encoder_time_base);
        let stream_index = stream.index();
        output.write_header()?;
        let scaler = Scaler::get(
            Pixel::RGB24,
            size,
            size,
            Pixel::YUV420P,
            size,
            size,
            ScalerFlags::BICUBIC,
        )?;
        Ok(Self {
            output,
            encoder,
            scaler,
            rgb: AvFrame::new(Pixel::RGB24, size, size),
            yuv: AvFrame::empty(),
            stream_index,
            encoder_time_base,
            next_pts: 0,
        })
    }

    /// Encodes one packed RGB24 frame.
    pub(super) fn write(&mut self, rgb: &[u8]) -> Result<()> {
        let row_bytes = self.rgb.width() as usize * CHANNELS;
        let stride = self.rgb.stride(0);
        let plane = self.rgb.data_mut(0);
        for (source, target) in rgb.chunks_exact(row_bytes).zip(plane.chunks_mut(stride)) {
            target[..row_bytes].copy_from_slice(source);
        }
        self.scaler.run(&self.rgb, &mut self.yuv)?;
        self.yuv.set_pts(Some(self.next_pts));
        self.next_pts += 1;
        self.encoder.send_frame(&self.yuv)?;
        self.write_packets()
    }

    /// Flushes the encoder and writes the AVI index.
    pub(super) fn finish(mut self) -> Result<()> {
        self.encoder.send_eof()?;
        self.write_packets()?;
        self.output.write_trailer()?;
        Ok(())
    }

    /// Moves every packet the encoder has ready into the file.
    fn write_packets(&mut self) -> Result<()> {
        let stream_time_base = self
            .output
            .stream(self.stream_index)
            .context("output stream vanished")?
            .time_base();
        let mut packet = ffmpeg::Packet::empty();
        loop {
            match self.encoder.receive_packet(&mut packet) {
                Ok(()) => {
                    packet.set_stream(self.stream_index);
                    packet.rescale_ts(self.encoder_time_base, stream_time_base);
                    packet.write_interleaved(&mut self.output)?;
                }
                Err(ffmpeg::Error::Eof) => return Ok(()),
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn open_mpeg4_encoder(
    codec: ffmpeg::Codec,
    size: u32,
    time_base: Rational,
    global_header: bool,
) -> Result<ffmpeg::encoder::Video> {
    let context = ffmpeg::codec::Context::new_with_codec(codec);
    let mut encoder = context.encoder().video()?;
    encoder.set_width(size);
    encoder.set_height(size);
    encoder.set_format(Pixel::YUV420P);
    encoder.set_time_base(time_base);
    encoder.set_frame_rate(Some(time_base.invert()));
    encoder.set_gop(KEYFRAME_INTERVAL);
    encoder.set_max_b_frames(0);
    encoder.set_global_quality(MPEG4_QUANTISER * ffmpeg::ffi::FF_QP2LAMBDA);
    let mut flags = ffmpeg::codec::Flags::QSCALE;
    if global_header {
        flags |= ffmpeg::codec::Flags::GLOBAL_HEADER;
    }
    encoder.set_flags(flags);
    Ok(encoder.open_as(codec)?)
}
