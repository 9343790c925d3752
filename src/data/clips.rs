//! One video → model-ready clips: temporal sampling, exact decoding of each needed frame once,
//! and rendering with per-clip augmentation into one channel-first `f32` buffer.
//!
//! The four recipes follow docs/method.md:
//!
//! * [`ClipRecipe::Ssl`]: one sparse clip (16 frames, stride 4) and four dense clips (16
//!   consecutive frames), each drawn in two views with independent augmentation parameters:
//!   [`SSL_CLIPS`] = 10 clips of 16 frames. Layout is view-major, see [`ssl_clip_index`].
//! * [`ClipRecipe::Train`]: one clip (default 8 frames, stride 2) with fine-tuning augmentation.
//! * [`ClipRecipe::Eval`]: `clips` evenly spread clips × 1 or 3 deterministic crops, clip-major
//!   (see [`eval_clip_index`]).
//! * [`ClipRecipe::Tstr`]: `clips` evenly spread clips, centre crop, no augmentation.
//!
//! Randomness: every random draw of one video comes from one RNG, drawn in a fixed order
//! (temporal positions first, then the augmentation parameters of each clip in output order).
//! [`video_rng`] derives that RNG from (base seed, epoch, video index) alone, so the clips of a
//! video do not depend on which loader thread decoded it, or on how many threads there are.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::augment::{
    AugmentConfig, AugmentError, CHANNELS, ClipAugment, ClipRenderer, DEFAULT_EVAL_CROP_FRACTION,
    EvalCrops,
};
use super::sampling::{
    DecodePlan, EVAL_CLIPS, SSL_CLIPS, SSL_CLIPS_PER_VIEW, SSL_DENSE_CLIPS, SSL_VIEWS, SslGeometry,
    TRAIN_CLIP_FRAMES, TRAIN_CLIP_STRIDE, TSTR_DEFAULT_CLIPS, eval_indices, ssl_indices,
    train_indices, tstr_indices,
};
use super::video::{FrameReader, RgbFrame, VideoError};

/// Usual output side (docs/method.md: 112² is the cheaper setting this project uses).
pub const DEFAULT_OUT_SIZE: u32 = 112;
/// Tag mixed into the per-video seed, so clip RNGs never coincide with other seeded streams
/// (shuffling, partitions) that start from the same base seed.
const CLIP_RNG_TAG: u64 = 0x636c_6970_735f_7267; // "clips_rg"

/// How to turn one video into clips.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ClipRecipe {
    /// Self-supervised pre-training: [`SSL_CLIPS`] clips of `geometry.frames` frames
    /// ([`SSL_CLIP_FRAMES`](super::sampling::SSL_CLIP_FRAMES) in docs/method.md's recipe).
    Ssl {
        /// Output side in pixels.
        out_size: u32,
        /// Clip length and sparse stride.
        geometry: SslGeometry,
        /// Augmentation drawn independently for each clip and view (normally
        /// [`AugmentConfig::ssl`], with flips switched off for left/right-dependent classes).
        augment: AugmentConfig,
    },
    /// Fine-tuning / student training: one randomly placed, augmented clip.
    Train {
        /// Frames per clip.
        frames: usize,
        /// Temporal stride (lowered for short videos, see `sampling`).
        stride: usize,
        /// Output side in pixels.
        out_size: u32,
        /// Augmentation (normally [`AugmentConfig::finetune`]).
        augment: AugmentConfig,
    },
    /// Evaluation: `clips` evenly spread clips, each in `crops` deterministic views.
    Eval {
        /// Clips per video.
        clips: usize,
        /// Frames per clip.
        frames: usize,
        /// Temporal stride.
        stride: usize,
        /// Output side in pixels.
        out_size: u32,
        /// One centre crop or three crops along the longer side.
        crops: EvalCrops,
        /// Crop side as a fraction of the shorter frame side.
        crop_fraction: f32,
    },
    /// Temporal-similarity score: `clips` evenly spread clips, centre crop, no augmentation.
    Tstr {
        /// Clips per video.
        clips: usize,
        /// Frames per clip.
        frames: usize,
        /// Temporal stride.
        stride: usize,
        /// Output side in pixels.
        out_size: u32,
    },
}

/// Errors of a recipe or of loading one video's clips.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// The recipe cannot produce clips (zero sizes, bad augmentation settings).
    #[error("invalid clip recipe: {0}")]
    InvalidRecipe(String),
    /// Opening or decoding the video failed.
    #[error(transparent)]
    Video(#[from] VideoError),
    /// Rendering a clip failed (e.g. the frame size changed inside the video).
    #[error("cannot render clips of {}: {source}", path.display())]
    Render {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: AugmentError,
    },
}

