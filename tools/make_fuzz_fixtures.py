#!/usr/bin/env python3
"""Differential fuzz fixtures: mutations of the parsers' seed files, each read by the format's
own library, so the Swift tests can check that what Loupe loads from a mutated file is what that
library loads from it (and that Loupe refuses what it refuses).

Run by hand: .venv-python/bin/python tools/make_fuzz_fixtures.py (torch, onnx and safetensors
from PyPI). Tests never run Python. Writes Tests/ModelsTests/Fixtures/fuzz_reference.json.

The readers: torch.load(weights_only=True) for .pth (zip and legacy formats),
safetensors.torch.load for .safetensors, onnx.load_from_string (protobuf) and
onnx.numpy_helper for .onnx. What Loupe keeps of a checkpoint is applied to torch's result as
Loupe documents it (a dict, unwrapped from "state_dict" or "model", tensors under string keys,
"module." removed, every tensor converted to float32), so the comparison is of equals.

Mutations are local (one splice each, so the fixture stays small): bit flips in one 16-byte
window, a digit or letter replaced (sizes, offsets, storage keys, names), a pickle BININT1
operand changed (sizes, strides, offsets), a dtype or storage type swapped for another, a run of
random bytes, and truncation (not a zip entry marked as a directory: torch then reads
uninitialized memory). For each seed the first mutations in a fixed order are kept until
it has LOADED that the reader loads with a result different from the seed's, and REFUSED that
it refuses.

Each entry: the splice (at, remove, insert as hex) and the reader's outcome: "refused", or the
tensors that changed against the seed's (name -> [shape, digest], null when gone). A digest is
the first 16 hex digits of SHA-256 over the float32 little-endian values, NaN written as
0x7FC00000.
"""
import hashlib
import io
import json
import os
import random
import warnings
import zipfile

import numpy as np
import onnx
import safetensors.torch
import torch
from onnx import numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
FIXTURES = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")
LOADED, REFUSED, CANDIDATES = 40, 25, 4000


def digest(values):
    a = np.ascontiguousarray(np.asarray(values, dtype="<f4").reshape(-1))
    bits = a.view("<u4").copy()
    bits[np.isnan(a)] = 0x7FC00000
    return hashlib.sha256(bits.tobytes()).hexdigest()[:16]


def table(tensors):
    return {name: [list(shape), digest(values)] for name, (shape, values) in tensors.items()}


def read_checkpoint(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    if not isinstance(root, dict):
        return None
    for wrapper in ("state_dict", "model"):
        if isinstance(root.get(wrapper), dict):
            root = root[wrapper]
    out = {}
    for key, value in root.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue
        name = key[len("module."):] if key.startswith("module.") else key
        if name in out:
            return None
        out[name] = (tuple(value.shape), value.to(torch.float32).numpy())
    return out or None


def read_safetensors(data):
    tensors = safetensors.torch.load(data)
    return {name: (tuple(t.shape), t.to(torch.float32).numpy()) for name, t in tensors.items()}


def read_onnx(data):
    model = onnx.load_from_string(data)
    out = {}
    for t in model.graph.initializer:
        if t.data_type != onnx.TensorProto.FLOAT or not isinstance(t.name, str):
            continue  # a name that is not UTF-8 (protobuf's Python reader gives bytes; Loupe refuses)
        if t.raw_data or t.float_data:
            try:
                out[t.name] = (tuple(t.dims), numpy_helper.to_array(t).astype("<f4"))
            except Exception:
                out[t.name] = (tuple(t.dims), np.array([np.nan], dtype="<f4"))  # unreadable: Loupe must not use it
        else:
            out[t.name] = (tuple(t.dims), np.zeros([int(np.prod(t.dims))], dtype="<f4"))
    return out


def regions(name, data):
    """Byte ranges worth aiming at: the pickle and the storages of a zip checkpoint, the header and
    data of a safetensors file; the whole file otherwise."""
    if name.endswith(".safetensors"):
        n = 8 + int.from_bytes(data[:8], "little")
        return [(8, n), (n, len(data))]
    if zipfile.is_zipfile(io.BytesIO(data)):
        out = []
        for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
            local = info.header_offset
            start = local + 30 + int.from_bytes(data[local + 26:local + 28], "little") + int.from_bytes(data[local + 28:local + 30], "little")
            if info.file_size:
                out.append((start, start + info.file_size))
        return out
    return [(0, len(data))]


SWAPS = [
    (b"F32", [b"F16", b"BF16", b"F64", b"I32", b"U32", b"I64", b"I16", b"U8", b"I8", b"BOOL", b"F8_E4M3"]),
    (b"FloatStorage", [b"HalfStorage", b"DoubleStorage", b"IntStorage", b"LongStorage", b"ByteStorage",
                       b"CharStorage", b"BFloat16Storage", b"BoolStorage", b"ShortStorage"]),
    (b"LongStorage", [b"FloatStorage", b"IntStorage", b"DoubleStorage"]),
    (b"HalfStorage", [b"FloatStorage", b"BFloat16Storage", b"ShortStorage"]),
]


def mutate(rng, data, spans):
    b = bytearray(data)
    kind = rng.randrange(7)
    if kind == 0:
        lo, hi = rng.choice(spans)
        at = rng.randrange(lo, hi)
        for _ in range(rng.randint(1, 3)):
            i = min(at + rng.randrange(16), len(b) - 1)
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips near %d" % at
    if kind == 1:
        digits = [i for i, c in enumerate(b) if 0x30 <= c <= 0x39]
        i = rng.choice(digits)
        b[i] = 0x30 + rng.randrange(10)
        return bytes(b), "digit at %d" % i
    if kind == 2:
        letters = [i for i, c in enumerate(b) if 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A]
        i = rng.choice(letters)
        b[i] = rng.choice(b"abcdefghijklmnopqrstuvwxyzFIU_.")
        return bytes(b), "letter at %d" % i
    if kind == 3:
        ops = [i for i, c in enumerate(b[:-1]) if c == ord("K")]  # pickle BININT1
        if ops:
            i = rng.choice(ops)
            b[i + 1] = rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 9, 12, 16, 200, 255])
            return bytes(b), "BININT1 operand at %d" % (i + 1)
    if kind == 4:
        for old, news in SWAPS:
            at = data.find(old)
            if at >= 0 and rng.random() < 0.8:
                hits = [j for j in range(len(data)) if data.startswith(old, j)]
                at = rng.choice(hits)
                new = rng.choice(news)
                return bytes(data[:at] + new + data[at + len(old):]), "%s -> %s at %d" % (old.decode(), new.decode(), at)
    if kind == 5:
        at = rng.randrange(len(b))
        n = min(rng.randint(1, 8), len(b) - at)
        b[at:at + n] = bytes(rng.randrange(256) for _ in range(n))
        return bytes(b), "%d random bytes at %d" % (n, at)
    n = rng.randrange(len(b))
    return bytes(b[:n]), "truncated to %d" % n


