#pragma once
// Shared helpers of the parity suite (tests/parity): where the fixtures are, how floats are compared, and the
// random-weight models the fixtures were made from.
//
// Fixtures come from the official qwen-tts package run by tools/parity/generate.py on our own make_model folders.
// They live in $ALEXANDRIA_PARITY_DIR (default tests/data/parity); tools/parity/run.sh --seed N --out DIR
// regenerates them for any seed and runs this program on DIR. The models are not committed (~10 MB each): each
// test rebuilds its model in-process from the manifest's preset/type/seed and checks every file's sha256 against
// the manifest first, so a fixture can never be compared with other weights.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "alexandria/codec/codec.h"

namespace alexandria::parity {

namespace fs = std::filesystem;

fs::path source_dir();
fs::path shared_dir();
// $ALEXANDRIA_PARITY_DIR, else tests/data/parity.
fs::path fixture_dir();
const nlohmann::json& manifest();  // fixture_dir()/manifest.json

// A model folder of the manifest (by name), rebuilt once per process in a temp folder and sha256-checked.
// REQUIREs that every file's hash matches.
fs::path model_dir(const std::string& name);
std::vector<std::string> model_names();
const nlohmann::json& model_entry(const std::string& name);

// All tensors of a fixture safetensors file (relative to fixture_dir()), as CPU tensors.
std::map<std::string, torch::Tensor> load_tensors(const fs::path& relative);
nlohmann::json load_json(const fs::path& relative);

// Float comparison figures of `got` against `want` (both cast to fp64).
struct Figures {
    double max_abs = 0, max_rel = 0, cosine = 1;
    int64_t count = 0;
    double floor = 0;  // the floor max_rel was computed with (0: relative to the value itself)
};
// max_rel = max |got - want| / max(|want|, floor · max|want|): relative to each element, with a floor so that
// elements near zero (where a relative error means nothing) are judged against the tensor's scale.
Figures compare(const torch::Tensor& got, const torch::Tensor& want, double floor = 1e-3);
// The tolerances: cosine ≥ 0.99999 and max relative error ≤ 1e-4 (fp32).
constexpr double kMinCosine = 0.99999;
constexpr double kMaxRel = 1e-4;
bool within(const Figures& f, double max_rel = kMaxRel, double min_cosine = kMinCosine);
std::string describe(const Figures& f);

// Accumulates figures per stage and prints the table at exit (the report's numbers).
void record(const std::string& stage, const std::string& what, const Figures& f);
void record_ids(const std::string& stage, const std::string& what, bool identical, int64_t count);

std::string sha256_file(const fs::path& p);

// Why our encoder's codes [T, 16] of `wav24k` differ from the official ones, or "" when every differing frame
// first differs at a near-tie of our encoder (the two codes' distances to our residual within 1e-4 of each other,
// relative; the frame's later codebooks follow from another residual and are not compared) and at most one frame
// in 50 differs. fp32 encoders sum in other orders on other CPUs (vector widths, oneDNN's kernels), and random
// codebooks leave near-ties: a fixture made on one CPU generation flips a code now and then on another.
std::string code_differences(const codec::Codec& codec, const std::vector<float>& wav24k, const torch::Tensor& ours,
                             const torch::Tensor& official);

// The official fp32 output's own rounding error, as tools/parity/float64.py measured it (the same computation by
// the official model in float64): manifest models.<name>.float64.<key>, a {max_abs, max_rel, cosine, count}
// object or absent (fixtures written before it existed). Recorded as a row of the table at floor 1e-3, and at 1e-2
// where the object has max_rel_floor_1e-2.
void record_float64(const std::string& stage, const std::string& name, const nlohmann::json& figures);

// $ALEXANDRIA_PARITY_FLOAT64: a folder of <model>.f64.safetensors written by `float64.py --save` (float64 tensors,
// not fixtures), for the hidden "[.float64]" measurements; empty when unset.
fs::path float64_dir();

}  // namespace alexandria::parity

// Stages 4 (code predictor logits) and 7 (LoRA gradients): outputs of long fp32 reductions with many elements near
// zero, where the official fp32 itself is far from exact. tools/parity/float64.py recomputes them in float64 (fp32
// upcasts kept in float64); seed 1, worst over the models, max rel at floors 1e-3 / 1e-2:
//   stage 4 logits   official fp32 vs float64 1.1e-3 / 1.5e-4; ours fp32 vs float64 7.7e-4 / 1.4e-4;
//                    ours vs official fp32 7.1e-4 / 9.2e-5 (1.2e-3 / 1.9e-4 step by step with the KV cache)
//   stage 7 grads    official fp32 vs float64 6.0e-4 / 9.5e-5; ours fp32 vs float64 6.8e-4 / 9.2e-5;
//                    ours vs official fp32 6.8e-4 / 9.8e-5
// Both sides are equally far from float64 and differ from each other by no more: rounding noise, not a different
// computation (with our AVX2 kernels off, ALEXANDRIA_NO_KERNELS=1, the figures stay the same order). Two fp32
// results each within e of the exact value are within 2e of each other: floor 1e-2 (as stage 3's prefill) and
// max rel 3e-4, twice the official fp32's own worst error at that floor. The same holds for the code predictor
// with a LoRA (stage 8). `test_parity "[.float64]"` with ALEXANDRIA_PARITY_FLOAT64 measures these figures again.
namespace alexandria::parity {
constexpr double kNoiseFloor = 1e-2;
constexpr double kNoiseMaxRel = 3e-4;
}  // namespace alexandria::parity

// CHECK that `got` matches `want` within the tolerances, recording the figures under stage/what.
#define PARITY_CHECK_CLOSE(stage, what, got, want) PARITY_CHECK_CLOSE_FLOOR(stage, what, got, want, 1e-3)
// Stages 4 and 7: floor kNoiseFloor, max rel kNoiseMaxRel (above).
#define PARITY_CHECK_CLOSE_NOISY(stage, what, got, want)                                            \
    do {                                                                                            \
        auto parity_f_ = ::alexandria::parity::compare((got), (want), ::alexandria::parity::kNoiseFloor); \
        ::alexandria::parity::record((stage), (what), parity_f_);                                   \
        INFO(stage << " " << what << ": " << ::alexandria::parity::describe(parity_f_));             \
        CHECK(::alexandria::parity::within(parity_f_, ::alexandria::parity::kNoiseMaxRel));         \
    } while (0)
// The same with the relative error floored at `floor` · max|want| (waveforms: samples near zero carry no meaning
// relative to themselves; 1e-2 of the peak).
#define PARITY_CHECK_CLOSE_FLOOR(stage, what, got, want, floor)                                     \
    do {                                                                                            \
        auto parity_f_ = ::alexandria::parity::compare((got), (want), (floor));                     \
        ::alexandria::parity::record((stage), (what), parity_f_);                                   \
        INFO(stage << " " << what << ": " << ::alexandria::parity::describe(parity_f_));             \
        CHECK(::alexandria::parity::within(parity_f_));                                             \
    } while (0)
