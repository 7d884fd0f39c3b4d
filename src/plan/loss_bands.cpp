#include "alexandria/plan/loss_bands.h"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace alexandria::plan {

const std::vector<LossBandRow>& loss_table() {
    static const std::vector<LossBandRow> rows = {
        {LossBand::Undertrained, 4.4, std::numeric_limits<double>::infinity(), "4.4+", "Clear, no garble",
         "Slight/faint", "Undertrained"},
        {LossBand::SweetSpot, 4.1, 4.2, "4.1-4.2", "Clear, expressive", "Good", "Sweet spot"},
        {LossBand::KnifesEdge, 3.9, 4.1, "3.9-4.1", "Expressive but garble risk", "Strong",
         "Knife's edge — run-to-run variance may garble"},
        {LossBand::StartingToOverfit, 3.4, 3.8, "3.4-3.8", "Garbly but legible", "Strong", "Starting to overfit"},
        {LossBand::Overfit, 3.0, 3.3, "3.0-3.3", "Garbled / no EOS", "N/A", "Overfit, unusable"},
    };
    return rows;
}

std::string loss_band_name(LossBand b) {
    switch (b) {
        case LossBand::Undertrained: return "undertrained";
        case LossBand::AboveTarget: return "above-target";
        case LossBand::SweetSpot: return "sweet-spot";
        case LossBand::KnifesEdge: return "knifes-edge";
        case LossBand::StartingToOverfit: return "starting-to-overfit";
        case LossBand::Overfit: return "overfit";
        case LossBand::Invalid: return "invalid";
    }
    return "?";
}

namespace {
const LossBandRow& row(LossBand b) {
    for (auto& r : loss_table())
        if (r.band == b) return r;
    return loss_table().front();
}
LossVerdict from_row(double loss, LossBand b) {
    const auto& r = row(b);
    LossVerdict v;
    v.loss = loss;
    v.band = b;
    v.name = loss_band_name(b);
    v.audio_quality = r.audio_quality;
    v.instruct_following = r.instruct_following;
    v.verdict = r.verdict;
    v.usable = b == LossBand::SweetSpot;  // AboveTarget sets it too; knife's edge may garble
    return v;
}
}  // namespace

LossVerdict loss_verdict(double loss) {
    if (!std::isfinite(loss)) {
        LossVerdict v;
        v.loss = loss;
        v.band = LossBand::Invalid;
        v.name = loss_band_name(v.band);
        v.verdict = "Not a finite loss: training diverged";
        v.note = "the loss is NaN or infinite; lower the learning rate";
        return v;
    }
    // The sweet spot includes both ends: the seed calls 4.1 the floor and 4.1-4.2 the target.
    if (loss >= 4.4) return from_row(loss, LossBand::Undertrained);
    if (loss > 4.2) {
        LossVerdict v;
        v.loss = loss;
        v.band = LossBand::AboveTarget;
        v.name = loss_band_name(v.band);
        v.audio_quality = "Clear, no garble";
        v.instruct_following = "Moderate";
        v.verdict = "Above target: safe, less expressive";
        v.in_gap = true;
        v.usable = true;
        v.note = "between the seed's 4.1-4.2 sweet spot and 4.4+ undertrained; male-lora-02 at 4.31 was "
                 "emotive and responsive to instruct; a little more training moves it into the sweet spot";
        return v;
    }
    if (loss >= 4.1) {
        auto v = from_row(loss, LossBand::SweetSpot);
        if (loss < kTargetLoss)
            v.note = "inside the sweet spot but below 4.15: run-to-run variance can garble a few lines (male-lora-04 "
                     "at 4.12)";
        return v;
    }
    if (loss >= 3.9) return from_row(loss, LossBand::KnifesEdge);
    if (loss >= 3.8) {
        auto v = from_row(loss, LossBand::StartingToOverfit);
        v.in_gap = true;
        v.note = "between the seed's 3.9-4.1 knife's edge and 3.4-3.8; read as starting to overfit (male-lora-07 "
                 "at 3.89: legible but overfit; female-lora-04 at 3.86: garbles and weird tones)";
        return v;
    }
    if (loss >= 3.4) return from_row(loss, LossBand::StartingToOverfit);
    auto v = from_row(loss, LossBand::Overfit);
    if (loss >= 3.3) {
        v.in_gap = true;
        v.note = "between the seed's 3.4-3.8 and 3.0-3.3 rows; the seed: below 3.5 output is consistently garbled "
                 "or fails to reach EOS";
    } else if (loss < 3.0) {
        v.in_gap = true;
        v.note = "below the seed's lowest row (3.0-3.3): overfit at least as badly";
    }
    return v;
}

nlohmann::json to_json(const LossVerdict& v) {
    nlohmann::json j{{"loss", std::isfinite(v.loss) ? nlohmann::json(v.loss) : nlohmann::json(nullptr)},
                     {"band", v.name},
                     {"audio_quality", v.audio_quality},
                     {"instruct_following", v.instruct_following},
                     {"verdict", v.verdict},
                     {"in_gap", v.in_gap},
                     {"usable", v.usable}};
    if (!v.note.empty()) j["note"] = v.note;
    return j;
}

}  // namespace alexandria::plan
