#!/usr/bin/env python3
"""PyTorch CPU reference for `loupe bench --filter "conv 3x3 64->64 56x56"`: the same conv, forward and
both backward passes, batch 1 and 8, median of 5 after a warm-up. Run by hand: python3 tools/torch_conv_bench.py"""
import time, torch
torch.manual_seed(0)
for n in (1, 8):
    x = torch.randn(n, 64, 56, 56); w = torch.randn(64, 64, 3, 3)
    y = torch.nn.functional.conv2d(x, w, padding=1); gy = torch.randn_like(y)
    flops = 2 * y.numel() * 64 * 9
    def t(f):
        f(); ts = []
        for _ in range(5):
            s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
        ts.sort(); return ts[2]
    fwd = t(lambda: torch.nn.functional.conv2d(x, w, padding=1))
    bi = t(lambda: torch.nn.grad.conv2d_input(x.shape, w, gy, padding=1))
    bw = t(lambda: torch.nn.grad.conv2d_weight(x, w.shape, gy, padding=1))
    for name, s in [("forward", fwd), ("backward input", bi), ("backward weight", bw)]:
        print(f"pytorch {torch.__version__} threads={torch.get_num_threads()} batch {n} {name}: {s*1e3:.2f} ms {flops/s/1e9:.1f} GFLOP/s")
