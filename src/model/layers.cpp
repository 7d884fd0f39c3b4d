#include "alexandria/model/layers.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "alexandria/io/torch_compat.h"
#include "alexandria/model/decode_step.h"
#include "alexandria/model/kernels.h"

namespace alexandria::model {

namespace {

torch::Tensor make_param(torch::IntArrayRef shape, const BuildOptions& o, double fill) {
    if (!o.init || o.device.is_meta()) return torch::empty(shape, o.options());
    return torch::full(shape, fill, o.options());
}

uint64_t fnv1a(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

double lowest_value(torch::Dtype dtype) {
    switch (dtype) {
        case torch::kFloat16: return -65504.0;
        case torch::kBFloat16: return -3.3895313892515355e38;
        case torch::kFloat64: return std::numeric_limits<double>::lowest();
        default: return std::numeric_limits<float>::lowest();
    }
}

}  // namespace

torch::Tensor random_parameter(const std::string& name, torch::IntArrayRef shape, uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(seed * 0x9E3779B97F4A7C15ull ^ fnv1a(name));
    auto opts = torch::TensorOptions().dtype(torch::kFloat32);
    if (shape.size() >= 2) {
        int64_t fan_in = 1;
        for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
        return torch::randn(shape, gen, opts) * (1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1))));
    }
    bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_bias) return torch::randn(shape, gen, opts) * 0.02;
    return torch::randn(shape, gen, opts) * 0.05 + 1.0;
}

void randomize_parameters(torch::nn::Module& module, uint64_t seed, const std::string& prefix) {
    torch::NoGradGuard no_grad;
    for (auto& p : module.named_parameters()) {
        torch::Tensor t = p.value();
        if (t.device().is_meta()) continue;
        t.copy_(random_parameter(prefix + p.key(), t.sizes(), seed));
    }
}

// ---------------------------------------------------------------------------------------------------------------
LoraLinearImpl::LoraLinearImpl(int64_t in_features, int64_t out_features, bool with_bias, const BuildOptions& opts)
    : in_(in_features), out_(out_features) {
    weight = register_parameter("weight", make_param({out_features, in_features}, opts, 0.0));
    if (with_bias) bias = register_parameter("bias", make_param({out_features}, opts, 0.0));
}

namespace {
// Inference on the CPU (no gradients): the weight-streaming kernel (kernels.h), for decoding and prefills alike.
bool use_small_linear(const torch::Tensor& x, const torch::Tensor& w) {
    return x.device().is_cpu() && !torch::GradMode::is_enabled() && x.dim() >= 1 && x.size(-1) > 0 && w.is_contiguous() &&
           (w.scalar_type() == torch::kFloat32 || w.scalar_type() == torch::kBFloat16) &&
           (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) && small_linear_supported();
}
}  // namespace

torch::Tensor LoraLinearImpl::forward(const torch::Tensor& x) {
    torch::Tensor out;
    if (packed_ || int8()) {
        if (!x.device().is_cpu() || torch::GradMode::is_enabled())
            throw Error("a linear weight is in the CPU inference layout: no gradients, no other device");
        out = int8() ? int8_linear(x, int8_, bias) : packed_linear(x, weight, bias);
    } else if (use_small_linear(x, weight)) {
        out = small_linear(x, weight, bias);
    } else if (weight.scalar_type() != x.scalar_type()) {
        // Weights stored narrower than the compute dtype (store_weights()): widened for this product.
        const auto dt = x.scalar_type();
        out = torch::linear(x, weight.to(dt), bias.defined() ? bias.to(dt) : bias);
    } else {
        out = torch::linear(x, weight, bias);
    }
    if (!has_lora() || merged_ || multiplier_ == 0.0) return out;
    // The branch runs in fp32 whatever the base dtype (PEFT casts the input to the adapter's dtype).
    torch::Tensor xin = x.to(torch::kFloat32);
    if (dropout_ > 0 && is_training()) xin = torch::dropout(xin, dropout_, true);
    torch::Tensor delta = torch::linear(torch::linear(xin, lora_A_), lora_B_) * (scaling_ * multiplier_);
    if (out.scalar_type() == torch::kFloat32) return out + delta;
    return (out.to(torch::kFloat32) + delta).to(out.scalar_type());
}

