#!/usr/bin/env bash
# Runs on a machine with an NVIDIA GPU and no Swift toolchain, from the repository root, with
# .build-gpu/bundle made by tools/gpu/pack.sh. Finds NVIDIA's OpenCL driver, registers it with
# the bundled ICD loader (OCL_ICD_VENDORS), then runs `loupe devices`, `loupe compare` (the GPU
# against the CPU reference: a model, a visualization), `loupe tune` (cached in $OUT/tuning.json)
# and `loupe bench` (kernels, whole networks, saliency methods, visualization steps), and
# tools/gpu/atlas.sh (atlas throughput) when Assets/photos was carried. Where
# python3 has PyTorch with CUDA, tools/bench_compare.py --device cuda puts Loupe (OpenCL on the
# GPU) beside PyTorch/Captum/pytorch-grad-cam (CUDA on the same GPU); wheels of the packages it
# needs that are missing there can travel in .whl/ (installed into .build-gpu/site); with the
# bundled Python package, tools/bench_python.py --device cuda does the same for loupe.captum and
# loupe.grad_cam against Captum and pytorch-grad-cam.
# Output goes to stdout and, when $OUT is set, to $OUT/*.txt / *.json.
# RUN_BUDGET_S (default 540) bounds the whole script: each step's timeout is cut to what is left,
# and steps past the budget are skipped, so the most important checks come first.
set -uo pipefail
cd "$(dirname "$0")/../.."
echo "== GPU"; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
source tools/gpu/env.sh || exit $?

budget=${RUN_BUDGET_S:-540}
step() {  # step LIMIT_S COMMAND...: run with a timeout of LIMIT_S or what is left of the budget
  local limit=$1 left=$((budget - SECONDS - 5)); shift
  if [ "$left" -lt 15 ]; then echo "(skipped, run budget spent: $*)"; return 0; fi
  [ "$limit" -gt "$left" ] && limit=$left
  timeout "$limit" "$@"; local rc=$?
  [ "$rc" -eq 124 ] && echo "(timed out after ${limit} s: $*)"
  return $rc
}


echo "== loupe devices"; "$bundle/loupe" devices 2>&1 | tee "$out/devices.txt"
echo "== correctness on the GPU: every layer and the input gradient against the CPU reference"
{
step 90 "$bundle/loupe" compare --image "$bundle/chelsea.png"
step 90 "$bundle/loupe" compare --model resnet18 --random-weights 1 --image "$bundle/chelsea.png"
step 90 "$bundle/loupe" compare --visualize class:948 --steps 4 --size 64
} 2>&1 | tee "$out/compare.txt"
echo "== loupe tune (the tiled family's tile candidates on the GPU; the winner is cached for the runs below)"
export LOUPE_TUNING_CACHE="$out/tuning.json"
step 120 "$bundle/loupe" tune 2>&1 | tee "$out/tune.txt"
echo "== Loupe (OpenCL) against PyTorch (CUDA) on this GPU"
if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  # --record: the JSON that make bench-tables turns into docs/gpu.md's table (bench/results/).
  PYTHONUNBUFFERED=1 step 240 python3 tools/bench_compare.py --device cuda --loupe "$bundle/loupe" --batch 1,16 --runs 5 \
    --record "$out/gpu-compare.json" --machine "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)" 2>&1 | tee "$out/bench-compare.txt"
else
  echo "(no PyTorch with CUDA here: skipped)"
fi
echo "== the Python adapters (loupe.captum, loupe.grad_cam; Loupe on OpenCL) against Captum and pytorch-grad-cam on CUDA"
if [ -d "$bundle/python/loupe" ] && python3 -c 'import torch, torchvision, captum, pytorch_grad_cam, onnx, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  PYTHONPATH="$PWD/$bundle/python:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 step 240 python3 tools/bench_python.py --device cuda --batch 1,16 --runs 3 \
    --record "$out/gpu-python.json" --machine "$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)" 2>&1 | tee "$out/bench-python.txt"
else
  echo "(no bundled Python package, or no torch with CUDA, torchvision, captum, grad-cam and onnx here: skipped)"
fi
echo "== loupe bench (launch cost; conv 3x3 64->64 56x56; the GEMV, pooling and depthwise launch shapes)"
step 60 "$bundle/loupe" bench --filter "conv 3x3 64->64 56x56,linear 25088,maxpool 64x112x112,conv dw 3x3 144->144 56x56" 2>&1 | tee "$out/bench-conv.txt"
echo "== whole networks: wall (no profiling) against device time, batch 1 and 16"
for m in resnet18 mobilenet_v2; do step 40 "$bundle/loupe" bench --model $m --batch 1,16 2>&1 | tail -6; done | tee "$out/bench-models.txt"
echo "== loupe atlas throughput (tools/gpu/atlas.sh; needs Assets/photos carried)"
if [ -d Assets/photos ]; then step 200 bash tools/gpu/atlas.sh 2>&1; else echo "(no Assets/photos here: skipped)"; fi
echo "== loupe bench (all shapes, batch 1 and 8)"
step 400 "$bundle/loupe" bench ${BENCH_ARGS:-} 2>&1 | tee "$out/bench.txt"
