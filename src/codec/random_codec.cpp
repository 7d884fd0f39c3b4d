// Random-weight speech tokenizers in the real file layout, for tests and benchmarks (no real weights can be
// downloaded on our machines).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "alexandria/codec/codec.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"

namespace alexandria::codec {

namespace fs = std::filesystem;

CodecConfig tiny_codec_config() {
    CodecConfig c;  // the real one, narrowed; strides, kernels, codebook count and size stay
    auto& e = c.encoder;
    e.num_filters = 8;
    e.hidden_size = 32;
    e.num_hidden_layers = 8;
    e.num_attention_heads = 2;
    e.num_key_value_heads = 2;
    e.head_dim = 16;
    e.intermediate_size = 64;
    e.codebook_dim = 8;
    e.vector_quantization_hidden_dimension = 8;
    auto& d = c.decoder;
    d.codebook_dim = 16;
    d.latent_dim = 32;
    d.decoder_dim = 48;
    d.hidden_size = 32;
    d.intermediate_size = 64;
    d.num_hidden_layers = 8;
    d.num_attention_heads = 2;
    d.num_key_value_heads = 2;
    d.head_dim = 16;
    return c;
}

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// PyTorch-default-like initialisation by tensor role, so random outputs stay finite and non-trivial:
// codebooks with positive usage counts, unit-ish norms, small layer scales and snake parameters.
void fill(const std::string& name, torch::Tensor& t, at::Generator& gen) {
    if (ends_with(name, "cluster_usage")) {
        t.uniform_(0.5, 2.0, gen);
    } else if (ends_with(name, "embed_sum") || ends_with(name, "embedding_sum")) {
        t.normal_(0.0, 1.0, gen);  // multiplied by the usage below, so the derived codebook is N(0, 1)
    } else if (ends_with(name, "initialized")) {
        t.fill_(1.0);
    } else if (ends_with(name, "layer_scale.scale")) {
        t.fill_(0.1);
    } else if (ends_with(name, ".gamma")) {
        t.fill_(0.1);
    } else if (ends_with(name, ".alpha") || ends_with(name, ".beta")) {
        t.normal_(0.0, 0.1, gen);
    } else if (name.find("norm.") != std::string::npos) {
        if (ends_with(name, ".weight"))
            t.normal_(1.0, 0.05, gen);
        else
            t.normal_(0.0, 0.05, gen);
    } else if (t.dim() >= 2) {
        int64_t fan_in = t.size(1) * (t.dim() == 3 ? t.size(2) : 1);
        double bound = 1.0 / std::sqrt(double(fan_in));
        t.uniform_(-bound, bound, gen);
    } else {
        t.uniform_(-0.1, 0.1, gen);  // biases
    }
}

// Random codebooks far from the features they quantize would map every frame to the same id. Place each
// encoder codebook where its input actually lies (mean and spread of the residual it sees on a synthetic signal),
// so random codecs give varied codes.
void calibrate_encoder_codebooks(CodecModel& model) {
    // The same bytes on every machine (the parity fixtures are made from them): the statistics come from a float64
    // pass, whose rounding differences between CPUs (vector widths, library kernels, cache blocking) are ~1e-16
    // and vanish when the few hundred values that set each codebook are rounded to float32. A float32 pass gave
    // other bytes on each CPU generation. The weights are float32 values, so the float64 copy is exact.
    struct TwoThreads {  // fewer differences still: the same split of the sums everywhere
        int saved = at::get_num_threads();
        TwoThreads() { at::set_num_threads(2); }
        ~TwoThreads() { at::set_num_threads(saved); }
    } two_threads;
    auto& enc = model->encoder;
    enc->to(torch::kFloat64);
    const int64_t n = kSampleRate;
    auto t = torch::arange(n, torch::kFloat64) / double(kSampleRate);
    auto wav = 0.2 * torch::sin(2 * M_PI * 220.0 * t) + 0.1 * torch::sin(2 * M_PI * 1234.0 * t * (1 + t));
    auto z = enc->downsample_25hz(enc->transform(enc->seanet(wav.view({1, 1, n}))));
    auto gen = at::detail::createCPUGenerator(0x5eed);
    for (auto* rvq : {&enc->quantizer->semantic_residual_vector_quantizer,
                      &enc->quantizer->acoustic_residual_vector_quantizer}) {
        auto r = (*rvq)->input_proj(z).transpose(1, 2).reshape({-1, (*rvq)->codebooks[0]->embed_sum.size(1)});
        for (auto& cb : (*rvq)->codebooks) {
            auto mean = r.mean(0, true).to(torch::kFloat32);
            const float spread = float(std::max(1e-3, r.std().item<double>()));
            auto e = mean + spread * torch::randn(cb->embed_sum.sizes(), gen, torch::kFloat32);
            auto usage = cb->cluster_usage.to(torch::kFloat32).unsqueeze(1);
            cb->embed_sum.copy_(e * usage);  // the product rounded to float32, then held exactly in float64
            cb->invalidate();
            auto idx = torch::cdist(r.unsqueeze(0), cb->embed().unsqueeze(0), 2.0).squeeze(0).argmin(-1);
            r = r - torch::embedding(cb->embed(), idx);
        }
    }
    enc->to(torch::kFloat32);
    model->invalidate_codebooks();
}

}  // namespace

void write_random_codec(const std::string& dir, const std::string& preset, uint64_t seed) {
    CodecConfig cfg;
    if (preset == "tiny")
        cfg = tiny_codec_config();
    else if (preset == "full")
        cfg = CodecConfig::real();
    else
        throw InputError(fmt::format("codec preset '{}': expected \"tiny\" or \"full\"", preset));
    // Round-trip through the parser so a writer/reader disagreement fails here, not in a later load.
    const nlohmann::json j = cfg.to_json();
    CodecConfig::from_json(j, "generated config.json");

    torch::NoGradGuard no_grad;
    CodecModel model(cfg, torch::TensorOptions().dtype(torch::kFloat32));
    auto gen = at::detail::createCPUGenerator(seed);
    auto tensors = named_tensors(*model);
    std::map<std::string, torch::Tensor> by_name;
    for (auto& [name, t] : tensors) {
        fill(name, t, gen);
        by_name[name] = t;
    }
    for (auto& [name, t] : tensors) {
        std::string base;
        if (ends_with(name, "embed_sum")) base = name.substr(0, name.size() - std::string("embed_sum").size());
        if (ends_with(name, "embedding_sum")) base = name.substr(0, name.size() - std::string("embedding_sum").size());
        if (!base.empty()) t.mul_(by_name.at(base + "cluster_usage").unsqueeze(1));
    }

    calibrate_encoder_codebooks(model);

    fs::create_directories(dir);
    const nlohmann::json pre = {{"chunk_length_s", nullptr},     {"feature_extractor_type", "EncodecFeatureExtractor"},
                                {"feature_size", 1},             {"overlap", nullptr},
                                {"padding_side", "right"},       {"padding_value", 0.0},
                                {"return_attention_mask", true}, {"sampling_rate", kSampleRate}};
    io::write_file_atomic(fs::path(dir) / "preprocessor_config.json", pre.dump(2) + "\n");
    io::save_safetensors((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
    // config.json last: a folder with a config is a complete one.
    io::write_file_atomic(fs::path(dir) / "config.json", j.dump(2) + "\n");
}

}  // namespace alexandria::codec
