"""Shared fixtures of the Python package's tests: torchvision models (seeded and the real
MobileNetV2 ImageNet weights), photos, and the reference libraries.

The tests import `loupe` as installed (`make python-test` installs the wheel into the venv first)
and run Captum and pytorch-grad-cam themselves: nothing here is a stored answer."""
import os
import pathlib
import sys
import types

import numpy as np
import pytest
import torch

# The package registry's torchvision wheels are built against CUDA torch; next to torch's CPU
# build their C extension (nms, roi_align: detection ops) does not load and `import torchvision`
# fails while registering its meta kernels. The classification models are plain Python.
if torch.version.cuda is None:
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torchvision  # noqa: E402

import loupe  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
REQUIRE_MODELS = os.environ.get("LOUPE_REQUIRE_MODELS") == "1"
REQUIRE_OPENCL = os.environ.get("LOUPE_REQUIRE_OPENCL") == "1"
CHECKPOINTS = pathlib.Path(os.environ.get("TORCH_HOME", pathlib.Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
MOBILENET_WEIGHTS = CHECKPOINTS / "mobilenet_v2-b0353104.pth"
# Photos without large flat areas: in the rocket photo's saturated sky PyTorch's max pooling
# sees exact ties that the exported graph's folded batch norm breaks by rounding (the gradient
# of two of 65,536 windows goes to a neighbouring pixel: 1.4% relative L2 of ResNet18's saliency).
PHOTOS = [ROOT / "Assets" / "chelsea.png"] + [ROOT / "Assets" / "photos" / n for n in ("astronaut.png", "coffee.png", "gravel.png")]


def pytest_sessionstart(session):
    assert not str(pathlib.Path(loupe.__file__).resolve()).startswith(str(ROOT / "python")), \
        f"loupe was imported from the source tree ({loupe.__file__}), not the installed wheel"
    if REQUIRE_OPENCL:
        assert any(d["name"].startswith("opencl:") for d in loupe.devices()), "no OpenCL device (LOUPE_REQUIRE_OPENCL=1)"


def missing(what):
    """Skips, or fails under LOUPE_REQUIRE_MODELS=1 (CI)."""
    if REQUIRE_MODELS:
        pytest.fail(f"{what} is missing (LOUPE_REQUIRE_MODELS=1; run make setup)")
    pytest.skip(f"{what} is missing (make setup installs it)")


def seeded(builder, seed):
    torch.manual_seed(seed)
    model = builder()
    # Random batch-norm statistics, so that folding them into the convolutions is exercised.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.fixture(scope="session")
def resnet18():
    return seeded(torchvision.models.resnet18, 1)


@pytest.fixture(scope="session")
def mobilenet_v2():
    return seeded(torchvision.models.mobilenet_v2, 2)


@pytest.fixture(scope="session")
def mobilenet_v2_imagenet():
    if not MOBILENET_WEIGHTS.exists():
        missing(str(MOBILENET_WEIGHTS))
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(MOBILENET_WEIGHTS, map_location="cpu"))
    return model.eval()


# The adapters' networks: seeded ResNet18 (random batch-norm statistics) and MobileNetV2 with its
# ImageNet weights. Seeded MobileNetV2 (the `mobilenet_v2` fixture, used by the API tests) moves
# its logits by less than float32 resolves for most perturbation and path methods: its cases were
# skipped or held to its own rounding, at a fifth of the suite's time.
NETWORKS = {
    "resnet18": ("resnet18", lambda m: m.layer4),
    "mobilenet_v2_imagenet": ("mobilenet_v2_imagenet", lambda m: m.features[-1]),
}


@pytest.fixture(params=list(NETWORKS))
def network(request):
    """(name, torch model, its CAM layer)."""
    fixture, layer = NETWORKS[request.param]
    model = request.getfixturevalue(fixture)
    return request.param, model, layer(model)


def photos(count, size=128):
    """`count` photos as a normalized batch [count, 3, size, size] (resize, centre crop)."""
    for p in PHOTOS[:count]:
        if not p.exists():
            missing(str(p))
    return torch.from_numpy(np.concatenate([loupe.load_image(p, resize=size + size // 7, crop=size) for p in PHOTOS[:count]]))


def relative_error(actual, expected):
    """max |actual - expected| / max |expected|."""
    a = actual.detach().double().numpy() if hasattr(actual, "detach") else np.asarray(actual, np.float64)
    e = expected.detach().double().numpy() if hasattr(expected, "detach") else np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    return float(np.abs(a - e).max() / max(np.abs(e).max(), 1e-30))
