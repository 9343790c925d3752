//! Temporal clip sampling: which frame indices of a video form each clip.
//!
//! Pure index arithmetic, independent of the decoder. Every function returns
//! in-range indices for any `num_frames ≥ 1` (a 0-frame video yields only
//! index 0; the decoder reports the unreadable video) and never panics.
//!
//! # Short-video policy
//!
//! A clip of `frames` frames at stride `stride` spans `(frames-1)·stride + 1`
//! frames. When the video is shorter than that, the stride is lowered to the
//! largest value for which the clip still fits; if even stride 1 does not fit,
//! the clip starts at frame 0 and runs past the end, and every index past the
//! end is *mirrored* back into the video ([`mirror_index`]): reflection
//! without repeating the edge frame, repeated as a triangle wave for very
//! short videos (5 frames padded to 8: `0 1 2 3 4 3 2 1`; a 1-frame video
//! gives all zeros).
//!
//! For the self-supervised clips ([`ssl_indices`]) the sparse stride is
//! lowered first (so the global clip fits), then the four dense clips start at
//! the beginning of each quarter of the sparse clip, as in the long-video case;
//! a dense clip that runs past the end is mirror-padded.

use rand::Rng;

/// Frames per self-supervised clip (sparse and dense).
pub const SSL_CLIP_FRAMES: usize = 16;
/// Stride of the sparse (global) self-supervised clip on long videos.
pub const SSL_SPARSE_STRIDE: usize = 4;
/// Number of dense (local) clips.
pub const SSL_DENSE_CLIPS: usize = 4;
/// Views per self-supervised clip (docs/method.md: "every clip is drawn twice").
pub const SSL_VIEWS: usize = 2;
/// Self-supervised clips per view: the sparse clip, then the dense clips.
pub const SSL_CLIPS_PER_VIEW: usize = 1 + SSL_DENSE_CLIPS;
/// Self-supervised clips per video, all views (10).
pub const SSL_CLIPS: usize = SSL_VIEWS * SSL_CLIPS_PER_VIEW;
/// Frames per fine-tuning / evaluation clip.
pub const TRAIN_CLIP_FRAMES: usize = 8;
/// Stride of fine-tuning / evaluation clips.
pub const TRAIN_CLIP_STRIDE: usize = 2;
/// Number of clips per video at evaluation time.
pub const EVAL_CLIPS: usize = 10;
/// Default number of clips per video for the TSTR score.
pub const TSTR_DEFAULT_CLIPS: usize = 4;

/// Frame indices of the self-supervised clips of one video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslClipIndices {
    /// Global clip: [`SSL_CLIP_FRAMES`] frames at the (possibly lowered) sparse stride.
    pub sparse: Vec<usize>,
    /// Local clips: [`SSL_CLIP_FRAMES`] consecutive frames each, one per quarter
    /// of the sparse clip, in temporal order.
    pub dense: [Vec<usize>; SSL_DENSE_CLIPS],
    /// First frame of the sparse clip.
    pub start: usize,
    /// Sparse stride actually used (4 unless the video is short).
    pub stride: usize,
}

impl SslClipIndices {
    /// All clips, sparse first then dense 1..4, e.g. for [`DecodePlan::new`].
    pub fn clips(&self) -> Vec<&[usize]> {
        std::iter::once(self.sparse.as_slice())
            .chain(self.dense.iter().map(Vec::as_slice))
            .collect()
    }
}

/// Reflects `i` into `0..num_frames` without repeating the edge frame
/// (period `2·(num_frames-1)`); `num_frames ≤ 1` maps everything to 0.
pub fn mirror_index(i: usize, num_frames: usize) -> usize {
    if num_frames <= 1 {
        return 0;
    }
    let period = 2 * (num_frames - 1);
    let phase = i % period;
    if phase < num_frames {
        phase
    } else {
        period - phase
    }
}

/// Frames spanned by a clip of `frames` frames at `stride`.
fn span(frames: usize, stride: usize) -> usize {
    frames.saturating_sub(1) * stride + 1
}

/// Largest stride `≤ stride` (and `≥ 1`) for which the clip fits the video.
pub fn fitting_stride(num_frames: usize, frames: usize, stride: usize) -> usize {
    if frames <= 1 {
        return stride.max(1);
    }
    let fit = num_frames.saturating_sub(1) / (frames - 1);
    fit.clamp(1, stride.max(1))
}

