#!/usr/bin/env python3
"""PyTorch twin of our supervised stage (`baseline` / `finetune`, src/pipeline/stages/classifier.rs).

Same video files (a UCF101-layout directory, e.g. the synthetic set our binary generates), the
same clip sampling (src/data/sampling.rs: one clip of `--frames` frames at `--stride`, random
start, mirror padding; evaluation: `--eval-clips` evenly spread clips, centre crop of
`--crop-fraction` of the shorter side, softmax averaged per video), the same augmentation recipe
(src/data/augment/mod.rs `AugmentConfig::finetune` with the `[data.train_augment]` strengths: a
crop of f·W × f·H, f ~ U(`--crop-scale`), squashed to the square output, colour jitter with
`--jitter-prob` per component, one erase box with `--erase-prob`; or `--augment none`: the
whole frame, resized), the same backbone at the same width (benches/pytorch_bench.py, torchvision's layout
and initialisation), Adam with the same hyper-parameters (epsilon included) and the same
schedule (linear warm-up per iteration, then constant or cosine). It prints our per-epoch line
format, so the two curves can be put side by side:

  epoch 3/60 loss=1.2345 acc=0.5000 lr=1.000e-3
  test top1=0.8333 videos=36

Initial weights are drawn by torch (the same distributions as ours, not the same numbers): the
step-by-step parity of the same weights is what tests/trajectory.rs checks; this script checks
that whole runs learn alike.

usage: twin_supervised.py --data-root DIR [--labeled FILE] --epochs 60 --batch 6 --lr 1e-3
       [--warmup-epochs 1] [--width 8] [--arch r3d18] [--frames 8] [--stride 2] [--size 32]
       [--augment finetune|none] [--eps 1e-8] [--seed 0] [--threads 2]
"""
import argparse
import math
import os
import random
import sys

import av
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_indices import fitting_stride, mirror  # noqa: E402
from pytorch_bench import VideoResNet  # noqa: E402  (same backbones as `bench`)

CLASSIFIER_INIT_STD = 0.01  # src/model/heads.rs
JITTER_FACTOR = (0.9, 1.1)  # src/data/augment/mod.rs (fine-tuning)
HUE_SHIFT = 0.05
ERASE_SIDE = (1.0 / 6.0, 1.0 / 3.0)
LUMA = torch.tensor([0.299, 0.587, 0.114])


def read_index(root, split):
    classes = {}
    with open(os.path.join(root, "classInd.txt")) as f:
        for line in f:
            if line.strip():
                i, name = line.split()
                classes[name] = int(i) - 1

    def videos(name):
        out = []
        with open(os.path.join(root, name)) as f:
            for line in f:
                if line.strip():
                    path = line.split()[0]
                    out.append((path, classes[path.split("/")[0]]))
        return out

    return classes, videos(f"trainlist0{split}.txt"), videos(f"testlist0{split}.txt")


def decode(path):
    """Every frame of a video, [T, H, W, 3] uint8, in presentation order."""
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def span(frames, stride):
    return (frames - 1) * stride + 1


def train_indices(n, frames, stride, rng):
    stride = fitting_stride(n, frames, stride)
    start = rng.randint(0, max(n - span(frames, stride), 0))
    return [mirror(start + k * stride, n) for k in range(frames)]


def eval_indices(n, clips, frames, stride):
    stride = fitting_stride(n, frames, stride)
    positions = max(n - span(frames, stride), 0) + 1
    return [
        [mirror((2 * k + 1) * positions // (2 * clips) + j * stride, n) for j in range(frames)]
        for k in range(clips)
    ]


def crop_resize(clip, top, left, height, width, size):
    """[T, H, W, 3] uint8 → [3, T, S, S] float in [0, 1], bilinear with antialiasing."""
    x = torch.from_numpy(clip[:, top:top + height, left:left + width]).float().div(255.0)
    x = x.permute(0, 3, 1, 2)  # T, 3, h, w
    if (height, width) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).permute(1, 0, 2, 3).contiguous()


def blend(x, other, f):
    return (f * x + (1 - f) * other).clamp(0, 1)


def luma(x):
    return (x * LUMA.view(3, 1, 1, 1)).sum(0, keepdim=True)


def shift_hue(x, shift):
    r, g, b = x[0], x[1], x[2]
    mx, _ = x.max(0)
    mn, _ = x.min(0)
    delta = mx - mn
    s = torch.where(mx > 0, delta / mx.clamp_min(1e-12), torch.zeros_like(mx))
    d = delta.clamp_min(1e-12)
    sector = torch.where(mx == r, (g - b) / d, torch.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    h = torch.where(delta > 0, torch.remainder(sector / 6.0, 1.0), torch.zeros_like(mx))
    h = torch.remainder(h + shift, 1.0)
    v = mx
    scaled = h * 6
    sec = torch.floor(scaled)
    frac = scaled - sec
    p, q, t = v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))
    sec = torch.remainder(sec, 6).long()
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = torch.zeros_like(x)
    for k, (a, bb, c) in enumerate(table):
        m = sec == k
        out[0][m], out[1][m], out[2][m] = a[m], bb[m], c[m]
    return out.clamp(0, 1)


