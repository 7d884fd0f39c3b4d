#include "alexandria/synth/static_decode.h"

#include <functional>
#include <optional>

#include "alexandria/io/error.h"

#ifdef ALEXANDRIA_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace alexandria::synth {

namespace {

// Runs `fn` eagerly, or — once warmed up — records it into a CUDA graph on the first call and replays it after.
class Piece {
public:
    explicit Piece(std::function<void()> fn) : fn_(std::move(fn)) {}
    void run(bool capture) {
#ifdef ALEXANDRIA_CUDA
        if (capture) {
            if (calls_++ == 0) return fn_();  // warm-up (cuBLAS workspaces, lazy inits) outside the graph
            if (!graph_) {
                graph_.emplace();
                graph_->capture_begin();
                fn_();
                graph_->capture_end();
            }
            return graph_->replay();
        }
#else
        (void)capture;
#endif
        fn_();
    }

private:
    std::function<void()> fn_;
#ifdef ALEXANDRIA_CUDA
    // Made on first capture only: constructing a CUDAGraph initialises CUDA, which fails where there is no driver
    // (a CUDA build running on the CPU).
    std::optional<at::cuda::CUDAGraph> graph_;
    int calls_ = 0;
#endif
};

}  // namespace

bool cuda_graphs_compiled() {
#ifdef ALEXANDRIA_CUDA
    return true;
#else
    return false;
#endif
}

GenerateResult generate_codes_static(model::Talker& talker, const PromptTensors& prompt, const GenerateOptions& opts,
                                     const FrameCallback& on_frame, bool capture) {
    torch::NoGradGuard no_grad;
    if (opts.max_frames < 1) throw InputError("the frame cap must be at least 1");
    const auto& cfg = talker->config();
    const int64_t eos = cfg.codec_eos_token_id, G = cfg.num_code_groups, V = cfg.vocab_size;
    const int64_t T = prompt.prefill.size(0), H = prompt.prefill.size(1), cap = opts.max_frames;
    const int64_t L = prompt.trailing.size(0);
    const torch::Device dev = prompt.prefill.device();
    capture = capture && dev.is_cuda() && cuda_graphs_compiled();
#ifdef ALEXANDRIA_CUDA
    // Capture cannot happen on the legacy default stream.
    std::optional<c10::cuda::CUDAStreamGuard> stream;
    if (capture) stream.emplace(c10::cuda::getStreamFromPool(false, dev.index()));
#endif
    const auto lopt = torch::TensorOptions().dtype(torch::kLong).device(dev);

    model::KVCache cache = talker->make_cache(1, T + cap);
    model::KVCache cp_cache = talker->code_predictor->make_cache(1);
    at::Generator gen = make_generator(dev, opts.seed);
    TalkerLogitsProcessor proc(opts.talker, V, eos, 1, dev);
    const SamplingParams sub = opts.subtalker;
    model::CodeSampler sampler = [sub, &gen](const torch::Tensor& logits, int64_t) {
        if (!sub.do_sample) return logits.argmax(-1);
        auto l = logits.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
        apply_warpers(l, sub);
        return pick_token_graph_safe(l, true, gen);
    };
    auto codes = torch::empty({cap, G}, lopt);

    // The prompt goes through the ordinary (growing) cache form, then the cache turns static.
    auto hidden = talker->model->forward(prompt.prefill.unsqueeze(0), &cache);
    auto pos = torch::full({1}, T, lopt);
    cache.set_static(pos);

    // Static buffers: the pieces read and write only these.
    auto past = hidden.select(1, T - 1).clone();  // [1, H]
    auto c0 = torch::zeros({1}, lopt);
    auto text_row = torch::empty({1, H}, past.options());
    torch::Tensor frame, logits;
    Piece code_predictor([&] { frame = talker->predict_frame(past, c0, cp_cache, sampler); });
    Piece talker_step([&] {
        auto next = talker->frame_embed(frame) + text_row;
        auto h = talker->model->forward(next.view({1, 1, H}), &cache, {}, pos.view({1, 1}));
        past.copy_(h.select(1, 0));
        logits = talker->codec_logits(past).to(torch::kFloat32);
        pos.add_(1);
    });

    auto l0 = talker->codec_logits(past).to(torch::kFloat32);
    if (opts.logits_hook) opts.logits_hook(l0, 0);
    c0.copy_(proc.step(l0, 0, gen));

    GenerateResult res;
    res.prompt_rows = T;
    int64_t n = 0;
    while (true) {
        if (c0.item<int64_t>() == eos) break;  // the one host sync of the frame
        if (n == cap) {
            res.hit_cap = true;
            break;
        }
        code_predictor.run(capture);
        codes[n].copy_(frame[0]);
        text_row.copy_(n < L ? prompt.trailing[n].unsqueeze(0) : prompt.pad.unsqueeze(0));
        talker_step.run(capture);
        ++n;
        if (on_frame) on_frame(n, frame);
        // The code-0 processing stays outside the graphs: it depends on host counters (min_new_tokens, hooks).
        auto l = logits.clone();
        if (opts.logits_hook) opts.logits_hook(l, n);
        c0.copy_(proc.step(l, n, gen));
    }
    res.codes = codes.slice(0, 0, n).to(torch::kCPU).clone();
    return res;
}

}  // namespace alexandria::synth
