//! Parallel, deterministic clip loading: worker threads decode and render videos
//! ([`ClipMaker`]) while the training loop consumes ready batches.
//!
//! # Threads
//!
//! Plain `std::thread` with channels, not rayon: a loader is a long-lived *pipeline* (bounded
//! read-ahead, a batch queue the consumer drains at its own pace, cancellation when the
//! consumer goes away), not a fork-join computation, and rayon's global pool would compete
//! with the training backend's own thread pool. The pipeline is
//!
//! ```text
//! assembler ──jobs──▶ workers (N) ──results──▶ assembler ──batches (prefetch)──▶ consumer
//! ```
//!
//! * The **assembler** thread hands out jobs in epoch order, at most
//!   `workers × READ_AHEAD_PER_WORKER` ahead of the first video not yet placed in a batch, so
//!   memory stays bounded even when one video is slow. It puts finished videos back in sequence
//!   order, skips failed ones, copies clips into the batch buffer and sends full batches into a
//!   channel of `prefetch` batches. The consumer thread therefore only receives; it never
//!   copies, reorders or waits on a decode while the workers keep up.
//! * Each **worker** owns one [`ClipMaker`] (reused resizer and buffers) and draws every random
//!   number of a video from [`video_rng`]`(seed, epoch, video)`, so the batches are identical
//!   for any number of workers.
//!
//! # Failures
//!
//! A video that cannot be opened or decoded (zero bytes, corrupt, no video stream, no frames)
//! never ends the epoch: it is skipped, logged on one stderr line, and listed by
//! [`ClipLoader::skipped`]; the batch is filled with the next good videos. A panic inside the
//! decoder is caught and treated the same way.
//!
//! # Cancellation
//!
//! Dropping a [`ClipLoader`] mid-epoch closes the batch channel, which stops the assembler,
//! which closes the job channel, which stops the workers after their current video; `Drop`
//! joins them all, so no thread outlives the loader.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::clips::{ClipError, ClipMaker, ClipRecipe, video_rng};
use super::video::{VideoError, VideoInfo, read_info};

/// Jobs a worker may run ahead of the oldest unfinished video: enough to absorb the spread in
/// decode time between videos, small enough that buffered SSL clips (24 MB per video at 112²)
/// stay in the hundreds of megabytes.
pub const READ_AHEAD_PER_WORKER: usize = 2;
/// Default number of batches prepared ahead of the consumer.
pub const DEFAULT_PREFETCH: usize = 2;
/// How often a waiting assembler re-checks whether the loader was dropped, in case a worker
/// died without answering (it should never happen: workers catch panics).
const STOP_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Tag of the shuffling RNG, so the epoch order never shares a stream with clip sampling.
const SHUFFLE_RNG_TAG: u64 = 0x7368_7566_666c_6521; // "shuffle!"
/// Batch size of [`bench_loader`] (the fine-tuning batch of docs/method.md).
pub const BENCH_BATCH_SIZE: usize = 16;
/// Seed of [`bench_loader`]'s sampling.
const BENCH_SEED: u64 = 0;

/// One dataset entry: the video file and its label (`None` for unlabeled videos).
pub type LoaderItem = (PathBuf, Option<usize>);

/// Settings of one epoch of a [`ClipLoader`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoaderConfig {
    /// How each video becomes clips.
    pub recipe: ClipRecipe,
    /// Videos per batch.
    pub batch_size: usize,
    /// Visit the videos in a seeded random order (else in item order).
    pub shuffle: bool,
    /// Base seed of the order and of all clip sampling.
    pub seed: u64,
    /// Epoch number; with the seed it determines the order and every clip.
    pub epoch: u64,
    /// Decoding threads (at least 1).
    pub workers: usize,
    /// Batches prepared ahead of the consumer (at least 1).
    pub prefetch: usize,
    /// Drop the last batch if it is not full.
    pub drop_last: bool,
}

impl LoaderConfig {
    /// Defaults: shuffled, seed 0, epoch 0, one worker per available core, prefetch
    /// [`DEFAULT_PREFETCH`], last partial batch kept.
    pub fn new(recipe: ClipRecipe, batch_size: usize) -> Self {
        Self {
            recipe,
            batch_size,
            shuffle: true,
            seed: 0,
            epoch: 0,
            workers: thread::available_parallelism().map_or(1, usize::from),
            prefetch: DEFAULT_PREFETCH,
            drop_last: false,
        }
    }

