#!/usr/bin/env python3
"""Loupe against PyTorch / Captum / pytorch-grad-cam / Lucent on the same work, in one run, on this
machine: a table of times and the ratio Loupe / reference (below 1: Loupe is faster).

Rows: MobileNetV2 and ResNet18 forward (beside PyTorch and, where onnxruntime is installed, ONNX
Runtime's CPU provider on the model's ONNX export, the two taking turns: `ort_row`) and forward +
backward to the input at batch 1 and 8;
gradient (Captum Saliency), Grad-CAM (pytorch-grad-cam), LRP (zennit's EpsilonPlusFlat with the
network's canonizers) and DeepLIFT (Captum's DeepLift) per batch of 1 and 8; GradientSHAP (25
samples, Captum GradientShap) per batch of 1 and 8, one run; SmoothGrad (25
samples, Captum NoiseTunnel) and Integrated Gradients (50 steps, Captum) on one image; HiResCAM
and AblationCAM (pytorch-grad-cam) per batch of 1 and 8; Quantus' FaithfulnessCorrelation,
PixelFlipping and MaxSensitivity on 8 images (through the Python package); feature
visualization steps at batch 1 and 8 (Lucent's render_vis: Fourier, decorrelation, transforms,
Adam); conv 3x3 64->64 at 56x56, batch 1 and 8. Loupe runs on its default device (`loupe devices`);
PyTorch on the CPU with its default threads, or with --device cuda on the GPU (for a GPU machine:
compare Loupe's OpenCL on that GPU with PyTorch's CUDA on the same GPU). Both use random weights
of the same architecture.

Needs: pip install torch torchvision captum grad-cam; onnx and onnxruntime for the ONNX Runtime
rows; zennit for the LRP rows; quantus and the
Loupe wheel for the Quantus rows; for the
visualization rows also pip install --no-deps torch-lucent kornia kornia_rs (rows are skipped
when a package is missing).
Run: make bench-compare   (or python3 tools/bench_compare.py [--loupe PATH] [--runs N] [--quick]
     [--only GROUPS] [--models NETS])
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import warnings

from bench_tables import add_record_arguments, machine_words, record  # beside this script

warnings.filterwarnings("ignore")
ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))


def loupe(args, binary):
    out = subprocess.run([binary] + args, capture_output=True, text=True, check=True).stdout
    return out


def loupe_json(args, binary):
    text = loupe(args + ["--json"], binary)
    starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
    value = json.loads(text[min(starts):])
    return value["results"] if isinstance(value, dict) else value


DEVICE = "cpu"


def sync():
    if DEVICE != "cpu":
        import torch
        torch.cuda.synchronize()


class Rows(list):
    """The table's rows, each also printed as soon as it is measured (a long run cut short keeps them)."""

    def append(self, row):
        work, ours, ref, refname = row
        print(f"  {work}: Loupe {ours:.1f} ms, {refname} {ref:.1f} ms", file=sys.stderr, flush=True)
        super().append(row)


