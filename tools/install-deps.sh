#!/usr/bin/env bash
# Installs every build and test dependency from Debian packages. Idempotent: a second run only checks.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git
  libtorch-dev            # libtorch 1.13, CPU
  libopenblas0-pthread    # without it libtorch falls back to reference BLAS (~16x slower)
  libsndfile1-dev         # audio decoding/encoding (WAV, FLAC, OGG, ...)
  libsoxr-dev             # resampling (the resampler librosa uses)
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libpcre2-dev            # Unicode regex for the Qwen2 pre-tokenizer
  catch2                  # unit tests (v2)
  espeak-ng sox           # regenerate the bundled example dataset (tools/make-example-dataset.sh)
  chromium                # renders eval's report.html in the browser test (tests/eval/test_report.cpp)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq || true
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
