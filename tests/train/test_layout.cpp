// The layout builder against an independent, position-by-position construction of the spec's table
// (model-talker.md §7.3 for the english form; the 3-token "auto" prefix of §6.1 shifts every later row by one).
#include <catch2/catch.hpp>

#include "alexandria/io/error.h"
#include "alexandria/train/early_stop.h"
#include "alexandria/train/layout.h"

using namespace alexandria;
using namespace alexandria::train;

namespace {

// The spec's table written out by position, as a function of p (not by appending pieces).
Row spec_row(int64_t p, int64_t M, bool english, const std::vector<int64_t>& role, const std::vector<int64_t>& t) {
    const int64_t PAD = 151671, BOS = 151672, EOSt = 151673;
    const int64_t K = english ? 4 : 3;
    std::vector<int64_t> prefix = english ? std::vector<int64_t>{2154, 2156, 2050, 2157}
                                          : std::vector<int64_t>{2155, 2156, 2157};
    if (p <= 2) return Row{role[p], Row::Codec::None, -1, -1};
    if (p <= 2 + K) return Row{PAD, Row::Codec::Id, prefix[p - 3], -1};
    if (p == 3 + K) return Row{PAD, Row::Codec::Speaker, -1, -1};
    if (p == 4 + K) return Row{BOS, Row::Codec::Id, 2148, -1};
    if (p <= 4 + K + M) return Row{t[p - 5 - K], Row::Codec::Id, 2148, -1};
    if (p == 5 + K + M) return Row{EOSt, Row::Codec::Id, 2148, -1};
    if (p == 6 + K + M) return Row{PAD, Row::Codec::Id, 2149, -1};
    return Row{PAD, Row::Codec::Frame, -1, p - (7 + K + M)};
}

}  // namespace

TEST_CASE("layout matches the spec's position table, both language forms and both objectives", "[train][layout]") {
    LayoutIds ids;
    const std::vector<int64_t> role{151644, 77091, 198};
    for (bool english : {true, false}) {
        for (int64_t M : {1, 2, 7}) {
            for (int64_t N : {1, 3, 10}) {
                for (Objective obj : {Objective::Alexandria, Objective::Aligned}) {
                    std::vector<int64_t> t;
                    for (int64_t i = 0; i < M; ++i) t.push_back(1000 + 17 * i);
                    auto prefix = codec_prefix(ids, english ? 2050 : -1);
                    Layout L = build_layout(ids, prefix, role, t, N, obj);
                    const int64_t prefill = english ? 11 + M : 10 + M;
                    INFO("english=" << english << " M=" << M << " N=" << N << " obj=" << objective_name(obj));
                    REQUIRE(L.prefill_len == prefill);
                    REQUIRE(L.length() == prefill + N);
                    for (int64_t p = 0; p < L.length(); ++p) {
                        INFO("p=" << p);
                        CHECK(L.rows[p] == spec_row(p, M, english, role, t));
                    }
                    CHECK(L.speaker_row == (english ? 7 : 6));

                    // Labels as train_lora.py writes them (code0 at the frame rows, -100 elsewhere), plus for the
                    // aligned objective the official layout's EOS row right after the last frame; then the single
                    // causal shift: logits[p] are scored against labels[p+1].
                    std::vector<int64_t> code0;
                    for (int64_t j = 0; j < N; ++j) code0.push_back(5 * j + 3);
                    std::vector<int64_t> unshifted(prefill + N + 1, -100);
                    for (int64_t j = 0; j < N; ++j) unshifted[prefill + j] = code0[j];
                    if (obj == Objective::Aligned) unshifted[prefill + N] = 2150;
                    std::vector<int64_t> expect(prefill + N, -100);
                    for (int64_t p = 0; p < prefill + N; ++p) expect[p] = unshifted[p + 1];
                    CHECK(L.talker_labels(code0) == expect);
                    if (obj == Objective::Aligned) {
                        // EOS sits on the last frame's row, and only there.
                        CHECK(L.talker_labels(code0)[prefill + N - 1] == 2150);
                        CHECK(L.talker_targets.size() == size_t(N + 1));
                    } else {
                        CHECK(L.talker_targets.size() == size_t(N));
                    }
                    // Code predictor: the hidden that predicts each frame's code 0 (train_lora.py's
                    // hidden[prefill_len-1 : prefill_len+N-1]).
                    REQUIRE(L.sub_hidden_positions.size() == size_t(N));
                    for (int64_t j = 0; j < N; ++j) CHECK(L.sub_hidden_positions[j] == prefill - 1 + j);
                    if (obj == Objective::Aligned) {
                        REQUIRE(L.sub_pairs.size() == 15);
                        for (int64_t k = 0; k < 15; ++k) CHECK(L.sub_pairs[k] == std::make_pair(k, k + 1));
                    } else {
                        REQUIRE(L.sub_pairs.size() == 14);
                        for (int64_t k = 0; k < 14; ++k) CHECK(L.sub_pairs[k] == std::make_pair(k, k + 2));
                    }
                }
            }
        }
    }
}

