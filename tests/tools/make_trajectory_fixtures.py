#!/usr/bin/env python3
"""Training-trajectory fixtures: 20 Adam steps of our training steps, in float32 PyTorch.

For each case this script builds a small model from a fixed seed, saves its initial weights,
two fixed input batches, then trains it for 20 steps (step i uses batch i % 2) with
`torch.optim.Adam(params, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay)` at a constant
learning rate, recording the loss of every step (computed before that step's update), the
named loss components, and the weights and batch-norm running statistics after the last step.
A Rust test imports the initial weights into our Burn models, runs our real training steps
with Burn's Adam on the same batches and compares the per-step losses and final parameters.

The models, losses and key layouts are those of `benches/pytorch_bench.py` (imported from
there), saved under the key names that `src/model/import.rs` maps onto our modules:
torchvision `VideoResNet` names for the "-18" models, PyTorchVideo `slow_r50` names for
slow_r50, plus `head.fc1|bn1|fc2|bn2` for the projection head. See
`tests/fixtures/trajectory/README.md` for the file format.

Initial weights: torchvision's VideoResNet initialisation (Conv3d kaiming-normal fan-out
ReLU, BatchNorm weight 1 / bias 0, Linear N(0, 0.01) with zero bias; the projection head
keeps PyTorch's default Linear init), then EVERY batch norm gets weight U(0.8, 1.2),
bias U(-0.1, 0.1), running_mean N(0, 0.1), running_var U(0.5, 1.5). Inputs are clips in
[0, 1] with 8-bit levels k/255, k uniform in 0..255 (like decoded video; such float32 files
compress ~2x in git); labels int64; TSTR weights w U(0, 1). Batch norms run in train mode
(batch statistics; running statistics updated with momentum 0.1 and PyTorch's UNBIASED batch
variance for running_var). Burn updates running_var with the BIASED batch variance, so each
case also gets `final_burn.safetensors`: the final state with the running_var that the same 20
steps give under Burn's rule (replayed with forward hooks; the unbiased replay is checked
against PyTorch's own buffers). Each case is then re-run in float64 from the same files;
`trajectory.json` records those losses and the float32-vs-float64 drift per step and per
tensor, the noise floor that float32 rounding alone reaches along these trajectories (it
grows to 1e-3..1 relative by step 20 at lr 1e-3: see the README before choosing tolerances).

Cases:
  supervised_r3d18       r3d18 width 8, 5 classes, 4 clips [3,8,32,32]; CE; lr 1e-3, wd 0.
  supervised_r2plus1d18  r2plus1d18 width 4, otherwise as above.
  supervised_slow_r50    slow_r50 width 4, otherwise as above (PyTorchVideo key names).
  ssl_invariant          r3d18 width 4 + projection head (hidden 32), 3 videos x 10 clips of
  ssl_distinctive        [3,16,16,16] (distinctive: [3,32,16,16], so that the last stage keeps
                         4 time steps for the 4 slots) (view-major: clip v*5 is view v's
                         sparse clip, v*5+1..5 its dense clips); one backbone pass per clip,
                         head on the sparse clip's slot mean, on each of its 4 slots (one head
                         call per slot) and on each dense clip's slot mean; the invariant /
                         distinctive teacher loss (tau 0.1); lr 1e-3, wd 1e-4. Both SSL cases
                         use the same seed: the same init.safetensors (git stores it once);
                         only the clip length and the loss differ.
  student                student + frozen invariant and distinctive teachers, r3d18 width 4,
                         5 classes (three inits); 3 labeled + 3 unlabeled clips [3,8,32,32],
                         per-video TSTR weight w; teachers in eval mode, no grad; student in
                         train mode on the labeled then the unlabeled clips (two calls);
                         CE + 50 MSE(labeled) + 100 MSE(unlabeled); lr 1e-3, wd 0.

usage (from the repository root; CPU, one thread, about 25 s for all cases):
  python3 tests/tools/make_trajectory_fixtures.py [--out tests/fixtures/trajectory] [--case NAME]
Without --case every case is written (--case may be repeated). Needs torch, numpy and
safetensors. The output is bit-identical from run to run on one machine (fixed seeds, one
thread); another torch version or CPU may change the last bits, not the semantics.
"""
import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benches"))
import pytorch_bench as pb  # noqa: E402

