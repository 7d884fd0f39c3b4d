// Config parsing and the tensor layout of the real configuration, checked against spec model-codec.md §7 without
// allocating the weights (the model is built on the meta device).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>

#include "alexandria/codec/codec.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"
#include "codec_test_util.h"

using namespace alexandria;
using namespace alexandria::codec;
namespace fs = std::filesystem;
using Shape = std::vector<int64_t>;

namespace {

fs::path real_config_path() {
    return codec_test::shared_dir() / "reference" / "models" / "Qwen3-TTS-Tokenizer-12Hz" / "config.json";
}

nlohmann::json real_config_json() { return nlohmann::json::parse(io::read_file(real_config_path())); }

// Spec §7, written out from the tables (not from the module code).
std::map<std::string, Shape> spec_inventory() {
    std::map<std::string, Shape> m;
    const std::string e = "encoder.encoder.layers.";
    m[e + "0.conv.weight"] = {64, 1, 7};
    m[e + "0.conv.bias"] = {64};
    const std::pair<int, int64_t> res[] = {{1, 64}, {4, 128}, {7, 256}, {10, 512}};
    for (auto [i, c] : res) {
        auto p = e + std::to_string(i) + ".block.";
        m[p + "1.conv.weight"] = {c / 2, c, 3};
        m[p + "1.conv.bias"] = {c / 2};
        m[p + "3.conv.weight"] = {c, c / 2, 1};
        m[p + "3.conv.bias"] = {c};
    }
    const std::tuple<int, Shape> convs[] = {{3, {128, 64, 8}}, {6, {256, 128, 10}}, {9, {512, 256, 12}},
                                            {12, {1024, 512, 16}}, {14, {512, 1024, 3}}};
    for (const auto& [i, s] : convs) {
        m[e + std::to_string(i) + ".conv.weight"] = s;
        m[e + std::to_string(i) + ".conv.bias"] = {s[0]};
    }
    for (int l = 0; l < 8; ++l) {
        auto p = "encoder.encoder_transformer.layers." + std::to_string(l) + ".";
        for (auto n : {"input_layernorm", "post_attention_layernorm"}) {
            m[p + n + ".weight"] = {512};
            m[p + n + ".bias"] = {512};
        }
        for (auto n : {"q_proj", "k_proj", "v_proj", "o_proj"}) m[p + "self_attn." + n + ".weight"] = {512, 512};
        m[p + "mlp.fc1.weight"] = {2048, 512};
        m[p + "mlp.fc2.weight"] = {512, 2048};
        m[p + "self_attn_layer_scale.scale"] = {512};
        m[p + "mlp_layer_scale.scale"] = {512};
    }
    m["encoder.downsample.conv.weight"] = {512, 512, 4};
    for (auto [q, n] : {std::pair<std::string, int>{"semantic", 1}, {"acoustic", 31}}) {
        auto p = "encoder.quantizer." + q + "_residual_vector_quantizer.";
        m[p + "input_proj.weight"] = {256, 512, 1};
        m[p + "output_proj.weight"] = {512, 256, 1};
        for (int i = 0; i < n; ++i) {
            auto c = p + "layers." + std::to_string(i) + ".codebook.";
            m[c + "embed_sum"] = {2048, 256};
            m[c + "cluster_usage"] = {2048};
            m[c + "initialized"] = {1};
        }
    }
    for (auto [q, n] : {std::pair<std::string, int>{"rvq_first", 1}, {"rvq_rest", 15}}) {
        auto p = "decoder.quantizer." + q + ".";
        m[p + "input_proj.weight"] = {256, 512, 1};
        m[p + "output_proj.weight"] = {512, 256, 1};
        for (int i = 0; i < n; ++i) {
            auto c = p + "vq.layers." + std::to_string(i) + "._codebook.";
            m[c + "embedding_sum"] = {2048, 256};
            m[c + "cluster_usage"] = {2048};
        }
    }
    m["decoder.pre_conv.conv.weight"] = {1024, 512, 3};
    m["decoder.pre_conv.conv.bias"] = {1024};
    m["decoder.pre_transformer.input_proj.weight"] = {512, 1024};
    m["decoder.pre_transformer.input_proj.bias"] = {512};
    for (int l = 0; l < 8; ++l) {
        auto p = "decoder.pre_transformer.layers." + std::to_string(l) + ".";
        m[p + "input_layernorm.weight"] = {512};
        m[p + "post_attention_layernorm.weight"] = {512};
        for (auto n : {"q_proj", "k_proj", "v_proj"}) m[p + "self_attn." + n + ".weight"] = {1024, 512};
        m[p + "self_attn.o_proj.weight"] = {512, 1024};
        m[p + "mlp.gate_proj.weight"] = {1024, 512};
        m[p + "mlp.up_proj.weight"] = {1024, 512};
        m[p + "mlp.down_proj.weight"] = {512, 1024};
        m[p + "self_attn_layer_scale.scale"] = {512};
        m[p + "mlp_layer_scale.scale"] = {512};
    }
    m["decoder.pre_transformer.norm.weight"] = {512};
    m["decoder.pre_transformer.output_proj.weight"] = {1024, 512};
    m["decoder.pre_transformer.output_proj.bias"] = {1024};
    for (int s = 0; s < 2; ++s) {
        auto p = "decoder.upsample." + std::to_string(s) + ".";
        m[p + "0.conv.weight"] = {1024, 1024, 2};
        m[p + "0.conv.bias"] = {1024};
        m[p + "1.dwconv.conv.weight"] = {1024, 1, 7};
        m[p + "1.dwconv.conv.bias"] = {1024};
        m[p + "1.norm.weight"] = {1024};
        m[p + "1.norm.bias"] = {1024};
        m[p + "1.pwconv1.weight"] = {4096, 1024};
        m[p + "1.pwconv1.bias"] = {4096};
        m[p + "1.pwconv2.weight"] = {1024, 4096};
        m[p + "1.pwconv2.bias"] = {1024};
        m[p + "1.gamma"] = {1024};
    }
    m["decoder.decoder.0.conv.weight"] = {1536, 1024, 7};
    m["decoder.decoder.0.conv.bias"] = {1536};
    const std::tuple<int64_t, int64_t, int64_t> blocks[] = {{1536, 768, 8}, {768, 384, 5}, {384, 192, 4}, {192, 96, 3}};
    for (int i = 0; i < 4; ++i) {
        auto [cin, cout, r] = blocks[i];
        auto p = "decoder.decoder." + std::to_string(i + 1) + ".block.";
        m[p + "0.alpha"] = {cin};
        m[p + "0.beta"] = {cin};
        m[p + "1.conv.weight"] = {cin, cout, 2 * r};
        m[p + "1.conv.bias"] = {cout};
        for (int u = 2; u <= 4; ++u) {
            auto q = p + std::to_string(u) + ".";
            for (auto a : {"act1", "act2"}) {
                m[q + a + ".alpha"] = {cout};
                m[q + a + ".beta"] = {cout};
            }
            m[q + "conv1.conv.weight"] = {cout, cout, 7};
            m[q + "conv1.conv.bias"] = {cout};
            m[q + "conv2.conv.weight"] = {cout, cout, 1};
            m[q + "conv2.conv.bias"] = {cout};
        }
    }
    m["decoder.decoder.5.alpha"] = {96};
    m["decoder.decoder.5.beta"] = {96};
    m["decoder.decoder.6.conv.weight"] = {1, 96, 7};
    m["decoder.decoder.6.conv.bias"] = {1};
    return m;
}

int64_t numel(const Shape& s) {
    int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

}  // namespace

TEST_CASE("real speech tokenizer config parses to the spec values", "[codec][config]") {
    auto cfg = CodecConfig::load(real_config_path().string());
    CHECK(cfg.encoder.upsampling_ratios == std::vector<int64_t>{8, 6, 5, 4});
    CHECK(cfg.encoder.seanet_hop() == 960);
    CHECK(cfg.encoder.downsample_kernel() == 4);
    CHECK(cfg.encoder.hidden_size == 512);
    CHECK(cfg.encoder.num_quantizers == 32);
    CHECK(cfg.encoder.codebook_dim == 256);
    CHECK(cfg.encoder.sliding_window == 250);
    CHECK(cfg.encoder_attention_window == 0);  // the reference applies no window in the encoder
    CHECK(cfg.decoder.head_dim == 64);
    CHECK(cfg.decoder.hidden_size == 512);
    CHECK(cfg.decoder.intermediate_size == 1024);
    CHECK(cfg.decoder.sliding_window == 72);
    CHECK(cfg.decoder.rms_norm_eps == Approx(1e-5));
    CHECK(cfg.decoder.total_upsample() == 1920);
    CHECK(cfg.decoder.codebook_inner_dim() == 256);
    // The built-in "real" config and to_json() agree with the shipped file.
    auto j = real_config_json();
    auto from_builtin = CodecConfig::from_json(CodecConfig::real().to_json(), "builtin");
    CHECK(from_builtin.to_json() == cfg.to_json());
    CHECK(CodecConfig::real().to_json()["decoder_config"] == j["decoder_config"]);
    CHECK(CodecConfig::real().to_json()["encoder_config"] == j["encoder_config"]);
}

TEST_CASE("config errors name the key", "[codec][config]") {
    auto base = real_config_json();
    auto expect_error = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& key) {
        auto j = base;
        edit(j);
        try {
            CodecConfig::from_json(j, "st/config.json");
            FAIL("no error for " << key);
        } catch (const InputError& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find("st/config.json") != std::string::npos);
            CHECK(std::string(e.what()).find(key) != std::string::npos);
        }
    };
    expect_error([](auto& j) { j["decoder_config"].erase("head_dim"); }, "decoder_config.head_dim");
    expect_error([](auto& j) { j["encoder_config"].erase("num_filters"); }, "encoder_config.num_filters");
    expect_error([](auto& j) { j.erase("decoder_config"); }, "decoder_config");
    expect_error([](auto& j) { j["decoder_config"]["sliding_window"] = "72"; }, "decoder_config.sliding_window");
    expect_error([](auto& j) { j["encoder_config"]["upsampling_ratios"] = {8, 6, 5}; }, "encoder_config.upsampling_ratios");
    expect_error([](auto& j) { j["decoder_config"]["codebook_size"] = 4096; }, "decoder_config.codebook_size");
    expect_error([](auto& j) { j["decoder_config"]["num_quantizers"] = 8; }, "decoder_config.num_quantizers");
    expect_error([](auto& j) { j["encoder_config"]["norm_eps"] = -1; }, "encoder_config.norm_eps");
    expect_error([](auto& j) { j["decoder_config"]["hidden_act"] = "gelu"; }, "decoder_config.hidden_act");
    expect_error([](auto& j) { j["input_sample_rate"] = 16000; }, "input_sample_rate");
    CHECK_THROWS_AS(CodecConfig::from_json(nlohmann::json::array(), "x"), InputError);
}

