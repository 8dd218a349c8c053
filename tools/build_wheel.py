#!/usr/bin/env python3
"""Builds the Python wheel of Loupe from python/loupe and the release build's libLoupeC.so and
`loupe` binary (`make wheel` runs it, then auditwheel copies in every shared library they need
but glibc's). Usage: build_wheel.py BUILD_DIR OUT_DIR; prints the wheel's path."""
import base64
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME, TAG = "loupe", "py3-none-linux_x86_64"


def version():
    """LoupeVersion.number of Sources/Models/Version.swift."""
    with open(os.path.join(ROOT, "Sources", "Models", "Version.swift")) as f:
        for line in f:
            if "static let number" in line:
                return line.split("=")[1].strip().strip('"')
    raise SystemExit("build_wheel: no LoupeVersion.number in Sources/Models/Version.swift")


METADATA = """Metadata-Version: 2.1
Name: loupe
Version: {version}
Summary: Attribution, feature visualization and checks of image networks on any OpenCL device
License: MIT
Requires-Python: >=3.9
Requires-Dist: numpy
Provides-Extra: torch
Requires-Dist: torch; extra == "torch"
Requires-Dist: onnx; extra == "torch"
Description-Content-Type: text/markdown

Loupe computes saliency maps, CAMs, Integrated Gradients, feature visualizations and the
randomization and deletion/insertion checks of image networks in its own Swift library, on any
OpenCL device (a GPU, or PoCL on a CPU) or its CPU reference. `loupe.captum` and
`loupe.grad_cam` take Captum's and pytorch-grad-cam's calls, `loupe.zennit` zennit's. See docs/python.md.
"""


def main():
    build, out = sys.argv[1], sys.argv[2]
    v = version()
    files = {}  # path in the wheel -> (bytes, executable)
    package = os.path.join(ROOT, "python", "loupe")
    for folder, dirs, names in sorted(os.walk(package)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    files["loupe/" + os.path.relpath(path, package).replace(os.sep, "/")] = (f.read(), False)
    files["loupe/_version.py"] = (f'__version__ = "{v}"\n'.encode(), False)
    with open(os.path.join(ROOT, "Sources", "LoupeC", "loupe.h"), "rb") as f:
        files["loupe/_native/loupe.h"] = (f.read(), False)
    with tempfile.TemporaryDirectory() as tmp:
        for binary, executable in (("libLoupeC.so", False), ("loupe", True)):
            source = os.path.join(build, binary)
            if not os.path.exists(source):
                raise SystemExit(f"build_wheel: {source} is missing (swift build -c release --product LoupeC / loupe)")
            stripped = os.path.join(tmp, binary)
            shutil.copy(source, stripped)
            subprocess.run(["strip", "--strip-unneeded", stripped], check=True)
            with open(stripped, "rb") as f:
                files[f"loupe/_native/{binary}"] = (f.read(), executable)
    info = f"{NAME}-{v}.dist-info"
    files[f"{info}/METADATA"] = (METADATA.format(version=v).encode(), False)
    files[f"{info}/WHEEL"] = (f"Wheel-Version: 1.0\nGenerator: loupe build_wheel.py\nRoot-Is-Purelib: false\nTag: {TAG}\n".encode(), False)
    files[f"{info}/entry_points.txt"] = (b"[console_scripts]\nloupe = loupe.__main__:main\n", False)
    record = []
    for path, (data, _) in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = ("\n".join(record).encode() + b"\n", False)
    os.makedirs(out, exist_ok=True)
    wheel = os.path.join(out, f"{NAME}-{v}-{TAG}.whl")
    tmp_wheel = wheel + ".tmp"
    with zipfile.ZipFile(tmp_wheel, "w", zipfile.ZIP_DEFLATED) as z:
        for path, (data, executable) in files.items():
            entry = zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
            z.writestr(entry, data)
    os.replace(tmp_wheel, wheel)
    print(wheel)


if __name__ == "__main__":
    main()