STEPS = 20
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
BN_MOMENTUM = 0.1  # PyTorch's default, as src/model/mod.rs
BN_EPS = 1e-5
BN_WEIGHT = (0.8, 1.2)  # uniform
BN_BIAS = (-0.1, 0.1)  # uniform
BN_RUNNING_MEAN_STD = 0.1  # normal, mean 0
BN_RUNNING_VAR = (0.5, 1.5)  # uniform
CLASSIFIER_INIT_STD = 0.01
BATCH_SEED_OFFSET = 1000  # the batches' generator is seeded with seed + this
PIXEL_LEVELS = 256  # clip values are k/255, k uniform in 0..255 (8-bit video; compresses in git)
SSL_FRAMES = 16
SSL_SIZE = 16
# The distinctive case's clips: plain R3D-18 reduces time 8×, so 32 frames leave the 4 time
# steps that the 4 temporal slots need. At 16 frames two steps were pooled into four slots:
# slots came in identical pairs, the global–local softmaxes held tied rows with different
# targets, and float32 rounding decided the trajectory within 4 steps.
SSL_DISTINCTIVE_FRAMES = 32

CASES = {
    "supervised_r3d18": dict(kind="supervised", arch="r3d18", width=8, classes=5, batch=4,
                             clip=(3, 8, 32, 32), lr=1e-4, weight_decay=0.0, seed=101),
    "supervised_r2plus1d18": dict(kind="supervised", arch="r2plus1d18", width=4, classes=5, batch=4,
                                  clip=(3, 8, 32, 32), lr=1e-4, weight_decay=0.0, seed=102),
    "supervised_slow_r50": dict(kind="supervised", arch="slow_r50", width=4, classes=5, batch=4,
                                clip=(3, 8, 32, 32), lr=1e-4, weight_decay=0.0, seed=103),
    "ssl_invariant": dict(kind="ssl", teacher="invariant", arch="r3d18", width=4, classes=None, batch=3,
                          clip=(3, SSL_FRAMES, SSL_SIZE, SSL_SIZE), lr=1e-4, weight_decay=1e-4, seed=104),
    "ssl_distinctive": dict(kind="ssl", teacher="distinctive", arch="r3d18", width=4, classes=None, batch=3,
                            clip=(3, SSL_DISTINCTIVE_FRAMES, SSL_SIZE, SSL_SIZE), lr=1e-4, weight_decay=1e-4,
                            seed=104),
    "student": dict(kind="student", arch="r3d18", width=4, classes=5, batch=3,
                    clip=(3, 8, 32, 32), lr=1e-4, weight_decay=0.0, seed=106),
}
COMPONENTS = {
    "supervised": [],
    "invariant": ["global", "dense"],
    "distinctive": ["local_local", "global_local"],
    "student": ["ce", "distill_labeled", "distill_unlabeled"],
}

# ---------------------------------------------------------------- key layouts
# Each layout is a pair of rule lists (model state-dict key -> file key, and back). Every
# rule is a full match; every key must match exactly one rule in each direction, and the
# round trip must give the key back (checked for every tensor on every save and load).

_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
_TV_TOP = r"((?:stem|layer[1-4])\..+)"

TORCHVISION_CLASSIFIER = (
    [(r"backbone\.(.+)", r"\1"), (r"fc\.(weight|bias)", r"fc.\1")],
    [(_TV_TOP, r"backbone.\1"), (r"fc\.(weight|bias)", r"fc.\1")],
)
_HEAD_TO_FILE = {"0": "fc1", "1": "bn1", "3": "fc2", "4": "bn2"}
_HEAD_TO_MODEL = {v: k for k, v in _HEAD_TO_FILE.items()}
TORCHVISION_SSL = (
    [(r"backbone\.(.+)", r"\1"),
     (r"head\.net\.([0134])\.(.+)", lambda m: f"head.{_HEAD_TO_FILE[m[1]]}.{m[2]}")],
    [(_TV_TOP, r"backbone.\1"),
     (r"head\.(fc1|bn1|fc2|bn2)\.(.+)", lambda m: f"head.net.{_HEAD_TO_MODEL[m[1]]}.{m[2]}")],
)


def _block(stage):  # pytorch_bench's res2..res5 are PyTorchVideo's blocks.1..4
    return int(stage) - 1