TEST_CASE("module tree of the real config equals the spec's 496-tensor inventory", "[codec][layout]") {
    auto cfg = CodecConfig::load(real_config_path().string());
    // Meta tensors carry shapes only: the 682 MB of weights are never allocated.
    CodecModel model(cfg, torch::TensorOptions().device(torch::kMeta).dtype(torch::kFloat32));
    auto tensors = named_tensors(*model);
    for (auto& [name, t] : tensors) REQUIRE(t.device().type() == torch::kMeta);

    auto expected = spec_inventory();
    REQUIRE(expected.size() == 496);
    std::map<std::string, Shape> actual;
    for (auto& [name, t] : tensors) actual[name] = t.sizes().vec();
    CHECK(tensors.size() == 496);
    for (auto& [name, shape] : expected) {
        INFO(name);
        REQUIRE(actual.count(name) == 1);
        CHECK(actual[name] == shape);
    }
    for (auto& [name, shape] : actual) {
        INFO(name);
        CHECK(expected.count(name) == 1);
    }

    int64_t total = 0, enc = 0, dec = 0, enc_count = 0;
    for (auto& [name, shape] : actual) {
        total += numel(shape);
        if (name.rfind("encoder.", 0) == 0) {
            enc += numel(shape);
            ++enc_count;
        } else {
            dec += numel(shape);
        }
    }
    CHECK(enc_count == 225);
    CHECK(actual.size() - size_t(enc_count) == 271);
    CHECK(total == 170557441);
    CHECK(enc == 56234304);
    CHECK(dec == 114323137);
    // Parameters alone: the encoder's codebooks are buffers, as in the reference.
    int64_t params = 0;
    for (const auto& p : model->named_parameters(true)) params += p.value().numel();
    CHECK(params == 153714657);
}

