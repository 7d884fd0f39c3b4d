"""Import stub for the parity venv: only qwen_tts's 25 Hz tokenizer uses torchaudio (see README.md)."""
from _stub import make_getattr

__getattr__ = make_getattr("torchaudio")
