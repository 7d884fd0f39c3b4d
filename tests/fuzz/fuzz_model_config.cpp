// Any byte string as config.json and as generation_config.json: a ModelConfig / GenerationConfig or an InputError
// naming the file and field. A config that parses must also build the model's module tree (on the meta device,
// nothing allocated) without a library error: whatever the parser accepts, loading must be able to use.
#include <cstdint>

#include <torch/torch.h>

#include "alexandria/io/error.h"
#include "alexandria/model/config.h"
#include "alexandria/model/talker.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace alexandria;
    auto cfg_path = fuzz::write_input("config.json", data, size);
    try {
        auto cfg = model::ModelConfig::load(cfg_path);
        model::BuildOptions meta;
        meta.device = torch::Device(torch::kMeta);
        meta.init = false;
        model::TTSModel m(cfg, meta);
    } catch (const InputError&) {
    }
    auto gen_path = fuzz::write_input("generation_config.json", data, size);
    try {
        model::GenerationConfig::load(gen_path);
    } catch (const InputError&) {
    }
    return 0;
}
