#include "alexandria/model/config.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"

namespace alexandria::model {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Field access with messages of the form "<file>: field talker_config.hidden_size: missing".
struct Reader {
    const json& j;
    std::string label;  // file
    std::string path;   // dotted prefix inside the file, "" or "talker_config."

    [[noreturn]] void fail(const std::string& key, const std::string& why) const {
        throw InputError(fmt::format("{}: field {}{}: {}", label, path, key, why));
    }
    const json& need(const std::string& key) const {
        if (!j.is_object()) throw InputError(fmt::format("{}: {} is not a JSON object", label, path.empty() ? "top level" : path));
        auto it = j.find(key);
        if (it == j.end()) fail(key, "missing");
        return *it;
    }
    int64_t integer(const std::string& key) const {
        const json& v = need(key);
        if (v.is_number_integer()) return v.get<int64_t>();
        if (v.is_number_float()) {
            double d = v.get<double>();
            if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
        }
        fail(key, fmt::format("expected an integer, got {}", v.dump()));
    }
    // Bounded well above any released checkpoint, so a corrupt value is named here instead of surfacing as a
    // tensor library error (or an allocation of petabytes) when the model is built.
    int64_t positive(const std::string& key, int64_t max = int64_t(1) << 24) const {
        int64_t v = integer(key);
        if (v <= 0) fail(key, fmt::format("must be positive, got {}", v));
        if (v > max) fail(key, fmt::format("{} is implausibly large (at most {})", v, max));
        return v;
    }
    double number(const std::string& key) const {
        const json& v = need(key);
        if (!v.is_number()) fail(key, fmt::format("expected a number, got {}", v.dump()));
        double d = v.get<double>();
        if (!std::isfinite(d)) fail(key, "not finite");
        return d;
    }
    std::string string(const std::string& key) const {
        const json& v = need(key);
        if (!v.is_string()) fail(key, fmt::format("expected a string, got {}", v.dump()));
        return v.get<std::string>();
    }
    bool boolean(const std::string& key) const {
        const json& v = need(key);
        if (!v.is_boolean()) fail(key, fmt::format("expected true or false, got {}", v.dump()));
        return v.get<bool>();
    }
    Reader child(const std::string& key) const {
        const json& v = need(key);
        if (!v.is_object()) fail(key, "expected an object");
        return Reader{v, label, path + key + "."};
    }
};

void read_decoder(const Reader& r, DecoderConfig& d) {
    d.hidden_size = r.positive("hidden_size", 1 << 16);
    d.intermediate_size = r.positive("intermediate_size", 1 << 18);
    d.num_hidden_layers = r.positive("num_hidden_layers", 1024);
    d.num_attention_heads = r.positive("num_attention_heads", 1024);
    d.num_key_value_heads = r.positive("num_key_value_heads", 1024);
    d.head_dim = r.positive("head_dim", 4096);
    d.rms_norm_eps = r.number("rms_norm_eps");
    if (d.rms_norm_eps <= 0) r.fail("rms_norm_eps", "must be positive");
    d.rope_theta = r.number("rope_theta");
    if (d.rope_theta <= 0) r.fail("rope_theta", "must be positive");
    d.max_position_embeddings = r.positive("max_position_embeddings");
    if (d.num_attention_heads % d.num_key_value_heads != 0)
        r.fail("num_key_value_heads", fmt::format("{} does not divide num_attention_heads {}", d.num_key_value_heads,
                                                  d.num_attention_heads));
    if (d.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
    if (r.string("hidden_act") != "silu") r.fail("hidden_act", "only \"silu\" is supported");
    // Present in every real config; a bias or a sliding window would change the tensor list or the maths.
    if (r.j.contains("attention_bias") && r.boolean("attention_bias")) r.fail("attention_bias", "true is not supported");
    if (r.j.contains("use_sliding_window") && r.boolean("use_sliding_window"))
        r.fail("use_sliding_window", "true is not supported");

    const json& rs = r.need("rope_scaling");
    if (rs.is_null()) return;
    if (!rs.is_object()) r.fail("rope_scaling", "expected an object or null");
    Reader s{rs, r.label, r.path + "rope_scaling."};
    if (rs.contains("rope_type") && s.string("rope_type") != "default")
        s.fail("rope_type", "only \"default\" is supported");
    if (rs.contains("mrope_section")) {
        const json& ms = rs["mrope_section"];
        if (!ms.is_array() || ms.size() != 3) s.fail("mrope_section", "expected a list of three integers");
        int64_t sum = 0;
        for (const auto& v : ms) {
            if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > d.head_dim)
                s.fail("mrope_section", "expected non-negative integers up to head_dim");
            d.mrope_section.push_back(v.get<int64_t>());
            sum += v.get<int64_t>();
        }
        if (sum != d.head_dim / 2)
            s.fail("mrope_section", fmt::format("sections sum to {}, expected head_dim/2 = {}", sum, d.head_dim / 2));
        d.mrope_interleaved = rs.contains("interleaved") ? s.boolean("interleaved") : false;
        if (!d.mrope_interleaved) s.fail("interleaved", "only the interleaved multimodal layout is supported");
    }
}

std::map<std::string, int64_t> read_id_map(const Reader& r, const std::string& key, bool allow_list) {
    const json& v = r.need(key);
    if (!v.is_object()) r.fail(key, "expected an object");
    std::map<std::string, int64_t> out;
    for (auto it = v.begin(); it != v.end(); ++it) {
        const json* x = &it.value();
        // spk_id values are ints in the released configs; some sources show one-element lists (spec §1.3).
        if (allow_list && x->is_array() && x->size() == 1) x = &(*x)[0];
        if (!x->is_number_integer() || x->get<int64_t>() < 0)
            r.fail(key + "." + it.key(), fmt::format("expected a non-negative integer id, got {}", it.value().dump()));
        out[it.key()] = x->get<int64_t>();
    }
    return out;
}

// The file read, parsed and interpreted; a JSON library error that gets past the typed field readers still
// becomes an InputError naming the file.
template <typename Config>
Config parse_file(const fs::path& p) {
    json j = io::read_json_file(p.string());
    try {
        return Config::from_json(j, p.string());
    } catch (const json::exception& e) {
        throw InputError(fmt::format("{}: {}", p.string(), io::json_reason(e)));
    }
}

}  // namespace

