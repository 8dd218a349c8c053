# Sourced (not run) on a machine with an NVIDIA GPU and no Swift toolchain, from the repository
# root: unpacks .build-gpu/bundle.tar.xz (made by tools/gpu/pack.sh) when needed, registers
# NVIDIA's OpenCL driver with the bundled ICD loader, and sets $bundle, $out and the library
# path, so that "$bundle/loupe" runs on the GPU. Used by tools/gpu/run.sh and for single checks:
#   source tools/gpu/env.sh && "$bundle/loupe" bench --model resnet18
bundle=.build-gpu/bundle
out=${OUT:-$(mktemp -d)}
[ -x "$bundle/loupe" ] || [ ! -f .build-gpu/bundle.tar.xz ] || tar -xJf .build-gpu/bundle.tar.xz -C .build-gpu
[ -x "$bundle/loupe" ] || { echo "no $bundle/loupe: run tools/gpu/pack.sh first"; return 1 2>/dev/null || exit 1; }

lib=""
for candidate in $(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so/ {print $NF}') \
    /usr/lib/x86_64-linux-gnu/libnvidia-opencl.so.1 /usr/lib64/libnvidia-opencl.so.1 \
    /usr/local/nvidia/lib64/libnvidia-opencl.so.1 /usr/lib/libnvidia-opencl.so.1 \
    $(find / -xdev -name 'libnvidia-opencl.so*' 2>/dev/null | head -5); do
  if [ -e "$candidate" ]; then lib=$candidate; break; fi
done
if [ -z "$lib" ]; then
  echo "NVIDIA OpenCL library not found. Searched ldconfig, the usual lib folders and the filesystem."
  echo "Present NVIDIA libraries:"; (ldconfig -p | grep -i nvidia; find / -xdev -name 'libnvidia*' 2>/dev/null | head -40)
  return 2 2>/dev/null || exit 2
fi
echo "NVIDIA OpenCL: $lib"
mkdir -p .build-gpu/icd
echo "$lib" > .build-gpu/icd/nvidia.icd
export OCL_ICD_VENDORS="$PWD/.build-gpu/icd"
export LD_LIBRARY_PATH="$PWD/$bundle/lib:${LD_LIBRARY_PATH:-}"
export TORCH_HOME="$PWD/$bundle/torch"

# Wheels carried in .whl/ (packages the machine's Python lacks: captum, grad-cam, ...).
if ls .whl/*.whl >/dev/null 2>&1 && [ ! -d .build-gpu/site ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target .build-gpu/site .whl/*.whl
fi
[ -d .build-gpu/site ] && export PYTHONPATH="$PWD/.build-gpu/site${PYTHONPATH:+:$PYTHONPATH}"
true
