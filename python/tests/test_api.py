"""The package's own API: loading, layer names, classify, activations, attribution, visualization,
inversion, the checks; bad input as Python exceptions; memory over many calls."""
import gc
import io
import os

import numpy as np
import pytest
import torch

import loupe
from conftest import MOBILENET_WEIGHTS, PHOTOS, ROOT, missing, photos, relative_error


def test_devices_and_methods():
    devices = loupe.devices()
    assert devices[-1]["name"] == "cpu" and sum(d["default"] for d in devices) == 1
    names = [m["name"] for m in loupe.methods()]
    assert {"gradient", "gradcam", "integrated_gradients", "scorecam"} <= set(names)
    assert loupe.version() == loupe.__version__


def test_load_image_is_torchvisions_preprocessing():
    from PIL import Image
    from torchvision import transforms
    expected = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                   transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])(Image.open(PHOTOS[0]).convert("RGB"))
    x = loupe.load_image(PHOTOS[0])
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert np.abs(x[0] - expected.numpy()).max() < 1e-5


def test_from_torch_keeps_the_modules_names(resnet18, mobilenet_v2):
    x = photos(2)
    model = loupe.from_torch(resnet18, x)
    names = [layer.name for layer in model.layers()]
    for name in ("layer1", "layer4", "layer4.1", "layer4.1.relu", "layer3.0.downsample", "maxpool", "avgpool"):
        assert name in names, name
    assert model.layer_name(resnet18.layer4[-1]) == model.layer_name("layer4.1") == model.layer_name("layer4")
    # Each module's activation is the torch module's output.
    outputs = {}
    hooks = [resnet18.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.detach()))
             for n in ("layer2", "layer3.1", "layer4.1")]
    with torch.no_grad():
        logits = resnet18(x)
    for h in hooks:
        h.remove()
    got = model.activations(x, ["layer2", "layer3.1", resnet18.layer4[1]])
    for name, value in zip(("layer2", "layer3.1", "layer4.1"), got.values()):
        assert relative_error(value, outputs[name]) < 1e-4, name
    assert relative_error(model(x), logits) < 1e-4
    mobile = loupe.from_torch(mobilenet_v2, x)
    assert "features.18" in [l.name for l in mobile.layers()] and "classifier.1" in [l.name for l in mobile.layers()]


def test_an_onnx_export_names_its_layers_as_torch_names_the_modules(resnet18, tmp_path):
    x = photos(1)
    path = tmp_path / "resnet18.onnx"
    torch.onnx.export(resnet18, x, str(path), dynamo=False)  # the exporter's defaults: batchnorms folded
    outputs = {}
    hooks = [resnet18.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: outputs.__setitem__(n, o.detach()))
             for n in ("layer3", "layer4.0")]
    with torch.no_grad():
        resnet18(x)
    for h in hooks:
        h.remove()
    with loupe.load(str(path)) as model:
        names = [layer.name for layer in model.layers()]
        for name in ("layer1", "layer4", "layer4.1", "layer4.1.relu", "layer3.0.downsample", "maxpool", "avgpool", "fc"):
            assert name in names, name
        assert model.default_layer == "layer4"
        assert "/layer4/layer4.1/relu_1/Relu_output_0" in [layer.name for layer in model.layers(raw=True)]
        got = model.activations(x, ["layer3", "layer4.0"])
        for name in ("layer3", "layer4.0"):
            assert relative_error(got[name], outputs[name]) < 1e-4, name


def test_classify_the_bundled_photo_with_real_weights():
    if not MOBILENET_WEIGHTS.exists():
        missing(str(MOBILENET_WEIGHTS))
    with loupe.load("mobilenet_v2", device="auto") as model:
        top = model.classify(loupe.load_image(PHOTOS[0]), top=3).top[0]
        assert [k for k, _, _ in top] == [285, 282, 281] and top[0][1] == "Egyptian cat"
        assert abs(top[0][2] - 0.7166) < 1e-3
        # A class name for a target, as `loupe saliency --target` takes it (Workflows' Probe).
        x = loupe.load_image(PHOTOS[0])
        named = model.attribute(x, method="gradcam", target="tabby cat")
        assert named.targets == [281] and named.milliseconds > 0
        assert np.array_equal(named.map, model.attribute(x, method="gradcam", target=281).map)
        with pytest.raises(loupe.LoupeValueError, match="target zqxjk: no such class"):
            model.attribute(x, method="gradcam", target="zqxjk")
        # The same weights from the file's bytes, and through ONNX bytes.
        data = MOBILENET_WEIGHTS.read_bytes()
        with loupe.load(data, arch="mobilenet_v2", name="weights.pth") as again:
            assert np.allclose(again.classify(loupe.load_image(PHOTOS[0])).probabilities, model.classify(loupe.load_image(PHOTOS[0])).probabilities, atol=1e-5)


