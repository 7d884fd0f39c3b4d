// Decoder ("code2wav"): split-RVQ dequantiser, pre-conv, sliding-window transformer, ConvNeXt upsampling and the
// SnakeBeta vocoder (spec §4). Every causal layer reads its left context from a DecoderState, so the same code
// runs one-shot (fresh state: zero padding, positions from 0) and streaming (state carried between calls).
#include <torch/torch.h>

#include <functional>
#include <set>

#include "alexandria/codec/modules.h"
#include "alexandria/io/error.h"
#include "alexandria/io/safetensors.h"
#include "codec/cpu_kernels.h"

namespace alexandria::codec {

namespace {
// The left context a layer needs, zeros before the first call.
torch::Tensor history_or_zeros(DecoderState& st, int slot, const torch::Tensor& x, int64_t len) {
    auto& h = st.history.at(size_t(slot));
    if (h.defined() && h.size(0) == x.size(0)) return h;
    return torch::zeros({x.size(0), x.size(1), len}, x.options());
}
}  // namespace

CausalConvImpl::CausalConvImpl(int64_t in, int64_t out, int64_t kernel, int& slots, const torch::TensorOptions& o,
                               int64_t dilation, int64_t groups)
    : slot(slots++), pad((kernel - 1) * dilation) {
    conv = register_module("conv", ConvLayer(in, out, kernel, o, true, 1, dilation, groups));
}

torch::Tensor CausalConvImpl::forward(const torch::Tensor& x, DecoderState& st) {
    if (pad == 0) return conv(x);
    auto xin = torch::cat({history_or_zeros(st, slot, x, pad), x}, -1);
    // A copy, so the state does not keep the whole (possibly long) input alive.
    st.history[size_t(slot)] = xin.narrow(-1, xin.size(-1) - pad, pad).clone();
    return conv_padded(xin);
}

bool CausalConvImpl::kernel_applies(torch::Device device, torch::Dtype dtype) const {
    return conv->kernel == 7 && conv->groups == 1 && conv->stride == 1 && conv->weight.size(0) % cpu::kWinogradRows == 0 &&
           KernelForm::runs_on(device, dtype, conv->weight);
}

void CausalConvImpl::prepare_kernel() {
    const int64_t co = conv->weight.size(0), ci = conv->weight.size(1);
    kernel_form.make(conv->weight, cpu::winograd7_weights_size(co, ci),
                     [&](const float* w, float* u) { cpu::winograd7_transform_weights(w, co, ci, u); });
}

torch::Tensor CausalConvImpl::conv_padded(const torch::Tensor& xin) {
    const auto& w = conv->weight;
    if (KernelForm::needs_grad(xin, w) || !kernel_applies(xin.device(), xin.scalar_type())) return conv(xin);
    prepare_kernel();
    auto x = xin.contiguous();
    const int64_t co = w.size(0), ci = w.size(1), batch = x.size(0), in_len = x.size(2), len = in_len - pad;
    auto y = torch::empty({batch, co, len}, x.options());
    auto bias = conv->bias.defined() ? conv->bias.contiguous() : torch::Tensor();
    for (int64_t b = 0; b < batch; ++b)
        cpu::winograd7_conv(x.data_ptr<float>() + b * ci * in_len, ci, len, conv->dilation, kernel_form.form.data_ptr<float>(),
                            bias.defined() ? bias.data_ptr<float>() : nullptr, co, y.data_ptr<float>() + b * co * len);
    return y;
}

torch::Tensor CausalConvImpl::forward_activated(SnakeBetaImpl& act, const torch::Tensor& x, DecoderState& st) {
    if (pad == 0 || !act.one_pass(x)) return forward(act.forward(x), st);
    const int64_t len = x.size(-1);
    auto xin = torch::empty({x.size(0), x.size(1), pad + len}, x.options());
    xin.narrow(-1, 0, pad).copy_(history_or_zeros(st, slot, x, pad));
    act.forward_into(x, xin.narrow(-1, pad, len));
    st.history[size_t(slot)] = xin.narrow(-1, len, pad).clone();
    return conv_padded(xin);
}

CausalTransConvImpl::CausalTransConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int& slots,
                                         const torch::TensorOptions& o)
    : slot(slots++), carry((kernel + stride - 1) / stride - 1) {
    if (kernel < stride) throw Error("codec: transposed conv kernel shorter than its stride");
    conv = register_module("conv", ConvTransposeLayer(in, out, kernel, stride, o));
}