    fn validate(&self) -> Result<(), LoaderError> {
        let invalid = |m: &str| Err(LoaderError::InvalidConfig(m.to_string()));
        if self.batch_size == 0 {
            return invalid("batch_size must be at least 1");
        }
        if self.workers == 0 {
            return invalid("workers must be at least 1");
        }
        if self.prefetch == 0 {
            return invalid("prefetch must be at least 1");
        }
        self.recipe.validate().map_err(LoaderError::Recipe)
    }
}

/// Errors that prevent a loader from starting (per-video failures are skips, not errors).
#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    /// A setting is out of range.
    #[error("invalid loader config: {0}")]
    InvalidConfig(String),
    /// The clip recipe is invalid.
    #[error(transparent)]
    Recipe(ClipError),
    /// The operating system refused a thread.
    #[error("cannot start a loader thread: {0}")]
    Spawn(std::io::Error),
    /// Every video of a benchmark failed.
    #[error("no video could be loaded ({skipped} skipped)")]
    NothingLoaded {
        /// Videos skipped.
        skipped: usize,
    },
}

/// A batch of videos' clips, `[B, n_clips, 3, T, S, S]` row-major, values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipBatch {
    /// Index of each video in the item list.
    pub videos: Vec<usize>,
    /// Label of each video.
    pub labels: Vec<Option<usize>>,
    /// Pixel data.
    pub clips: Vec<f32>,
    /// `[B, n_clips, 3, T, S, S]`.
    pub shape: [usize; 6],
}

impl ClipBatch {
    /// Videos in the batch.
    pub fn len(&self) -> usize {
        self.videos.len()
    }

    /// Whether the batch has no videos (never yielded by a loader).
    pub fn is_empty(&self) -> bool {
        self.videos.is_empty()
    }
}

/// A video the loader could not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedVideo {
    /// Index in the item list.
    pub video: usize,
    /// The file.
    pub path: PathBuf,
    /// Why it was skipped.
    pub error: String,
}

/// One epoch of batches; iterate it to get [`ClipBatch`]es in a deterministic order.
pub struct ClipLoader {
    /// `None` only while dropping (closing it is the stop signal).
    batches: Option<Receiver<ClipBatch>>,
    stop: Arc<AtomicBool>,
    skipped: Arc<Mutex<Vec<SkippedVideo>>>,
    threads: Vec<JoinHandle<()>>,
    expected_batches: usize,
}

/// A unit of work: the `seq`-th video of the epoch order.
struct Job {
    seq: usize,
    video: usize,
}

/// A worker's answer for one job: the clips, or why the video is skipped.
struct Done {
    seq: usize,
    outcome: Result<Vec<f32>, String>,
}

/// What the worker threads share.
struct WorkerContext {
    recipe: ClipRecipe,
    items: Arc<[LoaderItem]>,
    seed: u64,
    epoch: u64,
    jobs: Arc<Mutex<Receiver<Job>>>,
    results: Sender<Done>,
    stop: Arc<AtomicBool>,
}

/// What the assembler thread owns.
struct Assembler {
    config: LoaderConfig,
    items: Arc<[LoaderItem]>,
    order: Vec<usize>,
    jobs: Sender<Job>,
    results: Receiver<Done>,
    batches: SyncSender<ClipBatch>,
    skipped: Arc<Mutex<Vec<SkippedVideo>>>,
    stop: Arc<AtomicBool>,
}