impl ClipRecipe {
    /// docs/method.md's self-supervised recipe; `hflip` off for datasets whose classes depend on
    /// left/right.
    pub fn ssl(out_size: u32, hflip: bool) -> Self {
        Self::Ssl {
            out_size,
            geometry: SslGeometry::default(),
            augment: AugmentConfig::ssl().with_hflip(hflip),
        }
    }

    /// docs/method.md's fine-tuning recipe: 8 frames at stride 2, mild augmentation.
    pub fn train(out_size: u32, hflip: bool) -> Self {
        Self::Train {
            frames: TRAIN_CLIP_FRAMES,
            stride: TRAIN_CLIP_STRIDE,
            out_size,
            augment: AugmentConfig::finetune().with_hflip(hflip),
        }
    }

    /// docs/method.md's test recipe: 10 clips of 8 frames at stride 2, crops of 0.8 of the
    /// shorter side.
    pub fn eval(out_size: u32, crops: EvalCrops) -> Self {
        Self::Eval {
            clips: EVAL_CLIPS,
            frames: TRAIN_CLIP_FRAMES,
            stride: TRAIN_CLIP_STRIDE,
            out_size,
            crops,
            crop_fraction: DEFAULT_EVAL_CROP_FRACTION,
        }
    }

    /// The TSTR recipe with `clips` clips (docs/method.md's default is [`TSTR_DEFAULT_CLIPS`]) of
    /// the fine-tuning clip shape.
    pub fn tstr(out_size: u32, clips: usize) -> Self {
        Self::Tstr {
            clips,
            frames: TRAIN_CLIP_FRAMES,
            stride: TRAIN_CLIP_STRIDE,
            out_size,
        }
    }

    /// The TSTR recipe with the default number of clips.
    pub fn tstr_default(out_size: u32) -> Self {
        Self::tstr(out_size, TSTR_DEFAULT_CLIPS)
    }

    /// Clips per video.
    pub fn n_clips(&self) -> usize {
        match *self {
            Self::Ssl { .. } => SSL_CLIPS,
            Self::Train { .. } => 1,
            Self::Eval { clips, crops, .. } => clips * crop_count(crops),
            Self::Tstr { clips, .. } => clips,
        }
    }

    /// Frames per clip (the same for every clip of a recipe).
    pub fn frames(&self) -> usize {
        match *self {
            Self::Ssl { geometry, .. } => geometry.frames,
            Self::Train { frames, .. } | Self::Eval { frames, .. } | Self::Tstr { frames, .. } => {
                frames
            }
        }
    }

    /// Output side in pixels.
    pub fn out_size(&self) -> u32 {
        match *self {
            Self::Ssl { out_size, .. }
            | Self::Train { out_size, .. }
            | Self::Eval { out_size, .. }
            | Self::Tstr { out_size, .. } => out_size,
        }
    }

    /// Floats in one clip: `3 · T · S · S`.
    pub fn clip_len(&self) -> usize {
        let side = self.out_size() as usize;
        CHANNELS * self.frames() * side * side
    }

    /// Floats for all clips of one video.
    pub fn video_len(&self) -> usize {
        self.n_clips() * self.clip_len()
    }

    /// Checks that the recipe can produce at least one non-empty clip, so a bad setting fails
    /// once up front instead of once per video.
    pub fn validate(&self) -> Result<(), ClipError> {
        let invalid = |m: &str| Err(ClipError::InvalidRecipe(m.to_string()));
        if self.out_size() == 0 {
            return invalid("out_size must be at least 1");
        }
        if self.frames() == 0 || self.n_clips() == 0 {
            return invalid("need at least one clip of at least one frame");
        }
        let stride_ok = match *self {
            Self::Train { stride, .. } | Self::Eval { stride, .. } | Self::Tstr { stride, .. } => {
                stride >= 1
            }
            Self::Ssl { geometry, .. } => {
                geometry.stride >= 1 && geometry.frames.is_multiple_of(SSL_DENSE_CLIPS)
            }
        };
        if !stride_ok {
            return invalid(
                "stride must be at least 1 (and self-supervised clips a multiple of 4 frames)",
            );
        }
        let augment = match *self {
            Self::Ssl { augment, .. } | Self::Train { augment, .. } => augment,
            Self::Eval { crop_fraction, .. } => AugmentConfig::eval(crop_fraction),
            Self::Tstr { .. } => AugmentConfig::eval(1.0),
        };
        augment
            .validate()
            .map_err(|e| ClipError::InvalidRecipe(e.to_string()))
    }