def augment_clip(frames, size, rng, args):
    """AugmentConfig::finetune without flips (the synthetic set has left/right classes)."""
    _, h, w, _ = frames.shape
    f = rng.uniform(*args.crop_scale)
    ch, cw = min(max(round(f * h), 1), h), min(max(round(f * w), 1), w)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    x = crop_resize(frames, top, left, ch, cw, size)
    p = args.jitter_prob
    jitter = [rng.uniform(*JITTER_FACTOR) if rng.random() < p else None for _ in range(3)]
    hue = rng.uniform(-HUE_SHIFT, HUE_SHIFT) if rng.random() < p else None
    brightness, contrast, saturation = jitter
    if brightness is not None:
        x = (x * brightness).clamp(0, 1)
    if contrast is not None:
        mean = luma(x).mean(dim=(2, 3), keepdim=True)  # per frame
        x = blend(x, mean, contrast)
    if saturation is not None:
        x = blend(x, luma(x), saturation)
    if hue is not None:
        x = shift_hue(x, hue)
    if rng.random() < args.erase_prob:
        eh, ew = rng.uniform(*ERASE_SIDE), rng.uniform(*ERASE_SIDE)
        et, el = rng.uniform(0, 1 - eh), rng.uniform(0, 1 - ew)
        r0, c0 = math.floor(et * size), math.floor(el * size)
        x[:, :, r0:r0 + max(round(eh * size), 1), c0:c0 + max(round(ew * size), 1)] = 0.0
    return x


def plain_clip(frames, size, fraction=1.0):
    """The centred f·H × f·W box squashed to the square (our one-crop evaluation view)."""
    _, h, w, _ = frames.shape
    ch, cw = min(max(round(fraction * h), 1), h), min(max(round(fraction * w), 1), w)
    return crop_resize(frames, round((h - ch) / 2), round((w - cw) / 2), ch, cw, size)


class Classifier(nn.Module):
    def __init__(self, arch, width, classes):
        super().__init__()
        self.backbone = VideoResNet(arch, width)
        self.fc = nn.Linear(self.backbone.features, classes)
        for m in self.modules():  # torchvision's VideoResNet initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0, CLASSIFIER_INIT_STD)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(self.backbone(x).mean(dim=(2, 3, 4)))


def burn_partitions(padded, batch, workers, rng):
    """Burn 0.21's `MultiThreadDataLoader` with `workers` threads: the (padded) dataset is
    shuffled once, cut into contiguous runs of whole batches, one per worker
    (`PartialDataset::split_chunks`), and each worker then reshuffles only its own run every
    epoch. None for PyTorch's behaviour (the whole set reshuffled every epoch)."""
    if workers <= 0:
        return None
    items = list(range(padded))
    rng.shuffle(items)
    batches = math.ceil(padded / batch)
    parts, start = [], 0
    for i in range(workers):
        n = batches // workers + (1 if i < batches % workers else 0)
        parts.append(items[start * batch:(start + n) * batch])
        start += n
    return parts


def epoch_order(n, padded, batch, partitions, rng):
    """Item order of one epoch (indices into the padded dataset, taken modulo `n` as our
    `VideoClipDataset::padded_to_batches` repeats videos from the start)."""
    if partitions is None:
        order = list(range(n))
        rng.shuffle(order)
        return order + order[: padded - n]
    runs = []
    for part in partitions:
        part = part[:]
        rng.shuffle(part)
        runs.append([part[i:i + batch] for i in range(0, len(part), batch)])
    order = []  # the workers' batches interleaved, as they arrive from the threads
    for k in range(max(len(r) for r in runs)):
        for r in runs:
            if k < len(r):
                order += [i % n for i in r[k]]
    return order


