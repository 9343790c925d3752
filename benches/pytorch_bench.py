#!/usr/bin/env python3
"""PyTorch counterpart of `timebalance bench train|forward|ssl|student`: same models, shapes,
losses and optimizer as our steps (src/bench.rs, src/pipeline/train_steps.rs).

The backbones are built here in plain torch so the script needs only `torch`:
  r3d18       torchvision's VideoResNet R3D-18 (3x3x3 convs)
  r2plus1d18  torchvision's R(2+1)D-18 (1x3x3 spatial + 3x1x1 temporal, torchvision's mid widths)
  mc3_18      torchvision's MC3-18
  slow_r50    PyTorchVideo's slow_r50 structure (3D ResNet-50; alias r3d50), as src/model/slow.rs
With `--torchvision` the three "-18" models come from torchvision instead (slow_r50 stays plain).

Modes (each prints one line ending in `median_s <seconds>`, median after warm-up, like ours):
  forward          inference forward, eval mode, no grad; `--batch` clips.
  train            forward + cross-entropy + backward + Adam; `--batch` clips.
  ssl-invariant    one self-supervised step of the invariant teacher, as SslTrainer::loss:
  ssl-distinctive  `--batch` videos x 10 clips (2 views x (1 sparse + 4 dense)) of
                   `--frames` frames, one backbone pass per clip and view (as the official
                   release); features pooled to 4 temporal slots; projection head on each
                   sparse clip's slot mean (global) and, one call per slot, on its 4 slots
                   (slices), and on each dense clip's slot mean; the teacher's NT-Xent-style
                   loss (docs/method.md), backward, Adam.
  student          one student step, as StudentTrainer: `--batch` labeled + `--batch` unlabeled
                   clips; two frozen teachers (eval mode, no grad) each run on the labeled and on
                   the unlabeled clips separately; the student runs on each half separately
                   (as the official release); CE + 50 MSE(labeled) + 100 MSE(unlabeled) to the TSTR-weighted
                   teacher probabilities; backward and Adam on the student only.

usage: pytorch_bench.py --mode train|forward|ssl-invariant|ssl-distinctive|student
                        --arch r3d18|r2plus1d18|mc3_18|slow_r50 --frames 8 --size 112 --batch 2
                        --device cpu|cuda --iters 5 [--warmup 1] [--threads N] [--width 64]
                        [--torchvision] [--compile] [--amp bf16]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# src/data/clips.rs: SSL_VIEWS x SSL_CLIPS_PER_VIEW (1 sparse + SSL_DENSE_CLIPS dense).
SSL_VIEWS = 2
SSL_DENSE_CLIPS = 4
SSL_CLIPS_PER_VIEW = 1 + SSL_DENSE_CLIPS
SSL_CLIPS = SSL_VIEWS * SSL_CLIPS_PER_VIEW
TEMPORAL_SLOTS = 4  # src/model/mod.rs
EMBEDDING_DIM = 128  # src/model/heads.rs
TAU = 0.1  # src/loss/mod.rs DEFAULT_TAU
INVARIANT_DENSE_WEIGHT = 0.25  # src/loss/teacher.rs
SELF_SIMILARITY_MASK = 1.0e9  # src/loss/contrastive.rs
STUDENT_WEIGHTS = (1.0, 50.0, 100.0)  # w_s, w_l, w_u (src/loss/student.rs defaults)
LEARNING_RATE = 1e-4
FULL_WIDTH = 64
ARCH_ALIASES = {"r3d50": "slow_r50", "r2plus1d_18": "r2plus1d18", "r3d_18": "r3d18"}


def conv_bn(cin, cout, kernel, stride=1, padding=0, relu=True):
    layers = [nn.Conv3d(cin, cout, kernel, stride, padding, bias=False), nn.BatchNorm3d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------- torchvision's VideoResNet


def r2plus1d_mid(cin, cout):
    return (cin * cout * 27) // (cin * 9 + 3 * cout)


def spatio_temporal_conv(kind, cin, cout, mid, stride):
    """torchvision's conv makers: Conv3DSimple, Conv3DNoTemporal, Conv2Plus1D."""
    if kind == "full":
        return nn.Conv3d(cin, cout, 3, stride, 1, bias=False)
    if kind == "notemporal":
        return nn.Conv3d(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False)
    return nn.Sequential(
        nn.Conv3d(cin, mid, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
        nn.BatchNorm3d(mid),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid, cout, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
    )


class BasicBlock(nn.Module):
    def __init__(self, kind, cin, cout, stride):
        super().__init__()
        mid = r2plus1d_mid(cin, cout)  # one mid width per block, for both convs (torchvision)
        self.conv1 = nn.Sequential(spatio_temporal_conv(kind, cin, cout, mid, stride), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(spatio_temporal_conv(kind, cout, cout, mid, 1), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            ds = (1, stride, stride) if kind == "notemporal" else stride
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, ds, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + res)


class VideoResNet(nn.Module):
    """Stem + 4 stages of 2 basic blocks, channels w, 2w, 4w, 8w; returns the feature map."""

    def __init__(self, arch, width=FULL_WIDTH):
        super().__init__()
        w = width
        kinds = {
            "r3d18": ["full"] * 4,
            "mc3_18": ["full"] + ["notemporal"] * 3,
            "r2plus1d18": ["factorised"] * 4,
        }[arch]
        if arch == "r2plus1d18":
            mid = 45 * w // FULL_WIDTH
            self.stem = nn.Sequential(
                conv_bn(3, mid, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
                conv_bn(mid, w, (3, 1, 1), 1, (1, 0, 0)),
            )
        else:
            self.stem = conv_bn(3, w, (3, 7, 7), (1, 2, 2), (1, 3, 3))
        layers, cin = [], w
        for kind, (m, s) in zip(kinds, [(1, 1), (2, 2), (4, 2), (8, 2)]):
            layers.append(nn.Sequential(BasicBlock(kind, cin, w * m, s), BasicBlock(kind, w * m, w * m, 1)))
            cin = w * m
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.features = cin

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


# ---------------------------------------------------------------- PyTorchVideo's slow_r50


class Bottleneck(nn.Module):
    """PyTorchVideo ResBlock/BottleneckBlock: (kt,1,1) conv_a, (1,3,3) conv_b, 1x1x1 conv_c."""

    def __init__(self, cin, inner, kt, stride):
        super().__init__()
        cout = inner * 4
        self.conv_a = conv_bn(cin, inner, (kt, 1, 1), 1, (kt // 2, 0, 0))
        self.conv_b = conv_bn(inner, inner, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.conv_c = conv_bn(inner, cout, 1, relu=False)
        self.branch1 = None
        if cin != cout or stride != 1:
            self.branch1 = conv_bn(cin, cout, 1, (1, stride, stride), relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        res = x if self.branch1 is None else self.branch1(x)
        return self.relu(self.conv_c(self.conv_b(self.conv_a(x))) + res)


class SlowR50(nn.Module):
    """Stem (1,7,7)/(1,2,2) conv + (1,3,3)/(1,2,2) max-pool; res2..res5 = 3,4,6,3 bottlenecks,
    temporal kernel 1,1,3,3, spatial stride 1,2,2,2, no temporal stride; 32w output features."""

    def __init__(self, width=FULL_WIDTH):
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(3, width, (1, 7, 7), (1, 2, 2), (0, 3, 3)),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        stages, cin = [], width
        for stage, (blocks, kt, stride) in enumerate(zip([3, 4, 6, 3], [1, 1, 3, 3], [1, 2, 2, 2])):
            inner = width << stage
            stages.append(nn.Sequential(*[
                Bottleneck(cin if i == 0 else inner * 4, inner, kt, stride if i == 0 else 1)
                for i in range(blocks)
            ]))
            cin = inner * 4
        self.res2, self.res3, self.res4, self.res5 = stages
        self.features = cin

    def forward(self, x):
        return self.res5(self.res4(self.res3(self.res2(self.stem(x)))))


class TorchvisionBackbone(nn.Module):
    """A torchvision VideoResNet without avgpool/fc: returns the feature map."""

    def __init__(self, arch):
        super().__init__()
        import torchvision.models.video as tv

        m = {"r3d18": tv.r3d_18, "r2plus1d18": tv.r2plus1d_18, "mc3_18": tv.mc3_18}[arch]()
        self.stem, self.layer1, self.layer2, self.layer3, self.layer4 = m.stem, m.layer1, m.layer2, m.layer3, m.layer4
        self.features = m.fc.in_features

    def forward(self, x):
        return self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))


def backbone(arch, width, use_torchvision):
    if arch == "slow_r50":
        return SlowR50(width)
    if use_torchvision:
        if width != FULL_WIDTH:
            raise SystemExit("--torchvision builds the full-width models only")
        return TorchvisionBackbone(arch)
    return VideoResNet(arch, width)


def projection_hidden(arch, width):
    """src/model/mod.rs Arch::projection_hidden: F for the -18 models, 2w (128) for slow_r50."""
    return 2 * width if arch == "slow_r50" else 8 * width


# ---------------------------------------------------------------- models of the steps


class Classifier(nn.Module):
    """Backbone + global average + linear (our VideoClassifier; torchvision's avgpool + fc)."""

    def __init__(self, arch, classes, width, use_torchvision):
        super().__init__()
        self.backbone = backbone(arch, width, use_torchvision)
        self.fc = nn.Linear(self.backbone.features, classes)

    def forward(self, x):
        return self.fc(self.backbone(x).mean((2, 3, 4)))


class ProjectionHead(nn.Module):
    """Linear(F->F') -> BN -> ReLU -> Linear(F'->128, no bias) -> BN -> L2-normalise."""

    def __init__(self, features, hidden, embedding=EMBEDDING_DIM):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, embedding, bias=False), nn.BatchNorm1d(embedding),
        )

    def forward(self, x):
        return F.normalize(self.net(x), dim=1, eps=1e-12)


class SslModel(nn.Module):
    def __init__(self, arch, width, use_torchvision):
        super().__init__()
        self.backbone = backbone(arch, width, use_torchvision)
        self.head = ProjectionHead(self.backbone.features, projection_hidden(arch, width))

    def slots(self, x):
        """Clips [N,3,T,H,W] -> features pooled to 4 temporal slots [N,F,4] (Backbone::features)."""
        per_time = self.backbone(x).mean((3, 4))
        return F.adaptive_avg_pool1d(per_time, TEMPORAL_SLOTS)


# ---------------------------------------------------------------- losses (src/loss/*.rs)


def nt_xent_grouped(zi, zj, tau=TAU):
    """G independent groups of N pairs, zi/zj [G,N,D] -> mean NT-Xent per group [G]."""
    g, n, _ = zi.shape
    positive = (zi * zj).sum(2) / tau
    z = torch.cat([zi, zj], 1)
    sim = z @ z.transpose(1, 2) / tau
    eye = torch.eye(2 * n, device=z.device, dtype=sim.dtype) * SELF_SIMILARITY_MASK
    lse = torch.logsumexp(sim - eye, 2)
    return (lse.sum(1) - 2.0 * positive.sum(1)) / (2 * n)


def global_local(slices, dense, tau=TAU):
    b = slices.shape[0]
    diagonal = (slices * dense).sum() / tau
    sim = slices @ dense.transpose(1, 2) / tau
    return (torch.logsumexp(sim, 2).sum() + torch.logsumexp(sim, 1).sum() - 2.0 * diagonal) / (2 * b)


_PAIRS = {}


def dense_pairs(device):
    """The 56 ordered pairs of distinct (view, dense clip) indices, view*4 + clip."""
    if device not in _PAIRS:
        n = SSL_VIEWS * SSL_DENSE_CLIPS
        pairs = [(p, q) for p in range(n) for q in range(n) if q != p]
        left = torch.tensor([p for p, _ in pairs], device=device)
        right = torch.tensor([q for _, q in pairs], device=device)
        _PAIRS[device] = (left, right)
    return _PAIRS[device]


def invariant_loss(global_, slices, dense):
    s1, s2 = global_
    first = nt_xent_grouped(s1.unsqueeze(0), s2.unsqueeze(0)).sum()
    all_ = torch.cat([d.transpose(0, 1) for d in dense], 0)  # [8, B, D]
    left, right = dense_pairs(all_.device)
    second = nt_xent_grouped(all_[left], all_[right]).sum() * INVARIANT_DENSE_WEIGHT
    return first + second


def distinctive_loss(global_, slices, dense):
    first = nt_xent_grouped(dense[0], dense[1]).sum()
    second = sum(global_local(s, d) for s in slices for d in dense)
    return first + second


def ssl_loss(model, clips, teacher):
    """SslTrainer::loss: clips [B,10,3,T,H,W], view-major (view*5 + clip; clip 0 sparse).

    As the official release: one backbone pass per clip and view (B clips each), the head on
    each sparse clip's slot mean and separately on each of its 4 slots, and on each dense
    clip's slot mean (SslModel::embed_with_slices / SslModel::embed)."""
    head = model.head
    global_, slices, dense = [], [], []
    for v in range(SSL_VIEWS):
        first = v * SSL_CLIPS_PER_VIEW
        slots = model.slots(clips[:, first])  # [B,F,4]
        global_.append(head(slots.mean(2)))
        slices.append(torch.stack([head(slots[:, :, t]) for t in range(TEMPORAL_SLOTS)], 1))
        dense.append(torch.stack([
            head(model.slots(clips[:, first + k]).mean(2))
            for k in range(1, SSL_CLIPS_PER_VIEW)
        ], 1))
    loss = invariant_loss if teacher == "invariant" else distinctive_loss
    return loss(tuple(global_), tuple(slices), tuple(dense))


def student_loss(student, teachers, x_l, y, x_u, w_l, w_u):
    """StudentTrainer::step: teachers frozen (eval, no grad) on each half; student on both."""
    with torch.no_grad():
        def target(x, w):
            p_i = torch.softmax(teachers[0](x), 1)
            p_d = torch.softmax(teachers[1](x), 1)
            w = w.unsqueeze(1)
            return p_i * w + p_d * (1.0 - w)

        t_l, t_u = target(x_l, w_l), target(x_u, w_u)
    # Two passes, as the official release (each batch normalised by its own statistics).
    logits_l, logits_u = student(x_l), student(x_u)
    w_s, w_lab, w_unl = STUDENT_WEIGHTS
    ce = F.cross_entropy(logits_l, y)
    mse_l = (torch.softmax(logits_l, 1) - t_l).pow(2).mean()
    mse_u = (torch.softmax(logits_u, 1) - t_u).pow(2).mean()
    return w_s * ce + w_lab * mse_l + w_unl * mse_u


# ---------------------------------------------------------------- driver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["train", "forward", "ssl-invariant", "ssl-distinctive", "student"], default="train")
    ap.add_argument("--arch", default="r3d18", help="r3d18, r2plus1d18, mc3_18, slow_r50 (alias r3d50)")
    ap.add_argument("--width", type=int, default=FULL_WIDTH, help="base width (64 = the real model), as ours")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=2, help="clips (train/forward), videos (ssl), labeled = unlabeled clips (student)")
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--torchvision", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--amp", choices=["none", "bf16", "f16"], default="none")
    ap.add_argument("--phases", action="store_true",
                    help="also time forward, backward and optimizer apart (as ours' `bench --phases`)")
    a = ap.parse_args()
    arch = ARCH_ALIASES.get(a.arch, a.arch)
    if arch not in ("r3d18", "r2plus1d18", "mc3_18", "slow_r50"):
        raise SystemExit(f"unknown --arch {a.arch}")
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    dtype = {"none": None, "bf16": torch.bfloat16, "f16": torch.float16}[a.amp]
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    maybe_compile = torch.compile if a.compile else (lambda m: m)

    if a.mode in ("train", "forward"):
        if a.torchvision and arch != "slow_r50":
            import torchvision.models.video as tv

            if a.width != FULL_WIDTH:
                raise SystemExit("--torchvision builds the full-width models only")
            net = {"r3d18": tv.r3d_18, "r2plus1d18": tv.r2plus1d_18, "mc3_18": tv.mc3_18}[arch](num_classes=a.classes)
        else:
            net = Classifier(arch, a.classes, a.width, False)
        net = net.to(dev)
        model = maybe_compile(net)
        params = net.parameters()
        shape = (a.batch, 3, a.frames, a.size, a.size)

        def inputs():
            return torch.rand(shape, device=dev), torch.randint(0, a.classes, (a.batch,), device=dev)

        def step(x, y):
            if a.mode == "forward":
                model.eval()
                with torch.no_grad():
                    model(x)
                return None
            model.train()
            return F.cross_entropy(model(x), y)
    elif a.mode.startswith("ssl"):
        teacher = a.mode.split("-", 1)[1]
        net = SslModel(arch, a.width, a.torchvision).to(dev)
        params = net.parameters()
        net.backbone = maybe_compile(net.backbone)
        net.train()
        shape = (a.batch, SSL_CLIPS, 3, a.frames, a.size, a.size)

        def inputs():
            return (torch.rand(shape, device=dev),)

        def step(x):
            return ssl_loss(net, x, teacher)
    else:
        def classifier():
            if a.torchvision and arch != "slow_r50":
                import torchvision.models.video as tv

                return {"r3d18": tv.r3d_18, "r2plus1d18": tv.r2plus1d_18, "mc3_18": tv.mc3_18}[arch](num_classes=a.classes)
            return Classifier(arch, a.classes, a.width, False)

        student = classifier().to(dev)
        teachers = [classifier().to(dev).eval().requires_grad_(False) for _ in range(2)]
        params = student.parameters()
        student_c = maybe_compile(student)
        teachers_c = [maybe_compile(t) for t in teachers]
        student.train()
        shape = (a.batch, 3, a.frames, a.size, a.size)

        def inputs():
            return (
                torch.rand(shape, device=dev),
                torch.randint(0, a.classes, (a.batch,), device=dev),
                torch.rand(shape, device=dev),
                torch.rand(a.batch, device=dev),
                torch.rand(a.batch, device=dev),
            )

        def step(x_l, y, x_u, w_l, w_u):
            return student_loss(student_c, teachers_c, x_l, y, x_u, w_l, w_u)

    opt = torch.optim.Adam(params, lr=LEARNING_RATE)
    times = []
    phases = []
    for i in range(a.warmup + a.iters):
        batch = inputs()
        sync()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            loss = step(*batch)
        if a.phases:
            sync()
            t_forward = time.perf_counter()
        if loss is not None:
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if a.phases:
                sync()
                t_backward = time.perf_counter()
            opt.step()
        sync()
        t_end = time.perf_counter()
        if i >= a.warmup:
            times.append(t_end - t0)
            if a.phases and loss is not None:
                phases.append((t_forward - t0, t_backward - t_forward, t_end - t_backward))
    if phases:
        forward, backward, optimizer = (statistics.median(p[j] for p in phases) for j in range(3))
        print(f"phases_s forward {forward:.4f} backward {backward:.4f} optimizer {optimizer:.4f}")
    if a.mode == "student":
        shape = (f"{a.batch}+{a.batch}",) + shape[1:]
    print(f"pytorch {a.mode} {arch} width={a.width} {tuple(shape)} {a.device} threads={torch.get_num_threads()} "
          f"torchvision={a.torchvision} compile={a.compile} amp={a.amp} median_s {statistics.median(times):.6f}")


if __name__ == "__main__":
    main()
