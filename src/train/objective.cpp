#include "alexandria/train/objective.h"

#include <cmath>

#include <fmt/format.h>

#include "alexandria/io/error.h"

namespace alexandria::train {

namespace {

torch::Tensor long_tensor(const std::vector<int64_t>& v, torch::Device device) {
    return torch::tensor(v, torch::TensorOptions().dtype(torch::kInt64)).to(device);
}

}  // namespace

Layout sample_layout(const PromptContext& ctx, const Sample& s, Objective objective) {
    if (ctx.mode == PromptMode::XVector)
        return build_layout(ctx.ids, ctx.prefix, s.role, s.content, s.frames(), objective);
    const int64_t ref_frames = ctx.ref_codes.defined() ? ctx.ref_codes.size(0) : 0;
    return build_icl_layout(ctx.ids, ctx.prefix, s.role, ctx.ref_content, s.content, ref_frames, s.frames(),
                            objective);
}

SampleInputs sample_inputs(model::Talker& talker, const PromptContext& ctx, const Sample& sample,
                           Objective objective) {
    SampleInputs in{sample_layout(ctx, sample, objective), {}};
    in.embeds = embed_layout(talker, in.layout, sample.codes, ctx.speaker, ctx.ref_codes);
    return in;
}

torch::Tensor embed_layout(model::Talker& talker, const Layout& layout, const torch::Tensor& codes,
                           const torch::Tensor& speaker, const torch::Tensor& ref_codes) {
    torch::NoGradGuard no_grad;
    const auto& w = talker->model->codec_embedding->weight;
    const torch::Device device = w.device();
    const int64_t S = layout.length(), H = w.size(1);
    std::vector<int64_t> text_rows, text_ids, codec_rows, codec_ids, frame_rows, frame_idx, ref_rows, ref_idx;
    for (int64_t p = 0; p < S; ++p) {
        const Row& r = layout.rows[p];
        if (r.text >= 0) {
            text_rows.push_back(p);
            text_ids.push_back(r.text);
        }
        if (r.codec == Row::Codec::Id) {
            codec_rows.push_back(p);
            codec_ids.push_back(r.codec_id);
        } else if (r.codec == Row::Codec::Frame) {
            frame_rows.push_back(p);
            frame_idx.push_back(r.frame);
        } else if (r.codec == Row::Codec::RefFrame) {
            ref_rows.push_back(p);
            ref_idx.push_back(r.frame);
        }
    }
    // Rows are sums of a text-channel and a codec-channel vector; adding each part into zeros keeps every row's
    // value exactly text + codec as train_lora.py computes it.
    torch::Tensor E = torch::zeros({S, H}, w.options());
    if (!text_rows.empty())
        E.index_add_(0, long_tensor(text_rows, device), talker->text_embed(long_tensor(text_ids, device)).to(w.dtype()));
    if (!codec_rows.empty())
        E.index_add_(0, long_tensor(codec_rows, device), talker->codec_embed(long_tensor(codec_ids, device)).to(w.dtype()));
    if (!frame_rows.empty()) {
        auto c = codes.to(device).index_select(0, long_tensor(frame_idx, device));
        E.index_add_(0, long_tensor(frame_rows, device), talker->frame_embed(c).to(w.dtype()));
    }
    if (!ref_rows.empty()) {
        if (!ref_codes.defined() || ref_codes.size(0) < layout.ref_frames)
            throw Error("this layout has reference frames but no reference codes were given");
        auto c = ref_codes.to(device).index_select(0, long_tensor(ref_idx, device));
        E.index_add_(0, long_tensor(ref_rows, device), talker->frame_embed(c).to(w.dtype()));
    }
    if (layout.speaker_row >= 0) {
        if (!speaker.defined() || speaker.numel() != H)
            throw Error(fmt::format("speaker embedding has {} values, the talker is {} wide",
                                    speaker.defined() ? speaker.numel() : 0, H));
        E[layout.speaker_row].add_(speaker.reshape({H}).to(device, w.scalar_type()));
    }
    return E;
}

namespace {

// The talker's input rows [B, S, H], right-padded with zero rows, and the mask [B, S] that hides the padding from
// every real query (undefined for one sample).
std::pair<torch::Tensor, torch::Tensor> batch_inputs(model::Talker& talker, const PromptContext& ctx,
                                                     const std::vector<const Sample*>& batch,
                                                     const std::vector<Layout>& lays, int64_t S) {
    torch::NoGradGuard ng;
    const int64_t B = static_cast<int64_t>(batch.size());
    const torch::Device device = talker->model->codec_embedding->weight.device();
    std::vector<torch::Tensor> rows;
    for (int64_t b = 0; b < B; ++b) {
        auto E = embed_layout(talker, lays[b], batch[b]->codes, ctx.speaker, ctx.ref_codes);  // [S_b, H]
        if (E.size(0) < S) E = torch::cat({E, torch::zeros({S - E.size(0), E.size(1)}, E.options())}, 0);
        rows.push_back(E);
    }
    torch::Tensor mask;
    if (B > 1) {
        mask = torch::zeros({B, S}, torch::TensorOptions().dtype(torch::kInt64).device(device));
        for (int64_t b = 0; b < B; ++b) mask[b].narrow(0, 0, lays[b].length()).fill_(1);
    }
    return {torch::stack(rows, 0), mask};
}

// The code predictor's log-probabilities for every frame of every sample, in one call: the talker hidden that
// predicts each frame's code 0 → [ΣN, 15, V]. hb: the sample of each frame; codes_cat: [ΣN, 16].
struct PredictorOut {
    torch::Tensor logp;       // [ΣN, 15, V]
    torch::Tensor hb;         // [ΣN] sample index of each frame
    torch::Tensor codes_cat;  // [ΣN, 16]
};

PredictorOut predictor_logp(model::Talker& talker, const model::TalkerOutput& out,
                            const std::vector<const Sample*>& batch, const std::vector<Layout>& lays) {
    const torch::Device device = out.hidden.device();
    std::vector<int64_t> hb, hp;
    std::vector<torch::Tensor> codes_all;
    for (size_t b = 0; b < batch.size(); ++b) {
        for (int64_t p : lays[b].sub_hidden_positions) {
            hb.push_back(static_cast<int64_t>(b));
            hp.push_back(p);
        }
        codes_all.push_back(batch[b]->codes);
    }
    PredictorOut r;
    r.hb = long_tensor(hb, device);
    torch::Tensor sub_hidden = out.hidden.index({r.hb, long_tensor(hp, device)});  // [ΣN, H]
    r.codes_cat = torch::cat(codes_all, 0).to(device);                               // [ΣN, 16]
    torch::Tensor sub_logits = talker->code_predictor_logits(sub_hidden, r.codes_cat).to(torch::kFloat32);
    r.logp = torch::log_softmax(sub_logits, -1);
    return r;
}

// One objective's per-sample loss [B]: the talker's mean cross-entropy over its scored positions plus
// kSubLossWeight × the code predictor's mean over the objective's (head, codebook) pairs on every frame.
struct ObjectiveTerms {
    torch::Tensor total, talker, sub;  // [B] each
};

ObjectiveTerms objective_terms(const model::TalkerOutput& out, const PredictorOut& pred,
                               const std::vector<const Sample*>& batch, const std::vector<Layout>& lays) {
    const torch::Device device = out.logits.device();
    const int64_t B = static_cast<int64_t>(batch.size());
    // Talker: gather the scored positions of every sample.
    std::vector<int64_t> tb, tp, tt;
    std::vector<int64_t> t_count(B, 0);
    for (int64_t b = 0; b < B; ++b) {
        auto code0 = batch[b]->codes.select(1, 0).contiguous();
        const int64_t* c0 = code0.data_ptr<int64_t>();
        for (const auto& t : lays[b].talker_targets) {
            tb.push_back(b);
            tp.push_back(t.position);
            tt.push_back(t.frame >= 0 ? c0[t.frame] : t.target_id);
            ++t_count[b];
        }
    }
    torch::Tensor tl = out.logits.index({long_tensor(tb, device), long_tensor(tp, device)}).to(torch::kFloat32);
    torch::Tensor ce = torch::nll_loss(torch::log_softmax(tl, -1), long_tensor(tt, device), {}, at::Reduction::None,
                                       kIgnoreIndex);                                      // [ΣT]
    torch::Tensor talker_sum = torch::zeros({B}, ce.options()).index_add_(0, long_tensor(tb, device), ce);

    // Sub-talker: the objective's (head, codebook) pairs on every frame.
    const auto& pairs = lays[0].sub_pairs;
    std::vector<int64_t> heads, books;
    for (auto [k, cb] : pairs) {
        heads.push_back(k);
        books.push_back(cb);
    }
    torch::Tensor lp = pred.logp.index_select(1, long_tensor(heads, device));            // [ΣN, K, V]
    torch::Tensor tgt = pred.codes_cat.index_select(1, long_tensor(books, device));      // [ΣN, K]
    torch::Tensor sce = -lp.gather(2, tgt.unsqueeze(2)).squeeze(2);                      // [ΣN, K]
    torch::Tensor sub_sum = torch::zeros({B}, sce.options()).index_add_(0, pred.hb, sce.sum(1));

    std::vector<double> t_den(B), s_den(B);
    for (int64_t b = 0; b < B; ++b) {
        t_den[b] = double(t_count[b]);
        s_den[b] = double(batch[b]->frames() * int64_t(pairs.size()));
    }
    ObjectiveTerms r;
    r.talker = talker_sum / torch::tensor(t_den, ce.options());
    r.sub = sub_sum / torch::tensor(s_den, ce.options());
    r.total = r.talker + kSubLossWeight * r.sub;
    return r;
}

}  // namespace

BatchLoss batch_loss(model::Talker& talker, const PromptContext& ctx, const std::vector<const Sample*>& batch,
                     Objective chosen, double weight) {
    if (batch.empty()) throw Error("batch_loss: empty batch");
    const int64_t B = static_cast<int64_t>(batch.size());

    // Layouts: one per objective per sample (same rows, different targets).
    std::vector<Layout> lay_alex, lay_align;
    int64_t S = 0;
    for (const Sample* s : batch) {
        lay_alex.push_back(sample_layout(ctx, *s, Objective::Alexandria));
        lay_align.push_back(sample_layout(ctx, *s, Objective::Aligned));
        S = std::max(S, lay_alex.back().length());
    }

    auto [inputs, mask] = batch_inputs(talker, ctx, batch, lay_alex, S);  // [B, S, H], [B, S]
    const model::TalkerOutput out = talker->forward(inputs, nullptr, mask, {});
    const PredictorOut pred = predictor_logp(talker, out, batch, lay_alex);

    BatchLoss result;
    result.samples.resize(B);
    for (Objective obj : {Objective::Alexandria, Objective::Aligned}) {
        const ObjectiveTerms t = objective_terms(out, pred, batch, obj == Objective::Aligned ? lay_align : lay_alex);
        auto tot_c = t.total.detach().cpu(), tal_c = t.talker.detach().cpu(), sub_c = t.sub.detach().cpu();
        for (int64_t b = 0; b < B; ++b) {
            ObjectiveLoss l{tot_c[b].item<double>(), tal_c[b].item<double>(), sub_c[b].item<double>()};
            if (!std::isfinite(l.total) || !std::isfinite(l.talker) || !std::isfinite(l.sub)) result.finite = false;
            (obj == Objective::Aligned ? result.samples[b].aligned : result.samples[b].alexandria) = l;
        }
        if (obj == chosen) result.backward_loss = t.total.sum() * weight;
    }
    return result;
}

}  // namespace alexandria::train
