// The module tree is the checkpoint's key tree: names, shapes and totals of all five releases (spec §0, §8),
// computed on the meta device without allocating weights; LoRA tensor counts (spec §7.4).
#include <catch2/catch.hpp>

#include <map>

#include "alexandria/model/lora.h"
#include "model_test_util.h"

using namespace alexandria;
using namespace alexandria::model;

namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

// Spec §8's listing, written out independently of the module code. H = talker width, I = talker MLP width.
Shapes expected_tensors(int64_t H, int64_t I, bool base) {
    Shapes s;
    for (int i = 0; i < 28; ++i) {
        std::string p = "talker.model.layers." + std::to_string(i) + ".";
        s[p + "input_layernorm.weight"] = {H};
        s[p + "post_attention_layernorm.weight"] = {H};
        s[p + "self_attn.q_proj.weight"] = {2048, H};
        s[p + "self_attn.k_proj.weight"] = {1024, H};
        s[p + "self_attn.v_proj.weight"] = {1024, H};
        s[p + "self_attn.o_proj.weight"] = {H, 2048};
        s[p + "self_attn.q_norm.weight"] = {128};
        s[p + "self_attn.k_norm.weight"] = {128};
        s[p + "mlp.gate_proj.weight"] = {I, H};
        s[p + "mlp.up_proj.weight"] = {I, H};
        s[p + "mlp.down_proj.weight"] = {H, I};
    }
    s["talker.model.norm.weight"] = {H};
    s["talker.model.codec_embedding.weight"] = {3072, H};
    s["talker.model.text_embedding.weight"] = {151936, 2048};
    s["talker.text_projection.linear_fc1.weight"] = {2048, 2048};
    s["talker.text_projection.linear_fc1.bias"] = {2048};
    s["talker.text_projection.linear_fc2.weight"] = {H, 2048};
    s["talker.text_projection.linear_fc2.bias"] = {H};
    s["talker.codec_head.weight"] = {3072, H};
    for (int i = 0; i < 5; ++i) {
        std::string p = "talker.code_predictor.model.layers." + std::to_string(i) + ".";
        s[p + "input_layernorm.weight"] = {1024};
        s[p + "post_attention_layernorm.weight"] = {1024};
        s[p + "self_attn.q_proj.weight"] = {2048, 1024};
        s[p + "self_attn.k_proj.weight"] = {1024, 1024};
        s[p + "self_attn.v_proj.weight"] = {1024, 1024};
        s[p + "self_attn.o_proj.weight"] = {1024, 2048};
        s[p + "self_attn.q_norm.weight"] = {128};
        s[p + "self_attn.k_norm.weight"] = {128};
        s[p + "mlp.gate_proj.weight"] = {3072, 1024};
        s[p + "mlp.up_proj.weight"] = {3072, 1024};
        s[p + "mlp.down_proj.weight"] = {1024, 3072};
    }
    s["talker.code_predictor.model.norm.weight"] = {1024};
    for (int g = 0; g < 15; ++g) {
        s["talker.code_predictor.model.codec_embedding." + std::to_string(g) + ".weight"] = {2048, H};
        s["talker.code_predictor.lm_head." + std::to_string(g) + ".weight"] = {2048, 1024};
    }
    if (H == 2048) {
        s["talker.code_predictor.small_to_mtp_projection.weight"] = {1024, 2048};
        s["talker.code_predictor.small_to_mtp_projection.bias"] = {1024};
    }
    if (base) {
        auto conv = [&](const std::string& n, int64_t o, int64_t i, int64_t k) {
            s["speaker_encoder." + n + ".weight"] = {o, i, k};
            s["speaker_encoder." + n + ".bias"] = {o};
        };
        conv("blocks.0.conv", 512, 128, 5);
        for (int b = 1; b <= 3; ++b) {
            std::string p = "blocks." + std::to_string(b) + ".";
            conv(p + "tdnn1.conv", 512, 512, 1);
            for (int j = 0; j < 7; ++j) conv(p + "res2net_block.blocks." + std::to_string(j) + ".conv", 64, 64, 3);
            conv(p + "tdnn2.conv", 512, 512, 1);
            conv(p + "se_block.conv1", 128, 512, 1);
            conv(p + "se_block.conv2", 512, 128, 1);
        }
        conv("mfa.conv", 1536, 1536, 1);
        conv("asp.tdnn.conv", 128, 4608, 1);
        conv("asp.conv", 1536, 128, 1);
        conv("fc", H, 3072, 1);
    }
    return s;
}

}  // namespace

