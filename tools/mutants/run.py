#!/usr/bin/env python3
"""Deliberately broken kernels and rules, each with the tests that must catch it: `make mutants`.

A kernel mutant replaces one piece of one kernel file (a copy of Kernels/ in a temporary folder;
the tree is never touched), runs the named tests against it through LOUPE_KERNEL_DIR (the backend
reads its kernel sources from there instead of the embedded ones), and expects them to fail. A
source mutant (a path under Sources/) edits that Swift file in place, rebuilds the tests, runs
them and puts the file back (also on SIGINT and SIGTERM); the tests are rebuilt from the
restored tree at the end. A mutant the tests do not catch ("survived") fails the run: the tests
would not see that bug.

Needs the debug build with tests (`make swift-test` or `swift build --build-tests`). Usage:
  tools/mutants/run.py            every mutant
  tools/mutants/run.py NAME...    the named ones
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))

# name: (kernel file or Sources/ path, text to replace, replacement, swift test filter, what it breaks)
MUTANTS = {
    "relu-drops-nan": (
        "activation.cl",
        "return kind == 0 ? (x < 0.0f ? 0.0f : x) : (x < 0.0f ? 0.0f : x > 6.0f ? 6.0f : x);\n}\ninline float act1",
        "return kind == 0 ? fmax(x, 0.0f) : clamp(x, 0.0f, 6.0f);\n}\ninline float act1",
        "NaNPropagationTests",
        "ReLU and ReLU6 by fmax and clamp, which turn a NaN into 0",
    ),
    "fused-relu-drops-nan": (
        "conv_geometry.cl",
        "#define FUSED_ACT(v) ((v) < 0.0f ? 0.0f : (v))",
        "#define FUSED_ACT(v) fmax((v), 0.0f)",
        "NaNPropagationTests",
        "the ReLU fused into convolutions' stores by fmax",
    ),
    "max-skips-nan": (
        "reduce.cl",
        "if (at < 0 || ((v > m || isnan(v)) && !isnan(m))) { m = v; at = j; }",
        "if (at < 0 || v > m) { m = v; at = j; }",
        "NaNPropagationTests",
        "max along an axis that never picks a NaN",
    ),
    "packed-store-first-vector-only": (
        "gemm_packed.cl",
        "            #pragma unroll\n            for (int v = 0; v < NV; ++v) {\n                const int n = n0 + VW * v;\n"
        "                const long at = (row - C) + VW * v;\n                if (n + VW <= N) {",
        "            #pragma unroll\n            for (int v = 0; v < 1; ++v) {\n                const int n = n0 + VW * v;\n"
        "                const long at = (row - C) + VW * v;\n                if (n + VW <= N) {",
        "everyRegisterBlockCandidateMatchesReference",
        "the packed GEMM's store of every vector but the first: only register blocks with NV > 1 "
        "(4x8x3, 8x16x2) run it, so only the candidate sweeps can see it",
    ),
    "winograd-bt-last-row": (
        "winograd.cl",
        "        out[5] = 4.0f * x[1] - 5.0f * x[3] + x[5]; \\\n",
        "        out[5] = 4.0f * x[1] - 4.0f * x[3] + x[5]; \\\n",
        "winogradMatchesReference",
        "F(4x4)'s input transform's last row with one coefficient changed",
    ),
    "winograd-at-coefficient": (
        "winograd.cl",
        "        out[3] = m1 + 8.0f * m2 + x[5]; \\\n",
        "        out[3] = m1 + 8.0f * m2; \\\n",
        "winogradMatchesReference",
        "F(4x4)'s output transform without its last term",
    ),
    "winograd-planes-cut-short": (
        "winograd.cl",
        "    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem);\n    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {\n        const int z = zc / C, c = zc - z * C;\n        __global const float* src = xq",
        "    const int zcEnd = min(planes, (int)(get_global_id(0) + 1) * planesPerItem - 1);\n    for (int zc = get_global_id(0) * planesPerItem; zc < zcEnd; ++zc) {\n        const int z = zc / C, c = zc - z * C;\n        __global const float* src = xq",
        "winogradMatchesReference",
        "the input transform's loop over a work-item's planes stopping one plane early",
    ),
    "winograd-pack-flip-misses-a-tap": (
        "winograd.cl",
        "for (int t = 0; t < 4; ++t) { const float v = g[t]; g[t] = g[8 - t]; g[8 - t] = v; }",
        "for (int t = 0; t < 3; ++t) { const float v = g[t]; g[t] = g[8 - t]; g[8 - t] = v; }",
        "ConvTests",
        "the backward's transformed weights leave one pair of taps unreversed",
    ),
    "merged-phases-columns-swapped": (
        "gemm_packed.cl",
        "        const int rx = ix % SWs;\n        dst[ix] = src[rx * phaseStride + ix / SWs];",
        "        const int rx = (ix + 1) % SWs;\n        dst[ix] = src[rx * phaseStride + ix / SWs];",
        "ConvTests",
        "a strided backward's stacked phases merged back with the phases' columns swapped",
    ),
    "mean-backward-off-by-one": (
        "Sources/CPUReference/CPUBackend+Reduction.swift",
        "case .mean: return g / Float(cols)",
        "case .mean: return g / Float(cols + 1)",
        "ReductionTests",
        "the CPU reference's mean backward divided by one more than the row: a gradient of r/61 "
        "instead of r/60, below the old finite-difference tolerance of 0.02",
    ),
    "adaptive-pool-backward-doubled": (
        "Sources/CPUReference/CPUBackend+Pooling.swift",
        "let g = gv[(plane * oh + oy) * ow + ox] / Float(ys.count * xs.count)",
        "let g = 2 * gv[(plane * oh + oy) * ow + ox] / Float(ys.count * xs.count)",
        "PoolTests",
        "the CPU reference's adaptive average pooling backward doubled (r/49 -> 2r/49 for 7x7 -> 1x1)",
    ),
    "adaptive-pool-backward-planes-window-short": (
        "pool.cl",
        "for (int ix = x0; ix < x1; ++ix) plane[iy * W + ix] += v;",
        "for (int ix = x0; ix < x1 - 1; ++ix) plane[iy * W + ix] += v;",
        "PoolTests",
        "the plane-wise adaptive average pooling backward leaves each window's last column out",
    ),
    "depthwise-rows-part-vector-overrun": (
        "conv2d_depthwise.cl",
        "const bool whole = left >= 8 || (oy + j + 1 < oyEnd && 8 - left <= OW);",
        "const bool whole = left >= 8 || 8 - left <= OW;",
        "ConvTests",
        "depthwise_rows stores a row's last part vector whole even on a work-item's last row: the "
        "overrun lands in rows another work-item stores",
    ),
    "depthwise-ring-right-padding-unzeroed": (
        "conv2d_depthwise.cl",
        "for (int i = PW + W; i < reach; ++i) ring[s][i] = 0.0f;",
        "for (int i = PW + W; i < PW + W; ++i) ring[s][i] = 0.0f;",
        "ConvTests",
        "depthwise_rows' ring rows keep whatever the stack held right of the input row: the right "
        "padding's taps read garbage",
    ),
    "transposed-product-row-bias-as-column": (
        "gemm_packed.cl",
        ": m + VW <= M ? VLOADP(0, bias + g * M + m) : gemm_packed_tail(bias + g * M + m, max(M - m, 0));",
        ": (VFLOATP)(bias[g * M + m]);",
        "ConvTests",
        "a transposed product adds one channel's bias to all the channels of a vector",
    ),
    "depthwise-planes-skip-last": (
        "conv2d_depthwise.cl",
        "ncEnd = min(planes, ncFirst + planesPerItem);",
        "ncEnd = min(planes, ncFirst + planesPerItem) - 1;",
        "ConvTests",
        "depthwise_rows leaves each work-item's last plane out when it takes several whole planes",
    ),
    "depthwise-planes-ring-not-refilled": (
        "conv2d_depthwise.cl",
        "        int next = oyFirst * SH - PH;\n        for (int oy = oyFirst; oy < oyEnd; oy += DWR) {",
        "        int next = oyFirst * SH - PH + (nc > ncFirst) * DW_RING;\n        for (int oy = oyFirst; oy < oyEnd; oy += DWR) {",
        "ConvTests",
        "depthwise_rows reuses the previous plane's first ring rows for each further plane of a work-item",
    ),
    "pad-planes-stride2-odd-columns": (
        "gemm_packed.cl",
        "vstore8(vload16(0, src + 2 * qx).even, 0, dst + qx);",
        "vstore8(vload16(0, src + 2 * qx).odd, 0, dst + qx);",
        "ConvTests",
        "pad_planes' stride-2 vector copy takes the other phase's columns",
    ),
    "expand-depthwise-ring-padding-not-zeroed": (
        "conv2d_depthwise.cl",
        "vstore8(select((float8)(0.0f), FUSED_ACT(acc[j]), inside), 0, &ring[j][slot][PW + i]);",
        "vstore8(FUSED_ACT(acc[j]), 0, &ring[j][slot][PW + i]);",
        "expandDepthwiseMatchesReference|classifiesChelseaAsPyTorchDoes",
        "expand_depthwise stores act(bias) into the ring's right padding past a row's end",
    ),
    "expand-depthwise-ring-slot-of-next-row": (
        "conv2d_depthwise.cl",
        "for (int r = 0; r < DW_RING; ++r) rows[r] = ring[j][((iy0 + r) % DW_RING + DW_RING) % DW_RING];",
        "for (int r = 0; r < DW_RING; ++r) rows[r] = ring[j][((iy0 + r + 1) % DW_RING + DW_RING) % DW_RING];",
        "expandDepthwiseMatchesReference|classifiesChelseaAsPyTorchDoes",
        "expand_depthwise's windows read the ring one row down",
    ),
    "blocked-store-channel-block-off-by-one": (
        "gemm_packed.cl",
        "VSTOREP(FUSED_ACT(acc[t][v] + shift), 0, c0 + ((long)(m / VW) * N + p0 + t) * VW);",
        "VSTOREP(FUSED_ACT(acc[t][v] + shift), 0, c0 + ((long)(m / VW) * N + p0 + t) * VW + (m >= VW ? 1 : 0));",
        "invertedResidualMatchesReference|classifiesChelseaAsPyTorchDoes",
        "the channel-blocked store of an inverted residual's expand product shifts every block but the "
        "first by one float",
    ),
    "blocked-read-next-pixel": (
        "gemm_packed.cl",
        "#define GP_BT(t) b[(t) * VW]",
        "#define GP_BT(t) b[((t) + 1) * VW]",
        "invertedResidualMatchesReference|classifiesChelseaAsPyTorchDoes",
        "the projection reads each column's channel-blocked B one pixel on",
    ),
    "depthwise-after-first-vector-only": (
        "gemm_packed.cl",
        "    #pragma unroll\n    for (int v = 0; v < NV; ++v) {\n        const int m = m0 + VW * v;\n        if (m >= M) break;\n        depthwise_blocked_plane(",
        "    #pragma unroll\n    for (int v = 0; v < 1; ++v) {\n        const int m = m0 + VW * v;\n        if (m >= M) break;\n        depthwise_blocked_plane(",
        "invertedResidualMatchesReference",
        "the expand product's work-items run the depthwise layer over their first block of channels "
        "only: register blocks of two or three vectors (8x16x2, 4x8x3) leave the others unfiltered",
    ),
    "depthwise-blocked-skips-bottom-row": (
        "depthwise_blocked.cl",
        "                const int iy = oy * SH - PH + ky * DH;\n                if (iy < 0 || iy >= H) continue;\n"
        "                #pragma unroll\n                for (int kx = 0; kx < KW; ++kx) {\n                    const int ix = ox * SW - PW + kx * DW;\n"
        "                    if (ix < 0 || ix >= W) continue;\n                    acc = fma(taps",
        "                const int iy = oy * SH - PH + ky * DH;\n                if (iy < 0 || iy >= H - 1) continue;\n"
        "                #pragma unroll\n                for (int kx = 0; kx < KW; ++kx) {\n                    const int ix = ox * SW - PW + kx * DW;\n"
        "                    if (ix < 0 || ix >= W) continue;\n                    acc = fma(taps",
        "invertedResidualMatchesReference|classifiesChelseaAsPyTorchDoes",
        "depthwise_blocked_plane leaves the input's last row out of every window",
    ),
    "maxpool-index-ignores-earlier-row": (
        "pool.cl",
        "if (rb < 0 || (vn && !bn) || v > b || ((v == b || (vn && bn)) && r < rb)) bj = j;",
        "if (rb < 0 || (vn && !bn) || v > b) bj = j;",
        "PoolTests",
        "maxpool2d_rows' argmax keeps the earlier column on a tie even when a later column's maximum "
        "sits in an earlier row: not the first maximum in row-major order",
    ),
    "maxpool-index-vector-nan-loses": (
        "pool.cl",
        "const int8 take = (r >= 0) & ((*rb < 0) | (vn & ~bn) | isgreater(v, *b)",
        "const int8 take = (r >= 0) & ((*rb < 0) | isgreater(v, *b)",
        "PoolTests",
        "maxpool2d_rows' eight-at-a-time argmax lets a number beat a NaN seen in a later column",
    ),
    "gemm-implicit-run-store-skips-next-row": (
        "gemm_packed.cl",
        "for (int j = 0; j < VW && oy < OHi; ++oy, ox = 0) {",
        "for (int j = 0; j < VW && oy < OHi && j == 0; ++oy, ox = 0) {",
        "ConvTests",
        "the implicit product's part-run store drops the lanes of a vector that wrap into the next "
        "grid row",
    ),
    "resumed-pass-restarts-from-input": (
        "Sources/Models/Layers.swift",
        "if let output = try resumption.value(modules[j - 1].name) { return (g.constant(output), j) }",
        "if try resumption.value(modules[j - 1].name) != nil { return (x, j) }",
        "aPassResumedAtAnyLayerGivesTheWholePassOutput",
        "a resumed pass (AblationCAM's ablated passes) going on from the container's input instead "
        "of the skipped modules' output",
    ),
    "zip-storage-size-unchecked": (
        "Sources/WeightFiles/TorchCheckpoint.swift",
        "guard !overflow, expected == data.count else {",
        "guard !overflow || expected == data.count else {",
        "ParserCrossCheckTests",
        "a zip checkpoint's storage read whatever its pickle's element count says (torch.load refuses)",
    ),
    "reduce-items-skip-tail": (
        "reduce.cl",
        "    for (; j < cols; ++j) s += OP == 2 ? xr[j] * xr[j] : xr[j];\n",
        "",
        "reductionsDeviceMatchesReference|adaptiveAverage",
        "the row-per-work-item reduction (CPU devices) dropping the columns past the last whole "
        "eight: sums, Grad-CAM's channel means and global average pools",
    ),
    "deeplift-rescale-plain-at-partner-input": (
        "activation.cl",
        "vstore4(select(act_grad_float4(g1, x1, kind, 0), g1 * r, rescales), 0, gx + i);",
        "vstore4(select(act_grad_float4(g1, x0, kind, 0), g1 * r, rescales), 0, gx + i);",
        "deepLiftRescaleDeviceMatchesReference",
        "DeepLIFT's rescale kernel taking the activation's gradient where the pair is too close at the "
        "reference's input instead of the input's own",
    ),
    "deeplift-inputs-rows-from-references": (
        "Sources/Graph/Graph.swift",
        "        leadingCopies[key] = (t.storage, parts[0])\n        return Tensor(shape: shape, storage: parts[0].storage)",
        "        leadingCopies[key] = (t.storage, parts[parts.count - 1])\n        return Tensor(shape: shape, storage: parts[parts.count - 1].storage)",
        "DeepLiftTests|backwardOverTheFirstRows",
        "DeepLIFT's backward over the inputs' half reading the forward values of the references' half "
        "(a max pool's routing, without the max-pool rule)",
    ),
}

SWIFT_ENV = dict(os.environ, LOUPE_OPTIMIZE_DEBUG="1")


def build():
    result = subprocess.run(["swift", "build", "--build-tests"], cwd=ROOT, env=SWIFT_ENV, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-3000:] + result.stderr[-3000:])
    return result.returncode == 0


def run_source(name):
    path, old, new, tests, what = MUTANTS[name]
    full = os.path.join(ROOT, path)
    text = open(full).read()
    if text.count(old) != 1:
        print(f"{name}: the text to replace is not in {path} exactly once (the source changed; update the mutant)")
        return False

    def restore(*_):
        open(full, "w").write(text)
        if _:
            sys.exit(f"{name}: interrupted; {path} restored (rebuild the tests)")

    handlers = {sig: signal.signal(sig, restore) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        open(full, "w").write(text.replace(old, new))
        if not build():
            print(f"{name}: the mutant does not build (update it)")
            return False
        result = subprocess.run(["swift", "test", "--skip-build", "--filter", tests], cwd=ROOT, env=test_env(None),
                                capture_output=True, text=True)
    finally:
        restore()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return report(name, tests, what, result)


def test_env(kernels):
    env = dict(os.environ, LOUPE_TUNING_CACHE="/nonexistent/loupe-tests/tuning.json")
    if kernels:
        env["LOUPE_KERNEL_DIR"] = kernels
    for key in ("LOUPE_PACKED_TILING", "LOUPE_CONV_TILING", "LOUPE_KERNEL_FAMILY"):
        env.pop(key, None)
    return env


def report(name, tests, what, result):
    issues = [line for line in result.stdout.splitlines() if "recorded an issue" in line]
    killed = result.returncode != 0
    print(f"{name}: {'killed' if killed else 'SURVIVED'} by {tests} ({len(issues)} issues): {what}")
    return killed


def run(name):
    if MUTANTS[name][0].startswith("Sources/"):
        return run_source(name)
    kernel, old, new, tests, what = MUTANTS[name]
    with tempfile.TemporaryDirectory(prefix="loupe-mutant-") as folder:
        for f in os.listdir(os.path.join(ROOT, "Kernels")):
            shutil.copy(os.path.join(ROOT, "Kernels", f), folder)
        path = os.path.join(folder, kernel)
        text = open(path).read()
        if text.count(old) != 1:
            print(f"{name}: the text to replace is not in {kernel} exactly once (the kernel changed; update the mutant)")
            return False
        open(path, "w").write(text.replace(old, new))
        result = subprocess.run(["swift", "test", "--skip-build", "--filter", tests], cwd=ROOT, env=test_env(folder),
                                capture_output=True, text=True)
        return report(name, tests, what, result)


if __name__ == "__main__":
    names = sys.argv[1:] or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        sys.exit(f"unknown mutant(s): {', '.join(unknown)}; known: {', '.join(MUTANTS)}")
    survived = [n for n in names if not run(n)]
    if any(MUTANTS[n][0].startswith("Sources/") for n in names) and not build():
        sys.exit("the restored tree does not build")
    if survived:
        sys.exit(f"{len(survived)} of {len(names)} mutants survived: {', '.join(survived)}")
    print(f"all {len(names)} mutants killed")
