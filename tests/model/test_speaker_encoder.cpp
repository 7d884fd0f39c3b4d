// Speaker encoder (spec model-talker.md §5 and the tensor list in §8).
#include <catch2/catch.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/model/mel.h"
#include "alexandria/model/speaker_encoder.h"

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace alexandria;
using namespace alexandria::model;
using Shape = std::vector<int64_t>;

namespace {

fs::path shared_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SHARED_DIR")) return s;
    if (const char* s = std::getenv("ALEXANDRIA_SOURCE_DIR")) return fs::path(s) / ".." / "shared";
    return fs::path("..") / "shared";
}

// Spec §8, "speaker encoder (b = 1..3, j = 0..6)", written out.
std::map<std::string, Shape> spec_tensors(int64_t enc_dim) {
    std::map<std::string, Shape> t;
    auto conv = [&](const std::string& name, Shape w) {
        t[name + ".weight"] = w;
        t[name + ".bias"] = {w[0]};
    };
    conv("blocks.0.conv", {512, 128, 5});
    for (int b = 1; b <= 3; ++b) {
        const std::string p = "blocks." + std::to_string(b) + ".";
        conv(p + "tdnn1.conv", {512, 512, 1});
        for (int j = 0; j <= 6; ++j) conv(p + "res2net_block.blocks." + std::to_string(j) + ".conv", {64, 64, 3});
        conv(p + "tdnn2.conv", {512, 512, 1});
        conv(p + "se_block.conv1", {128, 512, 1});
        conv(p + "se_block.conv2", {512, 128, 1});
    }
    conv("mfa.conv", {1536, 1536, 1});
    conv("asp.tdnn.conv", {128, 4608, 1});
    conv("asp.conv", {1536, 128, 1});
    conv("fc", {enc_dim, 3072, 1});
    return t;
}

SpeakerEncoderConfig config_with(int enc_dim) {
    SpeakerEncoderConfig c;
    c.enc_dim = enc_dim;
    return c;
}

// ---- An independent functional forward over the module's named parameters ----------------------------------

using Params = std::map<std::string, torch::Tensor>;

Params params_of(SpeakerEncoder& enc) {
    Params p;
    for (const auto& kv : enc->named_parameters()) p[kv.key()] = kv.value();
    return p;
}

// Mirror the time axis by index arithmetic (no library padding op): position -1 reads 1, T reads T-2.
torch::Tensor mirror_pad(const torch::Tensor& x, int64_t left, int64_t right, bool zeros) {
    if (left == 0 && right == 0) return x;
    const int64_t t = x.size(2);
    if (zeros) return torch::cat({x.new_zeros({x.size(0), x.size(1), left}), x, x.new_zeros({x.size(0), x.size(1), right})}, 2);
    std::vector<int64_t> idx;
    for (int64_t p = -left; p < t + right; ++p) idx.push_back(p < 0 ? -p : (p >= t ? 2 * (t - 1) - p : p));
    return x.index_select(2, torch::tensor(idx, torch::kLong));
}

struct RefForward {
    const Params& p;
    bool zero_padding = false;

    torch::Tensor conv(const std::string& name, const torch::Tensor& x, int64_t dilation = 1) const {
        const auto& w = p.at(name + ".weight");
        const int64_t total = dilation * (w.size(2) - 1);
        const std::vector<int64_t> stride{1}, no_padding{0}, dil{dilation};
        return torch::conv1d(mirror_pad(x, total / 2, total - total / 2, zero_padding), w, p.at(name + ".bias"), stride,
                             no_padding, dil);
    }
    torch::Tensor tdnn(const std::string& name, const torch::Tensor& x, int64_t dilation = 1) const {
        return torch::relu(conv(name + ".conv", x, dilation));
    }
    torch::Tensor operator()(const torch::Tensor& mel) const {
        auto x = tdnn("blocks.0", mel.transpose(1, 2));
        std::vector<torch::Tensor> block_outputs;
        for (int b = 1; b <= 3; ++b) {
            const std::string pre = "blocks." + std::to_string(b) + ".";
            const int64_t dilation = b + 1;
            auto h = tdnn(pre + "tdnn1", x);
            auto groups = h.split(64, 1);
            std::vector<torch::Tensor> res;
            res.push_back(groups[0]);
            auto carry = tdnn(pre + "res2net_block.blocks.0", groups[1], dilation);
            res.push_back(carry);
            for (int g = 2; g < 8; ++g) {
                carry = tdnn(pre + "res2net_block.blocks." + std::to_string(g - 1), groups[g] + carry, dilation);
                res.push_back(carry);
            }
            h = tdnn(pre + "tdnn2", torch::cat(res, 1));
            auto gate = torch::sigmoid(conv(pre + "se_block.conv2", torch::relu(conv(pre + "se_block.conv1", h.mean(2, true)))));
            x = h * gate + x;
            block_outputs.push_back(x);
        }
        x = tdnn("mfa", torch::cat(block_outputs, 1));
        const int64_t t = x.size(2);
        auto mu = x.mean(2, true);
        auto sd = ((x - mu).pow(2).mean(2, true)).clamp_min(1e-12).sqrt();
        auto att = conv("asp.conv", torch::tanh(tdnn("asp.tdnn", torch::cat({x, mu.expand({-1, -1, t}), sd.expand({-1, -1, t})}, 1))));
        auto w = torch::softmax(att, 2);
        auto wmu = (w * x).sum(2, true);
        auto wsd = (w * (x - wmu).pow(2)).sum(2, true).clamp_min(1e-12).sqrt();
        return conv("fc", torch::cat({wmu, wsd}, 1)).squeeze(-1);
    }
};

