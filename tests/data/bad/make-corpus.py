#!/usr/bin/env python3
"""Regenerates the bad-input corpus for `dataset check` (tests/data/bad/<case>/ and manifest.json).

Each case is a dataset folder holding one good clip (sample_000.wav, a 0.2 s tone at 8 kHz) next to the one
bad thing it is about, so the test shows both halves of the rule: a bad clip is skipped with a warning
(exit 0, the good clip still trains), a bad metadata file or reference cannot be trained (exit 2).
manifest.json lists, per case, the exit code, the problem code and a fragment of the message.
The symlink loop is made by the tests at run time (manifest "symlink_loop"), not stored in git.
Deterministic: only the standard library, no randomness.
"""
import json
import math
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def wav_bytes(samples, rate=8000, fmt="pcm16", declared_data_bytes=None, channels=1):
    if fmt == "pcm16":
        data = b"".join(struct.pack("<h", max(-32768, min(32767, int(round(s * 32767))))) for s in samples)
        tag, bits = 1, 16
    elif fmt == "float":
        data = b"".join(struct.pack("<f", s) for s in samples)
        tag, bits = 3, 32
    else:
        raise ValueError(fmt)
    block = channels * bits // 8
    fmt_chunk = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    declared = len(data) if declared_data_bytes is None else declared_data_bytes
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + b"data" + struct.pack("<I", declared) + data
    # The RIFF size follows the declared data size, as a writer that was cut off mid-copy leaves it.
    return b"RIFF" + struct.pack("<I", len(body) + (declared - len(data))) + body


def tone(seconds, rate=8000, amp=0.3):
    n = int(seconds * rate)
    return [amp * (0.7 * math.sin(2 * math.pi * 220 * i / rate) + 0.3 * math.sin(2 * math.pi * 440 * i / rate))
            for i in range(n)]


GOOD = wav_bytes(tone(0.2))
GOOD_LINE = {"audio_filepath": "sample_000.wav", "text": "Oh!"}


def line(obj):
    return json.dumps(obj, ensure_ascii=False)


CASES = []


def case(name, description, exit_code, code, expect, files, metadata=None, ref_text="Oh!", symlink_loop=None):
    CASES.append(dict(name=name, description=description, exit=exit_code, code=code, expect=expect, files=files,
                      metadata=metadata, ref_text=ref_text, symlink_loop=symlink_loop))


def meta(*lines):
    # The first line names the good clip as the reference, so no case needs a ref.wav of its own.
    first = dict(GOOD_LINE, ref_audio="sample_000.wav")
    return "\n".join([line(first)] + list(lines)) + "\n"


bad_line = lambda audio, text="Hello there.": line({"audio_filepath": audio, "text": text})

# Bad clips: skipped with a warning, the folder still trains on the good clip.
case("truncated-wav", "WAV whose data chunk declares 1 s but holds 0.05 s (a copy cut short)", 0, "truncated",
     "truncated", {"sample_001.wav": wav_bytes(tone(0.05, 24000), 24000, declared_data_bytes=48000)},
     meta(bad_line("sample_001.wav")))
case("corrupt-wav", "RIFF/WAVE header with an unknown format tag and zero channels", 0, "undecodable",
     "not a readable audio file",
     {"sample_001.wav": b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 0x7777, 0, 0, 0, 0, 0)
      + b"data" + struct.pack("<I", 0)},
     meta(bad_line("sample_001.wav")))
case("text-named-wav", "a text file named .wav", 0, "undecodable", "not a readable audio file",
     {"sample_001.wav": b"This is not audio, just words in a file called sample_001.wav.\n"},
     meta(bad_line("sample_001.wav")))
case("zero-length-wav", "a valid WAV header with no samples", 0, "empty-audio", "no audio",
     {"sample_001.wav": wav_bytes([])}, meta(bad_line("sample_001.wav")))
case("nan-samples", "float32 WAV with NaN samples", 0, "non-finite", "not a finite number",
     {"sample_001.wav": wav_bytes([0.1, 0.2, float("nan")] * 300, fmt="float")}, meta(bad_line("sample_001.wav")))
case("missing-audio", "metadata names a file that does not exist", 0, "missing-audio", "file not found", {},
     meta(bad_line("sample_404.wav")))
case("blank-text", "text is only whitespace", 0, "empty-text", "only whitespace",
     {"sample_001.wav": GOOD}, meta(bad_line("sample_001.wav", "   \t ")))
case("silent-clip", "a clip of digital silence", 0, "silent", "silent",
     {"sample_001.wav": wav_bytes([0.0] * 2000)}, meta(bad_line("sample_001.wav")))
case("duplicate-line", "the same line twice", 0, "duplicate", "duplicate of line 1", {},
     meta(line(GOOD_LINE)))