    /// Frame indices of every *temporal* clip (before views / crops are applied), drawing
    /// the random start(s) from `rng` for the random recipes.
    fn temporal_clips<R: Rng + ?Sized>(&self, num_frames: usize, rng: &mut R) -> Vec<Vec<usize>> {
        match *self {
            Self::Ssl { geometry, .. } => {
                let c = ssl_indices(num_frames, geometry, rng);
                std::iter::once(c.sparse).chain(c.dense).collect()
            }
            Self::Train { frames, stride, .. } => {
                vec![train_indices(num_frames, frames, stride, rng)]
            }
            Self::Eval {
                clips,
                frames,
                stride,
                ..
            } => eval_indices(num_frames, clips, frames, stride),
            Self::Tstr {
                clips,
                frames,
                stride,
                ..
            } => tstr_indices(num_frames, clips, frames, stride),
        }
    }

    /// For each output clip, in output order: which temporal clip it shows and with which
    /// augmentation parameters.
    fn views<R: Rng + ?Sized>(
        &self,
        temporal: usize,
        src_w: u32,
        src_h: u32,
        rng: &mut R,
    ) -> Result<Vec<(usize, ClipAugment)>, AugmentError> {
        match *self {
            Self::Ssl { augment, .. } => {
                let mut out = Vec::with_capacity(SSL_CLIPS);
                for _view in 0..SSL_VIEWS {
                    for clip in 0..temporal {
                        out.push((clip, ClipAugment::sample(&augment, src_w, src_h, rng)?));
                    }
                }
                Ok(out)
            }
            Self::Train { augment, .. } => {
                Ok(vec![(0, ClipAugment::sample(&augment, src_w, src_h, rng)?)])
            }
            Self::Eval {
                crops,
                crop_fraction,
                ..
            } => {
                let crops = ClipAugment::eval_views(crop_fraction, src_w, src_h, crops)?;
                Ok((0..temporal)
                    .flat_map(|clip| crops.iter().map(move |c| (clip, c.clone())))
                    .collect())
            }
            Self::Tstr { .. } => {
                let centre = ClipAugment::eval_views(1.0, src_w, src_h, EvalCrops::One)?;
                Ok((0..temporal)
                    .map(|clip| (clip, centre[0].clone()))
                    .collect())
            }
        }
    }
}

fn crop_count(crops: EvalCrops) -> usize {
    match crops {
        EvalCrops::One => 1,
        EvalCrops::Three => 3,
    }
}

/// Position of (`view`, `clip`) in an SSL video's clips; `clip` 0 is the sparse clip and
/// `1..=4` the dense clips in temporal order. View-major, so each view is one contiguous
/// `[5, 3, T, S, S]` block.
pub fn ssl_clip_index(view: usize, clip: usize) -> usize {
    view * SSL_CLIPS_PER_VIEW + clip
}

/// Position of (`clip`, `crop`) in an evaluation video's clips (clip-major: the crops of one
/// clip are adjacent), for a recipe with `crops` crops.
pub fn eval_clip_index(clip: usize, crop: usize, crops: EvalCrops) -> usize {
    clip * crop_count(crops) + crop
}

/// The RNG of one video in one epoch: a ChaCha8 stream keyed by (`seed`, `epoch`, `video`)
/// laid out side by side in the 256-bit key, so distinct triples never share a stream and the
/// result does not depend on thread scheduling.
pub fn video_rng(seed: u64, epoch: u64, video: usize) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, word) in key
        .chunks_exact_mut(8)
        .zip([seed, epoch, video as u64, CLIP_RNG_TAG])
    {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// All clips of one video, `[n_clips, 3, frames, size, size]` row-major, values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoClips {
    /// Index of the video in the dataset (item list) it came from.
    pub video: usize,
    /// Class label, if the video is labeled.
    pub label: Option<usize>,
    /// Pixel data.
    pub clips: Vec<f32>,
    /// Number of clips.
    pub n_clips: usize,
    /// Frames per clip.
    pub frames: usize,
    /// Output side.
    pub size: usize,
}

/// Turns videos into clips for one recipe, keeping the resizer and scratch buffers between
/// videos (one per loader thread).
pub struct ClipMaker {
    recipe: ClipRecipe,
    renderer: ClipRenderer,
}

impl ClipMaker {
    /// A maker for `recipe` (validated here, once).
    pub fn new(recipe: ClipRecipe) -> Result<Self, ClipError> {
        recipe.validate()?;
        Ok(Self {
            renderer: ClipRenderer::new(recipe.out_size()),
            recipe,
        })
    }

