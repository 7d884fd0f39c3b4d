"""Stages 7 (training losses and LoRA gradients) and 8 (PEFT adapters both ways) of the parity fixtures, on the
official model's modules. Imported by generate.py; see its docstring."""
import json
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

LORA_R = 4
LORA_ALPHA = 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
TRAIN_TEXT = "A short line for one training step."
TRAIN_FRAMES = 20


def f32(t):
    return t.detach().to(torch.float32).contiguous().cpu()


def peft_talker(m, seed):
    """A PEFT LoRA on the official talker as Alexandria makes it (talker as the PEFT root, q/k/v/o of every talker
    and code-predictor layer), with deterministic non-zero A and B so every path of the branch is exercised."""
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules=TARGETS, bias="none")
    pm = get_peft_model(m.model.talker, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return pm, cfg


def frame_embed(talker, codes):
    """F(frame): the 16 codebook embeddings of each frame summed in one reduction, as generate() does."""
    parts = [talker.get_input_embeddings()(codes[:, :1])]
    for g in range(1, codes.shape[1]):
        parts.append(talker.code_predictor.get_input_embeddings()[g - 1](codes[:, g:g + 1]))
    return torch.cat(parts, dim=1).sum(1)


def alexandria_inputs(m, text_ids, codes, spk, language):
    """train_lora.py's build_teacher_forcing_input (alexandria-compat.md §2.4; model-talker.md §7.3) written on the
    official model's embedding methods: the non-streaming x-vector prompt of generate() followed by the frames."""
    cfg = m.model.config
    tc = cfg.talker_config
    talker = m.model.talker
    T = lambda ids: talker.text_projection(talker.get_text_embeddings()(torch.tensor([ids])))[0]
    C = lambda ids: talker.get_input_embeddings()(torch.tensor([ids]))[0]
    tts_bos, tts_eos, tts_pad = T([cfg.tts_bos_token_id, cfg.tts_eos_token_id, cfg.tts_pad_token_id])
    if language == "auto":
        prefix = [tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id]
    else:
        prefix = [tc.codec_think_id, tc.codec_think_bos_id, tc.codec_language_id[language], tc.codec_think_eos_id]
    codec_rows = torch.cat([C(prefix), spk.view(1, -1), C([tc.codec_pad_id, tc.codec_bos_id])])
    role = T(text_ids[:3])
    text_part = torch.cat([tts_pad.expand(codec_rows.shape[0] - 2, -1), tts_bos.view(1, -1)]) + codec_rows[:-1]
    content = text_ids[3:]
    text_rows = torch.cat([T(content), tts_eos.view(1, -1)]) + C([tc.codec_pad_id] * (len(content) + 1))
    bos_row = tts_pad.view(1, -1) + C([tc.codec_bos_id])
    prefill = torch.cat([role, text_part, text_rows, bos_row])
    frames = frame_embed(talker, codes) + tts_pad.view(1, -1)
    return torch.cat([prefill, frames]), prefill.shape[0]


def objective_losses(m, talker_module, embeds, prefill_len, codes):
    """Alexandria's objective (talker CE at prefill_len-1+j vs code0_j; the code predictor through
    forward_sub_talker_finetune, whose internal label shift scores head k on codebook k+2) and the aligned one
    (plus EOS after the last frame; head k on codebook k+1), from one forward."""
    tc = m.model.config.talker_config
    N = codes.shape[0]
    hidden = talker_module.model(inputs_embeds=embeds.unsqueeze(0), use_cache=False).last_hidden_state[0]
    logits = talker_module.codec_head(hidden)
    pos = torch.arange(prefill_len - 1, prefill_len - 1 + N)
    talker_alex = F.cross_entropy(logits[pos].float(), codes[:, 0])
    eos_target = torch.cat([codes[:, 0], torch.tensor([tc.codec_eos_token_id])])
    talker_aligned = F.cross_entropy(logits[torch.arange(prefill_len - 1, prefill_len + N)].float(), eos_target)
    sub_logits, sub_loss_alex = talker_module.forward_sub_talker_finetune(codes, hidden[pos])
    sub_aligned = F.cross_entropy(sub_logits.reshape(-1, sub_logits.shape[-1]).float(), codes[:, 1:].reshape(-1))
    return {
        "alexandria": {"talker": talker_alex, "sub": sub_loss_alex, "total": talker_alex + 0.3 * sub_loss_alex},
        "aligned": {"talker": talker_aligned, "sub": sub_aligned, "total": talker_aligned + 0.3 * sub_aligned},
    }


def sft_loss(m, text_ids, codes, spk):
    """One step of the official finetuning/sft_12hz.py (HEAD 022e286) on one sample: its collate layout
    (model-talker.md §7.1) and its loss, with the talker's own HF loss (double shift) and forward_sub_talker_finetune
    on the hidden at each frame's own position. As written upstream, the text channel is not text-projected, so the
    step only runs where text width = talker width (1.7B)."""
    cfg = m.model.config
    tc = cfg.talker_config
    talker = m.model.talker
    L, N = len(text_ids), codes.shape[0]
    S = L + N + 8
    text = torch.zeros(S, dtype=torch.long)
    codec = torch.zeros(S, dtype=torch.long)
    tmask = torch.zeros(S, dtype=torch.bool)
    cmask = torch.zeros(S, dtype=torch.bool)
    fmask = torch.zeros(S, dtype=torch.bool)
    labels = torch.full((S,), -100, dtype=torch.long)
    codec_ids = torch.zeros(S, 16, dtype=torch.long)
    text[:3] = torch.tensor(text_ids[:3])
    text[3:7] = cfg.tts_pad_token_id
    text[7] = cfg.tts_bos_token_id
    text[8:8 + L - 3] = torch.tensor(text_ids[3:])
    text[8 + L - 3] = cfg.tts_eos_token_id
    text[8 + L - 2:8 + L + N] = cfg.tts_pad_token_id
    tmask[:8 + L + N] = True
    codec[3:8] = torch.tensor([tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id, 0, tc.codec_pad_id])
    codec[8:8 + L - 3] = tc.codec_pad_id
    codec[8 + L - 3] = tc.codec_pad_id
    codec[8 + L - 2] = tc.codec_bos_id
    codec[8 + L - 1:8 + L - 1 + N] = codes[:, 0]
    codec[8 + L - 1 + N] = tc.codec_eos_token_id
    labels[8 + L - 1:8 + L - 1 + N] = codes[:, 0]
    labels[8 + L - 1 + N] = tc.codec_eos_token_id
    codec_ids[8 + L - 1:8 + L - 1 + N] = codes
    cmask[3:8 + L + N] = True
    cmask[6] = False
    fmask[8 + L - 1:8 + L - 1 + N] = True
    attn = tmask.long()
    E = talker.model.text_embedding(text.unsqueeze(0)) * tmask.view(1, -1, 1)
    Ec = talker.model.codec_embedding(codec.unsqueeze(0)) * cmask.view(1, -1, 1)
    Ec[:, 6, :] = spk
    E = E + Ec
    for i in range(1, 16):
        E = E + talker.code_predictor.get_input_embeddings()[i - 1](codec_ids[:, i].unsqueeze(0)) * fmask.view(1, -1, 1)
    out = talker(inputs_embeds=E[:, :-1], attention_mask=attn.unsqueeze(0)[:, :-1], labels=labels.unsqueeze(0)[:, 1:],
                 output_hidden_states=True)
    hidden = out.hidden_states[0][-1]
    th = hidden[fmask.unsqueeze(0)[:, :-1]]
    _, sub = talker.forward_sub_talker_finetune(codec_ids[fmask], th)
    return {"talker": out.loss, "sub": sub, "total": out.loss + 0.3 * sub}


def training_sample(m, shared, clips, ref_text):
    import soundfile as sf

    tok_ids = m._tokenize_texts([m._build_assistant_text(TRAIN_TEXT)])[0][0].tolist()
    text_ids = tok_ids[:-5]  # role + content (the official text_ids)
    codes = m.model.speech_tokenizer.encode(os.path.join(shared, clips["watson"])).audio_codes[0][:TRAIN_FRAMES]
    wav, sr = sf.read(os.path.join(shared, clips["sion"]), dtype="float32")
    spk = m.model.extract_speaker_embedding(wav, sr).clone()
    return text_ids, codes.to(torch.long).clone(), spk  # clones: outside inference mode, for autograd


def stage7(m, shared, out, model_name, clips, ref_text):
    text_ids, codes, spk = training_sample(m, shared, clips, ref_text)
    meta = {"text": TRAIN_TEXT, "text_ids": text_ids, "frames": int(codes.shape[0]), "lora_r": LORA_R,
            "lora_alpha": LORA_ALPHA, "targets": TARGETS, "speaker_clip": clips["sion"], "language": "english"}
    tensors = {"codes": codes.contiguous(), "speaker": f32(spk)}
    # (a) the official sft step, where it runs (text width = talker width)
    talker = m.model.talker
    if talker.config.text_hidden_size == talker.config.hidden_size:
        with torch.no_grad():
            s = sft_loss(m, text_ids, codes, spk)
        meta["sft"] = {k: float(v) for k, v in s.items()}
    else:
        meta["sft"] = None  # sft_12hz.py adds text_embedding (text width) to codec_embedding (talker width)
    # (b) Alexandria's objective and (c) ours aligned, with a PEFT LoRA; gradients after one backward each
    pm, _ = peft_talker(m, seed=7)
    lora = {n: p for n, p in pm.named_parameters() if "lora_" in n}
    save_peft_state(pm, os.path.join(out, model_name, "stage7_adapter"))
    meta["losses"] = {}
    for objective in ("alexandria", "aligned"):
        for p in pm.parameters():
            p.grad = None
        embeds, prefill_len = alexandria_inputs(m, text_ids, codes, spk, "english")
        embeds = embeds.detach()  # the embedding path carries no LoRA (as in training: only q/k/v/o train)
        losses = objective_losses(m, pm.base_model.model, embeds, prefill_len, codes)
        losses[objective]["total"].backward()
        meta["losses"][objective] = {k: float(v) for k, v in losses[objective].items()}
        for n, p in lora.items():
            tensors[f"grad.{objective}.{peft_key(n)}"] = f32(p.grad)
        if objective == "alexandria":
            tensors["embeds"] = f32(embeds)
            meta["prefill_len"] = int(prefill_len)
    unload(m, pm)
    save_file(tensors, os.path.join(out, model_name, "stage7.safetensors"))
    return meta


def peft_key(name):
    """PEFT's saved key for a live parameter name: drop the adapter name ("default")."""
    return name.replace(".lora_A.default.weight", ".lora_A.weight").replace(".lora_B.default.weight", ".lora_B.weight")


def save_peft_state(pm, folder):
    os.makedirs(folder, exist_ok=True)
    pm.save_pretrained(folder)


def unload(m, pm):
    m.model.talker = pm.unload()


# Stage 8 keeps the fixture small: the talker's hidden states of every row (they carry every LoRA effect of the
# talker), its last row's logits, and the code predictor's logits over the first CP_VOCAB codes of each head (the
# heads carry no LoRA: 256 logits of a 16- or 32-wide hidden state already pin that state down).
CP_VOCAB = 256


def logits_with(talker_module, embeds, cp_hidden, cp_codes):
    with torch.no_grad():
        h = talker_module.model(inputs_embeds=embeds.unsqueeze(0), use_cache=False).last_hidden_state[0]
        lg = talker_module.codec_head(h[-1])
        cp, _ = talker_module.forward_sub_talker_finetune(cp_codes, cp_hidden)
    return f32(h), f32(lg), f32(cp[..., :CP_VOCAB])


def stage8(m, model_dir, out, model_name):
    """PEFT both ways. (1) An adapter made by peft (non-zero B) and saved by save_pretrained: the official logits
    with it unmerged and merged. (2) Our adapter folder (written by test_parity "[.write-adapter]" into
    <out>/<model>/ours_adapter before this runs), loaded by peft's PeftModel.from_pretrained: the official logits
    unmerged and merged, for the C++ side to match."""
    from peft import PeftModel
    from safetensors.torch import load_file

    st3 = load_file(os.path.join(out, model_name, "stage3.safetensors"))
    st4 = load_file(os.path.join(out, model_name, "stage4.safetensors"))
    first = sorted(k for k in st3 if k.endswith(".prefill"))[0]
    embeds = st3[first]
    cp_hidden, cp_codes = st4["hidden"], st4["codes"]
    meta = {"input": first, "cases": {}, "logits": "last row", "cp_vocab": CP_VOCAB}
    tensors = {}
    # merge then unmerge leaves W + d - d, not W, in fp32: each case starts again from the base weights
    base_state = {k: v.clone() for k, v in m.model.talker.state_dict().items()}

    pm, _ = peft_talker(m, seed=8)
    folder = os.path.join(out, model_name, "peft_adapter")
    save_peft_state(pm, folder)
    for mode in ("unmerged", "merged"):
        if mode == "merged":
            pm.merge_adapter()
        h, lg, cp = logits_with(pm.base_model.model, embeds, cp_hidden, cp_codes)
        tensors[f"peft.{mode}.hidden"], tensors[f"peft.{mode}.logits"], tensors[f"peft.{mode}.cp_logits"] = h, lg, cp
    unload(m, pm)
    m.model.talker.load_state_dict(base_state)
    meta["cases"]["peft"] = "peft_adapter"

    ours = os.path.join(out, model_name, "ours_adapter")
    if os.path.exists(os.path.join(ours, "adapter_config.json")):
        pm = PeftModel.from_pretrained(m.model.talker, ours)
        for mode in ("unmerged", "merged"):
            if mode == "merged":
                pm.merge_adapter()
            h, lg, cp = logits_with(pm.base_model.model, embeds, cp_hidden, cp_codes)
            tensors[f"ours.{mode}.hidden"], tensors[f"ours.{mode}.logits"], tensors[f"ours.{mode}.cp_logits"] = h, lg, cp
        unload(m, pm)
        m.model.talker.load_state_dict(base_state)
        meta["cases"]["ours"] = "ours_adapter"
    h, lg, cp = logits_with(m.model.talker, embeds, cp_hidden, cp_codes)
    tensors["base.hidden"], tensors["base.logits"], tensors["base.cp_logits"] = h, lg, cp
    save_file(tensors, os.path.join(out, model_name, "stage8.safetensors"))
    return meta
