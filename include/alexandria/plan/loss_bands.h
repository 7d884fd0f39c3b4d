#pragma once
// The seed guide's "Overfitting Symptoms" table as data. These losses were measured with Alexandria's
// training loss (talker CE + 0.3 × sub-talker CE), i.e. our `--objective alexandria`; they say nothing
// about the `aligned` objective's numbers.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace alexandria::plan {

constexpr double kTargetLoss = 4.15;  // aim: 4.15-4.2 for a reliable margin
constexpr double kLossFloor = 4.1;    // below: garble risk grows

enum class LossBand { Undertrained, AboveTarget, SweetSpot, KnifesEdge, StartingToOverfit, Overfit, Invalid };

// A row of the seed's table: losses in [low, high) belong to it (the sweet spot's upper end, 4.2, is
// included; "4.4+" has high = +inf).
struct LossBandRow {
    LossBand band;
    double low;
    double high;
    std::string loss_label;       // as the seed writes it, e.g. "4.1-4.2"
    std::string audio_quality;
    std::string instruct_following;
    std::string verdict;
};
// The five rows exactly as the seed has them, top (highest loss) to bottom.
const std::vector<LossBandRow>& loss_table();

struct LossVerdict {
    double loss = 0;
    LossBand band = LossBand::Invalid;
    std::string name;               // "undertrained", "above-target", "sweet-spot", "knifes-edge",
                                    // "starting-to-overfit", "overfit", "invalid"
    std::string audio_quality;
    std::string instruct_following;
    std::string verdict;
    bool in_gap = false;            // the loss falls between two of the seed's rows; `note` says how we read it
    bool usable = false;            // clean audio expected with a trained voice: sweet spot or above target
    std::string note;
};

// The seed's gaps are read as follows: 4.2-4.4 (between the sweet spot and "4.4+") is "above target":
// clear and usable, instruct following weaker (male-lora-02 at 4.31 was "emotive, responsive"); 3.8-3.9
// belongs to "starting to overfit" (male-lora-07 at 3.89 "legible but overfit", female-lora-04 at 3.86
// "garbles"); 3.3-3.4 and anything below 3.0 are "overfit" (the seed: "below 3.5, output is consistently
// garbled or fails to reach EOS"). A non-finite loss is "invalid" (training diverged).
LossVerdict loss_verdict(double alexandria_loss);
std::string loss_band_name(LossBand b);

nlohmann::json to_json(const LossVerdict& v);

}  // namespace alexandria::plan