bool CausalTransConvImpl::kernel_applies(torch::Device device, torch::Dtype dtype) const {
    const auto& w = conv->weight;  // [in, out, k]
    return conv->kernel == 2 * conv->stride && (conv->stride * w.size(1)) % cpu::kWinogradRows == 0 &&
           KernelForm::runs_on(device, dtype, w);
}

void CausalTransConvImpl::prepare_kernel() {
    const int64_t ci = conv->weight.size(0), co = conv->weight.size(1), s = conv->stride;
    kernel_form.make(conv->weight, cpu::transposed_weights_size(co, ci, s),
                     [&](const float* w, float* u) { cpu::transform_transposed_weights(w, co, ci, s, u); });
}

torch::Tensor CausalTransConvImpl::forward(const torch::Tensor& x, DecoderState& st) {
    // Output sample j needs inputs floor(j/s) − carry .. floor(j/s); with `carry` earlier inputs prepended (zeros
    // at the start, like the reference) the kept window [carry·s, carry·s + L·s) is exactly the reference output
    // with its last k − s samples dropped.
    const int64_t s = conv->stride, len = x.size(-1);
    if (carry == 0) return conv(x).narrow(-1, 0, len * s);
    auto xin = torch::cat({history_or_zeros(st, slot, x, carry), x}, -1);
    st.history[size_t(slot)] = xin.narrow(-1, xin.size(-1) - carry, carry).clone();
    const auto& w = conv->weight;
    if (KernelForm::needs_grad(xin, w) || !kernel_applies(xin.device(), xin.scalar_type()))
        return conv(xin).narrow(-1, carry * s, len * s);
    prepare_kernel();
    const int64_t ci = w.size(0), co = w.size(1), batch = xin.size(0);
    auto y = torch::empty({batch, co, len * s}, xin.options());
    for (int64_t b = 0; b < batch; ++b)
        cpu::transposed_conv(xin.data_ptr<float>() + b * ci * (len + 1), ci, len, s, kernel_form.form.data_ptr<float>(),
                             conv->bias.data_ptr<float>(), co, y.data_ptr<float>() + b * co * len * s);
    return y;
}

ConvNeXtBlockImpl::ConvNeXtBlockImpl(int64_t dim, int& slots, const torch::TensorOptions& o) {
    dwconv = register_module("dwconv", CausalConv(dim, dim, 7, slots, o, 1, dim));
    norm = register_module("norm", LayerNormLayer(dim, 1e-6, o));
    pwconv1 = register_module("pwconv1", LinearLayer(dim, 4 * dim, true, o));
    pwconv2 = register_module("pwconv2", LinearLayer(4 * dim, dim, true, o));
    gamma = register_parameter("gamma", torch::empty({dim}, o));
}

torch::Tensor ConvNeXtBlockImpl::forward(const torch::Tensor& x, DecoderState& st) {
    auto h = dwconv(x, st).permute({0, 2, 1});
    h = pwconv2(torch::gelu(pwconv1(norm(h))));
    h = (gamma * h).permute({0, 2, 1});
    return x + h;
}

DecoderAttentionImpl::DecoderAttentionImpl(const DecoderConfig& c, int layer_, const torch::TensorOptions& o)
    : layer(layer_), heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim),
      window(c.sliding_window) {
    q_proj = register_module("q_proj", LinearLayer(c.hidden_size, heads * head_dim, false, o));
    k_proj = register_module("k_proj", LinearLayer(c.hidden_size, kv_heads * head_dim, false, o));
    v_proj = register_module("v_proj", LinearLayer(c.hidden_size, kv_heads * head_dim, false, o));
    o_proj = register_module("o_proj", LinearLayer(heads * head_dim, c.hidden_size, false, o));
}

