#pragma once
// Building blocks of the Qwen3 decoders used by the talker and the code predictor (spec model-talker.md §3, §4):
// a linear layer that can carry a LoRA branch, embeddings, RMSNorm, (multimodal) rotary embeddings, grouped-query
// attention with per-head q/k norms, the SwiGLU MLP, one decoder layer, and a KV cache with static capacity.
//
// Every module registers its tensors under the checkpoint's names (`weight`, `bias`, `q_proj`, ...), and creates
// them with BuildOptions (device, dtype), so the whole tree can be built on the `meta` device to count tensors and
// parameters without allocating memory.
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "alexandria/model/kernels.h"

#include "alexandria/model/config.h"

namespace alexandria::model {

struct BuildOptions {
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;
    // false: tensors are left uninitialised (torch::empty) because a checkpoint load overwrites them anyway.
    // true: zeros (biases, linear/embedding weights) and ones (norm weights); call randomize_parameters() for a
    // usable random network.
    bool init = true;
    torch::TensorOptions options() const { return torch::TensorOptions().device(device).dtype(dtype); }
};

// Fills every parameter of `module` with seeded random values, deterministically per (seed, parameter name):
// weights of rank ≥ 2 ~ N(0, 1/fan_in) with fan_in = prod(shape[1:]); rank-1 `*.bias` ~ N(0, 0.02²);
// other rank-1 tensors (norm weights) ~ 1 + N(0, 0.05²). Values are drawn in fp32 on the CPU, so the same seed
// gives the same model on every device and in every dtype (up to the dtype's rounding).
void randomize_parameters(torch::nn::Module& module, uint64_t seed, const std::string& prefix = "");
// The value randomize_parameters() gives the tensor `name` of `shape` (fp32, CPU). Shared with the random
// checkpoint writer so the file and an in-memory random model agree.
torch::Tensor random_parameter(const std::string& name, torch::IntArrayRef shape, uint64_t seed);

// ---------------------------------------------------------------------------------------------------------------
// Linear layer y = x Wᵀ (+ b), optionally with a LoRA branch (spec §7.4):
//   y = W x + b + multiplier · (alpha / r) · B · A · dropout(x)
// A [r, in] and B [out, r] are fp32 tensors that are NOT registered as parameters: the module tree stays exactly
// the base checkpoint's key tree (strict loading, parameter counts), and the LoRA tensors are reached through
// lora_A()/lora_B() or model-level helpers in lora.h. They follow the module across to(device) but keep fp32 (as
// PEFT computes the branch in fp32 and adds it to the base output).
class LoraLinearImpl : public torch::nn::Module {
public:
    LoraLinearImpl(int64_t in_features, int64_t out_features, bool bias, const BuildOptions& opts);
    torch::Tensor forward(const torch::Tensor& x);

    int64_t in_features() const { return in_; }
    int64_t out_features() const { return out_; }
    torch::Tensor weight, bias;

    // Adds a fresh branch: A kaiming-uniform(a = √5) as PEFT (bound 1/√in, global torch RNG), B zeros.
    // `scaling` is alpha/r (or alpha/√r with rsLoRA). Replaces any existing branch (unmerging first).
    void attach_lora(int64_t r, double scaling, double dropout);
    void detach_lora();
    bool has_lora() const { return lora_A_.defined(); }
    int64_t lora_rank() const { return has_lora() ? lora_A_.size(0) : 0; }
    torch::Tensor& lora_A() { return lora_A_; }
    torch::Tensor& lora_B() { return lora_B_; }
    double lora_scaling() const { return scaling_; }
    double lora_dropout() const { return dropout_; }
    // Per-call strength (synthesis `--lora-scale`): the branch is multiplied by this; 1 = as trained, 0 = base.
    // Changing it while merged re-merges with the new value.
    void set_lora_multiplier(double m);
    double lora_multiplier() const { return multiplier_; }
    // W += multiplier · scaling · B A (computed in fp32, rounded to W's dtype); the branch is then skipped.
    // unmerge() subtracts the same product, so W returns to its value up to the dtype's rounding.
    void merge();
    void unmerge();
    bool merged() const { return merged_; }

