#pragma once
// Strict checkpoint loading (DESIGN §3): walk the module's named_parameters() (and buffers), copy each tensor of
// the same name from the memory-mapped safetensors file once, converting dtype and device on the way. Any missing,
// unexpected or mis-shaped tensor fails the load, and the message lists all of them.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "alexandria/io/safetensors.h"
#include "alexandria/model/config.h"
#include "alexandria/model/talker.h"

namespace alexandria::model {

struct StateMismatch {
    std::vector<std::string> missing;     // in the module, not in the file
    std::vector<std::string> unexpected;  // in the file, not in the module
    std::vector<std::string> mis_shaped;  // "name: file [a, b] vs model [c, d]"
    bool empty() const { return missing.empty() && unexpected.empty() && mis_shaped.empty(); }
    // Every name is listed unless max_per_list is given.
    std::string describe(size_t max_per_list = static_cast<size_t>(-1)) const;
};

// Compares names and shapes only (no copy).
StateMismatch compare_state(torch::nn::Module& module, const io::SafetensorsFile& file, const std::string& prefix = "");

// Copies every tensor into `module` (the module's dtype and device win). File keys are matched as prefix + name.
// Throws InputError naming the file and every mismatch; on failure the module is left untouched.
void load_state(torch::nn::Module& module, const io::SafetensorsFile& file, const std::string& prefix = "");

// Writes the module's parameters (and buffers) under their names, converted to `dtype`, atomically.
void save_state(torch::nn::Module& module, const std::string& path, torch::Dtype dtype = torch::kBFloat16,
                const std::map<std::string, std::string>& metadata = {});

// A model folder: config.json + model.safetensors (+ generation_config.json).
struct LoadedModel {
    ModelConfig config;
    GenerationConfig generation;
    TTSModel model{nullptr};
    std::string dir;
};

// Parses the configs, builds the module tree on `device`/`dtype` without initialising it, and loads
// model.safetensors strictly (bf16 files become fp32 on the CPU when dtype is kFloat32). The model is in eval mode.
LoadedModel load_model(const std::string& dir, torch::Device device = torch::kCPU,
                       torch::Dtype dtype = torch::kFloat32);

// A shape as messages print it: [2048, 1024].
std::string shape_str(torch::IntArrayRef s);

}  // namespace alexandria::model
