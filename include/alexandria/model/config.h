#pragma once
// The model folder's configuration, parsed once (DESIGN §3): `config.json` → ModelConfig, `generation_config.json`
// → GenerationConfig. Every value the code uses is read from the file; the reference classes' defaults are wrong
// for the released checkpoints (spec model-talker.md §1.3), so a missing or mistyped field is an InputError that
// names the key and the file rather than a silent default.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "alexandria/model/speaker_encoder.h"

namespace alexandria::model {

// One Qwen3 decoder stack (shared by the talker and the code predictor).
struct DecoderConfig {
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;
    int64_t head_dim = 0;  // 128 at both sizes; never hidden/heads (spec §9.2)
    double rms_norm_eps = 0;
    double rope_theta = 0;  // 1e6 (spec §9.3)
    int64_t max_position_embeddings = 0;
    // Multimodal RoPE sections (talker: [24, 20, 20], interleaved). Empty = plain 1-D RoPE (code predictor).
    std::vector<int64_t> mrope_section;
    bool mrope_interleaved = false;
};

struct CodePredictorConfig : DecoderConfig {
    int64_t vocab_size = 0;       // codebook size, 2048
    int64_t num_code_groups = 0;  // 16
};

struct TalkerConfig : DecoderConfig {
    int64_t vocab_size = 0;  // codec vocabulary of codec_embedding / codec_head, 3072
    int64_t text_vocab_size = 0;
    int64_t text_hidden_size = 0;
    int64_t num_code_groups = 0;
    int64_t codec_pad_id = 0, codec_bos_id = 0, codec_eos_token_id = 0;
    int64_t codec_think_id = 0, codec_nothink_id = 0, codec_think_bos_id = 0, codec_think_eos_id = 0;
    std::map<std::string, int64_t> codec_language_id;
    std::map<std::string, int64_t> spk_id;          // CustomVoice speakers → codec row; {} otherwise
    std::map<std::string, std::string> spk_is_dialect;  // speaker → dialect name; "" when false or absent
    CodePredictorConfig code_predictor;
};

struct ModelConfig {
    std::string source;           // the file it was read from (for messages)
    std::string tts_model_type;   // "base" | "custom_voice" | "voice_design"
    std::string tts_model_size;   // "1b7" | "0b6" (or "tiny" for the random test preset)
    int64_t im_start_token_id = 0, im_end_token_id = 0, assistant_token_id = 0;
    int64_t tts_pad_token_id = 0, tts_bos_token_id = 0, tts_eos_token_id = 0;
    TalkerConfig talker;
    std::optional<SpeakerEncoderConfig> speaker_encoder;  // present exactly when tts_model_type == "base"

    bool is_base() const { return tts_model_type == "base"; }
    // The code predictor gets `small_to_mtp_projection` exactly when the widths differ (1.7B; spec §4.2).
    bool has_mtp_projection() const { return talker.hidden_size != talker.code_predictor.hidden_size; }
    // Languages a prompt may name: "auto" plus the codec_language_id keys without "dialect" (spec §1.2).
    std::vector<std::string> supported_languages() const;
    std::vector<std::string> supported_speakers() const;

    // `label` names the source in error messages.
    static ModelConfig from_json(const nlohmann::json& j, const std::string& label);
    // `path`: a model folder (reads <path>/config.json) or the config.json file itself.
    static ModelConfig load(const std::string& path);
};

// Sampling defaults (spec §6.7). Fields absent from the file keep the wrapper's hard-coded fallbacks (the same
// values except max_new_tokens 2048); a present field of the wrong type is an InputError.
struct GenerationConfig {
    bool do_sample = true;
    double repetition_penalty = 1.05;
    double temperature = 0.9;
    double top_p = 1.0;
    int64_t top_k = 50;
    bool subtalker_dosample = true;
    double subtalker_temperature = 0.9;
    double subtalker_top_p = 1.0;
    int64_t subtalker_top_k = 50;
    int64_t max_new_tokens = 2048;

    static GenerationConfig from_json(const nlohmann::json& j, const std::string& label);
    // `path`: a model folder or the file. A folder without the file gives the fallbacks.
    static GenerationConfig load(const std::string& path);
};

}  // namespace alexandria::model
