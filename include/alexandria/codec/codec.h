#pragma once
// The speech codec: 24 kHz mono audio ⇄ [frames, 16] codebook ids at 12.5 Hz (spec model-codec.md).
//
//   auto codec = codec::Codec::load(model_dir + "/speech_tokenizer", torch::kCPU, torch::kFloat32);
//   torch::Tensor codes = codec.encode(wav24k);        // [ceil(n/1920), 16] int64, ids 0..2047
//   std::vector<float> wav = codec.decode(codes);      // 1920 samples per frame, in [-1, 1]
//
//   codec::IncrementalDecoder stream(codec);           // synthesis: audio as frames arrive
//   auto part = stream.push(new_frames);               // 1920 · new_frames samples, final at once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "alexandria/codec/config.h"
#include "alexandria/codec/modules.h"

namespace alexandria::codec {

// Frames the encoder gives for n samples: ceil(n / 1920).
inline int64_t frames_for_samples(int64_t n) { return (n + kSamplesPerFrame - 1) / kSamplesPerFrame; }

class Codec {
public:
    // `dir` is a speech_tokenizer folder (config.json + model.safetensors), or a model folder that has one.
    // InputError on a missing/invalid config, a malformed file or any tensor name/shape mismatch (all listed).
    static Codec load(const std::string& dir, torch::Device device = torch::kCPU,
                      torch::Dtype dtype = torch::kFloat32);
    // Wraps an existing model (e.g. built in a test); its weights must already be set.
    static Codec from_model(CodecModel model, torch::Device device, torch::Dtype dtype, std::string identity);

    // Mono 24 kHz samples (no normalisation) → [ceil(n/1920), 16] int64 on the CPU.
    // InputError on empty input or a non-finite sample (naming its index).
    torch::Tensor encode(const std::vector<float>& wav24k) const;
    // Any audio file libsndfile reads: downmixed to mono by averaging channels, resampled to 24 kHz with soxr HQ
    // when needed (the reference uses librosa's soxr_hq), then encode(). InputError naming the file otherwise.
    torch::Tensor encode_file(const std::string& path) const;

    // [frames, 16] ids → 1920 · frames samples, with the reference's chunking (300 frames, 25 frames of left
    // context) so long inputs match it. Trailing rows of −1 are padding and give no samples. InputError on a wrong
    // shape or dtype, ids outside 0..2047, or −1 anywhere but whole trailing rows.
    std::vector<float> decode(const torch::Tensor& codes) const;
    // [batch, frames, 16] right-padded with −1 rows → one waveform per item (each equal to its own decode).
    std::vector<std::vector<float>> decode_batch(const torch::Tensor& codes) const;

    // Stages for parity checks, all on the codec's device and dtype:
    // one decoder forward without chunking: codes [B, 16, T] (validated, no padding) → [B, 1, 1920·T].
    torch::Tensor decode_unchunked(const torch::Tensor& codes) const;
    // The reference's chunked_decode on [B, 16, T] ids (no padding) → [B, 1, 1920·T].
    torch::Tensor decode_chunked(const torch::Tensor& codes, int64_t chunk = kDecodeChunkFrames,
                                 int64_t context = kDecodeContextFrames) const;

    const CodecConfig& config() const;
    CodecModel& model() const;
    torch::Device device() const;
    torch::Dtype dtype() const;
    // Stable id of the weights and config for caches: a hash of config.json, the safetensors header and
    // samples of its data (the same files give the same id; a different seed or checkpoint a different one).
    const std::string& identity() const;

private:
    struct State;
    std::shared_ptr<State> s_;
};

// Streaming decode. The decoder is strictly causal, so the samples of a frame are final as soon as the frame
// arrives: push(n frames) returns 1920·n samples, and the concatenation of all pushes equals decode() of all
// frames (the 300-frame chunk restarts with 25 frames of context are reproduced). Equality is to float rounding
// (the same maths on differently sized matrices), not bit for bit.
class IncrementalDecoder {
public:
    explicit IncrementalDecoder(Codec codec);
    // frames: [n, 16] (or [16]) ids in 0..2047; n may be 0.
    std::vector<float> push(const torch::Tensor& frames);
    int64_t frames_decoded() const { return frames_; }
    void reset();

private:
    std::vector<float> run(const torch::Tensor& codes /*[1,16,n] on device*/, bool keep);
    Codec codec_;
    DecoderState state_;
    torch::Tensor recent_;  // last kDecodeContextFrames frames [1, 16, ≤25] for the next chunk's context
    int64_t frames_ = 0;
};

// Checks a code matrix: integer dtype, last dimension 16, ids in 0..2047, and (when allow_padding) −1 only as
// whole trailing rows. Returns the number of valid (non-padding) frames. `what` names the input in messages.
int64_t validate_codes(const torch::Tensor& codes /*[T,16]*/, bool allow_padding, const std::string& what = "codes");

// Writes a speech_tokenizer folder (config.json, preprocessor_config.json, model.safetensors) with random weights
// in the real layout. preset "full": the real config; "tiny": the same structure (all names, 16 codebooks of 2048
// ids, 1920 samples per frame, 8+8 transformer layers) with small widths. Encoder codebooks are placed where
// their inputs lie on a synthetic signal, so random codecs give varied codes. Deterministic for a seed.
void write_random_codec(const std::string& dir, const std::string& preset, uint64_t seed);
// The tiny preset's config.
CodecConfig tiny_codec_config();

}  // namespace alexandria::codec
