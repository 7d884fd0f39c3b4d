#include <catch2/catch.hpp>

#include <cmath>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/plan/recommend.h"

using namespace alexandria;
using namespace alexandria::plan;

namespace {
Recommendation rec(int64_t n, std::optional<double> lr = std::nullopt, std::optional<int> epochs = std::nullopt,
                   int alpha = kLoraAlpha) {
    Request q;
    q.samples = n;
    q.lr = lr;
    q.epochs = epochs;
    q.lora_alpha = alpha;
    return recommend(q);
}
bool near(double a, double b, double rel) { return std::abs(a - b) <= rel * b; }
bool has_warning(const Recommendation& r, const std::string& fragment) {
    for (auto& w : r.warnings)
        if (w.find(fragment) != std::string::npos) return true;
    return false;
}
}  // namespace

TEST_CASE("the seed's Quick Reference rows", "[plan][recommend]") {
    auto r30 = rec(30);
    CHECK(r30.epochs >= 10);
    CHECK(r30.epochs <= 15);
    CHECK(near(r30.lr, 5e-6, 0.10));

    auto r60 = rec(60);
    CHECK(r60.epochs >= 5);
    CHECK(r60.epochs <= 8);
    CHECK(near(r60.lr, 3e-6, 0.10));

    auto r120 = rec(120);
    CHECK(r120.epochs == 3);
    CHECK(near(r120.lr, 2e-6, 0.10));

    for (auto* r : {&r30, &r60, &r120}) {
        CHECK(r->lora_r == 64);
        CHECK(r->lora_alpha == 128);
        CHECK(r->grad_accum == 4);
        CHECK(r->batch_size == 1);
        CHECK(r->exposure == r->samples * r->epochs);
        CHECK(r->band == ExposureBand::Target);
        CHECK(r->warnings.empty());
        CHECK(!r->reasons.empty());
    }
}

TEST_CASE("a fixed learning rate: the seed's best male and female runs", "[plan][recommend]") {
    auto male = rec(61, 1e-6);
    CHECK(male.lr == 1e-6);
    CHECK(male.lr_fixed);
    CHECK((male.epochs == 9 || male.epochs == 10));
    CHECK(male.band == ExposureBand::Target);

    auto female = rec(121, 2e-6);
    CHECK(female.epochs == 3);
    CHECK(female.band == ExposureBand::Target);
}

TEST_CASE("fixed epochs: report exposure and suggest a learning rate", "[plan][recommend]") {
    auto r = rec(61, std::nullopt, 10);
    CHECK(r.epochs == 10);
    CHECK(r.epochs_fixed);
    CHECK(r.exposure == 610);
    // male-lora-03's rate: 10 epochs over 61 clips wants about 1e-6.
    CHECK(near(r.lr, 1e-6, 0.15));
    CHECK(r.band == ExposureBand::Target);

    auto f = rec(121, std::nullopt, 3);
    CHECK(near(f.lr, 2e-6, 0.10));

    // Fewer epochs than the table wants: a higher rate, still inside the seed's range.
    auto up = rec(60, std::nullopt, 3);
    CHECK(up.lr > rec(60).lr);
    CHECK(up.lr <= kMaxLr);

    // Far too many epochs: the rate bottoms out and the exposure warning stays.
    auto down = rec(121, std::nullopt, 200);
    CHECK(down.lr == Approx(kMinLr));
    CHECK(down.band != ExposureBand::Target);
    CHECK(!down.warnings.empty());
    CHECK(has_warning(down, "outside"));
}

TEST_CASE("exposure warnings", "[plan][recommend]") {
    auto over = rec(121, 2e-6, 15);  // 1815 passes at the table rate
    CHECK(over.band == ExposureBand::Overfit);
    CHECK(has_warning(over, "above 600"));
    CHECK(has_warning(over, "overfitting"));

    auto under = rec(121, 2e-6, 1);  // 121 passes
    CHECK(under.band == ExposureBand::Under);
    CHECK(has_warning(under, "below 250"));
    CHECK(has_warning(under, "undertraining"));

    auto high = rec(121, 2e-6, 4);  // 484 passes
    CHECK(high.band == ExposureBand::High);
    CHECK(has_warning(high, "above the seed's 250-400 target"));

    auto few = rec(5);
    CHECK(has_warning(few, "only 5 usable samples"));
    CHECK(rec(9).warnings.size() >= 1);
    CHECK(!has_warning(rec(10), "usable sample"));
}

