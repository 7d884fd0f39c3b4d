#pragma once
// The speech tokenizer's network as libtorch modules (spec model-codec.md §3-4). Every module registers its
// children under the checkpoint's names, so CodecModel's named_parameters() + named_buffers() IS the key list
// of speech_tokenizer/model.safetensors. Tensors are created uninitialised with the given TensorOptions (a meta
// device gives a shape-only model); weights come from load_state() or the random-codec writer.
//
// Each stage is a public method so parity fixtures can compare it on its own.
#include <torch/torch.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "alexandria/codec/config.h"

namespace alexandria::io { class SafetensorsFile; }

namespace alexandria::codec {

// ---------------------------------------------------------------- leaf layers (hold checkpoint tensors)

// A layer's weights in the form one of our CPU kernels reads (codec/cpu_kernels.h), and which weights they were
// made from: made again whenever the weights change (another tensor, or written in place).
struct KernelForm {
    torch::Tensor form;
    const void* of = nullptr;
    uint32_t version = 0;
    bool current(const torch::Tensor& w) const { return form.defined() && of == w.data_ptr() && version == w._version(); }
    void made_from(const torch::Tensor& w) { of = w.data_ptr(), version = w._version(); }
    // The form of fp32 weights w unless it is current: `size` floats, written by lay_out(w's floats, the form's).
    template <typename LayOut>
    void make(const torch::Tensor& w, int64_t size, const LayOut& lay_out) {
        if (current(w)) return;
        torch::NoGradGuard ng;
        auto wc = w.contiguous();
        form = torch::empty({size}, wc.options());
        lay_out(wc.data_ptr<float>(), form.data_ptr<float>());
        made_from(w);
    }
    // Our kernels can run for weights w on `device` in `dtype`: fp32 on the CPU, io::cpu_kernels_enabled().
    static bool runs_on(torch::Device device, torch::Dtype dtype, const torch::Tensor& w);
    // A forward of x through w that autograd must see (libtorch's operations run then).
    static bool needs_grad(const torch::Tensor& x, const torch::Tensor& w) {
        return torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad());
    }
};


// Unpadded Conv1d; weight [out, in/groups, k].
class ConvLayerImpl : public torch::nn::Module {
public:
    ConvLayerImpl(int64_t in, int64_t out, int64_t kernel, const torch::TensorOptions& o, bool bias = true,
                  int64_t stride = 1, int64_t dilation = 1, int64_t groups = 1);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight, bias;
    int64_t kernel, stride, dilation, groups;
};
TORCH_MODULE(ConvLayer);

// Unpadded ConvTranspose1d; weight [in, out, k].
class ConvTransposeLayerImpl : public torch::nn::Module {
public:
    ConvTransposeLayerImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight, bias;
    int64_t kernel, stride;
};
TORCH_MODULE(ConvTransposeLayer);

class LinearLayerImpl : public torch::nn::Module {
public:
    LinearLayerImpl(int64_t in, int64_t out, bool bias, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x);
    // The weights re-laid for our CPU product (codec/cpu_kernels.h linear), which forward then uses for fp32 CPU
    // input without gradients while the weights stay as they were (the decoder's are prepared at load).
    bool kernel_applies(torch::Device device, torch::Dtype dtype) const;
    void prepare_kernel();
    torch::Tensor weight, bias;
    KernelForm kernel_form;
};
TORCH_MODULE(LinearLayer);