impl ClipLoader {
    /// Starts the threads of one epoch over `items`.
    pub fn new(
        items: impl Into<Arc<[LoaderItem]>>,
        config: LoaderConfig,
    ) -> Result<Self, LoaderError> {
        config.validate()?;
        let items: Arc<[LoaderItem]> = items.into();
        let order = epoch_order(items.len(), config.shuffle, config.seed, config.epoch);
        let expected_batches = if config.drop_last {
            items.len() / config.batch_size
        } else {
            items.len().div_ceil(config.batch_size)
        };
        let (job_tx, job_rx) = mpsc::channel();
        let (result_tx, result_rx) = mpsc::channel();
        let (batch_tx, batch_rx) = mpsc::sync_channel(config.prefetch);
        let stop = Arc::new(AtomicBool::new(false));
        let skipped = Arc::new(Mutex::new(Vec::new()));
        // Built before spawning, so that if a spawn fails `Drop` stops and joins the threads
        // already started.
        let mut loader = Self {
            batches: Some(batch_rx),
            stop: Arc::clone(&stop),
            skipped: Arc::clone(&skipped),
            threads: Vec::with_capacity(config.workers + 1),
            expected_batches,
        };
        let jobs = Arc::new(Mutex::new(job_rx));
        let workers = config.workers.min(items.len().max(1));
        for i in 0..workers {
            let context = WorkerContext {
                recipe: config.recipe,
                items: Arc::clone(&items),
                seed: config.seed,
                epoch: config.epoch,
                jobs: Arc::clone(&jobs),
                results: result_tx.clone(),
                stop: Arc::clone(&stop),
            };
            let handle = thread::Builder::new()
                .name(format!("clip-worker-{i}"))
                .spawn(move || context.run())
                .map_err(LoaderError::Spawn)?;
            loader.threads.push(handle);
        }
        drop(result_tx);
        let assembler = Assembler {
            config,
            items,
            order,
            jobs: job_tx,
            results: result_rx,
            batches: batch_tx,
            skipped,
            stop,
        };
        let handle = thread::Builder::new()
            .name("clip-assembler".to_string())
            .spawn(move || assembler.run())
            .map_err(LoaderError::Spawn)?;
        loader.threads.push(handle);
        Ok(loader)
    }

    /// Batches this epoch yields if no video is skipped (an upper bound otherwise).
    pub fn expected_batches(&self) -> usize {
        self.expected_batches
    }

    /// Videos skipped so far, in epoch order.
    pub fn skipped(&self) -> Vec<SkippedVideo> {
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Iterator for ClipLoader {
    type Item = ClipBatch;

    fn next(&mut self) -> Option<ClipBatch> {
        self.batches.as_ref()?.recv().ok()
    }
}

impl Drop for ClipLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the batch channel unblocks an assembler waiting to send.
        self.batches = None;
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                eprintln!("warning: a clip loader thread panicked");
            }
        }
    }
}

impl WorkerContext {
    fn run(self) {
        let mut maker = match ClipMaker::new(self.recipe) {
            Ok(maker) => maker,
            // The recipe was validated before the thread started; without a maker the
            // assembler would wait forever, so answer every job with the error instead.
            Err(e) => return self.fail_all(&e.to_string()),
        };
        let mut buffer = Vec::new();
        while let Some(job) = self.next_job() {
            let (path, _) = &self.items[job.video];
            let mut rng = video_rng(self.seed, self.epoch, job.video);
            let loaded = catch_unwind(AssertUnwindSafe(|| {
                maker.load_into(path, &mut rng, &mut buffer)
            }));
            let outcome = match loaded {
                Ok(Ok(())) => Ok(std::mem::take(&mut buffer)),
                Ok(Err(e)) => Err(e.to_string()),
                Err(panic) => {
                    // The maker's scratch state may be half-written: start afresh.
                    if let Ok(fresh) = ClipMaker::new(self.recipe) {
                        maker = fresh;
                    }
                    Err(format!("decoder panicked: {}", panic_message(&*panic)))
                }
            };
            if !self.send_done(job.seq, outcome) {
                return;
            }
        }
    }

    /// Hand one job's outcome to the assembler; `false` once the loader is gone.
    fn send_done(&self, seq: usize, outcome: Result<Vec<f32>, String>) -> bool {
        self.results.send(Done { seq, outcome }).is_ok()
    }

    /// The next job, or `None` when the epoch is over or the loader was dropped.
    fn next_job(&self) -> Option<Job> {
        if self.stop.load(Ordering::Relaxed) {
            return None;
        }
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        jobs.recv().ok()
    }