# Bad metadata or reference: the folder cannot be trained.
case("missing-metadata", "no metadata.jsonl", 2, "missing-metadata", "metadata.jsonl: missing", {}, None)
case("empty-metadata", "metadata.jsonl with only blank lines", 2, "no-entries", "no entries", {}, "\n  \n")
case("invalid-json", "line 2 is not valid JSON", 2, "invalid-json", "metadata.jsonl:2: invalid JSON", {},
     meta('{"audio_filepath": "sample_000.wav", "text": "Hello"'))
case("number-overflow", "line 2 holds a number beyond double's range (8e458)", 2, "invalid-json",
     "metadata.jsonl:2: invalid JSON: number overflow", {},
     meta('{"audio_filepath": "sample_000.wav", "text": "Hi.", "x": 8e458}'))
case("not-an-object", "line 2 is a JSON array", 2, "not-an-object", "metadata.jsonl:2: expected a JSON object", {},
     meta('["sample_000.wav", "Hello"]'))
case("missing-text", "line 2 has no text field", 2, "missing-field", "metadata.jsonl:2: field 'text': missing", {},
     meta(line({"audio_filepath": "sample_000.wav"})))
case("audio-not-string", "line 2's audio_filepath is a number", 2, "invalid-field",
     "metadata.jsonl:2: field 'audio_filepath': expected a string", {},
     meta(line({"audio_filepath": 7, "text": "Hello"})))
case("non-utf8-text", "line 2's text is Latin-1, not UTF-8", 2, "not-utf8", "metadata.jsonl:2: not valid UTF-8", {},
     None)  # written as bytes below
case("path-escape", "audio_filepath climbs out of the folder with ../", 2, "path-outside",
     "points outside the dataset folder", {}, meta(bad_line("../outside.wav")))
case("absolute-path", "audio_filepath is an absolute path outside the folder", 2, "path-outside",
     "points outside the dataset folder", {}, meta(bad_line("/etc/passwd")))
case("symlink-loop", "audio_filepath is a symlink loop (made at test time)", 2, "symlink-loop", "symlink loop", {},
     meta(bad_line("loop_a.wav")), symlink_loop=["loop_a.wav", "loop_b.wav"])
case("no-usable-clip", "every clip is bad", 2, "no-usable-clips", "none of the 1 entries is usable", {},
     line({"audio_filepath": "sample_404.wav", "text": "Hello"}) + "\n")
case("missing-ref", "metadata names ref.wav as ref_audio but it is not there", 2, "missing-ref",
     "reference audio not found", {},
     line(dict(GOOD_LINE, ref_audio="ref.wav")) + "\n")
case("corrupt-ref", "ref.wav is a text file", 2, "undecodable-ref", "cannot use the reference audio",
     {"ref.wav": b"not a wav\n"}, line(GOOD_LINE) + "\n")
case("truncated-ref", "ref.wav declares 1 s of audio and holds 0.2 s (every reader refuses it)", 2, "truncated-ref",
     "truncated: the WAV header declares 16000 bytes of audio, the file holds 3200",
     {"ref.wav": wav_bytes(tone(0.2), declared_data_bytes=16000)}, line(GOOD_LINE) + "\n")
case("non-utf8-ref-text", "ref_text.txt is Latin-1", 2, "ref-text-not-utf8", "not valid UTF-8", {}, meta(),
     ref_text=b"Caf\xe9 au lait.")


def main():
    for entry in os.listdir(HERE):
        p = os.path.join(HERE, entry)
        if os.path.isdir(p):
            shutil.rmtree(p)
    manifest = []
    for c in CASES:
        d = os.path.join(HERE, c["name"])
        os.makedirs(d)
        with open(os.path.join(d, "sample_000.wav"), "wb") as f:
            f.write(GOOD)
        for name, data in c["files"].items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        if c["name"] == "non-utf8-text":
            with open(os.path.join(d, "metadata.jsonl"), "wb") as f:
                f.write(meta().encode() + b'{"audio_filepath": "sample_000.wav", "text": "Caf\xe9"}\n')
        elif c["metadata"] is not None:
            with open(os.path.join(d, "metadata.jsonl"), "w", encoding="utf-8") as f:
                f.write(c["metadata"])
        rt = c["ref_text"]
        with open(os.path.join(d, "ref_text.txt"), "wb") as f:
            f.write(rt if isinstance(rt, bytes) else rt.encode())
        m = {"case": c["name"], "description": c["description"], "exit": c["exit"], "code": c["code"],
             "expect": c["expect"]}
        if c["symlink_loop"]:
            m["symlink_loop"] = c["symlink_loop"]
        manifest.append(m)
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