def splice(original, mutated):
    p = 0
    while p < min(len(original), len(mutated)) and original[p] == mutated[p]:
        p += 1
    s = 0
    while s < min(len(original), len(mutated)) - p and original[-1 - s] == mutated[-1 - s]:
        s += 1
    return {"at": p, "remove": len(original) - p - s, "insert": mutated[p:len(mutated) - s].hex()}


def torch_reads_garbage(data):
    """Whether a zip entry is marked as a directory (MS-DOS attribute 0x10 in the central
    directory): torch's zip reader then returns that entry's tensor from uninitialized memory, so
    its result is no reference (Loupe reads the entry's bytes)."""
    try:
        return any(info.external_attr & 0x10 for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    except Exception:
        return False


def outcome(read, data):
    try:
        result = read(data)
    except Exception:
        return None
    return result


def seed_entries(name, read, seed):
    data = open(os.path.join(FIXTURES, name), "rb").read()
    base = table(read(data))
    spans = regions(name, data)
    rng = random.Random(seed)
    loaded, refused, seen = [], [], set()
    for _ in range(CANDIDATES):
        if len(loaded) >= LOADED and len(refused) >= REFUSED:
            break
        mutated, what = mutate(rng, data, spans)
        if mutated == data or mutated in seen or (name.endswith(".pth") and torch_reads_garbage(mutated)):
            continue
        seen.add(mutated)
        result = outcome(read, mutated)
        entry = dict(what=what, **splice(data, mutated))
        if result is None:
            if len(refused) < REFUSED:
                entry["reference"] = "refused"
                refused.append(entry)
            continue
        got = table(result)
        changed = {k: v for k, v in got.items() if base.get(k) != v}
        changed.update({k: None for k in base if k not in got})
        if changed and len(loaded) < LOADED:
            entry["reference"] = {"changed": changed}
            loaded.append(entry)
    print("%s: %d loaded differently, %d refused" % (name, len(loaded), len(refused)))
    return {"file": name, "seed": table(read(data)), "mutations": loaded + refused}


def main():
    seeds = [
        ("tiny_zip.pth", read_checkpoint, 1),
        ("tiny_legacy.pth", read_checkpoint, 2),
        ("tiny_expected.safetensors", read_safetensors, 3),
        ("onnx/ops.onnx", read_onnx, 4),
        ("onnx/resnet18.onnx", read_onnx, 5),
    ]
    files = [seed_entries(name, read, seed) for name, read, seed in seeds]
    versions = {"torch": torch.__version__, "safetensors": safetensors.__version__, "onnx": onnx.__version__}
    with open(os.path.join(FIXTURES, "fuzz_reference.json"), "w") as f:
        json.dump({"readers": versions, "files": files}, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