void LoraLinearImpl::attach_lora(int64_t r, double scaling, double dropout) {
    if (r <= 0) throw InputError(fmt::format("LoRA rank must be positive, got {}", r));
    if (dropout < 0 || dropout >= 1) throw InputError(fmt::format("LoRA dropout must be in [0, 1), got {}", dropout));
    if (merged_) unmerge();
    auto opts = torch::TensorOptions().device(weight.device()).dtype(torch::kFloat32);
    torch::NoGradGuard no_grad;
    lora_A_ = torch::empty({r, in_}, opts);
    torch::nn::init::kaiming_uniform_(lora_A_, std::sqrt(5.0));
    lora_B_ = torch::zeros({out_, r}, opts);
    lora_A_.set_requires_grad(true);
    lora_B_.set_requires_grad(true);
    scaling_ = scaling;
    dropout_ = dropout;
    multiplier_ = 1.0;
}

void LoraLinearImpl::detach_lora() {
    if (merged_) unmerge();
    lora_A_ = torch::Tensor();
    lora_B_ = torch::Tensor();
    scaling_ = dropout_ = 0;
    multiplier_ = 1;
}

torch::Tensor LoraLinearImpl::delta_weight() const {
    return torch::matmul(lora_B_.detach(), lora_A_.detach()).to(weight.device()) * (scaling_ * multiplier_);
}

void LoraLinearImpl::set_lora_multiplier(double m) {
    if (!std::isfinite(m)) throw InputError("LoRA scale must be finite");
    if (merged_) {
        unmerge();
        multiplier_ = m;
        merge();
    } else {
        multiplier_ = m;
    }
}

void LoraLinearImpl::merge() {
    if (!has_lora() || merged_) return;
    add_to_weight(delta_weight());
    merged_ = true;
}

void LoraLinearImpl::unmerge() {
    if (!has_lora() || !merged_) return;
    add_to_weight(-delta_weight());
    merged_ = false;
}

void LoraLinearImpl::add_to_weight(const torch::Tensor& delta) {
    // In fp32, rounded to the weight's dtype; the inference forms are rebuilt from the new weight.
    if (released_) throw Error("cannot merge an adapter into int8 weights whose source weights were released");
    torch::NoGradGuard no_grad;
    const bool packed = packed_;
    set_inference_layout(false);
    weight.copy_(weight.to(torch::kFloat32) + delta);
    if (int8()) int8_ = quantize_weight(weight);
    if (packed) set_inference_layout(true);
}

bool LoraLinearImpl::set_int8(bool on) {
    if (released_) throw Error("int8 weights whose source weights were released cannot be changed");
    torch::NoGradGuard no_grad;
    if (!on) {
        int8_ = Int8Weight{};
        return true;
    }
    if (!packable(weight)) return false;
    int8_ = quantize_weight(packed_ ? unpack_weight(weight) : weight);
    return true;
}

bool LoraLinearImpl::release_weight() {
    if (!int8()) return false;
    if (released_) return true;
    torch::NoGradGuard no_grad;
    weight.set_data(torch::empty({0}, weight.options()));
    released_ = true;
    return true;
}

bool LoraLinearImpl::set_inference_layout(bool on) {
    if (on == packed_) return true;
    if (released_) throw Error("int8 weights whose source weights were released cannot be reordered");
    torch::NoGradGuard no_grad;
    if (on && !packable(weight)) return false;
    // A new storage (the packed one on huge pages, kernels.h); the old one is freed.
    weight.set_data(on ? pack_weight(weight) : unpack_weight(weight));
    packed_ = on;
    return true;
}

void LoraLinearImpl::move_lora(torch::Device device) {
    if (!has_lora() || lora_A_.device() == device) return;
    bool grad = lora_A_.requires_grad();
    lora_A_ = lora_A_.detach().to(device).set_requires_grad(grad);
    lora_B_ = lora_B_.detach().to(device).set_requires_grad(grad);
}

void LoraLinearImpl::drop_inference_forms() {
    set_inference_layout(false);
    set_int8(false);
}

void LoraLinearImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
    drop_inference_forms();
    torch::nn::Module::to(device, dtype, non_blocking);
    move_lora(device);
}
void LoraLinearImpl::to(torch::Dtype dtype, bool non_blocking) {
    drop_inference_forms();
    torch::nn::Module::to(dtype, non_blocking);
}
void LoraLinearImpl::to(torch::Device device, bool non_blocking) {
    drop_inference_forms();
    torch::nn::Module::to(device, non_blocking);
    move_lora(device);
}

// ---------------------------------------------------------------------------------------------------------------
EmbeddingImpl::EmbeddingImpl(int64_t rows, int64_t dim, const BuildOptions& opts) {
    weight = register_parameter("weight", make_param({rows, dim}, opts, 0.0));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) {
    // A device-side out-of-range index aborts the process on CUDA; on the CPU we can afford to check and say so.
    if (ids.device().is_cpu() && ids.numel() > 0) {
        int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
        if (lo < 0 || hi >= weight.size(0))
            throw InputError(fmt::format("embedding id {} outside [0, {})", lo < 0 ? lo : hi, weight.size(0)));
    }
    auto out = torch::embedding(weight, ids);
    return compute_dtype_ && *compute_dtype_ != out.scalar_type() ? out.to(*compute_dtype_) : out;
}

void keep_weights_narrow(torch::nn::Module& module, torch::Dtype compute) {
    torch::NoGradGuard no_grad;
    std::set<torch::TensorImpl*> narrow;
    for (auto& m : module.modules(/*include_self=*/true)) {
        if (auto* lin = dynamic_cast<LoraLinearImpl*>(m.get())) {
            narrow.insert(lin->weight.unsafeGetTensorImpl());
        } else if (auto* emb = dynamic_cast<EmbeddingImpl*>(m.get())) {
            narrow.insert(emb->weight.unsafeGetTensorImpl());
            emb->set_compute_dtype(compute);
        }
    }
    for (auto& p : module.parameters(/*recurse=*/true))
        if (!narrow.count(p.unsafeGetTensorImpl()) && p.is_floating_point() && p.scalar_type() != compute)
            p.set_data(p.to(compute));
    for (auto& b : module.buffers(/*recurse=*/true))
        if (b.is_floating_point() && b.scalar_type() != compute) b.set_data(b.to(compute));
}

int64_t use_inference_layout(torch::nn::Module& module) {
    std::map<const void*, int> owners;  // storage → parameters using it
    for (auto& p : module.parameters(/*recurse=*/true))
        if (p.defined() && p.numel() > 0) ++owners[p.storage().data()];
    int64_t n = 0;
    for (auto& m : module.modules(/*include_self=*/true))
        if (auto* lin = dynamic_cast<LoraLinearImpl*>(m.get()))
            if (owners[lin->weight.storage().data()] == 1 && lin->set_inference_layout(true)) {
                ++n;
                io::return_freed_memory();  // the natural-order copy, so that peak memory grows by one matrix only
            }
    return n;
}

int64_t use_int8_weights(torch::nn::Module& module, bool release_source) {
    int64_t n = 0;
    for (auto& m : module.modules(/*include_self=*/true))
        if (auto* lin = dynamic_cast<LoraLinearImpl*>(m.get()))
            if (lin->set_int8(true)) {
                ++n;
                if (release_source) lin->release_weight();
                io::return_freed_memory();  // quantizing's fp32 temporaries (and the source), which would pile up
            }
    return n;
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const BuildOptions& opts) : eps(eps_) {
    weight = register_parameter("weight", make_param({dim}, opts, 1.0));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
    torch::Tensor xf = x.to(torch::kFloat32);
    xf = xf * torch::rsqrt(xf.pow(2).mean(-1, true) + eps);
    return weight * xf.to(x.scalar_type());
}

// ---------------------------------------------------------------------------------------------------------------
struct RotaryEmbedding::Cache {
    std::mutex mu;
    std::vector<std::tuple<torch::Device, torch::Tensor, torch::Tensor>> per_device;
};

