#!/usr/bin/env python3
"""Write a safetensors state dict as a PyTorch `torch.save` zip file, without torch.

Used by the tests to produce real `.pth` files from the golden safetensors fixtures, so
that the PyTorch import path is checked on the same weights. The file layout is
PyTorch's zip serialization (version 3): `archive/data.pkl` (pickle protocol 2, tensors
rebuilt by `torch._utils._rebuild_tensor_v2` from persistent storages),
`archive/data/<key>` (raw little-endian storage bytes), `archive/version`,
`archive/byteorder`.

usage: safetensors_to_pth.py IN.safetensors OUT.pth [--checkpoint] [--wrapper NAME]
                             [--prefix module.] [--head module.1.]
  --checkpoint  wrap as {NAME: ..., "epoch": 1} like a training checkpoint
  --wrapper N   the checkpoint's state-dict key (default "state_dict"; "model_state_dict")
  --prefix P    prepend P to every key (as DataParallel does with "module.", and the official
                TCLR/TimeBalance pre-training with "module.0." for nn.Sequential(backbone, head))
  --head P      add a small projection head under prefix P, as those releases' "module.1."
"""
import argparse
import collections
import json
import pickle
import struct
import sys
import types
import zipfile

# safetensors dtype -> (torch storage class name, bytes per element)
DTYPES = {
    "F32": ("FloatStorage", 4),
    "F64": ("DoubleStorage", 8),
    "F16": ("HalfStorage", 2),
    "I64": ("LongStorage", 8),
    "I32": ("IntStorage", 4),
    "U8": ("ByteStorage", 1),
}


def install_fake_torch():
    """Module objects named like torch's, so pickle records the right global names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # never called: we only write
        raise RuntimeError("write-only stand-in")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name, _ in DTYPES.values():
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
    torch._utils = utils
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return torch, utils


class Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class Tensor:
    def __init__(self, storage, shape, rebuild):
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce__(self):
        stride = []
        acc = 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (
            self.rebuild,
            (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()),
        )


class TorchPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    data = blob[8 + n :]
    out = collections.OrderedDict()
    for name in sorted(k for k in header if k != "__metadata__"):
        info = header[name]
        start, end = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], data[start:end])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--checkpoint", action="store_true")
    ap.add_argument("--prefix", default="")
    ap.add_argument("--wrapper", default="state_dict")
    ap.add_argument("--head", default=None)
    args = ap.parse_args()

    torch, utils = install_fake_torch()
    tensors = read_safetensors(args.src)
    state = collections.OrderedDict()
    blobs = {}
    for i, (name, (dtype, shape, raw)) in enumerate(tensors.items()):
        cls_name, size = DTYPES[dtype]
        key = str(i)
        numel = len(raw) // size
        storage = Storage(key, getattr(torch, cls_name), numel)
        state[args.prefix + name] = Tensor(storage, shape, utils._rebuild_tensor_v2)
        blobs[key] = raw
    if args.head is not None:
        # TCLR's projection head names (fc1, bn1, fc2, bn2), at a toy size.
        for name, shape in [("fc1.weight", [4, 4]), ("bn1.running_mean", [4]), ("fc2.weight", [2, 4])]:
            key = str(len(blobs))
            numel = 1
            for d in shape:
                numel *= d
            storage = Storage(key, torch.FloatStorage, numel)
            state[args.head + name] = Tensor(storage, shape, utils._rebuild_tensor_v2)
            blobs[key] = struct.pack("<%df" % numel, *([0.5] * numel))
    obj = {args.wrapper: state, "epoch": 1} if args.checkpoint else state

    import io

    buf = io.BytesIO()
    TorchPickler(buf, protocol=2).dump(obj)
    root = "archive"
    with zipfile.ZipFile(args.dst, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(f"{root}/data.pkl", buf.getvalue())
        z.writestr(f"{root}/byteorder", "little")
        for key, raw in blobs.items():
            z.writestr(f"{root}/data/{key}", raw)
        z.writestr(f"{root}/version", "3\n")


if __name__ == "__main__":
    main()
