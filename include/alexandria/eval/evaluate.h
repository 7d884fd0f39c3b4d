#pragma once
// `alexandria eval`: measure one or several voice adapters against their dataset (issue 9).
//
// For each adapter (and once for the base model without adapter, for comparison):
//   1. held-out loss: the teacher-forced loss of both objectives (train::batch_loss, no update) on the dataset's
//      validation split (splits/val.jsonl), or on the whole dataset when it has none (said so), with the prompt
//      layout the adapter was trained with (its training language); the seed's verdict for the `alexandria` loss;
//   2. generation over prompts × seeds, conditioned on the dataset's reference speaker vector: EOS / runaway,
//      speaking rate against the dataset's own rate, speaker similarity of each output to the reference, duration
//      outliers, silent and clipped outputs; every WAV is kept in the output folder;
//   3. the verdict (verdict.h) and, with several adapters, the ranking and the pick.
// Everything lands in OUT/eval.json (written atomically, last) and a human table; with `html_report`, also
// OUT/report.html, a page to listen with (report.h).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "alexandria/dataset/dataset.h"
#include "alexandria/eval/metrics.h"
#include "alexandria/eval/prompts.h"
#include "alexandria/eval/verdict.h"
#include "alexandria/model/talker.h"
#include "alexandria/plan/loss_bands.h"
#include "alexandria/train/objective.h"

namespace alexandria::eval {

namespace fs = std::filesystem;

constexpr const char* kEvalSchema = "alexandria.eval/1";
constexpr const char* kEvalFile = "eval.json";
constexpr const char* kBaseLabel = "base";

// Exit codes of `alexandria eval`.
constexpr int kExitUsable = 0;
constexpr int kExitNotUsable = 3;

struct HeldOutLoss {
    train::ObjectiveLoss alexandria, aligned;  // means over samples (as train's epoch averages)
    int samples = 0;
    std::string split;                         // "val" | "all"
    std::string note;                          // says so when the whole dataset was used
    std::string language;                      // the codec prefix used
    plan::LossVerdict verdict;                 // of alexandria.total
    double seconds = 0;
};

// Teacher-forced losses of both objectives over `samples`, one sample per forward, without gradients (the talker is
// put in eval mode for the call: LoRA dropout off). A non-finite sample loss makes the mean non-finite (the verdict
// is then "invalid"). InputError when `samples` is empty.
HeldOutLoss held_out_loss(model::Talker& talker, const train::PromptContext& ctx,
                          const std::vector<train::Sample>& samples);

// The dataset's own speaking rate: pooled over every metadata line without errors whose audio decodes (a clip that
// does not is skipped and named in `skipped`).
PooledRate dataset_speaking_rate(const dataset::Dataset& ds, std::vector<std::string>* skipped = nullptr);

// Held-out lines: splits/val.jsonl's lines mapped to metadata.jsonl line numbers; nullopt when the dataset has no
// split (evaluate on everything). InputError for a stale split (dataset::load_split's rule) or an empty val side.
std::optional<std::vector<int>> held_out_lines(const dataset::Dataset& ds);

// A short, file-name-safe label for an adapter folder: its folder name ("epoch-3"), made unique within `taken`
// (a "-2", "-3" ... suffix), never "base".
std::string adapter_label(const std::string& dir, const std::vector<std::string>& taken);

// The training language recorded with an adapter: its training_meta.json `language`, else that of the adapter two
// levels up when the folder is OUT/checkpoints/epoch-N; "" when none is recorded.
std::string recorded_language(const std::string& adapter_dir);
// The prompt mode an adapter was trained with (training_meta.json `prompt`, found as recorded_language finds the
// language): "icl" or "xvector" (also when none is recorded: train_lora.py and older runs are x-vector).
std::string recorded_prompt(const std::string& adapter_dir);

struct EvalOptions {
    std::string model;                  // folder or HF id
    std::vector<std::string> adapters;  // one or more adapter folders
    std::string data;                   // dataset folder
    std::string prompts_file;           // "" = default_prompts()
    int seeds = 3;                      // seeds first_seed .. first_seed + seeds - 1
    uint64_t first_seed = 0;
    std::string out = "eval";           // WAVs + eval.json (+ report.html); checked writable before any work
    bool html_report = false;           // also write OUT/report.html (the command line: when --out is given)
    std::string language;               // "" = each adapter's recorded language, else "english" (train's default)
    // "" = each adapter's training prompt mode (recorded_prompt; the base model takes the first adapter's), else
    // "xvector" | "icl". ICL: the dataset's reference clip and ref_text.txt in every prompt and held-out sequence.
    std::string prompt;
    std::string device = "auto";
    std::string dtype = "auto";         // auto: f32 on the CPU, bf16 on CUDA
    int64_t max_frames = 0;             // 0 = generation_config.json's max_new_tokens
    int64_t batch = 0;                  // outputs generated at once (speak_batch); 0 = per device (default_batch)
    double frames_per_token = 6.0;      // the runaway guard (synth::FrameCapRule)
    int64_t min_frames = 64;
    bool compare_base = true;           // also generate with the base model (speaker-similarity reference)
    bool loss = true;                   // compute the held-out loss
    bool generate = true;               // run the generation checks
    double max_seconds = 30.0;          // clips longer than this are skipped (as train does)
    std::string tool_version;
    std::function<void(const std::string&)> log;  // progress lines (stderr); may be empty
};

struct AdapterEval {
    std::string label, dir;
    std::string language;
    std::string prompt = "xvector";   // "xvector" | "icl": how it was prompted (loss and generation)
    std::optional<HeldOutLoss> loss;
    std::vector<OutputCheck> outputs;
    GenerationSummary generation;
    AdapterVerdict verdict;           // not judged for the base model
    nlohmann::json training;          // a few training_meta.json values, when present
};

struct EvalReport {
    std::vector<AdapterEval> adapters;
    std::optional<AdapterEval> base;
    std::vector<size_t> ranking;      // indices into adapters, best first
    std::optional<size_t> pick;
    bool usable = false;              // the pick exists (one adapter: it is usable)
    int exit_code = kExitNotUsable;
    nlohmann::json json;              // eval.json as written
    fs::path json_path;
    fs::path report_path;             // report.html ("" = not written)
    double seconds = 0;
};

// InputError: bad options, model, adapter, dataset or prompts (exit 2). The verdict decides exit_code (0 or 3).
EvalReport evaluate(const EvalOptions& options);

// The human table (stderr): per adapter loss, verdict, EOS/runaway, rate, similarity vs base, findings with their
// fixes; the comparison and the pick when there are several.
std::string format_table(const EvalReport& report);

// JSON of the pieces (used by eval.json; exposed for tests).
nlohmann::json to_json(const HeldOutLoss& l);
nlohmann::json to_json(const OutputCheck& o);
nlohmann::json to_json(const GenerationSummary& g);
nlohmann::json to_json(const PooledRate& r);
nlohmann::json to_json(const AdapterEval& a, bool judged);  // judged: with its verdict (not for the base model)

}  // namespace alexandria::eval