PYTORCHVIDEO_SLOW = (
    [
        (r"backbone\.stem\.0\.0\.weight", "blocks.0.conv.weight"),
        (rf"backbone\.stem\.0\.1\.{_BN}", r"blocks.0.norm.\1"),
        (r"backbone\.res([2-5])\.(\d+)\.conv_([abc])\.0\.weight",
         lambda m: f"blocks.{_block(m[1])}.res_blocks.{m[2]}.branch2.conv_{m[3]}.weight"),
        (rf"backbone\.res([2-5])\.(\d+)\.conv_([abc])\.1\.{_BN}",
         lambda m: f"blocks.{_block(m[1])}.res_blocks.{m[2]}.branch2.norm_{m[3]}.{m[4]}"),
        (r"backbone\.res([2-5])\.(\d+)\.branch1\.0\.weight",
         lambda m: f"blocks.{_block(m[1])}.res_blocks.{m[2]}.branch1_conv.weight"),
        (rf"backbone\.res([2-5])\.(\d+)\.branch1\.1\.{_BN}",
         lambda m: f"blocks.{_block(m[1])}.res_blocks.{m[2]}.branch1_norm.{m[3]}"),
        (r"fc\.(weight|bias)", r"blocks.5.proj.\1"),
    ],
    [
        (r"blocks\.0\.conv\.weight", "backbone.stem.0.0.weight"),
        (rf"blocks\.0\.norm\.{_BN}", r"backbone.stem.0.1.\1"),
        (r"blocks\.([1-4])\.res_blocks\.(\d+)\.branch2\.conv_([abc])\.weight",
         lambda m: f"backbone.res{int(m[1]) + 1}.{m[2]}.conv_{m[3]}.0.weight"),
        (rf"blocks\.([1-4])\.res_blocks\.(\d+)\.branch2\.norm_([abc])\.{_BN}",
         lambda m: f"backbone.res{int(m[1]) + 1}.{m[2]}.conv_{m[3]}.1.{m[4]}"),
        (r"blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_conv\.weight",
         lambda m: f"backbone.res{int(m[1]) + 1}.{m[2]}.branch1.0.weight"),
        (rf"blocks\.([1-4])\.res_blocks\.(\d+)\.branch1_norm\.{_BN}",
         lambda m: f"backbone.res{int(m[1]) + 1}.{m[2]}.branch1.1.{m[3]}"),
        (r"blocks\.5\.proj\.(weight|bias)", r"fc.\1"),
    ],
)


def rename(key, rules):
    hits = [(p, r) for p, r in rules if re.fullmatch(p, key)]
    if len(hits) != 1:
        raise SystemExit(f"key {key!r} matches {len(hits)} renaming rules (expected exactly 1)")
    pattern, repl = hits[0]
    return re.sub(rf"^(?:{pattern})$", repl, key)


def file_state(model, layout, dtype=torch.float32):
    """The state dict under the file's key names: float32, contiguous, no num_batches_tracked."""
    to_file, to_model = layout
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        name = rename(key, to_file)
        if rename(name, to_model) != key:
            raise SystemExit(f"renaming is not a bijection: {key} -> {name} -> {rename(name, to_model)}")
        if name in out:
            raise SystemExit(f"two tensors map to {name}")
        out[name] = value.detach().to(dtype).contiguous().clone()
    return out


