#!/usr/bin/env python3
"""Every torchvision classification and segmentation builder (and timm's common families, when
timm is installed), exported with both of torch.onnx's exporters, through Loupe: does the file
load, do its logits and input gradient match PyTorch's, how long does `loupe saliency --method
gradient,gradcam` take, or exactly why is it refused.

    python3 tools/zoo_check.py --loupe .build-wheel/release/loupe [--only resnet18,vit_b_16]
        [--exporters torchscript,dynamo] [--size 224] [--record bench/results/zoo.json] [--table docs/models.md]

Run with the Python that has the loupe wheel, torch, torchvision and onnx (onnxscript for the
dynamo exporter; timm for its rows): `make python-venv wheel` makes one in .venv-python. Each
model is built with seeded random weights (torch.manual_seed(0); parameters that torchvision
initializes to zeros, such as ViT's head, are redrawn small so that the output is not flat),
exported at batch 1 and --size with the exporter's defaults into a temporary folder, loaded by
`loupe.load` on the default device, and compared on Assets/chelsea.png (resized to --size):
logits by their relative L2 error, the input gradient of the top class by its relative L2 error
(a segmentation's: of its most predicted class, background aside, summed over its predicted
pixels, pytorch-grad-cam's SemanticSegmentationTarget).
Both exporters fold each batch norm into the convolution before it, so the file computes the
folded network: the gradient is compared with PyTorch's on the model folded the same way
(torch.fx's conv/batch-norm fusion; the unfolded model where it cannot trace), and `match` is
logits < 1e-4 and that gradient below max(1e-3, 4 x PyTorch's own float32-vs-float64 error on
it: the largest over the model, two copies with weights one rounding step off, and the model run
with oneDNN off, PyTorch's own convolutions summing in another order), the bound of
the tests; where that float32 error is over 1e-2 (random weights can leave
activations at rounding level) the gradient is `undetermined`. A pre-activation within float32 rounding of a ReLU's kink can take
the other side once folded (ResNet18 on the photo: the folded model's gradient is 3.6e-3 from
the unfolded one's, in PyTorch too); the error against the unfolded model is recorded as well. The timing is the wall time of the command
line's run (model load included) and the two methods' times it prints. Results are written after
every model (--record; a later run skips what the record holds unless --again), and the table
between the `zoo-check` markers of --table is rewritten from the record.
"""
import argparse
import contextlib
import gc
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTO = os.path.join(ROOT, "Assets", "chelsea.png")
MARK_BEGIN, MARK_END = "<!-- zoo-check begin -->", "<!-- zoo-check end -->"

TIMM_FAMILIES = ["resnet18", "efficientnet_b0", "convnext_tiny", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
                 "swin_tiny_patch4_window7_224", "regnetx_002", "mobilenetv3_small_100", "beit_base_patch16_224",
                 "cait_xxs24_224", "twins_svt_small", "poolformer_s12", "resnetv2_50", "cspresnet50", "xception41"]


def builders(torchvision, timm_available):
    """(family, name, make) for every builder: torchvision's classification and segmentation
    builders, then timm's families."""
    out = []
    for name in torchvision.models.list_models(module=torchvision.models):
        out.append(("torchvision", name, lambda name=name: torchvision.models.get_model(name, weights=None)))
    for name in torchvision.models.list_models(module=torchvision.models.segmentation):
        out.append(("segmentation", name, lambda name=name: torchvision.models.get_model(
            name, weights=None, weights_backbone=None, aux_loss=False)))
    if timm_available:
        import timm
        for name in TIMM_FAMILIES:
            out.append(("timm", name, lambda name=name: timm.create_model(name, pretrained=False)))
    return out


class Plain(__import__("torch").nn.Module):
    """A segmentation model's `out` tensor instead of its dict, as exporters need one tensor."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def seeded(make, torch):
    torch.manual_seed(0)
    model = make().eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.numel() > 1 and not p.any():
                p.copy_(torch.randn_like(p) * 0.02)
    return model


def photo(size, torch):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from photo_input import photo_tensor
    return photo_tensor(PHOTO, size)[None]


def relative(a, b):
    import numpy as np
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def root_cause(error):
    """The first line of the innermost exception an exporter's error chains to: its own message
    says only which step failed."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {first_line(error)}"


def unsupported_ops(message):
    """The op types an import error names (`node X (Op): ...`), each once, in order."""
    ops = []
    for op in re.findall(r"node \S* ?\(([A-Za-z]+)\):", message):
        if op not in ops:
            ops.append(op)
    return ops