TEST_CASE("tiny preset keeps the real structure", "[codec][layout]") {
    auto tiny = tiny_codec_config();
    CodecModel small(tiny, torch::TensorOptions().device(torch::kMeta));
    CodecModel real(CodecConfig::real(), torch::TensorOptions().device(torch::kMeta));
    auto a = named_tensors(*small), b = named_tensors(*real);
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        CHECK(a[i].first == b[i].first);
        CHECK(a[i].second.dim() == b[i].second.dim());
    }
    CHECK(tiny.encoder.codebook_size == 2048);
    CHECK(tiny.decoder.codebook_size == 2048);
    CHECK(tiny.decoder.total_upsample() == 1920);
    CHECK(tiny.encoder.seanet_hop() * 2 == 1920);
}

TEST_CASE("strict loading lists every missing, unexpected and mis-shaped tensor", "[codec][load]") {
    codec_test::TempDir tmp;
    auto good = codec_test::tiny_dir();
    auto bad = tmp.path / "speech_tokenizer";
    fs::create_directories(bad);
    fs::copy_file(good / "config.json", bad / "config.json");
    {
        io::SafetensorsFile src((good / "model.safetensors").string());
        std::vector<std::pair<std::string, at::Tensor>> out;
        for (const auto& t : src.tensors()) {
            if (t.name == "decoder.pre_conv.conv.bias") continue;  // missing
            auto v = src.view(t.name).clone();
            if (t.name == "encoder.downsample.conv.weight") v = v.narrow(2, 0, 3).contiguous();  // mis-shaped
            std::string name = t.name == "decoder.decoder.5.alpha" ? "decoder.decoder.5.alpha_typo" : t.name;
            out.emplace_back(name, v);
        }
        io::save_safetensors((bad / "model.safetensors").string(), out);
    }
    try {
        Codec::load(bad.string());
        FAIL("loaded a broken checkpoint");
    } catch (const InputError& e) {
        std::string msg = e.what();
        INFO(msg);
        CHECK(msg.find("decoder.pre_conv.conv.bias") != std::string::npos);
        CHECK(msg.find("decoder.decoder.5.alpha ") != std::string::npos);      // missing (renamed away)
        CHECK(msg.find("decoder.decoder.5.alpha_typo") != std::string::npos);  // unexpected
        CHECK(msg.find("encoder.downsample.conv.weight") != std::string::npos);
        CHECK(msg.find("2 missing") != std::string::npos);
        CHECK(msg.find("1 mis-shaped") != std::string::npos);
        CHECK(msg.find("1 unexpected") != std::string::npos);
    }
    CHECK_THROWS_AS(Codec::load((tmp.path / "nowhere").string()), InputError);
}

