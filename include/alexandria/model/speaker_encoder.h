#pragma once
// Speaker encoder (ECAPA-TDNN without BatchNorm, Base checkpoints only) — spec model-talker.md §5.
// Owned by the speaker helper; the signatures below are the contract the rest of the model layer uses.
#include <torch/torch.h>
#include <nlohmann/json_fwd.hpp>
#include <cstdint>
#include <memory>
#include <vector>

namespace alexandria::model {

struct SpeakerEncoderConfig {
    int mel_dim = 128;
    std::vector<int64_t> enc_channels{512, 512, 512, 512, 1536};
    std::vector<int64_t> enc_kernel_sizes{5, 3, 3, 3, 1};
    std::vector<int64_t> enc_dilations{1, 2, 3, 4, 1};
    int enc_attention_channels = 128;
    int enc_res2net_scale = 8;
    int enc_se_channels = 128;
    int sample_rate = 24000;
    int enc_dim = 1024;  // the real configs set it: 2048 at 1.7B, 1024 at 0.6B
    // Fields absent from the JSON keep the class defaults above (the published config only carries enc_dim and
    // sample_rate). A present field of the wrong type is an InputError naming it, and so is a combination the
    // network cannot be built from (list lengths differ, channels not divisible by the res2net scale, ...).
    static SpeakerEncoderConfig from_json(const nlohmann::json& j);
};

class SpeakerEncoderImpl : public torch::nn::Module {
public:
    explicit SpeakerEncoderImpl(const SpeakerEncoderConfig& cfg);
    // mel [B, T, mel_dim] → [B, enc_dim]. InputError when T < min_frames() (reflect padding needs pad < T).
    torch::Tensor forward(const torch::Tensor& mel);
    const SpeakerEncoderConfig& config() const { return cfg_; }
    // Fewest mel frames the reflect "same" padding of every convolution accepts (5 with the real config).
    int64_t min_frames() const { return min_frames_; }
private:
    SpeakerEncoderConfig cfg_;
    // Registered as blocks.N..., mfa, asp, fc: the checkpoint's names under `speaker_encoder.`.
    torch::nn::ModuleList blocks_{nullptr};
    std::shared_ptr<torch::nn::Module> mfa_, asp_;
    torch::nn::Conv1d fc_{nullptr};
    int64_t min_frames_ = 1;
};
TORCH_MODULE(SpeakerEncoder);

// One speaker vector [enc_dim] from mono 24 kHz audio, on the encoder's device and in its dtype. The mel is
// computed on the CPU in fp32 (as the reference does), then cast to the encoder's dtype. Runs without autograd.
// InputError when the clip is too short (fewer than ~1280 samples with the real config).
torch::Tensor speaker_embedding(SpeakerEncoder& encoder, const std::vector<float>& wav_24k);

}  // namespace alexandria::model