double rel_diff(const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

std::vector<float> read_clip(const std::string& voice) {
    return io::read_audio((shared_dir() / "reference" / "voices" / voice / "ref_sample.wav").string()).samples;
}

}  // namespace

TEST_CASE("speaker encoder tensors are the checkpoint's names and shapes (spec §8)", "[speaker]") {
    for (auto [enc_dim, total] : {std::pair<int, int64_t>{2048, 12001088}, {1024, 8854336}}) {
        INFO("enc_dim " << enc_dim);
        SpeakerEncoder enc(config_with(enc_dim));
        const auto expected = spec_tensors(enc_dim);
        std::map<std::string, Shape> actual;
        int64_t count = 0;
        for (const auto& kv : enc->named_parameters()) {
            actual[kv.key()] = kv.value().sizes().vec();
            count += kv.value().numel();
        }
        CHECK(enc->named_parameters().size() == 76);
        CHECK(expected.size() == 76);
        for (const auto& [name, shape] : expected) {
            INFO(name);
            REQUIRE(actual.count(name) == 1);
            CHECK(actual[name] == shape);
        }
        for (const auto& [name, shape] : actual) {
            INFO("unexpected " << name);
            CHECK(expected.count(name) == 1);
        }
        CHECK(count == total);
        CHECK(enc->named_buffers().size() == 0);  // nothing outside the checkpoint
    }
}

TEST_CASE("speaker encoder config: defaults, real configs, wrong types", "[speaker]") {
    using nlohmann::json;
    SECTION("absent fields keep the class defaults") {
        auto c = SpeakerEncoderConfig::from_json(json{{"enc_dim", 2048}, {"sample_rate", 24000}});
        CHECK(c.enc_dim == 2048);
        CHECK(c.mel_dim == 128);
        CHECK(c.enc_channels == Shape{512, 512, 512, 512, 1536});
        CHECK(c.enc_kernel_sizes == Shape{5, 3, 3, 3, 1});
        CHECK(c.enc_dilations == Shape{1, 2, 3, 4, 1});
        CHECK(c.enc_attention_channels == 128);
        CHECK(c.enc_res2net_scale == 8);
        CHECK(c.enc_se_channels == 128);
        CHECK(SpeakerEncoderConfig::from_json(json::object()).enc_dim == 1024);
    }
    SECTION("the released Base configs") {
        for (auto [name, dim] : {std::pair<const char*, int>{"Qwen3-TTS-12Hz-1.7B-Base", 2048}, {"Qwen3-TTS-12Hz-0.6B-Base", 1024}}) {
            std::ifstream in(shared_dir() / "reference" / "models" / name / "config.json");
            REQUIRE(in.good());
            auto j = json::parse(in);
            auto c = SpeakerEncoderConfig::from_json(j.at("speaker_encoder_config"));
            CHECK(c.enc_dim == dim);
            CHECK(c.sample_rate == 24000);
        }
    }
    SECTION("wrong types and impossible shapes are InputErrors naming the field") {
        auto fails_naming = [](const json& j, const std::string& key) {
            try {
                SpeakerEncoderConfig::from_json(j);
            } catch (const InputError& e) {
                INFO(e.what());
                CHECK(std::string(e.what()).find(key) != std::string::npos);
                return true;
            }
            return false;
        };
        CHECK(fails_naming(json{{"enc_dim", "2048"}}, "enc_dim"));
        CHECK(fails_naming(json{{"enc_dim", 1.5}}, "enc_dim"));
        CHECK(fails_naming(json{{"enc_dim", -4}}, "enc_dim"));
        CHECK(fails_naming(json{{"mel_dim", true}}, "mel_dim"));
        CHECK(fails_naming(json{{"enc_channels", 512}}, "enc_channels"));
        CHECK(fails_naming(json{{"enc_channels", json::array({512, "x", 512, 512, 1536})}}, "enc_channels"));
        CHECK(fails_naming(json{{"enc_kernel_sizes", json::array({5, 3, 3, 1})}}, "enc_channels"));
        CHECK(fails_naming(json{{"enc_res2net_scale", 7}}, "enc_res2net_scale"));
        CHECK(fails_naming(json{{"enc_channels", json::array({512, 512, 512, 512, 1024})}}, "enc_channels"));
        CHECK(fails_naming(json::array({1, 2}), "speaker_encoder_config"));
    }
}