def fold_batch_norms(model):
    """A copy of `model` with each batch norm folded into the convolution before it, as the
    exporters write it (torch.fx's fusion), or None where the model does not trace."""
    import copy
    try:
        from torch.fx.experimental.optimization import fuse
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fuse(copy.deepcopy(model)).eval()
    except Exception:  # noqa: BLE001 - control flow fx cannot trace: compared unfolded
        return None


def rounded(model, seed, torch):
    """A copy of `model` whose float weights and buffers are each one rounding step up or down."""
    import copy
    generator = torch.Generator().manual_seed(seed)
    other = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(other.parameters()) + [b for b in other.buffers() if b.is_floating_point()]:
            signs = torch.randint(0, 2, t.shape, generator=generator).to(t.dtype) * 2 - 1
            t.mul_(1 + signs * 2.0 ** -23)
    return other.eval()


def export(model, x, path, exporter, torch):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            torch.onnx.export(model, (x,), path, dynamo=True)
        else:
            torch.onnx.export(model, x, path, dynamo=False)


# Models with more parameters are exported by a process of their own.
ISOLATED_EXPORT = 4e8


def check(family, name, make, exporter, size, loupe_bin, workdir, torch, loupe, max_parameters=None):
    row = {"family": family, "name": name, "exporter": exporter, "size": size}
    try:
        model = seeded(make, torch)
        if family == "segmentation":
            model = Plain(model).eval()
    except Exception as error:  # noqa: BLE001 - every failure is a row of the table
        return {**row, "status": "build fails", "reason": first_line(error)}
    row["parameters"] = sum(p.numel() for p in model.parameters())
    if max_parameters and row["parameters"] > max_parameters:
        return None
    x = photo(size, torch)
    path = os.path.join(workdir, f"{name}.onnx")
    start = time.time()
    try:
        if row["parameters"] > ISOLATED_EXPORT:
            # The largest models are exported by a process of their own, whose memory is given
            # back before Loupe loads the file (the dynamo exporter of ViT-H/14 peaks near 19 GiB).
            del model
            gc.collect()
            run = subprocess.run([sys.executable, os.path.abspath(__file__), "--export-only", family, name, exporter, path,
                                  "--size", str(size)], capture_output=True, text=True)
            if run.returncode != 0:
                raise RuntimeError((run.stderr.strip().splitlines() or [f"the exporting process ended with {run.returncode}"])[-1])
            model = seeded(make, torch)
            if family == "segmentation":
                model = Plain(model).eval()
        else:
            export(model, x, path, exporter, torch)
    except Exception as error:  # noqa: BLE001
        cause = root_cause(error)
        if family != "timm":
            return {**row, "status": "export fails", "reason": cause[:300]}
        # The dynamo exporter fails on some of timm's fused attention (a 3-D scaled dot
        # product, a view of a transposed one): timm's own switch writes attention as its
        # products instead, as a user would export it.
        import timm.layers
        from timm.layers import config
        fused = config._USE_FUSED_ATTN
        timm.layers.set_fused_attn(False)
        try:
            model = seeded(make, torch)
            export(model, x, path, exporter, torch)
        except Exception as again:  # noqa: BLE001
            return {**row, "status": "export fails", "reason": cause[:300], "unfused": root_cause(again)[:300]}
        finally:
            config._USE_FUSED_ATTN = fused
        row["export_note"] = f"fused attention fails to export ({cause[:200]}); exported after timm.layers.set_fused_attn(False)"
    row["export_s"] = round(time.time() - start, 1)
    try:
        opened = loupe.load(path)
    except Exception as error:  # noqa: BLE001
        message = str(error)
        return {**row, "status": "refused", "ops": unsupported_ops(message), "reason": first_line(message)[:300]}
    xg = x.clone().requires_grad_(True)
    y = model(xg)
    target = int(y[0].argmax())
    region = None
    if y.dim() == 4:
        # A segmentation: the class predicted on the most pixels (background aside) summed
        # over those pixels, pytorch-grad-cam's SemanticSegmentationTarget.
        predicted = y[0].argmax(dim=0)
        counts = torch.bincount(predicted.flatten(), minlength=y.shape[1])
        counts[0] = 0 if counts[1:].sum() > 0 else counts[0]
        target = int(counts.argmax())
        region = (predicted == target).to(y.dtype).detach()

    def score(out):
        return out[0, target] if region is None else (out[0, target] * region.to(out.dtype)).sum()

    score(y).backward()
    # Memory: Loupe's copy of the model is closed before PyTorch's copies are made, and those
    # are made one at a time and dropped before the command line runs (ViT-H and RegNetY-128GF
    # hold 2.5 GB of weights each; the checking machine has 24 GiB).
    with opened:
        try:
            logits = opened(x)
            grad = opened.attribute(x, "gradient", target=[target], **({} if region is None else {"region": region.numpy()})).raw
        except Exception as error:  # noqa: BLE001
            return {**row, "status": "runs with an error", "reason": first_line(error)[:300]}
        row["default_layer"] = opened.default_layer
        row["modules"] = len(opened.layers())
    del opened
    gc.collect()
    row["logits_error"] = relative(logits, y.detach())
    row["gradient_error"] = relative(grad, xg.grad)
    row["gradient_error_unfolded"] = row["gradient_error"]
    del y, xg
    folded = fold_batch_norms(model)
    row["folded"] = folded is not None
    reference = folded or model
    del model, folded
    xf = x.clone().requires_grad_(True)
    score(reference(xf)).backward()
    row["gradient_error"] = relative(grad, xf.grad)
    # PyTorch's own float32 error on that gradient: its distance from the same pass in
    # float64, the largest of the model's and of two copies whose weights are one rounding
    # step (2^-23 relative) up or down at random (as python/tests/test_adapters.py bounds
    # its references): a pre-activation within rounding of a ReLU's kink moves the gradient
    # by a float32 rounding that any implementation may make, and one pass need not show it.
    grads = [xf.grad]
    for seed in (1, 2):
        other = rounded(reference, seed, torch)
        xc = x.clone().requires_grad_(True)
        score(other(xc)).backward()
        grads.append(xc.grad)
        del other
        gc.collect()
    # PyTorch's convolutions without oneDNN: the same float32 arithmetic summed in another order
    # (DeepLabV3-ResNet101's region gradient: 2.4e-2 from oneDNN's, where Loupe's lands).
    with torch.backends.mkldnn.flags(enabled=False):
        xc = x.clone().requires_grad_(True)
        score(reference(xc)).backward()
    grads.append(xc.grad)
    row["gradient_error_native"] = relative(grad, xc.grad)
    x64 = x.double().requires_grad_(True)
    score(reference.double()(x64)).backward()
    row["gradient_floor"] = max(relative(g, x64.grad) for g in grads)
    del reference
    gc.collect()
    bound = max(1e-3, 4 * row["gradient_floor"])
    row["status"] = "match" if row["logits_error"] < 1e-4 and row["gradient_error"] < bound else "differs"
    if row["logits_error"] < 1e-4 and row["gradient_floor"] > 1e-2:
        row["status"] = "undetermined"  # float32 does not determine this gradient, in PyTorch either
    out = os.path.join(workdir, "out")
    start = time.time()
    run = subprocess.run([loupe_bin, "saliency", "--model", path, "--image", PHOTO, "--crop", str(size),
                          "--method", "gradient,gradcam", "--out", out, "--force"], capture_output=True, text=True, timeout=1800)
    row["saliency_s"] = round(time.time() - start, 2)
    if run.returncode != 0:
        row["saliency_error"] = first_line(run.stderr)[:300]
    for method in ("gradient", "gradcam"):
        m = re.search(rf"^\s+{method}\s+([0-9.]+) ms", run.stdout, re.M)
        if m:
            row[f"{method}_ms"] = float(m.group(1))
    return row


