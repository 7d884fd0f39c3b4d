#!/usr/bin/env bash
# The README's test command: install dependencies, build everything, run every test (unit + command line).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DALEXANDRIA_BUILD_TESTS=ON
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)"
