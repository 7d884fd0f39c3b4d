#pragma once
// The module tree of a Qwen3-TTS checkpoint (spec model-talker.md §2-§4, §8). Submodules are registered under the
// safetensors names, so TTSModel's named_parameters() IS the checkpoint key list:
//
//   talker.model.{layers.N.*, norm, text_embedding, codec_embedding}
//   talker.text_projection.{linear_fc1, linear_fc2}          (both with bias)
//   talker.codec_head
//   talker.code_predictor.model.{layers.N.*, norm, codec_embedding.G}
//   talker.code_predictor.lm_head.G
//   talker.code_predictor.small_to_mtp_projection            (only when the widths differ: 1.7B)
//   speaker_encoder.*                                         (Base only)
//
// Every stage is callable on its own (text embedding, codec/frame embedding, one layer, the whole talker, the
// code predictor's inference step and its teacher-forced form) so parity fixtures can be compared stage by stage.
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "alexandria/model/config.h"
#include "alexandria/model/layers.h"
#include "alexandria/model/speaker_encoder.h"

namespace alexandria::model {

// talker.text_projection: fc2(silu(fc1(x))), both layers with biases (spec §2, §9.1).
class TextProjectionImpl : public torch::nn::Module {
public:
    TextProjectionImpl(int64_t text_hidden, int64_t hidden, const BuildOptions& opts);
    torch::Tensor forward(const torch::Tensor& x);
    LoraLinear linear_fc1{nullptr}, linear_fc2{nullptr};
};
TORCH_MODULE(TextProjection);

// talker.model: the 28-layer decoder with its two embedding tables.
class TalkerModelImpl : public torch::nn::Module {
public:
    TalkerModelImpl(const TalkerConfig& cfg, const BuildOptions& opts);
    // inputs_embeds [B, T, H] → normed hidden [B, T, H]. See run_decoder() for the mask/position rules; position_ids
    // may be [B, T] or the multimodal [3, B, T].
    torch::Tensor forward(const torch::Tensor& inputs_embeds, KVCache* cache = nullptr,
                          const torch::Tensor& attention_mask = {}, const torch::Tensor& position_ids = {});
    KVCache make_cache(int64_t batch, int64_t capacity) const;
    const RotaryEmbedding& rotary() const { return rope_; }

    torch::nn::ModuleList layers{nullptr};
    std::vector<DecoderLayer> layer_list;  // the same modules, typed
    RMSNorm norm{nullptr};
    Embedding text_embedding{nullptr}, codec_embedding{nullptr};

private:
    TalkerConfig cfg_;
    RotaryEmbedding rope_;
};
TORCH_MODULE(TalkerModel);

// talker.code_predictor.model: the 5-layer decoder; codec_embedding.{g} embeds codebook g+1 at TALKER width.
class CodePredictorModelImpl : public torch::nn::Module {
public:
    CodePredictorModelImpl(const CodePredictorConfig& cfg, int64_t talker_hidden, const BuildOptions& opts);
    // Already projected inputs [B, T, cp_hidden] → normed hidden [B, T, cp_hidden]. Plain 1-D RoPE.
    torch::Tensor forward(const torch::Tensor& inputs_embeds, KVCache* cache = nullptr,
                          const torch::Tensor& position_ids = {});

    torch::nn::ModuleList layers{nullptr};
    std::vector<DecoderLayer> layer_list;
    RMSNorm norm{nullptr};
    torch::nn::ModuleList codec_embedding{nullptr};
    std::vector<Embedding> codec_embedding_list;

private:
    RotaryEmbedding rope_;
};
TORCH_MODULE(CodePredictorModel);

// Picks a code from logits [B, vocab] (fp32) for code group `group` (1..15) → [B] int64. The synth layer passes its
// sampler (temperature/top-k/top-p); training never samples.
using CodeSampler = std::function<torch::Tensor(const torch::Tensor& logits, int64_t group)>;

// talker.code_predictor
class CodePredictorImpl : public torch::nn::Module {
public:
    CodePredictorImpl(const CodePredictorConfig& cfg, int64_t talker_hidden, const BuildOptions& opts);
    // small_to_mtp_projection (1.7B) or identity (0.6B): applied to every input, talker hidden included (§9.5).
    torch::Tensor project(const torch::Tensor& x);
    // Talker-width inputs [B, T, H_talker] → normed hidden [B, T, cp_hidden].
    torch::Tensor forward(const torch::Tensor& inputs_embeds, KVCache* cache = nullptr,
                          const torch::Tensor& position_ids = {});
    // lm_head[head](hidden): head k predicts codebook k+1.
    torch::Tensor head_logits(const torch::Tensor& hidden, int64_t head);
    // A cache for one frame (capacity num_code_groups), reused frame after frame via reset().
    KVCache make_cache(int64_t batch) const;