/// `frames` indices from `start` at `stride`, mirrored into the video.
fn clip_from(start: usize, frames: usize, stride: usize, num_frames: usize) -> Vec<usize> {
    (0..frames)
        .map(|k| mirror_index(start + k * stride, num_frames))
        .collect()
}

/// Length and sparse stride of the self-supervised clips (docs/method.md: 16 frames, stride 4,
/// a 61-frame window; an experiment may change both, `data.ssl_frames` / `data.ssl_stride`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SslGeometry {
    /// Frames per clip, sparse and dense; a multiple of [`SSL_DENSE_CLIPS`].
    pub frames: usize,
    /// Stride of the sparse clip on long videos.
    pub stride: usize,
}

impl Default for SslGeometry {
    fn default() -> Self {
        Self {
            frames: SSL_CLIP_FRAMES,
            stride: SSL_SPARSE_STRIDE,
        }
    }
}

impl SslGeometry {
    /// Frames the sparse clip spans on a long video.
    pub fn window(&self) -> usize {
        span(self.frames, self.stride)
    }
}

/// Self-supervised sparse + dense clips with a uniformly random start.
///
/// Long videos (≥ 64 frames, default geometry): start `s` uniform in `0..=n-64`; sparse
/// `s, s+4, …, s+60`; dense `j` = `s+16j … s+16j+15`. Short videos: see the
/// module docs. When possible the start is also chosen so that the dense clips
/// fit without padding.
pub fn ssl_indices<R: Rng + ?Sized>(
    num_frames: usize,
    geometry: SslGeometry,
    rng: &mut R,
) -> SslClipIndices {
    let frames = geometry.frames;
    let stride = fitting_stride(num_frames, frames, geometry.stride);
    let quarter = frames / SSL_DENSE_CLIPS * stride;
    let sparse_span = span(frames, stride);
    let dense_span = (SSL_DENSE_CLIPS - 1) * quarter + frames;
    let max_start = num_frames
        .checked_sub(sparse_span.max(dense_span))
        .or_else(|| num_frames.checked_sub(sparse_span))
        .unwrap_or(0);
    let start = rng.random_range(0..=max_start);
    ssl_indices_at(num_frames, start, frames, stride)
}

/// The clips of [`ssl_indices`] for a given start, clip length and (actual) sparse stride
/// (deterministic; useful for tests and for replaying a draw).
pub fn ssl_indices_at(
    num_frames: usize,
    start: usize,
    frames: usize,
    stride: usize,
) -> SslClipIndices {
    let quarter = frames / SSL_DENSE_CLIPS * stride;
    SslClipIndices {
        sparse: clip_from(start, frames, stride, num_frames),
        dense: std::array::from_fn(|j| clip_from(start + j * quarter, frames, 1, num_frames)),
        start,
        stride,
    }
}

/// One training clip of `frames` frames at `stride` (lowered for short
/// videos) with a uniformly random start.
pub fn train_indices<R: Rng + ?Sized>(
    num_frames: usize,
    frames: usize,
    stride: usize,
    rng: &mut R,
) -> Vec<usize> {
    let stride = fitting_stride(num_frames, frames, stride);
    let max_start = num_frames.saturating_sub(span(frames, stride));
    let start = rng.random_range(0..=max_start);
    clip_from(start, frames, stride, num_frames)
}

/// `clips` clips evenly spread in time, deterministic.
///
/// The valid start range `0..=n-span` is cut into `clips` equal segments and
/// each clip starts at the centre of its segment (MMAction2's test-mode
/// convention), so one clip is centred in the video.
pub fn eval_indices(
    num_frames: usize,
    clips: usize,
    frames: usize,
    stride: usize,
) -> Vec<Vec<usize>> {
    let stride = fitting_stride(num_frames, frames, stride);
    let positions = num_frames.saturating_sub(span(frames, stride)) + 1;
    (0..clips)
        .map(|k| {
            let start = (2 * k + 1) * positions / (2 * clips);
            clip_from(start, frames, stride, num_frames)
        })
        .collect()
}

