#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "alexandria/plan/loss_bands.h"

using namespace alexandria::plan;

TEST_CASE("the seed's loss table, row by row", "[plan][loss]") {
    const auto& t = loss_table();
    REQUIRE(t.size() == 5);
    CHECK(t[0].loss_label == "4.4+");
    CHECK(t[0].verdict == "Undertrained");
    CHECK(t[1].loss_label == "4.1-4.2");
    CHECK(t[1].verdict == "Sweet spot");
    CHECK(t[2].audio_quality == "Expressive but garble risk");
    CHECK(t[3].audio_quality == "Garbly but legible");
    CHECK(t[4].audio_quality == "Garbled / no EOS");
    CHECK(t[4].verdict == "Overfit, unusable");

    CHECK(loss_verdict(4.6).band == LossBand::Undertrained);
    CHECK(loss_verdict(4.4).band == LossBand::Undertrained);
    CHECK(loss_verdict(4.2).band == LossBand::SweetSpot);
    CHECK(loss_verdict(4.15).band == LossBand::SweetSpot);
    CHECK(loss_verdict(4.1).band == LossBand::SweetSpot);
    CHECK(loss_verdict(4.0).band == LossBand::KnifesEdge);
    CHECK(loss_verdict(3.9).band == LossBand::KnifesEdge);
    CHECK(loss_verdict(3.6).band == LossBand::StartingToOverfit);
    CHECK(loss_verdict(3.4).band == LossBand::StartingToOverfit);
    CHECK(loss_verdict(3.1).band == LossBand::Overfit);
    CHECK(loss_verdict(3.0).band == LossBand::Overfit);
    CHECK(!loss_verdict(4.0).in_gap);
    CHECK(loss_verdict(4.15).usable);
    CHECK(!loss_verdict(3.6).usable);
}

TEST_CASE("the gaps between the seed's rows", "[plan][loss]") {
    auto a = loss_verdict(4.31);  // male-lora-02
    CHECK(a.band == LossBand::AboveTarget);
    CHECK(a.in_gap);
    CHECK(a.usable);
    CHECK(a.name == "above-target");
    CHECK(!a.note.empty());

    auto b = loss_verdict(3.85);
    CHECK(b.band == LossBand::StartingToOverfit);
    CHECK(b.in_gap);

    auto c = loss_verdict(3.35);
    CHECK(c.band == LossBand::Overfit);
    CHECK(c.in_gap);

    auto d = loss_verdict(2.5);
    CHECK(d.band == LossBand::Overfit);
    CHECK(d.in_gap);

    CHECK(loss_verdict(4.12).note.find("4.15") != std::string::npos);
}

TEST_CASE("the seed's tested losses read as its outcomes", "[plan][loss]") {
    CHECK(loss_verdict(4.11).band == LossBand::SweetSpot);        // female-07, male-03: best
    CHECK(loss_verdict(4.17).band == LossBand::SweetSpot);        // male-05: safe margin
    CHECK(loss_verdict(4.43).band == LossBand::Undertrained);     // female-05: weak instruct
    CHECK(loss_verdict(4.44).band == LossBand::Undertrained);     // male-01: flat
    CHECK(loss_verdict(3.99).band == LossBand::KnifesEdge);       // male-06: 50% garbled
    CHECK(loss_verdict(3.93).band == LossBand::KnifesEdge);       // female-01
    CHECK(loss_verdict(3.46).band == LossBand::StartingToOverfit);// female-06: garbly but legible
    CHECK(loss_verdict(3.10).band == LossBand::Overfit);          // female-03: no EOS
    CHECK(loss_verdict(3.03).band == LossBand::Overfit);          // female-02: garbled
}

TEST_CASE("a non-finite loss is invalid, not a band", "[plan][loss]") {
    auto v = loss_verdict(std::nan(""));
    CHECK(v.band == LossBand::Invalid);
    CHECK(!v.usable);
    CHECK(loss_verdict(std::numeric_limits<double>::infinity()).band == LossBand::Invalid);
    auto j = to_json(v);
    CHECK(j["loss"].is_null());
    CHECK(j["band"] == "invalid");
    CHECK(to_json(loss_verdict(4.15))["band"] == "sweet-spot");
}
