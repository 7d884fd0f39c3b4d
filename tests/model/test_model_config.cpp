// config.json / generation_config.json parsing against the five released configs (spec model-talker.md §1).
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "model_test_util.h"

using namespace alexandria;
using namespace alexandria::model;
using nlohmann::json;

namespace {
json read_json(const std::string& path) { return json::parse(io::read_file(path)); }

void check_common_talker(const TalkerConfig& t) {
    CHECK(t.num_hidden_layers == 28);
    CHECK(t.num_attention_heads == 16);
    CHECK(t.num_key_value_heads == 8);
    CHECK(t.head_dim == 128);
    CHECK(t.rope_theta == 1e6);
    CHECK(t.rms_norm_eps == 1e-6);
    CHECK(t.mrope_section == std::vector<int64_t>{24, 20, 20});
    CHECK(t.mrope_interleaved);
    CHECK(t.vocab_size == 3072);
    CHECK(t.text_vocab_size == 151936);
    CHECK(t.text_hidden_size == 2048);
    CHECK(t.num_code_groups == 16);
    CHECK(t.codec_pad_id == 2148);
    CHECK(t.codec_bos_id == 2149);
    CHECK(t.codec_eos_token_id == 2150);
    CHECK(t.codec_think_id == 2154);
    CHECK(t.codec_nothink_id == 2155);
    CHECK(t.codec_think_bos_id == 2156);
    CHECK(t.codec_think_eos_id == 2157);
    CHECK(t.codec_language_id.at("english") == 2050);
    CHECK(t.codec_language_id.at("chinese") == 2055);
    const auto& p = t.code_predictor;
    CHECK(p.hidden_size == 1024);
    CHECK(p.intermediate_size == 3072);
    CHECK(p.num_hidden_layers == 5);
    CHECK(p.num_attention_heads == 16);
    CHECK(p.num_key_value_heads == 8);
    CHECK(p.head_dim == 128);
    CHECK(p.rope_theta == 1e6);
    CHECK(p.mrope_section.empty());
    CHECK(p.vocab_size == 2048);
    CHECK(p.num_code_groups == 16);
}
}  // namespace

TEST_CASE("the five released config.json files parse with their real values", "[model][config]") {
    for (const auto& name : test::real_model_names()) {
        INFO(name);
        ModelConfig c = ModelConfig::load(test::real_model_dir(name));
        check_common_talker(c.talker);
        CHECK(c.im_start_token_id == 151644);
        CHECK(c.im_end_token_id == 151645);
        CHECK(c.assistant_token_id == 77091);
        CHECK(c.tts_pad_token_id == 151671);
        CHECK(c.tts_bos_token_id == 151672);
        CHECK(c.tts_eos_token_id == 151673);
        bool big = name.find("1.7B") != std::string::npos;
        CHECK(c.tts_model_size == (big ? "1b7" : "0b6"));
        CHECK(c.talker.hidden_size == (big ? 2048 : 1024));
        CHECK(c.talker.intermediate_size == (big ? 6144 : 3072));
        CHECK(c.has_mtp_projection() == big);
        bool base = name.find("Base") != std::string::npos;
        CHECK(c.is_base() == base);
        CHECK(c.speaker_encoder.has_value() == base);
        if (base) {
            CHECK(c.speaker_encoder->enc_dim == c.talker.hidden_size);
            CHECK(c.speaker_encoder->enc_channels == std::vector<int64_t>{512, 512, 512, 512, 1536});
        }
        bool cv = name.find("CustomVoice") != std::string::npos;
        CHECK(c.tts_model_type == (base ? "base" : cv ? "custom_voice" : "voice_design"));
        if (cv) {
            CHECK(c.talker.spk_id.size() == 9);
            CHECK(c.talker.spk_id.at("serena") == 3066);
            CHECK(c.talker.spk_id.at("aiden") == 2861);
            CHECK(c.talker.spk_is_dialect.at("eric") == "sichuan_dialect");
            CHECK(c.talker.spk_is_dialect.at("dylan") == "beijing_dialect");
            CHECK(c.talker.spk_is_dialect.at("ryan").empty());
            CHECK(c.talker.codec_language_id.at("beijing_dialect") == 2074);
            // Dialects are not user-facing languages.
            auto langs = c.supported_languages();
            CHECK(langs.size() == 11);
            CHECK(std::find(langs.begin(), langs.end(), "sichuan_dialect") == langs.end());
        } else {
            CHECK(c.talker.spk_id.empty());
            CHECK(c.supported_languages().size() == 11);
        }
    }
}

TEST_CASE("generation_config.json gives the released sampling values", "[model][config]") {
    for (const auto& name : test::real_model_names()) {
        GenerationConfig g = GenerationConfig::load(test::real_model_dir(name));
        CHECK(g.do_sample);
        CHECK(g.repetition_penalty == 1.05);
        CHECK(g.temperature == 0.9);
        CHECK(g.top_p == 1.0);
        CHECK(g.top_k == 50);
        CHECK(g.subtalker_dosample);
        CHECK(g.subtalker_temperature == 0.9);
        CHECK(g.subtalker_top_k == 50);
        CHECK(g.max_new_tokens == 8192);
    }
    // The text we write for random models is the released file.
    CHECK(generation_config_text() ==
          io::read_file(test::real_model_dir("Qwen3-TTS-12Hz-1.7B-Base") + "/generation_config.json"));
    test::TempDir tmp;
    GenerationConfig fallback = GenerationConfig::load(tmp.path.string());  // no file: wrapper fallbacks
    CHECK(fallback.max_new_tokens == 2048);
    CHECK(fallback.temperature == 0.9);
    json bad = {{"temperature", "hot"}};
    REQUIRE_THROWS_AS(GenerationConfig::from_json(bad, "g.json"), InputError);
    REQUIRE_THROWS_WITH(GenerationConfig::from_json(bad, "g.json"), Catch::Contains("temperature"));
}