TEST_CASE("layout rejects degenerate input", "[train][layout]") {
    LayoutIds ids;
    auto prefix = codec_prefix(ids, 2050);
    CHECK_THROWS_AS(build_layout(ids, prefix, {1, 2}, {5}, 3, Objective::Alexandria), InputError);
    CHECK_THROWS_AS(build_layout(ids, prefix, {1, 2, 3}, {}, 3, Objective::Alexandria), InputError);
    CHECK_THROWS_AS(build_layout(ids, prefix, {1, 2, 3}, {5}, 0, Objective::Alexandria), InputError);
    CHECK(parse_objective("aligned") == Objective::Aligned);
    CHECK(parse_objective("alexandria") == Objective::Alexandria);
    CHECK_THROWS_AS(parse_objective("other"), InputError);
}

TEST_CASE("early stop picks the right epoch", "[train][early-stop]") {
    LossBandPolicy band{4.15, 4.1};
    SECTION("above target throughout: no stop, last epoch kept") {
        std::vector<double> l{5.0, 4.8, 4.6, 4.5};
        for (double x : l) CHECK_FALSE(reached_target(x, band));
        auto c = choose_epoch(l, band);
        CHECK(c.epoch == 4);
        CHECK(c.rule == "last-above-floor");
    }
    SECTION("crossing into the band: stop there and keep it") {
        std::vector<double> l{4.6, 4.3, 4.12};
        CHECK_FALSE(reached_target(4.3, band));
        CHECK(reached_target(4.12, band));
        auto c = choose_epoch(l, band);
        CHECK(c.epoch == 3);
        CHECK(c.loss == Approx(4.12));
    }
    SECTION("jumping below the floor: keep the previous epoch") {
        std::vector<double> l{4.6, 4.3, 3.9};
        CHECK(reached_target(3.9, band));
        auto c = choose_epoch(l, band);
        CHECK(c.epoch == 2);
        CHECK(c.rule == "last-above-floor");
        CHECK(c.reason.find("epoch 3") != std::string::npos);
    }
    SECTION("exactly at the floor counts as above it") {
        CHECK(choose_epoch({4.3, 4.1}, band).epoch == 2);
    }
    SECTION("first epoch already below the floor") {
        auto c = choose_epoch({3.8, 3.5}, band);
        CHECK(c.epoch == 1);
        CHECK(c.rule == "highest-below-floor");
    }
    SECTION("non-finite losses are never chosen") {
        CHECK(choose_epoch({4.5, std::nan("")}, band).epoch == 1);
        CHECK_FALSE(reached_target(std::nan(""), band));
    }
    SECTION("no band: the last epoch") {
        LossBandPolicy none;
        CHECK_FALSE(reached_target(0.1, none));
        auto c = choose_epoch({3.0, 2.0, 1.0}, none);
        CHECK(c.epoch == 3);
        CHECK(c.rule == "last-epoch");
    }
}
