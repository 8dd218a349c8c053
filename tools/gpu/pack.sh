#!/usr/bin/env bash
# Builds a self-contained loupe for a machine with a GPU but no Swift toolchain, and packs it
# with the OpenCL ICD loader into .build-gpu/bundle (git-ignored; carry it to that machine).
#   tools/gpu/pack.sh            then, on the GPU machine:   tools/gpu/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
swift build -c release --product loupe --static-swift-stdlib --scratch-path .build-static
rm -rf .build-gpu/bundle
mkdir -p .build-gpu/bundle/lib
cp .build-static/release/loupe .build-gpu/bundle/
# The ICD loader the binary links against (libOpenCL.so.1); vendor drivers are found at run time.
loader=$(ldd .build-gpu/bundle/loupe | awk '/libOpenCL/ {print $3}')
cp -L "$loader" .build-gpu/bundle/lib/
ldd .build-gpu/bundle/loupe | awk '{print $1}' > .build-gpu/bundle/needed-libraries.txt
du -sh .build-gpu/bundle
echo "packed: .build-gpu/bundle (loupe + $(basename "$loader"))"
