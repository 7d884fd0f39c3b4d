#!/usr/bin/env python3
"""Expected ids for the text tokenizer tests, from Hugging Face's own implementation: transformers' AutoTokenizer
(Qwen2TokenizerFast, i.e. the Rust `tokenizers` library) on the real Qwen3-TTS tokenizer files. Run it with the
parity venv's python (tools/parity/setup.sh installs the pinned transformers and tokenizers):

    ~/.cache/alexandria/parity-venv/bin/python tools/tokenizer-reference/generate.py \
        --reference ../shared/reference/text-tokenizer \
        --corpus tests/data/tokenizer/corpus.json --out tests/data/tokenizer/expected.json

--corpus is a JSON list of strings. To each corpus the script adds every added token alone and inside text, and
the chat templates the prompts use (target, reference, instruct), so those are always covered.
--extra-corpus adds the generated multilingual corpus of corpus_extra.py (the parity suite's ≥1000 lines).
Each case records the text, its NFC form, the ids (no special tokens added) and decode(ids); with --compact the
NFC form and the decoded text are left out where they equal the text.
"""
import argparse
import json
import os
import sys
import unicodedata

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)


def load_tokenizer(ref_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ref_dir, use_fast=True)
    if not tok.is_fast:
        raise SystemExit("expected the fast (tokenizers) implementation")
    return tok


def template_cases():
    target = lambda s: f"<|im_start|>assistant\n{s}<|im_end|>\n<|im_start|>assistant\n"
    reference = lambda s: f"<|im_start|>assistant\n{s}<|im_end|>\n"
    instruct = lambda s: f"<|im_start|>user\n{s}<|im_end|>\n"
    out = []
    for s in ["Hello world.", "It's a beautiful day, isn't it?", " leading space", "\nleading newline",
              "trailing newline\n", "\u4ECA\u5929\u5929\u6C14\u5F88\u597D\u3002", "Cafe\u0301 au lait"]:
        out += [target(s), reference(s)]
    for s in ["Speak slowly and warmly.", "Read this like a bedtime story, with a gentle voice."]:
        out.append(instruct(s))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True, help="tokenizer folder (vocab.json, merges.txt, tokenizer_config.json)")
    ap.add_argument("--corpus", required=True, help="JSON list of strings")
    ap.add_argument("--out", required=True)
    ap.add_argument("--extra-corpus", action="store_true", help="append corpus_extra.generate() (≥1000 lines in all)")
    ap.add_argument("--compact", action="store_true", help="omit nfc and decoded where they equal the text")
    a = ap.parse_args()

    tok = load_tokenizer(a.reference)
    with open(a.corpus, encoding="utf-8") as f:
        cases = json.load(f)
    if a.extra_corpus:
        import corpus_extra
        cases += corpus_extra.generate()
    added = sorted(tok.added_tokens_decoder.items())
    for _, t in added:
        c = t.content
        cases += [c, f"Hello{c}world", f" {c} ", c + c, f"a {c}\nb"]
    cases += template_cases()

    out = []
    for text in cases:
        ids = tok.encode(text, add_special_tokens=False)
        # decode() keeps special tokens and does not clean up spaces: the byte-level inverse our decode() gives.
        decoded = tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) if ids else ""
        case = {"text": text, "nfc": unicodedata.normalize("NFC", text), "ids": ids, "decoded": decoded}
        if a.compact:
            case = {k: v for k, v in case.items() if k in ("text", "ids") or v != text}
        out.append(case)

    import tokenizers
    import transformers
    doc = {
        "generator": "tools/tokenizer-reference/generate.py",
        "implementation": f"transformers {transformers.__version__} AutoTokenizer ({type(tok).__name__}), "
                          f"tokenizers {tokenizers.__version__}",
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "cases": out,
    }
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("},{", "},\n{") + "\n"
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, a.out)
    print(f"{len(out)} cases written to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