def table(rows, names=()):
    """The markdown table of the record: one row per builder (`names`: (family, name) of every
    builder, those not checked yet included), a column per exporter."""
    by = {key: {} for key in names}
    for r in rows:
        by.setdefault((r["family"], r["name"]), {})[r["exporter"]] = r

    def cell(r):
        if r is None:
            return "not run yet"
        s = r["status"]
        if r.get("export_note"):
            return cell({k: v for k, v in r.items() if k != "export_note"}) + " (attention unfused)"
        if s == "match":
            t = f"match ({r['logits_error']:.0e} / {r['gradient_error']:.0e})"
            if "gradient_ms" in r and "gradcam_ms" in r:
                t += f", {r['saliency_s']:.1f} s: {r['gradient_ms']:.0f} + {r['gradcam_ms']:.0f} ms"
            return t
        if s == "differs":
            return (f"differs: logits {r['logits_error']:.1e}, gradient {r['gradient_error']:.1e}"
                    + (f" (PyTorch's float32 error {r['gradient_floor']:.1e}"
                       + ("" if r.get("folded") else ", unfolded") + ")" if "gradient_floor" in r else ""))
        if s == "undetermined":
            return (f"logits match ({r['logits_error']:.0e}); the gradient is not determined in float32: PyTorch's own "
                    f"float32 and float64 gradients are {r['gradient_floor']:.0%} apart (Loupe: {r['gradient_error']:.0%}"
                    + (f"; {r['gradient_error_native']:.1%} from PyTorch's with oneDNN off" if "gradient_error_native" in r else "") + ")")
        if s == "refused":
            return "refused: " + (", ".join(r["ops"]) if r.get("ops") else r["reason"].replace("|", "/")[:120])
        return f"{s}: " + r.get("reason", "").replace("|", "/")[:120]

    lines = ["| family | builder | TorchScript exporter | dynamo exporter |", "|---|---|---|---|"]
    for (family, name), cells in by.items():
        lines.append(f"| {family} | {name} | {cell(cells.get('torchscript'))} | {cell(cells.get('dynamo'))} |")
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    waiting = sum(1 for cells in by.values() if not cells)
    return "\n".join(lines) + f"\n\n{len(rows)} exports checked: {summary}; {waiting} builders not run yet.\n"


