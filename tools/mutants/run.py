#!/usr/bin/env python3
"""Deliberately broken kernels, each with the tests that must catch it: `make mutants`.

Each mutant replaces one piece of one kernel file (a copy of Kernels/ in a temporary folder; the
tree is never touched), runs the named tests against it through LOUPE_KERNEL_DIR (the backend
reads its kernel sources from there instead of the embedded ones), and expects them to fail. A
mutant the tests do not catch ("survived") fails the run: the tests would not see that bug.

Needs the debug build with tests (`make swift-test` or `swift build --build-tests`). Usage:
  tools/mutants/run.py            every mutant
  tools/mutants/run.py NAME...    the named ones
"""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))

# name: (kernel file, text to replace, replacement, swift test filter, what it breaks)
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
        "            #pragma unroll\n            for (int v = 0; v < NV; ++v) {\n                const int n = n0 + VW * v;\n                if (n + VW <= N) {",
        "            #pragma unroll\n            for (int v = 0; v < 1; ++v) {\n                const int n = n0 + VW * v;\n                if (n + VW <= N) {",
        "everyRegisterBlockCandidateMatchesReference",
        "the packed GEMM's store of every vector but the first: only register blocks with NV > 1 "
        "(4x8x3, 8x16x2) run it, so only the candidate sweeps can see it",
    ),
}


def run(name):
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
        env = dict(os.environ, LOUPE_KERNEL_DIR=folder, LOUPE_TUNING_CACHE="/nonexistent/loupe-tests/tuning.json")
        for key in ("LOUPE_PACKED_TILING", "LOUPE_CONV_TILING", "LOUPE_KERNEL_FAMILY"):
            env.pop(key, None)
        result = subprocess.run(["swift", "test", "--skip-build", "--filter", tests], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        issues = [line for line in result.stdout.splitlines() if "recorded an issue" in line]
        killed = result.returncode != 0
        print(f"{name}: {'killed' if killed else 'SURVIVED'} by {tests} ({len(issues)} issues): {what}")
        return killed


if __name__ == "__main__":
    names = sys.argv[1:] or list(MUTANTS)
    unknown = [n for n in names if n not in MUTANTS]
    if unknown:
        sys.exit(f"unknown mutant(s): {', '.join(unknown)}; known: {', '.join(MUTANTS)}")
    survived = [n for n in names if not run(n)]
    if survived:
        sys.exit(f"{len(survived)} of {len(names)} mutants survived: {', '.join(survived)}")
    print(f"all {len(names)} mutants killed")
