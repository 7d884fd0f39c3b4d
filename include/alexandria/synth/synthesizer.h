#pragma once
// Speech from text with a loaded checkpoint: picks the prompt mode, builds and embeds the prompt, runs the decode
// loop, decodes the codes with the codec's chunked decoder, and trims the ICL reference (spec model-talker.md §6;
// alexandria-compat.md §3).
//
// Voices, by checkpoint type:
//   Base          voice clone. The speaker vector comes from `ref_audio`, else from the active adapter (its stored
//                 speaker embedding, else its ref_sample.wav: how it was trained). With `ref_text` (or
//                 `icl` on an adapter with ref_sample.wav + ref_sample_text, or by default on an adapter trained
//                 with `train --prompt icl`) the reference codes and transcript are prepended (ICL) and the
//                 reference's share of the waveform is cut off afterwards.
//   CustomVoice   a named `speaker` (dialect override included); `instruct` on 1.7B only.
//   VoiceDesign   `instruct` is the voice description.
// An instruct block is added to any mode that has an instruct (the reference wrapper never adds it on Base, but
// the model accepts it and Alexandria relies on it), except 0.6B CustomVoice, where it is refused.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "alexandria/codec/codec.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/synth/generate.h"
#include "alexandria/synth/prompt.h"
#include "alexandria/text/tokenizer.h"

namespace alexandria::synth {

// File names our trainer writes beside the PEFT files (read if present).
constexpr const char* kSpeakerEmbeddingFile = "speaker_embedding.safetensors";
constexpr const char* kTrainingMetaFile = "training_meta.json";
constexpr const char* kRefSampleFile = "ref_sample.wav";
// Written by `alexandria adapter merge` into the merged model folder (with the adapter's voice files): a folder
// that has it speaks in that voice by default, as base + adapter would.
constexpr const char* kMergedFromFile = "merged_from.json";

struct LoadOptions {
    std::string model;  // folder or Hugging Face id in the local cache
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;
    std::string adapter;      // optional adapter folder, active from the start
    double lora_scale = 1.0;  // --lora-scale
    // true: fold the adapter into the weights (no per-frame cost). false: keep the branch separate so lines can
    // switch adapters (set automatically when an utterance names another adapter).
    bool merge_adapter = true;
};

struct Utterance {
    std::string text;
    std::string language;  // "" = the adapter's training language if recorded, else "auto"
    std::string speaker;   // CustomVoice speaker
    std::string instruct;  // instruct block / VoiceDesign description
    std::string ref_audio, ref_text;  // clone reference (any rate; resampled to 24 kHz)
    bool icl = false;      // ICL with the adapter's ref_sample.wav and its transcript (Alexandria's original mode)
    bool no_icl = false;   // x-vector even with an adapter trained in ICL mode (its default is ICL)
    // Adapter for this utterance: "" = the loaded one (LoadOptions::adapter), "-" = none (the base model).
    std::string adapter;
    std::optional<TextLayout> layout;  // default: non-streaming in every mode (see prompt.h TextLayout)
    uint64_t seed = 0;
    bool greedy = false;
    int64_t max_frames = 0;  // 0 = generation_config.json max_new_tokens
    FrameCapRule cap_rule;
};

struct SynthResult {
    std::vector<float> audio;  // 24 kHz mono
    int64_t frames = 0;        // generated frames (reference excluded)
    int64_t frame_cap = 0;
    bool hit_cap = false;      // the runaway guard stopped it: no EOS within the cap
    std::string mode;          // "clone x-vector" | "clone ICL" | "custom voice" | "voice design"
    std::string language;      // as used
    TextLayout layout = TextLayout::NonStreaming;
    int64_t text_tokens = 0;
    double generate_seconds = 0, decode_seconds = 0;
    double audio_seconds() const { return static_cast<double>(audio.size()) / codec::kSampleRate; }
    double compute_seconds() const { return generate_seconds + decode_seconds; }
    // Real-time factor: compute time / audio time (< 1 is faster than real time).
    double rtf() const { return audio.empty() ? 0.0 : compute_seconds() / audio_seconds(); }
};

// ICL trimming exactly as the reference wrapper (W:625-630): cut = int(ref_frames / total_frames · len) samples
// are dropped from the front of the waveform decoded from cat(ref_codes, generated).
std::vector<float> trim_reference(const std::vector<float>& wav, int64_t ref_frames, int64_t total_frames);

// What an adapter folder offers for synthesis (training_meta.json, stored speaker vector, reference sample).
struct AdapterVoice {
    std::string dir;
    std::string language;        // training language if recorded ("" otherwise)
    std::string ref_sample;      // ref_sample.wav path if present
    std::string ref_sample_text; // training_meta.json ref_sample_text
    std::string speaker_file;    // stored speaker embedding file if present
    std::string prompt;          // training_meta.json "prompt": "icl" | "xvector" ("" = not recorded: x-vector)
};
AdapterVoice inspect_adapter_voice(const std::string& dir);
// Reads a stored speaker vector ([enc_dim] fp32) from a safetensors file (the single tensor it holds, or the one
// named "speaker_embedding").
torch::Tensor read_speaker_embedding(const std::string& path);

class Synthesizer {
public:
    explicit Synthesizer(const LoadOptions& opts);
    ~Synthesizer();
    Synthesizer(Synthesizer&&) noexcept;

    SynthResult speak(const Utterance& u, const FrameCallback& on_frame = {});

    // The talker prompt of an utterance (mode resolution, tokenisation, speaker/reference preparation), without
    // generating; exposed for tests and tools.
    struct Prepared {
        PromptRequest request;
        PromptTensors tensors;
        torch::Tensor ref_codes;  // ICL only, [T_ref, 16] CPU
        std::string mode;
        int64_t frame_cap = 0;
    };
    Prepared prepare(const Utterance& u);
    // Whether `u` is spoken with an ICL prompt (its reference is then cut from the waveform, so it cannot stream).
    bool uses_icl(const Utterance& u);

    const model::ModelConfig& config() const;
    const model::GenerationConfig& generation() const;
    model::TTSModel& model();
    const codec::Codec& codec() const;
    const text::Tokenizer& tokenizer() const;
    const std::string& model_dir() const;
    // The adapter currently applied ("" = none) and whether it is merged into the weights.
    const std::string& active_adapter() const;
    bool adapter_merged() const;
    void use_adapter(const std::string& dir);  // "" = none; switches unmerged when another was active

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace alexandria::synth
