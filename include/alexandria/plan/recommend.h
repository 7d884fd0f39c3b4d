#pragma once
// The epochs / learning-rate heuristic (DESIGN §7) built from the seed guide's Quick Reference, its
// exposure rule (samples × epochs around 250-400, above 600 overfits) and its Tested Configurations.
//
// The model, in one place:
//  * table_lr(n): the Quick Reference's learning rate for n samples, interpolated in log-log space through
//    (30, 5e-6), (60, 3e-6), (120, 2e-6); 5e-6 below 30 samples (the highest rate the table recommends);
//    beyond 120 the last segment's slope continues down to 1e-6 (the lowest rate the seed tested, and the
//    rate Alexandria's builtin adapters were trained with), never lower.
//  * exposure = samples × epochs (the seed's "total forward passes").
//  * effective exposure = exposure × (lr_eff / table_lr(n))^γ, lr_eff = lr × (alpha/r) / 2 (LoRA's update
//    scales with alpha/r; 128/64 = 2 is the seed's default, so the factor is 1 there). γ = 0.45 when the
//    rate is below the table's, 0.65 above. At the table's rate effective exposure is plain exposure, so
//    the Quick Reference and the 250-400 rule hold as written. The exponents are fitted to the seed's
//    Tested Configurations (tests/plan/test_recommend.cpp lists every row): the male runs at 1e-6 (61
//    samples) peak at raw exposure 549-610, female-07 at 2e-6 (121) at 363, so a lower rate needs more
//    passes, but less than proportionally.
//  * bands on effective exposure: under < 250 ≤ target ≤ 400 < high ≤ 600 < overfit.
//  * recommended epochs: round(360 / (n × factor)), one fewer if that lands above 400, clamped to 1..20;
//    360 is what all three Quick Reference rows give (30×12, 60×6, 120×3).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace alexandria::plan {

// The seed's fixed hyper-parameters.
constexpr int kLoraR = 64;
constexpr int kLoraAlpha = 128;
constexpr int kGradAccum = 4;
constexpr int kBatchSize = 1;

// Exposure bands (effective exposure, forward passes).
constexpr double kUnderBelow = 250;    // below: undertrained
constexpr double kTargetUpTo = 400;    // 250..400: the seed's target
constexpr double kOverfitAbove = 600;  // above: overfitting
constexpr double kTargetExposure = 360;
constexpr int kMaxEpochs = 20;
constexpr int64_t kFewSamples = 10;    // fewer than this: warn
constexpr double kMinLr = 1e-7;        // a suggested rate is never outside [kMinLr, kMaxLr]
constexpr double kMaxLr = 1e-5;        // the highest rate the seed tested (female-lora-01)
constexpr double kGammaBelow = 0.45;
constexpr double kGammaAbove = 0.65;

enum class ExposureBand { Under, Target, High, Overfit };
// "under" | "target" | "high" | "overfit"
std::string band_name(ExposureBand b);
// One line saying what the band means, in the seed's words.
std::string band_meaning(ExposureBand b);
ExposureBand exposure_band(double effective_exposure);

// The Quick Reference's learning rate for `samples` (see above). samples >= 1.
double table_lr(int64_t samples);
// (lr_eff / table_lr)^γ: how much one pass at `lr` counts relative to one pass at the table's rate.
double lr_factor(double lr, int64_t samples, int lora_r = kLoraR, int lora_alpha = kLoraAlpha);
double effective_exposure(int64_t samples, int epochs, double lr, int lora_r = kLoraR, int lora_alpha = kLoraAlpha);

struct Request {
    int64_t samples = 0;           // usable training clips, >= 1
    std::optional<int> epochs;     // fixed by the user
    std::optional<double> lr;      // fixed by the user
    int lora_r = kLoraR;
    int lora_alpha = kLoraAlpha;
};

struct Recommendation {
    int64_t samples = 0;
    int epochs = 0;
    double lr = 0;
    bool epochs_fixed = false;
    bool lr_fixed = false;
    int lora_r = kLoraR;
    int lora_alpha = kLoraAlpha;
    int grad_accum = kGradAccum;
    int batch_size = kBatchSize;
    int64_t exposure = 0;            // samples × epochs
    double effective_exposure = 0;   // exposure × lr_factor; the band is judged on this
    double table_lr = 0;             // the Quick Reference's rate for this many samples
    double lr_factor = 1;
    ExposureBand band = ExposureBand::Target;
    int64_t optimizer_steps = 0;     // ceil(samples / grad_accum) × epochs (a step every grad_accum samples
                                     // and at the end of each epoch, as Alexandria's train_lora.py)
    std::vector<std::string> reasons;
    std::vector<std::string> warnings;
};

// Pure function; InputError on samples < 1, epochs < 1, a non-finite or non-positive lr, r/alpha < 1.
Recommendation recommend(const Request& request);

nlohmann::json to_json(const Recommendation& r);
// Human summary, several lines, no trailing newline.
std::string to_text(const Recommendation& r);

}  // namespace alexandria::plan
