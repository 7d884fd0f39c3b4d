#pragma once
// The teacher-forcing layout of one training sample, position by position, and the targets each objective scores
// (spec model-talker.md §7.3, §4.4; DESIGN §6). Pure: ids in, rows and targets out, no model and no tensors, so it
// is tested against a brute-force construction of the spec's table.
//
// Alexandria's layout (train_lora.py build_teacher_forcing_input), M content tokens, N frames, K codec-prefix
// tokens (K = 4 for a named language: [think, think_bos, lang, think_eos]; K = 3 for "auto": [nothink, think_bos,
// think_eos]):
//
//   rows 0..2            T(role_i)                      (no codec part)
//   rows 3..2+K          PAD + C(prefix_k)
//   row  3+K             PAD + spk                      (speaker vector, raw: never text-projected)
//   row  4+K             BOS + C(codec_pad)
//   rows 5+K..4+K+M      T(t_i) + C(codec_pad)
//   row  5+K+M           EOSt + C(codec_pad)
//   row  6+K+M           PAD + C(codec_bos)             (last prefill row: its logits predict frame 0)
//   rows 7+K+M+j         F(frame_j) + PAD               (j = 0..N-1)
//
// prefill_len = 7 + K + M (11 + M with a language, 10 + M for auto); the sequence is prefill_len + N rows.
// Objectives (hidden/logits at position p predict the next position):
//   alexandria  talker: logits[prefill_len-1+j] vs code0_j, j = 0..N-1 (no EOS target)
//               sub:    code_predictor_logits(hidden[prefill_len-1+j], frame_j)[k] vs code_{k+2}, k = 0..13
//   aligned     talker: as above plus logits[prefill_len-1+N] (the last frame's row) vs codec EOS (2150)
//               sub:    head k vs code_{k+1}, k = 0..14
// Both: total = talker + 0.3 · sub, each a mean over its own targets.
//
// ICL layout (train --prompt icl): exactly the prefill synth builds for voice-clone ICL in the non-streaming text
// layout (synth/prompt.h build_prompt; upstream generate_icl_prompt), R_t reference-transcript tokens r_i and R
// reference frames, followed by the target's frames:
//
//   rows 0..2+K, 3+K, 4+K  as above (role, PAD + C(prefix_k), PAD + spk, BOS + C(codec_pad))
//   rows 5+K..             T(r_i) + C(codec_pad)  then  T(t_i) + C(codec_pad)  then  EOSt + C(codec_pad)
//   next row               PAD + C(codec_bos)
//   next R rows            PAD + F(ref_j)                 (the last one predicts the target's frame 0)
//   rows prefill_len + j   F(frame_j) + PAD
//
// prefill_len = 7 + K + R_t + M + R. Targets are those of the x-vector layout relative to prefill_len: only the
// target's frames (and, for aligned, its EOS) are scored, never the reference frames.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace alexandria::model {
struct ModelConfig;
}

namespace alexandria::train {

enum class Objective { Alexandria, Aligned };
// What the prompt carries besides the text: the speaker vector only (x-vector, train_lora.py's layout), or also the
// reference clip's codes and transcript (ICL, how Alexandria's app speaks its adapters).
enum class PromptMode { XVector, Icl };
std::string prompt_mode_name(PromptMode m);            // "xvector" | "icl"
PromptMode parse_prompt_mode(const std::string& name); // InputError otherwise

std::string objective_name(Objective o);              // "alexandria" | "aligned"
Objective parse_objective(const std::string& name);    // InputError otherwise

constexpr double kSubLossWeight = 0.3;  // official sft_12hz.py and train_lora.py
constexpr int64_t kIgnoreIndex = -100;

// The token ids the layout names (all from config.json; the defaults are the released checkpoints' values).
struct LayoutIds {
    int64_t tts_pad = 151671, tts_bos = 151672, tts_eos = 151673;
    int64_t codec_pad = 2148, codec_bos = 2149, codec_eos = 2150;
    int64_t codec_think = 2154, codec_nothink = 2155, codec_think_bos = 2156, codec_think_eos = 2157;
    static LayoutIds from_config(const model::ModelConfig& cfg);
};

// The codec prefix for `language`: "auto" → [nothink, think_bos, think_eos]; a codec_language_id key →
// [think, think_bos, id, think_eos] (as train_lora.py, which falls back to the nothink form only when the
// name is unknown; we reject unknown names instead, listing the supported ones).
std::vector<int64_t> codec_prefix(const model::ModelConfig& cfg, const std::string& language);
std::vector<int64_t> codec_prefix(const LayoutIds& ids, int64_t language_id /* < 0 = auto */);

struct Row {
    enum class Codec { None, Id, Speaker, Frame, RefFrame };
    int64_t text = -1;  // text-channel token, embedded as T(text); -1 = no text part
    Codec codec = Codec::None;
    int64_t codec_id = -1;  // Codec::Id
    int64_t frame = -1;     // Codec::Frame / RefFrame: index j of the (reference) frame whose 16 codes are summed (F)
    bool operator==(const Row& o) const {
        return text == o.text && codec == o.codec && codec_id == o.codec_id && frame == o.frame;
    }
};

struct Layout {
    std::vector<Row> rows;
    int64_t prefill_len = 0;
    int64_t num_frames = 0;
    int64_t ref_frames = 0;  // ICL: reference frames in the prefill (0 for x-vector)
    int64_t speaker_row = -1;
    Objective objective = Objective::Alexandria;
    // Talker targets: (logit position p, target id): frame code0s are given as the frame index j encoded by
    // `frame_target` (the id comes from the codes), the EOS target as its id.
    struct TalkerTarget {
        int64_t position;
        int64_t frame;      // j whose code 0 is the target, or -1 for a fixed id
        int64_t target_id;  // when frame < 0 (the codec EOS)
    };
    std::vector<TalkerTarget> talker_targets;
    // Code predictor: one talker hidden position per frame, and the (head, codebook) pairs scored.
    std::vector<int64_t> sub_hidden_positions;       // prefill_len - 1 + j
    std::vector<std::pair<int64_t, int64_t>> sub_pairs;  // (head k, codebook) for every k scored

    int64_t length() const { return static_cast<int64_t>(rows.size()); }
    // Labels per position for a given code0 sequence: labels[p] = what logits[p] are scored against, -100 elsewhere.
    std::vector<int64_t> talker_labels(const std::vector<int64_t>& code0) const;
};

// role: the 3 role ids; content: t_0..t_{M-1} (M ≥ 1); num_frames N ≥ 1. InputError on a bad role/empty content/N.
Layout build_layout(const LayoutIds& ids, const std::vector<int64_t>& prefix, const std::vector<int64_t>& role,
                    const std::vector<int64_t>& content, int64_t num_frames, Objective objective);

// The ICL layout: ref_content = the reference template's ids[3:-2] (R_t ≥ 1), ref_frames R ≥ 1. InputError on an
// empty reference as well as on what build_layout rejects.
Layout build_icl_layout(const LayoutIds& ids, const std::vector<int64_t>& prefix, const std::vector<int64_t>& role,
                        const std::vector<int64_t>& ref_content, const std::vector<int64_t>& content,
                        int64_t ref_frames, int64_t num_frames, Objective objective);

}  // namespace alexandria::train
