// Leaf layers, attention helpers and strict loading shared by the encoder and the decoder.
#include <torch/torch.h>

#include "alexandria/codec/modules.h"
#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/io/torch_compat.h"
#include "codec/cpu_kernels.h"

namespace alexandria::codec {

ConvLayerImpl::ConvLayerImpl(int64_t in, int64_t out, int64_t k, const torch::TensorOptions& o, bool has_bias,
                             int64_t stride_, int64_t dilation_, int64_t groups_)
    : kernel(k), stride(stride_), dilation(dilation_), groups(groups_) {
    weight = register_parameter("weight", torch::empty({out, in / groups_, k}, o));
    if (has_bias) bias = register_parameter("bias", torch::empty({out}, o));
}

torch::Tensor ConvLayerImpl::forward(const torch::Tensor& x) {
    const int64_t s[1] = {stride}, p[1] = {0}, d[1] = {dilation};
    return torch::conv1d(x, weight, bias, at::IntArrayRef(s), at::IntArrayRef(p), at::IntArrayRef(d), groups);
}

ConvTransposeLayerImpl::ConvTransposeLayerImpl(int64_t in, int64_t out, int64_t k, int64_t s,
                                               const torch::TensorOptions& o)
    : kernel(k), stride(s) {
    weight = register_parameter("weight", torch::empty({in, out, k}, o));
    bias = register_parameter("bias", torch::empty({out}, o));
}

torch::Tensor ConvTransposeLayerImpl::forward(const torch::Tensor& x) {
    return torch::conv_transpose1d(x, weight, bias, {stride}, {0});
}

LinearLayerImpl::LinearLayerImpl(int64_t in, int64_t out, bool has_bias, const torch::TensorOptions& o) {
    weight = register_parameter("weight", torch::empty({out, in}, o));
    if (has_bias) bias = register_parameter("bias", torch::empty({out}, o));
}

bool KernelForm::runs_on(torch::Device device, torch::Dtype dtype, const torch::Tensor& w) {
    return device.is_cpu() && dtype == torch::kFloat32 && w.scalar_type() == torch::kFloat32 && io::cpu_kernels_enabled();
}

bool LinearLayerImpl::kernel_applies(torch::Device device, torch::Dtype dtype) const {
    return KernelForm::runs_on(device, dtype, weight);
}

void LinearLayerImpl::prepare_kernel() {
    const int64_t n = weight.size(0), k = weight.size(1);
    kernel_form.make(weight, cpu::linear_weights_size(n, k),
                     [&](const float* w, float* u) { cpu::transform_linear_weights(w, n, k, u); });
}

torch::Tensor LinearLayerImpl::forward(const torch::Tensor& x) {
    if (KernelForm::needs_grad(x, weight) || !kernel_form.current(weight) || !x.device().is_cpu() ||
        x.scalar_type() != torch::kFloat32)
        return torch::linear(x, weight, bias);
    const int64_t n = weight.size(0), k = weight.size(1);
    auto xc = x.reshape({-1, k}).contiguous();
    auto y = torch::empty({xc.size(0), n}, xc.options());
    cpu::linear(xc.data_ptr<float>(), xc.size(0), k, kernel_form.form.data_ptr<float>(),
                bias.defined() ? bias.data_ptr<float>() : nullptr, n, y.data_ptr<float>());
    auto sizes = x.sizes().vec();
    sizes.back() = n;
    return y.view(sizes);
}

LayerNormLayerImpl::LayerNormLayerImpl(int64_t dim, double eps_, const torch::TensorOptions& o) : eps(eps_) {
    weight = register_parameter("weight", torch::empty({dim}, o));
    bias = register_parameter("bias", torch::empty({dim}, o));
}

torch::Tensor LayerNormLayerImpl::forward(const torch::Tensor& x) {
    return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const torch::TensorOptions& o) : eps(eps_) {
    weight = register_parameter("weight", torch::empty({dim}, o));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
    auto h = x.scalar_type() == torch::kFloat64 ? x : x.to(torch::kFloat32);  // at least float32
    auto var = h.pow(2).mean(-1, true);
    h = h * torch::rsqrt(var + eps);
    return weight * h.to(x.scalar_type());
}

LayerScaleImpl::LayerScaleImpl(int64_t dim, const torch::TensorOptions& o) {
    scale = register_parameter("scale", torch::empty({dim}, o));
}

SnakeBetaImpl::SnakeBetaImpl(int64_t channels, const torch::TensorOptions& o) {
    alpha = register_parameter("alpha", torch::empty({channels}, o));
    beta = register_parameter("beta", torch::empty({channels}, o));
}

bool SnakeBetaImpl::one_pass(const torch::Tensor& x) const {
    return !needs_grad(x) && x.dim() == 3 && KernelForm::runs_on(x.device(), x.scalar_type(), alpha);
}

bool SnakeBetaImpl::needs_grad(const torch::Tensor& x) const {
    return KernelForm::needs_grad(x, alpha) || KernelForm::needs_grad(x, beta);
}

torch::Tensor SnakeBetaImpl::forward(const torch::Tensor& x) {
    if (one_pass(x)) {
        auto out = torch::empty_like(x, torch::MemoryFormat::Contiguous);
        forward_into(x, out);
        return out;
    }
    auto a = torch::exp(alpha.unsqueeze(0).unsqueeze(-1));
    auto inv_b = 1.0 / (torch::exp(beta.unsqueeze(0).unsqueeze(-1)) + 1e-9);
    if (needs_grad(x))
        return x + inv_b * torch::pow(torch::sin(x * a), 2);
    // The same operations in the same order, in one buffer: these are the decoder's largest tensors, and each
    // fresh one costs page faults as well as the pass itself.
    auto y = x * a;
    y.sin_().square_().mul_(inv_b).add_(x);
    return y;
}

void SnakeBetaImpl::forward_into(const torch::Tensor& x, torch::Tensor out) {
    if (!one_pass(x) || out.stride(-1) != 1 || out.stride(0) != out.size(1) * out.stride(1)) {
        out.copy_(forward(x));
        return;
    }
    // The per-channel factors exactly as the libtorch form computes them.
    auto a = torch::exp(alpha).contiguous();
    auto inv_b = (1.0 / (torch::exp(beta) + 1e-9)).contiguous();
    auto xc = x.contiguous();
    const int64_t rows = xc.size(0) * xc.size(1), len = xc.size(2);
    cpu::snake_beta(xc.data_ptr<float>(), len, out.data_ptr<float>(), out.stride(1), rows, len, a.data_ptr<float>(),
                    inv_b.data_ptr<float>(), alpha.size(0));
}

std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(int64_t start, int64_t len, int64_t head_dim, double theta,
                                                       torch::Device device, torch::Dtype dtype) {
    const auto at_least_f32 = dtype == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
    auto exponent = torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(torch::kInt64).device(device))
                        .to(at_least_f32) / double(head_dim);
    auto inv_freq = 1.0 / torch::pow(theta, exponent);
    auto pos = torch::arange(start, start + len, torch::TensorOptions().dtype(torch::kInt64).device(device))
                   .to(at_least_f32);
    auto freqs = torch::outer(pos, inv_freq);
    auto emb = torch::cat({freqs, freqs}, -1);
    return {emb.cos().to(dtype).view({1, 1, len, head_dim}), emb.sin().to(dtype).view({1, 1, len, head_dim})};
}

torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    int64_t half = x.size(-1) / 2;
    auto x1 = x.narrow(-1, 0, half);
    auto x2 = x.narrow(-1, half, half);
    auto rotated = torch::cat({-x2, x1}, -1);
    return x * cos + rotated * sin;
}

torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t q_offset, int64_t window, double scale) {
    // Scores for a block of queries cost heads × block × keys; 256-query blocks keep a long encoder input
    // (T25 in the thousands) within a few hundred MB while short inputs run as one block.
    constexpr int64_t kBlock = 256;
    const int64_t lq = q.size(2), lk = k.size(2);
    auto idx_opts = torch::TensorOptions().dtype(torch::kInt64).device(q.device());
    std::vector<torch::Tensor> outs;
    for (int64_t a = 0; a < lq; a += kBlock) {
        int64_t b = std::min(lq, a + kBlock);
        int64_t hi = std::min(lk, q_offset + b);  // exclusive: last visible key of the block's last query + 1
        int64_t lo = window > 0 ? std::max<int64_t>(0, q_offset + a - window + 1) : 0;
        auto qpos = torch::arange(q_offset + a, q_offset + b, idx_opts).unsqueeze(1);
        auto kpos = torch::arange(lo, hi, idx_opts).unsqueeze(0);
        auto allowed = kpos <= qpos;
        if (window > 0) allowed = allowed & (kpos > qpos - window);
        auto mask = torch::zeros({b - a, hi - lo}, q.options())
                        .masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
        outs.push_back(compat::attention(q.narrow(2, a, b - a), k.narrow(2, lo, hi - lo), v.narrow(2, lo, hi - lo),
                                         mask, scale));
    }
    return outs.size() == 1 ? outs[0] : torch::cat(outs, 2);
}