torch::Tensor DecoderAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                            const torch::Tensor& sin, DecoderState& st) {
    const int64_t b = x.size(0), l = x.size(1);
    auto q = apply_rotary(q_proj(x).view({b, l, heads, head_dim}).transpose(1, 2), cos, sin);
    auto k = apply_rotary(k_proj(x).view({b, l, kv_heads, head_dim}).transpose(1, 2), cos, sin);
    auto v = v_proj(x).view({b, l, kv_heads, head_dim}).transpose(1, 2);
    if (kv_heads != heads) {
        k = k.repeat_interleave(heads / kv_heads, 1);
        v = v.repeat_interleave(heads / kv_heads, 1);
    }
    auto& ck = st.keys.at(size_t(layer));
    auto& cv = st.values.at(size_t(layer));
    if (ck.defined() && ck.size(0) == b) {
        k = torch::cat({ck, k}, 2);
        v = torch::cat({cv, v}, 2);
    }
    const int64_t cached = k.size(2) - l;
    // Window of exactly `window` keys including the query itself: i − window < j ≤ i (spec §4.3 step 4).
    auto out = causal_attention(q, k, v, cached, window, 1.0 / std::sqrt(double(head_dim)));
    const int64_t keep = std::min<int64_t>(window - 1, k.size(2));
    ck = k.narrow(2, k.size(2) - keep, keep).clone();
    cv = v.narrow(2, v.size(2) - keep, keep).clone();
    return o_proj(out.transpose(1, 2).reshape({b, l, heads * head_dim}));
}

DecoderMlpImpl::DecoderMlpImpl(const DecoderConfig& c, const torch::TensorOptions& o) {
    gate_proj = register_module("gate_proj", LinearLayer(c.hidden_size, c.intermediate_size, false, o));
    up_proj = register_module("up_proj", LinearLayer(c.hidden_size, c.intermediate_size, false, o));
    down_proj = register_module("down_proj", LinearLayer(c.intermediate_size, c.hidden_size, false, o));
}

DecoderTransformerLayerImpl::DecoderTransformerLayerImpl(const DecoderConfig& c, int layer,
                                                         const torch::TensorOptions& o) {
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
    self_attn = register_module("self_attn", DecoderAttention(c, layer, o));
    mlp = register_module("mlp", DecoderMlp(c, o));
    self_attn_layer_scale = register_module("self_attn_layer_scale", LayerScale(c.hidden_size, o));
    mlp_layer_scale = register_module("mlp_layer_scale", LayerScale(c.hidden_size, o));
}

torch::Tensor DecoderTransformerLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                                   const torch::Tensor& sin, DecoderState& st) {
    auto h = x + self_attn_layer_scale(self_attn->forward(input_layernorm(x), cos, sin, st));
    return h + mlp_layer_scale(mlp(post_attention_layernorm(h)));
}

DecoderTransformerImpl::DecoderTransformerImpl(const DecoderConfig& c, const torch::TensorOptions& o)
    : head_dim(c.head_dim), theta(c.rope_theta) {
    input_proj = register_module("input_proj", LinearLayer(c.latent_dim, c.hidden_size, true, o));
    torch::nn::ModuleList list;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        layers.push_back(DecoderTransformerLayer(c, int(i), o));
        list->push_back(layers.back());
    }
    register_module("layers", list);
    norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, o));
    output_proj = register_module("output_proj", LinearLayer(c.hidden_size, c.latent_dim, true, o));
}

torch::Tensor DecoderTransformerImpl::forward(const torch::Tensor& x, DecoderState& st) {
    auto h = input_proj(x);
    auto [cos, sin] = rotary_cos_sin(st.position, x.size(1), head_dim, theta, h.device(), h.scalar_type());
    for (auto& l : layers) h = l->forward(h, cos, sin, st);
    st.position += x.size(1);
    return output_proj(norm(h));
}

ResidualUnitImpl::ResidualUnitImpl(int64_t dim, int64_t dilation, int& slots, const torch::TensorOptions& o) {
    act1 = register_module("act1", SnakeBeta(dim, o));
    conv1 = register_module("conv1", CausalConv(dim, dim, 7, slots, o, dilation));
    act2 = register_module("act2", SnakeBeta(dim, o));
    conv2 = register_module("conv2", CausalConv(dim, dim, 1, slots, o));
}

torch::Tensor ResidualUnitImpl::forward(const torch::Tensor& x, DecoderState& st) {
    return conv2(act2(conv1->forward_activated(*act1, x, st)), st).add_(x);
}

