#include "alexandria/plan/recommend.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"

namespace alexandria::plan {
namespace {

struct TableRow {
    int64_t samples;
    double lr;
    int epochs_low, epochs_high;
};
// The seed's Quick Reference.
constexpr TableRow kTable[] = {{30, 5e-6, 10, 15}, {60, 3e-6, 5, 8}, {120, 2e-6, 3, 3}};
constexpr double kLrFloor = 1e-6;
constexpr int64_t kLargestTested = 121;  // the seed's largest tested dataset

// "5e-06" → "5e-6": the way the seed writes rates.
std::string fmt_lr(double lr) {
    std::string s = fmt::format("{:.3g}", lr);
    auto e = s.find("e-0");
    if (e != std::string::npos) s.erase(e + 2, 1);
    auto p = s.find("e+0");
    if (p != std::string::npos) s.erase(p + 2, 1);
    return s;
}

double interp_loglog(double n, const TableRow& a, const TableRow& b) {
    double t = std::log(n / double(a.samples)) / std::log(double(b.samples) / double(a.samples));
    return std::exp(std::log(a.lr) + t * (std::log(b.lr) - std::log(a.lr)));
}

double lora_scale_ratio(int r, int alpha) { return (double(alpha) / double(r)) / (double(kLoraAlpha) / kLoraR); }

// Epochs whose (effective) exposure lands nearest 360 without leaving the target band upward.
int pick_epochs(double passes_per_epoch) {
    double e = std::round(kTargetExposure / passes_per_epoch);
    if (!std::isfinite(e) || e > kMaxEpochs) e = kMaxEpochs;
    if (e < 1) e = 1;
    if (e > 1 && passes_per_epoch * e > kTargetUpTo) e -= 1;
    return int(e);
}

void validate(const Request& q) {
    if (q.samples < 1)
        throw InputError(fmt::format("samples: need at least 1 usable training clip, got {}", q.samples));
    if (q.epochs && (*q.epochs < 1 || *q.epochs > 100000))
        throw InputError(fmt::format("epochs: must be between 1 and 100000, got {}", *q.epochs));
    if (q.lr && (!std::isfinite(*q.lr) || *q.lr <= 0 || *q.lr > 1.0))
        throw InputError(fmt::format("lr: must be a positive number no larger than 1, got {}", *q.lr));
    if (q.lora_r < 1 || q.lora_alpha < 1)
        throw InputError(fmt::format("lora r and alpha must be at least 1, got r {} alpha {}", q.lora_r, q.lora_alpha));
}

std::string table_reason(int64_t n, double tlr) {
    for (auto& row : kTable)
        if (row.samples == n)
            return fmt::format("{} samples is a row of the seed's Quick Reference: {}-{} epochs at {}", n,
                               row.epochs_low, row.epochs_high, fmt_lr(row.lr));
    if (n < kTable[0].samples)
        return fmt::format("{} samples is below the Quick Reference's smallest row (~30 samples): the rate stays at "
                           "its highest, {}, and epochs are capped at {}", n, fmt_lr(tlr), kMaxEpochs);
    if (n > kTable[2].samples) {
        if (tlr <= kLrFloor * 1.0000001)
            return fmt::format("{} samples is beyond the Quick Reference (largest row ~120): the rate is extrapolated "
                               "down to its floor {} (the lowest rate the seed tested)", n, fmt_lr(tlr));
        return fmt::format("{} samples is beyond the Quick Reference (largest row ~120): rate {} extrapolated "
                           "along the 60→120 slope (floor 1e-6)", n, fmt_lr(tlr));
    }
    const TableRow& a = n < kTable[1].samples ? kTable[0] : kTable[1];
    const TableRow& b = n < kTable[1].samples ? kTable[1] : kTable[2];
    return fmt::format("{} samples lies between the Quick Reference's rows {} ({} epochs at {}) and {} ({} epochs at "
                       "{}): rate {} interpolated on a log-log scale", n, a.samples,
                       a.epochs_low == a.epochs_high ? fmt::format("{}", a.epochs_low)
                                                     : fmt::format("{}-{}", a.epochs_low, a.epochs_high),
                       fmt_lr(a.lr), b.samples,
                       b.epochs_low == b.epochs_high ? fmt::format("{}", b.epochs_low)
                                                     : fmt::format("{}-{}", b.epochs_low, b.epochs_high),
                       fmt_lr(b.lr), fmt_lr(tlr));
}

}  // namespace

std::string band_name(ExposureBand b) {
    switch (b) {
        case ExposureBand::Under: return "under";
        case ExposureBand::Target: return "target";
        case ExposureBand::High: return "high";
        case ExposureBand::Overfit: return "overfit";
    }
    return "?";
}

std::string band_meaning(ExposureBand b) {
    switch (b) {
        case ExposureBand::Under:
            return "below 250: undertrained likely (clear audio, weak voice identity, faint instruct following)";
        case ExposureBand::Target: return "250-400: the seed's target (clear, expressive, good instruct following)";
        case ExposureBand::High:
            return "400-600: above the seed's target (expressive, rising garble risk: knife's edge to starting to overfit)";
        case ExposureBand::Overfit:
            return "above 600: overfitting likely (garbled audio, generation may never reach EOS)";
    }
    return "";
}

ExposureBand exposure_band(double e) {
    if (e < kUnderBelow) return ExposureBand::Under;
    if (e <= kTargetUpTo) return ExposureBand::Target;
    if (e <= kOverfitAbove) return ExposureBand::High;
    return ExposureBand::Overfit;
}

double table_lr(int64_t samples) {
    double n = double(std::max<int64_t>(samples, 1));
    if (n <= kTable[0].samples) return kTable[0].lr;
    if (n <= kTable[1].samples) return interp_loglog(n, kTable[0], kTable[1]);
    if (n <= kTable[2].samples) return interp_loglog(n, kTable[1], kTable[2]);
    return std::max(kLrFloor, interp_loglog(n, kTable[1], kTable[2]));
}

double lr_factor(double lr, int64_t samples, int lora_r, int lora_alpha) {
    double ratio = lr * lora_scale_ratio(lora_r, lora_alpha) / table_lr(samples);
    double gamma = ratio < 1 ? kGammaBelow : kGammaAbove;
    return std::pow(ratio, gamma);
}

double effective_exposure(int64_t samples, int epochs, double lr, int lora_r, int lora_alpha) {
    return double(samples) * double(epochs) * lr_factor(lr, samples, lora_r, lora_alpha);
}

namespace {

// How the numbers were reached, for the reasons and warnings.
struct Choice {
    bool lr_clamped = false;     // the rate that would reach the target lies outside kMinLr..kMaxLr
    bool epochs_capped = false;  // kMaxEpochs passes still fall short of the target
};

// The learning rate and epochs (each fixed by the request or chosen), and the exposure they give.
Choice choose_numbers(const Request& q, Recommendation& r) {
    Choice c;
    const double scale = lora_scale_ratio(q.lora_r, q.lora_alpha);
    const double n = double(q.samples);
    if (q.lr) {
        r.lr = *q.lr;
    } else if (q.epochs) {
        // Solve (lr·scale / table_lr)^γ = 360 / (n·epochs) for lr.
        double want = kTargetExposure / (n * double(*q.epochs));
        double gamma = want < 1 ? kGammaBelow : kGammaAbove;
        double lr = r.table_lr * std::pow(want, 1.0 / gamma) / scale;
        double clamped = std::min(kMaxLr, std::max(kMinLr, lr));
        c.lr_clamped = clamped != lr;
        r.lr = clamped;
    } else {
        r.lr = r.table_lr / scale;
    }
    r.lr_factor = lr_factor(r.lr, q.samples, q.lora_r, q.lora_alpha);

    if (q.epochs) {
        r.epochs = *q.epochs;
    } else {
        r.epochs = pick_epochs(n * r.lr_factor);
        c.epochs_capped = r.epochs == kMaxEpochs && n * r.lr_factor * kMaxEpochs < kTargetExposure;
    }
    r.exposure = q.samples * int64_t(r.epochs);
    r.effective_exposure = double(r.exposure) * r.lr_factor;
    r.band = exposure_band(r.effective_exposure);
    r.optimizer_steps = ((q.samples + kGradAccum - 1) / kGradAccum) * int64_t(r.epochs);
    return c;
}

// Why these numbers.
void explain(const Request& q, const Choice& c, Recommendation& r) {
    const double scale = lora_scale_ratio(q.lora_r, q.lora_alpha);
    if (q.epochs && q.lr) {
        r.reasons.push_back(fmt::format("epochs {} and lr {} both fixed: judging them only", r.epochs, fmt_lr(r.lr)));
    } else if (q.epochs) {
        r.reasons.push_back(fmt::format(
            "epochs fixed at {}: exposure {} × {} = {}; lr {} brings the effective exposure to {:.0f}{}", r.epochs,
            q.samples, r.epochs, r.exposure, fmt_lr(r.lr), r.effective_exposure,
            c.lr_clamped ? fmt::format(" (the rate that would reach 360 lies outside {}..{}, so it is clamped)",
                                       fmt_lr(kMinLr), fmt_lr(kMaxLr))
                         : std::string(" (aim 360, the middle of 250-400)")));
    } else if (r.epochs == 1 && r.effective_exposure > kTargetUpTo) {
        r.reasons.push_back(fmt::format("1 epoch, the fewest possible: effective exposure {:.0f}", r.effective_exposure));
    } else {
        r.reasons.push_back(fmt::format("{} epoch{}: effective exposure {:.0f}, nearest to 360 without going above 400{}",
                                        r.epochs, r.epochs == 1 ? "" : "s", r.effective_exposure,
                                        c.epochs_capped ? fmt::format(" (capped at {} epochs: more passes over so few "
                                                                      "clips memorises them)", kMaxEpochs)
                                                        : std::string()));
    }
    if (std::abs(r.lr_factor - 1.0) > 1e-9)
        r.reasons.push_back(fmt::format(
            "lr {} is {:.3g}× the table's {} for {} samples: one pass counts {:.3g}× (γ {} {} the table rate, fitted "
            "to the seed's tested runs), so exposure {} is effectively {:.0f}",
            fmt_lr(r.lr), r.lr * scale / r.table_lr, fmt_lr(r.table_lr), q.samples, r.lr_factor,
            r.lr * scale < r.table_lr ? kGammaBelow : kGammaAbove,
            r.lr * scale < r.table_lr ? "below" : "above", r.exposure, r.effective_exposure));
    r.reasons.push_back(fmt::format("exposure band: {}", band_meaning(r.band)));
    r.reasons.push_back(fmt::format("LoRA r {}, alpha {}, grad-accum {}, batch {}: the seed's tested settings; {} "
                                    "optimizer steps ({} per epoch)",
                                    r.lora_r, r.lora_alpha, r.grad_accum, r.batch_size, r.optimizer_steps,
                                    (q.samples + kGradAccum - 1) / kGradAccum));
    if (q.samples > kLargestTested)
        r.reasons.push_back(fmt::format("the seed tested datasets of up to {} samples; beyond that the numbers are "
                                        "extrapolated, and train's early stop on the loss band (target 4.15, floor "
                                        "4.1) is the guard", kLargestTested));
}

// What may go wrong with them.
void warn(const Request& q, const Choice& c, Recommendation& r) {
    if (q.samples < kFewSamples)
        r.warnings.push_back(fmt::format("only {} usable sample{}: far too few to learn a voice (the seed's smallest "
                                         "row is ~30; aim for 15-30 minutes of audio)",
                                         q.samples, q.samples == 1 ? "" : "s"));
    switch (r.band) {
        case ExposureBand::Under:
            r.warnings.push_back(fmt::format(
                "effective exposure {:.0f} is below 250: undertraining likely (clear audio but weak voice identity); "
                "{}", r.effective_exposure,
                c.epochs_capped ? (q.lr ? "raise the lr or add clips" : "add more clips")
                : c.lr_clamped  ? "use more epochs"
                              : "raise epochs or lr"));
            break;
        case ExposureBand::High:
            r.warnings.push_back(fmt::format(
                "effective exposure {:.0f} is above the seed's 250-400 target (600 is the overfitting line): garble "
                "risk rises; {}", r.effective_exposure,
                r.epochs == 1 && !q.epochs ? "even one epoch is this much; watch the loss (stop at 4.15)"
                : c.lr_clamped               ? "use fewer epochs"
                                           : "fewer epochs or a lower lr"));
            break;
        case ExposureBand::Overfit:
            r.warnings.push_back(fmt::format(
                "effective exposure {:.0f} is above 600: overfitting likely (garbled audio, no EOS); {}",
                r.effective_exposure,
                r.epochs == 1 && !q.epochs
                    ? "even one epoch over this many samples exceeds it at the lowest tested rate; watch the loss and "
                      "stop at the target 4.15 (train does), or train on a subset"
                    : c.lr_clamped ? "use fewer epochs" : "reduce epochs or lr"));
            break;
        case ExposureBand::Target: break;
    }
    if (c.lr_clamped)
        r.warnings.push_back(fmt::format("the rate that would reach the target exposure lies outside {}..{} (the seed "
                                         "tested 1e-6 to 1e-5); using {}", fmt_lr(kMinLr), fmt_lr(kMaxLr), fmt_lr(r.lr)));
    if (q.lr && *q.lr > kMaxLr)
        r.warnings.push_back(fmt::format("lr {} is above {}, the highest rate the seed tested", fmt_lr(*q.lr), fmt_lr(kMaxLr)));
    if (q.lr && *q.lr < kMinLr)
        r.warnings.push_back(fmt::format("lr {} is below {}: training will barely move the adapter", fmt_lr(*q.lr),
                                         fmt_lr(kMinLr)));
}

}  // namespace

Recommendation recommend(const Request& q) {
    validate(q);
    Recommendation r;
    r.samples = q.samples;
    r.lora_r = q.lora_r;
    r.lora_alpha = q.lora_alpha;
    r.table_lr = table_lr(q.samples);
    r.epochs_fixed = q.epochs.has_value();
    r.lr_fixed = q.lr.has_value();

    r.reasons.push_back(table_reason(q.samples, r.table_lr));
    if (const double scale = lora_scale_ratio(q.lora_r, q.lora_alpha); scale != 1.0)
        r.reasons.push_back(fmt::format("LoRA alpha/r = {}/{} scales each update {:.3g}× the seed's 128/64, so the rate "
                                        "counts {:.3g}× as much", q.lora_alpha, q.lora_r, scale, scale));
    const Choice c = choose_numbers(q, r);
    explain(q, c, r);
    warn(q, c, r);
    return r;
}

nlohmann::json to_json(const Recommendation& r) {
    return nlohmann::json{
        {"samples", r.samples},
        {"epochs", r.epochs},
        {"lr", r.lr},
        {"epochs_fixed", r.epochs_fixed},
        {"lr_fixed", r.lr_fixed},
        {"lora_r", r.lora_r},
        {"lora_alpha", r.lora_alpha},
        {"grad_accum", r.grad_accum},
        {"batch_size", r.batch_size},
        {"exposure", r.exposure},
        {"effective_exposure", r.effective_exposure},
        {"exposure_band", band_name(r.band)},
        {"band_meaning", band_meaning(r.band)},
        {"table_lr", r.table_lr},
        {"lr_factor", r.lr_factor},
        {"optimizer_steps", r.optimizer_steps},
        {"reasons", r.reasons},
        {"warnings", r.warnings},
    };
}

std::string to_text(const Recommendation& r) {
    std::string s;
    s += fmt::format("samples          {}\n", r.samples);
    s += fmt::format("epochs           {}{}\n", r.epochs, r.epochs_fixed ? " (fixed)" : "");
    s += fmt::format("learning rate    {}{}  (table rate for {} samples: {})\n", fmt_lr(r.lr),
                     r.lr_fixed ? " (fixed)" : "", r.samples, fmt_lr(r.table_lr));
    s += fmt::format("LoRA             r {}, alpha {}\n", r.lora_r, r.lora_alpha);
    s += fmt::format("grad-accum       {}, batch {}  ({} optimizer steps)\n", r.grad_accum, r.batch_size,
                     r.optimizer_steps);
    s += fmt::format("exposure         {} (samples × epochs), effective {:.0f}: {}\n", r.exposure,
                     r.effective_exposure, band_name(r.band));
    s += "why:\n";
    for (auto& x : r.reasons) s += "  - " + x + "\n";
    if (!r.warnings.empty()) {
        s += "warnings:\n";
        for (auto& x : r.warnings) s += "  ! " + x + "\n";
    }
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

}  // namespace alexandria::plan
