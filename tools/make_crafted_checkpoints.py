#!/usr/bin/env python3
"""Crafted checkpoints for the loader's refusal tests, written by hand (torch.save cannot make
them). Run by hand: .venv-python/bin/python tools/make_crafted_checkpoints.py
Tests never run Python. Writes to Tests/ModelsTests/Fixtures/:
  crafted_stride.pth   a zip-format checkpoint whose tensor has size (2, 2, 3, 1) and stride
                       (2^62, 2^62, 3, 1) over a 6-float storage: its last element's offset
                       overflows 64 bits (must be refused with one line, never trap)
"""
import collections
import io
import os
import pickle
import zipfile

import torch
import torch._utils

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
OUT = os.path.join(ROOT, "Tests", "ModelsTests", "Fixtures")


class Storage:
    """Stands for storage "0" (6 float32 values) as torch's zip format refers to it."""


class Tensor:
    def __init__(self, size, stride):
        self.size, self.stride = size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, (Storage(), 0, self.size, self.stride, False, collections.OrderedDict()))


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return ("storage", torch.FloatStorage, "0", "cpu", 6) if isinstance(obj, Storage) else None


def write(name, size, stride):
    data = io.BytesIO()
    Pickler(data, protocol=2).dump(collections.OrderedDict([("w", Tensor(size, stride))]))
    with zipfile.ZipFile(os.path.join(OUT, name), "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data.getvalue())
        z.writestr("archive/data/0", bytes(4 * 6))
        z.writestr("archive/version", "3\n")


if __name__ == "__main__":
    write("crafted_stride.pth", (2, 2, 3, 1), (2 ** 62, 2 ** 62, 3, 1))
