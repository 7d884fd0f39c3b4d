#!/usr/bin/env bash
# The README's main job on the embedded default: a tiny random-weight model (same file layout as the released
# checkpoints) and the bundled tiny dataset, through check → prepare → train → eval → synth.
# Usage: tools/demo.sh [build-dir] [work-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=${2:-$build/demo}
bin=$build/alexandria
mkdir -p "$work"
data="$work/tiny-voice"
rm -rf "$data" && cp -r examples/tiny-voice "$data"   # prepare writes its cache inside the dataset folder

echo "== make a tiny random model (Qwen3-TTS layout) =="
[ -f "$work/model/model.safetensors" ] || "$build/make_model" --preset tiny --type base --out "$work/model"

echo "== dataset check =="
"$bin" dataset check "$data"

echo "== recommend =="
"$bin" recommend "$data"

echo "== dataset prepare =="
"$bin" dataset prepare "$data" --model "$work/model"

echo "== train =="
"$bin" train --model "$work/model" --data "$data" --out "$work/adapter" --epochs 2 --lr 1e-4

echo "== eval =="
# Random weights never make a usable voice: eval's verdict is exit 3 (not usable) by design. Any other code
# (0 would mean the verdict is broken, 1/2 a failure) fails the demo. Random weights never stop either, so every
# take runs to its cap: 48 frames (4 s) keeps the step short (uncapped it ran ~280 frames a take, 59 s of the demo).
rc=0
"$bin" eval --model "$work/model" --adapter "$work/adapter" --data "$data" --out "$work/eval" --seeds 1 \
  --max-frames 48 || rc=$?
if [ "$rc" -ne 3 ]; then
  echo "demo: eval exited $rc; on random weights it must exit 3 (not usable)" >&2
  exit 1
fi

echo "== synth =="
"$bin" synth --model "$work/model" --adapter "$work/adapter" --text "Chapter one. The ancient library stood at the crossroads." --out "$work/chapter1.wav" --seed 7
echo "wrote $work/chapter1.wav"
