// Prompt recipes against the spec's tables (model-talker.md §6.1) on the real configs, and embed_prompt's sums.
#include <catch2/catch.hpp>

#include "alexandria/io/error.h"
#include "alexandria/model/config.h"
#include "alexandria/synth/prompt.h"
#include "support/test_support.h"

using namespace alexandria;
using namespace alexandria::synth;
using P = PromptPart;

namespace {
model::ModelConfig real_config(const std::string& name) {
    return model::ModelConfig::load((test::shared_dir() / "reference/models" / name / "config.json").string());
}
const int64_t PAD = 151671, BOS = 151672, EOSt = 151673;
const std::vector<int32_t> role{151644, 77091, 198};

std::vector<std::string> rows(const std::vector<PromptRow>& r) {
    std::vector<std::string> out;
    for (auto& x : r) out.push_back(describe(x));
    return out;
}
}  // namespace

TEST_CASE("clone x-vector, English, streaming: the spec's 10-row example") {
    auto cfg = real_config("Qwen3-TTS-12Hz-1.7B-Base");
    PromptRequest req;
    req.role = role;
    req.content = {11, 12, 13};
    req.language = "English";
    req.voice = VoiceKind::SpeakerVector;
    req.layout = TextLayout::Streaming;
    auto r = build_prompt(req, cfg);
    CHECK(rows(r.prefill) == std::vector<std::string>{
                                 "T(151644)", "T(77091)", "T(198)", "T(151671)+C(2154)", "T(151671)+C(2156)",
                                 "T(151671)+C(2050)", "T(151671)+C(2157)", "T(151671)+spk", "T(151672)+C(2148)",
                                 "T(11)+C(2149)"});
    CHECK(rows(r.trailing) == std::vector<std::string>{"T(12)", "T(13)", "T(151673)"});
}

TEST_CASE("non-streaming x-vector, auto language: Alexandria's inference layout") {
    auto cfg = real_config("Qwen3-TTS-12Hz-1.7B-Base");
    PromptRequest req;
    req.role = role;
    req.content = {11, 12};
    req.layout = TextLayout::NonStreaming;
    auto r = build_prompt(req, cfg);
    CHECK(rows(r.prefill) == std::vector<std::string>{
                                 "T(151644)", "T(77091)", "T(198)", "T(151671)+C(2155)", "T(151671)+C(2156)",
                                 "T(151671)+C(2157)", "T(151671)+spk", "T(151672)+C(2148)", "T(11)+C(2148)",
                                 "T(12)+C(2148)", "T(151673)+C(2148)", "T(151671)+C(2149)"});
    CHECK(rows(r.trailing) == std::vector<std::string>{"T(151671)"});
}

TEST_CASE("instruct block comes first, text-only") {
    auto cfg = real_config("Qwen3-TTS-12Hz-1.7B-VoiceDesign");
    PromptRequest req;
    req.instruct = {151644, 872, 198, 500, 151645, 198};
    req.role = role;
    req.content = {11};
    req.voice = VoiceKind::None;
    req.layout = TextLayout::NonStreaming;
    auto r = build_prompt(req, cfg);
    auto got = rows(r.prefill);
    REQUIRE(got.size() == 6 + 3 + 4 + 3);
    CHECK(std::vector<std::string>(got.begin(), got.begin() + 6) ==
          std::vector<std::string>{"T(151644)", "T(872)", "T(198)", "T(500)", "T(151645)", "T(198)"});
    // VoiceDesign: no speaker slot → nothink, think_bos, think_eos, then BOS over codec pad.
    CHECK(got[9] == "T(151671)+C(2155)");
    CHECK(got[12] == "T(151672)+C(2148)");
}

TEST_CASE("CustomVoice speaker row and the dialect override") {
    auto cfg = real_config("Qwen3-TTS-12Hz-1.7B-CustomVoice");
    PromptRequest req;
    req.role = role;
    req.content = {11};
    req.voice = VoiceKind::NamedSpeaker;
    req.layout = TextLayout::NonStreaming;

    req.speaker = "Ryan";
    req.language = "english";
    auto r = build_prompt(req, cfg);
    CHECK(describe(r.prefill[3]) == "T(151671)+C(2154)");
    CHECK(describe(r.prefill[5]) == "T(151671)+C(2050)");
    CHECK(describe(r.prefill[7]) == "T(151671)+C(3061)");  // ryan

    // eric is a Sichuan-dialect speaker: auto and chinese switch to the dialect id, english does not.
    req.speaker = "eric";
    for (std::string lang : {"auto", "chinese"}) {
        req.language = lang;
        auto d = build_prompt(req, cfg);
        CHECK(describe(d.prefill[5]) == "T(151671)+C(2062)");
        CHECK(describe(d.prefill[7]) == "T(151671)+C(2875)");
    }
    req.language = "english";
    CHECK(describe(build_prompt(req, cfg).prefill[5]) == "T(151671)+C(2050)");
    req.speaker = "dylan";
    req.language = "auto";
    CHECK(describe(build_prompt(req, cfg).prefill[5]) == "T(151671)+C(2074)");

    req.speaker = "nobody";
    CHECK_THROWS_AS(build_prompt(req, cfg), InputError);
    req.speaker = "ryan";
    req.language = "klingon";
    CHECK_THROWS_AS(build_prompt(req, cfg), InputError);
    req.language = "beijing_dialect";  // dialects are not languages a user names
    CHECK_THROWS_AS(build_prompt(req, cfg), InputError);
}

