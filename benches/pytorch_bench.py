#!/usr/bin/env python3
"""PyTorch counterpart of `timebalance bench train|forward`: same model, shapes and optimizer.

R3D-18 is built here in plain torch (torchvision's VideoResNet structure) so the script
needs only `torch`; with `--torchvision` it uses torchvision's models instead. Prints one
line per setting ending in `median_s <seconds>` (median after warm-up, like ours).

usage: pytorch_bench.py --mode train|forward --arch r3d18 --frames 8 --size 112 --batch 2
                        --device cpu|cuda --iters 5 [--threads N] [--compile] [--amp bf16]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(nn.Conv3d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm3d(cout))
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x):
        res = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + res)


class R3D18(nn.Module):
    def __init__(self, classes, width=64):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv3d(3, w, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False), nn.BatchNorm3d(w), nn.ReLU(inplace=True))
        layers, cin = [], w
        for i, (m, s) in enumerate([(1, 1), (2, 2), (4, 2), (8, 2)]):
            layers.append(nn.Sequential(Block(cin, w * m, s), Block(w * m, w * m, 1)))
            cin = w * m
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def build(arch, classes, use_torchvision):
    if use_torchvision:
        import torchvision.models.video as tv
        return {"r3d18": tv.r3d_18, "r2plus1d18": tv.r2plus1d_18, "mc3_18": tv.mc3_18}[arch](num_classes=classes)
    if arch != "r3d18":
        raise SystemExit(f"--arch {arch} needs --torchvision")
    return R3D18(classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["train", "forward"], default="train")
    ap.add_argument("--arch", default="r3d18")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--classes", type=int, default=101)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--torchvision", action="store_true")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--amp", choices=["none", "bf16", "f16"], default="none")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    model = build(a.arch, a.classes, a.torchvision).to(dev)
    if a.compile:
        model = torch.compile(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    shape = (a.batch, 3, a.frames, a.size, a.size)
    dtype = {"none": None, "bf16": torch.bfloat16, "f16": torch.float16}[a.amp]
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    times = []
    for i in range(a.warmup + a.iters):
        x = torch.rand(shape, device=dev)
        y = torch.randint(0, a.classes, (a.batch,), device=dev)
        sync()
        t0 = time.perf_counter()
        with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
            if a.mode == "forward":
                model.eval()
                with torch.no_grad():
                    model(x)
            else:
                model.train()
                loss = loss_fn(model(x), y)
        if a.mode == "train":
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    print(f"pytorch {a.mode} {a.arch} {shape} {a.device} threads={torch.get_num_threads()} "
          f"compile={a.compile} amp={a.amp} median_s {statistics.median(times):.6f}")


if __name__ == "__main__":
    main()
