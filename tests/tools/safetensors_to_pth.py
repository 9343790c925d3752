#!/usr/bin/env python3
"""Write a safetensors state dict as a PyTorch `torch.save` zip file, without torch.

Used by the tests to produce real `.pth` files from the golden safetensors fixtures, so
that the PyTorch import path is checked on the same weights. The file layout is
PyTorch's zip serialization (version 3): `archive/data.pkl` (pickle protocol 2, tensors
rebuilt by `torch._utils._rebuild_tensor_v2` from persistent storages),
`archive/data/<key>` (raw little-endian storage bytes), `archive/version`,
`archive/byteorder`.

usage: safetensors_to_pth.py IN.safetensors OUT.pth [--checkpoint] [--prefix module.]
  --checkpoint  wrap as {"state_dict": ..., "epoch": 1} like a training checkpoint
  --prefix P    prepend P to every key (as DataParallel does with "module.")
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
    obj = {"state_dict": state, "epoch": 1} if args.checkpoint else state

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
