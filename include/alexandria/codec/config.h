#pragma once
// The speech tokenizer's config.json (spec model-codec.md §1). Every key the network's shape or maths depends on
// is required; a missing or ill-typed key is an InputError naming the file and the key path.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace alexandria::codec {

// Fixed by the talker's vocabulary and the 12.5 Hz frame layout; the loader rejects configs that differ.
constexpr int kNumCodebooks = 16;          // codes per frame: 1 semantic + 15 acoustic
constexpr int kCodebookSize = 2048;        // ids 0..2047
constexpr int kSampleRate = 24000;
constexpr int kSamplesPerFrame = 1920;     // 80 ms
constexpr int kDecodeChunkFrames = 300;    // the reference's chunked_decode(chunk_size=300, ...)
constexpr int kDecodeContextFrames = 25;   // ... left_context_size=25

// encoder_config (a MimiConfig)
struct EncoderConfig {
    int64_t audio_channels = 1;
    int64_t num_filters = 64;
    std::vector<int64_t> upsampling_ratios{8, 6, 5, 4};  // applied reversed: strides 4, 5, 6, 8
    int64_t kernel_size = 7, last_kernel_size = 3, residual_kernel_size = 3;
    int64_t dilation_growth_rate = 2;
    int64_t num_residual_layers = 1;
    int64_t compress = 2;
    int64_t hidden_size = 512;
    int64_t num_hidden_layers = 8;
    int64_t num_attention_heads = 8;
    int64_t num_key_value_heads = 8;
    int64_t head_dim = 64;
    int64_t intermediate_size = 2048;
    double norm_eps = 1e-5;
    double rope_theta = 10000.0;
    int64_t sliding_window = 250;  // parsed for completeness; the reference does not apply it (spec §3.2)
    int64_t codebook_size = 2048;
    int64_t codebook_dim = 256;
    int64_t vector_quantization_hidden_dimension = 256;
    int64_t num_quantizers = 32;
    int64_t num_semantic_quantizers = 1;
    int64_t sampling_rate = 24000;
    double frame_rate = 12.5;  // `_frame_rate`

    // Derived: the SEANet hop (960 at the real config) and the 25 Hz → 12.5 Hz downsample conv.
    int64_t seanet_hop() const;
    int64_t downsample_stride() const { return 2; }  // hard-coded in Mimi
    int64_t downsample_kernel() const;                // 2 · int(encodec_frame_rate / frame_rate)
};

// decoder_config (Qwen3TTSTokenizerV2DecoderConfig)
struct DecoderConfig {
    int64_t codebook_size = 2048;
    int64_t codebook_dim = 512;  // RVQ in/out width; the codebook vectors are codebook_dim / 2 wide
    int64_t num_quantizers = 16;
    int64_t latent_dim = 1024;
    int64_t decoder_dim = 1536;
    int64_t hidden_size = 512;
    int64_t intermediate_size = 1024;
    int64_t num_hidden_layers = 8;
    int64_t num_attention_heads = 16;
    int64_t num_key_value_heads = 16;
    int64_t head_dim = 64;  // required in the JSON: hidden/heads would give 32 and the weights would not fit
    double rms_norm_eps = 1e-5;
    double rope_theta = 10000.0;
    int64_t sliding_window = 72;  // keys visible to a query, itself included
    std::vector<int64_t> upsample_rates{8, 5, 4, 3};
    std::vector<int64_t> upsampling_ratios{2, 2};

    int64_t codebook_inner_dim() const { return codebook_dim / 2; }
    int64_t total_upsample() const;
};

struct CodecConfig {
    int64_t encoder_valid_num_quantizers = 16;
    int64_t input_sample_rate = 24000, output_sample_rate = 24000;
    int64_t encode_downsample_rate = 1920, decode_upsample_rate = 1920;
    EncoderConfig encoder;
    DecoderConfig decoder;
    // Not in the JSON: 0 = unbounded causal attention in the encoder transformer, as the reference computes it
    // (spec §3.2); a positive value applies Kyutai's sliding window of that many keys instead.
    int64_t encoder_attention_window = 0;

    // `where` names the source in messages (normally the file path).
    static CodecConfig from_json(const nlohmann::json& j, const std::string& where);
    static CodecConfig load(const std::string& config_json_path);
    // The real published configuration (spec §1), for shape checks and the full-size random codec.
    static CodecConfig real();
    nlohmann::json to_json() const;
};

}  // namespace alexandria::codec
