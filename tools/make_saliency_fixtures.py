#!/usr/bin/env python3
"""Reference attributions from Captum and pytorch-grad-cam for Tests/InterpretTests.
Run by hand: pip install torch torchvision captum grad-cam && python3 tools/make_saliency_fixtures.py

ResNet18, VGG16 and MobileNetV2 with seeded weights (tools/make_model_fixtures.py's generator,
which Sources/Models/SeededWeights.swift mirrors), one 64x64 input (32x32 for VGG16), target = top-1 class.
Captum: Saliency, InputXGradient, GuidedBackprop, Deconvolution, LayerGradCam, GuidedGradCam,
IntegratedGradients (gausslegendre, zero baseline), Occlusion. pytorch-grad-cam: GradCAM,
GradCAMPlusPlus, LayerCAM, HiResCAM, XGradCAM, ScoreCAM. SmoothGrad: Captum's NoiseTunnel(Saliency), its noise
read off the model's input and stored for Loupe to add (its smoothgrad_sq and vargrad types on
the same noise too). ResNet18's deletion and insertion
curves: RISE's CausalMetric (its evaluation code, which no packaged library ships; Quantus'
PixelFlipping steps by features, all channels apart, in steps that divide H x W, so 256
pixels of 3 channels cannot be asked of it). MobileNetV2 uses ReLU6, which Captum's GuidedBackprop and
Deconvolution leave alone (they hook nn.ReLU only), so its guided and deconvnet references apply
the same rules to ReLU6 with explicit backward hooks (checked equal to Captum's on the ReLU
networks).
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from captum.attr import (Deconvolution, GuidedBackprop, GuidedGradCam, InputXGradient, IntegratedGradients,
                         LayerAttribution, LayerGradCam, NoiseTunnel, Occlusion, Saliency)
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

sys.path.insert(0, os.path.dirname(__file__))
from make_model_fixtures import SEED, build, fill  # noqa: E402
from safetensors_io import read_safetensors, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "InterpretTests", "Fixtures", "saliency.safetensors")
LAYERS = {"resnet18": "layer4", "vgg16": "features.29", "mobilenet_v2": "features.18"}
# Score-CAM runs one forward pass per channel of its layer: the tests use a narrow layer.
SCORECAM_LAYERS = {"resnet18": "layer1", "vgg16": "features.4", "mobilenet_v2": "features.3"}
SIZES = {"resnet18": 64, "vgg16": 32, "mobilenet_v2": 64}


def module(model, name):
    m = model
    for part in name.split("."):
        m = m[int(part)] if part.isdigit() else getattr(m, part)
    return m


def no_inplace(model):
    for m in model.modules():
        if hasattr(m, "inplace"):
            m.inplace = False
    return model


def saliency_cases(prepare=lambda model: model):
    """(arch, input [1, 3, H, W], target, model, float64 model) of each network, with the inputs
    and targets this script wrote; `prepare` adapts each model (no in-place activations first)."""
    saliency, metadata = read_safetensors(OUT)
    for arch in ["resnet18", "vgg16", "mobilenet_v2"]:
        x, target = torch.from_numpy(saliency[f"{arch}.input"])[None], json.loads(metadata[arch])["target"]
        model = prepare(no_inplace(fill(build(arch)))).eval()
        yield arch, x, target, model, prepare(no_inplace(fill(build(arch)))).eval().double()


def kink_margin(model, x):
    """The smallest |input| / max|input| over the inputs of the ReLUs and ReLU6s of the deep,
    narrow layers (at most 20000 values; |input - 6| too for ReLU6): how close the pass comes to
    a kink where a flip would move the whole gradient."""
    margins = [1.0]

    def hook(mod, inputs, output):
        v = inputs[0].detach().double()
        if v.numel() > 20000:
            return
        scale = float(v.abs().max()) + 1e-30
        m = float(v.abs().min())
        if isinstance(mod, torch.nn.ReLU6):
            m = min(m, float((v - 6).abs().min()))
        margins.append(m / scale)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return min(margins)


def safe_input(model, size):
    """A random input whose pass keeps the ReLU inputs of the deep layers at least 1e-5 of their
    layer's range from a kink. Closer than float32 rounding (about 1e-6 relative), a ReLU may pass
    the gradient in one implementation and block it in another; one such flip in VGG16's
    classifier moved the whole input gradient by 1% (PyTorch float32 vs float64 agreed to 1e-6),
    which would test the luck of the draw, not the code."""
    best = None
    for seed in range(3, 300):
        torch.manual_seed(seed)
        x = torch.randn(1, 3, size, size)
        margin = kink_margin(model, x)
        if margin > 1e-5:
            return seed, x
        if best is None or margin > best[0]:
            best = (margin, seed, x)
    # MobileNetV2's many narrow ReLU6 layers leave no draw at 1e-5: the widest margin found.
    return best[1], best[2]


def hooked_gradient(model, x, target, rule):
    """Gradient with `rule` ("guided" or "deconv") applied to every ReLU and ReLU6 by hooks."""
    handles = []
    for m in model.modules():
        if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6)):
            if rule == "guided":
                handles.append(m.register_full_backward_hook(lambda mod, gin, gout: (torch.relu(gin[0]),)))
            else:
                handles.append(m.register_full_backward_hook(lambda mod, gin, gout: (torch.relu(gout[0]),)))
    xi = x.clone().requires_grad_(True)
    model(xi)[0, target].backward()
    for h in handles:
        h.remove()
    return xi.grad.detach()




def main():
    tensors, meta = {}, {}
    for arch in ["resnet18", "vgg16", "mobilenet_v2"]:
        model = no_inplace(fill(build(arch)))
        size = SIZES[arch]
        window = size // 4
        input_seed, x = safe_input(model, size)
        target = int(model(x).argmax())
        layer = module(model, LAYERS[arch])
        t = lambda name, v: tensors.__setitem__(f"{arch}.{name}", v.detach().float().contiguous())
        t("input", x[0])
        t("saliency", Saliency(model).attribute(x, target=target, abs=False)[0])
        t("input_x_gradient", InputXGradient(model).attribute(x, target=target)[0])
        guided = hooked_gradient(model, x, target, "guided")
        deconv = hooked_gradient(model, x, target, "deconv")
        if arch != "mobilenet_v2":  # Captum's own rules where they apply: the hooks must agree with them
            assert torch.allclose(guided, GuidedBackprop(model).attribute(x, target=target), atol=1e-6)
            assert torch.allclose(deconv, Deconvolution(model).attribute(x, target=target), atol=1e-6)
        t("guided_backprop", guided[0])
        t("deconvnet", deconv[0])
        layer_cam = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
        t("layer_gradcam", layer_cam[0, 0])
        upsampled = LayerAttribution.interpolate(layer_cam, x.shape[2:], interpolate_mode="nearest")
        guided_gradcam = guided * upsampled
        if arch != "mobilenet_v2":
            assert torch.allclose(guided_gradcam, GuidedGradCam(model, layer).attribute(x, target=target), atol=1e-6)
        t("guided_gradcam", guided_gradcam[0])
        targets = [ClassifierOutputTarget(target)]
        for name, cls in [("gradcam", GradCAM), ("gradcampp", GradCAMPlusPlus), ("layercam", LayerCAM), ("hirescam", HiResCAM),
                          ("xgradcam", XGradCAM), ("scorecam", ScoreCAM)]:
            cam_layer = module(model, SCORECAM_LAYERS[arch]) if name == "scorecam" else layer
            with cls(model=model, target_layers=[cam_layer]) as cam:
                if name == "scorecam":
                    cam.batch_size = 16
                t(name, torch.from_numpy(cam(input_tensor=x, targets=targets)[0]))
        # Captum's NoiseTunnel(Saliency) itself; the noise it drew is read off the model's input
        # (one batch of 4 noisy copies) and stored for Loupe to add.
        seen = []
        hook = model.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].detach().clone()))
        torch.manual_seed(4)
        smooth = NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=4,
                                                        stdevs=0.15 * float(x.max() - x.min()), target=target)
        hook.remove()
        assert len(seen) == 1 and seen[0].shape[0] == 4
        t("smoothgrad_noise", seen[0] - x)
        t("smoothgrad", smooth[0])
        # Its other two types on the same draw (the same seed gives the same noise: checked).
        for nt_type in ("smoothgrad_sq", "vargrad"):
            again = []
            hook = model.register_forward_pre_hook(lambda m, inputs: again.append(inputs[0].detach().clone()))
            torch.manual_seed(4)
            other = NoiseTunnel(Saliency(model)).attribute(x, nt_type=nt_type, nt_samples=4,
                                                           stdevs=0.15 * float(x.max() - x.min()), target=target)
            hook.remove()
            assert torch.equal(again[0], seen[0]), nt_type
            t(nt_type, other[0])
        ig, delta = IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=8,
                                                         return_convergence_delta=True)
        t("integrated_gradients", ig[0])
        t("occlusion", Occlusion(model).attribute(x, sliding_window_shapes=(3, window, window), strides=(3, window // 2, window // 2),
                                                  baselines=0, target=target)[0])
        if arch == "resnet18":
            saliency_map = tensors["resnet18.saliency"].abs().amax(0).numpy()
            for mode in ("deletion", "insertion"):
                curve, auc = causal_curve(model, x, target, saliency_map, mode, step=256)
                t(mode, torch.from_numpy(curve))
                print(arch, mode, "AUC", auc)
        meta[arch] = json.dumps({"seed": SEED, "input_seed": input_seed, "target": target, "layer": LAYERS[arch], "scorecam_layer": SCORECAM_LAYERS[arch],
                                 "ig_delta": float(delta), "ig_steps": 8, "occlusion_window": window, "occlusion_stride": window // 2})
        print(arch, "input seed", input_seed, "kink margin", kink_margin(model, x), "target", target, "IG completeness delta", float(delta))
    write_safetensors(OUT, tensors, meta)
    real_chelsea()
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")



def blur(x, sigma):
    """Separable Gaussian, radius ceil(3 sigma), edges clamped: Sources/Interpret's gaussianBlur."""
    radius = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma * sigma)).astype(np.float32)
    k /= k.sum()
    c, h, w = x.shape
    out = x.copy()
    tmp = np.zeros_like(x)
    for i, wt in enumerate(k):
        tmp += wt * x[:, :, np.clip(np.arange(w) + i - radius, 0, w - 1)]
    out = np.zeros_like(x)
    for i, wt in enumerate(k):
        out += wt * tmp[:, np.clip(np.arange(h) + i - radius, 0, h - 1), :]
    return out


