#!/usr/bin/env python3
"""Python reference for `bench_data`: the same clip sampling and augmentation as the Rust
loader (src/data/clips.rs), with PyAV (or decord) decoding and Pillow resizing, run the way a
PyTorch DataLoader would run it (worker processes, results sent to the main process, batches
stacked there).

Samplers (docs/method.md):
  ssl   -- start s uniform so 64 frames fit; sparse clip s, s+4, ..., s+60 and four dense
           clips of 16 consecutive frames at s, s+16, s+32, s+48; each clip in two views with
           independent augmentation -> 10 clips of 16 frames per video.
  train -- one clip of 8 frames at stride 2, random start, fine-tuning augmentation.
Each distinct frame is decoded once (seek to the keyframe before the first needed frame, decode
forward to the last one). Augmentation: square random crop (side U(lo,1) of the shorter side),
bilinear antialiased resize to 112 (Pillow), flip, colour jitter (brightness, contrast,
saturation, hue; each p=0.3), grayscale, random erase -- vectorised numpy, per clip.

Usage: bench_data.py DIR {ssl,train} WORKERS BATCHES [--backend pyav|decord]
WORKERS = 0 decodes in the main process; N >= 1 uses N worker processes.
"""

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
from PIL import Image

from clip_indices import fitting_stride, mirror

OUT = 112
BATCH = 16  # same as BENCH_BATCH_SIZE in src/data/throughput.rs
SSL_FRAMES, SSL_STRIDE, SSL_DENSE = 16, 4, 4
TRAIN_FRAMES, TRAIN_STRIDE = 8, 2
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

SSL_AUG = dict(scale=(0.5, 1.0), jitter=(0.75, 1.25), hue=0.1, gray=0.175, erase=0.7)
TRAIN_AUG = dict(scale=(0.4, 1.0), jitter=(0.9, 1.1), hue=0.05, gray=0.0, erase=0.25)
JITTER_P, FLIP_P = 0.3, 0.5


def ssl_clips(n, rng):
    stride = fitting_stride(n, SSL_FRAMES, SSL_STRIDE)
    quarter = SSL_FRAMES // SSL_DENSE * stride
    span = (SSL_FRAMES - 1) * stride + 1
    dense_span = (SSL_DENSE - 1) * quarter + SSL_FRAMES
    max_start = n - max(span, dense_span)
    if max_start < 0:
        max_start = max(n - span, 0)
    s = int(rng.integers(0, max_start + 1))
    sparse = [mirror(s + k * stride, n) for k in range(SSL_FRAMES)]
    dense = [[mirror(s + j * quarter + k, n) for k in range(SSL_FRAMES)] for j in range(SSL_DENSE)]
    return [sparse] + dense


def train_clips(n, rng):
    stride = fitting_stride(n, TRAIN_FRAMES, TRAIN_STRIDE)
    s = int(rng.integers(0, max(n - ((TRAIN_FRAMES - 1) * stride + 1), 0) + 1))
    return [[mirror(s + k * stride, n) for k in range(TRAIN_FRAMES)]]


def decode_pyav(path, wanted):
    import av

    out = {}
    with av.open(path) as c:
        st = c.streams.video[0]
        st.thread_type = "NONE"  # one thread per worker, like the Rust loader
        fps = float(st.average_rate)
        tb = float(st.time_base)
        start = st.start_time or 0
        first = wanted[0]
        if first > 0:
            c.seek(int(start + first / fps / tb), backward=True, any_frame=False, stream=st)
        need = set(wanted)
        last = wanted[-1]
        for frame in c.decode(st):
            idx = int(round((frame.pts - start) * tb * fps))
            if idx in need:
                out[idx] = frame.to_ndarray(format="rgb24")
            if idx >= last:
                break
    return out


def frame_count_pyav(path):
    import av

    with av.open(path) as c:
        return c.streams.video[0].frames


def decode_decord(path, wanted):
    import decord

    vr = decord.VideoReader(path, num_threads=1)
    arr = vr.get_batch(wanted).asnumpy()
    return {i: arr[k] for k, i in enumerate(wanted)}


def frame_count_decord(path):
    import decord

    return len(decord.VideoReader(path, num_threads=1))


def rgb_to_hsv(x):
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    mx, mn = x.max(-1), x.min(-1)
    d = mx - mn
    s = np.where(mx > 0, d / np.maximum(mx, 1e-12), 0)
    dd = np.maximum(d, 1e-12)
    h = np.where(mx == r, (g - b) / dd, np.where(mx == g, (b - r) / dd + 2, (r - g) / dd + 4))
    h = np.where(d > 0, (h / 6) % 1.0, 0)
    return h, s, mx