class LayerNormLayerImpl : public torch::nn::Module {
public:
    LayerNormLayerImpl(int64_t dim, double eps, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight, bias;
    double eps;
};
TORCH_MODULE(LayerNormLayer);

// Computed in fp32, weight applied after casting back (spec §4.3).
class RMSNormImpl : public torch::nn::Module {
public:
    RMSNormImpl(int64_t dim, double eps, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;
    double eps;
};
TORCH_MODULE(RMSNorm);

class LayerScaleImpl : public torch::nn::Module {
public:
    LayerScaleImpl(int64_t dim, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x) { return scale * x; }
    torch::Tensor scale;
};
TORCH_MODULE(LayerScale);

// y = x + sin²(x·exp(α)) / (exp(β) + 1e-9), per channel of [B, C, T].
class SnakeBetaImpl : public torch::nn::Module {
public:
    SnakeBetaImpl(int64_t channels, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x);
    // forward(x) written into `out`, a [B, C, L] window whose rows may lie inside a wider buffer.
    void forward_into(const torch::Tensor& x, torch::Tensor out);
    // Whether x goes through the one-pass CPU loop (fp32 on the CPU without gradients, io::cpu_kernels_enabled()).
    bool one_pass(const torch::Tensor& x) const;
    bool needs_grad(const torch::Tensor& x) const;  // for x, α or β
    torch::Tensor alpha, beta;
};
TORCH_MODULE(SnakeBeta);

// Attention helpers shared by both transformers.
// cos/sin [1, 1, len, head_dim] for positions start..start+len-1, computed in fp32 and cast to `dtype`.
std::pair<torch::Tensor, torch::Tensor> rotary_cos_sin(int64_t start, int64_t len, int64_t head_dim, double theta,
                                                       torch::Device device, torch::Dtype dtype);
torch::Tensor apply_rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
// q [B,H,Lq,D], k/v [B,H,Lk,D]. Query i sits at key index q_offset + i and sees key j iff j ≤ q_offset + i and
// (window == 0 or j > q_offset + i − window). Queries are processed in blocks so long inputs stay in memory.
torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               int64_t q_offset, int64_t window, double scale);

// ---------------------------------------------------------------- encoder (Mimi minus its decoder)

// MimiConv1d: causal padding P = (k−1)·d + 1 − s on the left, E = ceil(L/s)·s − L on the right (spec §2).
class MimiConvImpl : public torch::nn::Module {
public:
    MimiConvImpl(int64_t in, int64_t out, int64_t kernel, const torch::TensorOptions& o, int64_t stride = 1,
                 int64_t dilation = 1, bool bias = true, bool replicate = false);
    torch::Tensor forward(const torch::Tensor& x);
    ConvLayer conv{nullptr};
    bool replicate;
};
TORCH_MODULE(MimiConv);

class MimiResnetBlockImpl : public torch::nn::Module {
public:
    MimiResnetBlockImpl(int64_t dim, int64_t dilation, const EncoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x);
    MimiConv conv1{nullptr}, conv2{nullptr};  // block.1, block.3 (block.0/2 are ELUs)
};
TORCH_MODULE(MimiResnetBlock);

// SEANet conv stack `encoder.encoder.layers.*`: [B, 1, n] → [B, hidden, ceil(n / hop)].
class SeanetEncoderImpl : public torch::nn::Module {
public:
    SeanetEncoderImpl(const EncoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& wav);
private:
    struct Step { int kind; std::shared_ptr<torch::nn::Module> m; };  // kind 0 conv, 1 resblock, 2 ELU
    std::vector<Step> steps_;
};
TORCH_MODULE(SeanetEncoder);

class MimiAttentionImpl : public torch::nn::Module {
public:
    MimiAttentionImpl(const EncoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          int64_t window);
    LinearLayer q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
    int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(MimiAttention);

class MimiMlpImpl : public torch::nn::Module {
public:
    MimiMlpImpl(const EncoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x) { return fc2(torch::gelu(fc1(x))); }
    LinearLayer fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(MimiMlp);

class MimiTransformerLayerImpl : public torch::nn::Module {
public:
    MimiTransformerLayerImpl(const EncoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          int64_t window);
    LayerNormLayer input_layernorm{nullptr}, post_attention_layernorm{nullptr};
    MimiAttention self_attn{nullptr};
    MimiMlp mlp{nullptr};
    LayerScale self_attn_layer_scale{nullptr}, mlp_layer_scale{nullptr};
};
TORCH_MODULE(MimiTransformerLayer);

// `encoder.encoder_transformer`: [B, T25, hidden] → same; no final norm.
class MimiTransformerImpl : public torch::nn::Module {
public:
    MimiTransformerImpl(const EncoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, int64_t window = 0);
    std::vector<MimiTransformerLayer> layers;
    int64_t head_dim;
    double theta;
};
TORCH_MODULE(MimiTransformer);

// `…layers.N.codebook`: buffers embed_sum, cluster_usage, initialized (buffers in the reference too).
class MimiCodebookImpl : public torch::nn::Module {
public:
    MimiCodebookImpl(int64_t size, int64_t dim, const torch::TensorOptions& o);
    // embed_sum / max(cluster_usage, 1e-5), cached until invalidate().
    const torch::Tensor& embed();
    void invalidate() { embed_ = torch::Tensor(); }
    torch::Tensor embed_sum, cluster_usage, initialized;
private:
    torch::Tensor embed_;
};
TORCH_MODULE(MimiCodebook);

class MimiResidualVQImpl : public torch::nn::Module {
public:
    MimiResidualVQImpl(int64_t layers, const EncoderConfig& c, const torch::TensorOptions& o);
    // z [B, hidden, T] → codes [B, n, T] from the first n layers (sequential residual quantisation).
    torch::Tensor encode(const torch::Tensor& z, int64_t n);
    ConvLayer input_proj{nullptr}, output_proj{nullptr};  // output_proj is stored but unused by encoding
    std::vector<MimiCodebook> codebooks;                   // layers.N.codebook
};
TORCH_MODULE(MimiResidualVQ);

class MimiSplitRVQImpl : public torch::nn::Module {
public:
    MimiSplitRVQImpl(const EncoderConfig& c, const torch::TensorOptions& o);
    // Both quantizers see the same z (spec §3.4, §9.6). Returns [B, n, T]: semantic, then acoustic 0..n-2.
    torch::Tensor encode(const torch::Tensor& z, int64_t n);
    MimiResidualVQ semantic_residual_vector_quantizer{nullptr}, acoustic_residual_vector_quantizer{nullptr};
};
TORCH_MODULE(MimiSplitRVQ);

// `encoder.*`
class CodecEncoderImpl : public torch::nn::Module {
public:
    CodecEncoderImpl(const CodecConfig& c, const torch::TensorOptions& o);
    // Stages. wav [B, 1, n] in the module dtype.
    torch::Tensor seanet(const torch::Tensor& wav) { return encoder(wav); }       // [B, 512, T25]
    torch::Tensor transform(const torch::Tensor& x);                               // [B, 512, T25] → same
    torch::Tensor downsample_25hz(const torch::Tensor& x) { return downsample(x); } // [B, 512, T]
    torch::Tensor quantize(const torch::Tensor& z);                                      // → [B, 16, T] int64
    torch::Tensor forward(const torch::Tensor& wav);                                     // all of the above