TEST_CASE("epochs and lr never increase as the dataset grows; defined from 1 to 100000", "[plan][recommend]") {
    for (std::optional<double> lr : {std::optional<double>(), std::optional<double>(1e-6), std::optional<double>(5e-6)}) {
        int prev_epochs = 1 << 30;
        double prev_lr = 1e9;
        for (int64_t n = 1; n <= 100000; n += (n < 2000 ? 1 : 97)) {
            auto r = rec(n, lr);
            INFO("samples " << n << " lr " << (lr ? *lr : 0.0));
            REQUIRE(r.epochs >= 1);
            REQUIRE(r.epochs <= kMaxEpochs);
            REQUIRE(std::isfinite(r.lr));
            REQUIRE(r.lr > 0);
            REQUIRE(std::isfinite(r.effective_exposure));
            REQUIRE(r.effective_exposure > 0);
            REQUIRE(r.epochs <= prev_epochs);
            REQUIRE(r.lr <= prev_lr);
            prev_epochs = r.epochs;
            prev_lr = r.lr;
        }
    }
    CHECK(rec(100000).lr == Approx(1e-6));
    CHECK(rec(100000).epochs == 1);
    CHECK(rec(1).lr == Approx(5e-6));
}

TEST_CASE("table_lr interpolates the Quick Reference", "[plan][recommend]") {
    CHECK(table_lr(30) == Approx(5e-6));
    CHECK(table_lr(60) == Approx(3e-6));
    CHECK(table_lr(120) == Approx(2e-6));
    CHECK(table_lr(45) < 5e-6);
    CHECK(table_lr(45) > 3e-6);
    CHECK(table_lr(90) < 3e-6);
    CHECK(table_lr(90) > 2e-6);
    CHECK(table_lr(200) < 2e-6);
    CHECK(table_lr(10000) == Approx(1e-6));
    CHECK(lr_factor(table_lr(77), 77) == Approx(1.0));
    // alpha/r: 128/32 doubles the update, so the same rate counts more.
    CHECK(lr_factor(2e-6, 120, 32, 128) > lr_factor(2e-6, 120, 64, 128));
}

