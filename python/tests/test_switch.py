"""A Captum tutorial script that switches to Loupe by its import line alone, and the wheel in a
fresh venv with no Swift toolchain on PATH."""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import MOBILENET_WEIGHTS, PHOTOS, ROOT, missing

# In the style of Captum's "Model interpretation for pretrained ResNet" tutorial: IG with a
# baseline, NoiseTunnel over IG, LayerGradCam on model.layer4 upsampled to the input.
TUTORIAL = '''
import sys, types, numpy as np, torch
if torch.version.cuda is None:
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
import torchvision
from captum.attr import IntegratedGradients, NoiseTunnel, LayerGradCam, LayerAttribution

torch.manual_seed(0)
model = torchvision.models.resnet18().eval()
x = torch.from_numpy(np.load(sys.argv[1]))
target = model(x).argmax(1)

ig = IntegratedGradients(model)
attributions, delta = ig.attribute(x, baselines=x * 0 - 1, target=target, n_steps=20, return_convergence_delta=True)
noise_tunnel = NoiseTunnel(ig)
torch.manual_seed(1)
smooth = noise_tunnel.attribute(x, nt_samples=3, nt_type="smoothgrad_sq", target=target, n_steps=10, stdevs=0.2)
layer_gc = LayerGradCam(model, model.layer4)
cam = LayerAttribution.interpolate(layer_gc.attribute(x, target=target), x.shape[2:], "bilinear")
np.savez(sys.argv[2], attributions=attributions.detach().numpy(), delta=delta.detach().numpy(),
         smooth=smooth.detach().numpy(), cam=cam.detach().numpy())
'''


def run_script(tmp_path, source, name):
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    out = tmp_path / f"{name}.npz"
    subprocess.run([sys.executable, str(script), str(tmp_path / "x.npy"), str(out)], check=True, cwd=tmp_path)
    return np.load(out)


def test_a_captum_script_switches_by_its_import_line(tmp_path):
    import loupe
    for p in PHOTOS[:2]:
        if not p.exists():
            missing(str(p))
    np.save(tmp_path / "x.npy", np.concatenate([loupe.load_image(p, resize=146, crop=128) for p in PHOTOS[:2]]))
    switched = TUTORIAL.replace("from captum.attr import", "from loupe.captum import")
    assert switched.count("loupe.captum") == 1
    expected = run_script(tmp_path, TUTORIAL, "captum_script")
    got = run_script(tmp_path, switched, "loupe_script")
    for key in ("attributions", "smooth", "cam"):
        error = np.abs(got[key] - expected[key]).max() / np.abs(expected[key]).max()
        assert error < 2e-3, f"{key}: {error:.2e}"
    assert np.abs(got["delta"] - expected["delta"]).max() < 1e-2 * max(np.abs(expected["delta"]).max(), 1e-3)


def wheel():
    """The wheel `make python-test` installed (dist/test, `make test-wheel`), else `make wheel`'s."""
    for folder in (ROOT / "dist" / "test", ROOT / "dist"):
        wheels = sorted(folder.glob("loupe-*-py3-none-manylinux_*_x86_64.whl"))
        if wheels:
            return wheels[-1]
    pytest.fail("no wheel in dist/test or dist/ (make test-wheel or make wheel)")


def test_the_wheel_installs_and_runs_in_a_fresh_venv_without_swift(tmp_path):
    if not MOBILENET_WEIGHTS.exists():
        missing(str(MOBILENET_WEIGHTS))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    # numpy is the one dependency: from the package registry, or the local cache pip keeps.
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(wheel())], check=True)
    env = {"HOME": os.environ.get("HOME", "/root"), "PATH": "/usr/bin:/bin", "TORCH_HOME": str(MOBILENET_WEIGHTS.parents[2])}
    assert subprocess.run(["sh", "-c", "command -v swift"], env=env, capture_output=True).returncode != 0
    program = (
        "import loupe; m = loupe.load('mobilenet_v2'); x = loupe.load_image(%r); "
        "a = m.attribute(x, 'gradcam'); print(m.device, a.targets[0], a.map.shape, round(float(a.map.max()), 3))" % str(PHOTOS[0]))
    out = subprocess.run([str(venv / "bin" / "python"), "-c", program], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "285 (1, 224, 224) 1.0" in out.stdout, out.stdout
    # The command comes with the wheel.
    cli = subprocess.run([str(venv / "bin" / "loupe"), "classify", "--image", str(PHOTOS[0]), "--top", "1"],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert cli.returncode == 0 and "Egyptian cat" in cli.stdout, cli.stderr
    # No OpenCL platform: a warning that says how to get one, and the CPU reference.
    empty = tmp_path / "no-icds"
    empty.mkdir()
    out = subprocess.run([str(venv / "bin" / "python"), "-c", "import loupe; print(loupe.load('mobilenet_v2').device)"],
                         env={**env, "OCL_ICD_VENDORS": str(empty)}, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "cpu", out.stderr
    assert "pocl-opencl-icd" in out.stderr and "RuntimeWarning" in out.stderr
