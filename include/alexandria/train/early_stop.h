#pragma once
// Early stop on the seed's loss band (DESIGN §7): stop after the first epoch at or below the target; keep every
// epoch; the adapter handed to the user is the last epoch at or above the floor. Pure functions of the epoch-average
// losses, so the choice is tested on synthetic sequences.
#include <optional>
#include <string>
#include <vector>

namespace alexandria::train {

struct LossBandPolicy {
    std::optional<double> target;  // stop after the first epoch whose loss <= target
    std::optional<double> floor;   // the kept adapter is the last epoch whose loss >= floor
};

// True when training should stop after an epoch with this loss.
bool reached_target(double epoch_loss, const LossBandPolicy& policy);

struct EpochChoice {
    int epoch = 0;             // 1-based epoch whose adapter is kept (0 when there is none)
    double loss = 0;
    std::string rule;          // "last-above-floor" | "last-epoch" | "highest-below-floor"
    std::string reason;        // one sentence for training_meta.json and the log
};

// losses[i] = epoch i+1's average loss (the chosen objective's). Non-finite losses are never chosen.
// With a floor: the last epoch with loss >= floor; if every epoch fell below it, the one with the highest loss
// (the least overfit). Without a floor: the last epoch.
EpochChoice choose_epoch(const std::vector<double>& losses, const LossBandPolicy& policy);

}  // namespace alexandria::train
