#pragma once
// LoRA on the talker, and PEFT adapter folders (spec model-talker.md §7.4, DESIGN §4).
//
// Where the LoRA tensors live: inside each LoraLinear (layers.h) but NOT registered as parameters, so the module
// tree stays exactly the base checkpoint's key tree (strict base loading and parameter counts never see them).
// They are reached through the helpers below, which name them as PEFT does with the talker as the PEFT root:
//   base_model.model.<module path under `talker`>.lora_A.weight   [r, in]
//   base_model.model.<module path under `talker`>.lora_B.weight   [out, r]
// e.g. base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight,
//      base_model.model.code_predictor.model.layers.0.self_attn.v_proj.lora_B.weight.
// Adapters trained by Alexandria/PEFT load here and ours load there; tensors are written in fp32.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include "alexandria/model/adapter_files.h"
#include "alexandria/model/talker.h"

namespace alexandria::model {

// Modules under the talker that `cfg` targets, as (path relative to the talker, module).
std::vector<std::pair<std::string, LoraLinear>> lora_targets(Talker& talker, const LoraConfig& cfg);
// Attaches fresh branches (A kaiming-uniform, B = 0) to every target; returns how many. InputError if none match.
int64_t attach_lora(Talker& talker, const LoraConfig& cfg);
void detach_lora(Talker& talker);
// Modules that carry a branch, in module order.
std::vector<std::pair<std::string, LoraLinear>> lora_modules(Talker& talker);
// The LoRA tensors under their PEFT names (live tensors, not copies), in module order, A before B.
std::vector<std::pair<std::string, torch::Tensor>> lora_state(Talker& talker);
// The trainable tensors (for the optimiser) and their total size.
std::vector<torch::Tensor> lora_parameters(Talker& talker);
int64_t lora_parameter_count(Talker& talker);
// requires_grad = false on every registered parameter of `module` (the base weights); LoRA tensors are untouched.
void freeze_base(torch::nn::Module& module);
// Per-call strength on every branch (1 = as trained, 0 = the base model).
void set_lora_scale(Talker& talker, double scale);
void merge_lora(Talker& talker);
void unmerge_lora(Talker& talker);

// Writes adapter_config.json and adapter_model.safetensors (fp32, metadata {"format": "pt"}) into `dir` (created
// if needed), each atomically. Other files in `dir` are left alone.
void save_adapter(Talker& talker, const LoraConfig& cfg, const std::string& dir);

struct Adapter {
    std::string dir;
    LoraConfig config;
    nlohmann::json config_json;  // the file as read
    std::vector<std::pair<std::string, torch::Tensor>> tensors;  // PEFT names → fp32 CPU tensors
};
// Reads and validates an adapter folder on its own (config fields, key names, ranks); InputError on any problem.
Adapter read_adapter(const std::string& dir);
// Attaches the adapter's branches to `talker` and copies its weights. Every targeted module must have both
// tensors with shapes [r, in] / [out, r] of that module, and every tensor must belong to a targeted module;
// otherwise an InputError lists all missing, unexpected and mis-shaped tensors (e.g. an adapter trained on the
// other model size). On failure the talker is left without LoRA.
void apply_adapter(Talker& talker, const Adapter& adapter);
// read_adapter + apply_adapter; returns the adapter's config.
LoraConfig load_adapter(Talker& talker, const std::string& dir);

}  // namespace alexandria::model
