#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets: corpus/<target>/seed-<name>.

Standard library only, deterministic (the FLAC seeds come from sox when it is installed and are kept otherwise).
Inputs that once crashed a target are committed beside the seeds as crash-<what> and are never touched here.
The tiny model config mirrors model::random_model_config's `tiny` preset; the adapter seeds target one module of
that talker (model.layers.0.self_attn.q_proj, 64 -> 64) at rank 2 and then break one thing each.
"""
import json
import math
import os
import shutil
import struct
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- audio: hand-made RIFF files for the layouts a writer never produces -----------------------------------------
def wav(tag, channels, rate, bits, data, extra=b"", declared=None):
    block = channels * (bits // 8)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm16(frames, channels=1):
    return b"".join(struct.pack("<h", int(8000 * math.sin(i / 10))) * channels for i in range(frames))


def flac_seeds():
    if not shutil.which("sox"):
        return
    with tempfile.TemporaryDirectory() as t:
        p = os.path.join(t, "a.flac")
        subprocess.run(["sox", "-n", "-r", "24000", "-c", "1", "-b", "16", p, "synth", "0.1", "sine", "300"],
                       check=True)
        data = open(p, "rb").read()
    put("audio", "tone.flac", data)
    put("audio", "cut-short.flac", data[: len(data) // 2])


def audio():
    whole = wav(1, 1, 24000, 16, pcm16(400))
    put("audio", "pcm16.wav", whole)
    put("audio", "stereo-16k.wav", wav(1, 2, 16000, 16, pcm16(200, 2)))
    put("audio", "float32.wav", wav(3, 1, 24000, 32, b"".join(struct.pack("<f", 0.3 * math.sin(i / 7)) for i in range(200))))
    put("audio", "cut-short.wav", whole[:400])
    put("audio", "huge-declared.wav", wav(1, 1, 24000, 16, pcm16(100), declared=0x7FFFFF00))
    put("audio", "streaming-size.wav", wav(1, 1, 24000, 16, pcm16(100), declared=0xFFFFFFFF))
    put("audio", "zero-channels.wav", wav(1, 0, 24000, 16, pcm16(100)))
    put("audio", "zero-rate.wav", wav(1, 1, 0, 16, pcm16(100)))
    put("audio", "list-chunk-odd.wav", wav(1, 1, 22050, 16, pcm16(100), extra=b"LIST" + struct.pack("<I", 5) + b"INFOx\0"))
    put("audio", "nan-float.wav", wav(3, 1, 24000, 32, struct.pack("<f", float("nan")) * 8))
    put("audio", "six-channels-8bit.wav", wav(1, 6, 8000, 8, b"\x80" * 300))
    put("audio", "no-data.wav", wav(1, 1, 24000, 16, b""))
    put("audio", "text.wav", "this is not audio\n")
    flac_seeds()


# --- safetensors ------------------------------------------------------------------------------------------------
def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(n, v=0.01):
    return struct.pack("<%df" % n, *([v] * n))


# --- model config (mirrors random_model_config, tiny preset) -----------------------------------------------------
def decoder(hidden, inter, layers, heads, kv, head_dim):
    return {"attention_bias": False, "attention_dropout": 0, "head_dim": head_dim, "hidden_act": "silu",
            "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": inter,
            "num_attention_heads": heads, "num_hidden_layers": layers, "num_key_value_heads": kv,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000, "sliding_window": None, "use_cache": True,
            "use_sliding_window": False}


def tiny_config(kind):
    cp = decoder(32, 64, 2, 4, 2, 16)
    cp.update({"layer_types": ["full_attention"] * 2, "max_position_embeddings": 65536, "max_window_layers": 28,
               "model_type": "qwen3_tts_talker_code_predictor", "num_code_groups": 16, "rope_scaling": None,
               "vocab_size": 2048})
    t = decoder(64, 128, 2, 4, 2, 16)
    t.update({"code_predictor_config": cp, "codec_bos_id": 2149, "codec_eos_token_id": 2150, "codec_think_id": 2154,
              "codec_nothink_id": 2155, "codec_pad_id": 2148, "codec_think_bos_id": 2156, "codec_think_eos_id": 2157})
    langs = {"chinese": 2055, "english": 2050, "german": 2053, "italian": 2070, "portuguese": 2071, "spanish": 2054,
             "japanese": 2058, "korean": 2064, "french": 2061, "russian": 2069}
    spk, dialect = {}, {}
    if kind == "custom_voice":
        langs.update({"beijing_dialect": 2074, "sichuan_dialect": 2062})
        spk = {"serena": 3066, "vivian": 3065, "uncle_fu": 3010, "ryan": 3061, "aiden": 2861, "ono_anna": 2873,
               "sohee": 2864, "eric": 2875, "dylan": 2878}
        dialect = {k: False for k in spk}
        dialect.update({"eric": "sichuan_dialect", "dylan": "beijing_dialect"})
    t.update({"codec_language_id": langs, "spk_id": spk, "spk_is_dialect": dialect, "max_position_embeddings": 32768,
              "model_type": "qwen3_tts_talker", "num_code_groups": 16, "position_id_per_seconds": 13,
              "rope_scaling": {"interleaved": True, "mrope_section": [4, 2, 2], "rope_type": "default",
                               "type": "default"},
              "text_hidden_size": 16, "text_vocab_size": 151936, "vocab_size": 3072})
    c = {"architectures": ["Qwen3TTSForConditionalGeneration"], "assistant_token_id": 77091,
         "im_end_token_id": 151645, "im_start_token_id": 151644, "tts_bos_token_id": 151672,
         "tts_eos_token_id": 151673, "tts_pad_token_id": 151671, "model_type": "qwen3_tts",
         "tokenizer_type": "qwen3_tts_tokenizer_12hz", "tts_model_size": "tiny", "tts_model_type": kind,
         "talker_config": t, "transformers_version": "4.57.3"}
    if kind == "base":
        c["speaker_encoder_config"] = {"enc_dim": 64, "sample_rate": 24000, "enc_channels": [32, 32, 32, 32, 96],
                                       "enc_attention_channels": 16, "enc_res2net_scale": 4, "enc_se_channels": 16}
    return c


def model_config():
    for kind in ("base", "custom_voice", "voice_design"):
        put("model_config", "tiny-%s.json" % kind, json.dumps(tiny_config(kind), indent=1))
    put("model_config", "generation_config.json",
        '{\n  "do_sample": true,\n  "repetition_penalty": 1.05,\n  "temperature": 0.9,\n  "top_p": 1.0,\n'
        '  "top_k": 50,\n  "subtalker_dosample": true,\n  "subtalker_temperature": 0.9,\n  "subtalker_top_p": 1.0,\n'
        '  "subtalker_top_k": 50,\n  "max_new_tokens": 8192\n}')
    put("model_config", "number-overflow.json", '{"model_type": "qwen3_tts", "top_k": 1e999}')


# --- adapter: [u16 n][adapter_config.json][adapter_model.safetensors] ------------------------------------------
def adapter():
    key = "base_model.model.model.layers.0.self_attn.q_proj"
    cfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "lora_dropout": 0.0, "bias": "none", "use_rslora": False,
           "target_modules": "model\\.layers\\.0\\.self_attn\\.q_proj"}

    def pack(c, weights):
        b = json.dumps(c).encode()
        return struct.pack("<H", len(b)) + b + weights

    def weights(a=("F32", [2, 64], f32(128)), b=("F32", [64, 2], f32(128)), a_name=key + ".lora_A.weight"):
        return safetensors({a_name: a, key + ".lora_B.weight": b}, {"format": "pt"})

    put("adapter", "good", pack(cfg, weights()))
    put("adapter", "wrong-rank", pack(dict(cfg, r=4), weights()))
    put("adapter", "list-targets", pack(dict(cfg, target_modules=["q_proj", "v_proj"]), weights()))
    put("adapter", "dora", pack(dict(cfg, use_dora=True), weights()))
    put("adapter", "bf16", pack(cfg, weights(("BF16", [2, 64], bytes(256)), ("BF16", [64, 2], bytes(256)))))
    put("adapter", "int32", pack(cfg, weights(("I32", [2, 64], bytes(512)))))
    put("adapter", "transposed", pack(cfg, weights(("F32", [64, 2], f32(128)), ("F32", [2, 64], f32(128)))))
    put("adapter", "vector", pack(cfg, weights(("F32", [128], f32(128)))))
    put("adapter", "renamed", pack(cfg, weights(a_name="base_model.model.nowhere.lora_A.weight")))
    put("adapter", "nan", pack(cfg, weights(("F32", [2, 64], struct.pack("<f", float("nan")) * 128))))


# --- text inputs ------------------------------------------------------------------------------------------------
def texts():
    put("jsonl", "good.jsonl", '{"audio_filepath": "a.wav", "text": "Hi."}\n{"audio": "b.wav", "text": "\\u00e9t\\u00e9"}\n')
    put("jsonl", "number-overflow.jsonl", '{"audio_filepath": "a.wav", "text": "Hi.", "x": 8e458}\n')
    put("jsonl", "mixed.jsonl", b'\xef\xbb\xbf{"text": 1}\r\n[1,2]\n\n{"text": "caf\xe9"}\n{bad\n{"text": "ok", "x": null}\n')
    put("safetensors", "small", safetensors({"a": ("F32", [2, 3], f32(6)), "b": ("BF16", [3], bytes(6)),
                                             "c": ("I64", [0], b"")}, {"format": "pt"}))
    # script seeds: the first byte picks max_chars (1 + byte % 64)
    put("script_line", "good.jsonl", bytes([20]) +
        b'{"text": "Chapter one. It was late, and Dr. Smith said: \\"go!\\" Then silence.", "out": "ch1/0001.wav", '
        b'"seed": 7, "pause_after": 0.8}\n'
        b'{"text": "\\u5929\\u6c14\\u5f88\\u597d\\u3002\\u6211\\u4eec\\u8d70\\u5427\\uff01", "speaker": "Ryan"}\n'
        b'{"text": "A voice line.", "voice": "narrator", "instruct": "calm", "language": "english"}\n')
    put("script_line", "bad-lines.jsonl", bytes([5]) +
        b'{"text": 3}\n{"text": "x", "seed": -1}\n{"text": "y", "voice": "nobody"}\n{"text": "z", "x": 8e458}\n'
        b'{"text": "  "}\n{"text": "w", "pause_after": 1e9}\n{"text": "v", "speaker": "nobody"}\nnot json\n')
    put("script_line", "long-word.jsonl", bytes([0]) +
        b'{"text": "Supercalifragilistic expialidocious. \\u2026 e.g. 3.5 (yes)."}\n')
    put("ljspeech_row", "rows.csv",
        b"file|text\nLJ001-0001|Printing, in the only sense.|Printing, in the only sense.\n"
        b"LJ001-0002|in being comparatively modern.\r\nwavs/a.wav|  spaced   out  |\n|no file\nonly-one-column\n"
        b"a|b|c|d\nx|caf\xe9\n\ny|\xef\xbb\xbftext\n")
    put("ljspeech_row", "bom-header.csv", b"\xef\xbb\xbfaudio_filepath|transcript\nz|Zed.\n")
    put("tokenizer", "english.txt", "Hello, world! It's 3.14 o'clock; the year 2024.\n  Tabs\tand   spaces.")
    put("tokenizer", "cjk.txt", "天气很好。こんにちは 한국어")
    put("tokenizer", "combining.txt", "Cafe\u0301 n\u0303 A\u030a \u1100\u1161 \U0001F600")
    put("tokenizer", "added-tokens.txt", "<|im_start|>assistant\nHi<|im_end|> <|endoftext|><think></think>")
    put("tokenizer", "invalid-utf8.txt", b"ok \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf end\xe2\x82")


def main():
    for d in os.listdir(CORPUS) if os.path.isdir(CORPUS) else []:
        for f in os.listdir(os.path.join(CORPUS, d)):
            if f.startswith("seed-"):
                os.remove(os.path.join(CORPUS, d, f))
    audio()
    model_config()
    adapter()
    texts()


if __name__ == "__main__":
    main()