    /// The recipe.
    pub fn recipe(&self) -> &ClipRecipe {
        &self.recipe
    }

    /// Loads the clips of `path` into `out` (resized to [`ClipRecipe::video_len`]).
    ///
    /// Opening the [`FrameReader`] is the probe: its demux pass yields the trustworthy frame
    /// count that sampling needs, and the same packet index is what makes seeking exact, so a
    /// separately cached frame count would not save that pass. Each distinct frame of the
    /// union of all clips is decoded once ([`DecodePlan`]).
    pub fn load_into<R: Rng + ?Sized>(
        &mut self,
        path: &Path,
        rng: &mut R,
        out: &mut Vec<f32>,
    ) -> Result<(), ClipError> {
        let mut reader = FrameReader::open(path)?;
        let num_frames = reader.info().frame_count;
        let temporal = self.recipe.temporal_clips(num_frames, rng);
        let plan = DecodePlan::new(&temporal);
        let decoded: Vec<RgbFrame> = reader.read_frames(&plan.frames)?;
        // Frames decide the source size: the stream header can disagree with what the decoder
        // outputs, and the renderer checks every frame against these dimensions.
        let (src_w, src_h) = decoded
            .first()
            .map(|f| (f.width, f.height))
            .unwrap_or_default();
        let render_error = |source| ClipError::Render {
            path: path.to_path_buf(),
            source,
        };
        let views = self
            .recipe
            .views(temporal.len(), src_w, src_h, rng)
            .map_err(render_error)?;
        let pixels: Vec<&[u8]> = decoded.iter().map(|f| f.data.as_slice()).collect();
        let clip_len = self.recipe.clip_len();
        out.clear();
        out.resize(views.len() * clip_len, 0.0);
        for ((clip, params), dst) in views.iter().zip(out.chunks_exact_mut(clip_len)) {
            let frames = plan.gather(*clip, &pixels);
            self.renderer
                .render(&frames, src_w, src_h, params, dst)
                .map_err(render_error)?;
        }
        Ok(())
    }

    /// Loads the clips of video number `video` (with `label`) from `path`.
    pub fn load<R: Rng + ?Sized>(
        &mut self,
        path: &Path,
        video: usize,
        label: Option<usize>,
        rng: &mut R,
    ) -> Result<VideoClips, ClipError> {
        let mut clips = Vec::new();
        self.load_into(path, rng, &mut clips)?;
        Ok(VideoClips {
            video,
            label,
            clips,
            n_clips: self.recipe.n_clips(),
            frames: self.recipe.frames(),
            size: self.recipe.out_size() as usize,
        })
    }
}

