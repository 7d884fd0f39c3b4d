// ECAPA-TDNN speaker encoder without BatchNorm — spec model-talker.md §5.
#include "alexandria/model/speaker_encoder.h"

#include "alexandria/io/error.h"
#include "alexandria/model/mel.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <numeric>
#include <string>

namespace alexandria::model {


namespace {

const std::string kConfigName = "speaker_encoder_config";

[[noreturn]] void config_error(const std::string& key, const std::string& what) {
    throw InputError(fmt::format("{}.{}: {}", kConfigName, key, what));
}

void read_int(const nlohmann::json& j, const char* key, int& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_number_integer()) config_error(key, fmt::format("expected an integer, got {}", it->type_name()));
    const auto v = it->get<int64_t>();
    if (v <= 0 || v > (1 << 24)) config_error(key, fmt::format("must be a positive integer, got {}", v));
    out = static_cast<int>(v);
}

void read_int_list(const nlohmann::json& j, const char* key, std::vector<int64_t>& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return;
    if (!it->is_array()) config_error(key, fmt::format("expected a list of integers, got {}", it->type_name()));
    std::vector<int64_t> v;
    for (const auto& e : *it) {
        if (!e.is_number_integer())
            config_error(key, fmt::format("expected a list of integers, found {}", e.type_name()));
        const auto x = e.get<int64_t>();
        if (x <= 0 || x > (1 << 24)) config_error(key, fmt::format("entries must be positive integers, got {}", x));
        v.push_back(x);
    }
    out = std::move(v);
}

// Left/right reflect padding of a "same" convolution: d·(k-1) in total, the smaller half on the left (as
// PyTorch's padding="same" splits it).
std::pair<int64_t, int64_t> same_padding(int64_t kernel, int64_t dilation) {
    const int64_t total = dilation * (kernel - 1);
    return {total / 2, total - total / 2};
}

torch::nn::Conv1d make_conv(int64_t in, int64_t out, int64_t kernel, int64_t dilation = 1) {
    // Padding is applied by hand (reflect) before the convolution, so the layer itself is "valid".
    return torch::nn::Conv1d(torch::nn::Conv1dOptions(in, out, kernel).dilation(dilation).bias(true));
}

// Reflect padding along time (the edge sample is not repeated). Built from slices rather than F::pad because
// libtorch 1.13 has no CPU reflection_pad1d kernel for bf16; the copy is the same in every dtype.
torch::Tensor reflect_pad(const torch::Tensor& x, std::pair<int64_t, int64_t> pad) {
    const auto [left, right] = pad;
    if (left == 0 && right == 0) return x;
    const int64_t t = x.size(2);
    std::vector<torch::Tensor> parts;
    if (left > 0) parts.push_back(x.slice(2, 1, left + 1).flip({2}));
    parts.push_back(x);
    if (right > 0) parts.push_back(x.slice(2, t - 1 - right, t - 1).flip({2}));
    return torch::cat(parts, 2);
}

// Conv1d with reflect "same" padding followed by ReLU (the reference's TimeDelayNetBlock).
class TdnnImpl : public torch::nn::Module {
public:
    TdnnImpl(int64_t in, int64_t out, int64_t kernel, int64_t dilation)
        : conv(register_module("conv", make_conv(in, out, kernel, dilation))), pad(same_padding(kernel, dilation)) {}
    torch::Tensor forward(const torch::Tensor& x) { return torch::relu(conv->forward(reflect_pad(x, pad))); }
    torch::nn::Conv1d conv;
    std::pair<int64_t, int64_t> pad;
};
TORCH_MODULE(Tdnn);

// Hierarchical residual convolutions over `scale` channel groups: group 0 passes through, group 1 is convolved,
// group i ≥ 2 is convolved after adding the previous group's output.
class Res2NetBlockImpl : public torch::nn::Module {
public:
    Res2NetBlockImpl(int64_t in, int64_t out, int64_t scale, int64_t kernel, int64_t dilation) : scale(scale) {
        blocks = register_module("blocks", torch::nn::ModuleList());
        for (int64_t i = 0; i + 1 < scale; ++i) {
            convs.push_back(Tdnn(in / scale, out / scale, kernel, dilation));
            blocks->push_back(convs.back());
        }
    }
    torch::Tensor forward(const torch::Tensor& x) {
        auto parts = torch::chunk(x, scale, 1);
        std::vector<torch::Tensor> outs;
        outs.reserve(parts.size());
        torch::Tensor prev;
        for (size_t i = 0; i < parts.size(); ++i) {
            if (i == 0) prev = parts[0];
            else if (i == 1) prev = convs[0]->forward(parts[1]);
            else prev = convs[i - 1]->forward(parts[i] + prev);
            outs.push_back(prev);
        }
        return torch::cat(outs, 1);
    }
    int64_t scale;
    torch::nn::ModuleList blocks{nullptr};
    std::vector<Tdnn> convs;
};
TORCH_MODULE(Res2NetBlock);

// Channel gates from the time-averaged input.
class SqueezeExcitationImpl : public torch::nn::Module {
public:
    SqueezeExcitationImpl(int64_t in, int64_t se, int64_t out)
        : conv1(register_module("conv1", make_conv(in, se, 1))), conv2(register_module("conv2", make_conv(se, out, 1))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        auto s = x.mean(2, /*keepdim=*/true);
        s = torch::sigmoid(conv2->forward(torch::relu(conv1->forward(s))));
        return x * s;
    }
    torch::nn::Conv1d conv1, conv2;
};
TORCH_MODULE(SqueezeExcitation);

class SeRes2NetBlockImpl : public torch::nn::Module {
public:
    SeRes2NetBlockImpl(int64_t in, int64_t out, int64_t scale, int64_t se_channels, int64_t kernel, int64_t dilation)
        : tdnn1(register_module("tdnn1", Tdnn(in, out, 1, 1))),
          res2net_block(register_module("res2net_block", Res2NetBlock(out, out, scale, kernel, dilation))),
          tdnn2(register_module("tdnn2", Tdnn(out, out, 1, 1))),
          se_block(register_module("se_block", SqueezeExcitation(out, se_channels, out))) {}
    torch::Tensor forward(const torch::Tensor& x) {
        auto h = tdnn1->forward(x);
        h = res2net_block->forward(h);
        h = tdnn2->forward(h);
        h = se_block->forward(h);
        return h + x;
    }
    Tdnn tdnn1;
    Res2NetBlock res2net_block;
    Tdnn tdnn2;
    SqueezeExcitation se_block;
};
TORCH_MODULE(SeRes2NetBlock);

// Attentive statistics pooling. The reference builds an all-ones mask over time and divides it by its own sum
// in the activation dtype; the global statistics are formed the same way here so bf16 runs round alike.
class AttentiveStatisticsPoolingImpl : public torch::nn::Module {
public:
    AttentiveStatisticsPoolingImpl(int64_t channels, int64_t attention_channels)
        : tdnn(register_module("tdnn", Tdnn(channels * 3, attention_channels, 1, 1))),
          conv(register_module("conv", make_conv(attention_channels, channels, 1))) {}