def load_file_state(model, path, layout):
    """Load a file written by `file_state` (strict apart from num_batches_tracked)."""
    _, to_model = layout
    state = {rename(k, to_model): v for k, v in load_file(str(path)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{path}: missing {missing}, unexpected {unexpected}")


# ---------------------------------------------------------------- models and initialisation


def flatten_r2plus1d_stem(backbone):
    """torchvision's R2Plus1dStem is ONE Sequential (conv, bn, relu, conv, bn, relu), so its
    keys are stem.0/1/3/4; pytorch_bench nests two conv_bn blocks (stem.0.0, stem.1.1, ...)."""
    backbone.stem = nn.Sequential(*backbone.stem[0], *backbone.stem[1])


def build(arch, width, classes):
    """A classifier (classes given) or an SSL model (backbone + projection head)."""
    if classes is None:
        model = pb.SslModel(arch, width, False)
    else:
        model = pb.Classifier(arch, classes, width, False)
    if arch == "r2plus1d18":
        flatten_r2plus1d_stem(model.backbone)
    return model


def layout_of(arch, ssl):
    if arch == "slow_r50":
        if ssl:
            raise SystemExit("no SSL layout for slow_r50 in these fixtures")
        return "pytorchvideo", PYTORCHVIDEO_SLOW
    return "torchvision", (TORCHVISION_SSL if ssl else TORCHVISION_CLASSIFIER)


def torchvision_init(module):
    """torchvision VideoResNet's initialisation of every Conv3d, BatchNorm3d and Linear."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, CLASSIFIER_INIT_STD)
            nn.init.zeros_(m.bias)


def randomise_batch_norms(module):
    """Non-trivial affine parameters and running statistics for every batch norm."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                assert m.momentum == BN_MOMENTUM and m.eps == BN_EPS
                m.weight.uniform_(*BN_WEIGHT)
                m.bias.uniform_(*BN_BIAS)
                m.running_mean.normal_(0.0, BN_RUNNING_MEAN_STD)
                m.running_var.uniform_(*BN_RUNNING_VAR)


def initialised(arch, width, classes):
    """Build and initialise a model from the global RNG (seeded by the caller)."""
    model = build(arch, width, classes)
    if classes is None:
        torchvision_init(model.backbone)  # the projection head keeps PyTorch's default init
    else:
        torchvision_init(model)
    randomise_batch_norms(model)
    return model


class RunningVarianceShadow:
    """Replays every train-mode batch norm's running_var update with the BIASED (Burn) and
    the unbiased (PyTorch) batch variance. The unbiased replay must equal PyTorch's own
    running_var (a check of the replay); the biased one is what Burn would hold."""

    def __init__(self, model):
        self.modules = {}
        self.biased, self.unbiased = {}, {}
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                self.modules[name] = m
                self.biased[name] = m.running_var.detach().clone()
                self.unbiased[name] = m.running_var.detach().clone()
                m.register_forward_pre_hook(self._hook(name))

    def _hook(self, name):
        def hook(m, inputs):
            if not m.training:
                return
            x = inputs[0].detach()
            dims = [0] + list(range(2, x.dim()))
            for store, unbiased in ((self.biased, False), (self.unbiased, True)):
                var = x.var(dim=dims, unbiased=unbiased)
                store[name] = (1.0 - m.momentum) * store[name] + m.momentum * var
        return hook

    def check(self):
        for name, m in self.modules.items():
            torch.testing.assert_close(self.unbiased[name], m.running_var, rtol=1e-5, atol=1e-7,
                                       msg=lambda s: f"running_var replay of {name}: {s}")

    def biased_state(self, layout):
        to_file, _ = layout
        return {rename(f"{name}.running_var", to_file): v.contiguous().clone()
                for name, v in self.biased.items()}


# ---------------------------------------------------------------- steps


def supervised_step(model, batch):
    x, y = batch
    return F.cross_entropy(model(x), y), {}


def ssl_embeddings(model, clips):
    """The official release's passes: one backbone call per clip; per view the head on the
    sparse clip's slot mean (global), on each of its 4 slots (4 calls of B rows) and on each
    dense clip's slot mean. Call order (which sets the running statistics): per view, the
    sparse clip's backbone, head(global), head(slot 0..3), then per dense clip backbone, head."""
    head = model.head
    global_, slices, dense = [], [], []
    for v in range(pb.SSL_VIEWS):
        first = v * pb.SSL_CLIPS_PER_VIEW
        slots = model.slots(clips[:, first].contiguous())  # [B, F, 4]
        global_.append(head(slots.mean(2)))
        slices.append(torch.stack([head(slots[:, :, t].contiguous()) for t in range(pb.TEMPORAL_SLOTS)], 1))
        dense.append(torch.stack([head(model.slots(clips[:, first + d].contiguous()).mean(2))
                                  for d in range(1, pb.SSL_CLIPS_PER_VIEW)], 1))
    return tuple(global_), tuple(slices), tuple(dense)


def ssl_step(teacher):
    def step(model, batch):
        (clips,) = batch
        g, s, d = ssl_embeddings(model, clips)
        if teacher == "invariant":
            total = pb.invariant_loss(g, s, d)
            with torch.no_grad():
                first = pb.nt_xent_grouped(g[0].unsqueeze(0), g[1].unsqueeze(0)).sum()
                all_ = torch.cat([x.transpose(0, 1) for x in d], 0)
                left, right = pb.dense_pairs(all_.device)
                second = pb.nt_xent_grouped(all_[left], all_[right]).sum() * pb.INVARIANT_DENSE_WEIGHT
            names = ("global", "dense")
        else:
            total = pb.distinctive_loss(g, s, d)
            with torch.no_grad():
                first = pb.nt_xent_grouped(d[0], d[1]).sum()
                second = sum(pb.global_local(a, b) for a in s for b in d)
            names = ("local_local", "global_local")
        torch.testing.assert_close(first + second, total.detach(), rtol=1e-5, atol=1e-6)
        return total, {names[0]: first, names[1]: second}
    return step


def student_step(teachers):
    invariant, distinctive = teachers

    def step(student, batch):
        x_l, y_l, x_u, w_l, w_u = batch
        with torch.no_grad():
            def target(x, w):
                p_i = torch.softmax(invariant(x), 1)
                p_d = torch.softmax(distinctive(x), 1)
                w = w.unsqueeze(1)
                return w * p_i + (1.0 - w) * p_d

            t_l, t_u = target(x_l, w_l), target(x_u, w_u)
        logits_l = student(x_l)  # two train-mode calls: each half normalised by its own statistics
        logits_u = student(x_u)
        w_s, w_lab, w_unl = pb.STUDENT_WEIGHTS
        ce = F.cross_entropy(logits_l, y_l)
        mse_l = (torch.softmax(logits_l, 1) - t_l).pow(2).mean()
        mse_u = (torch.softmax(logits_u, 1) - t_u).pow(2).mean()
        total = w_s * ce + w_lab * mse_l + w_unl * mse_u
        return total, {"ce": ce, "distill_labeled": mse_l, "distill_unlabeled": mse_u}
    return step


# ---------------------------------------------------------------- batches


def pixels(shape, gen):
    """Clips in [0, 1]: 8-bit levels k/255 with k uniform (as decoded video)."""
    levels = torch.randint(0, PIXEL_LEVELS, shape, generator=gen, dtype=torch.int64)
    return levels.to(torch.float32) / float(PIXEL_LEVELS - 1)


def make_batches(c, gen):
    """Two fixed batches: (file tensors by key, [inputs of batch 0, inputs of batch 1])."""
    b, clip = c["batch"], c["clip"]
    tensors, batches = {}, []
    for i in range(2):
        if c["kind"] == "supervised":
            x = pixels((b,) + clip, gen)
            y = torch.randint(0, c["classes"], (b,), generator=gen, dtype=torch.int64)
            tensors.update({f"x{i}": x, f"y{i}": y})
            batches.append((x, y))
        elif c["kind"] == "ssl":
            clips = pixels((b, pb.SSL_CLIPS) + clip, gen)
            tensors[f"clips{i}"] = clips
            batches.append((clips,))
        else:
            x_l = pixels((b,) + clip, gen)
            y_l = torch.randint(0, c["classes"], (b,), generator=gen, dtype=torch.int64)
            x_u = pixels((b,) + clip, gen)
            w_l = torch.rand((b,), generator=gen)
            w_u = torch.rand((b,), generator=gen)
            tensors.update({f"xl{i}": x_l, f"yl{i}": y_l, f"xu{i}": x_u, f"wl{i}": w_l, f"wu{i}": w_u})
            batches.append((x_l, y_l, x_u, w_l, w_u))
    return {k: v.contiguous() for k, v in tensors.items()}, batches


# ---------------------------------------------------------------- driver


def train(c, d, layout, batches, dtype):
    """20 Adam steps from the files in `d`, in `dtype`: (losses, components, model, shadow).

    The models are loaded from the files just written (so the files are what was trained;
    every key's round trip is checked)."""
    cast = lambda t: t.to(dtype) if t.is_floating_point() else t  # noqa: E731
    batches = [tuple(cast(t) for t in batch) for batch in batches]
    model = build(c["arch"], c["width"], c["classes"])
    load_file_state(model, d / "init.safetensors", layout)
    model.to(dtype)
    if c["kind"] == "student":
        teachers = []
        for role in ("invariant", "distinctive"):
            t = build(c["arch"], c["width"], c["classes"])
            load_file_state(t, d / f"{role}.safetensors", layout)
            teachers.append(t.to(dtype).eval().requires_grad_(False))
        step = student_step(teachers)
    elif c["kind"] == "ssl":
        step = ssl_step(c["teacher"])
    else:
        step = supervised_step
    model.train()
    shadow = RunningVarianceShadow(model)
    opt = torch.optim.Adam(model.parameters(), lr=c["lr"], betas=BETAS, eps=ADAM_EPS,
                           weight_decay=c["weight_decay"])
    component_names = COMPONENTS[c.get("teacher", c["kind"])]
    losses, components = [], {k: [] for k in component_names}
    for i in range(STEPS):
        opt.zero_grad(set_to_none=True)
        loss, parts = step(model, batches[i % 2])
        losses.append(float(loss.item()))
        assert sorted(parts) == sorted(component_names)
        for k, v in parts.items():
            components[k].append(float(v.item()))
        loss.backward()
        opt.step()
    shadow.check()
    return losses, components, model, shadow


def relative_l2(a, b):
    """||a - b|| / ||b|| in float64 (inf where b is all zeros and a is not)."""
    a, b = a.double(), b.double()
    num, den = (a - b).norm().item(), b.norm().item()
    return num / den if den > 0 else (0.0 if num == 0 else float("inf"))


def run_case(name, out_dir):
    c = CASES[name]
    ssl = c["kind"] == "ssl"
    layout_name, layout = layout_of(c["arch"], ssl)
    d = out_dir / name
    d.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(c["seed"])
    init = initialised(c["arch"], c["width"], c["classes"])
    save_file(file_state(init, layout), str(d / "init.safetensors"))
    if c["kind"] == "student":
        for role in ("invariant", "distinctive"):
            t = initialised(c["arch"], c["width"], c["classes"])
            save_file(file_state(t, layout), str(d / f"{role}.safetensors"))
    gen = torch.Generator().manual_seed(c["seed"] + BATCH_SEED_OFFSET)
    tensors, batches = make_batches(c, gen)
    save_file(tensors, str(d / "batches.safetensors"))

    losses, components, model, shadow = train(c, d, layout, batches, torch.float32)
    final = file_state(model, layout)
    save_file(final, str(d / "final.safetensors"))
    # The whole final state as Burn's batch norm leaves it (biased running variance), so the
    # Rust test imports one complete file.
    save_file({**final, **shadow.biased_state(layout)}, str(d / "final_burn.safetensors"))

    # The same trajectory in float64 from the same float32 files: how far float32 rounding
    # alone carries the trajectory (a noise floor for the Rust test's tolerances).
    losses64, components64, model64, _ = train(c, d, layout, batches, torch.float64)
    final64 = file_state(model64, layout, dtype=torch.float64)
    # Stored in float32: the Rust test imports it to measure, tensor by tensor, how far float32
    # rounding alone moved the final state (its tolerance floor).
    save_file({k: v.float().contiguous() for k, v in final64.items()},
              str(d / "final_f64.safetensors"))
    trainable = sorted(k for k in final if not k.endswith(("running_mean", "running_var")))
    f64_drift = {
        "loss_rel": [abs(a - b) / abs(b) for a, b in zip(losses, losses64)],
        "parameters_rel_l2": relative_l2(torch.cat([final[k].flatten() for k in trainable]),
                                         torch.cat([final64[k].flatten() for k in trainable])),
        "per_tensor_rel_l2": {k: relative_l2(final[k], final64[k]) for k in sorted(final)},
    }

    batch_shapes = {k: list(v.shape) for k, v in tensors.items()}
    record = {
        "case": name,
        "arch": c["arch"],
        "width": c["width"],
        "classes": c["classes"],
        "steps": STEPS,
        "lr": c["lr"],
        "weight_decay": c["weight_decay"],
        "eps": ADAM_EPS,
        "betas": list(BETAS),
        "losses": losses,
        "components": components,
        "torch_version": torch.__version__,
        "kind": c["kind"],
        "teacher": c.get("teacher"),
        "layout": layout_name,
        "seed": c["seed"],
        "batch_shapes": batch_shapes,
        "batch_norm": {"momentum": BN_MOMENTUM, "eps": BN_EPS, "running_var": "unbiased"},
        "losses_f64": losses64,
        "components_f64": components64,
        "f64_drift": f64_drift,
    }
    if ssl:
        record["tau"] = pb.TAU
        record["projection_hidden"] = pb.projection_hidden(c["arch"], c["width"])
    if c["kind"] == "student":
        record["student_weights"] = list(pb.STUDENT_WEIGHTS)
    with open(d / "trajectory.json", "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")
    return record


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "trajectory"))
    ap.add_argument("--case", action="append", choices=sorted(CASES),
                    help="a case to write (repeatable); all by default")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    out = Path(a.out)
    for name in a.case or list(CASES):
        t0 = time.perf_counter()
        r = run_case(name, out)
        drift = r["f64_drift"]
        print(f"{name}: loss {r['losses'][0]:.6f} -> {r['losses'][-1]:.6f}; float32 vs float64: "
              f"loss rel max {max(drift['loss_rel']):.1e}, final parameters rel L2 "
              f"{drift['parameters_rel_l2']:.1e} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
