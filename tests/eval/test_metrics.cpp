// eval metrics on crafted cases whose answers are known.
#include <catch2/catch.hpp>

#include <cmath>

#include "alexandria/eval/metrics.h"
#include "alexandria/io/audio.h"

using namespace alexandria;
using namespace alexandria::eval;

namespace {

// `lead` s of silence, `tone` s of a 220 Hz sine at `amp`, `tail` s of silence, 24 kHz.
io::Audio tone(double lead, double tone_s, double tail, double amp = 0.5) {
    io::Audio a;
    const int sr = a.sample_rate;
    for (int i = 0; i < int(std::lround(lead * sr)); ++i) a.samples.push_back(0.f);
    // Phase offset so the first and last tone samples are audible: the tone's length is then exact.
    for (int i = 0; i < int(std::lround(tone_s * sr)); ++i)
        a.samples.push_back(float(amp * std::sin(2 * M_PI * 220.0 * i / sr + M_PI / 2)));
    for (int i = 0; i < int(std::lround(tail * sr)); ++i) a.samples.push_back(0.f);
    return a;
}

}  // namespace

TEST_CASE("spoken characters leave out whitespace and punctuation") {
    CHECK(spoken_characters("Oh!") == 2);
    CHECK(spoken_characters("Hmm.") == 3);
    CHECK(spoken_characters("  Right.  ") == 5);
    CHECK(spoken_characters("Wait, is that you?") == 13);
    CHECK(spoken_characters("«Ça va ?» — oui…") == 7);  // ç a v a o u i; « » — … are punctuation
    CHECK(spoken_characters("你好。") == 2);
    CHECK(spoken_characters("") == 0);
    CHECK(spoken_characters("?!...") == 0);
}

TEST_CASE("speaking rate of a tone of known length") {
    // 20 spoken characters over 2.0 s of sound between 0.5 s and 0.75 s of silence: 10 chars/s.
    auto st = io::audio_stats(tone(0.5, 2.0, 0.75));
    CHECK(st.seconds == Approx(3.25).margin(1e-6));
    CHECK(speech_seconds(st) == Approx(2.0).margin(1e-3));
    CHECK(speaking_rate("abcde fghij, klmno pqrst.", speech_seconds(st)) == Approx(10.0).epsilon(1e-3));

    // Silence has no speech and no rate.
    auto silent = io::audio_stats(tone(1.0, 0.0, 0.0));
    CHECK(silent.silent());
    CHECK(speech_seconds(silent) == 0.0);
    CHECK(std::isnan(speaking_rate("hello", 0.0)));
    CHECK(std::isnan(speaking_rate("...", 1.0)));
}

TEST_CASE("pooled rate is total characters over total speech") {
    // A 2-character "Oh!" in 0.5 s (4 c/s) and 98 characters in 9.5 s: pooled 10 c/s, not the mean of rates.
    auto r = pooled_rate({{2, 0.5}, {98, 9.5}, {5, 0.0}, {0, 3.0}});
    CHECK(r.clips == 2);
    CHECK(r.characters == 100);
    CHECK(r.speech_seconds == Approx(10.0));
    CHECK(r.chars_per_second == Approx(10.0));
    CHECK(std::isnan(pooled_rate({}).chars_per_second));
}

TEST_CASE("cosine similarity") {
    std::vector<float> a{1, 2, 3, -4}, b{2, 4, 6, -8}, c{-1, -2, -3, 4}, d{2, -1, 0, 0};
    CHECK(cosine_similarity(a, a) == Approx(1.0));
    CHECK(cosine_similarity(a, b) == Approx(1.0));
    CHECK(cosine_similarity(a, c) == Approx(-1.0));
    CHECK(cosine_similarity(a, d) == Approx(0.0).margin(1e-12));
    CHECK(std::isnan(cosine_similarity(a, {1, 2})));
    CHECK(std::isnan(cosine_similarity(a, {0, 0, 0, 0})));
    CHECK(std::isnan(cosine_similarity({}, {})));
}