/// `n` clips at evenly spread, distinct-where-possible times, for the
/// temporal-similarity (TSTR) score. Same placement as [`eval_indices`].
pub fn tstr_indices(num_frames: usize, n: usize, frames: usize, stride: usize) -> Vec<Vec<usize>> {
    eval_indices(num_frames, n, frames, stride)
}

/// The distinct frames a set of clips needs, so each is decoded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodePlan {
    /// Sorted, unique frame indices to decode.
    pub frames: Vec<usize>,
    /// For each clip, the positions in [`frames`](Self::frames) of its frames
    /// (temporal order of the clip preserved).
    pub clips: Vec<Vec<usize>>,
}

impl DecodePlan {
    /// Builds the union of `clips` and the mapping back into it.
    pub fn new<C: AsRef<[usize]>>(clips: &[C]) -> Self {
        let mut frames: Vec<usize> = clips
            .iter()
            .flat_map(|c| c.as_ref().iter().copied())
            .collect();
        frames.sort_unstable();
        frames.dedup();
        let clips = clips
            .iter()
            .map(|c| {
                c.as_ref()
                    .iter()
                    .map(|f| frames.partition_point(|&x| x < *f))
                    .collect()
            })
            .collect();
        Self { frames, clips }
    }

    /// The decoded frames of clip `k`, given the decoded frames in
    /// [`frames`](Self::frames) order.
    ///
    /// # Panics
    /// If `k` is not a clip of this plan or `decoded` is shorter than
    /// [`frames`](Self::frames) (both are caller bugs, not data errors).
    pub fn gather<'a, T: ?Sized>(&self, k: usize, decoded: &[&'a T]) -> Vec<&'a T> {
        self.clips[k].iter().map(|&p| decoded[p]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Lengths that exercise every short-video branch.
    const SHORT_LENGTHS: [usize; 8] = [1, 2, 5, 16, 17, 40, 63, 64];

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(11)
    }

    fn in_range(clip: &[usize], n: usize) -> bool {
        clip.iter().all(|&i| i < n.max(1))
    }

    #[test]
    fn mirror_padding() {
        let padded: Vec<usize> = (0..8).map(|i| mirror_index(i, 5)).collect();
        assert_eq!(padded, [0, 1, 2, 3, 4, 3, 2, 1]);
        let long: Vec<usize> = (0..10).map(|i| mirror_index(i, 3)).collect();
        assert_eq!(long, [0, 1, 2, 1, 0, 1, 2, 1, 0, 1]);
        assert!((0..20).all(|i| mirror_index(i, 1) == 0));
    }

    #[test]
    fn ssl_long_video_matches_spec() {
        let c = ssl_indices_at(300, 100, SSL_CLIP_FRAMES, SSL_SPARSE_STRIDE);
        assert_eq!(c.sparse, (0..16).map(|k| 100 + 4 * k).collect::<Vec<_>>());
        for (j, d) in c.dense.iter().enumerate() {
            assert_eq!(*d, (100 + 16 * j..100 + 16 * j + 16).collect::<Vec<_>>());
        }
    }

    #[test]
    fn ssl_random_start_covers_64_frames() {
        let mut r = rng();
        for _ in 0..200 {
            let c = ssl_indices(300, SslGeometry::default(), &mut r);
            assert_eq!(c.stride, 4);
            assert!(c.start <= 300 - 64);
            assert_eq!(c.sparse[15], c.start + 60);
            assert_eq!(c.dense[3][15], c.start + 63);
        }
        let c = ssl_indices(64, SslGeometry::default(), &mut r);
        assert_eq!((c.start, c.dense[3][15]), (0, 63));
    }

    #[test]
    fn ssl_short_videos_lower_stride_then_mirror() {
        let mut r = rng();
        for n in SHORT_LENGTHS {
            for _ in 0..50 {
                let c = ssl_indices(n, SslGeometry::default(), &mut r);
                assert_eq!(c.sparse.len(), SSL_CLIP_FRAMES);
                assert!(in_range(&c.sparse, n), "n={n} {c:?}");
                for d in &c.dense {
                    assert_eq!(d.len(), SSL_CLIP_FRAMES);
                    assert!(in_range(d, n), "n={n} {c:?}");
                }
            }
        }
        // 40 frames: stride 2 (31 frames), sparse never mirrored.
        let c = ssl_indices(40, SslGeometry::default(), &mut r);
        assert_eq!(c.stride, 2);
        assert!(c.sparse.windows(2).all(|w| w[1] == w[0] + 2));
        // 5 frames: stride 1, mirrored triangle wave.
        let c = ssl_indices(5, SslGeometry::default(), &mut r);
        assert_eq!(&c.sparse[..9], &[0, 1, 2, 3, 4, 3, 2, 1, 0]);
    }

    #[test]
    fn train_clip_spec_and_short_videos() {
        let mut r = rng();
        for _ in 0..100 {
            let c = train_indices(300, TRAIN_CLIP_FRAMES, TRAIN_CLIP_STRIDE, &mut r);
            assert!(c.windows(2).all(|w| w[1] == w[0] + 2));
            assert!(c[7] < 300);
        }
        for n in SHORT_LENGTHS {
            let c = train_indices(n, TRAIN_CLIP_FRAMES, TRAIN_CLIP_STRIDE, &mut r);
            assert_eq!(c.len(), TRAIN_CLIP_FRAMES);
            assert!(in_range(&c, n), "n={n} {c:?}");
        }
        // 10 frames: stride lowered to 1, fits without padding.
        let c = train_indices(10, 8, 2, &mut r);
        assert!(c.windows(2).all(|w| w[1] == w[0] + 1));
        assert_eq!(train_indices(5, 8, 2, &mut r), [0, 1, 2, 3, 4, 3, 2, 1]);
    }

    #[test]
    fn eval_clips_evenly_spread_and_deterministic() {
        // 300 frames, span 15 → starts 0..=285 (286 positions), 10 segments.
        let clips = eval_indices(300, EVAL_CLIPS, TRAIN_CLIP_FRAMES, TRAIN_CLIP_STRIDE);
        let starts: Vec<usize> = clips.iter().map(|c| c[0]).collect();
        assert_eq!(starts, [14, 42, 71, 100, 128, 157, 185, 214, 243, 271]);
        assert_eq!(clips[9], (271..=285).step_by(2).collect::<Vec<_>>());
        assert_eq!(clips, eval_indices(300, EVAL_CLIPS, 8, 2));
        for n in SHORT_LENGTHS {
            for c in eval_indices(n, EVAL_CLIPS, 8, 2) {
                assert_eq!(c.len(), 8);
                assert!(in_range(&c, n), "n={n} {c:?}");
            }
        }
    }

    #[test]
    fn tstr_clips_are_distinct_in_time() {
        let clips = tstr_indices(120, TSTR_DEFAULT_CLIPS, 8, 2);
        assert_eq!(clips.len(), 4);
        assert!(clips.windows(2).all(|w| w[1][0] > w[0][0]));
        assert!(tstr_indices(1, 4, 8, 2).iter().flatten().all(|&i| i == 0));
    }

    #[test]
    fn decode_plan_union_and_mapping() {
        let c = ssl_indices_at(300, 10, SSL_CLIP_FRAMES, 4);
        let plan = DecodePlan::new(&c.clips());
        assert!(plan.frames.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(plan.frames, (10..74).collect::<Vec<_>>());
        for (k, clip) in c.clips().iter().enumerate() {
            let back: Vec<usize> = plan.clips[k].iter().map(|&p| plan.frames[p]).collect();
            assert_eq!(back, *clip);
        }
        let decoded: Vec<&usize> = plan.frames.iter().collect();
        assert_eq!(
            plan.gather(0, &decoded),
            c.sparse.iter().collect::<Vec<_>>()
        );
    }

    #[test]
    fn ssl_geometry_sets_clip_length_and_sparse_stride() {
        let g = SslGeometry {
            frames: 8,
            stride: 2,
        };
        assert_eq!(g.window(), 15);
        let mut r = rng();
        for _ in 0..50 {
            let c = ssl_indices(100, g, &mut r);
            let s = c.start;
            assert!(s + 15 <= 100, "start {s}");
            assert_eq!(c.sparse, (0..8).map(|k| s + 2 * k).collect::<Vec<_>>());
            for (j, d) in c.dense.iter().enumerate() {
                assert_eq!(*d, (0..8).map(|k| s + 4 * j + k).collect::<Vec<_>>());
            }
        }
        // A 10-frame video cannot hold stride 2: lowered to 1, as for the default geometry.
        assert_eq!(ssl_indices(10, g, &mut r).stride, 1);
    }
}
