#!/usr/bin/env bash
# Installs every build dependency: Debian packages, and libtorch from PyPI's torch wheel (tools/install-libtorch.sh,
# pinned by sha256, unpacked outside the tree). Idempotent: a second run only checks.
#   tools/install-deps.sh          what building and running alexandria needs (the README's first command)
#   tools/install-deps.sh --test   also what the test suite needs (the README's test command)
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  build-essential cmake pkg-config git
  clang                   # the compiler the build prefers: half the build time of GCC (CMakeLists.txt)
  python3-pip unzip       # the download client and unpacker for libtorch's wheel (no Python at run time)
  libsndfile1-dev         # audio decoding/encoding (WAV, FLAC, OGG, ...)
  libsoxr-dev             # resampling (the resampler librosa uses)
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libpcre2-dev            # Unicode regex for the Qwen2 pre-tokenizer
)
test_packages=(
  catch2                  # unit tests (v2)
  espeak-ng sox           # regenerate the bundled example dataset (tools/make-example-dataset.sh)
  chromium                # renders eval's report.html in the browser test (tests/eval/test_report.cpp)
)
if [ "${1:-}" = "--test" ]; then packages+=("${test_packages[@]}"); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# A python3 with pip of its own (pyenv, a venv) serves as well as Debian's python3-pip.
if python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
else
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
tools/install-libtorch.sh
