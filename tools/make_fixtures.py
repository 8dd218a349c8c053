#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that the Swift tests compare both backends with.

Run by hand (tests never run Python):  pip install torch && python3 tools/make_fixtures.py
Output: Tests/BackendTests/Fixtures/torch_ops.safetensors. Each case stores its inputs,
outputs and gradients as float32 tensors named "<case>.<role>"; the case's settings are a JSON
string in the file's metadata under the case name. Gradients are of L = sum(y * gy) for the
stored gy, so the input gradients are exactly what each op's backward pass returns for gy.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import torch
import torch.nn.functional as F

from safetensors_io import write_safetensors

torch.manual_seed(0)
tensors = {}
metadata = {}


def add(case, settings, **named):
    metadata[case] = json.dumps(settings)
    for role, t in named.items():
        tensors[f"{case}.{role}"] = t.detach().to(torch.float32).contiguous()


def leaf(*shape, lo=-1.0, hi=1.0):
    return (torch.rand(*shape) * (hi - lo) + lo).requires_grad_(True)


def grads(y, inputs):
    gy = torch.randn_like(y)
    gs = torch.autograd.grad(y, inputs, gy, allow_unused=True)
    return gy, gs


# conv2d: stride, padding, dilation, groups, depthwise, batch > 1
conv_cases = [
    dict(n=1, cin=3, cout=8, h=9, w=9, k=3, stride=1, pad=1, dil=1, groups=1),
    dict(n=3, cin=6, cout=4, h=7, w=8, k=3, stride=2, pad=1, dil=1, groups=2),
    dict(n=2, cin=5, cout=5, h=8, w=7, k=3, stride=1, pad=2, dil=2, groups=5),
    dict(n=1, cin=4, cout=6, h=11, w=11, k=7, stride=2, pad=3, dil=1, groups=1),
]
for i, c in enumerate(conv_cases):
    x = leaf(c["n"], c["cin"], c["h"], c["w"])
    w = leaf(c["cout"], c["cin"] // c["groups"], c["k"], c["k"])
    b = leaf(c["cout"])
    y = F.conv2d(x, w, b, stride=c["stride"], padding=c["pad"], dilation=c["dil"], groups=c["groups"])
    gy, (gx, gw, gb) = grads(y, (x, w, b))
    add(f"conv{i}", c, x=x, w=w, b=b, y=y, gy=gy, gx=gx, gw=gw, gb=gb)

# relu and relu6
for name, fn in [("relu", F.relu), ("relu6", F.relu6)]:
    x = leaf(2, 3, 5, 5, lo=-8, hi=8)
    y = fn(x)
    gy, (gx,) = grads(y, (x,))
    add(name, {}, x=x, y=y, gy=gy, gx=gx)

# pooling
pool_cases = [
    dict(k=2, stride=2, pad=0, ceil=False, include_pad=True, shape=[1, 3, 8, 8]),
    dict(k=3, stride=2, pad=1, ceil=False, include_pad=True, shape=[2, 4, 7, 7]),
    dict(k=3, stride=2, pad=0, ceil=True, include_pad=True, shape=[1, 3, 10, 9]),
    dict(k=3, stride=2, pad=1, ceil=True, include_pad=False, shape=[1, 2, 9, 8]),
]
for i, c in enumerate(pool_cases):
    x = leaf(*c["shape"])
    y = F.max_pool2d(x, c["k"], c["stride"], c["pad"], ceil_mode=c["ceil"])
    gy, (gx,) = grads(y, (x,))
    add(f"maxpool{i}", c, x=x, y=y, gy=gy, gx=gx)
    y = F.avg_pool2d(x, c["k"], c["stride"], c["pad"], ceil_mode=c["ceil"], count_include_pad=c["include_pad"])
    gy, (gx,) = grads(y, (x,))
    add(f"avgpool{i}", c, x=x, y=y, gy=gy, gx=gx)
for i, (shape, out) in enumerate([([2, 3, 7, 7], [1, 1]), ([1, 2, 9, 10], [4, 3])]):
    x = leaf(*shape)
    y = F.adaptive_avg_pool2d(x, out)
    gy, (gx,) = grads(y, (x,))
    add(f"adaptive{i}", dict(out=out), x=x, y=y, gy=gy, gx=gx)

# linear
x, w, b = leaf(3, 20), leaf(11, 20), leaf(11)
y = F.linear(x, w, b)
gy, (gx, gw, gb) = grads(y, (x, w, b))
add("linear", {}, x=x, w=w, b=b, y=y, gy=gy, gx=gx, gw=gw, gb=gb)

# batchnorm2d, inference mode
x = leaf(2, 5, 4, 3)
gamma, beta, mean, var = torch.rand(5) + 0.5, torch.randn(5), torch.randn(5), torch.rand(5) + 0.5
y = F.batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-5)
gy, (gx,) = grads(y, (x,))
add("batchnorm", dict(eps=1e-5), x=x, gamma=gamma, beta=beta, mean=mean, var=var, y=y, gy=gy, gx=gx)