def lr_at(args, i, warmup, total):
    if i <= warmup:
        return args.lr * i / warmup
    if args.decay == "cosine":
        t = min((i - warmup) / max(total - warmup, 1), 1.0)
        return args.lr * 0.5 * (1 + math.cos(math.pi * t))
    return args.lr


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", type=int, default=1)
    p.add_argument("--labeled", help="our run's labeled.txt (default: every training video)")
    p.add_argument("--arch", default="r3d18")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup-epochs", type=int, default=1)
    p.add_argument("--weight-decay", type=float, default=1e-9)
    p.add_argument("--decay", choices=["constant", "cosine"], default="constant")
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--augment", choices=["finetune", "none"], default="finetune")
    p.add_argument("--crop-scale", type=float, nargs=2, default=[0.4, 1.0])
    p.add_argument("--jitter-prob", type=float, default=0.3)
    p.add_argument("--erase-prob", type=float, default=0.25)
    p.add_argument("--eval-clips", type=int, default=10)
    p.add_argument("--crop-fraction", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--diagnose", action="store_true", help="also evaluate with batch statistics")
    p.add_argument("--loader-partitions", type=int, default=0,
                   help="emulate Burn's multi-worker loader with this many workers (0: reshuffle "
                        "the whole set each epoch, as PyTorch's loader)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    classes, train, test = read_index(args.data_root, args.split)
    if args.labeled:
        with open(args.labeled) as f:
            keep = {ln.split()[0] for ln in f if ln.strip() and not ln.startswith("#")}
        train = [v for v in train if v[0] in keep]
    frames = {v: decode(os.path.join(args.data_root, v)) for v, _ in train + test}

    model = Classifier(args.arch, args.width, len(classes))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, eps=args.eps, weight_decay=args.weight_decay)
    # Our loader pads the epoch to whole batches by repeating videos (VideoClipDataset).
    per_epoch = math.ceil(len(train) / args.batch)
    partitions = burn_partitions(per_epoch * args.batch, args.batch, args.loader_partitions, rng)
    warmup, total, it = args.warmup_epochs * per_epoch, args.epochs * per_epoch, 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = epoch_order(len(train), per_epoch * args.batch, args.batch, partitions, rng)
        loss_sum = correct = seen = 0
        for b in range(per_epoch):
            it += 1
            lr = lr_at(args, it, warmup, total)
            for g in opt.param_groups:
                g["lr"] = lr
            videos = [train[i] for i in order[b * args.batch:(b + 1) * args.batch]]
            clips = []
            for path, _ in videos:
                v = frames[path]
                v = v[train_indices(len(v), args.frames, args.stride, rng)]
                clips.append(augment_clip(v, args.size, rng, args) if args.augment == "finetune" else plain_clip(v, args.size))
            x = torch.stack(clips)
            y = torch.tensor([label for _, label in videos])
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        print(f"epoch {epoch}/{args.epochs} loss={loss_sum / per_epoch:.4f} acc={correct / seen:.4f} lr={lr:.3e}", flush=True)

    model.eval()
    print(f"test top1={evaluate(model, test, frames, args):.4f} videos={len(test)}")
    print(f"train-set top1 (eval mode, test views)={evaluate(model, train, frames, args):.4f} videos={len(train)}")
    if args.diagnose:
        model.train()  # batch statistics instead of running statistics
        print(f"test top1 (batch statistics)={evaluate(model, test, frames, args):.4f}")


def evaluate(model, videos, frames, args):
    """Multi-view top-1: softmax averaged over the eval clips of each video."""
    hits = 0
    with torch.no_grad():
        for path, label in videos:
            v = frames[path]
            x = torch.stack([
                plain_clip(v[idx], args.size, args.crop_fraction)
                for idx in eval_indices(len(v), args.eval_clips, args.frames, args.stride)
            ])
            probs = F.softmax(model(x), dim=1).mean(0)
            hits += int(probs.argmax().item() == label)
    return hits / len(videos)


if __name__ == "__main__":
    main()
