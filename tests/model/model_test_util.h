#pragma once
// Shared by the model-core tests: the real reference configs and tiny random models built in memory.
#include <string>

#include <catch2/catch.hpp>

#include <torch/torch.h>

#include "alexandria/model/config.h"
#include "alexandria/model/kernels.h"
#include "alexandria/model/layers.h"
#include "alexandria/model/random_model.h"
#include "alexandria/model/talker.h"
#include "support/test_support.h"

namespace alexandria::test {

// True (with a warning) where the CPU kernels cannot run: no AVX2/FMA, or ALEXANDRIA_NO_KERNELS set.
inline bool skip_without_cpu_kernels() {
    if (model::small_linear_supported()) return false;
    WARN("not run: no AVX2/FMA here (or ALEXANDRIA_NO_KERNELS is set)");
    return true;
}

inline std::string real_model_dir(const std::string& name) {
    return (shared_dir() / "reference" / "models" / name).string();
}

inline const std::vector<std::string>& real_model_names() {
    static const std::vector<std::string> names{
        "Qwen3-TTS-12Hz-1.7B-Base", "Qwen3-TTS-12Hz-0.6B-Base", "Qwen3-TTS-12Hz-1.7B-CustomVoice",
        "Qwen3-TTS-12Hz-1.7B-VoiceDesign", "Qwen3-TTS-12Hz-0.6B-CustomVoice"};
    return names;
}

inline model::ModelConfig tiny_config(const std::string& type = "base") {
    model::RandomModelSpec spec;
    spec.size = "tiny";
    spec.type = type;
    return model::ModelConfig::from_json(model::random_model_config(spec), "tiny");
}

// A tiny fp32 model with seeded random weights, in eval mode.
inline model::TTSModel tiny_model(const std::string& type = "base", uint64_t seed = 1) {
    model::TTSModel m(tiny_config(type));
    model::randomize_parameters(*m, seed);
    m->eval();
    return m;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
    return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

}  // namespace alexandria::test
