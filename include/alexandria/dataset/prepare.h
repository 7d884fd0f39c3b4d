#pragma once
// `dataset prepare`: the codes cache inside a dataset folder (DESIGN §4).
//
// Every usable clip (check.h's rule) is encoded once with the model's codec; the speaker embedding is computed once
// from the reference (Alexandria's rule: the first entry's ref_audio, else ref.wav, else the first usable clip).
// Both are stored under DIR/.alexandria/, keyed by content, so the cache is idempotent and self-invalidating:
//
//   .alexandria/codes/<codec key>/<clip hash>.safetensors        "codes" [frames, 16] int16
//   .alexandria/speaker/<speaker key>/<ref hash>.safetensors      "speaker_embedding" [enc_dim] fp32
//   .alexandria/files.json                                        path → {size, mtime, hash}: a clip whose size and
//                                                                 modification time are unchanged is not re-hashed
//   .alexandria/check.json                                        the usable-clip verdict (check.h's rule), keyed by
//                                                                 the metadata, ref_text.txt, every named file's
//                                                                 content hash and max_seconds
//   .alexandria/codes/<codec key>/<ref hash>.safetensors          the reference's codes, when asked for (ICL prompts)
//
// <codec key> = the codec's identity() + the encode dtype; <speaker key> = a hash of the model's config.json and
// its speaker_encoder.* tensors (names, shapes, bytes); <clip hash> = FNV-1a of the audio file's bytes. A changed or
// added clip gets a new hash and is encoded alone; a second run loads neither model and, its files' size and
// modification time unchanged, reads no audio at all (the verdict comes from check.json). Every file is written
// atomically, so an interrupted prepare leaves only complete entries.
//
// Progress lines are Alexandria's (spec alexandria-compat.md §2.3): `[DATA] Found N entries in metadata.jsonl`,
// `[DATA] Using reference audio: <name>`, `[DATA] Tokenizing i/N: <name>`, `[DATA] SKIP i/N: <rel> (<why>)`
// (too long: `(<dur>s > 30.0s)`, missing: `(file not found)`), `[DATA] Prepared M samples (K skipped)`.
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include "alexandria/codec/codec.h"
#include "alexandria/dataset/check.h"
#include "alexandria/model/talker.h"

namespace alexandria::dataset {

constexpr const char* kCacheDir = ".alexandria";

struct PrepareOptions {
    double max_seconds = kDefaultMaxSeconds;
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;          // the codec's (codes are keyed by it)
    torch::Dtype speaker_dtype = torch::kFloat32;  // the speaker encoder's (the embedding is keyed by it)
    // Restrict training to these metadata.jsonl lines (1-based), e.g. a split's train side; empty = every line.
    // Clips outside are still checked but neither encoded nor returned.
    std::vector<int> only_lines;
    // Already loaded models (train passes its own); when null they are loaded from the model folder, and only
    // when something has to be computed.
    const codec::Codec* codec = nullptr;
    model::SpeakerEncoder* speaker_encoder = nullptr;
    // Also encode the reference audio (the ICL prompt's reference codes: train --prompt icl, synth/eval of ICL
    // adapters). The reference may be longer than max_seconds.
    bool reference_codes = false;
    // Receives each `[DATA] ...` line (without newline). Null: silent.
    std::function<void(const std::string&)> log;
};

struct PreparedClip {
    int line = 0;              // metadata.jsonl line
    std::string audio;         // as written in the metadata
    fs::path path;
    std::string text;
    std::string hash;          // content hash of the audio file
    double seconds = 0;
    int64_t frames = 0;
    fs::path codes_file;
    bool encoded_now = false;  // false: taken from the cache
};

struct SkippedClip {
    int line = 0;
    std::string audio;
    std::string code;          // check.h's skip code ("too-long", "missing", "undecodable", ...)
    std::string reason;        // the text after SKIP, e.g. "31.2s > 30.0s"
};

struct PrepareResult {
    fs::path dir;
    std::string codec_key, speaker_key;
    int entries = 0;                  // metadata lines
    std::vector<PreparedClip> clips;  // usable (and selected) clips in metadata order, codes cached
    std::vector<SkippedClip> skipped;
    fs::path reference;               // the reference audio file
    std::string reference_source;     // "metadata line 1 ref_audio" | "ref.wav" | "first usable clip"
    std::string reference_hash;
    fs::path speaker_file;
    bool speaker_computed_now = false;
    fs::path reference_codes_file;    // when PrepareOptions::reference_codes
    int64_t reference_frames = 0;
    bool reference_codes_now = false;
    bool verdict_cached = false;      // the usable-clip verdict came from check.json (no audio decoded)
    int encoded = 0, reused = 0;
    // Hash of what training sees: (clip hash, text) of every prepared clip, the reference hash, the codec key.
    std::string dataset_hash;
    double usable_seconds() const;

    // [frames, 16] int64 on the CPU.
    torch::Tensor load_codes(const PreparedClip& clip) const;
    // The reference's [frames, 16] int64 on the CPU (PrepareOptions::reference_codes).
    torch::Tensor load_reference_codes() const;
    // [enc_dim] fp32 on the CPU.
    torch::Tensor speaker_embedding() const;
    nlohmann::json to_json() const;
};

// InputError (exit 2) when the folder cannot be trained: missing/malformed metadata, a named reference that is
// missing or undecodable, or no usable clip (e.g. every clip longer than max_seconds).
PrepareResult prepare(const fs::path& dir, const std::string& model_dir, const PrepareOptions& options = {});

// The cache keys, exposed for tests and `dataset check`-like reports.
std::string codec_cache_key(const codec::Codec& codec, torch::Dtype dtype);
std::string speaker_cache_key(const std::string& model_dir);

}  // namespace alexandria::dataset
