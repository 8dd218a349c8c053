#!/usr/bin/env python3
"""Crafted model files for the loaders' refusal tests, written by hand (torch.save and the
exporters cannot make them). Run by hand: .venv-python/bin/python tools/make_crafted_fixtures.py
(torch and onnx). Tests never run Python. Writes to Tests/ModelsTests/Fixtures/:
  crafted_stride.pth          a zip-format checkpoint whose tensor has size (2, 2, 3, 1) and
                              stride (2^62, 2^62, 3, 1) over a 6-float storage: its last
                              element's offset overflows 64 bits
  onnx/crafted_pads.onnx      a Conv with pads of 2^30: its output's element count overflows
  onnx/crafted_reshape.onnx   a Reshape to [2^40, 2^40]
  crafted_two_pickles.pth     a zip-format checkpoint with two entries named archive/data.pkl
                              (Python's zipfile reads the last, PyTorch's reader the first)
  onnx/crafted_domain.onnx    a Relu in the domain "com.example": not the standard op
  onnx/crafted_kernel.onnx    a Conv whose kernel_shape [5, 5] contradicts its 3x3 weight
  onnx/crafted_names.onnx     a Conv named with an ESC sequence, a newline and a forged
                              "Error:" line, whose op is unsupported: its name is printed
Each must be refused with one line, never trap.
"""
import collections
import io
import os
import pickle
import warnings
import zipfile

import numpy as np
import onnx
import torch
import torch._utils
from onnx import TensorProto, helper, numpy_helper

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


def write(name, size, stride, second_pickle=False):
    data = io.BytesIO()
    Pickler(data, protocol=2).dump(collections.OrderedDict([("w", Tensor(size, stride))]))
    entries = [("archive/data.pkl", data.getvalue()), ("archive/data/0", bytes(4 * 6)), ("archive/version", b"3\n")]
    if second_pickle:
        other = io.BytesIO()
        Pickler(other, protocol=2).dump(collections.OrderedDict([("v", Tensor((3,), (1,)))]))
        entries.append(("archive/data.pkl", other.getvalue()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it is asked to write
        with zipfile.ZipFile(os.path.join(OUT, name), "w", zipfile.ZIP_STORED) as z:
            for entry, content in entries:
                z.writestr(zipfile.ZipInfo(entry, date_time=(1980, 1, 1, 0, 0, 0)), content)  # the same bytes every run


def write_onnx(name, nodes, initializers):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, name, [x], [y], initializer=initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), os.path.join(OUT, "onnx", name))


if __name__ == "__main__":
    write("crafted_stride.pth", (2, 2, 3, 1), (2 ** 62, 2 ** 62, 3, 1))
    weight = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w")
    write_onnx("crafted_pads.onnx", [helper.make_node("Conv", ["input", "w"], ["output"], pads=[2 ** 30] * 4, kernel_shape=[3, 3])],
               [weight])
    shape = numpy_helper.from_array(np.array([2 ** 40, 2 ** 40], np.int64), "shape")
    write_onnx("crafted_reshape.onnx", [helper.make_node("Reshape", ["input", "shape"], ["output"])], [shape])
    write("crafted_two_pickles.pth", (2, 3), (3, 1), second_pickle=True)
    write_onnx("crafted_domain.onnx", [helper.make_node("Relu", ["input"], ["output"], domain="com.example")], [])
    write_onnx("crafted_kernel.onnx", [helper.make_node("Conv", ["input", "w"], ["output"], kernel_shape=[5, 5])], [weight])
    write_onnx("crafted_names.onnx", [helper.make_node("Conv", ["input", "w"], ["output"], name="c\x1b[2J\x1b]0;owned\x07\nError: forged",
                                                       kernel_shape=[3, 3], unknown_attribute=1)], [weight])