TEST_CASE("clipped and silent outputs") {
    io::Audio a = tone(0.1, 1.0, 0.1, 1.0);  // a full-scale sine: its crests sit at ±1
    auto st = io::audio_stats(a);
    CHECK(st.clipped_fraction > kMaxClippedFraction);
    CHECK(is_clipped(st));
    CHECK_FALSE(is_clipped(io::audio_stats(tone(0.1, 1.0, 0.1, 0.5))));
    // Exactly 1 % at full scale is not "more than 1 %".
    io::Audio b;
    b.samples.assign(1000, 0.1f);
    for (int i = 0; i < 10; ++i) b.samples[i * 100] = 1.0f;
    CHECK_FALSE(is_clipped(io::audio_stats(b)));
    b.samples[1] = -1.0f;
    CHECK(is_clipped(io::audio_stats(b)));
}

TEST_CASE("duration outliers at the edges of the rule") {
    // 20 characters at 10 c/s: expected 2 s; the ratio must leave [0.5, 2] AND the gap exceed 0.75 s.
    auto d = duration_check(20, 2.0, 10.0);
    CHECK(d.expected_seconds == Approx(2.0));
    CHECK(d.ratio == Approx(1.0));
    CHECK_FALSE(d.outlier);
    CHECK_FALSE(duration_check(20, 4.0, 10.0).outlier);  // ratio exactly 2
    CHECK(duration_check(20, 4.01, 10.0).outlier);
    CHECK_FALSE(duration_check(20, 1.0, 10.0).outlier);  // ratio exactly 0.5
    CHECK(duration_check(20, 0.99, 10.0).outlier);
    // "Oh!": 2 characters → 0.2 s expected; 0.9 s is 4.5× but only 0.7 s off: not an outlier; 1.0 s is.
    CHECK_FALSE(duration_check(2, 0.9, 10.0).outlier);
    CHECK(duration_check(2, 1.0, 10.0).outlier);
    // No dataset rate: nothing to compare with.
    auto n = duration_check(20, 5.0, std::nan(""));
    CHECK(std::isnan(n.expected_seconds));
    CHECK_FALSE(n.outlier);
}

TEST_CASE("summary counts EOS, runaways, short hangs, rates and similarity") {
    const double ds_rate = 10.0;
    std::vector<OutputCheck> outs;
    auto add = [&](const std::string& kind, bool cap, int64_t chars, double lead, double speech, double sim) {
        OutputCheck c;
        c.kind = kind;
        c.characters = chars;
        c.hit_cap = cap;
        c.similarity = sim;
        measure_audio(c, io::audio_stats(tone(lead, speech, 0.2)), ds_rate);
        outs.push_back(c);
    };
    add("short", true, 2, 0.1, 5.0, 0.2);      // runaway on "Oh!"
    add("short", false, 2, 0.1, 0.3, 0.4);
    add("sentence", false, 40, 0.1, 3.7, 0.6);  // 42 chars in 4.0 s of speech with the one above: 10.5 c/s
    add("sentence", true, 40, 0.1, 6.0, 0.8);   // runaway: left out of the rate
    OutputCheck f;
    f.kind = "paragraph";
    f.failed = true;
    outs.push_back(f);

    auto g = summarize(outs, ds_rate);
    CHECK(g.outputs == 5);
    CHECK(g.failed == 1);
    CHECK(g.eos == 2);
    CHECK(g.runaway == 2);
    CHECK(g.eos_rate == Approx(0.5));
    CHECK(g.runaway_rate == Approx(0.5));
    CHECK(g.short_outputs == 2);
    CHECK(g.short_runaway == 1);
    CHECK(g.short_runaway_rate == Approx(0.5));
    CHECK(g.long_outputs == 2);
    CHECK(g.long_runaway_rate == Approx(0.5));
    CHECK(g.rate.clips == 2);
    CHECK(g.rate.chars_per_second == Approx(42.0 / 4.0).epsilon(1e-3));
    CHECK(g.rate_ratio == Approx(1.05).epsilon(1e-3));
    CHECK(g.similarity_count == 4);
    CHECK(g.similarity_mean == Approx(0.5));
    CHECK(g.similarity_min == Approx(0.2));
    CHECK(g.similarity_max == Approx(0.8));
    CHECK(outs[0].duration.outlier);  // the 5 s "Oh!" (expected 0.2 s) ...
    CHECK(g.duration_outliers == 0);  // ... is a runaway, counted as one and not again as an outlier
    CHECK(g.silent == 0);

    auto empty = summarize({}, ds_rate);
    CHECK(std::isnan(empty.eos_rate));
    CHECK(std::isnan(empty.rate_ratio));
}