def test_device_and_cpu_reference_agree(resnet18):
    x = photos(2, size=64)
    buffer = io.BytesIO()
    torch.onnx.export(resnet18, (x[:1],), buffer, dynamo=False, input_names=["input"], dynamic_axes={"input": {0: "n"}})
    on_device = loupe.load(buffer.getvalue(), device="auto")
    on_cpu = loupe.load(buffer.getvalue(), device="cpu")
    assert on_cpu.device == "cpu"
    for method in ("gradient", "gradcam", "integrated_gradients"):
        a = on_device.attribute(x, method, target=[1, 2], steps=8)
        b = on_cpu.attribute(x, method, target=[1, 2], steps=8)
        assert relative_error(a.map, b.map) < 1e-4, method


def test_attribution_object_and_display(resnet18):
    model = loupe.from_torch(resnet18, photos(1))
    x = photos(2).numpy()
    a = model.attribute(x, "gradcam")
    assert isinstance(a.map, np.ndarray) and a.map.shape == (2, 128, 128) and a.raw is None
    assert a.targets == [int(t) for t in resnet18(torch.from_numpy(x)).argmax(1)]
    png = a._repr_png_()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    ig = model.attribute(torch.from_numpy(x), "integrated_gradients", target=3, steps=8)
    assert isinstance(ig.raw, torch.Tensor) and ig.delta.shape == (2,)


