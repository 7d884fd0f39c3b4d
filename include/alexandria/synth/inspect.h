#pragma once
// Model and adapter folders as the user sees them (`alexandria model info`, `adapter info`), and folding an
// adapter into a standalone model folder (`alexandria adapter merge`).
#include <string>

#include <nlohmann/json.hpp>

namespace alexandria::synth {

// Type, size, languages, speakers, parameter counts (per part, from the config's module tree), the weights
// file (present, bytes, dtype, tensors, whether names and shapes match the config), tokenizer and codec presence.
// InputError when the folder has no valid config.json.
nlohmann::json model_info(const std::string& model);

// An adapter's settings and files: model::adapter_summary (model/adapter_files.h), read without libtorch.

struct MergeOptions {
    std::string model;    // base folder (or Hugging Face id in the local cache)
    std::string adapter;  // adapter folder
    std::string out;      // new model folder
    double scale = 1.0;   // the --lora-scale the merged weights bake in
    // Weights dtype of the merged file: "auto" = the base file's dtype (bf16 for the released checkpoints, so the
    // merged weights carry bf16 rounding), "f32" keeps full precision (then merged == base + adapter in fp32).
    std::string dtype = "auto";
    bool force = false;   // replace an existing non-empty `out`
};
struct MergeResult {
    std::string out;
    int64_t merged_modules = 0;
    std::string dtype;
};
// Loads base + adapter on the CPU in fp32, merges W += scale·(alpha/r)·B·A, and writes `out` atomically: the
// merged model.safetensors, the base folder's other files (configs, tokenizer, speech_tokenizer/; hard-linked
// when possible), the adapter's voice files (stored speaker embedding, ref_sample.wav, training_meta.json) and
// merged_from.json, so `synth --model out` speaks in the adapter's voice by default.
MergeResult merge_adapter_folder(const MergeOptions& opts);

}  // namespace alexandria::synth
