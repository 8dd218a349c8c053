#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU and no Swift toolchain, from the repository root, with
# .build-gpu/bundle made by tools/gpu/pack.sh. Finds NVIDIA's OpenCL driver, registers it with
# the bundled ICD loader (OCL_ICD_VENDORS), then runs `loupe devices`, `loupe compare` (the GPU
# against the CPU reference: a model, a visualization), `loupe tune` (cached in $OUT/tuning.json)
# and `loupe bench` (kernels, whole networks, saliency methods, visualization steps).
# Output goes to stdout and, when $OUT is set, to $OUT/*.txt / *.json.
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=.build-gpu/bundle
out=${OUT:-$(mktemp -d)}
[ -x "$bundle/loupe" ] || [ ! -f .build-gpu/bundle.tar.xz ] || tar -xJf .build-gpu/bundle.tar.xz -C .build-gpu
[ -x "$bundle/loupe" ] || { echo "no $bundle/loupe: run tools/gpu/pack.sh first"; exit 1; }

echo "== GPU"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/nvidia-smi.txt"

echo "== looking for NVIDIA's OpenCL library"
lib=""
for candidate in $(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so/ {print $NF}') \
    /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/lib64/libnvidia-opencl.so.1 \
    /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/libnvidia-opencl.so.1 \
    $(find / -xdev -name 'libnvidia-opencl.so*' 2>/dev/null | head -5); do
  if [ -e "$candidate" ]; then lib=$candidate; break; fi
done
if [ -z "$lib" ]; then
  echo "NVIDIA OpenCL library not found. Searched ldconfig, the usual lib folders and the filesystem."
  echo "Present NVIDIA libraries:"; (ldconfig -p | grep -i nvidia; find / -xdev -name 'libnvidia*' 2>/dev/null | head -40) | tee "$out/nvidia-libs.txt"
  exit 2
fi
echo "found: $lib"
mkdir -p "$out/icd"
echo "$lib" > "$out/icd/nvidia.icd"
export OCL_ICD_VENDORS="$out/icd"
export LD_LIBRARY_PATH="$PWD/$bundle/lib:${LD_LIBRARY_PATH:-}"

export TORCH_HOME="$PWD/$bundle/torch"

echo "== loupe devices"; "$bundle/loupe" devices 2>&1 | tee "$out/devices.txt"
echo "== correctness on the GPU: every layer and the input gradient against the CPU reference"
timeout 120 "$bundle/loupe" compare --image "$bundle/chelsea.png" 2>&1 | tee "$out/compare-mobilenet_v2.txt"
timeout 120 "$bundle/loupe" compare --model resnet18 --random-weights 1 --image "$bundle/chelsea.png" 2>&1 | tee "$out/compare-resnet18.txt"
timeout 120 "$bundle/loupe" compare --visualize class:948 --steps 4 --size 64 2>&1 | tee "$out/compare-visualize.txt"
echo "== loupe tune (the tiled family's tile candidates on the GPU; the winner is cached for the runs below)"
export LOUPE_TUNING_CACHE="$out/tuning.json"
timeout 200 "$bundle/loupe" tune 2>&1 | tee "$out/tune.txt"
echo "== whole networks, saliency and feature visualization"
timeout 120 "$bundle/loupe" bench --model mobilenet_v2 --batch 1,16 2>&1 | tee "$out/bench-mobilenet_v2.txt"
timeout 120 "$bundle/loupe" bench --model resnet18 --saliency gradient,guided_backprop,gradcam --batch 1,16 2>&1 | tee "$out/bench-saliency.txt"
timeout 120 "$bundle/loupe" bench --model mobilenet_v2 --visualize --batch 1,16 --runs 8 2>&1 | tee "$out/bench-visualize.txt"
echo "== loupe bench (conv 3x3 64->64 56x56)"
"$bundle/loupe" bench --filter "conv 3x3 64->64 56x56" 2>&1 | tee "$out/bench-conv.txt"
echo "== loupe bench (all shapes, batch 1 and 8)"
timeout 400 "$bundle/loupe" bench ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.txt"
