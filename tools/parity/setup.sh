#!/usr/bin/env bash
# Creates the parity reference environment: the official qwen-tts package and its 12 Hz path's imports, pinned
# by tools/parity/requirements.lock, in a venv outside the tree (a developer tool; CI needs none of it).
#
#   tools/parity/setup.sh [VENV_DIR]      default: ~/.cache/alexandria/parity-venv
#
# torch: PyPI's Linux wheel is a CUDA build of several GB that also runs on the CPU. It is installed --no-deps
# (from $TORCH_WHEEL if set, e.g. a wheel downloaded once) so the nvidia-*/cuda-* packages are never fetched;
# its pure-Python dependencies are in the lock file. qwen-tts is installed --no-deps too: its own pins pull
# in gradio/onnxruntime/sox/torchaudio, which the 12 Hz path does not use (see stubs/README.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:-$HOME/.cache/alexandria/parity-venv}"
python="${PYTHON:-python3.11}"
torch_spec="${TORCH_WHEEL:-}"
if [[ -z "$torch_spec" ]]; then
  cached="$HOME/.cache/alexandria/wheels/torch-2.11.0-cp311-cp311-manylinux_2_28_x86_64.whl"
  if [[ -f "$cached" ]]; then torch_spec="$cached"; else torch_spec="torch==2.11.0"; fi
fi
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install --quiet --upgrade "pip==24.3.1"
"${pip[@]}" install --no-deps "$torch_spec"
"${pip[@]}" install --no-deps -r "$here/requirements.lock"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$here/cuda_stubs.sh" "$site"
# Import stubs for modules only qwen_tts's 25 Hz tokenizer imports (tools/parity/stubs/README.md).
echo "$here/stubs" > "$site/alexandria_parity_stubs.pth"
"$venv/bin/python" -c "import torch, transformers, qwen_tts, peft, tokenizers, librosa; print('parity venv ok:', torch.__version__, transformers.__version__)"