    // Inference on the CPU: the weight reordered in place for packed_linear() (kernels.h), or back. While it is,
    // forward() refuses gradients and other devices; merging and moving put it back for the time they need.
    // False (nothing done) for a weight the kernel cannot take.
    bool set_inference_layout(bool on);
    bool inference_layout() const { return packed_; }
    // Inference on the CPU with int8 weights (kernels.h Int8Weight), quantized from the weight as it is now (and
    // again after every merge/unmerge); the weight itself is kept for that. False for a weight the kernel cannot take.
    bool set_int8(bool on);
    bool int8() const { return int8_.q.defined(); }
    // With int8 on: frees the weight itself (the int8 copy is all forward() reads), so the layer holds its weights
    // once. Merging, unmerging, moving and turning int8 off are refused from then on (a LoRA branch still runs,
    // unmerged). False (nothing done) without int8.
    bool release_weight();
    bool weight_released() const { return released_; }

    void to(torch::Device device, torch::Dtype dtype, bool non_blocking = false) override;
    void to(torch::Dtype dtype, bool non_blocking = false) override;
    void to(torch::Device device, bool non_blocking = false) override;

private:
    torch::Tensor delta_weight() const;  // multiplier · scaling · B A, fp32
    void add_to_weight(const torch::Tensor& delta);  // W += delta (fp32), keeping the inference forms current
    void drop_inference_forms();                     // natural layout, no int8 copy
    void move_lora(torch::Device device);
    int64_t in_, out_;
    torch::Tensor lora_A_, lora_B_;
    double scaling_ = 0, dropout_ = 0, multiplier_ = 1;
    bool merged_ = false;
    bool packed_ = false;
    bool released_ = false;
    Int8Weight int8_;
};
TORCH_MODULE(LoraLinear);

class EmbeddingImpl : public torch::nn::Module {
public:
    EmbeddingImpl(int64_t rows, int64_t dim, const BuildOptions& opts);
    // ids: any shape of int64 → [..., dim]. Ids outside [0, rows) are an InputError (not a crash).
    torch::Tensor forward(const torch::Tensor& ids);
    torch::Tensor weight;
    // Rows come out in this dtype when the table is stored narrower (store_weights()).
    void set_compute_dtype(torch::Dtype d) { compute_dtype_ = d; }

private:
    std::optional<torch::Dtype> compute_dtype_;
};
TORCH_MODULE(Embedding);

// Synthesis on the CPU, "bf16 weights, fp32 compute": moves everything of `module` to `compute` (fp32) except the
// linear and embedding weights, which stay as loaded (bf16: what the released checkpoints hold, so nothing is
// rounded). Decoding then reads half the bytes per step; the kernels (kernels.h) widen the weights in registers and
// embedding rows come out in `compute`. Not for training (the optimizer would see bf16 parameters).
void keep_weights_narrow(torch::nn::Module& module, torch::Dtype compute);

// Inference on the CPU: every linear weight of `module` the kernel can take goes to the inference layout
// (LoraLinearImpl::set_inference_layout). Decoding one line reads the weights ~2x faster in that layout (0.6B on
// the 2-core build machine: one row 540 -> 270-340 us per 1024 x 3072 bf16 matrix, 8 rows 710 -> 530-640). A
// weight whose storage another parameter shares is left as it is. Returns how many weights were reordered.
int64_t use_inference_layout(torch::nn::Module& module);

// `synth --dtype int8`: every linear weight the kernel can take is also quantized to int8 per output row
// (LoraLinearImpl::set_int8), and decoding reads those: half the bytes of bf16. With release_source each source
// weight is freed as soon as it is quantized (LoraLinearImpl::release_weight: weights held once, and memory never
// holds both forms of more than one matrix). Returns how many.
int64_t use_int8_weights(torch::nn::Module& module, bool release_source = false);

// RMSNorm as Qwen3: normalise in fp32, cast back to the input dtype, then multiply by `weight` (not 1 + w).
class RMSNormImpl : public torch::nn::Module {
public:
    RMSNormImpl(int64_t dim, double eps, const BuildOptions& opts);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    double eps;
};
TORCH_MODULE(RMSNorm);

// ---------------------------------------------------------------------------------------------------------------
// Rotary embeddings, rotate-half (NeoX) form, inv_freq[j] = 1/θ^(2j/head_dim) computed in fp32 as the reference.
// With mrope_section (talker, [24, 20, 20] interleaved): frequency slot j takes its position from row
// 1 (height) when j % 3 == 1 and j < 3·section[1], from row 2 (width) when j % 3 == 2 and j < 3·section[2],
// else from row 0 (temporal). TTS always passes three equal rows, which makes it plain 1-D RoPE.
class RotaryEmbedding {
public:
    RotaryEmbedding() = default;
    explicit RotaryEmbedding(const DecoderConfig& cfg);
    // positions: [B, T] (all rows equal) or [3, B, T] int64 → (cos, sin), each [B, T, head_dim] in `dtype`.
    std::pair<torch::Tensor, torch::Tensor> cos_sin(const torch::Tensor& positions, torch::Dtype dtype) const;
    int64_t head_dim() const { return head_dim_; }
    // Row (0, 1, 2) each of the head_dim/2 frequency slots reads (all 0 without sections).
    const std::vector<int64_t>& slot_rows() const { return slot_rows_; }

private:
    // inv_freq and the slot-row index, made once per device (decoding calls cos_sin every step).
    std::pair<torch::Tensor, torch::Tensor> tables(torch::Device device) const;
    struct Cache;
    int64_t head_dim_ = 0;
    double theta_ = 0;
    bool multimodal_ = false;
    std::vector<int64_t> slot_rows_;
    std::shared_ptr<Cache> cache_;
};

// x [B, H, T, D], cos/sin [B, T, D] → x·cos + rotate_half(x)·sin
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// ---------------------------------------------------------------------------------------------------------------
// Key/value cache for one decoder stack, allocated once for a sequence with a static capacity (no reallocation
// per step). Keys are stored after RoPE. reset() empties it for reuse (the code predictor uses one per frame).
class KVCache {
public:
    KVCache() = default;
    KVCache(int64_t num_layers, int64_t batch, int64_t num_kv_heads, int64_t head_dim, int64_t capacity,
            const torch::TensorOptions& opts);
    bool defined() const { return !k_.empty(); }
    // Cached positions (ragged mode: the longest active row).
    int64_t length() const { return is_static() ? capacity_ - 1 : (ragged() ? max_active_length() : length_); }
    int64_t capacity() const { return capacity_; }
    int64_t batch() const { return batch_; }
    int64_t num_layers() const { return static_cast<int64_t>(k_.size()); }
    void reset();

