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
#include <functional>
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
using model::kSpeakerEmbeddingFile;
using model::kTrainingMetaFile;
using model::kRefSampleFile;
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
    // Merged stays the default in bf16 too (issue 13, measured on the tiny parity model, PEFT and ours, adapter
    // deltas of 0.3-10% of the weights' rms): merged-vs-unmerged drift is the size of bf16 compute's own noise —
    // logits 0.78-0.82% from an fp32 reference merged against 0.77-0.81% unmerged, and the adapter's effect kept
    // equally well (rel. error 0.73 vs 0.72 at 1%, 0.079 vs 0.078 at 10%); the deltas lost to rounding W are no
    // larger than the bf16 rounding of the unmerged sum.
    bool merge_adapter = true;
    // CPU with dtype fp32: keep the linear and embedding weights in bf16 when the checkpoint stores them in bf16
    // (lossless; half the bytes per decode step and about half the memory), computing in fp32.
    bool narrow_weights = true;
    // CPU only (`--dtype int8`): the linear weights quantized to int8 per output row and decoding reads those
    // (kernels.h Int8Weight): half the bytes per step of bf16, at the cost of a rounding per weight (the drift is in
    // docs/benchmarks.md). The bf16 weights are then freed, so adapters run unmerged (merge_adapter is ignored).
    bool int8_weights = false;
    // CUDA only: capture the decode step in CUDA graphs (GenerateOptions::cuda_graphs).
    bool cuda_graphs = true;
    // The codec's dtype. fp32 by default, although the official pipelines run it in the model dtype (bf16 on GPU).
    // Drift of bf16 from fp32 (issue 13; official codec on the tiny parity weights, 4 s of a real clip; test_parity
    // "[precision]" prints ours): decoding 43.8 dB SNR (max abs 2.0e-3 at peak 0.14); encoding (ICL references)
    // keeps only 29% of the codes (codebook 0: 98%), as the residual codebooks cascade.
    torch::Dtype codec_dtype = torch::kFloat32;
};

struct Utterance {
    std::string text;
    std::string language;  // "" = the adapter's training language if recorded, else "auto"
    std::string speaker;   // CustomVoice speaker
    std::string instruct;  // instruct block / VoiceDesign description
    std::string ref_audio, ref_text;  // clone reference (any rate; resampled to 24 kHz)
    // The ICL reference's codec codes [T, 16] when already known (a cache, a test's fixture): used instead of
    // encoding the reference audio (which still gives the speaker vector).
    torch::Tensor ref_codes;
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

// What an adapter folder offers for synthesis: model/adapter_files.h (read without libtorch).
using model::AdapterVoice;
using model::inspect_adapter_voice;
// Reads a stored speaker vector ([enc_dim] fp32) from a safetensors file (the single tensor it holds, or the one
// named "speaker_embedding").
torch::Tensor read_speaker_embedding(const std::string& path);

// Codes → audio in blocks through the codec's incremental decoder (the decoder is causal, so a block's samples are
// final when it arrives): a first block of `first` frames, then blocks of `block`. speak() decodes the same way, so
// audio streamed while generating is bit for bit the audio speak() returns. The first block is short (4 frames,
// 0.32 s of audio) so that streamed audio starts early; later ones are 12 frames (0.96 s), where a block's fixed
// cost (the decoder's low-rate weights are read once per block) is spread over more audio.
constexpr int64_t kFirstAudioFrames = 4;
constexpr int64_t kAudioBlockFrames = 12;
class AudioStream {
public:
    explicit AudioStream(const codec::Codec& codec, int64_t block = kAudioBlockFrames, int64_t first = kFirstAudioFrames);
    // frames [n, 16] (any device) → the samples of every block completed by them (possibly none).
    std::vector<float> push(const torch::Tensor& frames);
    // The samples of the last, partial block.
    std::vector<float> finish();

private:
    int64_t next_block() const { return dec_.frames_decoded() == 0 ? first_ : block_; }
    codec::IncrementalDecoder dec_;
    std::vector<torch::Tensor> pending_;
    int64_t pending_frames_ = 0, block_, first_;
};
std::vector<float> decode_in_blocks(const codec::Codec& codec, const torch::Tensor& codes,
                                    int64_t block = kAudioBlockFrames, int64_t first = kFirstAudioFrames);

// A line of speak_batch(): its result, or why it failed (the message of the InputError/Error it raised).
struct BatchLineResult {
    SynthResult result;
    std::string error;
    bool bad_input = false;  // the error is the input's (an InputError: a bad language, voice, reference, ...)
};
using BatchLineCallback = std::function<void(size_t index, BatchLineResult&& line)>;

class Synthesizer {
public:
    explicit Synthesizer(const LoadOptions& opts);
    ~Synthesizer();
    Synthesizer(Synthesizer&&) noexcept;

    SynthResult speak(const Utterance& u, const FrameCallback& on_frame = {});
    // Speaks `us` with up to `batch` lines sharing each decode step (generate_batch): every line keeps its own
    // cache, seed and stop, so its audio is what speak() gives it alone. Lines are admitted in order; a run of
    // lines that use another adapter (or another greedy setting) starts once the current lines have drained.
    // on_line(index into us, result or error) is called as each line finishes (completion order). A line whose
    // preparation fails is reported failed and the others go on.
    // batch 0: batch_size(0), the device's default.
    void speak_batch(const std::vector<Utterance>& us, int64_t batch, const BatchLineCallback& on_line);
    // The lines rendered at once for a requested batch: itself, or default_batch() of the device for 0.
    int64_t batch_size(int64_t requested) const;

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
    const LoadOptions& load_options() const;
    // Whether the weights are held in bf16 with fp32 compute (LoadOptions::narrow_weights applied).
    bool weights_narrow() const;
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
