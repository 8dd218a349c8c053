#!/usr/bin/env bash
# Builds a self-contained loupe for a machine with a GPU but no Swift toolchain, and packs it
# with the OpenCL ICD loader into .build-gpu/bundle (git-ignored; carry it to that machine).
#   tools/gpu/pack.sh            then, on the GPU machine:   tools/gpu/run.sh
# (carry .build-gpu/bundle.tar.xz; run.sh unpacks it when the bundle folder is not there)
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product loupe --static-swift-stdlib --scratch-path .build-static
rm -rf .build-gpu/bundle
mkdir -p .build-gpu/bundle/lib
# Stripped (the static Foundation makes it large).
strip -o .build-gpu/bundle/loupe .build-static/release/loupe
# Every shared library the binary needs except glibc, libstdc++, libgcc_s and zlib (the GPU
# machine has newer ones, which its Python packages need, so older copies must not shadow them):
# the ICD loader (libOpenCL.so.1; vendor drivers are found at run time), libjpeg-turbo, libpng,
# cairo and what cairo pulls in (pixman, fontconfig, freetype, xcb, ...), which a GPU machine's
# image may lack.
loader=$(ldd .build-gpu/bundle/loupe | awk '/libOpenCL/ {print $3}')
for lib in $(ldd .build-gpu/bundle/loupe | awk '$3 ~ /^\// {print $3}'); do
  case "$(basename "$lib")" in libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++*|libgcc_s*|libz.so*) continue ;; esac
  cp -L "$lib" .build-gpu/bundle/lib/
done
ldd .build-gpu/bundle/loupe | awk '{print $1}' > .build-gpu/bundle/needed-libraries.txt
# The bundled photo and, when installed, the default model's weights (14 MB), for run.sh's checks.
cp Assets/chelsea.png .build-gpu/bundle/
weights="${TORCH_HOME:-$HOME/.cache/torch}/hub/checkpoints/mobilenet_v2-b0353104.pth"
if [ -f "$weights" ]; then mkdir -p .build-gpu/bundle/torch/hub/checkpoints && cp "$weights" .build-gpu/bundle/torch/hub/checkpoints/; fi
# The Python package with libLoupeC.so (Swift's runtime linked in, as `make wheel` builds it; the
# libraries it needs are those of bundle/lib), for run.sh's adapters against Captum on CUDA.
swift build -c release --product LoupeC --static-swift-stdlib -Xswiftc -static-stdlib --scratch-path .build-wheel
mkdir -p .build-gpu/bundle/python/loupe/_native
cp python/loupe/*.py .build-gpu/bundle/python/loupe/
version=$(sed -n 's/.*static let number = "\(.*\)".*/\1/p' Sources/Models/Version.swift)
echo "__version__ = \"$version\"" > .build-gpu/bundle/python/loupe/_version.py
strip -o .build-gpu/bundle/python/loupe/_native/libLoupeC.so .build-wheel/release/libLoupeC.so
du -sh .build-gpu/bundle
# One compressed file to carry (about 45 MB with the Python part; the device tool carries at most 64 MiB).
tar -cJf .build-gpu/bundle.tar.xz -C .build-gpu bundle
du -sh .build-gpu/bundle.tar.xz
echo "packed: .build-gpu/bundle (loupe + $(basename "$loader")) and .build-gpu/bundle.tar.xz: carry .build-gpu/bundle.tar.xz (and Assets/photos for the atlas step)"