    // Used by the decoder stack: writes the new keys/values of `layer` at [length, length+T) and returns views
    // of [0, length+T). commit(T) advances length once all layers have written.
    std::pair<torch::Tensor, torch::Tensor> append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v);
    // Records which of the T new positions are real (1) or padding (0); [B, T] or undefined (= all real).
    void set_key_mask(const torch::Tensor& attention_mask, int64_t T);
    // [B, length+T] bool validity of the keys, or undefined when no padding was ever recorded.
    torch::Tensor key_mask(int64_t T) const;
    void commit(int64_t T);

    // ---- ragged decoding: batched lines of different lengths (synthesis of several script lines at once) ----
    // Every row keeps its own length; only rows [0, active) take part in a step, which then adds exactly one
    // position per row (T = 1) at that row's own length. Keys beyond a row's length are masked out, so a row
    // never reads another line's leftovers. The caller passes each row's position (= its length) as position_ids.
    void set_ragged(int64_t active);  // enters ragged mode (all rows empty) with `active` rows in use
    bool ragged() const { return !row_len_.empty(); }
    int64_t active() const { return active_; }
    void set_active(int64_t n);
    int64_t row_length(int64_t row) const { return row_len_.at(static_cast<size_t>(row)); }
    // Lengths of the active rows as a [active, 1] int64 tensor on the cache's device (their next positions).
    torch::Tensor positions() const;
    // A batch-1 cache over row `row`'s storage (uniform mode, empty): prefill a new line into it, then
    // set_row_length(row, its length).
    KVCache row_view(int64_t row) const;
    void set_row_length(int64_t row, int64_t len);
    // Copies row `from` (its keys, values and length) over row `to` (keeps active rows contiguous).
    void move_row(int64_t from, int64_t to);
    // Grows the capacity to at least `capacity` positions, keeping the contents.
    void reserve(int64_t capacity);

