#include "alexandria/train/early_stop.h"

#include <cmath>

#include <fmt/format.h>

namespace alexandria::train {

bool reached_target(double epoch_loss, const LossBandPolicy& policy) {
    return policy.target && std::isfinite(epoch_loss) && epoch_loss <= *policy.target;
}

EpochChoice choose_epoch(const std::vector<double>& losses, const LossBandPolicy& policy) {
    EpochChoice c;
    const int n = static_cast<int>(losses.size());
    if (!policy.floor) {
        for (int e = n; e >= 1; --e) {
            if (!std::isfinite(losses[e - 1])) continue;
            c.epoch = e;
            c.loss = losses[e - 1];
            c.rule = "last-epoch";
            c.reason = e == n ? fmt::format("no loss floor: kept the last epoch ({}, loss {:.4f})", e, c.loss)
                              : fmt::format("no loss floor: kept the last epoch with a finite loss ({}, loss {:.4f})",
                                            e, c.loss);
            return c;
        }
        c.rule = "none";
        c.reason = "no epoch finished with a finite loss";
        return c;
    }
    const double floor = *policy.floor;
    for (int e = n; e >= 1; --e) {
        double l = losses[e - 1];
        if (std::isfinite(l) && l >= floor) {
            c.epoch = e;
            c.loss = l;
            c.rule = "last-above-floor";
            if (e == n)
                c.reason = fmt::format("epoch {} (loss {:.4f}) is the last epoch and is at or above the floor {}", e, l,
                                       floor);
            else
                c.reason = fmt::format("epoch {} (loss {:.4f}) is the last epoch at or above the floor {}; epoch {} "
                                       "(loss {:.4f}) fell below it",
                                       e, l, floor, e + 1, losses[e]);
            return c;
        }
    }
    for (int e = 1; e <= n; ++e) {
        double l = losses[e - 1];
        if (std::isfinite(l) && (c.epoch == 0 || l > c.loss)) {
            c.epoch = e;
            c.loss = l;
        }
    }
    if (c.epoch == 0) {
        c.rule = "none";
        c.reason = "no epoch finished with a finite loss";
        return c;
    }
    c.rule = "highest-below-floor";
    c.reason = fmt::format("every epoch fell below the floor {}: kept epoch {}, the highest loss ({:.4f}); expect "
                           "garbling, retrain with fewer epochs or a lower learning rate",
                           floor, c.epoch, c.loss);
    return c;
}

}  // namespace alexandria::train
