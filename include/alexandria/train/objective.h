#pragma once
// One teacher-forced forward over a (padded) batch and both objectives' losses from it (DESIGN §6).
//
// Each sample's rows come from build_layout(); a batch is right-padded with zero rows and an attention mask, so
// every sample keeps positions 0..len-1 and sees only its own rows (causal + key mask), i.e. the same numbers as
// a forward of that sample alone. Losses are per sample (talker CE mean over the sample's targets, sub CE mean over
// its frames × scored heads, total = talker + 0.3 · sub), for both objectives from the same logits; the value to
// back-propagate is Σ_samples weight · total(chosen objective).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "alexandria/model/talker.h"
#include "alexandria/train/layout.h"

namespace alexandria::train {

struct Sample {
    std::string name;              // the clip as written in the metadata (for messages)
    std::vector<int64_t> role;     // 3 role ids
    std::vector<int64_t> content;  // text content ids t_0..t_{M-1}
    torch::Tensor codes;           // [N, 16] int64, CPU
    int64_t frames() const { return codes.size(0); }
};

struct ObjectiveLoss {
    double total = 0, talker = 0, sub = 0;
};
struct SampleLoss {
    ObjectiveLoss alexandria, aligned;
    const ObjectiveLoss& of(Objective o) const { return o == Objective::Aligned ? aligned : alexandria; }
};

struct BatchLoss {
    torch::Tensor backward_loss;        // scalar fp32: Σ_i weight · total_i of the chosen objective
    std::vector<SampleLoss> samples;    // detached values, one per sample
    bool finite = true;                 // every value finite
};

// What the prompt needs besides the sample: the ids, the codec prefix (language form), the speaker vector
// ([H], inserted raw in its row) and, in ICL mode, the reference transcript and codes shared by every sample.
struct PromptContext {
    LayoutIds ids;
    std::vector<int64_t> prefix;
    torch::Tensor speaker;  // on the model's device, model dtype
    PromptMode mode = PromptMode::XVector;
    std::vector<int64_t> ref_content;  // ICL: the reference template's ids[3:-2] (text::encode_reference_text)
    torch::Tensor ref_codes;           // ICL: [R, 16] int64
};

// The layout of one sample in the context's prompt mode (build_layout or build_icl_layout).
Layout sample_layout(const PromptContext& ctx, const Sample& sample, Objective objective);

// [S, H] input rows of one sample, on the talker's device and dtype (no autograd: only LoRA weights train, and
// they are not on the embedding path). ref_codes: [R, 16], needed when the layout has reference frames.
torch::Tensor embed_layout(model::Talker& talker, const Layout& layout, const torch::Tensor& codes,
                           const torch::Tensor& speaker, const torch::Tensor& ref_codes = {});

// One sample as the talker sees it in training: its layout (positions of every scored target) and its input
// embeddings [S, H]. For comparisons against the official prefill (the parity suite) and tests.
struct SampleInputs {
    Layout layout;
    torch::Tensor embeds;
};
SampleInputs sample_inputs(model::Talker& talker, const PromptContext& ctx, const Sample& sample,
                           Objective objective);

// One forward over `batch` (1..B samples) and both objectives. `weight` scales each sample's chosen total in
// backward_loss (1/(batch·grad_accum) in training, so a batch of B equals B accumulated single samples).
BatchLoss batch_loss(model::Talker& talker, const PromptContext& ctx, const std::vector<const Sample*>& batch,
                     Objective chosen, double weight);

}  // namespace alexandria::train
