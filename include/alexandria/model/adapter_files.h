#pragma once
// The files of a PEFT LoRA adapter folder, read without libtorch: adapter_config.json, the tensor listing of
// adapter_model.safetensors (names, dtypes, shapes; no values), training_meta.json, the stored speaker vector and
// ref_sample.wav. `adapter info` runs on this alone; lora.h loads the values onto a talker.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alexandria/io/safetensors.h"

namespace alexandria::model {

constexpr const char* kPeftPrefix = "base_model.model.";
constexpr const char* kAdapterConfigFile = "adapter_config.json";
constexpr const char* kAdapterWeightsFile = "adapter_model.safetensors";

struct LoraConfig {
    int64_t r = 32;
    double alpha = 128;
    double dropout = 0.05;
    // PEFT semantics: a module matches when its path equals an entry or ends with "." + entry. The default is
    // Alexandria's list, which PEFT applies to every talker AND code-predictor layer (264 tensors in all).
    std::vector<std::string> target_modules{"q_proj", "k_proj", "v_proj", "o_proj"};
    // PEFT's string form of target_modules: a regular expression that must match the whole module path.
    // Non-empty overrides target_modules.
    std::string target_regex;
    bool use_rslora = false;  // scaling alpha/√r instead of alpha/r

    double scaling() const;
    // The full PEFT LORA adapter_config.json (PEFT 0.18.1's field set, as Alexandria writes it).
    nlohmann::json to_peft_json() const;
    // Validates PEFT fields this implementation does not support (DoRA, bias, fan_in_fan_out, rank/alpha patterns,
    // modules_to_save, layer selection ...) and rejects them with an InputError naming `label` and the field.
    static LoraConfig from_peft_json(const nlohmann::json& j, const std::string& label);
    // True when `module_path` (relative to the talker) is targeted.
    bool matches(const std::string& module_path) const;
};

constexpr const char* kSpeakerEmbeddingFile = "speaker_embedding.safetensors";
constexpr const char* kTrainingMetaFile = "training_meta.json";
constexpr const char* kRefSampleFile = "ref_sample.wav";

// An adapter folder checked without reading tensor values: the config parsed and validated, every tensor a PEFT
// LoRA key of a floating dtype with a matrix shape of the config's rank. InputError listing every problem.
struct AdapterListing {
    std::string dir;
    LoraConfig config;
    nlohmann::json config_json;            // the file as read
    std::vector<io::TensorInfo> tensors;   // adapter_model.safetensors, in file order
};
AdapterListing list_adapter(const std::string& dir);

// What an adapter folder offers for synthesis (training_meta.json, stored speaker vector, reference sample).
struct AdapterVoice {
    std::string dir;
    std::string language;        // training language if recorded ("" otherwise)
    std::string ref_sample;      // ref_sample.wav path if present
    std::string ref_sample_text; // training_meta.json ref_sample_text
    std::string speaker_file;    // stored speaker embedding file if present
    std::string prompt;          // training_meta.json "prompt": "icl" | "xvector" ("" = not recorded: x-vector)
};
AdapterVoice inspect_adapter_voice(const std::string& dir);

// `adapter info`: settings, tensor counts, parameters, the model size it fits, voice files, training_meta.json.
nlohmann::json adapter_summary(const std::string& dir);

}  // namespace alexandria::model
