#include "alexandria/model/lora.h"

#include <cmath>
#include <filesystem>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"

namespace alexandria::model {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_str(torch::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

// Every LoraLinear under the talker with its path relative to the talker.
std::vector<std::pair<std::string, LoraLinear>> all_linears(Talker& talker) {
    std::vector<std::pair<std::string, LoraLinear>> out;
    for (const auto& item : talker->named_modules("", /*include_self=*/false)) {
        if (auto lin = std::dynamic_pointer_cast<LoraLinearImpl>(item.value())) out.emplace_back(item.key(), LoraLinear(lin));
    }
    return out;
}

}  // namespace

double LoraConfig::scaling() const {
    return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

bool LoraConfig::matches(const std::string& path) const {
    if (!target_regex.empty()) return std::regex_match(path, std::regex(target_regex));
    for (const auto& t : target_modules)
        if (path == t || ends_with(path, "." + t)) return true;
    return false;
}

json LoraConfig::to_peft_json() const {
    json j = {
        {"alora_invocation_tokens", nullptr},
        {"alpha_pattern", json::object()},
        {"arrow_config", nullptr},
        {"auto_mapping",
         {{"base_model_class", "Qwen3TTSTalkerForConditionalGeneration"},
          {"parent_library", "qwen_tts.core.models.modeling_qwen3_tts"}}},
        {"base_model_name_or_path", ""},
        {"bias", "none"},
        {"corda_config", nullptr},
        {"ensure_weight_tying", false},
        {"eva_config", nullptr},
        {"exclude_modules", nullptr},
        {"fan_in_fan_out", false},
        {"inference_mode", true},
        {"init_lora_weights", true},
        {"layer_replication", nullptr},
        {"layers_pattern", nullptr},
        {"layers_to_transform", nullptr},
        {"loftq_config", json::object()},
        {"lora_bias", false},
        {"lora_dropout", dropout},
        {"megatron_config", nullptr},
        {"megatron_core", "megatron.core"},
        {"modules_to_save", nullptr},
        {"peft_type", "LORA"},
        {"peft_version", "0.18.1"},
        {"qalora_group_size", 16},
        {"r", r},
        {"rank_pattern", json::object()},
        {"revision", nullptr},
        {"target_parameters", nullptr},
        {"task_type", nullptr},
        {"trainable_token_indices", nullptr},
        {"use_dora", false},
        {"use_qalora", false},
        {"use_rslora", use_rslora},
    };
    // PEFT writes integral alphas as ints (128, not 128.0).
    if (alpha == std::floor(alpha) && std::fabs(alpha) < 1e15) j["lora_alpha"] = static_cast<int64_t>(alpha);
    else j["lora_alpha"] = alpha;
    if (!target_regex.empty()) j["target_modules"] = target_regex;
    else j["target_modules"] = target_modules;
    return j;
}

LoraConfig LoraConfig::from_peft_json(const json& j, const std::string& label) {
    auto fail = [&](const std::string& field, const std::string& why) -> void {
        throw InputError(fmt::format("{}: field {}: {}", label, field, why));
    };
    if (!j.is_object()) throw InputError(label + ": not a JSON object");
    auto has = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
    auto is_empty_or_null = [&](const char* k) {
        if (!has(k)) return true;
        const json& v = j[k];
        return (v.is_object() || v.is_array() || v.is_string()) && v.empty();
    };
    LoraConfig c;
    if (!has("peft_type") || !j["peft_type"].is_string()) fail("peft_type", "missing");
    if (j["peft_type"] != "LORA") fail("peft_type", fmt::format("{} is not a LoRA adapter", j["peft_type"].dump()));
    if (!has("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0) fail("r", "expected a positive integer");
    c.r = j["r"].get<int64_t>();
    if (!has("lora_alpha") || !j["lora_alpha"].is_number()) fail("lora_alpha", "expected a number");
    c.alpha = j["lora_alpha"].get<double>();
    if (!std::isfinite(c.alpha)) fail("lora_alpha", "not finite");
    c.dropout = 0;
    if (has("lora_dropout")) {
        if (!j["lora_dropout"].is_number()) fail("lora_dropout", "expected a number");
        c.dropout = j["lora_dropout"].get<double>();
        if (!(c.dropout >= 0 && c.dropout < 1)) fail("lora_dropout", "must be in [0, 1)");
    }
    if (!has("target_modules")) fail("target_modules", "missing");
    const json& tm = j["target_modules"];
    if (tm.is_string()) {
        c.target_regex = tm.get<std::string>();
        try {
            std::regex check(c.target_regex);
        } catch (const std::regex_error& e) {
            fail("target_modules", fmt::format("invalid regular expression: {}", e.what()));
        }
        c.target_modules.clear();
    } else if (tm.is_array() && !tm.empty()) {
        c.target_modules.clear();
        for (const auto& t : tm) {
            if (!t.is_string()) fail("target_modules", "expected module names");
            c.target_modules.push_back(t.get<std::string>());
        }
    } else {
        fail("target_modules", "expected a list of module names or a regular expression");
    }
    if (has("use_rslora")) {
        if (!j["use_rslora"].is_boolean()) fail("use_rslora", "expected true or false");
        c.use_rslora = j["use_rslora"].get<bool>();
    }
    // Features that change the maths or the tensor set: refused rather than silently ignored.
    if (has("bias") && j["bias"] != "none") fail("bias", "only \"none\" is supported");
    for (const char* k : {"use_dora", "fan_in_fan_out", "lora_bias", "use_qalora"})
        if (has(k) && j[k] != false) fail(k, "true is not supported");
    for (const char* k : {"rank_pattern", "alpha_pattern", "modules_to_save", "layers_to_transform", "layers_pattern",
                          "exclude_modules", "layer_replication", "trainable_token_indices", "target_parameters"})
        if (!is_empty_or_null(k)) fail(k, "not supported (expected null or empty)");
    return c;
}

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
    Adapter a;
    a.dir = dir;
    fs::path cfg_path = fs::path(dir) / kAdapterConfigFile, w_path = fs::path(dir) / kAdapterWeightsFile;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw InputError(fmt::format("{}: not an adapter folder", dir));
    if (!fs::exists(cfg_path, ec)) throw InputError(fmt::format("{}: {} not found", dir, kAdapterConfigFile));
    if (!fs::exists(w_path, ec)) throw InputError(fmt::format("{}: {} not found", dir, kAdapterWeightsFile));
    a.config_json = io::read_json_file(cfg_path.string());
    try {
        a.config = LoraConfig::from_peft_json(a.config_json, cfg_path.string());
    } catch (const json::exception& e) {  // whatever the typed checks let through still names the file
        throw InputError(fmt::format("{}: {}", cfg_path.string(), io::json_reason(e)));
    }
    io::SafetensorsFile file(w_path.string());
    std::vector<std::string> problems;
    for (const auto& info : file.tensors()) {
        const std::string& n = info.name;
        bool is_a = ends_with(n, ".lora_A.weight"), is_b = ends_with(n, ".lora_B.weight");
        if (n.rfind(kPeftPrefix, 0) != 0 || !(is_a || is_b)) {
            problems.push_back(fmt::format("{}: not a PEFT LoRA key ({}<module>.lora_A/B.weight)", n, kPeftPrefix));
            continue;
        }
        if (info.dtype != io::DType::F32 && info.dtype != io::DType::BF16 && info.dtype != io::DType::F16 &&
            info.dtype != io::DType::F64) {
            problems.push_back(fmt::format("{}: dtype {} is not floating point", n, io::dtype_name(info.dtype)));
            continue;
        }
        if (info.shape.size() != 2) {
            problems.push_back(fmt::format("{}: shape {} is not a matrix", n, shape_str(info.shape)));
            continue;
        }
        int64_t rank = is_a ? info.shape[0] : info.shape[1];
        if (rank != a.config.r) {
            problems.push_back(fmt::format("{}: shape {} has rank {}, adapter_config.json says r = {}", n,
                                           shape_str(info.shape), rank, a.config.r));
            continue;
        }
        torch::Tensor t = file.view(n).to(torch::kFloat32).clone();
        if (!torch::isfinite(t).all().item<bool>()) {
            problems.push_back(fmt::format("{}: holds non-finite values", n));
            continue;
        }
        a.tensors.emplace_back(n, t);
    }
    if (!problems.empty()) {
        std::string msg = fmt::format("{}: {} bad tensor(s):", w_path.string(), problems.size());
        for (size_t i = 0; i < problems.size() && i < 20; ++i) msg += "\n  " + problems[i];
        if (problems.size() > 20) msg += fmt::format("\n  ... and {} more", problems.size() - 20);
        throw InputError(msg);
    }
    if (a.tensors.empty()) throw InputError(fmt::format("{}: holds no tensors", w_path.string()));
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
