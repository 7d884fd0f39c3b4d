// Encoder: Mimi's SEANet conv stack, transformer, 25→12.5 Hz downsample and split RVQ (spec §3).
#include <torch/torch.h>

#include "alexandria/codec/modules.h"

namespace alexandria::codec {

MimiConvImpl::MimiConvImpl(int64_t in, int64_t out, int64_t kernel, const torch::TensorOptions& o, int64_t stride,
                           int64_t dilation, bool bias, bool replicate_)
    : replicate(replicate_) {
    conv = register_module("conv", ConvLayer(in, out, kernel, o, bias, stride, dilation));
}

torch::Tensor MimiConvImpl::forward(const torch::Tensor& x) {
    const int64_t s = conv->stride;
    const int64_t k_eff = (conv->kernel - 1) * conv->dilation + 1;
    const int64_t left = k_eff - s;
    const int64_t len = x.size(-1);
    // Pads this layer's own input up to whole strides; the waveform itself is never pre-padded (spec §3.0).
    const int64_t extra = (len + s - 1) / s * s - len;
    torch::Tensor padded;
    if (replicate)
        padded = torch::replication_pad1d(x, {left, extra});
    else
        padded = torch::constant_pad_nd(x, {left, extra}, 0);
    return conv(padded);
}

MimiResnetBlockImpl::MimiResnetBlockImpl(int64_t dim, int64_t dilation, const EncoderConfig& c,
                                         const torch::TensorOptions& o) {
    const int64_t hidden = dim / c.compress;
    conv1 = MimiConv(dim, hidden, c.residual_kernel_size, o, 1, dilation);
    conv2 = MimiConv(hidden, dim, 1, o);
    torch::nn::ModuleList block;
    block->push_back(torch::nn::ELU());
    block->push_back(conv1);
    block->push_back(torch::nn::ELU());
    block->push_back(conv2);
    register_module("block", block);
}

torch::Tensor MimiResnetBlockImpl::forward(const torch::Tensor& x) {
    return x + conv2(torch::elu(conv1(torch::elu(x))));
}

SeanetEncoderImpl::SeanetEncoderImpl(const EncoderConfig& c, const torch::TensorOptions& o) {
    torch::nn::ModuleList layers;
    auto add = [&](int kind, std::shared_ptr<torch::nn::Module> m) {
        layers->push_back(m);
        steps_.push_back({kind, std::move(m)});
    };
    add(0, MimiConv(c.audio_channels, c.num_filters, c.kernel_size, o).ptr());
    int64_t scale = 1;
    for (auto it = c.upsampling_ratios.rbegin(); it != c.upsampling_ratios.rend(); ++it) {
        const int64_t dim = scale * c.num_filters;
        int64_t dilation = 1;
        for (int64_t j = 0; j < c.num_residual_layers; ++j, dilation *= c.dilation_growth_rate)
            add(1, MimiResnetBlock(dim, dilation, c, o).ptr());
        add(2, torch::nn::ELU().ptr());
        add(0, MimiConv(dim, dim * 2, *it * 2, o, *it).ptr());
        scale *= 2;
    }
    add(2, torch::nn::ELU().ptr());
    add(0, MimiConv(scale * c.num_filters, c.hidden_size, c.last_kernel_size, o).ptr());
    register_module("layers", layers);
}

torch::Tensor SeanetEncoderImpl::forward(const torch::Tensor& wav) {
    torch::Tensor x = wav;
    for (const auto& s : steps_) {
        if (s.kind == 0)
            x = static_cast<MimiConvImpl&>(*s.m).forward(x);
        else if (s.kind == 1)
            x = static_cast<MimiResnetBlockImpl&>(*s.m).forward(x);
        else
            x = torch::elu(x);
    }
    return x;
}

MimiAttentionImpl::MimiAttentionImpl(const EncoderConfig& c, const torch::TensorOptions& o)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim) {
    q_proj = register_module("q_proj", LinearLayer(c.hidden_size, heads * head_dim, false, o));
    k_proj = register_module("k_proj", LinearLayer(c.hidden_size, kv_heads * head_dim, false, o));
    v_proj = register_module("v_proj", LinearLayer(c.hidden_size, kv_heads * head_dim, false, o));
    o_proj = register_module("o_proj", LinearLayer(heads * head_dim, c.hidden_size, false, o));
}

