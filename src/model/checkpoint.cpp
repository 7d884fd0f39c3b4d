#include "alexandria/model/checkpoint.h"

#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "alexandria/io/error.h"
#include "alexandria/model/layers.h"

namespace alexandria::model {

namespace {

std::vector<std::pair<std::string, torch::Tensor>> module_state(torch::nn::Module& module) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value());
    for (auto& b : module.named_buffers()) out.emplace_back(b.key(), b.value());
    return out;
}

}  // namespace

std::string shape_str(torch::IntArrayRef s) { return fmt::format("[{}]", fmt::join(s, ", ")); }

std::string StateMismatch::describe(size_t max_per_list) const {
    std::string out;
    auto list = [&](const char* what, const std::vector<std::string>& v) {
        if (v.empty()) return;
        out += fmt::format("\n  {} {} tensor(s):", v.size(), what);
        for (size_t i = 0; i < v.size() && i < max_per_list; ++i) out += "\n    " + v[i];
        if (v.size() > max_per_list) out += fmt::format("\n    ... and {} more", v.size() - max_per_list);
    };
    list("missing", missing);
    list("unexpected", unexpected);
    list("mis-shaped", mis_shaped);
    return out;
}

StateMismatch compare_state(torch::nn::Module& module, const io::SafetensorsFile& file, const std::string& prefix) {
    StateMismatch m;
    std::set<std::string> wanted;
    for (auto& [name, t] : module_state(module)) {
        std::string key = prefix + name;
        wanted.insert(key);
        if (!file.contains(key)) {
            m.missing.push_back(key);
            continue;
        }
        const auto& info = file.info(key);
        if (torch::IntArrayRef(info.shape) != t.sizes())
            m.mis_shaped.push_back(fmt::format("{}: file {} vs model {}", key, shape_str(info.shape), shape_str(t.sizes())));
    }
    for (const auto& info : file.tensors())
        if (!wanted.count(info.name)) m.unexpected.push_back(info.name);
    return m;
}

void load_state(torch::nn::Module& module, const io::SafetensorsFile& file, const std::string& prefix) {
    StateMismatch m = compare_state(module, file, prefix);
    if (!m.empty())
        throw InputError(fmt::format("{}: tensors do not match the model{}", file.path(), m.describe()));
    torch::NoGradGuard no_grad;
    // Embedding tables are read a few rows at a time: where the file already holds them in the dtype and on the
    // device wanted, the table stays in the file's mapping and only the rows used come into memory (the talker's
    // text embedding is a third of the 0.6B checkpoint: 622 MB in bf16).
    std::set<torch::TensorImpl*> tables;
    for (auto& m : module.modules(/*include_self=*/true))
        if (auto* emb = dynamic_cast<EmbeddingImpl*>(m.get())) tables.insert(emb->weight.unsafeGetTensorImpl());
    for (auto& [name, t] : module_state(module)) {
        torch::Tensor src = file.view(prefix + name);
        if (!src.is_floating_point() && t.is_floating_point())
            throw InputError(fmt::format("{}: tensor {} has dtype {}, expected a floating-point tensor", file.path(),
                                         prefix + name, io::dtype_name(file.info(prefix + name).dtype)));
        if (tables.count(t.unsafeGetTensorImpl()) && t.device().is_cpu() && src.scalar_type() == t.scalar_type()) {
            t.set_data(file.view_shared(prefix + name));
            continue;
        }
        // One copy from the mapping into the destination, converting dtype and device on the way.
        t.copy_(src);
        file.release(prefix + name);
    }
}

void save_state(torch::nn::Module& module, const std::string& path, torch::Dtype dtype,
                const std::map<std::string, std::string>& metadata) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& [name, t] : module_state(module)) out.emplace_back(name, t.detach().to(torch::kCPU, dtype).contiguous());
    io::save_safetensors(path, out, metadata);
}

LoadedModel load_model(const std::string& dir, torch::Device device, torch::Dtype dtype) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(dir)) throw InputError(fmt::format("{}: not a model folder", dir));
    LoadedModel lm;
    lm.dir = dir;
    lm.config = ModelConfig::load(dir);
    lm.generation = GenerationConfig::load(dir);
    std::string weights = (fs::path(dir) / "model.safetensors").string();
    if (!fs::exists(weights)) throw InputError(fmt::format("{}: model.safetensors not found", dir));
    io::SafetensorsFile file(weights);
    BuildOptions opts;
    opts.device = device;
    opts.dtype = dtype;
    opts.init = false;
    lm.model = TTSModel(lm.config, opts);
    load_state(*lm.model, file);
    lm.model->eval();
    return lm;
}

}  // namespace alexandria::model
