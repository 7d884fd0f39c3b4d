"""The official fp32 outputs' own rounding error: stages 4 (code predictor logits) and 7 (LoRA gradients) computed
once more by the official model in float64 on the same inputs, and the fixture's fp32 values compared with that.
The figures go into the manifest (models.<name>.float64) and test_parity prints them beside ours: where ours differs
from the official fp32 by no more than the official fp32 differs from float64, the difference is rounding noise.
Imported by generate.py.

    float64.py --model DIR --fixtures FIXTURES --name MODEL [--save FILE]   (one model, by hand; --save writes the
                                                                             float64 tensors, not a fixture)
"""
import os

import torch
from safetensors.torch import load_file


def figures(got, want, floor=1e-3):
    """test_parity's compare(): max |got - want| / max(|want|, floor * max|want|), cosine, in float64."""
    g, w = got.detach().double().reshape(-1), want.detach().double().reshape(-1)
    d = (g - w).abs()
    denom = w.abs().clamp_min(max(floor * float(w.abs().max()), 1e-30))
    cos = float((g * w).sum() / max(float(g.norm() * w.norm()), 1e-300))
    # also at floor 1e-2, the floor of the stages whose tolerance these figures set
    denom2 = w.abs().clamp_min(max(1e-2 * float(w.abs().max()), 1e-30))
    return {"max_abs": float(d.max()), "max_rel": float((d / denom).max()), "cosine": cos, "count": g.numel(),
            "max_rel_floor_1e-2": float((d / denom2).max())}


def worst(rows):
    return {k: (min if k == "cosine" else sum if k == "count" else max)(r[k] for r in rows) for k in rows[0]}


def load_float64(model_dir):
    from qwen_tts import Qwen3TTSModel

    m = Qwen3TTSModel.from_pretrained(model_dir, dtype=torch.float64, attn_implementation="eager", device_map="cpu")
    m.model.eval()
    return m


def stage4(m64, fixtures, name):
    st4 = load_file(os.path.join(fixtures, name, "stage4.safetensors"))
    with torch.no_grad(), KeepFloat64():
        logits, _ = m64.model.talker.forward_sub_talker_finetune(st4["codes"], st4["hidden"].double())
    return figures(st4["logits"], logits), {"logits": logits}


class KeepFloat64:
    """Within: float64 tensors stay float64 where the official code upcasts to fp32 on purpose: Tensor.float() (HF's
    ForCausalLMLoss, training.py's losses), Tensor.to(torch.float32) (the RMS norms) and softmax(dtype=float32)
    (eager attention). On float64 inputs those would round to fp32, and the reference would carry fp32 noise of
    its own. (The rotary tables stay fp32 on both sides, computed from the fp32 inv_freq: a fixed input, not noise.)"""

    def __enter__(self):
        import torch.nn.functional as F

        self.saved = (torch.Tensor.float, torch.Tensor.to, F.softmax)
        to_float, to, softmax = self.saved

        def keep_to(t, *args, **kw):
            if t.dtype == torch.float64:
                args = tuple(torch.float64 if a is torch.float32 else a for a in args)
                if kw.get("dtype") is torch.float32:
                    kw["dtype"] = torch.float64
            return to(t, *args, **kw)

        def keep_softmax(x, *args, dtype=None, **kw):
            return softmax(x, *args, dtype=torch.float64 if x.dtype == torch.float64 else dtype, **kw)

        torch.Tensor.float = lambda t, *a, **k: t if t.dtype == torch.float64 else to_float(t, *a, **k)
        torch.Tensor.to = keep_to
        F.softmax = keep_softmax
        return self

    def __exit__(self, *exc):
        import torch.nn.functional as F

        torch.Tensor.float, torch.Tensor.to, F.softmax = self.saved


def stage7(m64, fixtures, name, meta):
    """The fixture's inputs (codes, speaker embedding from fp32: the speaker encoder is stage 2) and the same PEFT
    LoRA (its fp32 random values are exact in float64); losses and gradients of both objectives."""
    with KeepFloat64():
        return stage7_float64(m64, fixtures, name, meta)


def stage7_float64(m64, fixtures, name, meta):
    import training

    st7 = load_file(os.path.join(fixtures, name, "stage7.safetensors"))
    codes, spk = st7["codes"], st7["speaker"].double()
    pm, _ = training.peft_talker(m64, seed=7)
    lora = {n: p for n, p in pm.named_parameters() if "lora_" in n}
    out, tensors = {"grads": {}, "losses": {}}, {}
    for objective in ("alexandria", "aligned"):
        for p in pm.parameters():
            p.grad = None
        embeds, prefill_len = training.alexandria_inputs(m64, meta["text_ids"], codes, spk, "english")
        losses = training.objective_losses(m64, pm.base_model.model, embeds.detach(), prefill_len, codes)
        losses[objective]["total"].backward()
        rows = []
        for n, p in lora.items():
            key = f"grad.{objective}.{training.peft_key(n)}"
            rows.append(figures(st7[key], p.grad))
            tensors[key] = p.grad.detach().clone()
        out["grads"][objective] = worst(rows)
        got = meta["losses"][objective]
        out["losses"][objective] = max(abs(got[k] - float(v.detach())) / max(abs(float(v.detach())), 1e-12)
                                       for k, v in losses[objective].items())
    training.unload(m64, pm)
    return out, tensors


def measure(model_dir, fixtures, name, entry):
    """Float64 figures of one model for the stages its fixtures hold (stage 4: every model; stage 7: Base)."""
    m64 = load_float64(model_dir)
    out, tensors = {}, {}
    if os.path.exists(os.path.join(fixtures, name, "stage4.safetensors")):
        out["stage4"], t = stage4(m64, fixtures, name)
        tensors.update({f"stage4.{k}": v for k, v in t.items()})
    if entry.get("training"):
        out["stage7"], t = stage7(m64, fixtures, name, entry["training"])
        tensors.update({f"stage7.{k}": v for k, v in t.items()})
    return out, tensors


if __name__ == "__main__":
    import argparse
    import json
    import sys

    from safetensors.torch import save_file

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--save")
    a = ap.parse_args()
    torch.set_num_threads(1)
    with open(os.path.join(a.fixtures, "manifest.json"), encoding="utf-8") as f:
        entry = json.load(f)["models"][a.name]
    figs, tensors = measure(a.model, a.fixtures, a.name, entry)
    print(json.dumps(figs, indent=1))
    if a.save:
        save_file({k: v.contiguous() for k, v in tensors.items()}, a.save)
