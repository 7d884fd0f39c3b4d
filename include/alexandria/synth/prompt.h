#pragma once
// The talker prompt of every synthesis mode (spec model-talker.md §6.1; upstream modeling M:2068-2209), in two
// steps so the layout is testable without a network:
//
//   1. build_prompt(): a pure function from ids and the config to a *recipe*: each row is a text-channel part plus
//      a codec-channel part (T(id), C(id), the speaker vector, or the summed frame F(ref_j)), for the prefill and
//      for the trailing rows fed one per generated frame;
//   2. embed_prompt(): turns the recipe into tensors through three embedding callbacks (the talker's, or a test's).
//
// Modes: voice clone from a speaker vector (x-vector), voice clone ICL (reference codes and text prepended),
// CustomVoice (a named speaker row, with the dialect override), VoiceDesign (no speaker slot, instruct block).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "alexandria/model/config.h"

namespace alexandria::synth {

// Streaming: the text is fed one token per generated frame (the voice-clone wrapper's default, non_streaming_mode
// False). NonStreaming: the whole text sits in the prefill (CustomVoice/VoiceDesign default; how Alexandria and
// our trainer lay out the prompt). Our default in every mode is NonStreaming: streaming feeds the text at 12.5
// tokens/s while speech consumes about 4-5, which speeds the speaking rate up over long lines (QwenLM/Qwen3-TTS
// issue 239), what an audiobook cannot have.
enum class TextLayout { Streaming, NonStreaming };
TextLayout parse_text_layout(const std::string& s);  // "streaming" | "non-streaming"; InputError otherwise
std::string to_string(TextLayout l);

struct PromptPart {
    enum class Kind { None, Text, Codec, Speaker, RefFrame };
    Kind kind = Kind::None;
    int64_t value = 0;  // text id, codec id, or reference frame index
    bool operator==(const PromptPart& o) const { return kind == o.kind && value == o.value; }
    static PromptPart none() { return {}; }
    static PromptPart text(int64_t id) { return {Kind::Text, id}; }
    static PromptPart codec(int64_t id) { return {Kind::Codec, id}; }
    static PromptPart speaker() { return {Kind::Speaker, 0}; }
    static PromptPart ref_frame(int64_t j) { return {Kind::RefFrame, j}; }
};

// One input row = text part + codec part (either may be None, never both).
struct PromptRow {
    PromptPart text, codec;
    bool operator==(const PromptRow& o) const { return text == o.text && codec == o.codec; }
};
std::string describe(const PromptRow& r);  // e.g. "T(151671)+C(2154)", for test messages

struct PromptRecipe {
    std::vector<PromptRow> prefill;
    // Added to the frame embedding of generated frame t (t < size); later frames get T(tts_pad).
    std::vector<PromptRow> trailing;
};

enum class VoiceKind {
    None,          // VoiceDesign: no speaker slot
    SpeakerVector, // voice clone (x-vector or ICL): the speaker encoder's vector as a raw row (§6.5)
    NamedSpeaker,  // CustomVoice: C(spk_id[speaker])
};

struct PromptRequest {
    std::vector<int32_t> instruct;     // the whole instruct template's ids; empty = no instruct block
    std::vector<int32_t> role;         // target template ids[:3]
    std::vector<int32_t> content;      // target template ids[3:-5] (t_0..t_{M-1}); must be non-empty
    std::vector<int32_t> ref_content;  // ICL: reference template ids[3:-2]
    int64_t ref_frames = 0;            // ICL when > 0: number of reference code frames
    std::string language = "auto";    // "auto" or a codec_language_id key (case-insensitive)
    VoiceKind voice = VoiceKind::SpeakerVector;
    std::string speaker;               // NamedSpeaker: a spk_id key (case-insensitive)
    TextLayout layout = TextLayout::Streaming;
    bool icl() const { return ref_frames > 0; }
};

// InputError for an unknown language or speaker, an empty content, ICL without reference text, etc.
PromptRecipe build_prompt(const PromptRequest& req, const model::ModelConfig& cfg);

// The codec-channel ids before the speaker slot (§6.1 item 3): [nothink, think_bos, think_eos] for "auto",
// [think, think_bos, lang, think_eos] otherwise, with the dialect override for a named dialect speaker.
std::vector<int64_t> codec_prefix_ids(const std::string& language, const std::string& speaker,
                                      const model::ModelConfig& cfg);

// Embedding callbacks: ids [n] int64 → [n, H]; codes [n, G] int64 → [n, H].
struct PromptEmbedders {
    std::function<torch::Tensor(const torch::Tensor& ids)> text;    // T(·)
    std::function<torch::Tensor(const torch::Tensor& ids)> codec;   // C(·)
    std::function<torch::Tensor(const torch::Tensor& codes)> frame; // F(·)
};

struct PromptTensors {
    torch::Tensor prefill;   // [T, H]
    torch::Tensor trailing;  // [L, H] (L ≥ 1)
    torch::Tensor pad;       // [H] = T(tts_pad): the trailing row after the last one
};

// speaker: [H] (SpeakerVector rows); ref_codes: [T_ref, G] int64 (RefFrame rows). Both on the embedders' device.
// Rows are computed with one call per embedder and summed in the embedders' dtype.
PromptTensors embed_prompt(const PromptRecipe& recipe, const PromptEmbedders& emb, int64_t tts_pad_id,
                           const torch::Tensor& speaker = {}, const torch::Tensor& ref_codes = {});

}  // namespace alexandria::synth