    SeanetEncoder encoder{nullptr};
    MimiTransformer encoder_transformer{nullptr};
    MimiConv downsample{nullptr};
    MimiSplitRVQ quantizer{nullptr};
    int64_t valid_quantizers;
    int64_t attention_window;  // 0 = unbounded causal (the reference)
};
TORCH_MODULE(CodecEncoder);

// ---------------------------------------------------------------- decoder (code2wav)

// Streaming state: what each causal layer needs of the past. A fresh state is exactly the reference's zero
// left padding and position 0, so one-shot decoding is "one call on a fresh state".
struct DecoderState {
    std::vector<torch::Tensor> history;  // per conv slot: the last inputs the next call's window needs
    std::vector<torch::Tensor> keys, values;  // per transformer layer: last (window − 1) keys/values after RoPE
    int64_t position = 0;                      // transformer positions consumed
};

// Stride-1 causal conv (`….conv`), P = (k−1)·d zeros on the left.
class CausalConvImpl : public torch::nn::Module {
public:
    CausalConvImpl(int64_t in, int64_t out, int64_t kernel, int& slots, const torch::TensorOptions& o,
                   int64_t dilation = 1, int64_t groups = 1);
    torch::Tensor forward(const torch::Tensor& x, DecoderState& st);
    // forward(act(x), st), the activation written straight after the left context (one pass over x instead of
    // libtorch's five and a concatenation).
    torch::Tensor forward_activated(SnakeBetaImpl& act, const torch::Tensor& x, DecoderState& st);
    // Whether this conv runs through Winograd F(2,7) (codec/cpu_kernels.h) on `device` in `dtype`: 7 taps, output
    // channels a multiple of 6, fp32 on the CPU, io::cpu_kernels_enabled(); and then only without gradients.
    bool kernel_applies(torch::Device device, torch::Dtype dtype) const;
    // Transforms the weights now, unless their form is current (otherwise done at first use, and again whenever
    // they change).
    void prepare_kernel();
    ConvLayer conv{nullptr};
    int slot;
    int64_t pad;
    KernelForm kernel_form;
private:
    // conv(xin) for an input that already holds its left context.
    torch::Tensor conv_padded(const torch::Tensor& xin);
};
TORCH_MODULE(CausalConv);

// ConvTranspose1d whose last k − s outputs are dropped (spec §2), streamed by carrying ceil(k/s) − 1 inputs.
class CausalTransConvImpl : public torch::nn::Module {
public:
    CausalTransConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int& slots,
                        const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, DecoderState& st);
    // Whether this runs as one product of our own (codec/cpu_kernels.h transposed_conv) on `device` in `dtype`:
    // kernel 2·stride, stride × output channels a multiple of 6, fp32 on the CPU, io::cpu_kernels_enabled(); and
    // then only without gradients.
    bool kernel_applies(torch::Device device, torch::Dtype dtype) const;
    void prepare_kernel();  // the weights' form now, unless current (otherwise at first use, and when they change)
    ConvTransposeLayer conv{nullptr};
    int slot;
    int64_t carry;
    KernelForm kernel_form;
};
TORCH_MODULE(CausalTransConv);

class ConvNeXtBlockImpl : public torch::nn::Module {
public:
    ConvNeXtBlockImpl(int64_t dim, int& slots, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, DecoderState& st);
    CausalConv dwconv{nullptr};
    LayerNormLayer norm{nullptr};
    LinearLayer pwconv1{nullptr}, pwconv2{nullptr};
    torch::Tensor gamma;
};
TORCH_MODULE(ConvNeXtBlock);

class DecoderAttentionImpl : public torch::nn::Module {
public:
    DecoderAttentionImpl(const DecoderConfig& c, int layer, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          DecoderState& st);
    LinearLayer q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
    int layer;
    int64_t heads, kv_heads, head_dim, window;
};
TORCH_MODULE(DecoderAttention);

class DecoderMlpImpl : public torch::nn::Module {
public:
    DecoderMlpImpl(const DecoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x) {
        return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
    }
    LinearLayer gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(DecoderMlp);

class DecoderTransformerLayerImpl : public torch::nn::Module {
public:
    DecoderTransformerLayerImpl(const DecoderConfig& c, int layer, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                          DecoderState& st);
    RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
    DecoderAttention self_attn{nullptr};
    DecoderMlp mlp{nullptr};
    LayerScale self_attn_layer_scale{nullptr}, mlp_layer_scale{nullptr};
};
TORCH_MODULE(DecoderTransformerLayer);

// `decoder.pre_transformer`: [B, L, latent] → [B, L, latent], 72-key sliding window.
class DecoderTransformerImpl : public torch::nn::Module {
public:
    DecoderTransformerImpl(const DecoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, DecoderState& st);
    LinearLayer input_proj{nullptr}, output_proj{nullptr};
    std::vector<DecoderTransformerLayer> layers;
    RMSNorm norm{nullptr};
    int64_t head_dim;
    double theta;
};
TORCH_MODULE(DecoderTransformer);

class ResidualUnitImpl : public torch::nn::Module {
public:
    ResidualUnitImpl(int64_t dim, int64_t dilation, int& slots, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, DecoderState& st);
    SnakeBeta act1{nullptr}, act2{nullptr};
    CausalConv conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(ResidualUnit);

// `decoder.decoder.{1..4}`: SnakeBeta, transposed conv ×rate, residual units with dilations 1, 3, 9.
class DecoderBlockImpl : public torch::nn::Module {
public:
    DecoderBlockImpl(int64_t in, int64_t out, int64_t rate, int& slots, const torch::TensorOptions& o);
    torch::Tensor forward(const torch::Tensor& x, DecoderState& st);
    SnakeBeta snake{nullptr};
    CausalTransConv up{nullptr};
    std::vector<ResidualUnit> units;
};
TORCH_MODULE(DecoderBlock);

// `…vq.layers.N._codebook`: parameters embedding_sum, cluster_usage.
class DecoderCodebookImpl : public torch::nn::Module {
public:
    DecoderCodebookImpl(int64_t size, int64_t dim, const torch::TensorOptions& o);
    const torch::Tensor& embedding();  // embedding_sum / max(cluster_usage, 1e-5), cached
    void invalidate() { embedding_ = torch::Tensor(); }
    torch::Tensor embedding_sum, cluster_usage;
private:
    torch::Tensor embedding_;
};
TORCH_MODULE(DecoderCodebook);

class DecoderRVQImpl : public torch::nn::Module {
public:
    DecoderRVQImpl(int64_t layers, const DecoderConfig& c, const torch::TensorOptions& o);
    // codes [B, n, L] → [B, codebook_dim, L]
    torch::Tensor decode(const torch::Tensor& codes);
    ConvLayer input_proj{nullptr}, output_proj{nullptr};  // input_proj is stored but unused by decoding
    std::vector<DecoderCodebook> codebooks;
};
TORCH_MODULE(DecoderRVQ);

class DecoderSplitRVQImpl : public torch::nn::Module {
public:
    DecoderSplitRVQImpl(const DecoderConfig& c, const torch::TensorOptions& o);
    torch::Tensor decode(const torch::Tensor& codes);  // [B, 16, L] → [B, codebook_dim, L]
    DecoderRVQ rvq_first{nullptr}, rvq_rest{nullptr};
};
TORCH_MODULE(DecoderSplitRVQ);

// `decoder.*`
class CodecDecoderImpl : public torch::nn::Module {
public:
    CodecDecoderImpl(const DecoderConfig& c, const torch::TensorOptions& o);
    DecoderState new_state();
    // Stages; x layouts follow the reference ([B, C, L] between convs).
    torch::Tensor dequantize(const torch::Tensor& codes) { return quantizer->decode(codes); }  // [B,16,L] → [B,512,L]
    torch::Tensor pre(const torch::Tensor& latent, DecoderState& st);      // pre_conv + pre_transformer → [B,1024,L]
    torch::Tensor upsample_stages(const torch::Tensor& x, DecoderState& st);  // → [B,1024,4L]
    torch::Tensor vocoder(const torch::Tensor& x, DecoderState& st);          // → [B,1,1920L], clamped
    // codes [B, 16, L] int64 in 0..2047 → [B, 1, 1920·L]. With a fresh state this is the reference forward.
    torch::Tensor forward(const torch::Tensor& codes, DecoderState& st);
    // The layers that run through our CPU kernels on this device (codec/cpu_kernels.h) read their weights in
    // another form. kernel_weights: those weights' names (under `prefix`), which load_state leaves in the file's
    // mapping; prepare_cpu_kernels: the forms not yet made are made now and, where the weights came from `file`,
    // the mapping's pages handed back, so memory holds each weight once, in the form used.
    std::set<std::string> kernel_weights(const std::string& prefix);
    void prepare_cpu_kernels(const io::SafetensorsFile* file = nullptr, const std::string& prefix = "");