TEST_CASE("tensor names, shapes and totals equal the released checkpoints", "[model][shapes]") {
    struct Case {
        std::string name;
        size_t tensors;
        int64_t params;
    };
    // spec §0: byte-exact reconstruction of the published safetensors files
    for (const auto& c : std::vector<Case>{{"Qwen3-TTS-12Hz-1.7B-Base", 480, 1928677440},
                                           {"Qwen3-TTS-12Hz-0.6B-Base", 478, 914643008},
                                           {"Qwen3-TTS-12Hz-1.7B-CustomVoice", 404, 1916676352},
                                           {"Qwen3-TTS-12Hz-1.7B-VoiceDesign", 404, 1916676352},
                                           {"Qwen3-TTS-12Hz-0.6B-CustomVoice", 402, 905788672}}) {
        INFO(c.name);
        ModelConfig cfg = ModelConfig::load(test::real_model_dir(c.name));
        auto shapes = checkpoint_shapes(cfg);
        int64_t total = 0;
        Shapes ours;
        for (const auto& [n, s] : shapes) {
            int64_t k = 1;
            for (auto d : s) k *= d;
            total += k;
            CHECK(ours.emplace(n, s).second);  // no duplicate names
        }
        CHECK(shapes.size() == c.tensors);
        CHECK(total == c.params);
        Shapes want = expected_tensors(cfg.talker.hidden_size, cfg.talker.intermediate_size, cfg.is_base());
        for (const auto& [n, s] : want) {
            INFO(n);
            REQUIRE(ours.count(n));
            CHECK(ours.at(n) == s);
        }
        for (const auto& [n, s] : ours) {
            INFO(n);
            CHECK(want.count(n));
        }
    }
}

TEST_CASE("the meta-device build allocates nothing for the talker", "[model][shapes]") {
    ModelConfig cfg = ModelConfig::load(test::real_model_dir("Qwen3-TTS-12Hz-1.7B-VoiceDesign"));
    BuildOptions meta;
    meta.device = torch::kMeta;
    TTSModel m(cfg, meta);
    for (const auto& p : m->named_parameters()) REQUIRE(p.value().device().is_meta());
}

TEST_CASE("default LoRA targets q/k/v/o of every talker and code-predictor layer (spec §7.4)", "[model][shapes][lora]") {
    struct Case {
        std::string name;
        int64_t r, params;
    };
    for (const auto& c : std::vector<Case>{{"Qwen3-TTS-12Hz-1.7B-Base", 32, 14483456},
                                           {"Qwen3-TTS-12Hz-1.7B-Base", 64, 28966912},
                                           {"Qwen3-TTS-12Hz-0.6B-Base", 32, 10813440},
                                           {"Qwen3-TTS-12Hz-0.6B-Base", 64, 21626880}}) {
        INFO(c.name << " r=" << c.r);
        ModelConfig cfg = ModelConfig::load(test::real_model_dir(c.name));
        BuildOptions meta;
        meta.device = torch::kMeta;
        TTSModel m(cfg, meta);
        size_t base_count = m->named_parameters().size();
        LoraConfig lc;
        lc.r = c.r;
        CHECK(attach_lora(m->talker, lc) == 132);
        auto state = lora_state(m->talker);
        CHECK(state.size() == 264);
        CHECK(lora_parameter_count(m->talker) == c.params);
        // LoRA tensors stay outside the checkpoint key tree.
        CHECK(m->named_parameters().size() == base_count);
        std::map<std::string, std::vector<int64_t>> by_name;
        for (auto& [n, t] : state) by_name[n] = t.sizes().vec();
        int64_t H = cfg.talker.hidden_size;
        CHECK(by_name.at("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight") == std::vector<int64_t>{c.r, H});
        CHECK(by_name.at("base_model.model.model.layers.27.self_attn.o_proj.lora_A.weight") ==
              std::vector<int64_t>{c.r, 2048});
        CHECK(by_name.at("base_model.model.model.layers.27.self_attn.o_proj.lora_B.weight") == std::vector<int64_t>{H, c.r});
        CHECK(by_name.at("base_model.model.model.layers.5.self_attn.k_proj.lora_B.weight") ==
              std::vector<int64_t>{1024, c.r});
        CHECK(by_name.at("base_model.model.code_predictor.model.layers.4.self_attn.q_proj.lora_A.weight") ==
              std::vector<int64_t>{c.r, 1024});
        CHECK(by_name.at("base_model.model.code_predictor.model.layers.4.self_attn.v_proj.lora_B.weight") ==
              std::vector<int64_t>{1024, c.r});
    }
}

TEST_CASE("a BF16 file of the module tree has the published model.safetensors size to the byte", "[model][shapes]") {
    // spec §0: the published LFS sizes. The header length depends on every name, so this pins the names too.
    struct Case {
        std::string name;
        uint64_t bytes;
        bool metadata;
    };
    for (const auto& c : std::vector<Case>{{"Qwen3-TTS-12Hz-1.7B-Base", 3857413744ull, false},
                                           {"Qwen3-TTS-12Hz-0.6B-Base", 1829344272ull, false},
                                           {"Qwen3-TTS-12Hz-1.7B-CustomVoice", 3833402552ull, true},
                                           {"Qwen3-TTS-12Hz-1.7B-VoiceDesign", 3833402552ull, true},
                                           {"Qwen3-TTS-12Hz-0.6B-CustomVoice", 1811626576ull, true}}) {
        INFO(c.name);
        auto shapes = checkpoint_shapes(ModelConfig::load(test::real_model_dir(c.name)));
        std::map<std::string, std::string> meta;
        if (c.metadata) meta["format"] = "pt";
        CHECK(safetensors_file_size(shapes, "BF16", meta) == c.bytes);
    }
}
