#!/usr/bin/env python3
"""Parity fixtures: runs the official qwen-tts package (CPU, fp32, eager attention) on model folders written by our
make_model and records every stage's output for tests/parity (test_parity). Run by tools/parity/run.sh in the
parity venv (tools/parity/setup.sh); see tools/parity/README.md.

    generate.py --models DIR --shared ../shared --out FIXTURES --seed N [--stages 2,3,4,5,6,7,8,float64]

DIR holds one folder per model of MODELS (make_model --preset P --type T --seed N --dtype bf16 --tokenizer REAL).
FIXTURES gets manifest.json (models with their sha256, cases, versions) and one safetensors + json per stage.
Audio clips are read from the shared reference folder by relative path; the C++ side reads the same files.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)

# name -> (make_model preset, type). tiny-1.7b: code predictor narrower than the talker (small_to_mtp_projection),
# text width = talker width; tiny-0.6b: code predictor as wide as the talker (identity), text wider than the talker.
MODELS = {
    "base-1.7b": ("tiny-1.7b", "base"),
    "base-0.6b": ("tiny-0.6b", "base"),
    "custom_voice-1.7b": ("tiny-1.7b", "custom_voice"),
    "custom_voice-0.6b": ("tiny-0.6b", "custom_voice"),
    "voice_design-1.7b": ("tiny-1.7b", "voice_design"),
}

CLIPS = {
    "sion": "reference/voices/alexandria-sion/ref_sample.wav",
    "watson": "reference/voices/alexandria-watson/ref_sample.wav",
}
REF_TEXT = {
    "sion": None,  # filled from training_meta.json's ref_sample_text
    "watson": None,
}

GREEDY_FRAMES = 34  # stage 5 (max_new_tokens): ≥ 32 frames unless an EOS ends both earlier
TEXT_EN = "The quick brown fox jumps over the lazy dog, and then it rests."
TEXT_ZH = "今天天气很好，我们去公园散步吧。"
INSTRUCT = "Speak slowly and warmly, like a bedtime story."


def prompt_cases(model_type):
    """Every prompt the official generate() builds for this checkpoint type (stage 3), as request parameters both
    sides understand. layout: streaming = non_streaming_mode False."""
    if model_type == "base":
        return [
            dict(name="xvector-auto-streaming", text=TEXT_EN, language="auto", ref="sion", icl=False, layout="streaming"),
            dict(name="xvector-english-nonstreaming", text=TEXT_EN, language="english", ref="sion", icl=False,
                 layout="non-streaming"),
            dict(name="xvector-chinese-streaming", text=TEXT_ZH, language="chinese", ref="watson", icl=False,
                 layout="streaming"),
            dict(name="icl-auto-streaming", text=TEXT_EN, language="auto", ref="watson", icl=True, layout="streaming"),
            dict(name="icl-english-nonstreaming", text=TEXT_EN, language="english", ref="sion", icl=True,
                 layout="non-streaming"),
            # Alexandria speaks adapters with an instruct block on a Base model (alexandria-compat.md §3.2); the
            # wrapper has no instruct argument for voice clone, so the harness passes instruct_ids to generate().
            dict(name="instruct-icl-auto-nonstreaming", text=TEXT_EN, language="auto", ref="sion", icl=True,
                 layout="non-streaming", instruct=INSTRUCT),
            dict(name="instruct-xvector-auto-streaming", text=TEXT_EN, language="auto", ref="watson", icl=False,
                 layout="streaming", instruct=INSTRUCT),
        ]
    if model_type == "custom_voice":
        return [
            dict(name="ryan-english-nonstreaming", text=TEXT_EN, language="english", speaker="ryan",
                 layout="non-streaming"),
            dict(name="ryan-auto-streaming", text=TEXT_EN, language="auto", speaker="Ryan", layout="streaming"),
            # dialect speakers: auto and chinese switch the language row to the dialect
            dict(name="dylan-auto-dialect", text=TEXT_ZH, language="auto", speaker="dylan", layout="non-streaming"),
            dict(name="eric-chinese-dialect", text=TEXT_ZH, language="chinese", speaker="eric", layout="streaming"),
            dict(name="eric-english-nodialect", text=TEXT_EN, language="english", speaker="eric",
                 layout="non-streaming"),
            dict(name="vivian-instruct", text=TEXT_EN, language="auto", speaker="vivian", layout="non-streaming",
                 instruct=INSTRUCT),
        ]
    if model_type == "voice_design":
        return [
            dict(name="design-auto-nonstreaming", text=TEXT_EN, language="auto", instruct=INSTRUCT,
                 layout="non-streaming"),
            dict(name="design-english-streaming", text=TEXT_EN, language="english", instruct=INSTRUCT,
                 layout="streaming"),
            dict(name="design-chinese-nonstreaming", text=TEXT_ZH, language="chinese",
                 instruct="A deep, calm male voice.", layout="non-streaming"),
        ]
    raise ValueError(model_type)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_files(model_dir):
    out = {}
    for rel in ["config.json", "generation_config.json", "model.safetensors", "speech_tokenizer/config.json",
                "speech_tokenizer/model.safetensors", "speech_tokenizer/preprocessor_config.json"]:
        if os.path.exists(os.path.join(model_dir, rel)):
            out[rel] = sha256(os.path.join(model_dir, rel))
    return out


def load_official(model_dir):
    from qwen_tts import Qwen3TTSModel

    m = Qwen3TTSModel.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager", device_map="cpu")
    m.model.eval()
    return m


def read_clip(shared, name):
    wav, sr = sf.read(os.path.join(shared, CLIPS[name]), dtype="float32", always_2d=False)
    return wav, sr


class Capture(Exception):
    pass


def f32(t):
    return t.detach().to(torch.float32).contiguous().cpu()


# ---------------------------------------------------------------------------------------------------------------
# stage 2: mel spectrogram (model independent) and speaker embedding (Base models)
def stage2_mel(shared, out):
    from qwen_tts.core.models.modeling_qwen3_tts import mel_spectrogram

    tensors, meta = {}, {}
    for name in CLIPS:
        wav, sr = read_clip(shared, name)
        assert sr == 24000
        mel = mel_spectrogram(torch.from_numpy(wav).unsqueeze(0), n_fft=1024, num_mels=128, sampling_rate=24000,
                              hop_size=256, win_size=1024, fmin=0, fmax=12000).transpose(1, 2)[0]
        # The whole mel is ~750 KB per clip: keep the first 400 and the last 100 frames (edges included, where the
        # reflect padding acts), plus every frame's sum so no frame goes unchecked.
        tensors[f"{name}.head"] = f32(mel[:400])
        tensors[f"{name}.tail"] = f32(mel[-100:])
        tensors[f"{name}.frame_sum"] = f32(mel.to(torch.float64).sum(-1))
        meta[name] = {"clip": CLIPS[name], "frames": int(mel.shape[0]), "samples": int(wav.shape[0])}
    save_file(tensors, os.path.join(out, "stage2_mel.safetensors"))
    return meta


def stage2_speaker(m, shared, out, model_name):
    tensors = {}
    for name in CLIPS:
        wav, sr = read_clip(shared, name)
        tensors[name] = f32(m.model.extract_speaker_embedding(wav, sr))
    save_file(tensors, os.path.join(out, model_name, "stage2_speaker.safetensors"))
    return sorted(tensors)


# ---------------------------------------------------------------------------------------------------------------
# stages 3 + 5 (+ 4): the prompt generate() builds, the prefill's outputs, greedy decoding
def run_case(m, shared, case, max_new_tokens):
    """Runs the official wrapper for one case, greedy, capturing the talker's inputs and the generated codes."""
    talker = m.model.talker
    captured = {}
    orig_talker_generate = talker.generate
    orig_generate = m.model.generate

    def talker_generate(**kw):
        captured["inputs_embeds"] = kw["inputs_embeds"]
        captured["attention_mask"] = kw["attention_mask"]
        captured["trailing_text_hidden"] = kw["trailing_text_hidden"]
        captured["tts_pad_embed"] = kw["tts_pad_embed"]
        return orig_talker_generate(**kw)

    def generate(**kw):
        if case.get("instruct") and kw.get("instruct_ids") is None:
            kw["instruct_ids"] = [m._tokenize_texts([m._build_instruct_text(case["instruct"])])[0]]
        captured["generate_kwargs"] = {k: v for k, v in kw.items() if k in ("languages", "speakers",
                                                                            "non_streaming_mode")}
        captured["input_ids"] = kw["input_ids"][0][0].tolist()
        if kw.get("ref_ids") and kw["ref_ids"][0] is not None:
            captured["ref_ids"] = kw["ref_ids"][0][0].tolist()
        if kw.get("instruct_ids") and kw["instruct_ids"][0] is not None:
            captured["instruct_ids"] = kw["instruct_ids"][0][0].tolist()
        vcp = kw.get("voice_clone_prompt")
        if vcp is not None:
            captured["speaker"] = vcp["ref_spk_embedding"][0]
            if vcp["ref_code"] is not None and vcp["ref_code"][0] is not None:
                captured["ref_codes"] = vcp["ref_code"][0]
        codes, hiddens = orig_generate(**kw)
        captured["codes"] = codes[0]
        captured["frame_hidden"] = hiddens[0]
        raise Capture()  # skip the wrapper's codec decode: stage 6 covers the codec

    talker.generate = talker_generate
    m.model.generate = generate
    greedy = dict(do_sample=False, subtalker_dosample=False, max_new_tokens=max_new_tokens)
    nonstream = case["layout"] == "non-streaming"
    try:
        if "ref" in case:
            wav, sr = read_clip(shared, case["ref"])
            ref_text = REF_TEXT[case["ref"]] if case["icl"] else None
            m.generate_voice_clone(text=case["text"], language=case["language"], ref_audio=(wav, sr),
                                   ref_text=ref_text, x_vector_only_mode=not case["icl"],
                                   non_streaming_mode=nonstream, **greedy)
        elif "speaker" in case:
            m.generate_custom_voice(text=case["text"], speaker=case["speaker"], language=case["language"],
                                    instruct=case.get("instruct"), non_streaming_mode=nonstream, **greedy)
        else:
            m.generate_voice_design(text=case["text"], instruct=case["instruct"], language=case["language"],
                                    non_streaming_mode=nonstream, **greedy)
    except Capture:
        pass
    finally:
        talker.generate = orig_talker_generate
        m.model.generate = orig_generate
    return captured


