#!/usr/bin/env bash
# The parity venv's torch is PyPI's CUDA wheel; the harness runs on the CPU. Stubs for the CUDA libraries the
# loader cannot find (tools/cuda-stubs.sh) go to SITE_PACKAGES/nvidia/cu13/lib, a folder on torch's RPATH.
#
#   tools/parity/cuda_stubs.sh SITE_PACKAGES
set -euo pipefail
exec "$(dirname "$0")/../cuda-stubs.sh" "$1/torch/lib" "$1/nvidia/cu13/lib"