    CodePredictorModel model{nullptr};
    torch::nn::ModuleList lm_head{nullptr};
    std::vector<LoraLinear> lm_head_list;
    LoraLinear small_to_mtp_projection{nullptr};  // null at 0.6B

    const CodePredictorConfig& config() const { return cfg_; }

private:
    CodePredictorConfig cfg_;
};
TORCH_MODULE(CodePredictor);

struct TalkerOutput {
    torch::Tensor hidden;  // normed final hidden [B, T, H] (what codec_head and the code predictor read)
    torch::Tensor logits;  // codec_head(hidden) [B, T, vocab 3072], in the model dtype
};

// `talker`
class TalkerImpl : public torch::nn::Module {
public:
    TalkerImpl(const TalkerConfig& cfg, const BuildOptions& opts);

    // T(ids) = text_projection(text_embedding(ids)) → [..., H]
    torch::Tensor text_embed(const torch::Tensor& ids);
    // C(ids) = codec_embedding(ids) → [..., H]
    torch::Tensor codec_embed(const torch::Tensor& ids);
    // F(frame) = C(c0) + Σ_{g=1..G-1} code_predictor.model.codec_embedding[g-1](c_g), unprojected (§4.3, §9.6).
    // codes [..., G] → [..., H]
    torch::Tensor frame_embed(const torch::Tensor& codes);

    // The whole talker: inputs_embeds [B, T, H] → hidden and code-0 logits.
    TalkerOutput forward(const torch::Tensor& inputs_embeds, KVCache* cache = nullptr,
                         const torch::Tensor& attention_mask = {}, const torch::Tensor& position_ids = {});
    torch::Tensor codec_logits(const torch::Tensor& hidden) { return codec_head(hidden); }
    KVCache make_cache(int64_t batch, int64_t capacity) const { return model->make_cache(batch, capacity); }

    // Inference step of the code predictor for one frame (§4.3): past_hidden [B, H] (the talker hidden that
    // predicted c0), c0 [B] → codes [B, G] = [c0, c1 .. c_{G-1}]. `cache` from code_predictor->make_cache(B) is
    // reset here and refilled (positions 0..G-1).
    torch::Tensor predict_frame(const torch::Tensor& past_hidden, const torch::Tensor& c0, KVCache& cache,
                                const CodeSampler& sample);
    // Teacher-forced form (§4.4, training): talker_hidden [N, H] (the hidden that predicts each frame's code 0),
    // codes [N, G] → logits [N, G-1, codebook vocab]; logits[:, k] come from lm_head[k] at sequence position k+1 of
    // [hidden, C(c0), cp_emb[0](c1), …, cp_emb[G-3](c_{G-2})] and predict codebook k+1.
    torch::Tensor code_predictor_logits(const torch::Tensor& talker_hidden, const torch::Tensor& codes);

    const TalkerConfig& config() const { return cfg_; }

    TalkerModel model{nullptr};
    TextProjection text_projection{nullptr};
    LoraLinear codec_head{nullptr};
    CodePredictor code_predictor{nullptr};

private:
    TalkerConfig cfg_;
};
TORCH_MODULE(Talker);

// The whole checkpoint: `talker` and, for Base, `speaker_encoder`.
class TTSModelImpl : public torch::nn::Module {
public:
    // opts.device may be torch::kMeta: shapes only, nothing allocated (the speaker encoder, ~12M parameters, is then
    // built on the CPU because its module owns its own construction). opts.init: see BuildOptions.
    TTSModelImpl(const ModelConfig& cfg, const BuildOptions& opts = {});
    const ModelConfig& config() const { return cfg_; }
    bool has_speaker_encoder() const { return !speaker_encoder.is_empty(); }

    Talker talker{nullptr};
    SpeakerEncoder speaker_encoder{nullptr};

private:
    ModelConfig cfg_;
};
TORCH_MODULE(TTSModel);

// (name, shape) of every tensor the checkpoint of `cfg` holds, in module order, built on the meta device.
std::vector<std::pair<std::string, std::vector<int64_t>>> checkpoint_shapes(const ModelConfig& cfg);

}  // namespace alexandria::model