def prefill_outputs(m, embeds, mask):
    talker = m.model.talker
    with torch.no_grad():
        out = talker.model(inputs_embeds=embeds, attention_mask=mask, use_cache=False)
        hidden = out.last_hidden_state
        logits = talker.codec_head(hidden)
    return hidden[0], logits[0]


def code_predictor_logits(m, hidden, codes):
    """Teacher-forced code predictor logits [N, 15, 2048] with the official method (forward_sub_talker_finetune);
    logits[:, k] predict codebook k+1 (generation's step k+1 sees the same causal prefix)."""
    with torch.no_grad():
        logits, _ = m.model.talker.forward_sub_talker_finetune(codes, hidden)
    return logits


def stage3_to_5(m, shared, out, model_name, model_type):
    cases_meta = []
    tensors = {}
    cp_tensors = {}
    for i, case in enumerate(prompt_cases(model_type)):
        t0 = time.time()
        cap = run_case(m, shared, case, GREEDY_FRAMES)
        embeds, mask = cap["inputs_embeds"], cap["attention_mask"]
        assert embeds.shape[0] == 1 and bool(mask.all()), "batch 1 without padding"
        hidden, logits = prefill_outputs(m, embeds, mask)
        key = case["name"]
        tensors[f"{key}.prefill"] = f32(embeds[0])
        tensors[f"{key}.trailing"] = f32(cap["trailing_text_hidden"][0])
        tensors[f"{key}.pad"] = f32(cap["tts_pad_embed"].reshape(-1))
        tensors[f"{key}.hidden"] = f32(hidden)
        tensors[f"{key}.last_logits"] = f32(logits[-1])
        codes = cap["codes"].to(torch.int64)
        tensors[f"{key}.codes"] = codes.contiguous()
        if "speaker" in cap:
            tensors[f"{key}.speaker"] = f32(cap["speaker"])
        if "ref_codes" in cap:
            tensors[f"{key}.ref_codes"] = cap["ref_codes"].to(torch.int64).contiguous()
        # stage 4 on the first case: the code predictor given the talker hidden that predicted each of the first
        # two frames' code 0, and those frames' codes
        if i == 0 and codes.shape[0] >= 2:
            fh = cap["frame_hidden"][:2]
            cp_tensors["hidden"] = f32(fh)
            cp_tensors["codes"] = codes[:2].contiguous()
            cp_tensors["logits"] = f32(code_predictor_logits(m, fh, codes[:2]))
        meta = dict(case)
        if "ref" in case:
            meta["ref_clip"] = CLIPS[case["ref"]]
            meta["ref_text"] = REF_TEXT[case["ref"]] if case["icl"] else None
        meta["input_ids"] = cap["input_ids"]
        meta["ref_ids"] = cap.get("ref_ids")
        meta["instruct_ids"] = cap.get("instruct_ids")
        meta["frames"] = int(codes.shape[0])
        # HF counts sampled code-0 tokens: max_new_tokens N gives at most N-1 frames (the last token's code
        # predictor would run at the next step); our max_frames counts frames
        meta["max_new_tokens"] = GREEDY_FRAMES
        meta["max_frames"] = GREEDY_FRAMES - 1
        meta["prefill_rows"] = int(embeds.shape[1])
        # near ties of greedy code 0 cannot be recorded from generate(); the C++ side prints its own top-2 gaps
        cases_meta.append(meta)
        print(f"  {model_name} {key}: {embeds.shape[1]} prefill rows, {codes.shape[0]} frames "
              f"({time.time() - t0:.1f} s)", file=sys.stderr)
    save_file(tensors, os.path.join(out, model_name, "stage3.safetensors"))
    if cp_tensors:
        save_file(cp_tensors, os.path.join(out, model_name, "stage4.safetensors"))
    return cases_meta