    fn fail_all(&self, message: &str) {
        while let Some(job) = self.next_job() {
            let outcome = Err(message.to_string());
            if !self.send_done(job.seq, outcome) {
                return;
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Collects videos into batches; the buffer is allocated once per batch at its final size.
struct BatchBuilder {
    videos: Vec<usize>,
    labels: Vec<Option<usize>>,
    clips: Vec<f32>,
    batch_size: usize,
    recipe: ClipRecipe,
}

impl BatchBuilder {
    fn new(batch_size: usize, recipe: ClipRecipe) -> Self {
        let mut builder = Self {
            videos: Vec::new(),
            labels: Vec::new(),
            clips: Vec::new(),
            batch_size,
            recipe,
        };
        builder.reset();
        builder
    }

    fn reset(&mut self) {
        self.videos = Vec::with_capacity(self.batch_size);
        self.labels = Vec::with_capacity(self.batch_size);
        self.clips = Vec::with_capacity(self.batch_size * self.recipe.video_len());
    }

    fn push(&mut self, video: usize, label: Option<usize>, clips: &[f32]) {
        self.videos.push(video);
        self.labels.push(label);
        self.clips.extend_from_slice(clips);
    }

    fn is_full(&self) -> bool {
        self.videos.len() >= self.batch_size
    }

    fn take(&mut self) -> ClipBatch {
        let side = self.recipe.out_size() as usize;
        let shape = [
            self.videos.len(),
            self.recipe.n_clips(),
            super::augment::CHANNELS,
            self.recipe.frames(),
            side,
            side,
        ];
        let batch = ClipBatch {
            videos: std::mem::take(&mut self.videos),
            labels: std::mem::take(&mut self.labels),
            clips: std::mem::take(&mut self.clips),
            shape,
        };
        self.reset();
        batch
    }
}

impl Assembler {
    fn run(self) {
        let n = self.order.len();
        let window = self.config.workers * READ_AHEAD_PER_WORKER;
        let mut builder = BatchBuilder::new(self.config.batch_size, self.config.recipe);
        let mut pending: BTreeMap<usize, Result<Vec<f32>, String>> = BTreeMap::new();
        let (mut dispatched, mut next) = (0, 0);
        while next < n {
            while dispatched < n && dispatched < next + window {
                let job = Job {
                    seq: dispatched,
                    video: self.order[dispatched],
                };
                if self.jobs.send(job).is_err() {
                    return;
                }
                dispatched += 1;
            }
            let done = match self.receive() {
                Some(done) => done,
                None => return,
            };
            pending.insert(done.seq, done.outcome);
            while let Some(outcome) = pending.remove(&next) {
                let video = self.order[next];
                next += 1;
                match outcome {
                    Ok(clips) => {
                        builder.push(video, self.items[video].1, &clips);
                        if builder.is_full() && self.batches.send(builder.take()).is_err() {
                            return;
                        }
                    }
                    Err(error) => self.skip(video, error),
                }
            }
        }
        if !builder.videos.is_empty() && !self.config.drop_last {
            // The consumer may already be gone; nothing is left to clean up either way.
            let _ = self.batches.send(builder.take());
        }
    }

    /// The next finished job, or `None` if the loader was dropped or every worker is gone.
    fn receive(&self) -> Option<Done> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            match self.results.recv_timeout(STOP_POLL_INTERVAL) {
                Ok(done) => return Some(done),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    fn skip(&self, video: usize, error: String) {
        let path = self.items[video].0.clone();
        eprintln!("warning: skipping video {}: {error}", path.display());
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(SkippedVideo { video, path, error });
    }
}

/// The order in which an epoch visits `n` items: `0..n`, or a permutation drawn from
/// (`seed`, `epoch`) alone.
pub fn epoch_order(n: usize, shuffle: bool, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch ^ SHUFFLE_RNG_TAG);
        order.shuffle(&mut rng);
    }
    order
}

/// Reads every video's metadata on `threads` threads (for a `data check` command), returning results in
/// input order. `progress(done, total)` is called on the calling thread after each video, so it
/// may print or update a progress bar without synchronisation.
pub fn read_infos(
    paths: &[PathBuf],
    threads: usize,
    mut progress: impl FnMut(usize, usize),
) -> Vec<Result<VideoInfo, VideoError>> {
    let total = paths.len();
    let mut results: Vec<Option<Result<VideoInfo, VideoError>>> =
        std::iter::repeat_with(|| None).take(total).collect();
    let next = AtomicUsize::new(0);
    // Each thread claims the next unread index, so a slow file does not hold up the rest.
    let claim_and_read = |tx: &Sender<(usize, Result<VideoInfo, VideoError>)>| loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = paths.get(index) else { return };
        let info = catch_unwind(|| read_info(path)).unwrap_or_else(|panic| {
            Err(VideoError::Decode {
                path: path.clone(),
                message: format!("reading the metadata panicked: {}", panic_message(&*panic)),
            })
        });
        if tx.send((index, info)).is_err() {
            return;
        }
    };
    thread::scope(|scope| {
        let (tx, rx) = mpsc::channel();
        let mut started = 0;
        for i in 0..threads.clamp(1, total.max(1)) {
            let tx = tx.clone();
            let work = &claim_and_read;
            let spawned = thread::Builder::new()
                .name(format!("video-info-{i}"))
                .spawn_scoped(scope, move || work(&tx));
            started += usize::from(spawned.is_ok());
        }
        if started == 0 {
            // No thread could be started: read on this thread instead.
            claim_and_read(&tx);
        }
        drop(tx);
        for (done, (index, info)) in rx.iter().enumerate() {
            results[index] = Some(info);
            progress(done + 1, total);
        }
    });
    results
        .into_iter()
        .zip(paths)
        .map(|(r, path)| r.unwrap_or_else(|| Err(not_read(path))))
        .collect()
}

fn not_read(path: &Path) -> VideoError {
    VideoError::Decode {
        path: path.to_path_buf(),
        message: "not read: the metadata thread failed".to_string(),
    }
}

/// Loader throughput, measured by [`bench_loader`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchResult {
    /// Clips rendered per second.
    pub clips_per_s: f64,
    /// Videos loaded per second.
    pub videos_per_s: f64,
    /// Videos loaded.
    pub videos: usize,
    /// Videos skipped.
    pub skipped: usize,
    /// Wall-clock seconds from loader start to the last batch.
    pub seconds: f64,
}

/// Which loader [`bench_loader`] times (the A/B of issue 14: one of them goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoaderPath {
    /// [`ClipLoader`]: per-video jobs, an assembler thread, one reused `ClipMaker` per worker.
    Clip,
    /// The stages' path: [`super::epoch_loader::EpochLoader`] over
    /// [`super::tensors::VideoClipDataset`], batches stacked into Flex tensors.
    Epoch,
}

