#include "alexandria/synth/generate.h"

#include <cmath>
#include <optional>

#include "alexandria/io/error.h"
#include "alexandria/synth/static_decode.h"

namespace alexandria::synth {

model::CodeSampler make_code_sampler(const SamplingParams& params, at::Generator& gen) {
    return [params, &gen](const torch::Tensor& logits, int64_t /*group*/) { return sample(logits, params, gen); };
}

model::CodeSampler make_code_sampler_rows(const SamplingParams& params, const std::vector<at::Generator*>* gens) {
    return [params, gens](const torch::Tensor& logits, int64_t /*group*/) { return sample_rows(logits, params, *gens); };
}

int64_t frame_cap(int64_t content_tokens, int64_t max_frames, const FrameCapRule& rule) {
    auto by_text = static_cast<int64_t>(std::ceil(rule.frames_per_token * static_cast<double>(content_tokens)));
    return std::max<int64_t>(1, std::min(max_frames, std::max(rule.min_frames, by_text)));
}

GenerateResult generate_codes(model::Talker& talker, const PromptTensors& prompt, const GenerateOptions& opts,
                              const FrameCallback& on_frame) {
    if (opts.cuda_graphs && prompt.prefill.device().is_cuda() && cuda_graphs_compiled())
        return generate_codes_static(talker, prompt, opts, on_frame, /*capture=*/true);
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
        if (on_frame) on_frame(n, frame);
        if (opts.logits_hook) opts.logits_hook(logits, n);
        c0 = proc.step(logits, n, gen);
    }
    res.codes = codes.slice(0, 0, n).to(torch::kCPU).clone();
    return res;
}

namespace {

bool same_params(const SamplingParams& a, const SamplingParams& b) {
    return a.do_sample == b.do_sample && a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p;
}
bool same_params(const TalkerSamplingParams& a, const TalkerSamplingParams& b) {
    return same_params(static_cast<const SamplingParams&>(a), static_cast<const SamplingParams&>(b)) &&
           a.repetition_penalty == b.repetition_penalty && a.min_new_tokens == b.min_new_tokens;
}

// One line in a row of the batch.
struct Line {
    GenerateJob job;
    at::Generator gen;
    torch::Tensor codes;  // [cap, G] on the device
    torch::Tensor past;   // [1, H]: the hidden state that predicted c0
    torch::Tensor c0;     // [1]
    int64_t n = 0;        // frames so far
    int64_t cap = 0;
};

// The continuous-batching loop: rows [0, lines.size()) of the caches are in use and stay contiguous.
class BatchRunner {
public:
    BatchRunner(model::Talker& talker, int64_t max_batch, const JobSource& next, const JobDone& done,
                const JobFrame& on_frame)
        : talker_(talker), max_batch_(max_batch), next_(next), done_(done), on_frame_(on_frame) {
        const auto& cfg = talker->config();
        eos_ = cfg.codec_eos_token_id;
        G_ = cfg.num_code_groups;
        V_ = cfg.vocab_size;
        cp_caches_.resize(static_cast<size_t>(max_batch) + 1);
    }

    BatchStats run() {
        for (int64_t row = 0; row < max_batch_ && admit(row); ++row) {}
        while (!lines_.empty()) {
            step();
            retire();
        }
        return stats_;
    }

private:
    // Prefills the next job into `row` (== lines_.size()); false when the source has none left.
    bool admit(int64_t row) {
        GenerateJob job;
        while (!exhausted_ && next_(job)) {
            if (job.opts.max_frames < 1) throw InputError("the frame cap must be at least 1");
            if (!proc_) {
                talker_params_ = job.opts.talker;
                sub_params_ = job.opts.subtalker;
                dev_ = job.prompt.prefill.device();
                proc_.emplace(talker_params_, V_, eos_, max_batch_, dev_);
                sampler_ = make_code_sampler_rows(sub_params_, &gens_);
            } else if (!same_params(job.opts.talker, talker_params_) || !same_params(job.opts.subtalker, sub_params_)) {
                throw Error("generate_batch: every line of a batch must use the same sampling parameters");
            }
            const int64_t T = job.prompt.prefill.size(0), cap = job.opts.max_frames;
            if (!cache_.defined()) {
                cache_ = talker_->make_cache(max_batch_, T + cap);
                cache_.set_ragged(0);
            }
            cache_.reserve(T + cap);
            auto view = cache_.row_view(row);
            auto hidden = talker_->model->forward(job.prompt.prefill.unsqueeze(0), &view);  // [1, T, H]
            cache_.set_row_length(row, T);

            Line l;
            l.gen = make_generator(dev_, job.opts.seed);
            l.past = hidden.select(1, T - 1);
            l.cap = cap;
            auto logits = talker_->codec_logits(l.past).to(torch::kFloat32);
            if (job.opts.logits_hook) job.opts.logits_hook(logits, 0);
            proc_->reset_row(row);
            l.c0 = proc_->step_rows(logits, row, {0}, {&l.gen});
            l.job = std::move(job);
            ++stats_.lines;
            if (l.c0.item<int64_t>() == eos_) {  // ends before its first frame (only when min_new_tokens is 0)
                finish(l, false);
                continue;
            }
            l.codes = torch::empty({cap, G_}, torch::TensorOptions().dtype(torch::kLong).device(dev_));
            lines_.push_back(std::move(l));
            cache_.set_active(static_cast<int64_t>(lines_.size()));
            return true;
        }
        exhausted_ = true;
        return false;
    }