torch::Tensor MimiAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                         int64_t window) {
    const int64_t b = x.size(0), t = x.size(1);
    auto q = q_proj(x).view({b, t, heads, head_dim}).transpose(1, 2);
    auto k = k_proj(x).view({b, t, kv_heads, head_dim}).transpose(1, 2);
    auto v = v_proj(x).view({b, t, kv_heads, head_dim}).transpose(1, 2);
    q = apply_rotary(q, cos, sin);
    k = apply_rotary(k, cos, sin);
    if (kv_heads != heads) {
        k = k.repeat_interleave(heads / kv_heads, 1);
        v = v.repeat_interleave(heads / kv_heads, 1);
    }
    auto out = causal_attention(q, k, v, 0, window, 1.0 / std::sqrt(double(head_dim)));
    return o_proj(out.transpose(1, 2).reshape({b, t, heads * head_dim}));
}

MimiMlpImpl::MimiMlpImpl(const EncoderConfig& c, const torch::TensorOptions& o) {
    fc1 = register_module("fc1", LinearLayer(c.hidden_size, c.intermediate_size, false, o));
    fc2 = register_module("fc2", LinearLayer(c.intermediate_size, c.hidden_size, false, o));
}

MimiTransformerLayerImpl::MimiTransformerLayerImpl(const EncoderConfig& c, const torch::TensorOptions& o) {
    input_layernorm = register_module("input_layernorm", LayerNormLayer(c.hidden_size, c.norm_eps, o));
    post_attention_layernorm = register_module("post_attention_layernorm", LayerNormLayer(c.hidden_size, c.norm_eps, o));
    self_attn = register_module("self_attn", MimiAttention(c, o));
    mlp = register_module("mlp", MimiMlp(c, o));
    self_attn_layer_scale = register_module("self_attn_layer_scale", LayerScale(c.hidden_size, o));
    mlp_layer_scale = register_module("mlp_layer_scale", LayerScale(c.hidden_size, o));
}

torch::Tensor MimiTransformerLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                                const torch::Tensor& sin, int64_t window) {
    auto h = x + self_attn_layer_scale(self_attn(input_layernorm(x), cos, sin, window));
    return h + mlp_layer_scale(mlp(post_attention_layernorm(h)));
}

MimiTransformerImpl::MimiTransformerImpl(const EncoderConfig& c, const torch::TensorOptions& o)
    : head_dim(c.head_dim), theta(c.rope_theta) {
    torch::nn::ModuleList list;
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        layers.push_back(MimiTransformerLayer(c, o));
        list->push_back(layers.back());
    }
    register_module("layers", list);
}

torch::Tensor MimiTransformerImpl::forward(const torch::Tensor& x, int64_t window) {
    auto [cos, sin] = rotary_cos_sin(0, x.size(1), head_dim, theta, x.device(), x.scalar_type());
    torch::Tensor h = x;
    for (auto& l : layers) h = l->forward(h, cos, sin, window);
    return h;
}

MimiCodebookImpl::MimiCodebookImpl(int64_t size, int64_t dim, const torch::TensorOptions& o) {
    embed_sum = register_buffer("embed_sum", torch::empty({size, dim}, o));
    cluster_usage = register_buffer("cluster_usage", torch::empty({size}, o));
    initialized = register_buffer("initialized", torch::empty({1}, o));
}

const torch::Tensor& MimiCodebookImpl::embed() {
    if (!embed_.defined()) embed_ = embed_sum / cluster_usage.clamp_min(1e-5).unsqueeze(1);
    return embed_;
}

