#pragma once
// From measurements to the seed's words: which rows of its troubleshooting table apply to an adapter, the fix each
// suggests, whether the adapter is usable, and which of several adapters (e.g. checkpoints/epoch-*) to pick.
//
// Rules (thresholds in metrics.h and below):
//   held-out `alexandria` loss  plan::loss_verdict (the seed's "Overfitting Symptoms" table and its gaps):
//                               starting-to-overfit / overfit / knife's edge / not finite → "Garbled audio on new
//                               text" (unusable); undertrained → "Clear but no voice identity" (unusable);
//                               above target → a note (usable).
//   runaways                    > 10 % of sentence/paragraph generations hit the frame cap → "Generation hangs /
//                               no EOS" (unusable); otherwise > 10 % of the short prompts → "Short texts hang at
//                               max_new_tokens" (unusable).
//   speaking rate               output/dataset > 1.15 → "Fast/rushed speech" (warning: fixable at synth time).
//   speaker similarity          mean similarity to the reference not above the base model's → "Clear but no voice
//                               identity" (warning: a few prompts make this figure noisy; the loss decides).
//   duration outliers           > 10 % of outputs → "Garbled audio on new text" (warning: listen to them).
//   ref_text.txt vs ref.wav     the reference's implied speaking rate off the dataset's by 2× or more, or no
//                               transcript → "ref.wav mismatch" (warning).
//   silent outputs / failures   > 10 % of outputs → unusable (no row of the seed's table: reported as is).
//   clipped outputs             any → warning.
// Not measured (said so in the report): the "Initial audio glitch" row, and garbling itself (no ASR here).
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "alexandria/eval/metrics.h"
#include "alexandria/plan/loss_bands.h"

namespace alexandria::eval {

constexpr double kMaxRunawayRate = 0.10;
constexpr double kMaxSilentRate = 0.10;
constexpr double kMaxOutlierRate = 0.10;
constexpr double kRefRateRatioLow = 0.5, kRefRateRatioHigh = 2.0;

enum class Trouble { Garbled, NoEos, NoIdentity, Rushed, ShortHang, InitialGlitch, RefMismatch };

// A row of the seed's troubleshooting table, exactly as written.
struct TroubleshootingRow {
    Trouble id;
    std::string key;      // stable identifier: "garbled", "no-eos", "no-identity", "rushed", "short-hang",
                          // "initial-glitch", "ref-mismatch"
    std::string problem, cause, fix;
};
// The seven rows, in the seed's order.
const std::vector<TroubleshootingRow>& troubleshooting_table();
const TroubleshootingRow& troubleshooting_row(Trouble id);

enum class Severity { Note, Warning, Unusable };
std::string severity_name(Severity s);  // "note" | "warning" | "unusable"

struct Finding {
    std::string key;       // a troubleshooting key, or "silent-output", "generation-failed", "clipped-output",
                           // "loss-above-target"
    std::string problem, cause, fix;  // the seed's words for a table row; ours otherwise
    bool seed_row = false;            // from the seed's troubleshooting table
    Severity severity = Severity::Note;
    std::vector<std::string> evidence;  // the measurements that triggered it
};

// ref_text.txt against ref.wav: does the transcript's length fit the clip at the dataset's speaking rate?
struct RefCheck {
    bool present = false;            // both ref.wav (or the reference used) and a transcript exist
    int64_t characters = 0;
    double speech_seconds = 0;
    double rate = kNaN, ratio = kNaN;  // implied chars/s, and that over the dataset's rate
    bool mismatch = false;
    std::string reason;
};
RefCheck check_reference(const std::string& ref_text, bool has_text, const io::AudioStats& ref_audio,
                         double dataset_rate);

struct JudgeInput {
    std::optional<plan::LossVerdict> loss;  // of the held-out `alexandria` loss
    GenerationSummary generation;
    std::optional<GenerationSummary> base;  // the base model without adapter, same prompts and seeds
    std::optional<RefCheck> reference;
};

struct AdapterVerdict {
    bool usable = true;
    std::vector<Finding> findings;  // one per key, most severe first, then in the seed's order
    std::string summary;            // one line: "usable" or the problems
};
AdapterVerdict judge(const JudgeInput& in);

// What the comparison of several adapters looks at.
struct RankInput {
    std::string label;
    bool usable = false;
    double runaway_rate = kNaN;
    double similarity = kNaN;   // mean speaker similarity
    double rate_ratio = kNaN;
    double loss = kNaN;         // held-out alexandria loss
};
// Indices best first: usable before not; then fewer runaways; higher speaker similarity; speaking-rate ratio
// closer to 1; held-out loss closer to the seed's target 4.15; then input order. NaN sorts last in each key.
std::vector<size_t> rank_adapters(const std::vector<RankInput>& in);
// The pick: the best-ranked adapter when it is usable, else none.
std::optional<size_t> pick_adapter(const std::vector<RankInput>& in);

nlohmann::json to_json(const Finding& f);
nlohmann::json to_json(const AdapterVerdict& v);
nlohmann::json to_json(const RefCheck& r);

}  // namespace alexandria::eval