/// Loads the clips of one video with a fresh [`ClipMaker`] (`video` = 0, no label); keep a
/// maker alive when loading many videos.
pub fn load_clips<R: Rng + ?Sized>(
    path: &Path,
    recipe: &ClipRecipe,
    rng: &mut R,
) -> Result<VideoClips, ClipError> {
    ClipMaker::new(*recipe)?.load(path, 0, None, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::{SynthConfig, generate};
    use crate::data::video::decode_frames;

    /// Tiny synthetic videos: 32 px, long enough for the 64-frame SSL window.
    const TEST_SIZE: u32 = 32;
    const TEST_FRAMES: usize = 70;
    const OUT: u32 = 16;
    /// One 8-bit quantisation level (the resizer works on bytes).
    const ONE_LEVEL: f32 = 1.0 / 255.0 + 1e-6;

    fn videos(dir: &Path, frames: usize) -> Vec<PathBuf> {
        let cfg = SynthConfig {
            out: dir.to_path_buf(),
            classes: 2,
            videos_per_class: 1,
            test_videos_per_class: 0,
            frames,
            size: TEST_SIZE,
            seed: 3,
            fps: 25,
            ..SynthConfig::default()
        };
        let summary = generate(&cfg).expect("synthetic videos");
        summary.train.iter().map(|p| dir.join(p)).collect()
    }

    fn in_unit_range(v: &[f32]) -> bool {
        v.iter().all(|x| (0.0..=1.0).contains(x))
    }

    #[test]
    fn recipe_shapes() {
        assert_eq!(ClipRecipe::ssl(112, true).n_clips(), 10);
        assert_eq!(ClipRecipe::ssl(112, true).frames(), 16);
        assert_eq!(ClipRecipe::train(112, true).n_clips(), 1);
        assert_eq!(ClipRecipe::train(112, true).frames(), 8);
        assert_eq!(ClipRecipe::eval(112, EvalCrops::Three).n_clips(), 30);
        assert_eq!(ClipRecipe::tstr_default(112).n_clips(), 4);
        assert_eq!(ClipRecipe::train(112, true).clip_len(), 3 * 8 * 112 * 112);
        assert_eq!(ssl_clip_index(1, 0), 5);
        assert_eq!(eval_clip_index(2, 1, EvalCrops::Three), 7);
        assert!(ClipRecipe::ssl(0, true).validate().is_err());
        assert!(ClipRecipe::tstr(112, 0).validate().is_err());
    }

    #[test]
    fn video_rng_depends_on_all_three_keys() {
        let draw = |s, e, v| video_rng(s, e, v).random::<u64>();
        let base = draw(1, 2, 3);
        assert_eq!(base, draw(1, 2, 3));
        assert_ne!(base, draw(9, 2, 3));
        assert_ne!(base, draw(1, 9, 3));
        assert_ne!(base, draw(1, 2, 9));
    }

    #[test]
    fn ssl_clips_shape_range_and_determinism() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = &videos(dir.path(), TEST_FRAMES)[0];
        let recipe = ClipRecipe::ssl(OUT, true);
        let a = load_clips(path, &recipe, &mut video_rng(5, 0, 0)).expect("clips");
        assert_eq!((a.n_clips, a.frames, a.size), (10, 16, OUT as usize));
        assert_eq!(a.clips.len(), 10 * 3 * 16 * 16 * 16);
        assert!(in_unit_range(&a.clips));
        let b = load_clips(path, &recipe, &mut video_rng(5, 0, 0)).expect("clips");
        assert_eq!(a, b);
        let c = load_clips(path, &recipe, &mut video_rng(5, 1, 0)).expect("clips");
        assert_ne!(a.clips, c.clips);
    }

    #[test]
    fn tstr_clips_are_the_plain_centre_crop_of_the_decoded_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = &videos(dir.path(), TEST_FRAMES)[0];
        // Square 32 px source at out size 32: the centre crop is the whole frame, unresized.
        let recipe = ClipRecipe::tstr(TEST_SIZE, 2);
        let got = load_clips(path, &recipe, &mut video_rng(0, 0, 0)).expect("clips");
        let indices = tstr_indices(TEST_FRAMES, 2, TRAIN_CLIP_FRAMES, TRAIN_CLIP_STRIDE);
        let side = TEST_SIZE as usize;
        let plane = side * side;
        for (k, clip) in indices.iter().enumerate() {
            let frames = decode_frames(path, clip).expect("decode");
            let base = k * recipe.clip_len();
            for (t, f) in frames.iter().enumerate() {
                for (p, px) in f.data.chunks_exact(CHANNELS).enumerate() {
                    for (ch, &v) in px.iter().enumerate() {
                        let idx = base + (ch * TRAIN_CLIP_FRAMES + t) * plane + p;
                        assert!((got.clips[idx] - f32::from(v) / 255.0).abs() <= ONE_LEVEL);
                    }
                }
            }
        }
    }

    #[test]
    fn eval_is_deterministic_and_short_videos_are_padded() {
        let dir = tempfile::tempdir().expect("tempdir");
        // 6 frames: shorter than one 8-frame clip, so every clip is mirror-padded.
        let path = &videos(dir.path(), 6)[0];
        let recipe = ClipRecipe::eval(OUT, EvalCrops::Three);
        let a = load_clips(path, &recipe, &mut video_rng(0, 0, 0)).expect("clips");
        let b = load_clips(path, &recipe, &mut video_rng(7, 3, 1)).expect("clips");
        assert_eq!(a.clips, b.clips, "evaluation must not use the RNG");
        assert_eq!(a.n_clips, 30);
        assert!(in_unit_range(&a.clips));
        let ssl = load_clips(path, &ClipRecipe::ssl(OUT, false), &mut video_rng(0, 0, 0));
        assert_eq!(ssl.expect("short video still yields clips").n_clips, 10);
    }

    #[test]
    fn unreadable_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.avi");
        std::fs::write(&empty, b"").expect("write");
        let recipe = ClipRecipe::train(OUT, true);
        let err = load_clips(&empty, &recipe, &mut video_rng(0, 0, 0)).unwrap_err();
        assert!(matches!(err, ClipError::Video(_)), "{err}");
        let missing = dir.path().join("missing.avi");
        assert!(load_clips(&missing, &recipe, &mut video_rng(0, 0, 0)).is_err());
    }
}
