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

}  // namespace alexandria::parity

// CHECK that `got` matches `want` within the tolerances, recording the figures under stage/what.
#define PARITY_CHECK_CLOSE(stage, what, got, want) PARITY_CHECK_CLOSE_FLOOR(stage, what, got, want, 1e-3)
// The same with the relative error floored at `floor` · max|want| (waveforms: samples near zero carry no meaning
// relative to themselves; 1e-2 of the peak).
#define PARITY_CHECK_CLOSE_FLOOR(stage, what, got, want, floor)                                     \
    do {                                                                                            \
        auto parity_f_ = ::alexandria::parity::compare((got), (want), (floor));                     \
        ::alexandria::parity::record((stage), (what), parity_f_);                                   \
        INFO(stage << " " << what << ": " << ::alexandria::parity::describe(parity_f_));             \
        CHECK(::alexandria::parity::within(parity_f_));                                             \
    } while (0)
