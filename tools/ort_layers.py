#!/usr/bin/env python3
"""ONNX Runtime's time per node of a torchvision network's forward pass, in order: the per-layer
reference for `loupe bench --model NAME --launches` (which lists Loupe's launches the same way).

The network is exported by torch.onnx's TorchScript exporter with seeded random weights (as
tools/bench_compare.py does), run on ONNX Runtime's default CPU provider and threads, with its
profiler on: each node's time is the median over the timed runs. Node names are the exporter's
(NCHWc nodes carry ONNX Runtime's layout suffix).

Run: .venv-python/bin/python tools/ort_layers.py [--model mobilenet_v2] [--batch 1] [--runs 50]
Needs: torch, torchvision, onnx, onnxruntime (make bench-compare installs them).
"""
import argparse
import collections
import io
import json
import os
import sys
import tempfile
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="mobilenet_v2", help="a torchvision classification network")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=50, help="timed runs, after 20 warm-up runs")
    a = ap.parse_args()

    import torch
    if torch.version.cuda is None:  # see python/tests/conftest.py
        import types
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    import onnxruntime

    torch.manual_seed(0)
    model = getattr(torchvision.models, a.model)(weights=None).eval()
    x = torch.randn(a.batch, 3, 224, 224)
    f = io.BytesIO()
    torch.onnx.export(model, x, f, dynamo=False, input_names=["x"])
    with tempfile.TemporaryDirectory() as folder:
        options = onnxruntime.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(folder, "profile")
        session = onnxruntime.InferenceSession(f.getvalue(), options, providers=["CPUExecutionProvider"])
        xn = x.numpy()
        for _ in range(20):
            session.run(None, {"x": xn})
        walls = []
        for _ in range(a.runs):
            start = time.perf_counter()
            session.run(None, {"x": xn})
            walls.append(time.perf_counter() - start)
        with open(session.end_profiling()) as p:
            events = json.load(p)
    times = collections.OrderedDict()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            times.setdefault((e["name"][: -len("_kernel_time")], e["args"].get("op_name", "?")), []).append(e["dur"])
    median = lambda v: sorted(v)[len(v) // 2]
    # The warm-up runs are profiled too: keep each node's last `runs` times.
    rows = [(name, op, median(d[-a.runs:]) / 1e3) for (name, op), d in times.items()]
    print(f"{a.model}, batch {a.batch}: ONNX Runtime {onnxruntime.__version__}, median of {a.runs} runs "
          f"(wall {median(walls) * 1e3:.2f} ms with the profiler on)")
    print(f"{'#':<5}{'ms':>8}  {'op':<20}node")
    for i, (name, op, ms) in enumerate(rows, 1):
        print(f"{i:<5}{ms:8.3f}  {op:<20}{name}")
    print(f"{'':<5}{sum(r[2] for r in rows):8.3f}  total")
    totals = collections.Counter()
    for _, op, ms in rows:
        totals[op] += ms
    print("\nby op: " + ", ".join(f"{op} {ms:.2f} ms" for op, ms in totals.most_common()))


if __name__ == "__main__":
    main()
