#!/usr/bin/env bash
# Regenerates the parity models and fixtures for a seed and runs the C++ comparison against them.
#
#   tools/parity/run.sh --seed N --out DIR [--build BUILD_DIR] [--venv VENV] [--stages 2,3,4,5,6,7,8] [--no-test]
#
# 1. make_model writes every model of generate.py's MODELS (tiny-1.7b / tiny-0.6b shapes, bf16, the real
#    tokenizer) into DIR/models (not part of the fixtures: tests rebuild them in-process and check their sha256);
# 2. the official qwen-tts package (parity venv, tools/parity/setup.sh) writes the fixtures into DIR;
# 3. the tokenizer corpus fixture is written by tools/tokenizer-reference/generate.py;
# 4. build/tests/test_parity runs against DIR (ALEXANDRIA_PARITY_DIR=DIR) and prints the figures table.
# `--out tests/data/parity --seed 1` rewrites the committed fixtures (then delete tests/data/parity/models and
# figures.json). The Python steps run under nice -n 10 already: do not nice run.sh itself (nice adds up).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seed="" out="" build="$root/build" venv="$HOME/.cache/alexandria/parity-venv" stages="2,3,4,5,6,7,8" test=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seed) seed="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --venv) venv="$2"; shift 2 ;;
    --stages) stages="$2"; shift 2 ;;
    --no-test) test=0; shift ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$seed" && -n "$out" ]] || { echo "run.sh: --seed N and --out DIR are required" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "run.sh: --seed must be a non-negative integer, got '$seed'" >&2; exit 2; }
shared="${ALEXANDRIA_SHARED_DIR:-$root/../shared}"
py="$venv/bin/python"
[[ -x "$py" ]] || { echo "run.sh: no parity venv at $venv (run tools/parity/setup.sh)" >&2; exit 2; }
[[ -x "$build/make_model" ]] || { echo "run.sh: $build/make_model not built (abuild make_model test_parity)" >&2; exit 2; }
mkdir -p "$out/models"
out="$(cd "$out" && pwd)"

models=$("$py" -c "import sys; sys.path.insert(0, '$here'); import generate; print(' '.join(f'{n}:{p}:{t}' for n, (p, t) in generate.MODELS.items()))")
for m in $models; do
  IFS=: read -r name preset type <<< "$m"
  "$build/make_model" --preset "$preset" --type "$type" --seed "$seed" --dtype bf16 \
    --tokenizer "$shared/reference/text-tokenizer" --out "$out/models/$name"
done
"$py" "$root/tools/tokenizer-reference/generate.py" --reference "$shared/reference/text-tokenizer" \
  --corpus "$root/tests/data/tokenizer/corpus.json" --extra-corpus --compact --out "$out/tokenizer.json"
rm -f "$out/manifest.json"
first="$(echo "$stages" | tr ',' '\n' | grep -v '^8$' | paste -sd, -)"
nice -n 10 "$py" "$here/generate.py" --models "$out/models" --shared "$shared" --out "$out" --seed "$seed" \
  --stages "$first"
if [[ ",$stages," == *",8,"* ]]; then
  # stage 8 loads OUR adapter folders with peft: write them first (a hidden test case of test_parity)
  [[ -x "$build/tests/test_parity" ]] || { echo "run.sh: $build/tests/test_parity not built" >&2; exit 2; }
  ALEXANDRIA_PARITY_DIR="$out" ALEXANDRIA_PARITY_ADAPTER_OUT="$out" ALEXANDRIA_SOURCE_DIR="$root" \
    ALEXANDRIA_SHARED_DIR="$shared" "$build/tests/test_parity" "[.write-adapter]"
  nice -n 10 "$py" "$here/generate.py" --models "$out/models" --shared "$shared" --out "$out" --seed "$seed" \
    --stages 8
fi
if [[ "$test" == 1 ]]; then
  [[ -x "$build/tests/test_parity" ]] || { echo "run.sh: $build/tests/test_parity not built" >&2; exit 2; }
  ALEXANDRIA_PARITY_DIR="$out" ALEXANDRIA_SOURCE_DIR="$root" ALEXANDRIA_SHARED_DIR="$shared" \
    ALEXANDRIA_PARITY_FIGURES="$out/figures.json" "$build/tests/test_parity"
fi
