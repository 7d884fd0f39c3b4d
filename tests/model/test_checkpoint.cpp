// Strict checkpoint loading and the random model writer.
#include <catch2/catch.hpp>

#include <filesystem>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"
#include "model_test_util.h"

using namespace alexandria;
using namespace alexandria::model;
namespace fs = std::filesystem;

namespace {
std::vector<std::pair<std::string, torch::Tensor>> state_of(torch::nn::Module& m) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
    return out;
}
}  // namespace

TEST_CASE("a random tiny folder loads strictly and equals the in-memory random model", "[model][checkpoint]") {
    test::TempDir tmp;
    for (const char* type : {"base", "custom_voice", "voice_design"}) {
        INFO(type);
        RandomModelSpec spec;
        spec.type = type;
        spec.seed = 7;
        spec.dtype = "f32";
        std::string dir = (tmp / type).string();
        write_random_model(dir, spec);
        CHECK(fs::exists(dir + "/config.json"));
        CHECK(fs::exists(dir + "/generation_config.json"));
        LoadedModel lm = load_model(dir);
        CHECK(lm.config.tts_model_type == type);
        CHECK(lm.generation.max_new_tokens == 8192);
        CHECK(lm.model->has_speaker_encoder() == (std::string(type) == "base"));
        auto ref = test::tiny_model(type, 7);
        auto a = state_of(*lm.model), b = state_of(*ref);
        REQUIRE(a.size() == b.size());
        for (size_t i = 0; i < a.size(); ++i) {
            INFO(a[i].first);
            CHECK(a[i].first == b[i].first);
            CHECK(torch::equal(a[i].second, b[i].second));
        }
        io::SafetensorsFile f(dir + "/model.safetensors");
        CHECK(f.tensors().size() == a.size());
    }
}

TEST_CASE("bf16 files load to fp32 and the tiny folder is small", "[model][checkpoint]") {
    test::TempDir tmp;
    RandomModelSpec spec;  // tiny base bf16 (the default, as released)
    spec.seed = 3;
    write_random_model(tmp.path.string(), spec);
    io::SafetensorsFile f((tmp / "model.safetensors").string());
    for (const auto& info : f.tensors()) REQUIRE(info.dtype == io::DType::BF16);
    CHECK(fs::file_size(tmp / "model.safetensors") < 15u * 1024 * 1024);
    LoadedModel lm = load_model(tmp.path.string());
    auto ref = test::tiny_model("base", 3);
    auto refs = state_of(*ref);
    for (auto& entry : state_of(*lm.model)) {
        const std::string& name = entry.first;  // a structured binding cannot be captured in C++17
        const torch::Tensor& t = entry.second;
        REQUIRE(t.scalar_type() == torch::kFloat32);
        auto it = std::find_if(refs.begin(), refs.end(), [&](auto& p) { return p.first == name; });
        REQUIRE(it != refs.end());
        CHECK(torch::equal(t, it->second.to(torch::kBFloat16).to(torch::kFloat32)));
    }
    // bf16 on the CPU as well, on request.
    LoadedModel half = load_model(tmp.path.string(), torch::kCPU, torch::kBFloat16);
    CHECK(half.model->talker->codec_head->weight.scalar_type() == torch::kBFloat16);
    // Same seed, same file; another seed, other weights.
    test::TempDir tmp2;
    write_random_model(tmp2.path.string(), spec);
    CHECK(io::hash_file(tmp / "model.safetensors") == io::hash_file(tmp2 / "model.safetensors"));
    spec.seed = 4;
    write_random_model(tmp2.path.string(), spec);
    CHECK(io::hash_file(tmp / "model.safetensors") != io::hash_file(tmp2 / "model.safetensors"));
}

TEST_CASE("one missing, one extra and one mis-shaped tensor are all named", "[model][checkpoint]") {
    test::TempDir tmp;
    auto m = test::tiny_model("voice_design");
    auto state = state_of(*m);
    std::string dropped = state[3].first;
    std::string reshaped = state[10].first;
    state.erase(state.begin() + 3);
    for (auto& [n, t] : state)
        if (n == reshaped) t = torch::zeros({t.size(0) + 1});
    state.emplace_back("talker.model.layers.99.mlp.up_proj.weight", torch::zeros({2, 2}));
    std::string path = (tmp / "model.safetensors").string();
    io::save_safetensors(path, state);
    io::SafetensorsFile f(path);
    auto fresh = test::tiny_model("voice_design", 5);
    auto before = fresh->talker->codec_head->weight.clone();
    REQUIRE_THROWS_AS(load_state(*fresh, f), InputError);
    REQUIRE_THROWS_WITH(load_state(*fresh, f), Catch::Contains(path) && Catch::Contains(dropped) &&
                                                   Catch::Contains(reshaped) &&
                                                   Catch::Contains("talker.model.layers.99.mlp.up_proj.weight") &&
                                                   Catch::Contains("missing") && Catch::Contains("unexpected") &&
                                                   Catch::Contains("mis-shaped"));
    // Nothing was copied.
    CHECK(torch::equal(fresh->talker->codec_head->weight, before));
    auto mm = compare_state(*fresh, f);
    CHECK(mm.missing == std::vector<std::string>{dropped});
    CHECK(mm.unexpected == std::vector<std::string>{"talker.model.layers.99.mlp.up_proj.weight"});
    CHECK(mm.mis_shaped.size() == 1);

    // A Base checkpoint does not load into a VoiceDesign tree (speaker_encoder.* unexpected).
    fs::create_directories(tmp / "base");
    RandomModelSpec base;
    write_random_model((tmp / "base").string(), base);
    io::SafetensorsFile bf((tmp / "base" / "model.safetensors").string());
    REQUIRE_THROWS_WITH(load_state(*fresh, bf), Catch::Contains("speaker_encoder.fc.weight"));
}

TEST_CASE("save_state round trip and model folder errors", "[model][checkpoint]") {
    test::TempDir tmp;
    auto m = test::tiny_model("custom_voice", 9);
    save_state(*m, (tmp / "model.safetensors").string(), torch::kFloat32);
    io::write_file_atomic(tmp / "config.json", model::random_model_config({"tiny", "custom_voice", 0, "f32"}).dump());
    LoadedModel lm = load_model(tmp.path.string());
    auto a = state_of(*lm.model), b = state_of(*m);
    for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].second, b[i].second));
    CHECK(lm.config.talker.spk_id.at("vivian") == 3065);

    test::TempDir empty;
    REQUIRE_THROWS_AS(load_model(empty.path.string()), InputError);  // no config.json
    io::write_file_atomic(empty / "config.json", model::random_model_config({"tiny", "base", 0, "f32"}).dump());
    REQUIRE_THROWS_WITH(load_model(empty.path.string()), Catch::Contains("model.safetensors"));
    REQUIRE_THROWS_AS(load_model((empty / "missing").string()), InputError);
}