def hsv_to_rgb(h, s, v):
    h6 = h * 6
    i = np.floor(h6).astype(np.int32) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [np.stack(c, -1) for c in [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]]
    return np.choose(i[..., None], choices)


def augment(frames, aug, rng):
    """frames: list of HxWx3 uint8 -> float32 [T, OUT, OUT, 3] in [0,1]."""
    h, w = frames[0].shape[:2]
    side = max(1, min(min(w, h), round(rng.uniform(*aug["scale"]) * min(w, h))))
    left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    box = (left, top, left + side, top + side)
    clip = np.stack(
        [np.asarray(Image.fromarray(f).resize((OUT, OUT), Image.BILINEAR, box=box)) for f in frames]
    ).astype(np.float32) / 255.0
    if rng.random() < FLIP_P:
        clip = clip[:, :, ::-1]
    lo, hi = aug["jitter"]
    if rng.random() < JITTER_P:
        clip = np.clip(clip * rng.uniform(lo, hi), 0, 1)
    if rng.random() < JITTER_P:
        f = rng.uniform(lo, hi)
        m = (clip @ LUMA).mean(axis=(1, 2), keepdims=True)[..., None]
        clip = np.clip(f * clip + (1 - f) * m, 0, 1)
    if rng.random() < JITTER_P:
        f = rng.uniform(lo, hi)
        clip = np.clip(f * clip + (1 - f) * (clip @ LUMA)[..., None], 0, 1)
    if rng.random() < JITTER_P:
        hh, ss, vv = rgb_to_hsv(clip)
        clip = hsv_to_rgb((hh + rng.uniform(-aug["hue"], aug["hue"])) % 1.0, ss, vv)
    if rng.random() < aug["gray"]:
        clip = np.repeat((clip @ LUMA)[..., None], 3, axis=-1)
    if rng.random() < aug["erase"]:
        eh, ew = (int(round(rng.uniform(1 / 6, 1 / 3) * OUT)) for _ in range(2))
        et, el = int(rng.integers(0, OUT - eh + 1)), int(rng.integers(0, OUT - ew + 1))
        clip = np.array(clip)
        clip[:, et:et + eh, el:el + ew] = 0
    return clip


def load_video(job):
    path, sampler, backend, seed = job
    rng = np.random.default_rng(seed)
    count = frame_count_pyav(path) if backend == "pyav" else frame_count_decord(path)
    clips = ssl_clips(count, rng) if sampler == "ssl" else train_clips(count, rng)
    wanted = sorted(set(i for c in clips for i in c))
    frames = (decode_pyav if backend == "pyav" else decode_decord)(path, wanted)
    aug = SSL_AUG if sampler == "ssl" else TRAIN_AUG
    views = 2 if sampler == "ssl" else 1
    out = [augment([frames[i] for i in c], aug, rng) for _ in range(views) for c in clips]
    # [n_clips, T, S, S, 3] -> [n_clips, 3, T, S, S], as the Rust loader lays clips out.
    return np.ascontiguousarray(np.stack(out).transpose(0, 4, 1, 2, 3))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("sampler", choices=["ssl", "train"])
    ap.add_argument("workers", type=int)
    ap.add_argument("batches", type=int)
    ap.add_argument("--backend", choices=["pyav", "decord"], default="pyav")
    a = ap.parse_args()
    exts = (".avi", ".mp4", ".webm")
    paths = sorted(os.path.join(a.dir, f) for f in os.listdir(a.dir) if f.endswith(exts))
    batch = min(BATCH, len(paths))
    n = batch * a.batches
    jobs = [(paths[i % len(paths)], a.sampler, a.backend, i) for i in range(n)]
    start = time.perf_counter()
    videos = clips = 0
    if a.workers == 0:
        results = map(load_video, jobs)
        pool = None
    else:
        pool = mp.get_context("fork").Pool(a.workers)
        results = pool.imap(load_video, jobs, chunksize=1)
    pending = []
    for r in results:
        pending.append(r)
        if len(pending) == batch:
            b = np.stack(pending)  # collate, as a DataLoader does
            videos += b.shape[0]
            clips += b.shape[0] * b.shape[1]
            pending = []
    if pending:
        b = np.stack(pending)
        videos += b.shape[0]
        clips += b.shape[0] * b.shape[1]
    secs = time.perf_counter() - start
    if pool is not None:
        pool.close()
        pool.join()
    print(
        f"python-{a.backend} {a.sampler} workers={a.workers} videos={videos} {secs:.2f}s "
        f"clips/s={clips / secs:.1f} videos/s={videos / secs:.2f}"
    )


if __name__ == "__main__":
    main()