def causal_curve(model, x, target, saliency, mode, step, sigma=5.0):
    """RISE's CausalMetric: deletion (to zeros) or insertion (from a blurred copy), `step`
    pixels at a time, most salient first (ties by pixel index); softmax probability per step."""
    c, h, w = x.shape[1:]
    order = np.lexsort((np.arange(h * w), -saliency.reshape(-1)))
    xv = x[0].numpy()
    substrate = np.zeros_like(xv) if mode == "deletion" else blur(xv, sigma)
    start, finish = (xv, substrate) if mode == "deletion" else (substrate, xv)
    steps = (h * w + step - 1) // step
    curve = []
    current = start.copy().reshape(c, -1)
    for i in range(steps + 1):
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(current.reshape(1, c, h, w))), 1)[0, target]
        curve.append(float(p))
        idx = order[i * step:(i + 1) * step]
        current[:, idx] = finish.reshape(c, -1)[:, idx]
    curve = np.array(curve, dtype=np.float32)
    return curve, float((curve.sum() - curve[0] / 2 - curve[-1] / 2) / (len(curve) - 1))


def real_chelsea():
    """torchvision's MobileNetV2 (weights from `make models`) on the preprocessed bundled photo:
    Captum's Saliency map (max |gradient| over channels) and pytorch-grad-cam's GradCAM on
    features.18, for class 285."""
    home = os.environ.get("TORCH_HOME", os.path.expanduser("~/.cache/torch"))
    weights = os.path.join(home, "hub", "checkpoints", "mobilenet_v2-b0353104.pth")
    if not os.path.exists(weights):
        print("no", weights, "- skipping the real-model fixture")
        return
    from safetensors_io import write_safetensors as write
    model = no_inplace(torchvision.models.mobilenet_v2())
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    root = os.path.join(os.path.dirname(__file__), "..")
    from make_model_fixtures import ROOT  # noqa: F401
    import struct, json as js
    path = os.path.join(root, "Tests", "ModelsTests", "Fixtures", "chelsea_input.safetensors")
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = js.loads(f.read(n))
        x = torch.from_numpy(np.frombuffer(f.read(), dtype="<f4").copy()).reshape(header["input"]["shape"]).unsqueeze(0)
    gradient = Saliency(model).attribute(x, target=285, abs=True)[0].amax(0)
    with GradCAM(model=model, target_layers=[model.features[18]]) as cam:
        gradcam = torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(285)])[0])
    out = os.path.join(root, "Tests", "InterpretTests", "Fixtures", "real_chelsea.safetensors")
    write(out, {"gradient_map": gradient, "gradcam": gradcam}, {})
    print("wrote", os.path.normpath(out))


if __name__ == "__main__":
    main()
