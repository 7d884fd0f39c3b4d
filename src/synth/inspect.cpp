#include "alexandria/synth/inspect.h"

#include <filesystem>
#include <set>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/model_location.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/synth/synthesizer.h"

namespace alexandria::synth {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

int64_t numel(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

// Hard link (same filesystem, no copy of gigabytes) or copy.
void link_or_copy(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::create_hard_link(from, to, ec);
    if (ec) fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

void link_or_copy_tree(const fs::path& from, const fs::path& to) {
    fs::create_directories(to);
    for (const auto& e : fs::directory_iterator(from)) {
        auto target = to / e.path().filename();
        if (e.is_directory()) link_or_copy_tree(e.path(), target);
        else if (e.is_regular_file()) link_or_copy(e.path(), target);
    }
}

nlohmann::json read_json_file(const fs::path& p) {
    try {
        return nlohmann::json::parse(io::read_file(p));
    } catch (const nlohmann::json::exception& e) {
        throw InputError(fmt::format("{}: invalid JSON ({})", p.string(), e.what()));
    }
}

}  // namespace

nlohmann::json model_info(const std::string& model) {
    const fs::path dir = io::locate_model(model);
    auto cfg = model::ModelConfig::load(dir.string());
    nlohmann::json j;
    j["path"] = dir.string();
    j["type"] = cfg.tts_model_type;
    j["size"] = cfg.tts_model_size;
    j["languages"] = cfg.supported_languages();
    j["speakers"] = cfg.supported_speakers();
    nlohmann::json dialects = nlohmann::json::object();
    for (auto& [spk, d] : cfg.talker.spk_is_dialect)
        if (!d.empty()) dialects[spk] = d;
    j["speaker_dialects"] = dialects;
    j["supports_instruct"] = !(cfg.tts_model_type == "custom_voice" && cfg.tts_model_size == "0b6");
    j["clones_from_audio"] = cfg.is_base();
    j["talker"] = {{"hidden_size", cfg.talker.hidden_size},
                   {"layers", cfg.talker.num_hidden_layers},
                   {"code_groups", cfg.talker.num_code_groups},
                   {"code_predictor_hidden_size", cfg.talker.code_predictor.hidden_size},
                   {"code_predictor_layers", cfg.talker.code_predictor.num_hidden_layers}};

    // Parameter counts from the module tree the config implies.
    auto shapes = model::checkpoint_shapes(cfg);
    int64_t total = 0, talker = 0, cp = 0, spk = 0, text_emb = 0;
    for (auto& [name, shape] : shapes) {
        int64_t n = numel(shape);
        total += n;
        if (starts_with(name, "speaker_encoder.")) spk += n;
        else if (starts_with(name, "talker.code_predictor.")) cp += n;
        else talker += n;
        if (name == "talker.model.text_embedding.weight") text_emb += n;
    }
    j["parameters"] = {{"total", total},
                       {"talker", talker},
                       {"talker_text_embedding", text_emb},
                       {"code_predictor", cp},
                       {"speaker_encoder", spk},
                       {"tensors", shapes.size()}};

    // The weights file against the config.
    const fs::path weights = dir / "model.safetensors";
    nlohmann::json w = {{"present", fs::exists(weights)}};
    if (fs::exists(weights)) {
        io::SafetensorsFile f(weights.string());
        w["bytes"] = fs::file_size(weights);
        w["tensors"] = f.tensors().size();
        std::set<std::string> dtypes;
        for (auto& t : f.tensors()) dtypes.insert(io::dtype_name(t.dtype));
        w["dtypes"] = std::vector<std::string>(dtypes.begin(), dtypes.end());
        std::map<std::string, const io::TensorInfo*> by_name;
        for (auto& t : f.tensors()) by_name[t.name] = &t;
        std::vector<std::string> missing, mis_shaped, unexpected;
        std::set<std::string> wanted;
        for (auto& [name, shape] : shapes) {
            wanted.insert(name);
            auto it = by_name.find(name);
            if (it == by_name.end()) missing.push_back(name);
            else if (it->second->shape != shape) mis_shaped.push_back(name);
        }
        for (auto& t : f.tensors())
            if (!wanted.count(t.name)) unexpected.push_back(t.name);
        w["matches_config"] = missing.empty() && mis_shaped.empty() && unexpected.empty();
        w["missing"] = missing.size();
        w["mis_shaped"] = mis_shaped.size();
        w["unexpected"] = unexpected.size();
    }
    j["weights"] = w;
    j["generation_config"] = fs::exists(dir / "generation_config.json");
    bool slow = fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt");
    j["tokenizer"] = slow ? "vocab.json + merges.txt" : (fs::exists(dir / "tokenizer.json") ? "tokenizer.json" : "");
    const fs::path st = dir / "speech_tokenizer";
    j["codec"] = {{"present", fs::exists(st / "config.json") && fs::exists(st / "model.safetensors")},
                  {"bytes", fs::exists(st / "model.safetensors") ? fs::file_size(st / "model.safetensors") : 0}};
    if (fs::exists(dir / kMergedFromFile)) j["merged_from"] = read_json_file(dir / kMergedFromFile);
    return j;
}

MergeResult merge_adapter_folder(const MergeOptions& o) {
    if (o.out.empty()) throw InputError("--out is required");
    if (!(o.scale >= 0) || !std::isfinite(o.scale)) throw InputError("--scale must be a finite number >= 0");
    const fs::path dir = io::locate_model(o.model);
    const fs::path out = fs::absolute(o.out);
    if (fs::exists(out) && fs::weakly_canonical(out) == fs::weakly_canonical(dir))
        throw InputError("--out must differ from the base model folder");
    if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)) && !o.force)
        throw InputError(fmt::format("--out {} exists and is not empty (use --force to replace it)", out.string()));

    torch::Dtype dtype = torch::kFloat32;
    std::string dtype_name = "f32";
    if (o.dtype == "auto") {
        io::SafetensorsFile f((dir / "model.safetensors").string());
        if (!f.tensors().empty() && f.tensors().front().dtype == io::DType::BF16) dtype = torch::kBFloat16, dtype_name = "bf16";
    } else if (o.dtype == "bf16") {
        dtype = torch::kBFloat16, dtype_name = "bf16";
    } else if (o.dtype != "f32") {
        throw InputError(fmt::format("--dtype '{}': expected auto, f32 or bf16", o.dtype));
    }

    auto lm = model::load_model(dir.string(), torch::kCPU, torch::kFloat32);
    auto& talker = lm.model->talker;
    auto lcfg = model::load_adapter(talker, o.adapter);
    model::set_lora_scale(talker, o.scale);
    int64_t n = static_cast<int64_t>(model::lora_modules(talker).size());
    {
        torch::NoGradGuard ng;
        model::merge_lora(talker);
    }
    auto voice = inspect_adapter_voice(o.adapter);

    io::replace_directory_atomic(out, [&](const fs::path& tmp) {
        for (const auto& e : fs::directory_iterator(dir)) {
            auto name = e.path().filename().string();
            if (name == "model.safetensors" || name == kMergedFromFile || name.rfind('.', 0) == 0) continue;
            if (e.is_directory()) link_or_copy_tree(e.path(), tmp / name);
            else if (e.is_regular_file()) link_or_copy(e.path(), tmp / name);
        }
        // Merged weights: parameters only (the LoRA tensors are not registered), so the key list is the base's.
        model::save_state(*lm.model, (tmp / "model.safetensors").string(), dtype, {{"format", "pt"}});
        for (const auto& f : {voice.speaker_file, voice.ref_sample})
            if (!f.empty()) fs::copy_file(f, tmp / fs::path(f).filename(), fs::copy_options::overwrite_existing);
        if (fs::exists(fs::path(o.adapter) / kTrainingMetaFile))
            fs::copy_file(fs::path(o.adapter) / kTrainingMetaFile, tmp / kTrainingMetaFile,
                          fs::copy_options::overwrite_existing);
        nlohmann::json m = {{"base_model", dir.string()},
                            {"adapter", fs::absolute(o.adapter).string()},
                            {"scale", o.scale},
                            {"r", lcfg.r},
                            {"alpha", lcfg.alpha},
                            {"merged_modules", n},
                            {"dtype", dtype_name}};
        io::write_file_atomic(tmp / kMergedFromFile, m.dump(2) + "\n");
    });
    return {out.string(), n, dtype_name};
}

}  // namespace alexandria::synth