def median_time(f, runs, warm_seconds=0.3):
    """Median milliseconds of `runs` calls of f after warming up as `loupe bench` does: one call
    and more until `warm_seconds` have passed (at most 100)."""
    start, count = time.perf_counter(), 0
    while count == 0 or (time.perf_counter() - start < warm_seconds and count < 100):
        f()
        sync()
        count += 1
    ts = []
    for _ in range(runs):
        s = time.perf_counter()
        f()
        sync()
        ts.append(time.perf_counter() - s)
    return sorted(ts)[len(ts) // 2] * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loupe", default=os.path.join(ROOT, ".build/release/loupe"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="ResNet18 only, no SmoothGrad/IG/visualization")
    ap.add_argument("--device", default="cpu", help="PyTorch's device: cpu (default) or cuda")
    ap.add_argument("--batch", default="1,8", help="comma-separated batch sizes of the model, saliency and conv rows")
    groups = ["model", "saliency", "lrp", "deeplift", "cam", "quantus", "gradient_shap", "smoothgrad_ig", "visualization", "conv"]
    ap.add_argument("--only", default=",".join(groups), help=f"comma-separated groups of rows: {', '.join(groups)} (default: all)")
    ap.add_argument("--models", default="mobilenet_v2,resnet18", help="comma-separated networks of the per-network rows")
    add_record_arguments(ap)
    a = ap.parse_args()
    only = set(a.only.split(","))
    if only - set(groups):
        ap.error(f"--only: unknown groups {', '.join(sorted(only - set(groups)))}")
    global DEVICE
    DEVICE = a.device

    import torch
    if torch.version.cuda is None:  # see python/tests/conftest.py
        import types
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    rows = Rows()  # (work, loupe ms, reference ms, reference name)
    models = ["resnet18"] if a.quick else a.models.split(",")
    cam_layer = {"mobilenet_v2": lambda m: m.features[18], "resnet18": lambda m: m.layer4}
    device = loupe(["devices"], a.loupe).splitlines()
    device = next((l for l in device if l.startswith("*")), "?")
    for name in models:
        model = getattr(torchvision.models, name)(weights=None).eval().to(DEVICE)
        for m in model.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
        # Frozen weights: PyTorch computes only what Loupe computes (gradients to the input, not
        # to the weights), its fastest setting for attribution; unfrozen, .backward() and
        # pytorch-grad-cam would also compute every weight gradient.
        for p in model.parameters():
            p.requires_grad_(False)
        # Whole network.
        for r in (loupe_json(["bench", "--model", name, "--batch", a.batch, "--runs", str(a.runs)], a.loupe) if "model" in only else []):
            x = torch.randn(r["batch"], 3, 224, 224, device=DEVICE)
            if r["pass"] == "forward":
                def f():
                    with torch.no_grad():
                        model(x)
            else:
                def f():
                    xi = x.clone().requires_grad_(True)
                    model(xi)[:, 0].sum().backward()
            rows.append((f"{name} {r['pass']} batch {r['batch']}", r["wallMilliseconds"], median_time(f, a.runs), "PyTorch"))
            if r["pass"] == "forward" and DEVICE == "cpu":
                ort_row(rows, a, name, model, x)
        # Saliency.
        methods = "gradient,gradcam" if a.quick else "gradient,gradcam"
        for r in (loupe_json(["bench", "--model", name, "--method", methods, "--batch", a.batch, "--runs", str(a.runs)], a.loupe) if "saliency" in only else []):
            n = r["batch"]
            x = torch.randn(n, 3, 224, 224, device=DEVICE)
            targets = [i * 37 % 1000 for i in range(n)]
            if r["pass"] == "gradient":
                f, ref = (lambda: Saliency(model).attribute(x, target=targets, abs=True).amax(1)), "Captum Saliency"
            else:
                # The target layer's weights stay trainable so that its activations have a
                # graph: backward then stops there, as Loupe's does.
                for p in cam_layer[name](model).parameters():
                    p.requires_grad_(True)
                cam = GradCAM(model=model, target_layers=[cam_layer[name](model)])
                f, ref = (lambda: cam(input_tensor=x, targets=[ClassifierOutputTarget(t) for t in targets])), "pytorch-grad-cam"
            rows.append((f"{name} {r['pass']} batch {n}", r["wallMilliseconds"], median_time(f, a.runs), ref))
        if "lrp" in only:
            lrp_rows(rows, a, name, model)
        if "deeplift" in only:
            deeplift_rows(rows, a, name, model)
        if a.quick:
            continue
        if "cam" in only:
            cam_rows(rows, a, name, model, cam_layer[name])
        if "quantus" in only:
            quantus_rows(rows, a, name, model)
        if "gradient_shap" in only:
            gradient_shap_rows(rows, a, name, model)
        x1 = torch.randn(1, 3, 224, 224, device=DEVICE)
        smooth = ["bench", "--model", name, "--method", "smoothgrad,integrated_gradients", "--batch", "1", "--runs", "1"]
        for r in (loupe_json(smooth, a.loupe) if "smoothgrad_ig" in only else []):
            if r["pass"] == "smoothgrad":
                f = lambda: NoiseTunnel(Saliency(model)).attribute(x1, nt_type="smoothgrad", nt_samples=25, nt_samples_batch_size=16,
                                                                    stdevs=0.15 * 4.5, target=0, abs=True)
                rows.append((f"{name} SmoothGrad 25 samples", r["wallMilliseconds"], median_time(f, 1), "Captum NoiseTunnel"))
            else:
                f = lambda: IntegratedGradients(model).attribute(x1, target=0, n_steps=50)
                rows.append((f"{name} Integrated Gradients 50 steps", r["wallMilliseconds"], median_time(f, 1), "Captum"))
    if not a.quick and "visualization" in only:
        visualization_rows(rows, a)
    if "conv" in only:
        conv_rows(rows, a)

    print(f"Loupe: {a.loupe} on {device.split()[3] if len(device.split()) > 3 else device}")
    where = f"{torch.get_num_threads()} threads, CPU" if DEVICE == "cpu" else torch.cuda.get_device_name()
    print(f"reference: PyTorch {torch.__version__}, {where}")
    print(f"{'work':<44} {'Loupe ms':>10} {'ref ms':>10} {'ratio':>7}  reference")
    ratios = []
    for work, ours, ref, refname in rows:
        ratios.append(ours / ref)
        print(f"{work:<44} {ours:>10.1f} {ref:>10.1f} {ours / ref:>6.2f}x  {refname}")
    gm = 1.0
    for r in ratios:
        gm *= r
    print(f"geometric mean of Loupe / reference over {len(ratios)} rows: {gm ** (1 / len(ratios)):.2f}x")
    if a.record:
        version = loupe(["--version"], a.loupe).strip()
        record(a.record, list(rows), a.machine or machine_words(), f"{version} on {device.split()[3] if len(device.split()) > 3 else device}",
               f"PyTorch {torch.__version__}, {where}", "python3 tools/bench_compare.py " + shlex.join(sys.argv[1:]))


def ort_row(rows, a, name, model, x, rounds=3):
    """The forward pass beside ONNX Runtime's (default CPU provider, its default threads) on the
    same random weights, exported at this batch size by torch.onnx's TorchScript exporter. The
    two take turns, `rounds` times (a `loupe bench` of --runs runs, then as many runs of ONNX
    Runtime), and each side's row is its fastest round's median: this machine's speed drifts by
    up to 1.5x over minutes, so a ratio of times taken minutes apart measures the drift too."""
    try:
        import io
        import onnxruntime
        import torch
    except ImportError:
        return
    f = io.BytesIO()
    torch.onnx.export(model, x, f, dynamo=False, input_names=["x"])
    session = onnxruntime.InferenceSession(f.getvalue(), providers=["CPUExecutionProvider"])
    xn = x.cpu().numpy()
    n = x.shape[0]
    ours, theirs = float("inf"), float("inf")
    for _ in range(rounds):
        forward = [r for r in loupe_json(["bench", "--model", name, "--batch", str(n), "--runs", str(a.runs)], a.loupe)
                   if r["pass"] == "forward"]
        ours = min(ours, forward[0]["wallMilliseconds"])
        theirs = min(theirs, median_time(lambda: session.run(None, {"x": xn}), a.runs))
    rows.append((f"{name} forward batch {n}", ours, theirs, f"ONNX Runtime {onnxruntime.__version__}"))


def lrp_rows(rows, a, name, model):
    """`lrp` (epsilon_plus_flat) beside zennit's EpsilonPlusFlat with the network's canonizers."""
    try:
        import torch
        from zennit.attribution import Gradient
        from zennit.canonizers import SequentialMergeBatchNorm
        from zennit.composites import EpsilonPlusFlat
        from zennit.torchvision import ResNetCanonizer
    except ImportError as e:
        print(f"(LRP rows skipped: {e})", file=sys.stderr)
        return
    canonizers = [ResNetCanonizer()] if name.startswith("resnet") else [SequentialMergeBatchNorm()]
    for r in loupe_json(["bench", "--model", name, "--method", "lrp", "--batch", a.batch, "--runs", str(a.runs)], a.loupe):
        n = r["batch"]
        x = torch.randn(n, 3, 224, 224, device=DEVICE)
        seed = torch.zeros(n, 1000, device=DEVICE)
        seed[range(n), [i * 37 % 1000 for i in range(n)]] = 1

        def f():
            with Gradient(model=model, composite=EpsilonPlusFlat(canonizers=canonizers)) as attributor:
                attributor(x, seed)
        rows.append((f"{name} lrp batch {n}", r["wallMilliseconds"], median_time(f, a.runs), "zennit EpsilonPlusFlat"))


def cam_rows(rows, a, name, model, layer):
    """HiResCAM and AblationCAM beside pytorch-grad-cam's at the default CAM layer, per batch
    (AblationCAM ablates every channel of the layer, pytorch-grad-cam 32 at a time; one run)."""
    from pytorch_grad_cam import AblationCAM, HiResCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    import torch
    for p in layer(model).parameters():
        p.requires_grad_(True)
    for method, cls, runs in (("hirescam", HiResCAM, a.runs), ("ablationcam", AblationCAM, 1)):
        for r in loupe_json(["bench", "--model", name, "--method", method, "--batch", a.batch, "--runs", str(runs)], a.loupe):
            n = r["batch"]
            x = torch.randn(n, 3, 224, 224, device=DEVICE)
            targets = [ClassifierOutputTarget(i * 37 % 1000) for i in range(n)]
            cam = cls(model=model, target_layers=[layer(model)])
            rows.append((f"{name} {method} batch {n}", r["wallMilliseconds"], median_time(lambda: cam(input_tensor=x, targets=targets), runs),
                         f"pytorch-grad-cam {cls.__name__}"))


def quantus_rows(rows, a, name, model):
    """Three of Quantus' metrics beside Loupe's (`model.metrics` of the Python package, which must
    be installed: `make wheel`, then pip install dist/loupe-*.whl) on the same random-weight
    network, 8 images and their gradient maps, one run each: FaithfulnessCorrelation (100 runs of
    224 values), PixelFlipping (672 steps of 224 values beside Loupe's 670 of 75 pixels) and
    MaxSensitivity (10 samples of the gradient, radius 0.2)."""
    try:
        import loupe
        import numpy as np
        import quantus
        import torch
        from captum.attr import Saliency
    except ImportError as e:
        print(f"(Quantus rows skipped: {e})", file=sys.stderr)
        return
    import torchvision
    # A fresh network with the same weights, on the CPU (Quantus runs there, whatever --device
    # says): the zennit, Captum and pytorch-grad-cam rows before leave the module exporting a Cast
    # node that Loupe's ONNX import does not take yet.
    fresh = getattr(torchvision.models, name)(weights=None).eval()
    fresh.load_state_dict(model.state_dict())
    for m in fresh.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    model = fresh
    n = 8
    x = torch.randn(n, 3, 224, 224)
    targets = [i * 37 % 1000 for i in range(n)]
    ours = loupe.from_torch(model, x[:1])
    maps = np.asarray(ours.attribute(x.numpy(), "gradient", target=targets).map)

    def explain(model, inputs, targets, **kwargs):
        t = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        return Saliency(model).attribute(t, target=torch.as_tensor(np.asarray(targets).reshape(-1)), abs=True).amax(1, keepdim=True).numpy()
    common = dict(model=model, x_batch=x.numpy(), y_batch=np.asarray(targets), a_batch=maps[:, None], device="cpu")
    cases = [
        ("faithfulness_correlation", dict(runs=100, subset_size=224),
         lambda: quantus.FaithfulnessCorrelation(nr_runs=100, subset_size=224, disable_warnings=True)(**common)),
        # Quantus counts a step in values of the 3 x H x W image but requires it to divide H x W,
        # so no step of whole pixels runs at 224 x 224: 224 values (672 steps) beside Loupe's 75
        # pixels (670 steps).
        ("pixel_flipping", dict(step=75),
         lambda: quantus.PixelFlipping(features_in_step=224, disable_warnings=True)(**common)),
        ("max_sensitivity", dict(samples=10, radius=0.2, method="gradient"),
         lambda: quantus.MaxSensitivity(nr_samples=10, lower_bound=0.2, disable_warnings=True)(**common, explain_func=explain)),
    ]
    for mode, options, reference in cases:
        def f():
            ours.metrics(x.numpy(), maps, target=targets, modes=[mode], batch=16, **options)
        rows.append((f"{name} {mode} batch {n}", median_time(f, 1), median_time(reference, 1), f"Quantus {mode}"))
    ours.close()


def deeplift_rows(rows, a, name, model):
    """`deeplift` (its default rules and reference: the same passes) beside Captum's DeepLift from
    a zero baseline, on the model with a ReLU module per call (Captum's DeepLift needs it)."""
    import copy
    import torch
    from captum.attr import DeepLift
    from torchvision.models.resnet import BasicBlock

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu_out(out + identity)
    separate = copy.deepcopy(model)
    for m in separate.modules():
        if isinstance(m, BasicBlock):
            m.relu_out = torch.nn.ReLU()
            m.forward = forward.__get__(m)
    for r in loupe_json(["bench", "--model", name, "--method", "deeplift", "--batch", a.batch, "--runs", str(a.runs)], a.loupe):
        n = r["batch"]
        x = torch.randn(n, 3, 224, 224, device=DEVICE)
        targets = [i * 37 % 1000 for i in range(n)]
        f = lambda: DeepLift(separate).attribute(x, baselines=torch.zeros_like(x), target=targets)
        rows.append((f"{name} deeplift batch {n}", r["wallMilliseconds"], median_time(f, a.runs), "Captum DeepLift"))


def gradient_shap_rows(rows, a, name, model):
    """`gradient_shap` (its defaults: 25 samples from the black reference, no noise) beside
    Captum's GradientShap with the same reference and samples, one run each (200 passes at batch 8)."""
    import torch
    from captum.attr import GradientShap
    mean, std = torch.tensor([0.485, 0.456, 0.406], device=DEVICE), torch.tensor([0.229, 0.224, 0.225], device=DEVICE)
    black = (-mean / std).view(1, 3, 1, 1).expand(1, 3, 224, 224).contiguous()
    for r in loupe_json(["bench", "--model", name, "--method", "gradient_shap", "--batch", a.batch, "--runs", "1"], a.loupe):
        n = r["batch"]
        x = torch.randn(n, 3, 224, 224, device=DEVICE)
        targets = [i * 37 % 1000 for i in range(n)]
        f = lambda: GradientShap(model).attribute(x, baselines=black, n_samples=25, stdevs=0.0, target=targets)
        rows.append((f"{name} gradient_shap 25 samples batch {n}", r["wallMilliseconds"], median_time(f, 1), "Captum GradientShap"))


def visualization_rows(rows, a):
    import torch
    import torchvision
    try:
        import IPython.display  # noqa: F401
    except ImportError:  # Lucent imports it only to show images in notebooks
        import types
        ipython = types.ModuleType("IPython")
        ipython.display = types.ModuleType("IPython.display")
        sys.modules["IPython"], sys.modules["IPython.display"] = ipython, ipython.display
    try:
        import kornia
        kornia.get_rotation_matrix2d = kornia.geometry.transform.get_rotation_matrix2d
        kornia.warp_affine = kornia.geometry.transform.warp_affine
        from lucent.optvis import objectives, param, render
    except Exception as e:  # noqa: BLE001
        print(f"(visualization rows skipped: {e})", file=sys.stderr)
        return
    text = loupe(["bench", "--model", "mobilenet_v2", "--visualize", "--batch", "1,8", "--runs", "8"], a.loupe)
    ours = {int(m.group(1)): float(m.group(2)) for m in re.finditer(r"^(\d+)\s+([\d.]+)", text, re.M)}
    m = torchvision.models.mobilenet_v2(weights=None).eval().to(DEVICE)
    for p in m.parameters():
        p.requires_grad_(False)
    for batch in (1, 8):
        steps = 8
        obj = sum(objectives.channel("classifier_1", i * 37 % 1000, batch=i) for i in range(batch)) if batch > 1 \
            else objectives.channel("classifier_1", 0)
        param_f = lambda: param.image(224, batch=batch, fft=True, decorrelate=True)
        render.render_vis(m, obj, param_f, thresholds=(1,), show_image=False, progress=False, fixed_image_size=224)
        start = time.perf_counter()
        render.render_vis(m, obj, param_f, thresholds=(steps,), show_image=False, progress=False, fixed_image_size=224)
        sync()
        ref_ms = (time.perf_counter() - start) / steps * 1e3
        if batch in ours:
            rows.append((f"mobilenet_v2 visualization step batch {batch}", 1e3 / ours[batch], ref_ms, "Lucent render_vis"))


def conv_rows(rows, a):
    import torch
    for r in loupe_json(["bench", "--filter", "conv 3x3 64->64 56x56", "--shapes", "resnet18", "--batch", a.batch,
                         "--runs", str(a.runs)], a.loupe):
        if r["pass"] != "forward":
            continue
        n = r["batch"]
        x, w = torch.randn(n, 64, 56, 56, device=DEVICE), torch.randn(64, 64, 3, 3, device=DEVICE)
        def f():
            with torch.no_grad():
                torch.nn.functional.conv2d(x, w, padding=1)
        rows.append((f"conv 3x3 64->64 56x56 forward batch {n}", r["milliseconds"], median_time(f, max(a.runs, 5)), "torch conv2d"))


if __name__ == "__main__":
    main()
