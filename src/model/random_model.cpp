#include "alexandria/model/random_model.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/model/layers.h"
#include "alexandria/model/talker.h"

namespace alexandria::model {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct Widths {
    int64_t hidden, intermediate, layers, heads, kv_heads, head_dim, text_hidden;
    std::vector<int64_t> mrope;
    int64_t cp_hidden, cp_intermediate, cp_layers, cp_heads, cp_kv_heads, cp_head_dim;
};

Widths widths_for(const std::string& size) {
    if (size == "1.7b") return {2048, 6144, 28, 16, 8, 128, 2048, {24, 20, 20}, 1024, 3072, 5, 16, 8, 128};
    if (size == "0.6b") return {1024, 3072, 28, 16, 8, 128, 2048, {24, 20, 20}, 1024, 3072, 5, 16, 8, 128};
    if (size == "tiny") return {64, 128, 2, 4, 2, 16, 16, {4, 2, 2}, 32, 64, 2, 4, 2, 16};
    // The two real shapes at tiny widths, for the parity suite: 1.7B-like (text width = talker width, code predictor
    // narrower, so small_to_mtp_projection exists) and 0.6B-like (text wider than the talker, code predictor as wide
    // as the talker, identity projection).
    if (size == "tiny-1.7b") return {32, 64, 2, 4, 2, 16, 32, {4, 2, 2}, 16, 32, 2, 4, 2, 16};
    if (size == "tiny-0.6b") return {32, 64, 2, 4, 2, 16, 64, {4, 2, 2}, 32, 64, 2, 4, 2, 16};
    throw InputError(fmt::format("unknown model size \"{}\" (tiny, tiny-1.7b, tiny-0.6b, 0.6b, 1.7b)", size));
}

json decoder_common(int64_t hidden, int64_t inter, int64_t layers, int64_t heads, int64_t kv, int64_t head_dim) {
    return json{{"attention_bias", false},
                {"attention_dropout", 0},
                {"head_dim", head_dim},
                {"hidden_act", "silu"},
                {"hidden_size", hidden},
                {"initializer_range", 0.02},
                {"intermediate_size", inter},
                {"num_attention_heads", heads},
                {"num_hidden_layers", layers},
                {"num_key_value_heads", kv},
                {"rms_norm_eps", 1e-06},
                {"rope_theta", 1000000},
                {"sliding_window", nullptr},
                {"use_cache", true},
                {"use_sliding_window", false}};
}

uint64_t element_size(const std::string& dtype) {
    if (dtype == "BF16") return 2;
    if (dtype == "F32") return 4;
    throw Error("safetensors writer: unsupported dtype " + dtype);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> sorted_shapes(
    std::vector<std::pair<std::string, std::vector<int64_t>>> shapes) {
    std::sort(shapes.begin(), shapes.end());
    return shapes;
}

void write_streamed_safetensors(const fs::path& path, const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                                uint64_t seed, torch::Dtype dtype, const std::map<std::string, std::string>& metadata) {
    std::string dname = dtype == torch::kBFloat16 ? "BF16" : "F32";
    uint64_t esize = element_size(dname);
    std::string h = safetensors_header(shapes, dname, metadata);
    auto sorted = sorted_shapes(shapes);
    io::write_atomic(path, [&](const fs::path& tmp) {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw Error(fmt::format("{}: cannot write", tmp.string()));
        uint64_t hlen = h.size();
        unsigned char len_bytes[8];
        for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>((hlen >> (8 * i)) & 0xff);
        out.write(reinterpret_cast<const char*>(len_bytes), 8);
        out.write(h.data(), static_cast<std::streamsize>(h.size()));
        for (const auto& [name, shape] : sorted) {
            torch::Tensor t = random_parameter(name, shape, seed).to(dtype).contiguous();
            out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * esize));
        }
        out.flush();
        if (!out) throw Error(fmt::format("{}: write failed (disk full?)", tmp.string()));
    });
}

}  // namespace

