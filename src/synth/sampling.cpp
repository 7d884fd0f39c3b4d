#include "alexandria/synth/sampling.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "alexandria/io/error.h"

namespace alexandria::synth {

namespace {
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_temperature(double temperature) {
    if (!(temperature > 0)) throw InputError(fmt::format("temperature must be > 0, got {}", temperature));
}
}  // namespace

TalkerSamplingParams talker_params(const model::GenerationConfig& g, bool greedy) {
    TalkerSamplingParams p;
    p.do_sample = g.do_sample && !greedy;
    p.temperature = g.temperature;
    p.top_k = g.top_k;
    p.top_p = g.top_p;
    p.repetition_penalty = g.repetition_penalty;
    return p;
}

SamplingParams subtalker_params(const model::GenerationConfig& g, bool greedy) {
    SamplingParams p;
    p.do_sample = g.subtalker_dosample && !greedy;
    p.temperature = g.subtalker_temperature;
    p.top_k = g.subtalker_top_k;
    p.top_p = g.subtalker_top_p;
    return p;
}

void apply_repetition_penalty(torch::Tensor& logits, const torch::Tensor& history, double penalty) {
    if (penalty == 1.0 || !history.defined() || history.numel() == 0) return;
    // gather → rescale → scatter: duplicates gather the same original score, so each id is penalised once.
    auto score = logits.gather(1, history);
    score = torch::where(score < 0, score * penalty, score / penalty);
    logits.scatter_(1, history, score);
}

void apply_repetition_penalty_mask(torch::Tensor& logits, const torch::Tensor& seen, double penalty) {
    if (penalty == 1.0) return;
    auto penalised = torch::where(logits < 0, logits * penalty, logits / penalty);
    logits.copy_(torch::where(seen, penalised, logits));
}

void apply_min_new_tokens(torch::Tensor& logits, int64_t eos_id, int64_t generated, int64_t min_new_tokens) {
    if (generated < min_new_tokens) logits.select(1, eos_id).fill_(kNegInf);
}

void apply_suppression(torch::Tensor& logits, const torch::Tensor& suppress) {
    logits.masked_fill_(suppress.unsqueeze(0), kNegInf);
}

torch::Tensor talker_suppress_mask(int64_t vocab_size, int64_t eos_id, torch::Device device) {
    auto mask = torch::zeros({vocab_size}, torch::TensorOptions().dtype(torch::kBool));
    if (vocab_size > 1024) mask.slice(0, vocab_size - 1024, vocab_size).fill_(true);
    if (eos_id >= 0 && eos_id < vocab_size) mask[eos_id] = false;
    return mask.to(device);
}

void apply_temperature(torch::Tensor& logits, double temperature) {
    if (temperature == 1.0) return;
    check_temperature(temperature);
    logits.div_(temperature);
}

void apply_top_k(torch::Tensor& logits, int64_t top_k) {
    if (top_k <= 0) return;
    int64_t k = std::min<int64_t>(top_k, logits.size(-1));
    auto kth = std::get<0>(torch::topk(logits, k, -1)).select(-1, k - 1).unsqueeze(-1);
    logits.masked_fill_(logits < kth, kNegInf);
}

void apply_top_p(torch::Tensor& logits, double top_p, int64_t min_keep) {
    if (top_p >= 1.0) return;
    auto sorted = torch::sort(logits, -1, /*descending=*/false);
    auto& sorted_logits = std::get<0>(sorted);
    auto& sorted_idx = std::get<1>(sorted);
    auto cum = sorted_logits.softmax(-1).cumsum(-1);
    auto remove_sorted = cum <= (1.0 - top_p);
    int64_t V = logits.size(-1);
    remove_sorted.slice(-1, std::max<int64_t>(V - min_keep, 0), V).fill_(false);
    auto remove = remove_sorted.scatter(-1, sorted_idx, remove_sorted);
    logits.masked_fill_(remove, kNegInf);
}

void apply_warpers(torch::Tensor& logits, const SamplingParams& p) {
    if (!p.do_sample) return;
    apply_temperature(logits, p.temperature);
    apply_top_k(logits, p.top_k);
    apply_top_p(logits, p.top_p);
}

torch::Tensor pick_token(const torch::Tensor& logits, bool do_sample, at::Generator& gen) {
    if (!do_sample) return logits.argmax(-1);
    auto probs = logits.softmax(-1);
    return torch::multinomial(probs, 1, /*replacement=*/false, gen).squeeze(-1);
}

torch::Tensor pick_token_graph_safe(const torch::Tensor& logits, bool do_sample, at::Generator& gen) {
    if (!do_sample) return logits.argmax(-1);
    auto probs = logits.softmax(-1);
    auto q = torch::empty_like(probs).exponential_(1, gen);
    return (probs / q).argmax(-1);
}

torch::Tensor pick_token_rows(const torch::Tensor& logits, bool do_sample, const std::vector<at::Generator*>& gens) {
    if (!do_sample) return logits.argmax(-1);
    if (static_cast<int64_t>(gens.size()) != logits.size(0))
        throw Error(fmt::format("pick_token_rows: {} generators for {} rows", gens.size(), logits.size(0)));
    auto probs = logits.softmax(-1);
    std::vector<torch::Tensor> ids;
    for (int64_t b = 0; b < probs.size(0); ++b)
        ids.push_back(torch::multinomial(probs.narrow(0, b, 1), 1, /*replacement=*/false, *gens[size_t(b)]).view({1}));
    return ids.size() == 1 ? ids[0] : torch::cat(ids);
}

namespace {

// One row on the CPU: temperature → top-k → top-p → softmax over the row's raw values, then multinomial's own
// one-sample draw, argmax(p / q) with q ~ Exp(1) per token (`noise`, drawn as multinomial draws it): the same
// distribution as the warpers above and the same random stream, so a seed gives the codes it gave through them.
int64_t sample_row(const float* logits, int64_t V, const SamplingParams& p, const float* noise,
                   std::vector<std::pair<float, int64_t>>& kept) {
    check_temperature(p.temperature);
    const float temperature = static_cast<float>(p.temperature);
    kept.clear();
    for (int64_t i = 0; i < V; ++i)
        if (logits[i] != kNegInf) kept.emplace_back(p.temperature == 1.0 ? logits[i] : logits[i] / temperature, i);
    if (kept.empty()) throw Error("sampling: every token is excluded");
    const auto higher = [](const auto& a, const auto& b) { return a.first > b.first; };
    if (p.top_k > 0 && p.top_k < static_cast<int64_t>(kept.size())) {
        // Everything tied with the k-th largest stays (TopKLogitsWarper keeps scores >= it).
        std::nth_element(kept.begin(), kept.begin() + (p.top_k - 1), kept.end(), higher);
        const float kth = kept[size_t(p.top_k - 1)].first;
        kept.erase(std::remove_if(kept.begin(), kept.end(), [kth](const auto& e) { return e.first < kth; }), kept.end());
    }
    std::sort(kept.begin(), kept.end(), higher);
    const float top = kept.front().first;
    std::vector<float> e(kept.size());
    float sum = 0;
    for (size_t i = 0; i < kept.size(); ++i) sum += e[i] = std::exp(kept[i].first - top);
    size_t n = kept.size();
    if (p.top_p < 1.0) {
        // TopPLogitsWarper: from the least likely up, drop tokens while their cumulative probability is <= 1 - top_p;
        // the most likely always stays.
        double cum = 0;
        while (n > 1) {
            cum += static_cast<double>(e[n - 1]) / sum;
            if (cum > 1.0 - p.top_p) break;
            --n;
        }
        sum = 0;
        for (size_t i = 0; i < n; ++i) sum += e[i];
    }
    // Tokens outside the kept set have probability 0 and never win; ties go to the lower id, as argmax's.
    const float inv = 1.0f / sum;
    int64_t best = kept[0].second;
    float best_score = -1;
    for (size_t i = 0; i < n; ++i) {
        const int64_t id = kept[i].second;
        const float score = e[i] * inv / noise[id];
        if (score > best_score || (score == best_score && id < best)) best_score = score, best = id;
    }
    return best;
}

}  // namespace

torch::Tensor sample_rows(const torch::Tensor& logits, const SamplingParams& p, const std::vector<at::Generator*>& gens) {
    if (!p.do_sample) return logits.argmax(-1);
    if (logits.dim() != 2 || static_cast<int64_t>(gens.size()) != logits.size(0))
        throw Error(fmt::format("sample_rows: {} generators for logits of shape {}", gens.size(), fmt::join(logits.sizes(), "x")));
    bool cpu = logits.device().is_cpu();
    for (auto* g : gens) cpu = cpu && g->device().is_cpu();
    if (!cpu) {
        auto l = logits.to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
        apply_warpers(l, p);
        return pick_token_rows(l, true, gens);
    }
    const auto l = logits.to(torch::kFloat32).contiguous();
    const int64_t B = l.size(0), V = l.size(1);
    auto ids = torch::empty({B}, torch::TensorOptions().dtype(torch::kLong));
    std::vector<std::pair<float, int64_t>> kept;
    kept.reserve(size_t(V));
    for (int64_t b = 0; b < B; ++b) {
        // The noise tensor multinomial makes for one sample from a [1, V] row: the generator advances as it did.
        const auto noise = torch::empty({1, V}).exponential_(1, *gens[size_t(b)]);
        ids.data_ptr<int64_t>()[b] = sample_row(l.data_ptr<float>() + b * V, V, p, noise.data_ptr<float>(), kept);
    }
    return ids;
}

torch::Tensor sample(const torch::Tensor& logits, const SamplingParams& p, at::Generator& gen) {
    return sample_rows(logits, p, {&gen});
}

at::Generator make_generator(torch::Device device, uint64_t seed) {
    if (device.is_cpu()) return at::detail::createCPUGenerator(seed);
    at::Generator gen = at::globalContext().defaultGenerator(device);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
    return gen;
}

TalkerLogitsProcessor::TalkerLogitsProcessor(const TalkerSamplingParams& params, int64_t vocab_size, int64_t eos_id,
                                             int64_t batch, torch::Device device)
    : params_(params), eos_id_(eos_id) {
    if (eos_id < 0 || eos_id >= vocab_size)
        throw InputError(fmt::format("codec EOS id {} outside the talker vocabulary of {}", eos_id, vocab_size));
    seen_ = torch::zeros({batch, vocab_size}, torch::TensorOptions().dtype(torch::kBool).device(device));
    suppress_ = talker_suppress_mask(vocab_size, eos_id, device);
}

void TalkerLogitsProcessor::process(torch::Tensor& logits, int64_t generated) const {
    if (generated > 0) apply_repetition_penalty_mask(logits, seen_, params_.repetition_penalty);
    apply_min_new_tokens(logits, eos_id_, generated, params_.min_new_tokens);
    apply_suppression(logits, suppress_);
}

void TalkerLogitsProcessor::observe(const torch::Tensor& ids) {
    seen_.scatter_(1, ids.view({-1, 1}).to(torch::kLong), true);
}

torch::Tensor TalkerLogitsProcessor::step(torch::Tensor& logits, int64_t generated, at::Generator& gen) {
    process(logits, generated);
    auto ids = sample(logits, params_, gen);
    observe(ids);
    return ids;
}

void TalkerLogitsProcessor::reset() { seen_.fill_(false); }

torch::Tensor TalkerLogitsProcessor::step_rows(torch::Tensor& logits, int64_t first,
                                               const std::vector<int64_t>& generated,
                                               const std::vector<at::Generator*>& gens) {
    const int64_t n = logits.size(0);
    if (static_cast<int64_t>(generated.size()) != n || first < 0 || first + n > seen_.size(0))
        throw Error("TalkerLogitsProcessor::step_rows: rows and counts disagree");
    auto seen = seen_.narrow(0, first, n);
    // A row that has generated nothing has an empty history, which leaves its logits as they are.
    bool any = false;
    for (auto g : generated) any = any || g > 0;
    if (any) apply_repetition_penalty_mask(logits, seen, params_.repetition_penalty);
    for (int64_t b = 0; b < n; ++b) {
        auto row = logits.narrow(0, b, 1);
        apply_min_new_tokens(row, eos_id_, generated[size_t(b)], params_.min_new_tokens);
    }
    apply_suppression(logits, suppress_);
    auto ids = sample_rows(logits, params_, gens);
    seen.scatter_(1, ids.view({-1, 1}).to(torch::kLong), true);
    return ids;
}

void TalkerLogitsProcessor::reset_row(int64_t row) { seen_[row].fill_(false); }

void TalkerLogitsProcessor::move_row(int64_t from, int64_t to) {
    if (from != to) seen_[to].copy_(seen_[from]);
}

}  // namespace alexandria::synth
