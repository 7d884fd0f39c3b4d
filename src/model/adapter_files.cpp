#include "alexandria/model/adapter_files.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <memory>

#include <fmt/format.h>
#include <fmt/ranges.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"
#include "alexandria/io/strings.h"

namespace alexandria::model {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string shape_str(const std::vector<int64_t>& s) { return fmt::format("[{}]", fmt::join(s, ", ")); }


// Candidate names for a stored speaker vector beside an adapter (ours first).
const char* kSpeakerFiles[] = {kSpeakerEmbeddingFile, "speaker_embedding.st", "spk_embedding.safetensors"};

}  // namespace

double LoraConfig::scaling() const {
    return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

namespace {

// PEFT's string target_modules is Python's re.fullmatch against each module path. PCRE2 with nesting and match
// limits rather than std::regex: a pattern from a downloaded adapter_config.json must neither recurse the stack away
// (std::regex compiles and matches recursively) nor backtrack for hours. Returns whether the whole path matches;
// InputError naming the field when the pattern is invalid or too expensive.
bool regex_full_match(const std::string& pattern, const std::string& path, const std::string& label) {
    auto fail = [&](const std::string& why) -> bool {
        throw InputError(fmt::format("{}: field target_modules: {}", label, why));
    };
    if (pattern.size() > 4096) fail("regular expression longer than 4096 characters");
    std::unique_ptr<pcre2_compile_context, decltype(&pcre2_compile_context_free)> cctx(
        pcre2_compile_context_create(nullptr), pcre2_compile_context_free);
    pcre2_set_parens_nest_limit(cctx.get(), 64);
    int err = 0;
    PCRE2_SIZE at = 0;
    std::unique_ptr<pcre2_code, decltype(&pcre2_code_free)> re(
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_ANCHORED | PCRE2_ENDANCHORED,
                      &err, &at, cctx.get()),
        pcre2_code_free);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fail(fmt::format("invalid regular expression at offset {}: {}", at, reinterpret_cast<const char*>(msg)));
    }
    std::unique_ptr<pcre2_match_context, decltype(&pcre2_match_context_free)> mctx(
        pcre2_match_context_create(nullptr), pcre2_match_context_free);
    pcre2_set_match_limit(mctx.get(), 1000000);
    pcre2_set_depth_limit(mctx.get(), 10000);
    std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> md(
        pcre2_match_data_create_from_pattern(re.get(), nullptr), pcre2_match_data_free);
    int rc = pcre2_match(re.get(), reinterpret_cast<PCRE2_SPTR>(path.data()), path.size(), 0, 0, md.get(), mctx.get());
    if (rc >= 0) return true;
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return fail(fmt::format("regular expression too expensive to match ({})", reinterpret_cast<const char*>(msg)));
}

}  // namespace

bool LoraConfig::matches(const std::string& path) const {
    if (!target_regex.empty()) return regex_full_match(target_regex, path, "adapter_config.json");
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
        regex_full_match(c.target_regex, "", label);  // compiles it: a bad pattern is named here
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
AdapterListing list_adapter(const std::string& dir) {
    AdapterListing a;
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
        a.tensors.push_back(info);
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

AdapterVoice inspect_adapter_voice(const std::string& dir) {
    AdapterVoice v;
    v.dir = dir;
    fs::path d(dir);
    if (!fs::is_directory(d)) throw InputError(fmt::format("adapter folder '{}' does not exist", dir));
    if (fs::exists(d / kRefSampleFile)) v.ref_sample = (d / kRefSampleFile).string();
    for (const char* name : kSpeakerFiles)
        if (fs::exists(d / name)) {
            v.speaker_file = (d / name).string();
            break;
        }
    auto meta_path = d / kTrainingMetaFile;
    if (fs::exists(meta_path)) {
        nlohmann::json meta;
        try {
            meta = nlohmann::json::parse(io::read_file(meta_path));
        } catch (const nlohmann::json::exception& e) {
            throw InputError(fmt::format("{}: invalid JSON ({})", meta_path.string(), e.what()));
        }
        if (meta.is_object()) {
            if (auto it = meta.find("ref_sample_text"); it != meta.end() && it->is_string())
                v.ref_sample_text = it->get<std::string>();
            if (auto it = meta.find("prompt"); it != meta.end() && it->is_string()) v.prompt = it->get<std::string>();
            if (auto it = meta.find("language"); it != meta.end() && it->is_string()) {
                v.language = io::ascii_lower(it->get<std::string>());
            } else if (meta.contains("ref_sample_text") && meta.contains("model_name")) {
                // Alexandria's train_lora.py hard-codes the think + English codec prefix (spec §7.3) and records
                // no language: synthesise under the conditioning it was trained with.
                v.language = "english";
            }
        }
    }
    return v;
}

json adapter_summary(const std::string& dir) {
    auto a = list_adapter(dir);
    json j;
    j["path"] = dir;
    j["r"] = a.config.r;
    j["alpha"] = a.config.alpha;
    j["scaling"] = a.config.scaling();
    j["dropout"] = a.config.dropout;
    j["use_rslora"] = a.config.use_rslora;
    if (!a.config.target_regex.empty()) j["target_modules"] = a.config.target_regex;
    else j["target_modules"] = a.config.target_modules;
    int64_t params = 0, talker_tensors = 0, cp_tensors = 0, width = -1;
    for (const auto& t : a.tensors) {
        params += t.numel();
        const bool cp = t.name.find(".code_predictor.") != std::string::npos;
        if (cp) ++cp_tensors;
        else ++talker_tensors;
        // The talker width: the input side of a talker q_proj's lora_A.
        if (width < 0 && !cp && t.name.find("self_attn.q_proj.lora_A") != std::string::npos) width = t.shape[1];
    }
    j["tensors"] = a.tensors.size();
    j["talker_tensors"] = talker_tensors;
    j["code_predictor_tensors"] = cp_tensors;
    j["parameters"] = params;
    if (width > 0) {
        j["talker_hidden_size"] = width;
        j["fits"] = width == 2048 ? "1.7B" : (width == 1024 ? "0.6B" : fmt::format("talker width {}", width));
    }
    auto v = inspect_adapter_voice(dir);
    j["voice"] = {{"speaker_embedding", v.speaker_file},
                  {"ref_sample", v.ref_sample},
                  {"ref_sample_text", v.ref_sample_text},
                  {"language", v.language},
                  {"prompt", v.prompt.empty() ? "xvector" : v.prompt}};
    if (fs::exists(fs::path(dir) / kTrainingMetaFile)) j["training_meta"] = io::read_json_file(fs::path(dir) / kTrainingMetaFile);
    return j;
}

}  // namespace alexandria::model