TEST_CASE("ICL layouts: reference text + target text + EOSt against codec bos + reference frames") {
    auto cfg = real_config("Qwen3-TTS-12Hz-0.6B-Base");
    PromptRequest req;
    req.role = role;
    req.ref_content = {21, 22};
    req.content = {11, 12, 13};
    req.ref_frames = 3;

    SECTION("non-streaming: X + codec pad, then Y + PAD") {
        req.layout = TextLayout::NonStreaming;
        auto r = build_prompt(req, cfg);
        auto got = rows(r.prefill);
        std::vector<std::string> tail(got.begin() + 8, got.end());
        CHECK(tail == std::vector<std::string>{"T(21)+C(2148)", "T(22)+C(2148)", "T(11)+C(2148)",
                                               "T(12)+C(2148)", "T(13)+C(2148)", "T(151673)+C(2148)",
                                               "T(151671)+C(2149)", "T(151671)+F(ref_0)", "T(151671)+F(ref_1)",
                                               "T(151671)+F(ref_2)"});
        CHECK(rows(r.trailing) == std::vector<std::string>{"T(151671)"});
    }
    SECTION("streaming, text longer than codec: overlap then trailing text") {
        req.layout = TextLayout::Streaming;
        auto r = build_prompt(req, cfg);
        auto got = rows(r.prefill);
        std::vector<std::string> tail(got.begin() + 8, got.end());
        CHECK(tail == std::vector<std::string>{"T(21)+C(2149)", "T(22)+F(ref_0)", "T(11)+F(ref_1)",
                                               "T(12)+F(ref_2)"});
        CHECK(rows(r.trailing) == std::vector<std::string>{"T(13)", "T(151673)"});
    }
    SECTION("streaming, codec longer than text: text padded with PAD") {
        req.layout = TextLayout::Streaming;
        req.ref_frames = 6;
        req.content = {11};
        auto r = build_prompt(req, cfg);
        auto got = rows(r.prefill);
        std::vector<std::string> tail(got.begin() + 8, got.end());
        CHECK(tail == std::vector<std::string>{"T(21)+C(2149)", "T(22)+F(ref_0)", "T(11)+F(ref_1)",
                                               "T(151673)+F(ref_2)", "T(151671)+F(ref_3)", "T(151671)+F(ref_4)",
                                               "T(151671)+F(ref_5)"});
        CHECK(rows(r.trailing) == std::vector<std::string>{"T(151671)"});
    }
    SECTION("ICL needs the reference transcript") {
        req.ref_content.clear();
        CHECK_THROWS_AS(build_prompt(req, cfg), InputError);
    }
}

TEST_CASE("embed_prompt sums each row's parts through the embedders") {
    auto cfg = real_config("Qwen3-TTS-12Hz-0.6B-Base");
    PromptRequest req;
    req.role = role;
    req.ref_content = {21};
    req.content = {11, 12};
    req.ref_frames = 2;
    req.layout = TextLayout::Streaming;
    auto recipe = build_prompt(req, cfg);
    // Distinguishable fake embeddings in a 4-wide space: text id → [id, 0, 0, 0], codec → [0, id, 0, 0],
    // frame → [0, 0, sum of codes, 0], speaker [0, 0, 0, 7].
    PromptEmbedders e;
    e.text = [](const torch::Tensor& ids) {
        auto out = torch::zeros({ids.size(0), 4}, torch::kFloat64);
        out.select(1, 0).copy_(ids.to(torch::kFloat64));
        return out;
    };
    e.codec = [](const torch::Tensor& ids) {
        auto out = torch::zeros({ids.size(0), 4}, torch::kFloat64);
        out.select(1, 1).copy_(ids.to(torch::kFloat64));
        return out;
    };
    e.frame = [](const torch::Tensor& codes) {
        auto out = torch::zeros({codes.size(0), 4}, torch::kFloat64);
        out.select(1, 2).copy_(codes.sum(1).to(torch::kFloat64));
        return out;
    };
    auto spk = torch::tensor({0.0, 0.0, 0.0, 7.0}, torch::kFloat64);
    auto ref = torch::arange(32, torch::kLong).view({2, 16});
    auto t = embed_prompt(recipe, e, PAD, spk, ref);
    REQUIRE(t.prefill.size(0) == static_cast<int64_t>(recipe.prefill.size()));
    CHECK(t.pad[0].item<double>() == PAD);
    // speaker row (index 6, after the role and the 3-token auto prefix): PAD + spk
    CHECK(torch::equal(t.prefill[6], torch::tensor({double(PAD), 0.0, 0.0, 7.0}, torch::kFloat64)));
    // ICL rows after the 8-row prefix: T(21)+C(2149), T(11)+F(ref_0), T(12)+F(ref_1)
    CHECK(torch::equal(t.prefill[8], torch::tensor({21.0, 2149.0, 0.0, 0.0}, torch::kFloat64)));
    CHECK(torch::equal(t.prefill[9], torch::tensor({11.0, 0.0, double(120), 0.0}, torch::kFloat64)));
    CHECK(torch::equal(t.prefill[10], torch::tensor({12.0, 0.0, double(376), 0.0}, torch::kFloat64)));
    REQUIRE(t.trailing.size(0) == 1);
    CHECK(t.trailing[0][0].item<double>() == EOSt);
    (void)BOS;

    // A speaker-vector prompt without a vector is refused, not crashed.
    CHECK_THROWS_AS(embed_prompt(recipe, e, PAD, {}, ref), InputError);
}

TEST_CASE("text layout names") {
    CHECK(parse_text_layout("streaming") == TextLayout::Streaming);
    CHECK(parse_text_layout("non-streaming") == TextLayout::NonStreaming);
    CHECK_THROWS_AS(parse_text_layout("sideways"), InputError);
}