# ---------------------------------------------------------------------------------------------------------------
# stage 6: codec
RESAMPLED = [44100, 22050, 32000]
RESAMPLED_SECONDS = 1.5


def stage6_codec(m, shared, out):
    import librosa

    tok = m.model.speech_tokenizer
    tensors, meta = {}, {"clips": {}, "resampled": {}}
    os.makedirs(os.path.join(out, "audio"), exist_ok=True)
    for name in CLIPS:
        wav, sr = read_clip(shared, name)
        enc = tok.encode(os.path.join(shared, CLIPS[name]))
        tensors[f"{name}.codes"] = enc.audio_codes[0].to(torch.int64).contiguous()
        meta["clips"][name] = CLIPS[name]
    # Clips at other rates: an excerpt of the sion clip resampled (any method: the file is the input) and written
    # as 16-bit PCM; the official path then loads it with librosa and resamples it back to 24 kHz (soxr_hq).
    wav, sr = read_clip(shared, "sion")
    excerpt = wav[24000: 24000 + int(RESAMPLED_SECONDS * 24000)]
    for rate in RESAMPLED:
        y = librosa.resample(excerpt, orig_sr=24000, target_sr=rate, res_type="soxr_hq")
        rel = f"audio/sion-{rate}.wav"
        sf.write(os.path.join(out, rel), np.clip(y, -1, 1), rate, subtype="PCM_16")
        enc = tok.encode(os.path.join(out, rel))
        tensors[f"resampled{rate}.codes"] = enc.audio_codes[0].to(torch.int64).contiguous()
        y24, _ = librosa.load(os.path.join(out, rel), sr=None, mono=True)
        y24 = librosa.resample(y24, orig_sr=rate, target_sr=24000)
        tensors[f"resampled{rate}.wav24k"] = torch.from_numpy(np.ascontiguousarray(y24, dtype=np.float32))
        meta["resampled"][str(rate)] = rel
    # decode: one-shot (one decoder forward) and chunked (the official chunked_decode, small chunks so the chunk
    # boundaries and left context are exercised) on the first frames of the sion codes
    dec = tok.model.decoder
    codes = tensors["sion.codes"][:24].clone()
    with torch.no_grad():
        one = dec(codes.t().unsqueeze(0))
        chunked = dec.chunked_decode(codes.t().unsqueeze(0), chunk_size=10, left_context_size=4)
        full = tok.decode([{"audio_codes": codes}])[0][0]
    tensors["decode.codes"] = codes.contiguous()
    tensors["decode.oneshot"] = f32(one.reshape(-1))
    tensors["decode.chunked"] = f32(chunked.reshape(-1))
    tensors["decode.wrapper"] = torch.from_numpy(np.ascontiguousarray(full, dtype=np.float32))
    meta["decode"] = {"frames": int(codes.shape[0]), "chunk_size": 10, "left_context": 4}
    save_file(tensors, os.path.join(out, "stage6_codec.safetensors"))
    return meta


