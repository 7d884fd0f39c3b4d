// Any adapter folder: adapter_config.json + adapter_model.safetensors, applied to the tiny talker. The input is
// [u16 little-endian n][n bytes of adapter_config.json][the rest: adapter_model.safetensors], so mutations reach
// ranks, shapes, dtypes and names in both files. Either the adapter attaches, or an InputError says why.
#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "alexandria/io/error.h"
#include "alexandria/model/config.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/model/talker.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace alexandria;
    static model::Talker talker = [] {
        auto cfg = model::ModelConfig::from_json(model::random_model_config({}), "tiny");
        return model::Talker(cfg.talker, model::BuildOptions{});
    }();
    if (size < 2) return 0;
    size_t n = std::min<size_t>(size - 2, size_t(data[0]) | size_t(data[1]) << 8);
    auto dir = fuzz::scratch() / "adapter";
    std::filesystem::create_directories(dir);
    fuzz::write_input("adapter/adapter_config.json", data + 2, n);
    fuzz::write_input("adapter/adapter_model.safetensors", data + 2 + n, size - 2 - n);
    try {
        auto a = model::read_adapter(dir.string());
        model::apply_adapter(talker, a);
    } catch (const InputError&) {
    }
    model::detach_lora(talker);
    return 0;
}