def write_table(path, rows, header, names=()):
    with open(path) as f:
        text = f.read()
    if MARK_BEGIN not in text:
        text = text.rstrip("\n") + f"\n\n{MARK_BEGIN}\n{MARK_END}\n"
    before, rest = text.split(MARK_BEGIN, 1)
    _, after = rest.split(MARK_END, 1)
    body = f"{MARK_BEGIN}\n{header}\n\n{table(rows, names)}{MARK_END}"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(before + body + after)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loupe", default=os.path.join(ROOT, ".build-wheel", "release", "loupe"))
    parser.add_argument("--only", help="comma-separated builder names")
    parser.add_argument("--exporters", default="torchscript,dynamo")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--record", default=os.path.join(ROOT, "bench", "results", "zoo.json"))
    parser.add_argument("--table", default=os.path.join(ROOT, "docs", "models.md"))
    parser.add_argument("--machine", default="")
    parser.add_argument("--again", action="store_true", help="check again what the record holds")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table from the record")
    parser.add_argument("--max-parameters", type=float, help="leave out (for a later run) models with more parameters")
    parser.add_argument("--export-only", nargs=4, metavar=("FAMILY", "NAME", "EXPORTER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch
    if torch.version.cuda is None:  # see python/tests/conftest.py
        import types
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    import loupe
    try:
        import timm  # noqa: F401
        timm_available = True
    except ImportError:
        timm_available = False
    torch.set_num_threads(os.cpu_count() or 1)
    if args.export_only:
        family, name, exporter, path = args.export_only
        make = next(m for f, n, m in builders(torchvision, timm_available) if (f, n) == (family, name))
        model = seeded(make, torch)
        export(Plain(model).eval() if family == "segmentation" else model, photo(args.size, torch), path, exporter, torch)
        return
    record = {"machine": args.machine, "torch": torch.__version__, "torchvision": torchvision.__version__, "rows": []}
    if os.path.exists(args.record):
        with open(args.record) as f:
            record = json.load(f)
    done = {(r["family"], r["name"], r["exporter"]) for r in record["rows"]}
    only = set(args.only.split(",")) if args.only else None
    for family, name, make in [] if args.table_only else builders(torchvision, timm_available):
        if only and name not in only:
            continue
        for exporter in args.exporters.split(","):
            if (family, name, exporter) in done and not args.again:
                continue
            with tempfile.TemporaryDirectory(prefix="zoo-") as workdir:
                start = time.time()
                try:
                    row = check(family, name, make, exporter, args.size, args.loupe, workdir, torch, loupe, args.max_parameters)
                except Exception as error:  # noqa: BLE001
                    row = {"family": family, "name": name, "exporter": exporter, "size": args.size,
                           "status": "check fails", "reason": first_line(error)[:300]}
            gc.collect()
            if row is None:
                continue
            row["total_s"] = round(time.time() - start, 1)
            print(json.dumps(row), flush=True)
            record["rows"] = [r for r in record["rows"] if (r["family"], r["name"], r["exporter"]) != (family, name, exporter)] + [row]
            tmp = args.record + ".tmp"
            with open(tmp, "w") as f:
                json.dump(record, f, indent=1)
            os.replace(tmp, args.record)
    header = (f"`python3 tools/zoo_check.py --loupe .build-wheel/release/loupe` ({record.get('machine') or 'this machine'}; torch {record.get('torch')}, "
              f"torchvision {record.get('torchvision')}; seeded random weights, {args.size} px, batch 1). "
              "A match cell gives the logits' and the input gradient's relative errors against PyTorch, the "
              "command's wall time and the two methods' times; a refusal names the ops Loupe does not have.")
    write_table(args.table, record["rows"], header, [(f, n) for f, n, _ in builders(torchvision, timm_available)])


if __name__ == "__main__":
    main()
