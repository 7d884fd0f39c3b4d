// Issue 14 in eval: the speaking rate of a long output's first and last third (a drift is visible), and the prompt
// mode each adapter is evaluated in.
#include <catch2/catch.hpp>

#include <cmath>

#include "alexandria/eval/evaluate.h"
#include "alexandria/eval/metrics.h"
#include "alexandria/io/files.h"
#include "support/test_support.h"

using namespace alexandria;
using namespace alexandria::eval;

namespace {

// A 200 Hz tone whose loudness pulses `rate` times per second (full-depth raised cosine): `rate` syllables/s.
void pulses(std::vector<float>& out, double rate, double seconds, int sr = 24000) {
    const size_t n = static_cast<size_t>(seconds * sr);
    for (size_t i = 0; i < n; ++i) {
        const double t = double(i) / sr;
        const double env = 0.5 * (1 - std::cos(2 * M_PI * rate * t));
        out.push_back(static_cast<float>(0.5 * env * std::sin(2 * M_PI * 200 * t)));
    }
}

}  // namespace

TEST_CASE("syllable rate counts the loudness pulses of a stretch", "[eval][metrics][thirds]") {
    for (double rate : {3.0, 4.0, 6.0}) {
        std::vector<float> s;
        pulses(s, rate, 4.0);
        INFO("rate " << rate);
        CHECK(syllable_rate(s, 24000, 0, s.size()) == Approx(rate).margin(0.5));
    }
    std::vector<float> silence(24000 * 2, 0.0f);
    CHECK(syllable_rate(silence, 24000, 0, silence.size()) == Approx(0).margin(0.6));
    CHECK(std::isnan(syllable_rate(silence, 24000, 10, 10)));
}

TEST_CASE("a speeding-up output reads faster in its last third; short ones get no thirds", "[eval][metrics][thirds]") {
    std::vector<float> s(12000, 0.0f);  // leading silence: not speech
    pulses(s, 4.0, 3.0);
    pulses(s, 5.0, 3.0);
    pulses(s, 7.0, 3.0);
    s.insert(s.end(), 24000, 0.0f);  // trailing silence
    ThirdsRate t = thirds_rate(s, 24000);
    CHECK(t.first == Approx(4.0).margin(0.7));
    CHECK(t.last == Approx(7.0).margin(0.7));

    std::vector<float> steady;
    pulses(steady, 4.0, 9.0);
    ThirdsRate st = thirds_rate(steady, 24000);
    CHECK(st.last / st.first == Approx(1.0).margin(0.2));

    std::vector<float> shorter;
    pulses(shorter, 4.0, kThirdsMinSeconds - 1);
    ThirdsRate sh = thirds_rate(shorter, 24000);
    CHECK(std::isnan(sh.first));
    CHECK(std::isnan(sh.last));

    // The summary: mean last/first over the outputs that have thirds.
    OutputCheck a, b, c;
    a.thirds = {4.0, 6.0};
    b.thirds = {5.0, 5.0};
    GenerationSummary g = summarize({a, b, c}, 12.0);
    CHECK(g.thirds_outputs == 2);
    CHECK(g.thirds_drift == Approx(1.25));
}

TEST_CASE("the prompt mode an adapter was trained with", "[eval][prompt]") {
    test::TempDir tmp;
    const fs::path run = tmp / "run";
    fs::create_directories(run / "checkpoints" / "epoch-2");
    CHECK(recorded_prompt(run.string()) == "xvector");  // nothing recorded: x-vector (train_lora.py)
    io::write_file_atomic(run / "training_meta.json", R"({"prompt": "icl", "language": "english"})");
    CHECK(recorded_prompt(run.string()) == "icl");
    CHECK(recorded_prompt((run / "checkpoints" / "epoch-2").string()) == "icl");  // an epoch of that run
    io::write_file_atomic(run / "training_meta.json", R"({"prompt": "xvector"})");
    CHECK(recorded_prompt((run / "checkpoints" / "epoch-2/").string()) == "xvector");
}
