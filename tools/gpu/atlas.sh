#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU (see run.sh), from the repository root, with
# .build-gpu/bundle made by tools/gpu/pack.sh and Assets/photos carried along: an atlas of 48
# channels of MobileNetV2's features.10 and features.14 at the default settings (512 steps,
# 224x224) beside 384 images (the 12 photos, 32 times each), for the atlas throughput on the GPU,
# then a rerun that only rebuilds the pages. Output on stdout only (run.sh keeps $OUT for its files).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tools/gpu/env.sh >/dev/null || exit 1
images=$(mktemp -d); site=$(mktemp -d)/atlas
for i in $(seq -w 1 32); do for f in Assets/photos/*; do ln -sf "$PWD/$f" "$images/$i-$(basename "$f")"; done; done
echo "== atlas on the GPU: MobileNetV2 features.10 and features.14, channels 0..47, default settings, $(ls "$images" | wc -l) images"
nvidia-smi --query-gpu=name --format=csv,noheader
args=(atlas --layer features.10,features.14 --channels 0..47 --images "$images" --out "$site")
time "$bundle/loupe" "${args[@]}" 2>&1 | grep -v "step \|images [0-9]*/"
echo "== rerun (every unit done: the pages only)"
time "$bundle/loupe" "${args[@]}" 2>&1 | grep -v "step \|images [0-9]*/" | tail -3