    DecoderSplitRVQ quantizer{nullptr};
    CausalConv pre_conv{nullptr};
    DecoderTransformer pre_transformer{nullptr};
    std::vector<std::pair<CausalTransConv, ConvNeXtBlock>> upsample;
    CausalConv conv_in{nullptr};            // decoder.0
    std::vector<DecoderBlock> blocks;       // decoder.1..n
    SnakeBeta snake_out{nullptr};           // decoder.n+1
    CausalConv conv_out{nullptr};           // decoder.n+2
    int slots = 0;
private:
    // f(weight name, make its form) for each layer that runs through our CPU kernels on its device.
    void for_each_kernel_layer(const std::string& prefix,
                               const std::function<void(const std::string&, const std::function<void()>&)>& f);
};
TORCH_MODULE(CodecDecoder);

// ---------------------------------------------------------------- the whole file

class CodecModelImpl : public torch::nn::Module {
public:
    CodecModelImpl(const CodecConfig& c, const torch::TensorOptions& o);
    void invalidate_codebooks();  // after weights change
    CodecEncoder encoder{nullptr};
    CodecDecoder decoder{nullptr};
    CodecConfig config;
};
TORCH_MODULE(CodecModel);

// Every parameter and buffer by its checkpoint name (parameters first, then buffers).
std::vector<std::pair<std::string, torch::Tensor>> named_tensors(const torch::nn::Module& m);

// Strict load: copies each named tensor from `file` (converting dtype, onto the tensor's device). InputError
// listing every missing, unexpected and mis-shaped tensor when the two key sets or shapes differ. The encoder's
// tensors and those named in `keep_mapped`, where the file holds them as wanted (fp32, CPU), stay in the file's
// mapping instead and come into memory when first read.
void load_state(torch::nn::Module& m, const io::SafetensorsFile& file, const std::set<std::string>& keep_mapped = {});

}  // namespace alexandria::codec