    // Weighted mean and standard deviation over time; the variance is clamped at eps before the root.
    static std::pair<torch::Tensor, torch::Tensor> statistics(const torch::Tensor& x, const torch::Tensor& w) {
        auto mean = (w * x).sum(2);
        auto var = (w * (x - mean.unsqueeze(2)).pow(2)).sum(2).clamp_min(kEps);
        return {mean, torch::sqrt(var)};
    }

    torch::Tensor forward(const torch::Tensor& x) {
        const int64_t batch = x.size(0), time = x.size(2);
        auto ones = torch::ones({batch, 1, time}, x.options());
        auto uniform = ones / ones.sum(2, /*keepdim=*/true);
        auto [mean, std] = statistics(x, uniform);
        auto context = torch::cat({x, mean.unsqueeze(2).expand({-1, -1, time}), std.unsqueeze(2).expand({-1, -1, time})}, 1);
        auto attention = conv->forward(torch::tanh(tdnn->forward(context)));
        attention = torch::softmax(attention, 2);
        auto [wmean, wstd] = statistics(x, attention);
        return torch::cat({wmean, wstd}, 1).unsqueeze(2);
    }

    static constexpr double kEps = 1e-12;
    Tdnn tdnn;
    torch::nn::Conv1d conv;
};
TORCH_MODULE(AttentiveStatisticsPooling);

void validate(const SpeakerEncoderConfig& c) {
    const size_t n = c.enc_channels.size();
    if (c.enc_kernel_sizes.size() != n || c.enc_dilations.size() != n)
        config_error("enc_channels", fmt::format("enc_channels, enc_kernel_sizes and enc_dilations must have the same "
                                                 "length (got {}, {}, {})",
                                                 n, c.enc_kernel_sizes.size(), c.enc_dilations.size()));
    if (n < 3) config_error("enc_channels", fmt::format("needs at least 3 entries, got {}", n));
    int64_t aggregated = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
        if (c.enc_channels[i] != c.enc_channels[i - 1])
            config_error("enc_channels", fmt::format("SE-Res2Net block {} is residual, so its width {} must equal the "
                                                     "previous width {}",
                                                     i, c.enc_channels[i], c.enc_channels[i - 1]));
        if (c.enc_channels[i] % c.enc_res2net_scale != 0)
            config_error("enc_res2net_scale", fmt::format("{} does not divide the block width {}", c.enc_res2net_scale,
                                                          c.enc_channels[i]));
        aggregated += c.enc_channels[i];
    }
    if (aggregated != c.enc_channels[n - 1])
        config_error("enc_channels", fmt::format("the last entry ({}) must equal the summed SE-Res2Net widths ({}) that "
                                                 "the aggregation layer concatenates",
                                                 c.enc_channels[n - 1], aggregated));
}

}  // namespace