MimiResidualVQImpl::MimiResidualVQImpl(int64_t n, const EncoderConfig& c, const torch::TensorOptions& o) {
    const int64_t dim = c.codebook_dim;
    input_proj = register_module("input_proj", ConvLayer(c.hidden_size, dim, 1, o, false));
    output_proj = register_module("output_proj", ConvLayer(dim, c.hidden_size, 1, o, false));
    torch::nn::ModuleList list;
    for (int64_t i = 0; i < n; ++i) {
        codebooks.push_back(MimiCodebook(c.codebook_size, dim, o));
        auto layer = std::make_shared<torch::nn::Module>();
        layer->register_module("codebook", codebooks.back());
        list->push_back(layer);
    }
    register_module("layers", list);
}

torch::Tensor MimiResidualVQImpl::encode(const torch::Tensor& z, int64_t n) {
    // [B, hidden, T] → residual [B, T, dim]
    auto residual = input_proj(z).transpose(1, 2);
    const int64_t b = residual.size(0), t = residual.size(1), d = residual.size(2);
    std::vector<torch::Tensor> codes;
    for (int64_t i = 0; i < n; ++i) {
        const auto& e = codebooks[size_t(i)]->embed();
        // The reference: cdist(p=2) on fp32 copies, then argmin (first index on ties).
        auto flat = residual.reshape({b * t, d}).to(torch::kFloat32);
        auto dist = torch::cdist(flat.unsqueeze(0), e.to(torch::kFloat32).unsqueeze(0), 2.0).squeeze(0);
        auto idx = dist.argmin(-1);
        codes.push_back(idx.view({b, t}));
        if (i + 1 < n) residual = residual - torch::embedding(e, idx).view({b, t, d});
    }
    return torch::stack(codes, 1);  // [B, n, T]
}

MimiSplitRVQImpl::MimiSplitRVQImpl(const EncoderConfig& c, const torch::TensorOptions& o) {
    semantic_residual_vector_quantizer = register_module(
        "semantic_residual_vector_quantizer", MimiResidualVQ(c.num_semantic_quantizers, c, o));
    acoustic_residual_vector_quantizer = register_module(
        "acoustic_residual_vector_quantizer", MimiResidualVQ(c.num_quantizers - c.num_semantic_quantizers, c, o));
}

torch::Tensor MimiSplitRVQImpl::encode(const torch::Tensor& z, int64_t n) {
    // The reference quantizes with all stored layers and keeps the first n; the RVQ is sequential, so stopping
    // after n − 1 acoustic layers gives the same codes.
    auto sem = semantic_residual_vector_quantizer->encode(z, 1);
    auto ac = acoustic_residual_vector_quantizer->encode(z, n - 1);
    return torch::cat({sem, ac}, 1);
}

CodecEncoderImpl::CodecEncoderImpl(const CodecConfig& c, const torch::TensorOptions& o)
    : valid_quantizers(c.encoder_valid_num_quantizers), attention_window(c.encoder_attention_window) {
    const auto& e = c.encoder;
    encoder = register_module("encoder", SeanetEncoder(e, o));
    encoder_transformer = register_module("encoder_transformer", MimiTransformer(e, o));
    downsample = register_module("downsample", MimiConv(e.hidden_size, e.hidden_size, e.downsample_kernel(), o,
                                                        e.downsample_stride(), 1, false, /*replicate=*/true));
    quantizer = register_module("quantizer", MimiSplitRVQ(e, o));
}

torch::Tensor CodecEncoderImpl::transform(const torch::Tensor& x) {
    return encoder_transformer->forward(x.transpose(1, 2), attention_window).transpose(1, 2);
}

torch::Tensor CodecEncoderImpl::quantize(const torch::Tensor& z) { return quantizer->encode(z, valid_quantizers); }

torch::Tensor CodecEncoderImpl::forward(const torch::Tensor& wav) {
    return quantize(downsample_25hz(transform(seanet(wav))));
}

}  // namespace alexandria::codec