TEST_CASE("speaker encoder forward follows spec §5.2, with reflect padding", "[speaker]") {
    torch::manual_seed(1234);
    SpeakerEncoder enc(config_with(1024));
    enc->eval();
    torch::NoGradGuard no_grad;
    REQUIRE(enc->min_frames() == 5);  // dilation 4, kernel 3 pads 4 frames a side

    auto mel = torch::randn({2, 37, 128}) * 2.0 - 4.0;
    auto out = enc->forward(mel);
    REQUIRE(out.sizes() == torch::IntArrayRef({2, 1024}));
    CHECK(torch::isfinite(out).all().item<bool>());
    CHECK(torch::equal(out, enc->forward(mel)));  // deterministic

    const auto params = params_of(enc);
    const auto reference = RefForward{params}(mel);
    CHECK(rel_diff(out, reference) < 1e-4);
    // The comparison can tell padding modes apart: zero "same" padding gives a clearly different vector.
    const auto zero_padded = RefForward{params, /*zero_padding=*/true}(mel);
    CHECK(rel_diff(zero_padded, reference) > 1e-3);

    // Batch rows are independent.
    CHECK(rel_diff(enc->forward(mel.slice(0, 1, 2))[0], out[1]) < 1e-5);
    // The shortest accepted input still follows the reference (every reflected index is in range).
    auto shortest = torch::randn({1, 5, 128});
    CHECK(rel_diff(enc->forward(shortest), RefForward{params}(shortest)) < 1e-4);
}

TEST_CASE("speaker encoder rejects unusable input with InputError", "[speaker]") {
    SpeakerEncoder enc(config_with(1024));
    torch::NoGradGuard no_grad;
    CHECK_THROWS_AS(enc->forward(torch::zeros({1, 4, 128})), InputError);
    CHECK_THROWS_AS(enc->forward(torch::zeros({1, 10, 80})), InputError);
    CHECK_THROWS_AS(enc->forward(torch::zeros({10, 128})), InputError);
    CHECK_THROWS_AS(speaker_embedding(enc, {}), InputError);
    CHECK_THROWS_AS(speaker_embedding(enc, std::vector<float>(1000, 0.1f)), InputError);  // 4 frames
    CHECK_NOTHROW(speaker_embedding(enc, std::vector<float>(1280, 0.1f)));                 // 5 frames
}

TEST_CASE("speaker embedding of the real voice clips", "[speaker][real]") {
    torch::manual_seed(99);
    SpeakerEncoder enc(config_with(2048));
    enc->eval();
    const auto sion = read_clip("alexandria-sion");
    const auto watson = read_clip("alexandria-watson");

    auto a = speaker_embedding(enc, sion);
    REQUIRE(a.sizes() == torch::IntArrayRef({2048}));
    CHECK(a.scalar_type() == torch::kFloat32);
    CHECK(torch::isfinite(a).all().item<bool>());
    CHECK(torch::equal(a, speaker_embedding(enc, sion)));
    CHECK_FALSE(a.requires_grad());

    // It is the encoder applied to the mel of the clip.
    torch::NoGradGuard no_grad;
    auto wav = torch::from_blob(const_cast<float*>(sion.data()), {int64_t(sion.size())}, torch::kFloat32);
    CHECK(torch::equal(a, enc->forward(mel_spectrogram(wav))[0]));

    auto b = speaker_embedding(enc, watson);
    CHECK(torch::isfinite(b).all().item<bool>());
    CHECK_FALSE(torch::allclose(a, b));

    SECTION("bf16 weights give a bf16 vector close to the fp32 one") {
        enc->to(torch::kBFloat16);
        auto h = speaker_embedding(enc, sion);
        REQUIRE(h.scalar_type() == torch::kBFloat16);
        const double cos = torch::cosine_similarity(h.to(torch::kFloat32), a, 0).item<double>();
        CHECK(cos > 0.99);
    }
}