std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m) {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto& p : m.named_parameters(true)) out.emplace_back(p.key(), p.value());
    for (const auto& b : m.named_buffers(true)) out.emplace_back(b.key(), b.value());
    return out;
}

namespace {
std::string shape_str(c10::IntArrayRef s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
}
}  // namespace

void load_state(torch::nn::Module& m, const io::SafetensorsFile& file, const std::set<std::string>& keep_mapped) {
    auto tensors = named_tensors(m);
    std::vector<std::string> missing, misshaped, unexpected;
    std::set<std::string> known;
    for (auto& [name, t] : tensors) {
        known.insert(name);
        if (!file.contains(name)) {
            missing.push_back(name + " " + shape_str(t.sizes()));
            continue;
        }
        const auto& info = file.info(name);
        if (c10::IntArrayRef(info.shape) != t.sizes())
            misshaped.push_back(fmt::format("{}: file {} {}, model {}", name, io::dtype_name(info.dtype),
                                            shape_str(info.shape), shape_str(t.sizes())));
    }
    for (const auto& info : file.tensors())
        if (!known.count(info.name)) unexpected.push_back(info.name + " " + shape_str(info.shape));
    if (!missing.empty() || !misshaped.empty() || !unexpected.empty()) {
        auto list = [](const char* what, const std::vector<std::string>& v) {
            if (v.empty()) return std::string();
            std::string s = fmt::format("\n  {} {}:", v.size(), what);
            for (size_t i = 0; i < v.size(); ++i) {
                if (i == 40) {
                    s += fmt::format("\n    ... and {} more", v.size() - 40);
                    break;
                }
                s += "\n    " + v[i];
            }
            return s;
        };
        throw InputError(fmt::format("{}: does not match the speech tokenizer layout of its config.json:{}{}{}",
                                     file.path(), list("missing tensors", missing),
                                     list("mis-shaped tensors", misshaped), list("unexpected tensors", unexpected)));
    }
    torch::NoGradGuard no_grad;
    for (auto& [name, t] : tensors) {
        auto src = file.view(name);
        if (!src.is_floating_point())
            throw InputError(fmt::format("{}: tensor {} has dtype {}, expected a floating-point type", file.path(), name,
                                         io::dtype_name(file.info(name).dtype)));
        // The encoder only turns reference clips into codes (ICL prompts, dataset preparation): where the file holds
        // a tensor as wanted (fp32, CPU), it stays in the file's mapping and comes into memory when the encoder first
        // runs (215 MB of the 12 Hz tokenizer's 650, which an x-vector or CustomVoice synthesis never reads).
        // The decoder's weights that our CPU kernels read in another form (keep_mapped) are read from the mapping
        // once, when the form is made (CodecDecoderImpl::prepare_cpu_kernels).
        const bool mapped = name.rfind("encoder.", 0) == 0 || keep_mapped.count(name) != 0;
        if (mapped && t.device().is_cpu() && src.scalar_type() == t.scalar_type()) {
            t.set_data(file.view_shared(name));
            continue;
        }
        t.copy_(src);
        file.release(name);
    }
}

}  // namespace alexandria::codec