    // ---- the CPU decoding step (model/decode_step.h), which writes the storage itself ------------------------
    // Where each row of this step starts writing its T new positions, when every row attends to exactly its own
    // positions up to those (no padding recorded, not static); empty otherwise. Call after set_key_mask().
    std::vector<int64_t> write_starts(int64_t T) const;
    torch::Tensor& keys(int64_t layer) { return k_.at(static_cast<size_t>(layer)); }    // [B, kvH, capacity, D]
    torch::Tensor& values(int64_t layer) { return v_.at(static_cast<size_t>(layer)); }

    // ---- static decoding (CUDA graphs) ------------------------------------------------------------------------
    // Positions live in `positions` ([batch] int64 on the cache's device, owned and advanced by the caller): each
    // step writes row b at positions[b] and attends over the whole capacity with the keys beyond positions[b]
    // masked, so every step has the same shapes and addresses and can be captured once and replayed. No host
    // value changes between steps (commit() does nothing).
    void set_static(const torch::Tensor& positions);
    bool is_static() const { return static_pos_.defined(); }

private:
    std::vector<torch::Tensor> k_, v_;  // [B, kvH, capacity, D]
    torch::Tensor valid_;               // [B, capacity] bool, allocated on the first padded call
    int64_t length_ = 0, capacity_ = 0, batch_ = 0;
    std::vector<int64_t> row_len_;      // ragged mode: per-row lengths
    torch::Tensor step_pos_, step_rows_, step_mask_;  // ragged mode: this step's write positions and key mask
    torch::Tensor static_pos_;                        // static mode: [B] positions on the device
    int64_t active_ = 0;
    int64_t max_active_length() const;
};

// Additive attention mask [B|1, 1, T, past+T] in `dtype` (0 = attend, lowest finite value = blocked): causal over
// absolute positions past..past+T-1, combined with key validity [B, past+T] when defined. Undefined when nothing
// is blocked (one new query and no padding).
torch::Tensor attention_mask(int64_t T, int64_t past, const torch::Tensor& key_valid, torch::Dtype dtype,
                             torch::Device device);

// ---------------------------------------------------------------------------------------------------------------
class AttentionImpl : public torch::nn::Module {
public:
    AttentionImpl(const DecoderConfig& cfg, const BuildOptions& opts);
    // x [B, T, hidden]; cos/sin [B, T, head_dim]; mask as attention_mask(); cache may be null.
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          const torch::Tensor& mask, KVCache* cache, int64_t layer_index);
    // The same for a few new positions on the CPU without autograd (run_decoder decides): x is the normed input
    // [B, T, hidden] fp32, starts as KVCache::write_starts(T).
    torch::Tensor step(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, KVCache& cache,
                       int64_t layer_index, const std::vector<int64_t>& starts);
    LoraLinear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
    RMSNorm q_norm{nullptr}, k_norm{nullptr};

private:
    int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
public:
    MlpImpl(int64_t hidden, int64_t intermediate, const BuildOptions& opts);
    torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
    LoraLinear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

// Pre-norm Qwen3 block (spec §3.1).
class DecoderLayerImpl : public torch::nn::Module {
public:
    DecoderLayerImpl(const DecoderConfig& cfg, const BuildOptions& opts);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          const torch::Tensor& mask, KVCache* cache = nullptr, int64_t layer_index = 0);
    // forward() through decode_step.h's loops (see AttentionImpl::step).
    torch::Tensor step(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, KVCache& cache,
                       int64_t layer_index, const std::vector<int64_t>& starts);
    RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
    Attention self_attn{nullptr};
    Mlp mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// Runs a stack of decoder layers and the final norm over `x` [B, T, hidden].
// attention_mask: [B, T] (1 real, 0 padding) for the new positions, or undefined.
// position_ids: [B, T] or [3, B, T]; undefined = cache length + 0..T-1 (0..T-1 without a cache).
// Returns the normed final hidden states [B, T, hidden]; advances the cache by T.
torch::Tensor run_decoder(const std::vector<DecoderLayer>& layers, RMSNorm& norm, const RotaryEmbedding& rope,
                          const torch::Tensor& x, KVCache* cache, const torch::Tensor& attention_mask,
                          const torch::Tensor& position_ids);

}  // namespace alexandria::model
