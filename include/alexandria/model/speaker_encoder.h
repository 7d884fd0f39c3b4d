#pragma once
// Speaker encoder (ECAPA-TDNN without BatchNorm, Base checkpoints only) — spec model-talker.md §5.
// Owned by the speaker helper; the signatures below are the contract the rest of the model layer uses.
#include <torch/torch.h>
#include <nlohmann/json_fwd.hpp>
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
    // sample_rate). A present field of the wrong type is an InputError naming it.
    static SpeakerEncoderConfig from_json(const nlohmann::json& j);
};

class SpeakerEncoderImpl : public torch::nn::Module {
public:
    explicit SpeakerEncoderImpl(const SpeakerEncoderConfig& cfg);
    // mel [B, T, mel_dim] → [B, enc_dim]
    torch::Tensor forward(const torch::Tensor& mel);
    const SpeakerEncoderConfig& config() const { return cfg_; }
private:
    SpeakerEncoderConfig cfg_;
    // submodules registered as blocks.N..., mfa, asp, fc (checkpoint names under `speaker_encoder.`)
};
TORCH_MODULE(SpeakerEncoder);

// One speaker vector [enc_dim] from mono 24 kHz audio (mel in fp32, encoder in the module's dtype).
torch::Tensor speaker_embedding(SpeakerEncoder& encoder, const std::vector<float>& wav_24k);

}  // namespace alexandria::model
