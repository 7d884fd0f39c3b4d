#include "alexandria/model/talker.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "alexandria/io/error.h"

namespace alexandria::model {

TextProjectionImpl::TextProjectionImpl(int64_t text_hidden, int64_t hidden, const BuildOptions& opts) {
    linear_fc1 = register_module("linear_fc1", LoraLinear(text_hidden, text_hidden, true, opts));
    linear_fc2 = register_module("linear_fc2", LoraLinear(text_hidden, hidden, true, opts));
}

torch::Tensor TextProjectionImpl::forward(const torch::Tensor& x) { return linear_fc2(torch::silu(linear_fc1(x))); }

// ---------------------------------------------------------------------------------------------------------------
TalkerModelImpl::TalkerModelImpl(const TalkerConfig& cfg, const BuildOptions& opts) : cfg_(cfg), rope_(cfg) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
        layer_list.push_back(DecoderLayer(cfg, opts));
        layers->push_back(layer_list.back());
    }
    norm = register_module("norm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, opts));
    codec_embedding = register_module("codec_embedding", Embedding(cfg.vocab_size, cfg.hidden_size, opts));
    text_embedding = register_module("text_embedding", Embedding(cfg.text_vocab_size, cfg.text_hidden_size, opts));
}

torch::Tensor TalkerModelImpl::forward(const torch::Tensor& inputs_embeds, KVCache* cache,
                                       const torch::Tensor& attention_mask, const torch::Tensor& position_ids) {
    return run_decoder(layer_list, norm, rope_, inputs_embeds, cache, attention_mask, position_ids);
}

KVCache TalkerModelImpl::make_cache(int64_t batch, int64_t capacity) const {
    return KVCache(cfg_.num_hidden_layers, batch, cfg_.num_key_value_heads, cfg_.head_dim, capacity,
                   torch::TensorOptions().device(norm->weight.device()).dtype(norm->weight.scalar_type()));
}

// ---------------------------------------------------------------------------------------------------------------
CodePredictorModelImpl::CodePredictorModelImpl(const CodePredictorConfig& cfg, int64_t talker_hidden,
                                               const BuildOptions& opts)
    : rope_(cfg) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < cfg.num_hidden_layers; ++i) {
        layer_list.push_back(DecoderLayer(cfg, opts));
        layers->push_back(layer_list.back());
    }
    norm = register_module("norm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, opts));
    codec_embedding = register_module("codec_embedding", torch::nn::ModuleList());
    for (int64_t g = 0; g + 1 < cfg.num_code_groups; ++g) {
        codec_embedding_list.push_back(Embedding(cfg.vocab_size, talker_hidden, opts));
        codec_embedding->push_back(codec_embedding_list.back());
    }
}

torch::Tensor CodePredictorModelImpl::forward(const torch::Tensor& inputs_embeds, KVCache* cache,
                                              const torch::Tensor& position_ids) {
    return run_decoder(layer_list, norm, rope_, inputs_embeds, cache, torch::Tensor(), position_ids);
}

CodePredictorImpl::CodePredictorImpl(const CodePredictorConfig& cfg, int64_t talker_hidden, const BuildOptions& opts)
    : cfg_(cfg) {
    model = register_module("model", CodePredictorModel(cfg, talker_hidden, opts));
    lm_head = register_module("lm_head", torch::nn::ModuleList());
    for (int64_t g = 0; g + 1 < cfg.num_code_groups; ++g) {
        lm_head_list.push_back(LoraLinear(cfg.hidden_size, cfg.vocab_size, false, opts));
        lm_head->push_back(lm_head_list.back());
    }
    if (talker_hidden != cfg.hidden_size)
        small_to_mtp_projection =
            register_module("small_to_mtp_projection", LoraLinear(talker_hidden, cfg.hidden_size, true, opts));
}

torch::Tensor CodePredictorImpl::project(const torch::Tensor& x) {
    return small_to_mtp_projection ? small_to_mtp_projection(x) : x;
}

torch::Tensor CodePredictorImpl::forward(const torch::Tensor& inputs_embeds, KVCache* cache,
                                         const torch::Tensor& position_ids) {
    return model->forward(project(inputs_embeds), cache, position_ids);
}

torch::Tensor CodePredictorImpl::head_logits(const torch::Tensor& hidden, int64_t head) {
    if (head < 0 || head >= static_cast<int64_t>(lm_head_list.size()))
        throw Error(fmt::format("code predictor head {} outside [0, {})", head, lm_head_list.size()));
    return lm_head_list[head](hidden);
}

KVCache CodePredictorImpl::make_cache(int64_t batch) const {
    const auto& w = model->norm->weight;
    return KVCache(cfg_.num_hidden_layers, batch, cfg_.num_key_value_heads, cfg_.head_dim, cfg_.num_code_groups,
                   torch::TensorOptions().device(w.device()).dtype(w.scalar_type()));
}

// ---------------------------------------------------------------------------------------------------------------
TalkerImpl::TalkerImpl(const TalkerConfig& cfg, const BuildOptions& opts) : cfg_(cfg) {
    model = register_module("model", TalkerModel(cfg, opts));
    text_projection = register_module("text_projection", TextProjection(cfg.text_hidden_size, cfg.hidden_size, opts));
    codec_head = register_module("codec_head", LoraLinear(cfg.hidden_size, cfg.vocab_size, false, opts));
    code_predictor = register_module("code_predictor", CodePredictor(cfg.code_predictor, cfg.hidden_size, opts));
}

