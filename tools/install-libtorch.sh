#!/usr/bin/env bash
# Unpacks the one libtorch every build uses — the C++ library inside PyPI's torch wheel, pinned by version and
# sha256 — into a prefix outside the tree. No Python environment is created or needed at run time: a wheel is
# a zip, and only its torch/lib, torch/include and torch/share/cmake are kept.
#
#   tools/install-libtorch.sh [--cuda] [--prefix DIR]
#     default prefix: $ALEXANDRIA_DEPS/libtorch-2.11.0 (CPU) or $ALEXANDRIA_DEPS/libtorch-2.11.0-cuda (--cuda);
#     $ALEXANDRIA_DEPS defaults to ~/.cache/alexandria
#
# CPU prefix: libtorch_cpu.so + libc10.so + the wheel's libgomp, plus libcudart.so.13 and libcupti.so.13 from
# NVIDIA's own PyPI wheels: PyPI's libtorch_cpu.so is linked against those two (its profiler), although a CPU
# run never calls them. --cuda adds the wheel's CUDA parts (libtorch_cuda.so, libc10_cuda.so, ...) for
# tools/build-cuda.sh; their CUDA dependencies (cuBLAS, cuDNN, ...) come from the CUDA toolkit at link time and
# from the GPU machine's own torch at run time.
# Idempotent: a complete prefix is recognised by its stamp file and left alone.
set -euo pipefail

TORCH_VERSION=2.11.0
TORCH_WHEEL=torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl
TORCH_SHA256=7aa2f9bbc6d4595ba72138026b2074be1233186150e9292865e04b7a63b8c67a
CUDART_WHEEL=nvidia_cuda_runtime-13.0.96-py3-none-manylinux2014_x86_64.manylinux_2_17_x86_64.whl
CUDART_SHA256=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
CUPTI_WHEEL=nvidia_cuda_cupti-13.0.85-py3-none-manylinux_2_25_x86_64.whl
CUPTI_SHA256=4eb01c08e859bf924d222250d2e8f8b8ff6d3db4721288cf35d14252a4d933c8

deps="${ALEXANDRIA_DEPS:-$HOME/.cache/alexandria}"
prefix=""
cuda=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=1 ;;
    --prefix) prefix="$2"; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "install-libtorch: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$prefix" ]; then
  prefix="$deps/libtorch-$TORCH_VERSION"
  if [ $cuda -eq 1 ]; then prefix="$prefix-cuda"; fi
fi
stamp="$prefix/.alexandria-cpu-$TORCH_SHA256"
cuda_stamp="$prefix/.alexandria-cuda-$TORCH_SHA256"
if [ -f "$stamp" ] && { [ $cuda -eq 0 ] || [ -f "$cuda_stamp" ]; }; then
  echo "install-libtorch: libtorch $TORCH_VERSION present in $prefix"
  exit 0
fi

wheels="$deps/wheels"
mkdir -p "$wheels"

# fetch NAME==VERSION FILE SHA256: pip is only the download client here (no install, any local Python).
fetch() {
  local spec="$1" file="$2" sha="$3"
  if [ ! -f "$wheels/$file" ] || ! echo "$sha  $wheels/$file" | sha256sum -c --quiet - 2>/dev/null; then
    rm -f "$wheels/$file"
    echo "install-libtorch: downloading $spec"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
      --abi cp311 --abi abi3 --abi none \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 -d "$wheels" "$spec"
  fi
  if ! echo "$sha  $wheels/$file" | sha256sum -c --quiet -; then
    echo "install-libtorch: $file does not match its pinned sha256" >&2
    exit 1
  fi
}

fetch "torch==$TORCH_VERSION" "$TORCH_WHEEL" "$TORCH_SHA256"
fetch "nvidia-cuda-runtime==13.0.96" "$CUDART_WHEEL" "$CUDART_SHA256"
fetch "nvidia-cuda-cupti==13.0.85" "$CUPTI_WHEEL" "$CUPTI_SHA256"

tmp="$(mktemp -d "$deps/.libtorch-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
libs=(libtorch_cpu.so libc10.so libgomp.so.1)
[ $cuda -eq 1 ] && libs+=(libtorch_cuda.so libc10_cuda.so libtorch.so libtorch_nvshmem.so libtorch_cuda_linalg.so)
patterns=('torch/include/*' 'torch/share/cmake/*')
for l in "${libs[@]}"; do patterns+=("torch/lib/$l"); done
unzip -q -o "$wheels/$TORCH_WHEEL" "${patterns[@]}" -d "$tmp"
unzip -q -o -j "$wheels/$CUDART_WHEEL" 'nvidia/cu13/lib/libcudart.so.13' -d "$tmp/torch/lib"
unzip -q -o -j "$wheels/$CUPTI_WHEEL" 'nvidia/cu13/lib/libcupti.so.13' -d "$tmp/torch/lib"
echo "$TORCH_VERSION" > "$tmp/torch/version.txt"
touch "$tmp/torch/.alexandria-cpu-$TORCH_SHA256"
[ $cuda -eq 1 ] && touch "$tmp/torch/.alexandria-cuda-$TORCH_SHA256"
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv "$tmp/torch" "$prefix"
echo "install-libtorch: libtorch $TORCH_VERSION unpacked into $prefix"