bool is_tiny_size(const std::string& size) { return size.rfind("tiny", 0) == 0; }

json random_model_config(const RandomModelSpec& spec) {
    Widths w = widths_for(spec.size);
    if (spec.type != "base" && spec.type != "custom_voice" && spec.type != "voice_design")
        throw InputError(fmt::format("unknown model type \"{}\" (base, custom_voice, voice_design)", spec.type));
    if (spec.size == "0.6b" && spec.type == "voice_design")
        throw InputError("there is no 0.6B VoiceDesign checkpoint (use 1.7b or tiny)");

    json cp = decoder_common(w.cp_hidden, w.cp_intermediate, w.cp_layers, w.cp_heads, w.cp_kv_heads, w.cp_head_dim);
    cp["layer_types"] = std::vector<std::string>(w.cp_layers, "full_attention");
    cp["max_position_embeddings"] = 65536;
    cp["max_window_layers"] = 28;
    cp["model_type"] = "qwen3_tts_talker_code_predictor";
    cp["num_code_groups"] = 16;
    cp["rope_scaling"] = nullptr;
    cp["vocab_size"] = 2048;

    json t = decoder_common(w.hidden, w.intermediate, w.layers, w.heads, w.kv_heads, w.head_dim);
    t["code_predictor_config"] = cp;
    t["codec_bos_id"] = 2149;
    t["codec_eos_token_id"] = 2150;
    t["codec_think_id"] = 2154;
    t["codec_nothink_id"] = 2155;
    t["codec_pad_id"] = 2148;
    t["codec_think_bos_id"] = 2156;
    t["codec_think_eos_id"] = 2157;
    json langs = {{"chinese", 2055}, {"english", 2050},   {"german", 2053}, {"italian", 2070},
                  {"portuguese", 2071}, {"spanish", 2054}, {"japanese", 2058}, {"korean", 2064},
                  {"french", 2061}, {"russian", 2069}};
    json spk = json::object(), dialect = json::object();
    if (spec.type == "custom_voice") {
        langs["beijing_dialect"] = 2074;
        langs["sichuan_dialect"] = 2062;
        spk = {{"serena", 3066}, {"vivian", 3065}, {"uncle_fu", 3010}, {"ryan", 3061}, {"aiden", 2861},
               {"ono_anna", 2873}, {"sohee", 2864}, {"eric", 2875}, {"dylan", 2878}};
        dialect = {{"serena", false}, {"vivian", false}, {"uncle_fu", false}, {"ryan", false}, {"aiden", false},
                   {"ono_anna", false}, {"sohee", false}, {"eric", "sichuan_dialect"}, {"dylan", "beijing_dialect"}};
    }
    t["codec_language_id"] = langs;
    t["spk_id"] = spk;
    t["spk_is_dialect"] = dialect;
    t["max_position_embeddings"] = 32768;
    t["model_type"] = "qwen3_tts_talker";
    t["num_code_groups"] = 16;
    t["position_id_per_seconds"] = 13;
    t["rope_scaling"] = {{"interleaved", true}, {"mrope_section", w.mrope}, {"rope_type", "default"}, {"type", "default"}};
    t["text_hidden_size"] = w.text_hidden;
    t["text_vocab_size"] = 151936;
    t["vocab_size"] = 3072;

    json c = {{"architectures", {"Qwen3TTSForConditionalGeneration"}},
              {"assistant_token_id", 77091},
              {"im_end_token_id", 151645},
              {"im_start_token_id", 151644},
              {"tts_bos_token_id", 151672},
              {"tts_eos_token_id", 151673},
              {"tts_pad_token_id", 151671},
              {"model_type", "qwen3_tts"},
              {"tokenizer_type", "qwen3_tts_tokenizer_12hz"},
              {"tts_model_size", spec.size == "1.7b" ? "1b7" : spec.size == "0.6b" ? "0b6" : "tiny"},
              {"tts_model_type", spec.type},
              {"talker_config", t},
              {"transformers_version", "4.57.3"}};
    if (spec.type == "base") {
        json s = {{"enc_dim", w.hidden}, {"sample_rate", 24000}};
        if (is_tiny_size(spec.size)) {
            // Small ECAPA widths; the real configs keep the class defaults (spec §5.1).
            s["enc_channels"] = {32, 32, 32, 32, 96};
            s["enc_attention_channels"] = 16;
            s["enc_res2net_scale"] = 4;
            s["enc_se_channels"] = 16;
        }
        c["speaker_encoder_config"] = s;
    }
    return c;
}

