#include "alexandria/synth/generate.h"

#include <cmath>

#include "alexandria/io/error.h"

namespace alexandria::synth {

model::CodeSampler make_code_sampler(const SamplingParams& params, at::Generator& gen) {
    return [params, &gen](const torch::Tensor& logits, int64_t /*group*/) {
        if (!params.do_sample) return logits.argmax(-1);
        // The warpers work in place; the logits may be a view the model keeps, so work on an fp32 copy.
        auto l = logits.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
        apply_warpers(l, params);
        return pick_token(l, true, gen);
    };
}

int64_t frame_cap(int64_t content_tokens, int64_t max_frames, const FrameCapRule& rule) {
    auto by_text = static_cast<int64_t>(std::ceil(rule.frames_per_token * static_cast<double>(content_tokens)));
    return std::max<int64_t>(1, std::min(max_frames, std::max(rule.min_frames, by_text)));
}

GenerateResult generate_codes(model::Talker& talker, const PromptTensors& prompt, const GenerateOptions& opts,
                              const FrameCallback& on_frame) {
    torch::NoGradGuard no_grad;
    if (opts.max_frames < 1) throw InputError("the frame cap must be at least 1");
    const auto& cfg = talker->config();
    const int64_t eos = cfg.codec_eos_token_id, G = cfg.num_code_groups, V = cfg.vocab_size;
    const int64_t T = prompt.prefill.size(0), H = prompt.prefill.size(1), cap = opts.max_frames;
    const int64_t L = prompt.trailing.size(0);
    const torch::Device dev = prompt.prefill.device();

    // Static caches: the talker's holds the prompt and every frame; the code predictor's is refilled per frame.
    model::KVCache cache = talker->make_cache(1, T + cap);
    model::KVCache cp_cache = talker->code_predictor->make_cache(1);
    at::Generator gen = make_generator(dev, opts.seed);
    TalkerLogitsProcessor proc(opts.talker, V, eos, 1, dev);
    model::CodeSampler sampler = make_code_sampler(opts.subtalker, gen);
    auto codes = torch::empty({cap, G}, torch::TensorOptions().dtype(torch::kLong).device(dev));

    auto hidden = talker->model->forward(prompt.prefill.unsqueeze(0), &cache);  // [1, T, H]
    auto past = hidden.select(1, T - 1);                                        // [1, H]
    auto logits = talker->codec_logits(past).to(torch::kFloat32);
    if (opts.logits_hook) opts.logits_hook(logits, 0);
    auto c0 = proc.step(logits, 0, gen);

    GenerateResult res;
    res.prompt_rows = T;
    int64_t n = 0;
    while (true) {
        if (c0.item<int64_t>() == eos) break;  // the one host sync of the frame
        if (n == cap) {
            res.hit_cap = true;
            break;
        }
        auto frame = talker->predict_frame(past, c0, cp_cache, sampler);  // [1, G]
        codes[n].copy_(frame[0]);
        auto next = talker->frame_embed(frame) + (n < L ? prompt.trailing[n] : prompt.pad);  // [1, H]
        hidden = talker->model->forward(next.view({1, 1, H}), &cache);
        past = hidden.select(1, 0);
        logits = talker->codec_logits(past).to(torch::kFloat32);
        ++n;
        if (opts.logits_hook) opts.logits_hook(logits, n);
        c0 = proc.step(logits, n, gen);
        if (on_frame) on_frame(n);
    }
    res.codes = codes.slice(0, 0, n).to(torch::kCPU).clone();
    return res;
}

}  // namespace alexandria::synth