std::vector<std::string> ModelConfig::supported_languages() const {
    std::vector<std::string> out{"auto"};
    for (const auto& [name, id] : talker.codec_language_id)
        if (name.find("dialect") == std::string::npos) out.push_back(name);
    return out;
}

std::vector<std::string> ModelConfig::supported_speakers() const {
    std::vector<std::string> out;
    for (const auto& [name, id] : talker.spk_id) out.push_back(name);
    return out;
}

ModelConfig ModelConfig::from_json(const json& j, const std::string& label) {
    ModelConfig c;
    c.source = label;
    Reader r{j, label, ""};
    if (!j.is_object()) throw InputError(label + ": not a JSON object");
    std::string model_type = r.string("model_type");
    if (model_type != "qwen3_tts")
        r.fail("model_type", fmt::format("\"{}\" is not a Qwen3-TTS model (expected \"qwen3_tts\")", model_type));
    c.tts_model_type = r.string("tts_model_type");
    if (c.tts_model_type != "base" && c.tts_model_type != "custom_voice" && c.tts_model_type != "voice_design")
        r.fail("tts_model_type", fmt::format("unknown type \"{}\" (base, custom_voice, voice_design)", c.tts_model_type));
    c.tts_model_size = r.string("tts_model_size");
    c.im_start_token_id = r.integer("im_start_token_id");
    c.im_end_token_id = r.integer("im_end_token_id");
    c.assistant_token_id = r.integer("assistant_token_id");
    c.tts_pad_token_id = r.integer("tts_pad_token_id");
    c.tts_bos_token_id = r.integer("tts_bos_token_id");
    c.tts_eos_token_id = r.integer("tts_eos_token_id");

    Reader t = r.child("talker_config");
    TalkerConfig& tc = c.talker;
    read_decoder(t, tc);
    tc.vocab_size = t.positive("vocab_size");
    tc.text_vocab_size = t.positive("text_vocab_size");
    tc.text_hidden_size = t.positive("text_hidden_size", 1 << 16);
    for (auto [key, id] : {std::pair<const char*, int64_t>{"im_start_token_id", c.im_start_token_id},
                           {"im_end_token_id", c.im_end_token_id}, {"assistant_token_id", c.assistant_token_id},
                           {"tts_pad_token_id", c.tts_pad_token_id}, {"tts_bos_token_id", c.tts_bos_token_id},
                           {"tts_eos_token_id", c.tts_eos_token_id}})
        if (id < 0 || id >= tc.text_vocab_size)
            r.fail(key, fmt::format("id {} outside the text vocabulary [0, {})", id, tc.text_vocab_size));
    tc.num_code_groups = t.positive("num_code_groups");
    tc.codec_pad_id = t.integer("codec_pad_id");
    tc.codec_bos_id = t.integer("codec_bos_id");
    tc.codec_eos_token_id = t.integer("codec_eos_token_id");
    tc.codec_think_id = t.integer("codec_think_id");
    tc.codec_nothink_id = t.integer("codec_nothink_id");
    tc.codec_think_bos_id = t.integer("codec_think_bos_id");
    tc.codec_think_eos_id = t.integer("codec_think_eos_id");
    for (auto [key, id] : {std::pair<const char*, int64_t>{"codec_pad_id", tc.codec_pad_id},
                           {"codec_bos_id", tc.codec_bos_id}, {"codec_eos_token_id", tc.codec_eos_token_id},
                           {"codec_think_id", tc.codec_think_id}, {"codec_nothink_id", tc.codec_nothink_id},
                           {"codec_think_bos_id", tc.codec_think_bos_id}, {"codec_think_eos_id", tc.codec_think_eos_id}})
        if (id < 0 || id >= tc.vocab_size)
            t.fail(key, fmt::format("id {} outside the codec vocabulary [0, {})", id, tc.vocab_size));
    tc.codec_language_id = read_id_map(t, "codec_language_id", false);
    tc.spk_id = read_id_map(t, "spk_id", true);
    for (const auto& m : {tc.codec_language_id, tc.spk_id})
        for (const auto& [name, id] : m)
            if (id >= tc.vocab_size)
                t.fail(name, fmt::format("id {} outside the codec vocabulary [0, {})", id, tc.vocab_size));
    {
        const json& v = t.need("spk_is_dialect");
        if (!v.is_object()) t.fail("spk_is_dialect", "expected an object");
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (it.value().is_boolean()) {
                if (it.value().get<bool>())
                    t.fail("spk_is_dialect." + it.key(), "true is not a dialect name (expected false or a string)");
                tc.spk_is_dialect[it.key()] = "";
            } else if (it.value().is_string()) {
                std::string d = it.value().get<std::string>();
                if (!tc.codec_language_id.count(d))
                    t.fail("spk_is_dialect." + it.key(), fmt::format("dialect \"{}\" is not in codec_language_id", d));
                tc.spk_is_dialect[it.key()] = d;
            } else {
                t.fail("spk_is_dialect." + it.key(), "expected false or a dialect name");
            }
        }
    }
    if (!tc.mrope_section.empty() && tc.mrope_section.size() != 3) t.fail("rope_scaling", "bad mrope_section");

    Reader p = t.child("code_predictor_config");
    CodePredictorConfig& pc = tc.code_predictor;
    read_decoder(p, pc);
    pc.vocab_size = p.positive("vocab_size");
    pc.num_code_groups = p.positive("num_code_groups");
    if (pc.num_code_groups != tc.num_code_groups)
        p.fail("num_code_groups", fmt::format("{} differs from talker_config.num_code_groups {}", pc.num_code_groups,
                                              tc.num_code_groups));
    if (pc.num_code_groups < 2) p.fail("num_code_groups", "need at least 2 code groups");
    if (pc.vocab_size > tc.vocab_size)
        p.fail("vocab_size", fmt::format("codebook size {} exceeds the talker codec vocabulary {}", pc.vocab_size,
                                         tc.vocab_size));

    if (c.is_base()) {
        const json& s = r.need("speaker_encoder_config");
        if (!s.is_object()) r.fail("speaker_encoder_config", "expected an object");
        try {
            c.speaker_encoder = SpeakerEncoderConfig::from_json(s);
        } catch (const InputError& e) {
            throw InputError(fmt::format("{}: speaker_encoder_config: {}", label, e.what()));
        }
        // The speaker vector replaces a codec embedding row (spec §6.5), so it must be talker width.
        if (c.speaker_encoder->enc_dim != tc.hidden_size)
            r.fail("speaker_encoder_config.enc_dim",
                   fmt::format("{} differs from talker_config.hidden_size {}", c.speaker_encoder->enc_dim, tc.hidden_size));
    }
    return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
    fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) p /= "config.json";
    return parse_file<ModelConfig>(p);
}