std::string safetensors_header(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                               const std::string& dtype, const std::map<std::string, std::string>& metadata) {
    uint64_t esize = element_size(dtype);
    // Hand-built rather than through a JSON library so the key order inside each entry is the safetensors
    // library's (dtype, shape, data_offsets); the byte length is what matters for the size check either way.
    std::string h = "{";
    if (!metadata.empty()) h += "\"__metadata__\":" + json(metadata).dump() + ",";
    uint64_t offset = 0;
    bool first = true;
    for (const auto& [name, shape] : sorted_shapes(shapes)) {
        uint64_t n = 1;
        for (int64_t d : shape) n *= static_cast<uint64_t>(d);
        if (!first) h += ",";
        first = false;
        h += json(name).dump() + ":{\"dtype\":\"" + dtype + "\",\"shape\":" + json(shape).dump() +
             ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + n * esize) + "]}";
        offset += n * esize;
    }
    h += "}";
    while (h.size() % 8 != 0) h.push_back(' ');
    return h;
}

uint64_t safetensors_file_size(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                               const std::string& dtype, const std::map<std::string, std::string>& metadata) {
    uint64_t data = 0, esize = element_size(dtype);
    for (const auto& [name, shape] : shapes) {
        uint64_t n = 1;
        for (int64_t d : shape) n *= static_cast<uint64_t>(d);
        data += n * esize;
    }
    return 8 + safetensors_header(shapes, dtype, metadata).size() + data;
}

std::string generation_config_text() {
    return "{\n"
           "  \"do_sample\": true,\n"
           "  \"repetition_penalty\": 1.05,\n"
           "  \"temperature\": 0.9,\n"
           "  \"top_p\": 1.0,\n"
           "  \"top_k\": 50,\n"
           "  \"subtalker_dosample\": true,\n"
           "  \"subtalker_temperature\": 0.9,\n"
           "  \"subtalker_top_p\": 1.0,\n"
           "  \"subtalker_top_k\": 50,\n"
           "  \"max_new_tokens\": 8192\n"
           "}";
}

void write_random_model(const std::string& dir, const RandomModelSpec& spec) {
    torch::Dtype dtype;
    if (spec.dtype == "bf16") dtype = torch::kBFloat16;
    else if (spec.dtype == "f32") dtype = torch::kFloat32;
    else throw InputError(fmt::format("unknown dtype \"{}\" (bf16, f32)", spec.dtype));
    json cfg_json = random_model_config(spec);
    ModelConfig cfg = ModelConfig::from_json(cfg_json, "random model config");
    auto shapes = checkpoint_shapes(cfg);
    fs::create_directories(dir);
    std::map<std::string, std::string> metadata;
    if (spec.type != "base") metadata["format"] = "pt";  // as released (spec §0)
    write_streamed_safetensors(fs::path(dir) / "model.safetensors", shapes, spec.seed, dtype, metadata);
    io::write_file_atomic(fs::path(dir) / "generation_config.json", generation_config_text());
    // config.json last: a folder with a config but no weights never appears.
    io::write_file_atomic(fs::path(dir) / "config.json", cfg_json.dump(2) + "\n");
}

}  // namespace alexandria::model
