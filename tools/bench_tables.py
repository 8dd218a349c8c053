#!/usr/bin/env python3
"""The benchmark tables of docs/, regenerated from the recorded runs in bench/results/*.json.

Each recording is what `tools/bench_compare.py --record FILE` or `tools/bench_python.py --record
FILE` wrote: the machine, the versions, the command and the rows (work, Loupe ms, reference ms,
reference). Each docs page marks where a recording's table goes:

    <!-- bench: cpu-compare -->
    ...generated, replaced on every run...
    <!-- /bench -->

Run: make bench-tables        (rewrite the tables)
     python3 tools/bench_tables.py --check   (exit 1 when a page is out of date: CI)
"""
import argparse
import glob
import json
import math
import os
import re
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
MARK = re.compile(r"(<!-- bench: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /bench -->)", re.S)


def add_record_arguments(parser):
    """--record FILE and --machine TEXT, as every benchmark that writes a recording takes them."""
    parser.add_argument("--record", metavar="FILE", help="also write the run as JSON (bench/results/NAME.json: make bench-tables)")
    parser.add_argument("--machine", default="", help="the machine, in words, for --record (default: CPU model and cores)")


def machine_words():
    """The CPU's model name and core count, from /proc/cpuinfo."""
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def record(path, rows, machine, loupe, reference, command):
    """Writes one recording whole (a temporary file renamed into place)."""
    value = {"machine": machine, "loupe": loupe, "reference": reference, "command": command,
             "rows": [{"work": w, "loupe_ms": round(o, 3), "reference_ms": round(r, 3), "reference": n} for w, o, r, n in rows]}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def table(run):
    """The markdown of one recording: what ran where, the rows, their geometric mean."""
    rows = run["rows"]
    if not rows:
        raise ValueError("a recording without rows")
    for r in rows:
        if not (r["loupe_ms"] > 0 and r["reference_ms"] > 0):
            raise ValueError(f"row {r['work']!r}: times must be positive, not {r['loupe_ms']} and {r['reference_ms']}")
    lines = [f"Machine: {run['machine']}. Loupe: {run['loupe']}. Reference: {run['reference']}.",
             f"Command: `{run['command']}`. Ratio below 1: Loupe is faster."]
    if run.get("note"):
        lines.append(run["note"])
    lines += ["",
             "| work | Loupe ms | reference ms | Loupe / reference | reference |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['work']} | {r['loupe_ms']:.1f} | {r['reference_ms']:.1f} | "
                     f"{r['loupe_ms'] / r['reference_ms']:.2f} | {r['reference']} |")
    def gm(rows):
        return math.exp(sum(math.log(r["loupe_ms"] / r["reference_ms"]) for r in rows) / len(rows))
    # ONNX Runtime's rows (inference only) are averaged apart from the rows beside PyTorch and its
    # attribution libraries.
    ort = [r for r in rows if r["reference"].startswith("ONNX Runtime")]
    rest = [r for r in rows if not r["reference"].startswith("ONNX Runtime")]
    if ort and rest:
        lines += ["", f"Geometric mean of Loupe / reference over the {len(rest)} rows beside PyTorch and its libraries: "
                      f"{gm(rest):.2f}x; over the {len(ort)} rows beside ONNX Runtime: {gm(ort):.2f}x.", ""]
    else:
        lines += ["", f"Geometric mean of Loupe / reference over {len(rows)} rows: {gm(rows):.2f}x.", ""]
    return "\n".join(lines)


def render(text, runs, page):
    def replace(m):
        name = m.group("name")
        if name not in runs:
            raise KeyError(f"{page}: no recording bench/results/{name}.json for its table")
        return m.group(1) + table(runs[name]) + m.group(4)
    return MARK.sub(replace, text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="only report pages whose tables are out of date")
    a = ap.parse_args()
    runs = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "bench", "results", "*.json"))):
        with open(path) as f:
            runs[os.path.splitext(os.path.basename(path))[0]] = json.load(f)
    stale = []
    for page in sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [os.path.join(ROOT, "README.md")]:
        with open(page) as f:
            text = f.read()
        new = render(text, runs, os.path.relpath(page, ROOT))
        if new != text:
            stale.append(os.path.relpath(page, ROOT))
            if not a.check:
                with open(page + ".tmp", "w") as f:
                    f.write(new)
                os.replace(page + ".tmp", page)
    if a.check and stale:
        print("bench tables out of date (run make bench-tables): " + ", ".join(stale), file=sys.stderr)
        return 1
    print(("out of date: " if a.check else "rewrote: ") + (", ".join(stale) or "nothing") if stale or not a.check else "bench tables up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