GenerationConfig GenerationConfig::from_json(const json& j, const std::string& label) {
    GenerationConfig g;
    if (!j.is_object()) throw InputError(label + ": not a JSON object");
    Reader r{j, label, ""};
    auto opt_bool = [&](const char* k, bool& v) { if (j.contains(k)) v = r.boolean(k); };
    auto opt_num = [&](const char* k, double& v) { if (j.contains(k)) v = r.number(k); };
    auto opt_int = [&](const char* k, int64_t& v) { if (j.contains(k)) v = r.integer(k); };
    opt_bool("do_sample", g.do_sample);
    opt_num("repetition_penalty", g.repetition_penalty);
    opt_num("temperature", g.temperature);
    opt_num("top_p", g.top_p);
    opt_int("top_k", g.top_k);
    opt_bool("subtalker_dosample", g.subtalker_dosample);
    opt_num("subtalker_temperature", g.subtalker_temperature);
    opt_num("subtalker_top_p", g.subtalker_top_p);
    opt_int("subtalker_top_k", g.subtalker_top_k);
    opt_int("max_new_tokens", g.max_new_tokens);
    if (g.repetition_penalty <= 0) r.fail("repetition_penalty", "must be positive");
    if (g.temperature <= 0) r.fail("temperature", "must be positive");
    if (g.subtalker_temperature <= 0) r.fail("subtalker_temperature", "must be positive");
    if (g.top_p <= 0 || g.top_p > 1) r.fail("top_p", "must be in (0, 1]");
    if (g.subtalker_top_p <= 0 || g.subtalker_top_p > 1) r.fail("subtalker_top_p", "must be in (0, 1]");
    if (g.top_k < 0) r.fail("top_k", "must not be negative");
    if (g.subtalker_top_k < 0) r.fail("subtalker_top_k", "must not be negative");
    if (g.max_new_tokens <= 0) r.fail("max_new_tokens", "must be positive");
    return g;
}

GenerationConfig GenerationConfig::load(const std::string& path) {
    fs::path p(path);
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
        p /= "generation_config.json";
        if (!fs::exists(p, ec)) return GenerationConfig{};
    }
    return parse_file<GenerationConfig>(p);
}

}  // namespace alexandria::model