// Every row of the seed's "Tested Configurations" table, judged from samples, epochs, lr and alpha alone.
// Bands: under < 250 ≤ target ≤ 400 < high ≤ 600 < overfit (effective exposure, recommend.h).
// Two rows cannot be explained by exposure, by any model that is monotone in epochs, lr and alpha:
//  * female-lora-01 (33 samples, 3 epochs, 1e-5 → 3.93, "working"): 99 forward passes, at a rate twice the
//    highest the Quick Reference uses, reached the knife's edge. With 33 samples × 3 epochs to reach the
//    "high" band a pass at 1e-5 would have to count ~4× one at 4.7e-6, while female-lora-05 (121 × 1 at 5e-6,
//    4.43, weak) shows a rate 2.5× the table's counting less than 2.1×. Only one run sits above 5e-6, so
//    the model does not bend for it; it says "under".
//  * female-lora-06 (121 × 3 at 2e-6, alpha 64 → 3.46, garbly): identical to female-lora-07 (4.11, best) but
//    for a lower alpha, which halves LoRA's update and so can only lower the exposure; yet it fitted more.
//    Run-to-run variance (the seed notes it) or an unrecorded difference; the model says "target".
TEST_CASE("the seed's Tested Configurations get bands that agree with their outcomes", "[plan][recommend]") {
    struct Row {
        const char* name;
        int64_t samples;
        int epochs;
        double lr;
        int alpha;
        double loss;
        ExposureBand expected;  // from the recorded outcome
        bool explained;
    };
    const Row rows[] = {
        {"female-lora-01", 33, 3, 1e-5, 128, 3.93, ExposureBand::High, false},
        {"female-lora-02", 121, 15, 3e-6, 128, 3.03, ExposureBand::Overfit, true},    // overfit, garbled
        {"female-lora-03", 121, 5, 5e-6, 128, 3.10, ExposureBand::Overfit, true},     // overfit, no EOS
        {"female-lora-04", 121, 2, 5e-6, 128, 3.86, ExposureBand::High, true},        // garbles + weird tones
        {"female-lora-05", 121, 1, 5e-6, 128, 4.43, ExposureBand::Under, true},       // clear, weak instruct
        {"female-lora-06", 121, 3, 2e-6, 64, 3.46, ExposureBand::High, false},
        {"female-lora-07", 121, 3, 2e-6, 128, 4.11, ExposureBand::Target, true},      // best
        {"male-lora-01", 61, 5, 1e-6, 128, 4.44, ExposureBand::Under, true},          // clear but flat
        {"male-lora-02", 61, 7, 1e-6, 128, 4.31, ExposureBand::Target, true},         // emotive, responsive
        {"male-lora-03", 61, 10, 1e-6, 128, 4.11, ExposureBand::Target, true},        // best
        {"male-lora-04", 61, 10, 1e-6, 128, 4.12, ExposureBand::Target, true},        // same config, variance
        {"male-lora-05", 61, 9, 1e-6, 128, 4.17, ExposureBand::Target, true},         // clean, safe margin
        {"male-lora-06", 61, 12, 1e-6, 128, 3.99, ExposureBand::High, true},          // 50% garbled
        {"male-lora-07", 61, 14, 1e-6, 128, 3.89, ExposureBand::High, true},          // legible but overfit
    };
    int explained = 0;
    for (auto& row : rows) {
        auto r = rec(row.samples, row.lr, row.epochs, row.alpha);
        INFO(row.name << ": effective exposure " << r.effective_exposure << " band " << band_name(r.band));
        CHECK(r.exposure == row.samples * row.epochs);
        if (row.explained) {
            CHECK(r.band == row.expected);
            ++explained;
        } else {
            CHECK(r.band != row.expected);  // documented above; if this starts agreeing, update the comment
        }
    }
    CHECK(explained == 12);
}

TEST_CASE("bad requests are input errors", "[plan][recommend]") {
    CHECK_THROWS_AS(rec(0), InputError);
    CHECK_THROWS_AS(rec(-3), InputError);
    CHECK_THROWS_AS(rec(30, std::nan("")), InputError);
    CHECK_THROWS_AS(rec(30, 0.0), InputError);
    CHECK_THROWS_AS(rec(30, -1e-6), InputError);
    CHECK_THROWS_AS(rec(30, std::nullopt, 0), InputError);
    Request q;
    q.samples = 30;
    q.lora_r = 0;
    CHECK_THROWS_AS(recommend(q), InputError);
}

TEST_CASE("recommendation JSON", "[plan][recommend]") {
    auto j = to_json(rec(61, 1e-6));
    CHECK(j["samples"] == 61);
    CHECK(j["lr"].get<double>() == 1e-6);
    CHECK(j["lr_fixed"] == true);
    CHECK(j["epochs_fixed"] == false);
    CHECK(j["lora_r"] == 64);
    CHECK(j["lora_alpha"] == 128);
    CHECK(j["grad_accum"] == 4);
    CHECK(j["batch_size"] == 1);
    CHECK(j["exposure"] == 61 * j["epochs"].get<int>());
    CHECK(j["exposure_band"] == "target");
    CHECK(j["reasons"].is_array());
    CHECK(j["warnings"].is_array());
    auto text = to_text(rec(61, 1e-6));
    CHECK(text.find("epochs") != std::string::npos);
    CHECK(text.find("1e-6 (fixed)") != std::string::npos);
}