TEST_CASE("random codec files: loadable, deterministic identity", "[codec][load]") {
    codec_test::TempDir tmp;
    write_random_codec((tmp.path / "a").string(), "tiny", 5);
    write_random_codec((tmp.path / "b").string(), "tiny", 5);
    write_random_codec((tmp.path / "c").string(), "tiny", 6);
    CHECK(fs::exists(tmp.path / "a" / "preprocessor_config.json"));
    auto a = Codec::load((tmp.path / "a").string());
    auto b = Codec::load((tmp.path / "b").string());
    auto c = Codec::load((tmp.path / "c").string());
    CHECK(a.identity() == b.identity());
    CHECK(a.identity() != c.identity());
    CHECK(a.identity() == Codec::load((tmp.path / "a").string()).identity());
    // A model folder with a speech_tokenizer/ inside is accepted too.
    CHECK(Codec::load(codec_test::tiny_dir().parent_path().string()).identity() == codec_test::tiny().identity());
    // Usage counts are positive, so every codebook row is finite.
    for (auto& [name, t] : named_tensors(*a.model())) {
        INFO(name);
        CHECK(torch::isfinite(t).all().item<bool>());
        if (name.size() > 13 && name.substr(name.size() - 13) == "cluster_usage") CHECK(t.min().item<float>() > 0);
    }
    CHECK_THROWS_AS(write_random_codec((tmp.path / "d").string(), "huge", 1), InputError);
}