SpeakerEncoderConfig SpeakerEncoderConfig::from_json(const nlohmann::json& j) {
    SpeakerEncoderConfig c;
    if (j.is_null()) return c;
    if (!j.is_object()) throw InputError(fmt::format("{}: expected an object, got {}", kConfigName, j.type_name()));
    read_int(j, "mel_dim", c.mel_dim);
    read_int_list(j, "enc_channels", c.enc_channels);
    read_int_list(j, "enc_kernel_sizes", c.enc_kernel_sizes);
    read_int_list(j, "enc_dilations", c.enc_dilations);
    read_int(j, "enc_attention_channels", c.enc_attention_channels);
    read_int(j, "enc_res2net_scale", c.enc_res2net_scale);
    read_int(j, "enc_se_channels", c.enc_se_channels);
    read_int(j, "sample_rate", c.sample_rate);
    read_int(j, "enc_dim", c.enc_dim);
    validate(c);
    return c;
}

SpeakerEncoderImpl::SpeakerEncoderImpl(const SpeakerEncoderConfig& cfg) : cfg_(cfg) {
    validate(cfg_);
    const auto& ch = cfg_.enc_channels;
    const auto& ks = cfg_.enc_kernel_sizes;
    const auto& ds = cfg_.enc_dilations;
    const size_t n = ch.size();
    int64_t widest_pad = 0;
    auto note_pad = [&](int64_t k, int64_t d) { widest_pad = std::max(widest_pad, same_padding(k, d).second); };

    blocks_ = register_module("blocks", torch::nn::ModuleList());
    blocks_->push_back(Tdnn(cfg_.mel_dim, ch[0], ks[0], ds[0]));
    note_pad(ks[0], ds[0]);
    for (size_t i = 1; i + 1 < n; ++i) {
        blocks_->push_back(SeRes2NetBlock(ch[i - 1], ch[i], cfg_.enc_res2net_scale, cfg_.enc_se_channels, ks[i], ds[i]));
        note_pad(ks[i], ds[i]);
    }
    mfa_ = register_module("mfa", Tdnn(ch[n - 1], ch[n - 1], ks[n - 1], ds[n - 1]).ptr());
    note_pad(ks[n - 1], ds[n - 1]);
    asp_ = register_module("asp", AttentiveStatisticsPooling(ch[n - 1], cfg_.enc_attention_channels).ptr());
    fc_ = register_module("fc", make_conv(ch[n - 1] * 2, cfg_.enc_dim, 1));
    // torch's reflect padding requires pad < length on each side.
    min_frames_ = widest_pad + 1;
}

torch::Tensor SpeakerEncoderImpl::forward(const torch::Tensor& mel) {
    if (mel.dim() != 3 || mel.size(2) != cfg_.mel_dim)
        throw InputError(fmt::format("speaker encoder: expected a mel of shape [B, T, {}], got {}", cfg_.mel_dim,
                                     fmt::join(mel.sizes().vec(), "x")));
    if (mel.size(1) < min_frames_)
        throw InputError(fmt::format("speaker encoder: the reference audio gives {} mel frames, at least {} are needed "
                                     "(about {} samples at 24 kHz)",
                                     mel.size(1), min_frames_, (min_frames_ - 1) * kMelHop + kMelFftSize - 2 * kMelPad));
    auto x = mel.transpose(1, 2);
    std::vector<torch::Tensor> outputs;
    outputs.reserve(blocks_->size());
    for (size_t i = 0; i < blocks_->size(); ++i) {
        if (i == 0) x = blocks_[i]->as<TdnnImpl>()->forward(x);
        else x = blocks_[i]->as<SeRes2NetBlockImpl>()->forward(x);
        outputs.push_back(x);
    }
    // Multi-layer feature aggregation over every SE-Res2Net block's output (not the first TDNN).
    x = torch::cat(std::vector<torch::Tensor>(outputs.begin() + 1, outputs.end()), 1);
    x = mfa_->as<TdnnImpl>()->forward(x);
    x = asp_->as<AttentiveStatisticsPoolingImpl>()->forward(x);
    return fc_->forward(x).squeeze(-1);
}

torch::Tensor speaker_embedding(SpeakerEncoder& encoder, const std::vector<float>& wav_24k) {
    torch::NoGradGuard no_grad;
    if (wav_24k.empty()) throw InputError("speaker embedding: the reference audio is empty");
    auto wav = torch::from_blob(const_cast<float*>(wav_24k.data()), {static_cast<int64_t>(wav_24k.size())},
                                torch::kFloat32);
    auto mel = mel_spectrogram(wav);  // CPU, fp32, [1, T, 128]
    const auto params = encoder->parameters();
    const auto& any = params.front();
    return encoder->forward(mel.to(any.device(), any.scalar_type()))[0];
}

}  // namespace alexandria::model