torch::Tensor TalkerImpl::text_embed(const torch::Tensor& ids) { return text_projection(model->text_embedding(ids)); }

torch::Tensor TalkerImpl::codec_embed(const torch::Tensor& ids) { return model->codec_embedding(ids); }

torch::Tensor TalkerImpl::frame_embed(const torch::Tensor& codes) {
    int64_t G = cfg_.num_code_groups;
    if (codes.dim() < 1 || codes.size(-1) != G)
        throw InputError(fmt::format("a frame holds {} codes, got shape {}", G, fmt::join(codes.sizes(), "x")));
    // One reduction over the 16 embeddings, as the reference does (cat(...).sum(1) in generate(), the ICL prompt
    // and training): in bf16, torch sums in fp32 and rounds once, where adding them one by one would round 15 times.
    std::vector<torch::Tensor> parts;
    parts.reserve(size_t(G));
    parts.push_back(model->codec_embedding(codes.select(-1, 0)));
    auto& tables = code_predictor->model->codec_embedding_list;
    for (int64_t g = 1; g < G; ++g) parts.push_back(tables[g - 1](codes.select(-1, g)));
    return torch::stack(parts, -2).sum(-2);
}

TalkerOutput TalkerImpl::forward(const torch::Tensor& inputs_embeds, KVCache* cache,
                                 const torch::Tensor& attention_mask, const torch::Tensor& position_ids) {
    TalkerOutput out;
    out.hidden = model->forward(inputs_embeds, cache, attention_mask, position_ids);
    out.logits = codec_head(out.hidden);
    return out;
}

torch::Tensor TalkerImpl::predict_frame(const torch::Tensor& past_hidden, const torch::Tensor& c0, KVCache& cache,
                                        const CodeSampler& sample) {
    int64_t G = cfg_.num_code_groups;
    if (past_hidden.dim() != 2 || c0.dim() != 1 || past_hidden.size(0) != c0.size(0))
        throw Error("predict_frame: past_hidden must be [B, H] and c0 [B]");
    cache.reset();
    auto& cp = code_predictor;
    std::vector<torch::Tensor> codes{c0.to(torch::kInt64)};
    torch::Tensor x = torch::stack({past_hidden, codec_embed(codes[0]).to(past_hidden.scalar_type())}, 1);
    torch::Tensor h = cp->forward(x, &cache);
    for (int64_t g = 1; g < G; ++g) {
        if (g > 1) {
            x = cp->model->codec_embedding_list[g - 2](codes.back()).unsqueeze(1);
            h = cp->forward(x, &cache);
        }
        torch::Tensor logits = cp->head_logits(h.select(1, h.size(1) - 1), g - 1).to(torch::kFloat32);
        codes.push_back(sample(logits, g).to(torch::kInt64).view({-1}));
    }
    return torch::stack(codes, 1);
}

torch::Tensor TalkerImpl::code_predictor_logits(const torch::Tensor& talker_hidden, const torch::Tensor& codes) {
    int64_t G = cfg_.num_code_groups;
    if (talker_hidden.dim() != 2 || codes.dim() != 2 || codes.size(1) != G || codes.size(0) != talker_hidden.size(0))
        throw Error(fmt::format("code_predictor_logits: expected hidden [N, H] and codes [N, {}]", G));
    auto& cp = code_predictor;
    std::vector<torch::Tensor> seq{talker_hidden.unsqueeze(1), codec_embed(codes.select(1, 0)).unsqueeze(1)};
    for (int64_t g = 1; g + 1 < G; ++g) seq.push_back(cp->model->codec_embedding_list[g - 1](codes.select(1, g)).unsqueeze(1));
    torch::Tensor h = cp->forward(torch::cat(seq, 1));  // [N, G, cp_hidden], causal, positions 0..G-1
    std::vector<torch::Tensor> logits;
    for (int64_t k = 0; k + 1 < G; ++k) logits.push_back(cp->head_logits(h.select(1, k + 1), k));
    return torch::stack(logits, 1);
}

// ---------------------------------------------------------------------------------------------------------------
TTSModelImpl::TTSModelImpl(const ModelConfig& cfg, const BuildOptions& opts) : cfg_(cfg) {
    talker = register_module("talker", Talker(cfg.talker, opts));
    if (cfg.is_base()) {
        if (!cfg.speaker_encoder) throw InputError(cfg.source + ": Base model without speaker_encoder_config");
        speaker_encoder = register_module("speaker_encoder", SpeakerEncoder(*cfg.speaker_encoder));
        if (!opts.device.is_meta()) speaker_encoder->to(opts.device, opts.dtype);
    }
}

std::vector<std::pair<std::string, std::vector<int64_t>>> checkpoint_shapes(const ModelConfig& cfg) {
    BuildOptions meta;
    meta.device = torch::kMeta;
    meta.init = false;
    TTSModel m(cfg, meta);
    std::vector<std::pair<std::string, std::vector<int64_t>>> out;
    for (const auto& p : m->named_parameters()) out.emplace_back(p.key(), p.value().sizes().vec());
    for (const auto& b : m->named_buffers()) out.emplace_back(b.key(), b.value().sizes().vec());
    return out;
}

}  // namespace alexandria::model