DecoderBlockImpl::DecoderBlockImpl(int64_t in, int64_t out, int64_t rate, int& slots, const torch::TensorOptions& o) {
    snake = SnakeBeta(in, o);
    up = CausalTransConv(in, out, 2 * rate, rate, slots, o);
    torch::nn::ModuleList block;
    block->push_back(snake);
    block->push_back(up);
    for (int64_t d : {1, 3, 9}) {
        units.push_back(ResidualUnit(out, d, slots, o));
        block->push_back(units.back());
    }
    register_module("block", block);
}

torch::Tensor DecoderBlockImpl::forward(const torch::Tensor& x, DecoderState& st) {
    auto h = up(snake(x), st);
    for (auto& u : units) h = u(h, st);
    return h;
}

DecoderCodebookImpl::DecoderCodebookImpl(int64_t size, int64_t dim, const torch::TensorOptions& o) {
    embedding_sum = register_parameter("embedding_sum", torch::empty({size, dim}, o));
    cluster_usage = register_parameter("cluster_usage", torch::empty({size}, o));
}

const torch::Tensor& DecoderCodebookImpl::embedding() {
    if (!embedding_.defined()) {
        torch::NoGradGuard no_grad;
        embedding_ = embedding_sum / cluster_usage.clamp_min(1e-5).unsqueeze(1);
    }
    return embedding_;
}

DecoderRVQImpl::DecoderRVQImpl(int64_t n, const DecoderConfig& c, const torch::TensorOptions& o) {
    const int64_t dim = c.codebook_inner_dim();
    input_proj = register_module("input_proj", ConvLayer(c.codebook_dim, dim, 1, o, false));
    output_proj = register_module("output_proj", ConvLayer(dim, c.codebook_dim, 1, o, false));
    auto vq = std::make_shared<torch::nn::Module>();
    torch::nn::ModuleList list;
    for (int64_t i = 0; i < n; ++i) {
        codebooks.push_back(DecoderCodebook(c.codebook_size, dim, o));
        auto layer = std::make_shared<torch::nn::Module>();
        layer->register_module("_codebook", codebooks.back());
        list->push_back(layer);
    }
    vq->register_module("layers", list);
    register_module("vq", vq);
}

torch::Tensor DecoderRVQImpl::decode(const torch::Tensor& codes) {
    torch::Tensor sum;
    for (size_t i = 0; i < codebooks.size(); ++i) {
        auto q = torch::embedding(codebooks[i]->embedding(), codes.select(1, int64_t(i))).transpose(1, 2);
        sum = sum.defined() ? q + sum : q;
    }
    return output_proj(sum);
}

DecoderSplitRVQImpl::DecoderSplitRVQImpl(const DecoderConfig& c, const torch::TensorOptions& o) {
    // The reference hard-codes one semantic layer (num_semantic_quantizers is not read).
    rvq_first = register_module("rvq_first", DecoderRVQ(1, c, o));
    rvq_rest = register_module("rvq_rest", DecoderRVQ(c.num_quantizers - 1, c, o));
}

torch::Tensor DecoderSplitRVQImpl::decode(const torch::Tensor& codes) {
    return rvq_first->decode(codes.narrow(1, 0, 1)) + rvq_rest->decode(codes.narrow(1, 1, codes.size(1) - 1));
}

CodecDecoderImpl::CodecDecoderImpl(const DecoderConfig& c, const torch::TensorOptions& o) {
    quantizer = register_module("quantizer", DecoderSplitRVQ(c, o));
    pre_conv = register_module("pre_conv", CausalConv(c.codebook_dim, c.latent_dim, 3, slots, o));
    pre_transformer = register_module("pre_transformer", DecoderTransformer(c, o));
    torch::nn::ModuleList up;
    for (int64_t r : c.upsampling_ratios) {
        upsample.emplace_back(CausalTransConv(c.latent_dim, c.latent_dim, r, r, slots, o),
                              ConvNeXtBlock(c.latent_dim, slots, o));
        torch::nn::ModuleList stage;
        stage->push_back(upsample.back().first);
        stage->push_back(upsample.back().second);
        up->push_back(stage);
    }
    register_module("upsample", up);
    torch::nn::ModuleList dec;
    conv_in = CausalConv(c.latent_dim, c.decoder_dim, 7, slots, o);
    dec->push_back(conv_in);
    int64_t ch = c.decoder_dim;
    for (int64_t r : c.upsample_rates) {
        blocks.push_back(DecoderBlock(ch, ch / 2, r, slots, o));
        dec->push_back(blocks.back());
        ch /= 2;
    }
    snake_out = SnakeBeta(ch, o);
    conv_out = CausalConv(ch, 1, 7, slots, o);
    dec->push_back(snake_out);
    dec->push_back(conv_out);
    register_module("decoder", dec);
}