def test_long_loops_report_progress_and_results_save(resnet18, tmp_path):
    model = loupe.from_torch(resnet18, photos(1, size=64))
    x = photos(2, size=64)
    seen = []
    loupe.set_progress(lambda what, done, total: seen.append((what, done, total)))
    try:
        a = model.attribute(x, "integrated_gradients", target=1, steps=8, batch=4)
        assert seen == [("integrated_gradients", k, 16) for k in (4, 8, 12, 16)]
        seen.clear()
        images = model.visualize("class:1", size=32, steps=20)
        assert seen[-1] == ("visualize", 20, 20)
        # An exception in the callback reaches the caller, not the library.
        loupe.set_progress(lambda *report: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            model.attribute(x, "integrated_gradients", target=1, steps=8)
    finally:
        loupe.set_progress("auto")
    a.save(tmp_path / "map.png", index=1)
    images.save(tmp_path / "image.png")
    assert (tmp_path / "map.png").read_bytes().startswith(b"\x89PNG") and a.pil(1).size == (64, 64)
    assert images.pil().size == (32, 32) and sorted(p.name for p in tmp_path.iterdir()) == ["image.png", "map.png"]


def test_visualize_invert_sanity_and_metrics(resnet18):
    model = loupe.from_torch(resnet18, photos(1))
    images = model.visualize(["class:1", ("layer3", 5)], size=64, steps=12)
    assert images.images.shape == (2, 3, 64, 64) and 0 <= images.images.min() and images.images.max() <= 1
    assert len(images.info["objectives"]) == 2 and all(np.isfinite(images.info["objectives"]))
    x = photos(1, size=64)
    inverted = model.invert(x, "layer2", steps=10)
    assert inverted.images.shape == (1, 3, 64, 64) and np.isfinite(inverted.info["relative_feature_error"])
    report = model.sanity(x, methods=["gradient", "gradcam"], target=3, stages=2)
    assert report["stages"][0] == "original" and len(report["stages"]) == 3 and report["maps"].shape == (3, 2, 64, 64)
    assert report["spearman"][0] == [1, 1]
    # Quantus' MPRT by layers: each stage's Spearman and entropy as scipy and numpy compute them
    # on the returned maps (Quantus' correlation_spearman and discrete_entropy).
    from scipy.stats import entropy, spearmanr
    mprt = model.sanity(x, methods=["gradient"], target=3, test="mprt", stages=3)
    # The exporter folds batch norm into the convolutions; stages carry the torch module names.
    assert mprt["stages"][1:] == ["fc", "layer4.1.conv2", "layer4.1.conv1"], mprt["stages"]
    assert mprt["granularity"] == "layer" and mprt["order"] == "top_down"
    for s in range(1, 4):
        a, b = mprt["maps"][0, 0].ravel(), mprt["maps"][s, 0].ravel()
        assert abs(mprt["spearman"][s][0] - spearmanr(a, b).statistic) < 1e-5
        assert abs(mprt["entropy"][s][0] - entropy(np.histogram(b, bins=100)[0])) < 1e-5
    assert abs(mprt["mean_spearman"][0] - np.mean([mprt["spearman"][s][0] for s in (1, 2, 3)])) < 1e-5
    efficient = model.sanity(x, methods=["gradient"], target=3, test="efficient_mprt")
    h = [e[0] for e in efficient["entropy"]]
    assert len(efficient["stages"]) == 2 and abs(efficient["entropy_rise"][0] - (h[1] - h[0]) / h[0]) < 1e-5
    smooth = model.sanity(x, methods=["gradient"], target=3, test="smooth_mprt", smooth_samples=2, stages=1, batch=2)
    assert smooth["order"] == "bottom_up" and len(smooth["stages"]) == 2
    with pytest.raises(loupe.LoupeError):
        model.sanity(x, test="mprt", smooth_samples=3)
    maps = model.attribute(x, "gradcam", target=3).map
    scores = model.metrics(x, maps, target=3, step=256)
    assert len(scores["deletion"]) == 1 and 0 <= scores["insertion"][0] <= 1
    assert scores["deletion_curves"].shape == (1, 64 * 64 // 256 + 1)
    # Quantus' map scores: Sparseness is the Gini index of |map| / max |map| (Quantus adds 1e-7
    # to each value); masks at the map's largest and smallest pixel hit and miss.
    m = np.asarray(maps)
    flat = np.abs(m[0]).reshape(-1) / np.abs(m[0]).max() + 1e-7
    ordered, n = np.sort(flat), flat.size
    gini = ((2 * np.arange(1, n + 1) - n - 1) * ordered).sum() / (n * ordered.sum())
    assert abs(scores["sparseness"][0] - gini) < 1e-6 and scores["complexity"][0] > 0
    masks = np.zeros((2, 64, 64), np.float32)
    masks[0].reshape(-1)[np.argmax(m[0])] = 1
    masks[1].reshape(-1)[np.argmin(m[0])] = 1
    both = model.metrics(np.concatenate([np.asarray(x), np.asarray(x)]), np.concatenate([m, m]), target=3, step=4096, masks=masks)
    assert both["pointing_game"] == [True, bool(m[0].min() == m[0].max())]
    assert both["relevance_rank_accuracy"][0] == 1 and both["relevance_mass_accuracy"][1] <= both["relevance_mass_accuracy"][0]
    assert model.metrics(x, maps, target=3, step=4096, masks=np.zeros((1, 64, 64)))["pointing_game"] == [None]


def test_perturbation_metrics_match_captum(resnet18):
    """Captum's infidelity (normalized and not) of gradient x input and its sensitivity_max of
    the gradient map, with the same perturbations given to both; the other perturbation metrics
    run and keep their ranges (Quantus' own agreement is in the Swift tests' fixtures)."""
    from captum.attr import InputXGradient, Saliency
    from captum.metrics import infidelity, sensitivity_max
    model = loupe.from_torch(resnet18, photos(1, size=48))
    x = photos(1, size=48)
    generator = torch.Generator().manual_seed(0)
    perturbations = torch.randn((4,) + tuple(x.shape[1:]), generator=generator) * 0.1
    gxi = InputXGradient(resnet18).attribute(x, target=3).detach()
    maps = gxi.abs().amax(1)
    for normalize in (False, True):
        want = float(infidelity(resnet18, lambda inputs: (perturbations, inputs - perturbations), x, gxi, target=3,
                                n_perturb_samples=4, max_examples_per_batch=4, normalize=normalize)[0])
        got = model.metrics(x, maps, target=3, modes=["infidelity"], raw=gxi, perturbations=perturbations, normalize=normalize)
        assert abs(got["infidelity"][0] - want) <= 1e-3 * want, (normalize, got["infidelity"], want)
    noise = (torch.rand((3,) + tuple(x.shape[1:]), generator=generator) * 2 - 1) * 0.02

    def explain(inputs, target):
        # Captum passes a tuple and needs one back: it iterates over the first explanation,
        # which for a tensor walks its batch dimension.
        inputs = inputs[0] if isinstance(inputs, tuple) else inputs
        return (Saliency(resnet18).attribute(inputs, target=target).amax(1, keepdim=True),)

    want = float(sensitivity_max(explain, x, perturb_func=lambda inputs, perturb_radius: inputs + noise, n_perturb_samples=3,
                                 max_examples_per_batch=3, target=3)[0])
    gradient = explain(x, 3)[0].detach()[:, 0]
    got = model.metrics(x, gradient, target=3, modes=["max_sensitivity"], method="gradient", noise=noise)["max_sensitivity"][0]
    assert abs(got - want) <= 1e-3 * want
    scores = model.metrics(x, gradient, target=3, modes=["faithfulness_correlation", "pixel_flipping", "region_perturbation", "avg_sensitivity", "road"],
                           method="gradient", runs=4, subset_size=30, step=400, regions=3, samples=2, seed=1, percentages=[20, 60])
    assert -1 <= scores["faithfulness_correlation"][0] <= 1 and scores["avg_sensitivity"][0] > 0
    assert scores["pixel_flipping_curves"].shape == (1, 6) and scores["region_perturbation_curves"].shape == (1, 3)
    assert scores["road_curves"].shape == (1, 2) and abs(scores["road"][0] - scores["road_curves"][0].mean()) < 1e-6
    with pytest.raises(loupe.LoupeValueError, match="method"):
        model.metrics(x, gradient, target=3, modes=["max_sensitivity"])
    with pytest.raises(loupe.LoupeValueError, match="faithfulness"):
        model.metrics(x, gradient, target=3, modes=["faithfulness"])


def test_bad_input_is_a_python_exception(resnet18, tmp_path):
    model = loupe.from_torch(resnet18, photos(1))
    x = photos(1).numpy()
    with pytest.raises(loupe.LoupeValueError, match="float32"):
        model.attribute(x.astype(np.float64), "gradient", target=1)
    with pytest.raises(loupe.LoupeValueError, match=r"\[N, 3, H, W\]"):
        model.attribute(x[0], "gradient", target=1)
    bad = x.copy()
    bad[0, 1, 5, 5] = np.nan
    with pytest.raises(loupe.LoupeValueError, match="finite"):
        model.classify(bad)
    with pytest.raises(loupe.LoupeValueError, match="unknown method nope"):
        model.attribute(x, "nope", target=1)
    with pytest.raises(loupe.LoupeValueError, match="unknown layer layer9"):
        model.attribute(x, "gradcam", target=1, layer="layer9")
    with pytest.raises(loupe.LoupeValueError, match="out of range"):
        model.attribute(x, "gradient", target=1000)
    with pytest.raises(loupe.LoupeValueError, match="unknown option"):
        model.attribute(x, "gradient", target=1, stpes=3)
    with pytest.raises(loupe.ModelFileError):
        loupe.load(b"\x08\x07not an onnx model at all", name="broken.onnx")
    (tmp_path / "broken.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(loupe.ModelFileError):
        loupe.load(tmp_path / "broken.pth", arch="resnet18")
    with pytest.raises(loupe.LoupeError, match="device opencl:99|only"):
        loupe.load(b"x", name="x.onnx", device="opencl:99")
    # A non-contiguous array is made contiguous, not misread.
    strided = np.ascontiguousarray(np.transpose(x, (0, 1, 3, 2))).transpose(0, 1, 3, 2)
    assert not strided.flags["C_CONTIGUOUS"]
    assert np.array_equal(model.classify(strided).logits, model.classify(x).logits)
    model.close()
    with pytest.raises(loupe.ClosedModelError):
        model.classify(x)
    model.close()  # twice is fine


def test_models_on_different_threads_run_at_once(resnet18, mobilenet_v2):
    """Two models called from two threads at once give what each gives alone."""
    import threading
    x = photos(2, size=64)
    models = [loupe.from_torch(resnet18, x), loupe.from_torch(mobilenet_v2, x)]
    alone = [m.attribute(x, "integrated_gradients", target=[1, 2], steps=8).raw.numpy() for m in models]
    together, errors = [None, None], []

    def work(i):
        try:
            for _ in range(3):
                together[i] = models[i].attribute(x, "integrated_gradients", target=[1, 2], steps=8).raw.numpy()
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for a, b in zip(together, alone):
        assert np.array_equal(a, b)


def test_an_adapters_model_is_reused_and_freed_with_its_module(mobilenet_v2):
    import copy

    import loupe.captum
    from loupe import _torch
    module = copy.deepcopy(mobilenet_v2)
    x = photos(1, size=32)
    loupe.captum.Saliency(module).attribute(x, target=1)
    model = _torch.model_of(module, x)
    assert _torch.model_of(module, x) is model  # exported once
    with torch.no_grad():
        module.classifier[1].bias.add_(1)  # an in-place change: exported again
    assert _torch.model_of(module, x) is not model
    count = len(_torch._cache)
    del module
    gc.collect()
    assert len(_torch._cache) == count - 1


def test_memory_stays_flat_over_a_thousand_calls(resnet18):
    model = loupe.from_torch(resnet18, photos(1, size=32))
    x = photos(1, size=32).numpy()

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    for _ in range(50):
        model.attribute(x, "gradient", target=1)
    gc.collect()
    before = rss()
    for i in range(1000):
        model.attribute(x, "gradient", target=i % 1000)
        if i % 250 == 0:
            with pytest.raises(loupe.LoupeValueError):
                model.attribute(x, "gradient", target=-1)
    gc.collect()
    grown = rss() - before
    assert grown < 64 << 20, f"resident memory grew {grown >> 20} MiB over 1000 calls"