RotaryEmbedding::RotaryEmbedding(const DecoderConfig& cfg)
    : head_dim_(cfg.head_dim), theta_(cfg.rope_theta), cache_(std::make_shared<Cache>()) {
    int64_t half = head_dim_ / 2;
    slot_rows_.assign(half, 0);
    if (!cfg.mrope_section.empty()) {
        multimodal_ = true;
        for (int64_t j = 0; j < half; ++j) {
            if (j % 3 == 1 && j < 3 * cfg.mrope_section[1]) slot_rows_[j] = 1;
            else if (j % 3 == 2 && j < 3 * cfg.mrope_section[2]) slot_rows_[j] = 2;
        }
    }
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::tables(torch::Device dev) const {
    std::lock_guard<std::mutex> lock(cache_->mu);
    for (const auto& [d, inv, rows] : cache_->per_device)
        if (d == dev) return {inv, rows};
    // As the reference: 1 / θ^(arange(0, D, 2) / D), all in fp32.
    auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
    torch::Tensor exponent = torch::arange(0, head_dim_, 2, torch::TensorOptions().dtype(torch::kInt64)).to(torch::kFloat32) /
                             static_cast<float>(head_dim_);
    torch::Tensor inv_freq = (1.0 / torch::pow(static_cast<float>(theta_), exponent)).to(f32).to(dev);
    torch::Tensor rows = torch::tensor(slot_rows_, torch::TensorOptions().dtype(torch::kInt64)).to(dev);
    cache_->per_device.emplace_back(dev, inv_freq, rows);
    return {inv_freq, rows};
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbedding::cos_sin(const torch::Tensor& positions,
                                                                 torch::Dtype dtype) const {
    if (!cache_) throw Error("RotaryEmbedding used before construction");
    auto [inv_freq, rows] = tables(positions.device());
    torch::Tensor freqs;
    if (positions.dim() == 3) {
        if (positions.size(0) != 3) throw Error("rotary positions must be [B, T] or [3, B, T]");
        torch::Tensor f3 = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // [3, B, T, half]
        if (multimodal_) {
            auto idx = rows.view({1, 1, 1, -1}).expand({1, f3.size(1), f3.size(2), f3.size(3)});
            freqs = f3.gather(0, idx).squeeze(0);
        } else {
            freqs = f3[0];
        }
    } else if (positions.dim() == 2) {
        freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // [B, T, half]
    } else {
        throw Error("rotary positions must be [B, T] or [3, B, T]");
    }
    torch::Tensor emb = torch::cat({freqs, freqs}, -1);
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    int64_t half = x.size(-1) / 2;
    torch::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
    torch::Tensor rotated = torch::cat({-x2, x1}, -1);
    return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

// ---------------------------------------------------------------------------------------------------------------
KVCache::KVCache(int64_t num_layers, int64_t batch, int64_t num_kv_heads, int64_t head_dim, int64_t capacity,
                 const torch::TensorOptions& opts)
    : capacity_(capacity), batch_(batch) {
    if (capacity <= 0 || batch <= 0) throw Error("KV cache needs a positive batch and capacity");
    for (int64_t i = 0; i < num_layers; ++i) {
        k_.push_back(torch::empty({batch, num_kv_heads, capacity, head_dim}, opts));
        v_.push_back(torch::empty({batch, num_kv_heads, capacity, head_dim}, opts));
    }
}

void KVCache::reset() {
    length_ = 0;
    valid_ = torch::Tensor();
    step_mask_ = torch::Tensor();
    if (ragged()) std::fill(row_len_.begin(), row_len_.end(), 0);
}

std::pair<torch::Tensor, torch::Tensor> KVCache::append(int64_t layer, const torch::Tensor& k, const torch::Tensor& v) {
    int64_t T = k.size(2);
    if (is_static()) {
        if (T != 1 || k.size(0) != batch_) throw Error("static KV cache: one new position per row");
        using torch::indexing::Slice;
        k_[layer].index_put_({step_rows_, Slice(), static_pos_}, k.select(2, 0));
        v_[layer].index_put_({step_rows_, Slice(), static_pos_}, v.select(2, 0));
        return {k_[layer], v_[layer]};
    }
    if (ragged()) {
        if (T != 1 || k.size(0) != active_)
            throw Error(fmt::format("ragged KV cache: one new position for each of {} rows, got [{}, ., {}]", active_,
                                    k.size(0), T));
        // Each row writes at its own length: one scatter per tensor instead of a copy per row.
        using torch::indexing::Slice;
        auto rows = step_rows_, pos = step_pos_;
        k_[layer].index_put_({rows, Slice(), pos}, k.select(2, 0));
        v_[layer].index_put_({rows, Slice(), pos}, v.select(2, 0));
        const int64_t S = max_active_length() + 1;
        return {k_[layer].narrow(0, 0, active_).narrow(2, 0, S), v_[layer].narrow(0, 0, active_).narrow(2, 0, S)};
    }
    if (length_ + T > capacity_)
        throw Error(fmt::format("KV cache capacity {} exceeded ({} cached + {} new positions)", capacity_, length_, T));
    if (k.size(0) != batch_) throw Error(fmt::format("KV cache holds batch {}, got {}", batch_, k.size(0)));
    k_[layer].narrow(2, length_, T).copy_(k);
    v_[layer].narrow(2, length_, T).copy_(v);
    return {k_[layer].narrow(2, 0, length_ + T), v_[layer].narrow(2, 0, length_ + T)};
}

void KVCache::set_key_mask(const torch::Tensor& attention_mask, int64_t T) {
    if (is_static()) {
        if (attention_mask.defined() || T != 1) throw Error("static KV cache: one new position, no padding");
        auto lopt = torch::TensorOptions().dtype(torch::kInt64).device(static_pos_.device());
        step_mask_ = torch::arange(capacity_, lopt).unsqueeze(0) <= static_pos_.unsqueeze(1);
        return;
    }
    if (ragged()) {
        if (attention_mask.defined()) throw Error("ragged KV cache: padding masks are not supported");
        const int64_t S = max_active_length() + T;
        if (S > capacity_) throw Error(fmt::format("KV cache capacity {} exceeded ({} positions)", capacity_, S));
        auto dev = k_[0].device();
        auto lopt = torch::TensorOptions().dtype(torch::kInt64);
        std::vector<int64_t> lens(row_len_.begin(), row_len_.begin() + active_);
        step_pos_ = torch::tensor(lens, lopt).to(dev);
        step_rows_ = torch::arange(active_, lopt.device(dev));
        // Row b sees its own positions 0..len_b (the new one included), nothing of the longer rows' tails.
        step_mask_ = torch::arange(S, lopt.device(dev)).unsqueeze(0) <= step_pos_.unsqueeze(1);
        return;
    }
    if (length_ + T > capacity_)
        throw Error(fmt::format("KV cache capacity {} exceeded ({} cached + {} new positions)", capacity_, length_, T));
    if (!attention_mask.defined()) {
        if (valid_.defined()) valid_.narrow(1, length_, T).fill_(true);
        return;
    }
    if (!valid_.defined()) {
        valid_ = torch::ones({batch_, capacity_}, torch::TensorOptions().dtype(torch::kBool).device(k_[0].device()));
    }
    valid_.narrow(1, length_, T).copy_(attention_mask.to(torch::kBool));
}

torch::Tensor KVCache::key_mask(int64_t T) const {
    if (ragged() || is_static()) return step_mask_;
    if (!valid_.defined()) return torch::Tensor();
    return valid_.narrow(1, 0, length_ + T);
}

std::vector<int64_t> KVCache::write_starts(int64_t T) const {
    if (is_static() || valid_.defined()) return {};
    if (ragged()) {
        if (T != 1) return {};
        return std::vector<int64_t>(row_len_.begin(), row_len_.begin() + active_);
    }
    if (length_ + T > capacity_) return {};
    return std::vector<int64_t>(static_cast<size_t>(batch_), length_);
}

void KVCache::commit(int64_t T) {
    if (is_static()) return;
    if (ragged()) {
        for (int64_t b = 0; b < active_; ++b) row_len_[static_cast<size_t>(b)] += T;
        return;
    }
    length_ += T;
}

void KVCache::set_static(const torch::Tensor& positions) {
    if (positions.dim() != 1 || positions.size(0) != batch_ || positions.scalar_type() != torch::kLong)
        throw Error(fmt::format("static KV cache: positions must be [{}] int64", batch_));
    static_pos_ = positions;
    step_rows_ = torch::arange(batch_, positions.options());
    // Every step reads the whole capacity (masked beyond the position): the unwritten part must be finite.
    for (auto& t : k_) t.narrow(2, length_, capacity_ - length_).zero_();
    for (auto& t : v_) t.narrow(2, length_, capacity_ - length_).zero_();
}

void KVCache::set_ragged(int64_t active) {
    if (valid_.defined()) throw Error("ragged KV cache: the cache already holds padded rows");
    row_len_.assign(static_cast<size_t>(batch_), 0);
    length_ = 0;
    // Rows attend over the longest row's length with their own tail masked; masking adds a large negative score,
    // which only works on finite keys, so never-written storage must not hold NaN/inf bit patterns.
    for (auto& t : k_) t.zero_();
    for (auto& t : v_) t.zero_();
    set_active(active);
}

void KVCache::set_active(int64_t n) {
    if (n < 0 || n > batch_) throw Error(fmt::format("KV cache: {} active rows of {}", n, batch_));
    active_ = n;
}

int64_t KVCache::max_active_length() const {
    int64_t m = 0;
    for (int64_t b = 0; b < active_; ++b) m = std::max(m, row_len_[static_cast<size_t>(b)]);
    return m;
}

torch::Tensor KVCache::positions() const {
    std::vector<int64_t> lens(row_len_.begin(), row_len_.begin() + active_);
    return torch::tensor(lens, torch::TensorOptions().dtype(torch::kInt64)).view({-1, 1}).to(k_[0].device());
}

KVCache KVCache::row_view(int64_t row) const {
    if (row < 0 || row >= batch_) throw Error(fmt::format("KV cache row {} outside [0, {})", row, batch_));
    KVCache v;
    for (size_t i = 0; i < k_.size(); ++i) {
        v.k_.push_back(k_[i].narrow(0, row, 1));
        v.v_.push_back(v_[i].narrow(0, row, 1));
    }
    v.capacity_ = capacity_;
    v.batch_ = 1;
    return v;
}

void KVCache::set_row_length(int64_t row, int64_t len) {
    if (!ragged()) throw Error("KV cache: row lengths need ragged mode");
    if (len < 0 || len > capacity_) throw Error(fmt::format("KV cache: row length {} beyond capacity {}", len, capacity_));
    row_len_.at(static_cast<size_t>(row)) = len;
}

void KVCache::move_row(int64_t from, int64_t to) {
    if (from == to) return;
    const int64_t len = row_len_.at(static_cast<size_t>(from));
    for (size_t i = 0; i < k_.size(); ++i) {
        k_[i][to].narrow(1, 0, len).copy_(k_[i][from].narrow(1, 0, len));
        v_[i][to].narrow(1, 0, len).copy_(v_[i][from].narrow(1, 0, len));
    }
    row_len_.at(static_cast<size_t>(to)) = len;
}

void KVCache::reserve(int64_t capacity) {
    if (capacity <= capacity_) return;
    for (size_t i = 0; i < k_.size(); ++i) {
        auto sizes = k_[i].sizes().vec();
        sizes[2] = capacity;
        auto nk = torch::zeros(sizes, k_[i].options()), nv = torch::zeros(sizes, v_[i].options());
        nk.narrow(2, 0, capacity_).copy_(k_[i]);
        nv.narrow(2, 0, capacity_).copy_(v_[i]);
        k_[i] = nk;
        v_[i] = nv;
    }
    if (valid_.defined()) {
        auto nv = torch::ones({batch_, capacity}, valid_.options());
        nv.narrow(1, 0, capacity_).copy_(valid_);
        valid_ = nv;
    }
    capacity_ = capacity;
}

torch::Tensor attention_mask(int64_t T, int64_t past, const torch::Tensor& key_valid, torch::Dtype dtype,
                             torch::Device device) {
    if (T == 1 && !key_valid.defined()) return torch::Tensor();
    int64_t S = past + T;
    auto lopt = torch::TensorOptions().dtype(torch::kInt64).device(device);
    torch::Tensor q_pos = torch::arange(past, S, lopt).unsqueeze(1);
    torch::Tensor k_pos = torch::arange(0, S, lopt).unsqueeze(0);
    torch::Tensor allowed = (k_pos <= q_pos).unsqueeze(0);  // [1, T, S]
    if (key_valid.defined()) allowed = allowed & key_valid.to(device).to(torch::kBool).unsqueeze(1);
    allowed = allowed.unsqueeze(1);  // [B|1, 1, T, S]
    return torch::zeros(allowed.sizes(), torch::TensorOptions().dtype(dtype).device(device))
        .masked_fill(allowed.logical_not(), lowest_value(dtype));
}

// ---------------------------------------------------------------------------------------------------------------
AttentionImpl::AttentionImpl(const DecoderConfig& cfg, const BuildOptions& opts)
    : heads_(cfg.num_attention_heads), kv_heads_(cfg.num_key_value_heads), head_dim_(cfg.head_dim) {
    int64_t H = cfg.hidden_size;
    q_proj = register_module("q_proj", LoraLinear(H, heads_ * head_dim_, false, opts));
    k_proj = register_module("k_proj", LoraLinear(H, kv_heads_ * head_dim_, false, opts));
    v_proj = register_module("v_proj", LoraLinear(H, kv_heads_ * head_dim_, false, opts));
    o_proj = register_module("o_proj", LoraLinear(heads_ * head_dim_, H, false, opts));
    q_norm = register_module("q_norm", RMSNorm(head_dim_, cfg.rms_norm_eps, opts));
    k_norm = register_module("k_norm", RMSNorm(head_dim_, cfg.rms_norm_eps, opts));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const torch::Tensor& mask, KVCache* cache, int64_t layer_index) {
    int64_t B = x.size(0), T = x.size(1);
    // q/k norms act per head, before RoPE (spec §3.1).
    torch::Tensor q = q_norm(q_proj(x).view({B, T, heads_, head_dim_})).transpose(1, 2);
    torch::Tensor k = k_norm(k_proj(x).view({B, T, kv_heads_, head_dim_})).transpose(1, 2);
    torch::Tensor v = v_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
    if (cache) std::tie(k, v) = cache->append(layer_index, k, v);
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
    if (T == 1 && heads_ != kv_heads_) {
        // Decoding: the query heads that share a key/value head become that head's "query rows", so the cache is
        // read in place instead of being copied heads/kv_heads times every step (the mask has no query axis).
        torch::Tensor qg = q.reshape({B, kv_heads_, heads_ / kv_heads_, head_dim_});
        torch::Tensor out;
        if (x.device().is_cpu() && !torch::GradMode::is_enabled()) {
            // The same formula as two batched products and a softmax: on the CPU the fused kernel's fixed costs
            // dominate these few query rows (0.6B shapes, 8 lines: 17 keys 272 -> 89 us, 120 keys 715 -> 471 us).
            torch::Tensor scores = torch::matmul(qg, k.transpose(-1, -2)).mul_(scale);  // [B, kv, G, S]
            if (mask.defined())
                scores = mask.is_floating_point() ? scores.add_(mask.to(scores.scalar_type()))
                                                  : scores.masked_fill_(mask.logical_not(), lowest_value(scores.scalar_type()));
            out = torch::matmul(scores.softmax(-1), v).reshape({B, heads_ * head_dim_});
        } else {
            out = compat::attention(qg, k, v, mask, scale).reshape({B, heads_ * head_dim_});
        }
        return o_proj(out.view({B, 1, heads_ * head_dim_}));
    }
    if (heads_ != kv_heads_) {
        // Query head h reads key/value head h / (heads / kv_heads).
        k = k.repeat_interleave(heads_ / kv_heads_, 1);
        v = v.repeat_interleave(heads_ / kv_heads_, 1);
    }
    torch::Tensor out = compat::attention(q, k, v, mask, scale);
    return o_proj(out.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

torch::Tensor AttentionImpl::step(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                  KVCache& cache, int64_t layer_index, const std::vector<int64_t>& starts) {
    torch::Tensor out = decode::attention(q_proj(x).contiguous(), k_proj(x).contiguous(), v_proj(x).contiguous(),
                                          q_norm->weight, k_norm->weight, q_norm->eps, cos, sin, cache.keys(layer_index),
                                          cache.values(layer_index), starts, heads_, kv_heads_);
    return o_proj(out);
}

MlpImpl::MlpImpl(int64_t hidden, int64_t intermediate, const BuildOptions& opts) {
    gate_proj = register_module("gate_proj", LoraLinear(hidden, intermediate, false, opts));
    up_proj = register_module("up_proj", LoraLinear(hidden, intermediate, false, opts));
    down_proj = register_module("down_proj", LoraLinear(intermediate, hidden, false, opts));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }

DecoderLayerImpl::DecoderLayerImpl(const DecoderConfig& cfg, const BuildOptions& opts) {
    input_layernorm = register_module("input_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, opts));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, opts));
    self_attn = register_module("self_attn", Attention(cfg, opts));
    mlp = register_module("mlp", Mlp(cfg.hidden_size, cfg.intermediate_size, opts));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const torch::Tensor& mask, KVCache* cache, int64_t layer_index) {
    torch::Tensor h = x + self_attn(input_layernorm(x), cos, sin, mask, cache, layer_index);
    return h + mlp(post_attention_layernorm(h));
}

torch::Tensor DecoderLayerImpl::step(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     KVCache& cache, int64_t layer_index, const std::vector<int64_t>& starts) {
    auto& post = post_attention_layernorm;
    torch::Tensor h = self_attn->step(decode::rms_norm(x, input_layernorm->weight, input_layernorm->eps), cos, sin,
                                      cache, layer_index, starts)
                          .contiguous();
    torch::Tensor hn = decode::add_rms_norm(h, x, post->weight, post->eps);  // h = attention + x, as x + attention
    torch::Tensor m = decode::silu_mul(mlp->gate_proj(hn).contiguous(), mlp->up_proj(hn).contiguous());
    return mlp->down_proj(m).add_(h);
}

torch::Tensor run_decoder(const std::vector<DecoderLayer>& layers, RMSNorm& norm, const RotaryEmbedding& rope,
                          const torch::Tensor& x, KVCache* cache, const torch::Tensor& attn_mask,
                          const torch::Tensor& position_ids) {
    if (x.dim() != 3) throw Error(fmt::format("decoder input must be [B, T, hidden], got {} dims", x.dim()));
    int64_t B = x.size(0), T = x.size(1);
    if (cache && !cache->defined()) cache = nullptr;
    if (cache && cache->num_layers() != static_cast<int64_t>(layers.size()))
        throw Error("KV cache was made for a different decoder");
    int64_t past = cache ? cache->length() : 0;
    if (attn_mask.defined() && (attn_mask.dim() != 2 || attn_mask.size(0) != B || attn_mask.size(1) != T))
        throw Error("attention_mask must be [B, T] for the new positions");
    torch::Tensor pos = position_ids;
    if (!pos.defined())
        pos = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kInt64).device(x.device()))
                  .unsqueeze(0)
                  .expand({B, T});
    auto [cos, sin] = rope.cos_sin(pos.to(x.device()), x.scalar_type());
    torch::Tensor key_valid;
    if (cache) {
        cache->set_key_mask(attn_mask, T);
        key_valid = cache->key_mask(T);
    } else if (attn_mask.defined()) {
        key_valid = attn_mask.to(torch::kBool);
    }
    // A few new positions on the CPU without autograd, each row attending to exactly its own keys (a ragged cache's
    // step mask says no more than its row lengths; padding makes write_starts() empty): the layers run through
    // decode_step.h's loops instead of ~50 libtorch operations each.
    std::vector<int64_t> starts;
    if (cache && T <= decode::kMaxPositions && x.device().is_cpu() &&
        x.scalar_type() == torch::kFloat32 && !torch::GradMode::is_enabled() &&
        cache->keys(0).scalar_type() == torch::kFloat32 && decode::supported())
        starts = cache->write_starts(T);
    if (!starts.empty() && static_cast<int64_t>(starts.size()) == B) {
        torch::Tensor h = x.contiguous();
        for (size_t i = 0; i < layers.size(); ++i) {
            DecoderLayer layer = layers[i];
            h = layer->step(h, cos, sin, *cache, static_cast<int64_t>(i), starts);
        }
        cache->commit(T);
        return decode::rms_norm(h, norm->weight, norm->eps);
    }
    torch::Tensor mask = attention_mask(T, past, key_valid, x.scalar_type(), x.device());
    torch::Tensor h = x;
    for (size_t i = 0; i < layers.size(); ++i) {
        DecoderLayer layer = layers[i];  // a holder copy: const holders only give const access
        h = layer->forward(h, cos, sin, mask, cache, static_cast<int64_t>(i));
    }
    if (cache) cache->commit(T);
    return norm(h);
}

}  // namespace alexandria::model
