#pragma once
// The decode loop (spec model-talker.md §6.2, §4.3): prefill the talker on the prompt, then per frame sample code 0
// from the talker, codes 1..15 from the code predictor, and feed F(frame) + the next trailing text row back.
//
// Performance rules: one static talker KV cache sized prompt + cap, one code-predictor cache reused every frame,
// the output codes written into a preallocated [cap, G] tensor on the device, and exactly one host sync per frame
// (reading code 0 for the EOS check).
#include <cstdint>
#include <functional>

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
};

struct GenerateResult {
    torch::Tensor codes;   // [frames, G] int64 on the CPU (EOS excluded)
    bool hit_cap = false;  // stopped by max_frames, not by EOS
    int64_t prompt_rows = 0;
};

// Called after each frame with the number of frames so far (for progress); may be empty.
using FrameCallback = std::function<void(int64_t frames)>;

// One utterance (batch 1). The generator is created from opts.seed here, so the result depends only on the
// prompt, the weights and the options.
GenerateResult generate_codes(model::Talker& talker, const PromptTensors& prompt, const GenerateOptions& opts,
                              const FrameCallback& on_frame = {});

// The code-predictor sampler of `params` drawing from `gen` (a model::CodeSampler).
model::CodeSampler make_code_sampler(const SamplingParams& params, at::Generator& gen);

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
