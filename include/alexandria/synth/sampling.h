#pragma once
// Logits processing and sampling exactly as the reference's Hugging Face `generate` (transformers 4.57) applies it
// to Qwen3-TTS (spec model-talker.md §6.3, §6.7):
//
//   talker code 0:   repetition penalty (generated code-0s) → min_new_tokens (EOS blocked) → suppress
//                    2048..3071 except EOS → temperature → top-k → top-p → softmax → multinomial
//   code predictor:  temperature → top-k → top-p → softmax → multinomial (its own "subtalker" values)
//
// Each processor is a free function working in place on fp32 logits [B, V], so a test can feed it crafted logits.
// As in Hugging Face, a warper whose value makes it a no-op (temperature 1, top-k 0, top-p 1) is skipped, and the
// warpers are applied only when sampling (greedy = argmax of the penalised/suppressed logits).
#include <cstdint>
#include <vector>

#include <ATen/core/Generator.h>
#include <torch/torch.h>

#include "alexandria/model/config.h"

namespace alexandria::synth {

struct SamplingParams {
    bool do_sample = true;
    double temperature = 0.9;
    int64_t top_k = 50;   // 0 = off
    double top_p = 1.0;   // 1 = off
};

struct TalkerSamplingParams : SamplingParams {
    double repetition_penalty = 1.05;  // 1 = off
    int64_t min_new_tokens = 2;        // frames before EOS may be sampled (hard-coded upstream)
};

// The checkpoint's generation_config.json values (talker and "subtalker"); `greedy` turns sampling off for both.
TalkerSamplingParams talker_params(const model::GenerationConfig& g, bool greedy = false);
SamplingParams subtalker_params(const model::GenerationConfig& g, bool greedy = false);

// ---- processors (in place on fp32 logits [B, V]) ----------------------------------------------------------------
// Hugging Face's RepetitionPenaltyLogitsProcessor: for every id in `history` [B, n] (int64), the score s becomes
// s·penalty when s < 0 and s/penalty otherwise; an id that occurs several times is penalised once.
void apply_repetition_penalty(torch::Tensor& logits, const torch::Tensor& history, double penalty);
// The same with the history as a [B, V] bool mask of ids seen so far (what the decode loop keeps: no growing list).
void apply_repetition_penalty_mask(torch::Tensor& logits, const torch::Tensor& seen, double penalty);
// MinNewTokensLengthLogitsProcessor: EOS = -inf while fewer than `min_new_tokens` tokens were generated.
void apply_min_new_tokens(torch::Tensor& logits, int64_t eos_id, int64_t generated, int64_t min_new_tokens);
// SuppressTokensLogitsProcessor: -inf where `suppress` [V] (bool) is true.
void apply_suppression(torch::Tensor& logits, const torch::Tensor& suppress);
// The [V] mask the reference builds: ids [vocab-1024, vocab) except EOS (2048..3071 \ {2150} for the real talker).
torch::Tensor talker_suppress_mask(int64_t vocab_size, int64_t eos_id, torch::Device device = torch::kCPU);
void apply_temperature(torch::Tensor& logits, double temperature);
// TopKLogitsWarper: keeps every logit ≥ the k-th largest (ties at the boundary are all kept).
void apply_top_k(torch::Tensor& logits, int64_t top_k);
// TopPLogitsWarper: sorts ascending, removes the tokens whose cumulative probability is ≤ 1 - top_p, always keeps
// the `min_keep` most likely.
void apply_top_p(torch::Tensor& logits, double top_p, int64_t min_keep = 1);
// The warpers of `p` in Hugging Face's order (only when p.do_sample).
void apply_warpers(torch::Tensor& logits, const SamplingParams& p);

// softmax + multinomial with `gen` when sampling, else argmax → [B] int64 on the logits' device.
torch::Tensor pick_token(const torch::Tensor& logits, bool do_sample, at::Generator& gen);
// pick_token() without torch::multinomial's host-side validity checks (which a CUDA graph cannot hold): the same
// draw multinomial makes for one sample, argmax(probs / Exp(1) noise) from `gen`.
torch::Tensor pick_token_graph_safe(const torch::Tensor& logits, bool do_sample, at::Generator& gen);
// The same for batched lines: row b draws from gens[b] exactly as pick_token() would on that row alone, so a line's
// draws never depend on its batch neighbours.
torch::Tensor pick_token_rows(const torch::Tensor& logits, bool do_sample, const std::vector<at::Generator*>& gens);

// The warpers of `p` and the draw together, row b drawing from gens[b] (argmax when !p.do_sample): what
// apply_warpers() then pick_token_rows() give, the same draws from the same seeds (up to the rounding of a
// near-tie), and a line's draws never depend on its neighbours. On the CPU each row is one pass over its values
// plus multinomial's noise rather than a dozen libtorch operations; elsewhere it is those operations. `logits`
// is not modified.
torch::Tensor sample_rows(const torch::Tensor& logits, const SamplingParams& p, const std::vector<at::Generator*>& gens);
torch::Tensor sample(const torch::Tensor& logits, const SamplingParams& p, at::Generator& gen);

// A generator for `device` seeded with `seed`: a fresh CPU generator, or the device's default generator reseeded
// (so no CUDA header is needed here). Reseeding per utterance makes a line's audio independent of earlier lines.
at::Generator make_generator(torch::Device device, uint64_t seed);

// The talker's code-0 processing for one utterance, with the penalty history kept as a [B, V] mask on the device
// (updated without a host sync).
class TalkerLogitsProcessor {
public:
    TalkerLogitsProcessor(const TalkerSamplingParams& params, int64_t vocab_size, int64_t eos_id, int64_t batch,
                          torch::Device device);
    // logits [B, V] fp32 (modified in place) for the step that has already generated `generated` tokens →
    // chosen ids [B]; the ids are added to the history.
    torch::Tensor step(torch::Tensor& logits, int64_t generated, at::Generator& gen);
    // Everything before the warpers (penalty, min tokens, suppression), for tests.
    void process(torch::Tensor& logits, int64_t generated) const;
    void observe(const torch::Tensor& ids);
    void reset();

    // Batched lines: rows [first, first + n) of the history hold n lines, line b having generated generated[b]
    // tokens and drawing from gens[b]. Each row is processed exactly as step() processes a line alone.
    torch::Tensor step_rows(torch::Tensor& logits, int64_t first, const std::vector<int64_t>& generated,
                            const std::vector<at::Generator*>& gens);
    void reset_row(int64_t row);
    void move_row(int64_t from, int64_t to);
    const TalkerSamplingParams& params() const { return params_; }

private:
    TalkerSamplingParams params_;
    int64_t eos_id_;
    torch::Tensor seen_;      // [B, V] bool
    torch::Tensor suppress_;  // [V] bool
};

}  // namespace alexandria::synth
