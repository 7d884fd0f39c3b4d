#!/usr/bin/env bash
# The CUDA build: the whole project against the CUDA libtorch inside PyPI's torch 2.11.0 wheel (built for CUDA
# 13.0, the GPU machine's torch 2.11.0+cu130), with the CUDA 13.0 toolkit for headers and link-time libraries.
# It compiles and links on a machine without a GPU; the CPU test suite then runs with it as well.
#
#   tools/build-cuda.sh [BUILD_DIR] [--test]          (default build-cuda; --test also runs ctest on the CPU)
#
# CUDA_HOME (default /usr/local/cuda) names the toolkit. On the GPU machine tools/gpu-run.sh builds against that
# machine's own torch instead (Torch_DIR), with -DALEXANDRIA_LIBTORCH=system -DALEXANDRIA_CUDA=ON.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build-cuda
run_tests=0
for a in "$@"; do
  case "$a" in
    --test) run_tests=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "build-cuda: unknown option '$a'" >&2; exit 2 ;;
    *) build="$a" ;;
  esac
done
cuda="${CUDA_HOME:-/usr/local/cuda}"
if [ ! -x "$cuda/bin/nvcc" ]; then
  echo "build-cuda: no CUDA toolkit at $cuda (set CUDA_HOME)" >&2
  exit 2
fi
tools/install-deps.sh $([ $run_tests -eq 1 ] && echo --test)
tools/install-libtorch.sh --cuda
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DALEXANDRIA_CUDA=ON -DCUDAToolkit_ROOT="$cuda" \
  -DALEXANDRIA_LIBTORCH="${ALEXANDRIA_DEPS:-$HOME/.cache/alexandria}/libtorch-2.11.0-cuda" \
  -DALEXANDRIA_BUILD_TESTS=$([ $run_tests -eq 1 ] && echo ON || echo OFF)
cmake --build "$build" -j"$(nproc)"
if [ $run_tests -eq 1 ]; then
  # libtorch_cuda.so NEEDs cuFile, cuSPARSELt and NVSHMEM, which the GPU machine's torch brings and this machine
  # lacks: the test run loads abort-only stubs for them (never called: the tests run on the CPU here).
  tools/cuda-stubs.sh "${ALEXANDRIA_DEPS:-$HOME/.cache/alexandria}/libtorch-2.11.0-cuda/lib" "$build/cuda-stubs"
  LD_LIBRARY_PATH="$PWD/$build/cuda-stubs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
fi
