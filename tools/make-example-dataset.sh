#!/usr/bin/env bash
# Regenerates examples/tiny-voice: a tiny dataset in the seed's layout (metadata.jsonl, ref.wav,
# ref_text.txt, sample_NNN.wav; 24 kHz mono PCM16), spoken by espeak-ng so it needs no recordings.
# Deterministic: the same espeak-ng and sox give byte-identical files (no dither, fixed voice and rate).
# Needs: espeak-ng, sox (Debian packages of the same names).
#
#   tools/make-example-dataset.sh [OUT_DIR]      (default: examples/tiny-voice next to this script)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/../examples/tiny-voice}"

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make-example-dataset: $tool not found (apt-get install $tool)" >&2; exit 2; }
done

voice="en-us"
speed=200   # words per minute: brisk, keeps the committed files small
pitch=45

# Training clips, in the seed's spirit: variety of lengths and moods, and short utterances that teach
# the model to stop ("Oh!", "Hmm.", "Right.").
texts=(
    "Oh!"
    "Hmm."
    "Right."
    "Wait, is that you?"
    "Let's go home."
    "Absolutely not!"
    "Thank you, truly."
    "The rain stopped."
    "I knew it."
)
# The reference passage: calm, neutral, descriptive (the seed: "End with a neutral passage").
ref_text="The wooden table stood by the window, in the quiet morning light."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
stage="$tmp/tiny-voice"
mkdir -p "$stage"

speak() {  # speak TEXT OUT.wav
    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/raw.wav" -- "$1"
    # 22050 Hz → 24 kHz mono PCM16, no dither; trim espeak's leading/trailing silence, keep 50 ms of air.
    sox -D -V1 "$tmp/raw.wav" -r 24000 -c 1 -b 16 -e signed-integer "$2" \
        silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse pad 0.05 0.05 rate -v 24000
}

json_escape() {  # a JSON string literal for plain text (quotes and backslashes escaped; no control characters)
    local s=${1//\\/\\\\}
    s=${s//\"/\\\"}
    printf '"%s"' "$s"
}

: > "$stage/metadata.jsonl"
for i in "${!texts[@]}"; do
    name=$(printf "sample_%03d.wav" "$i")
    speak "${texts[$i]}" "$stage/$name"
    printf '{"audio_filepath": "%s", "text": %s}\n' "$name" "$(json_escape "${texts[$i]}")" >> "$stage/metadata.jsonl"
done
speak "$ref_text" "$stage/ref.wav"
printf '%s' "$ref_text" > "$stage/ref_text.txt"   # no trailing newline, as Alexandria writes it

cat > "$stage/README.md" <<'EOF'
# tiny-voice

A tiny dataset in the seed's layout, spoken by espeak-ng (regenerate with `tools/make-example-dataset.sh`).
Far too small to train a real voice (`alexandria dataset check` says so); it exists for the demo and tests.

- `metadata.jsonl`: one `{"audio_filepath", "text"}` per line
- `sample_NNN.wav`: 24 kHz mono PCM16 clips, including the short utterances "Oh!", "Hmm.", "Right."
- `ref.wav` + `ref_text.txt`: a calm reference passage and its exact transcript
EOF

rm -rf "$out"
mkdir -p "$(dirname "$out")"
cp -r "$stage" "$out"
echo "make-example-dataset: wrote $(ls "$out" | wc -l) files to $out ($(du -sk "$out" | cut -f1) KB)" >&2
