#include "alexandria/train/layout.h"

#include <fmt/format.h>

#include "alexandria/io/error.h"
#include "alexandria/model/config.h"

namespace alexandria::train {

std::string objective_name(Objective o) { return o == Objective::Aligned ? "aligned" : "alexandria"; }

Objective parse_objective(const std::string& name) {
    if (name == "alexandria") return Objective::Alexandria;
    if (name == "aligned") return Objective::Aligned;
    throw InputError(fmt::format("--objective: '{}' is not an objective (alexandria, aligned)", name));
}

std::string prompt_mode_name(PromptMode m) { return m == PromptMode::Icl ? "icl" : "xvector"; }

PromptMode parse_prompt_mode(const std::string& name) {
    if (name == "xvector" || name == "x-vector") return PromptMode::XVector;
    if (name == "icl") return PromptMode::Icl;
    throw InputError(fmt::format("--prompt: '{}' is not a prompt mode (xvector, icl)", name));
}

LayoutIds LayoutIds::from_config(const model::ModelConfig& cfg) {
    LayoutIds ids;
    ids.tts_pad = cfg.tts_pad_token_id;
    ids.tts_bos = cfg.tts_bos_token_id;
    ids.tts_eos = cfg.tts_eos_token_id;
    const auto& t = cfg.talker;
    ids.codec_pad = t.codec_pad_id;
    ids.codec_bos = t.codec_bos_id;
    ids.codec_eos = t.codec_eos_token_id;
    ids.codec_think = t.codec_think_id;
    ids.codec_nothink = t.codec_nothink_id;
    ids.codec_think_bos = t.codec_think_bos_id;
    ids.codec_think_eos = t.codec_think_eos_id;
    return ids;
}

std::vector<int64_t> codec_prefix(const LayoutIds& ids, int64_t language_id) {
    if (language_id < 0) return {ids.codec_nothink, ids.codec_think_bos, ids.codec_think_eos};
    return {ids.codec_think, ids.codec_think_bos, language_id, ids.codec_think_eos};
}

std::vector<int64_t> codec_prefix(const model::ModelConfig& cfg, const std::string& language) {
    auto ids = LayoutIds::from_config(cfg);
    if (language == "auto") return codec_prefix(ids, -1);
    auto it = cfg.talker.codec_language_id.find(language);
    if (it == cfg.talker.codec_language_id.end()) {
        std::string known = "auto";
        for (const auto& [name, id] : cfg.talker.codec_language_id) known += ", " + name;
        throw InputError(fmt::format("--language: '{}' is not a language of this model ({})", language, known));
    }
    return codec_prefix(ids, it->second);
}

std::vector<int64_t> Layout::talker_labels(const std::vector<int64_t>& code0) const {
    std::vector<int64_t> labels(rows.size(), kIgnoreIndex);
    for (const auto& t : talker_targets) labels[t.position] = t.frame >= 0 ? code0.at(t.frame) : t.target_id;
    return labels;
}

namespace {

void check_layout_inputs(const std::vector<int64_t>& prefix, const std::vector<int64_t>& role,
                         const std::vector<int64_t>& content, int64_t num_frames) {
    if (role.size() != 3) throw InputError(fmt::format("prompt role must be 3 tokens, got {}", role.size()));
    if (content.empty()) throw InputError("the text has no content tokens");
    if (num_frames < 1) throw InputError("a training clip must have at least one codec frame");
    if (prefix.empty()) throw InputError("empty codec prefix");
}

Row text_only(int64_t t) { return Row{t, Row::Codec::None, -1, -1}; }
Row both(int64_t t, int64_t c) { return Row{t, Row::Codec::Id, c, -1}; }

// role, PAD + prefix, PAD + speaker, BOS + codec_pad: the rows every voice-clone prompt starts with.
void add_head(Layout& L, const LayoutIds& ids, const std::vector<int64_t>& prefix, const std::vector<int64_t>& role) {
    for (int64_t r : role) L.rows.push_back(text_only(r));
    for (int64_t c : prefix) L.rows.push_back(both(ids.tts_pad, c));
    L.speaker_row = static_cast<int64_t>(L.rows.size());
    L.rows.push_back(Row{ids.tts_pad, Row::Codec::Speaker, -1, -1});
    L.rows.push_back(both(ids.tts_bos, ids.codec_pad));
}

// Ends the prefill, appends the target frames and what each objective scores on them.
void add_frames_and_targets(Layout& L, const LayoutIds& ids, int64_t num_frames, Objective objective) {
    L.objective = objective;
    L.num_frames = num_frames;
    L.prefill_len = static_cast<int64_t>(L.rows.size());
    for (int64_t j = 0; j < num_frames; ++j) L.rows.push_back(Row{ids.tts_pad, Row::Codec::Frame, -1, j});
    for (int64_t j = 0; j < num_frames; ++j) {
        L.talker_targets.push_back({L.prefill_len - 1 + j, j, -1});
        L.sub_hidden_positions.push_back(L.prefill_len - 1 + j);
    }
    if (objective == Objective::Aligned) {
        // The last frame's row predicts the stop token (train_lora.py never trains it).
        L.talker_targets.push_back({L.prefill_len - 1 + num_frames, -1, ids.codec_eos});
        for (int64_t k = 0; k < 15; ++k) L.sub_pairs.emplace_back(k, k + 1);
    } else {
        // forward_sub_talker_finetune's HF loss shifts the already shifted labels once more: head k meets
        // codebook k+2, head 14 is never scored (spec §4.4; QwenLM/Qwen3-TTS #371).
        for (int64_t k = 0; k < 14; ++k) L.sub_pairs.emplace_back(k, k + 2);
    }
}

}  // namespace

Layout build_layout(const LayoutIds& ids, const std::vector<int64_t>& prefix, const std::vector<int64_t>& role,
                    const std::vector<int64_t>& content, int64_t num_frames, Objective objective) {
    check_layout_inputs(prefix, role, content, num_frames);
    Layout L;
    add_head(L, ids, prefix, role);
    for (int64_t t : content) L.rows.push_back(both(t, ids.codec_pad));
    L.rows.push_back(both(ids.tts_eos, ids.codec_pad));
    L.rows.push_back(both(ids.tts_pad, ids.codec_bos));
    add_frames_and_targets(L, ids, num_frames, objective);
    return L;
}

Layout build_icl_layout(const LayoutIds& ids, const std::vector<int64_t>& prefix, const std::vector<int64_t>& role,
                        const std::vector<int64_t>& ref_content, const std::vector<int64_t>& content,
                        int64_t ref_frames, int64_t num_frames, Objective objective) {
    check_layout_inputs(prefix, role, content, num_frames);
    if (ref_content.empty()) throw InputError("ICL needs the reference transcript (ref_text.txt): it has no tokens");
    if (ref_frames < 1) throw InputError("ICL needs reference codes: the reference has no codec frame");
    Layout L;
    add_head(L, ids, prefix, role);
    for (int64_t t : ref_content) L.rows.push_back(both(t, ids.codec_pad));
    for (int64_t t : content) L.rows.push_back(both(t, ids.codec_pad));
    L.rows.push_back(both(ids.tts_eos, ids.codec_pad));
    L.rows.push_back(both(ids.tts_pad, ids.codec_bos));
    for (int64_t j = 0; j < ref_frames; ++j) L.rows.push_back(Row{ids.tts_pad, Row::Codec::RefFrame, -1, j});
    L.ref_frames = ref_frames;
    add_frames_and_targets(L, ids, num_frames, objective);
    return L;
}

}  // namespace alexandria::train