void CodecDecoderImpl::for_each_kernel_layer(
    const std::string& prefix, const std::function<void(const std::string&, const std::function<void()>&)>& f) {
    for (const auto& item : named_modules()) {
        const std::string conv_weight = prefix + item.key() + ".conv.weight";
        if (auto cc = std::dynamic_pointer_cast<CausalConvImpl>(item.value())) {
            const auto& w = cc->conv->weight;
            if (cc->kernel_applies(w.device(), w.scalar_type())) f(conv_weight, [cc] { cc->prepare_kernel(); });
        } else if (auto tc = std::dynamic_pointer_cast<CausalTransConvImpl>(item.value())) {
            const auto& w = tc->conv->weight;
            if (tc->kernel_applies(w.device(), w.scalar_type())) f(conv_weight, [tc] { tc->prepare_kernel(); });
        } else if (auto lin = std::dynamic_pointer_cast<LinearLayerImpl>(item.value())) {
            if (lin->kernel_applies(lin->weight.device(), lin->weight.scalar_type()))
                f(prefix + item.key() + ".weight", [lin] { lin->prepare_kernel(); });
        }
    }
}

std::set<std::string> CodecDecoderImpl::kernel_weights(const std::string& prefix) {
    std::set<std::string> names;
    for_each_kernel_layer(prefix, [&](const std::string& name, const std::function<void()>&) { names.insert(name); });
    return names;
}

void CodecDecoderImpl::prepare_cpu_kernels(const io::SafetensorsFile* file, const std::string& prefix) {
    for_each_kernel_layer(prefix, [&](const std::string& name, const std::function<void()>& prepare) {
        prepare();
        if (file) file->release(name);  // the mapping's pages the form was read from (none if the weights were copied)
    });
}

DecoderState CodecDecoderImpl::new_state() {
    DecoderState st;
    st.history.resize(size_t(slots));
    st.keys.resize(pre_transformer->layers.size());
    st.values.resize(pre_transformer->layers.size());
    return st;
}

torch::Tensor CodecDecoderImpl::pre(const torch::Tensor& latent, DecoderState& st) {
    auto h = pre_conv(latent, st).transpose(1, 2);
    return pre_transformer->forward(h, st).permute({0, 2, 1});
}

torch::Tensor CodecDecoderImpl::upsample_stages(const torch::Tensor& x, DecoderState& st) {
    torch::Tensor h = x;
    for (auto& [tc, block] : upsample) h = block(tc(h, st), st);
    return h;
}

torch::Tensor CodecDecoderImpl::vocoder(const torch::Tensor& x, DecoderState& st) {
    auto h = conv_in(x, st);
    for (auto& b : blocks) h = b(h, st);
    return conv_out->forward_activated(*snake_out, h, st).clamp_(-1.0, 1.0);
}

torch::Tensor CodecDecoderImpl::forward(const torch::Tensor& codes, DecoderState& st) {
    return vocoder(upsample_stages(pre(dequantize(codes), st), st), st);
}

CodecModelImpl::CodecModelImpl(const CodecConfig& c, const torch::TensorOptions& o) : config(c) {
    encoder = register_module("encoder", CodecEncoder(c, o));
    decoder = register_module("decoder", CodecDecoder(c.decoder, o));
}

void CodecModelImpl::invalidate_codebooks() {
    auto& q = encoder->quantizer;
    for (auto& cb : q->semantic_residual_vector_quantizer->codebooks) cb->invalidate();
    for (auto& cb : q->acoustic_residual_vector_quantizer->codebooks) cb->invalidate();
    for (auto& cb : decoder->quantizer->rvq_first->codebooks) cb->invalidate();
    for (auto& cb : decoder->quantizer->rvq_rest->codebooks) cb->invalidate();
}

}  // namespace alexandria::codec