/// Measures how fast `workers` threads turn `paths` into batches of `recipe` clips (batch size
/// [`BENCH_BATCH_SIZE`], or fewer if there are fewer paths), for `batches` batches. The paths
/// are cycled to fill the batches in one epoch (each repeat is a different video index, so it
/// gets fresh random clips), so the pipeline never drains between epochs. The consumer
/// drops each batch at once: this is the loader's ceiling, not a training-loop measurement.
pub fn bench_loader(
    paths: &[PathBuf],
    recipe: &ClipRecipe,
    workers: usize,
    batches: usize,
    path: LoaderPath,
) -> Result<BenchResult, LoaderError> {
    let batch_size = BENCH_BATCH_SIZE.min(paths.len()).max(1);
    let items: Vec<LoaderItem> = paths
        .iter()
        .cycle()
        .take(batch_size * batches)
        .map(|p| (p.clone(), None))
        .collect();
    let config = LoaderConfig {
        workers,
        seed: BENCH_SEED,
        ..LoaderConfig::new(*recipe, batch_size)
    };
    let start = Instant::now();
    let (videos, skipped) = match path {
        LoaderPath::Clip => {
            let mut loader = ClipLoader::new(items, config)?;
            let videos: usize = loader.by_ref().map(|batch| batch.len()).sum();
            (videos, loader.skipped().len())
        }
        LoaderPath::Epoch => {
            use burn::data::dataloader::DataLoader;
            let dataset = Arc::new(
                super::tensors::VideoClipDataset::new(items, *recipe, BENCH_SEED)
                    .map_err(LoaderError::Recipe)?,
            );
            let loader = super::epoch_loader::EpochLoader::<burn::backend::Flex, _, _>::new(
                super::tensors::ClipBatcher,
                Arc::clone(&dataset),
                batch_size,
                workers,
                Some(BENCH_SEED),
                Default::default(),
            );
            let videos: usize = loader.iter().map(|b| b.videos.len()).sum();
            (videos, dataset.skipped().len())
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    if videos == 0 {
        return Err(LoaderError::NothingLoaded { skipped });
    }
    let clips = videos * recipe.n_clips();
    Ok(BenchResult {
        clips_per_s: clips as f64 / seconds,
        videos_per_s: videos as f64 / seconds,
        videos,
        skipped,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::{SynthConfig, generate};

    /// Tiny synthetic videos: 32 px, 40 frames (short for SSL: exercises the lowered stride).
    const TEST_SIZE: u32 = 32;
    const TEST_FRAMES: usize = 40;
    const OUT: u32 = 16;
    /// 2 classes × 3 videos = 6 good videos.
    const VIDEOS_PER_CLASS: usize = 3;
    /// Bytes kept of a good file to make a truncated one: inside the container header, so
    /// no frame survives (a file truncated half-way still decodes its first half, correctly).
    const TRUNCATED_BYTES: u64 = 200;

    struct Fixture {
        _dir: tempfile::TempDir,
        good: Vec<LoaderItem>,
        zero: PathBuf,
        truncated: PathBuf,
    }

    fn fixture() -> Fixture {
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

    fn config(recipe: ClipRecipe, batch_size: usize, workers: usize) -> LoaderConfig {
        LoaderConfig {
            workers,
            seed: 42,
            epoch: 3,
            ..LoaderConfig::new(recipe, batch_size)
        }
    }

    fn collect(items: &[LoaderItem], config: LoaderConfig) -> (Vec<ClipBatch>, Vec<SkippedVideo>) {
        let mut loader = ClipLoader::new(items.to_vec(), config).expect("loader");
        let batches: Vec<ClipBatch> = loader.by_ref().collect();
        (batches, loader.skipped())
    }

    #[test]
    fn same_batches_for_one_and_two_workers() {
        let f = fixture();
        let recipe = ClipRecipe::ssl(OUT, true);
        let (one, _) = collect(&f.good, config(recipe, 4, 1));
        let (two, _) = collect(&f.good, config(recipe, 4, 2));
        assert_eq!(one.len(), 2);
        assert_eq!(one, two);
        let other_epoch = LoaderConfig {
            epoch: 4,
            ..config(recipe, 4, 2)
        };
        let (next, _) = collect(&f.good, other_epoch);
        assert_ne!(one[0].clips, next[0].clips);
    }

    #[test]
    fn shapes_values_and_labels() {
        let f = fixture();
        let recipe = ClipRecipe::ssl(OUT, false);
        let (batches, skipped) = collect(&f.good, config(recipe, 4, 2));
        assert!(skipped.is_empty());
        let sizes: Vec<usize> = batches.iter().map(ClipBatch::len).collect();
        assert_eq!(sizes, [4, 2]);
        for b in &batches {
            assert_eq!(b.shape, [b.len(), 10, 3, 16, OUT as usize, OUT as usize]);
            assert_eq!(b.clips.len(), b.shape.iter().product::<usize>());
            assert!(b.clips.iter().all(|v| (0.0..=1.0).contains(v)));
            for (&video, &label) in b.videos.iter().zip(&b.labels) {
                assert_eq!(label, f.good[video].1);
            }
        }
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.videos.clone()).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..f.good.len()).collect::<Vec<_>>());

        let unshuffled = LoaderConfig {
            shuffle: false,
            drop_last: true,
            ..config(ClipRecipe::train(OUT, true), 4, 2)
        };
        let (batches, _) = collect(&f.good, unshuffled);
        assert_eq!(batches.len(), 1, "drop_last drops the partial batch");
        assert_eq!(batches[0].videos, [0, 1, 2, 3]);
        assert_eq!(batches[0].shape, [4, 1, 3, 8, OUT as usize, OUT as usize]);
    }

    #[test]
    fn bad_videos_are_skipped_and_batches_refilled() {
        let f = fixture();
        let mut items = f.good.clone();
        items.insert(1, (f.zero.clone(), Some(0)));
        items.insert(4, (f.truncated.clone(), None));
        let cfg = LoaderConfig {
            shuffle: false,
            ..config(ClipRecipe::train(OUT, true), 4, 2)
        };
        let (batches, skipped) = collect(&items, cfg);
        let sizes: Vec<usize> = batches.iter().map(ClipBatch::len).collect();
        assert_eq!(sizes, [4, 2], "batches stay full except the last");
        let videos: Vec<usize> = batches.iter().flat_map(|b| b.videos.clone()).collect();
        assert_eq!(videos, [0, 2, 3, 5, 6, 7]);
        let bad: Vec<(usize, &Path)> = skipped.iter().map(|s| (s.video, &*s.path)).collect();
        assert_eq!(bad, [(1, &*f.zero), (4, &*f.truncated)]);
        assert!(skipped.iter().all(|s| !s.error.is_empty()));
    }

    #[test]
    fn dropping_mid_epoch_stops_every_thread() {
        let f = fixture();
        let items: Arc<[LoaderItem]> = f.good.iter().cycle().take(40).cloned().collect();
        let cfg = LoaderConfig {
            prefetch: 1,
            ..config(ClipRecipe::ssl(OUT, true), 2, 2)
        };
        let mut loader = ClipLoader::new(Arc::clone(&items), cfg).expect("loader");
        assert_eq!(loader.expected_batches(), 20);
        assert_eq!(loader.next().map(|b| b.len()), Some(2));
        drop(loader);
        // Every thread held a reference to the items; all were joined, so only ours is left.
        assert_eq!(Arc::strong_count(&items), 1);
    }

    #[test]
    fn invalid_settings_are_rejected() {
        let recipe = ClipRecipe::train(OUT, true);
        for cfg in [
            config(recipe, 0, 1),
            config(recipe, 1, 0),
            LoaderConfig {
                prefetch: 0,
                ..config(recipe, 1, 1)
            },
            config(ClipRecipe::train(0, true), 1, 1),
        ] {
            assert!(ClipLoader::new(Vec::new(), cfg).is_err(), "{cfg:?}");
        }
        let mut empty = ClipLoader::new(Vec::new(), config(recipe, 2, 2)).expect("loader");
        assert!(empty.next().is_none());
    }

    #[test]
    fn read_infos_keeps_order_and_reports_errors() {
        let f = fixture();
        let mut paths: Vec<PathBuf> = f.good.iter().map(|(p, _)| p.clone()).collect();
        paths.insert(2, f.zero.clone());
        let mut calls = Vec::new();
        let infos = read_infos(&paths, 2, |done, total| calls.push((done, total)));
        assert_eq!(calls.len(), paths.len());
        assert!(
            calls
                .iter()
                .enumerate()
                .all(|(i, &c)| c == (i + 1, paths.len()))
        );
        assert!(infos[2].is_err());
        for (i, info) in infos.iter().enumerate().filter(|&(i, _)| i != 2) {
            let info = info.as_ref().expect("good video reads");
            assert_eq!(info.frame_count, TEST_FRAMES, "video {i}");
            assert_eq!((info.width, info.height), (TEST_SIZE, TEST_SIZE));
        }
    }

    #[test]
    fn bench_loader_counts_what_it_loaded() {
        let f = fixture();
        let paths: Vec<PathBuf> = f.good.iter().map(|(p, _)| p.clone()).collect();
        for path in [LoaderPath::Clip, LoaderPath::Epoch] {
            let recipe = ClipRecipe::train(OUT, true);
            let result = bench_loader(&paths, &recipe, 2, 2, path).expect("bench");
            assert_eq!((result.videos, result.skipped), (12, 0), "{path:?}");
            assert!(result.clips_per_s > 0.0 && result.videos_per_s > 0.0);
            let bad = bench_loader(std::slice::from_ref(&f.zero), &recipe, 1, 1, path);
            assert!(
                matches!(bad, Err(LoaderError::NothingLoaded { skipped: 1 })),
                "{path:?}"
            );
        }
    }
}