# ---------------------------------------------------------------------------------------------------------------
def versions():
    import librosa
    import peft
    import tokenizers
    import transformers
    from importlib.metadata import version

    return {"qwen-tts": version("qwen-tts"), "torch": torch.__version__, "transformers": transformers.__version__,
            "peft": peft.__version__, "tokenizers": tokenizers.__version__, "librosa": librosa.__version__,
            "soxr": version("soxr"), "numpy": np.__version__, "python": sys.version.split()[0]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--stages", default="2,3,4,5,6,7,8")
    a = ap.parse_args()
    stages = set(a.stages.split(","))
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    for name in CLIPS:
        meta_path = os.path.join(a.shared, os.path.dirname(CLIPS[name]), "training_meta.json")
        with open(meta_path, encoding="utf-8") as f:
            REF_TEXT[name] = json.load(f)["ref_sample_text"]
    os.makedirs(a.out, exist_ok=True)
    manifest = {"generator": "tools/parity/generate.py", "seed": a.seed, "versions": versions(),
                "tolerances": {"min_cosine": 0.99999, "max_rel": 1e-4}, "models": {}, "stages": {}}
    previous = os.path.join(a.out, "manifest.json")
    if os.path.exists(previous):  # a later pass (stage 8 after our adapters exist) keeps what earlier ones wrote
        with open(previous, encoding="utf-8") as f:
            old = json.load(f)
        if old.get("seed") == a.seed:
            manifest["models"], manifest["stages"] = old.get("models", {}), old.get("stages", {})
    if "2" in stages:
        manifest["stages"]["2"] = {"mel": stage2_mel(a.shared, a.out)}
    for name, (preset, mtype) in MODELS.items():
        d = os.path.join(a.models, name)
        os.makedirs(os.path.join(a.out, name), exist_ok=True)
        entry = manifest["models"].get(name, {})
        entry.update({"preset": preset, "type": mtype, "seed": a.seed, "dtype": "bf16", "sha256": model_files(d)})
        t0 = time.time()
        m = load_official(d)
        if "2" in stages and mtype == "base":
            entry["speaker_clips"] = stage2_speaker(m, a.shared, a.out, name)
        if stages & {"3", "4", "5"}:
            entry["cases"] = stage3_to_5(m, a.shared, a.out, name, mtype)
        if "6" in stages and name == "base-1.7b":
            manifest["stages"]["6"] = stage6_codec(m, a.shared, a.out)
            manifest["stages"]["6"]["model"] = name
        if stages & {"7", "8"} and mtype == "base":
            import training

            if "7" in stages:
                entry["training"] = training.stage7(m, a.shared, a.out, name, CLIPS, REF_TEXT)
            if "8" in stages:
                entry["peft"] = training.stage8(m, d, a.out, name)
        if stages & {"4", "7", "float64"}:
            # the official fp32 outputs' own rounding error against float64 (tools/parity/float64.py); the stage
            # "float64" alone measures it on fixtures already written
            import float64

            entry["float64"], _ = float64.measure(d, a.out, name, entry)
        manifest["models"][name] = entry
        print(f"{name}: done in {time.time() - t0:.1f} s", file=sys.stderr)
    with open(os.path.join(a.out, "manifest.json.tmp"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(os.path.join(a.out, "manifest.json.tmp"), os.path.join(a.out, "manifest.json"))


if __name__ == "__main__":
    main()