    void finish(Line& l, bool hit_cap) {
        GenerateResult res;
        res.prompt_rows = l.job.prompt.prefill.size(0);
        res.hit_cap = hit_cap;
        res.codes = l.codes.defined() ? l.codes.slice(0, 0, l.n).to(torch::kCPU).clone()
                                      : torch::empty({0, G_}, torch::TensorOptions().dtype(torch::kLong));
        done_(l.job.id, std::move(res));
    }

    // One frame for every row: code predictor, frame embedding, one talker position, code 0 of the next frame.
    void step() {
        const int64_t n = static_cast<int64_t>(lines_.size());
        std::vector<torch::Tensor> pasts, c0s, rows_in;
        gens_.clear();
        for (auto& l : lines_) {
            pasts.push_back(l.past);
            c0s.push_back(l.c0);
            gens_.push_back(&l.gen);
        }
        auto& cp_cache = cp_caches_[static_cast<size_t>(n)];
        if (!cp_cache.defined()) cp_cache = talker_->code_predictor->make_cache(n);
        auto frame = talker_->predict_frame(torch::cat(pasts), torch::cat(c0s), cp_cache, sampler_);  // [n, G]
        for (int64_t b = 0; b < n; ++b) {
            auto& l = lines_[size_t(b)];
            l.codes[l.n].copy_(frame[b]);
            const auto& p = l.job.prompt;
            rows_in.push_back(l.n < p.trailing.size(0) ? p.trailing[l.n] : p.pad);
        }
        auto next = talker_->frame_embed(frame) + torch::stack(rows_in);  // [n, H]
        auto hidden = talker_->model->forward(next.unsqueeze(1), &cache_, {}, cache_.positions());
        auto past = hidden.select(1, 0);
        auto logits = talker_->codec_logits(past).to(torch::kFloat32);
        std::vector<int64_t> generated;
        for (int64_t b = 0; b < n; ++b) {
            auto& l = lines_[size_t(b)];
            ++l.n;
            generated.push_back(l.n);
            if (on_frame_) on_frame_(l.job.id, l.n, frame.narrow(0, b, 1));
            if (l.job.opts.logits_hook) {
                auto row = logits.narrow(0, b, 1), orig = row;
                l.job.opts.logits_hook(row, l.n);
                if (!row.is_same(orig)) orig.copy_(row);
            }
        }
        auto c0 = proc_->step_rows(logits, 0, generated, gens_);
        for (int64_t b = 0; b < n; ++b) {
            lines_[size_t(b)].past = past.narrow(0, b, 1);
            lines_[size_t(b)].c0 = c0.narrow(0, b, 1);
        }
        ++stats_.steps;
        stats_.frames += n;
    }

    // Ends the rows that sampled EOS or reached their cap (the one host sync of the step), keeps the remaining
    // rows contiguous (the last row moves into a freed one; rows are slots, their order does not matter) and
    // refills the freed rows from the source.
    void retire() {
        std::vector<torch::Tensor> c0s;
        for (auto& l : lines_) c0s.push_back(l.c0);
        auto c0 = torch::cat(c0s).to(torch::kCPU);
        const auto* ids = c0.data_ptr<int64_t>();
        for (int64_t b = static_cast<int64_t>(lines_.size()) - 1; b >= 0; --b) {
            auto& l = lines_[size_t(b)];
            const bool eos = ids[b] == eos_;
            if (!eos && l.n < l.cap) continue;
            finish(l, !eos);
            const int64_t last = static_cast<int64_t>(lines_.size()) - 1;
            if (b != last) {  // rows after b are already checked, so the moved line is alive
                cache_.move_row(last, b);
                proc_->move_row(last, b);
                lines_[size_t(b)] = std::move(lines_[size_t(last)]);
            }
            lines_.pop_back();
            cache_.set_active(static_cast<int64_t>(lines_.size()));
        }
        for (auto row = static_cast<int64_t>(lines_.size()); row < max_batch_ && admit(row); ++row) {}
    }

    model::Talker& talker_;
    int64_t max_batch_;
    const JobSource& next_;
    const JobDone& done_;
    const JobFrame& on_frame_;
    int64_t eos_ = 0, G_ = 0, V_ = 0;
    torch::Device dev_ = torch::kCPU;
    TalkerSamplingParams talker_params_;
    SamplingParams sub_params_;
    std::optional<TalkerLogitsProcessor> proc_;
    model::CodeSampler sampler_;
    std::vector<at::Generator*> gens_;
    model::KVCache cache_;
    std::vector<model::KVCache> cp_caches_;
    std::vector<Line> lines_;
    bool exhausted_ = false;
    BatchStats stats_;
};

}  // namespace

int64_t default_batch(torch::Device device) { return device.is_cpu() ? 8 : 32; }

BatchStats generate_batch(model::Talker& talker, int64_t max_batch, const JobSource& next, const JobDone& done,
                          const JobFrame& on_frame) {
    torch::NoGradGuard no_grad;
    if (max_batch < 1) throw InputError("the batch size must be at least 1");
    BatchRunner r(talker, max_batch, next, done, on_frame);
    return r.run();
}

}  // namespace alexandria::synth
