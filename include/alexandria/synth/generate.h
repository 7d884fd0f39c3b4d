#pragma once
// The decode loop (spec model-talker.md §6.2, §4.3): prefill the talker on the prompt, then per frame sample code 0
// from the talker, codes 1..15 from the code predictor, and feed F(frame) + the next trailing text row back.
//
// Performance rules: one static talker KV cache sized prompt + cap, one code-predictor cache reused every frame,
// the output codes written into a preallocated [cap, G] tensor on the device, and exactly one host sync per frame
// (reading code 0 for the EOS check).
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "alexandria/model/talker.h"
#include "alexandria/synth/prompt.h"
#include "alexandria/synth/sampling.h"

namespace alexandria::synth {

struct GenerateOptions {
    TalkerSamplingParams talker;
    SamplingParams subtalker;
    // Frames produced at most (the cap); EOS may end it earlier. Unlike HF's max_new_tokens, which counts sampled
    // code-0 tokens (so N gives at most N-1 frames), this counts frames.
    int64_t max_frames = 2048;
    uint64_t seed = 0;
    // Optional: sees the raw fp32 code-0 logits [1, V] of step t (t = 0 predicts frame 0) before any processing
    // and may change them in place. Tests force or forbid EOS with it; empty in normal use.
    std::function<void(torch::Tensor& logits, int64_t step)> logits_hook;
    // On CUDA (builds with ALEXANDRIA_CUDA): run the code predictor's loop and the talker step as captured CUDA
    // graphs (static_decode.h). false = plain eager kernels. No effect on the CPU.
    bool cuda_graphs = true;
};

struct GenerateResult {
    torch::Tensor codes;   // [frames, G] int64 on the CPU (EOS excluded)
    bool hit_cap = false;  // stopped by max_frames, not by EOS
    int64_t prompt_rows = 0;
};

// Called after each frame with the number of frames so far and that frame's codes [1, G] (on the model's device):
// progress, or streaming audio through codec::IncrementalDecoder. May be empty.
using FrameCallback = std::function<void(int64_t frames, const torch::Tensor& frame)>;

// One utterance (batch 1). The generator is created from opts.seed here, so the result depends only on the
// prompt, the weights and the options.
GenerateResult generate_codes(model::Talker& talker, const PromptTensors& prompt, const GenerateOptions& opts,
                              const FrameCallback& on_frame = {});

// The code-predictor sampler of `params` drawing from `gen` (a model::CodeSampler).
model::CodeSampler make_code_sampler(const SamplingParams& params, at::Generator& gen);
// The same for batched lines: row b draws from (*gens)[b]; the vector may change between calls.
model::CodeSampler make_code_sampler_rows(const SamplingParams& params, const std::vector<at::Generator*>* gens);

// ---- several lines at once (continuous batching) ------------------------------------------------------------
// Up to `max_batch` lines share every decode step (one matrix product per weight for all of them), each with its
// own KV cache row, its own generator (seeded from its own opts.seed), its own frame cap and its own stop. When a
// line ends, its row is refilled with the next job at once, so the batch stays full until the jobs run out.
// A line's codes never depend on its neighbours: greedy codes equal generate_codes() of that line alone, and sampled
// ones too for the same seed (each row draws from its own generator with the same calls), up to the rounding of
// differently shaped matrix products (a code can only differ where two candidates are within rounding of a tie).
// All jobs of one call must use the same talker/subtalker sampling parameters.
struct GenerateJob {
    int64_t id = 0;  // the caller's handle, passed back
    PromptTensors prompt;
    GenerateOptions opts;
};
// Fills `job` with the next line; false when there is none (for now: the call ends once the rows drain).
using JobSource = std::function<bool(GenerateJob& job)>;
// A line has ended (EOS or its cap): its result, codes on the CPU.
using JobDone = std::function<void(int64_t id, GenerateResult&& result)>;
// After each frame of a line: frames so far and that frame [1, G] on the model's device.
using JobFrame = std::function<void(int64_t id, int64_t frames, const torch::Tensor& frame)>;

// Lines rendered at once when the user does not say: 8 on the CPU, 32 on a GPU. (0.6B on the 2-core build machine:
// 8 lines ~13 frames/s, 1.05x real time; 16 lines ~15 frames/s for twice the KV-cache memory and each line at
// half the speed, so 16 is for long scripts: `--batch 16`.)
int64_t default_batch(torch::Device device);

struct BatchStats {
    int64_t steps = 0;   // batched decode steps
    int64_t frames = 0;  // frames generated, all lines
    int64_t lines = 0;
};
BatchStats generate_batch(model::Talker& talker, int64_t max_batch, const JobSource& next, const JobDone& done,
                          const JobFrame& on_frame = {});

// The frame cap for a text of `content_tokens` tokens (the runaway guard): min(max_frames,
// max(min_frames, ceil(frames_per_token · tokens))).
// Measured rate: the two real reference clips in shared/reference/voices speak their transcripts at 4.1 (sion:
// 47 tokens, 15.6 s) and 3.7 (watson: 52 tokens, 15.3 s) frames per token, silences included. 6 frames per token
// leaves ~1.5x for slow or instructed ("slow, even narration") speech, while a runaway (no EOS) is stopped long
// before the reference's 2048/8192-frame limits; 64 frames (5.1 s) covers very short lines ("Oh!", "1次"), where
// runaways are most common and token counts say little.
struct FrameCapRule {
    double frames_per_token = 6.0;
    int64_t min_frames = 64;
};
int64_t frame_cap(int64_t content_tokens, int64_t max_frames, const FrameCapRule& rule = {});

}  // namespace alexandria::synth