# softmax and log-softmax over the last dimension
for name, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax)]:
    x = leaf(3, 10, lo=-4, hi=4)
    y = fn(x, dim=-1)
    gy, (gx,) = grads(y, (x,))
    add(name, {}, x=x, y=y, gy=gy, gx=gx)

# elementwise and channels
a, b2 = leaf(2, 3, 4, 5), leaf(2, 3, 4, 5)
y = a * b2
gy, (ga, gb2) = grads(y, (a, b2))
add("mul", {}, a=a, b=b2, y=y, gy=gy, ga=ga, gb=gb2)
for name, fn in [("add", lambda a, b: a + b), ("axpy", lambda a, b: 0.75 * a + b)]:
    a, b2 = leaf(3, 5), leaf(3, 5)
    y = fn(a, b2)
    gy, (ga, gb2) = grads(y, (a, b2))
    add(name, dict(alpha=0.75), a=a, b=b2, y=y, gy=gy, ga=ga, gb=gb2)
a = leaf(7)
y = -2.5 * a
gy, (ga,) = grads(y, (a,))
add("scale", dict(s=-2.5), a=a, y=y, gy=gy, ga=ga)
parts = [leaf(2, c, 3, 4) for c in (1, 3, 2)]
y = torch.cat(parts, dim=1)
gy, gs = grads(y, parts)
add("concat", dict(sizes=[1, 3, 2]), p0=parts[0], p1=parts[1], p2=parts[2], y=y, gy=gy, g0=gs[0], g1=gs[1], g2=gs[2])

# bilinear resize (half-pixel centres) up and down, and the channel maximum
for i, (shape, size) in enumerate([([2, 3, 5, 7], (13, 11)), ([1, 1, 7, 7], (32, 32)), ([1, 2, 9, 8], (3, 2))]):
    x = torch.rand(*shape)
    add(f"resize{i}", dict(size=list(size)), x=x, y=F.interpolate(x, size=size, mode="bilinear", align_corners=False),
        corners=F.interpolate(x, size=size, mode="bilinear", align_corners=True),
        nearest=F.interpolate(x, size=size, mode="nearest"))
x = torch.randn(2, 5, 4, 3)
add("channel_max", {}, x=x, y=x.amax(dim=1, keepdim=True))

# reductions over dims 1.. of [2, 3, 4, 5]
x = leaf(2, 3, 4, 5)
for name, fn in [("sum", lambda t: t.sum(dim=(1, 2, 3))), ("mean", lambda t: t.mean(dim=(1, 2, 3))),
                 ("sumsq", lambda t: (t * t).sum(dim=(1, 2, 3)))]:
    y = fn(x)
    gy, (gx,) = grads(y, (x,))
    add(f"reduce_{name}", dict(axis=1), x=x, y=y, gy=gy, gx=gx)
y, idx = x.flatten(1).max(dim=1)
gy, (gx,) = grads(y, (x,))
add("reduce_max", dict(axis=1), x=x, y=y, indices=idx.float(), gy=gy, gx=gx)


out = os.path.join(os.path.dirname(__file__), "..", "Tests", "BackendTests", "Fixtures", "torch_ops.safetensors")
write_safetensors(out, tensors, metadata)
print(f"wrote {len(tensors)} tensors, {os.path.getsize(out)} bytes, torch {torch.__version__}: {os.path.normpath(out)}")
