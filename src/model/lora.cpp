#include "alexandria/model/lora.h"

#include <cmath>
#include <filesystem>
#include <memory>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/io/jsonl.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"

namespace alexandria::model {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Every LoraLinear under the talker with its path relative to the talker.
std::vector<std::pair<std::string, LoraLinear>> all_linears(Talker& talker) {
    std::vector<std::pair<std::string, LoraLinear>> out;
    for (const auto& item : talker->named_modules("", /*include_self=*/false)) {
        if (auto lin = std::dynamic_pointer_cast<LoraLinearImpl>(item.value())) out.emplace_back(item.key(), LoraLinear(lin));
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
std::vector<std::pair<std::string, LoraLinear>> lora_targets(Talker& talker, const LoraConfig& cfg) {
    std::vector<std::pair<std::string, LoraLinear>> out;
    for (auto& [path, lin] : all_linears(talker))
        if (cfg.matches(path)) out.emplace_back(path, lin);
    return out;
}

int64_t attach_lora(Talker& talker, const LoraConfig& cfg) {
    auto targets = lora_targets(talker, cfg);
    if (targets.empty()) throw InputError("LoRA target_modules match no linear layer of the talker");
    for (auto& [path, lin] : targets) lin->attach_lora(cfg.r, cfg.scaling(), cfg.dropout);
    return static_cast<int64_t>(targets.size());
}

void detach_lora(Talker& talker) {
    for (auto& [path, lin] : all_linears(talker)) lin->detach_lora();
}

std::vector<std::pair<std::string, LoraLinear>> lora_modules(Talker& talker) {
    std::vector<std::pair<std::string, LoraLinear>> out;
    for (auto& [path, lin] : all_linears(talker))
        if (lin->has_lora()) out.emplace_back(path, lin);
    return out;
}

std::vector<std::pair<std::string, torch::Tensor>> lora_state(Talker& talker) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& [path, lin] : lora_modules(talker)) {
        out.emplace_back(kPeftPrefix + path + ".lora_A.weight", lin->lora_A());
        out.emplace_back(kPeftPrefix + path + ".lora_B.weight", lin->lora_B());
    }
    return out;
}

std::vector<torch::Tensor> lora_parameters(Talker& talker) {
    std::vector<torch::Tensor> out;
    for (auto& [name, t] : lora_state(talker)) out.push_back(t);
    return out;
}

int64_t lora_parameter_count(Talker& talker) {
    int64_t n = 0;
    for (auto& [name, t] : lora_state(talker)) n += t.numel();
    return n;
}

void freeze_base(torch::nn::Module& module) {
    for (auto& p : module.parameters()) p.set_requires_grad(false);
}

void set_lora_scale(Talker& talker, double scale) {
    for (auto& [path, lin] : lora_modules(talker)) lin->set_lora_multiplier(scale);
}

void merge_lora(Talker& talker) {
    for (auto& [path, lin] : lora_modules(talker)) lin->merge();
}

void unmerge_lora(Talker& talker) {
    for (auto& [path, lin] : lora_modules(talker)) lin->unmerge();
}

// ---------------------------------------------------------------------------------------------------------------
void save_adapter(Talker& talker, const LoraConfig& cfg, const std::string& dir) {
    auto state = lora_state(talker);
    if (state.empty()) throw Error("save_adapter: the talker carries no LoRA branches");
    for (auto& [path, lin] : lora_modules(talker))
        if (lin->lora_rank() != cfg.r)
            throw Error(fmt::format("save_adapter: {} has rank {}, the config says {}", path, lin->lora_rank(), cfg.r));
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& [name, t] : state) out.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32).contiguous());
    fs::create_directories(dir);
    io::save_safetensors((fs::path(dir) / kAdapterWeightsFile).string(), out, {{"format", "pt"}});
    io::write_file_atomic(fs::path(dir) / kAdapterConfigFile, cfg.to_peft_json().dump(2) + "\n");
}

Adapter read_adapter(const std::string& dir) {
    AdapterListing listing = list_adapter(dir);
    Adapter a;
    a.dir = dir;
    a.config = listing.config;
    a.config_json = listing.config_json;
    io::SafetensorsFile file((fs::path(dir) / kAdapterWeightsFile).string());
    std::vector<std::string> bad;
    for (const auto& info : listing.tensors) {
        torch::Tensor t = file.view(info.name).to(torch::kFloat32).clone();
        if (!torch::isfinite(t).all().item<bool>()) {
            bad.push_back(info.name);
            continue;
        }
        a.tensors.emplace_back(info.name, t);
    }
    if (!bad.empty())
        throw InputError(fmt::format("{}: {} tensor(s) hold non-finite values: {}", file.path(), bad.size(),
                                     fmt::join(bad.begin(), bad.begin() + std::min<size_t>(bad.size(), 20), ", ")));
    return a;
}

void apply_adapter(Talker& talker, const Adapter& adapter) {
    const LoraConfig& cfg = adapter.config;
    auto targets = lora_targets(talker, cfg);
    std::map<std::string, torch::Tensor> by_name(adapter.tensors.begin(), adapter.tensors.end());
    StateMismatch m;
    std::set<std::string> used;
    for (auto& [path, lin] : targets) {
        for (bool is_a : {true, false}) {
            std::string key = kPeftPrefix + path + (is_a ? ".lora_A.weight" : ".lora_B.weight");
            used.insert(key);
            auto it = by_name.find(key);
            if (it == by_name.end()) {
                m.missing.push_back(key);
                continue;
            }
            std::vector<int64_t> want = is_a ? std::vector<int64_t>{cfg.r, lin->in_features()}
                                             : std::vector<int64_t>{lin->out_features(), cfg.r};
            if (it->second.sizes() != torch::IntArrayRef(want))
                m.mis_shaped.push_back(fmt::format("{}: adapter {} vs model {}", key, shape_str(it->second.sizes()),
                                                   shape_str(want)));
        }
    }
    for (const auto& [name, t] : adapter.tensors)
        if (!used.count(name)) m.unexpected.push_back(name);
    if (!m.empty()) {
        std::string hint;
        if (!m.mis_shaped.empty()) hint = "\n  (the adapter was probably trained on a different model size)";
        throw InputError(fmt::format("{}: adapter does not fit this model (r = {}, {} targeted modules){}{}", adapter.dir,
                                     cfg.r, targets.size(), m.describe(), hint));
    }
    detach_lora(talker);
    torch::NoGradGuard no_grad;
    for (auto& [path, lin] : targets) {
        lin->attach_lora(cfg.r, cfg.scaling(), cfg.dropout);
        lin->lora_A().copy_(by_name.at(kPeftPrefix + path + ".lora_A.weight"));
        lin->lora_B().copy_(by_name.at(kPeftPrefix + path + ".lora_B.weight"));
    }
}

LoraConfig load_adapter(Talker& talker, const std::string& dir) {
    Adapter a = read_adapter(dir);
    apply_adapter(talker, a);
    return a.config;
}

}  // namespace alexandria::model
