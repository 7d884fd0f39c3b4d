#pragma once
// Random-weight model folders in the real file layout (config.json, generation_config.json, model.safetensors), for
// tests (the `tiny` preset, CPU) and GPU benchmarks (`0.6b`, `1.7b`, with the real shapes). Real weights cannot be
// downloaded on our machines; everything that loads a checkpoint is exercised on these.
//
// tiny: the 1.7B structure (small_to_mtp_projection included) at small widths — talker 2 layers × 64 wide
// (4 query / 2 key-value heads of 16, MRoPE sections [4, 2, 2]), code predictor 2 layers × 32 wide, 16 code groups,
// codebook 2048, codec vocabulary 3072 with the real control ids, text vocabulary 151936 (so the real
// special-token ids stay valid) at text width 16, a small ECAPA speaker encoder (Base). About 6M parameters.
// tts_model_size is "tiny". tiny-1.7b and tiny-0.6b (parity suite): the two real shapes at tiny widths — talker
// 32 wide with text width 32 and a 16-wide code predictor (1.7B: small_to_mtp_projection), or text width 64 and a
// code predictor as wide as the talker (0.6B: identity projection).
//
// The tokenizer and speech_tokenizer/ folders are not written here (other layers own them): tools/make_model does.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "alexandria/model/config.h"

namespace alexandria::model {

struct RandomModelSpec {
    std::string size = "tiny";  // "tiny" | "tiny-1.7b" | "tiny-0.6b" | "0.6b" | "1.7b"
    std::string type = "base";  // "base" | "custom_voice" | "voice_design"
    uint64_t seed = 0;
    std::string dtype = "bf16";  // "bf16" (as released) | "f32"
};

// The config.json of the spec (real structure and ids; real values for 0.6b / 1.7b). InputError for an unknown
// size or type, or 0.6b voice_design (never released).
nlohmann::json random_model_config(const RandomModelSpec& spec);
// "tiny", "tiny-1.7b", "tiny-0.6b": the presets with tiny widths (small speaker encoder, tiny codec).
bool is_tiny_size(const std::string& size);
// The released generation_config.json, byte for byte.
std::string generation_config_text();

// The safetensors header (8-byte length excluded) that holds `shapes` in `dtype` ("BF16" | "F32"), serialised as
// the safetensors library does: names sorted, compact JSON, optional __metadata__, space padding to a multiple of 8.
std::string safetensors_header(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                               const std::string& dtype, const std::map<std::string, std::string>& metadata = {});
// 8 + header + data: the byte size of such a file. For a released config in BF16 this equals the published
// model.safetensors size (spec §0), which pins every tensor name's length.
uint64_t safetensors_file_size(const std::vector<std::pair<std::string, std::vector<int64_t>>>& shapes,
                               const std::string& dtype, const std::map<std::string, std::string>& metadata = {});

// Writes config.json, generation_config.json and model.safetensors into `dir` (created if needed). Weights are
// random_parameter(name, shape, seed) for every tensor of the module tree, so load_model() of the folder equals a
// TTSModel built from the same config with randomize_parameters(model, seed) (up to bf16 rounding). The weights
// file is streamed tensor by tensor (peak memory ≈ the largest tensor) and renamed into place when complete. As
// released, Base files carry no metadata and the other types {"format": "pt"}.
void write_random_model(const std::string& dir, const RandomModelSpec& spec);

}  // namespace alexandria::model