TEST_CASE("a missing or mistyped config field is an InputError naming the key and file", "[model][config]") {
    json base = read_json(test::real_model_dir("Qwen3-TTS-12Hz-1.7B-Base") + "/config.json");
    {
        json j = base;
        j["talker_config"].erase("head_dim");
        REQUIRE_THROWS_AS(ModelConfig::from_json(j, "x/config.json"), InputError);
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "x/config.json"),
                            Catch::Contains("x/config.json") && Catch::Contains("talker_config.head_dim") &&
                                Catch::Contains("missing"));
    }
    {
        json j = base;
        j["talker_config"]["code_predictor_config"]["rope_theta"] = "big";
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"),
                            Catch::Contains("talker_config.code_predictor_config.rope_theta"));
    }
    {
        json j = base;
        j.erase("tts_pad_token_id");
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("tts_pad_token_id"));
    }
    {
        json j = base;
        j.erase("speaker_encoder_config");
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("speaker_encoder_config"));
    }
    {
        json j = base;
        j["talker_config"]["rope_scaling"]["mrope_section"] = {24, 20, 21};
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("mrope_section"));
    }
    {
        json j = base;
        j["talker_config"]["num_key_value_heads"] = 5;
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("num_key_value_heads"));
    }
    {
        json j = base;
        j["talker_config"]["codec_eos_token_id"] = 5000;
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("codec_eos_token_id"));
    }
    {
        json j = base;
        j["tts_model_type"] = "karaoke";
        REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("tts_model_type"));
    }
    REQUIRE_THROWS_AS(ModelConfig::from_json(json::array(), "c.json"), InputError);
    test::TempDir tmp;
    {
        std::ofstream(tmp / "config.json") << "{ not json";
    }
    REQUIRE_THROWS_WITH(ModelConfig::load(tmp.path.string()), Catch::Contains("config.json"));
    REQUIRE_THROWS_AS(ModelConfig::load((tmp / "nowhere").string()), InputError);
}

TEST_CASE("spk_id accepts one-element lists as well as integers", "[model][config]") {
    json j = read_json(test::real_model_dir("Qwen3-TTS-12Hz-0.6B-CustomVoice") + "/config.json");
    j["talker_config"]["spk_id"]["serena"] = json::array({3066});
    ModelConfig c = ModelConfig::from_json(j, "c.json");
    CHECK(c.talker.spk_id.at("serena") == 3066);
    j["talker_config"]["spk_id"]["serena"] = json::array({3066, 3067});
    REQUIRE_THROWS_WITH(ModelConfig::from_json(j, "c.json"), Catch::Contains("spk_id.serena"));
}

TEST_CASE("random model configs at real sizes parse to the released values", "[model][config]") {
    struct Case {
        std::string size, type, real;
    };
    for (const auto& c : std::vector<Case>{{"1.7b", "base", "Qwen3-TTS-12Hz-1.7B-Base"},
                                           {"0.6b", "base", "Qwen3-TTS-12Hz-0.6B-Base"},
                                           {"1.7b", "custom_voice", "Qwen3-TTS-12Hz-1.7B-CustomVoice"},
                                           {"1.7b", "voice_design", "Qwen3-TTS-12Hz-1.7B-VoiceDesign"},
                                           {"0.6b", "custom_voice", "Qwen3-TTS-12Hz-0.6B-CustomVoice"}}) {
        INFO(c.real);
        RandomModelSpec spec;
        spec.size = c.size;
        spec.type = c.type;
        json ours = random_model_config(spec);
        json real = read_json(test::real_model_dir(c.real) + "/config.json");
        // Every top-level and talker field we write has the released value (HF boilerplate aside).
        for (auto it = ours.begin(); it != ours.end(); ++it) {
            if (it.key() == "talker_config") continue;
            INFO(it.key());
            CHECK(it.value() == real.at(it.key()));
        }
        for (auto it = ours["talker_config"].begin(); it != ours["talker_config"].end(); ++it) {
            INFO("talker_config." + it.key());
            if (it.key() == "code_predictor_config") {
                for (auto p = it.value().begin(); p != it.value().end(); ++p) {
                    INFO("code_predictor_config." + p.key());
                    CHECK(p.value() == real["talker_config"]["code_predictor_config"].at(p.key()));
                }
                continue;
            }
            CHECK(it.value() == real["talker_config"].at(it.key()));
        }
    }
    RandomModelSpec bad;
    bad.size = "0.6b";
    bad.type = "voice_design";
    REQUIRE_THROWS_AS(random_model_config(bad), InputError);
    bad.size = "3b";
    REQUIRE_THROWS_AS(random_model_config(bad), InputError);
}
