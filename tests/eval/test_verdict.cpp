// The seed's troubleshooting table, the verdict rules at their edges, and the checkpoint comparison.
#include <catch2/catch.hpp>

#include <cmath>

#include <nlohmann/json.hpp>

#include "alexandria/eval/verdict.h"

using namespace alexandria;
using namespace alexandria::eval;

namespace {

// A clean generation summary: every output ended on EOS at the dataset's pace.
GenerationSummary clean(double similarity = 0.8) {
    GenerationSummary g;
    g.outputs = 21;
    g.eos = 21;
    g.short_outputs = 9;
    g.long_outputs = 12;
    g.eos_rate = 1;
    g.runaway_rate = g.short_runaway_rate = g.long_runaway_rate = 0;
    g.rate.chars_per_second = 14;
    g.rate_ratio = 1.0;
    g.similarity_count = 21;
    g.similarity_mean = similarity;
    return g;
}

const Finding* find(const AdapterVerdict& v, const std::string& key) {
    for (const auto& f : v.findings)
        if (f.key == key) return &f;
    return nullptr;
}

AdapterVerdict with_loss(double loss) {
    JudgeInput in;
    in.loss = plan::loss_verdict(loss);
    in.generation = clean();
    return judge(in);
}

}  // namespace

TEST_CASE("the troubleshooting table is the seed's, word for word") {
    const auto& t = troubleshooting_table();
    REQUIRE(t.size() == 7);
    CHECK(t[0].problem == "Garbled audio on new text");
    CHECK(t[0].cause == "Overfitting (loss too low)");
    CHECK(t[0].fix == "Reduce epochs or lr");
    CHECK(t[1].problem == "Generation hangs / no EOS");
    CHECK(t[1].cause == "Severe overfitting");
    CHECK(t[1].fix == "Retrain with fewer epochs");
    CHECK(t[2].problem == "Clear but no voice identity");
    CHECK(t[2].cause == "Undertrained (loss too high)");
    CHECK(t[2].fix == "Increase epochs or lr");
    CHECK(t[3].problem == "Fast/rushed speech");
    CHECK(t[3].cause == "Training data had fast pacing");
    CHECK(t[3].fix == "Use \"slow, even narration\" in instruct, or retune dataset");
    CHECK(t[4].problem == "Short texts hang at max_new_tokens");
    CHECK(t[4].cause == "Model never learned short-utterance EOS");
    CHECK(t[4].fix == "Add short vocalizations to training data");
    CHECK(t[5].problem == "Initial audio glitch");
    CHECK(t[5].fix == "Minor — usually not present in full audiobook generation");
    CHECK(t[6].problem == "ref.wav mismatch");
    CHECK(t[6].cause == "ref_text.txt doesn't match ref.wav content");
    CHECK(t[6].fix == "Ensure ref_text.txt contains the exact transcript of ref.wav");
    CHECK(troubleshooting_row(Trouble::ShortHang).key == "short-hang");
}

TEST_CASE("the held-out loss at the seed's band edges") {
    // 4.4+ undertrained: clear but no identity, more epochs.
    auto v = with_loss(4.4);
    CHECK_FALSE(v.usable);
    REQUIRE(find(v, "no-identity"));
    CHECK(find(v, "no-identity")->fix == "Increase epochs or lr");
    CHECK(find(v, "no-identity")->severity == Severity::Unusable);
    // The 4.2-4.4 gap: above target, usable, with a note.
    v = with_loss(4.399);
    CHECK(v.usable);
    REQUIRE(find(v, "loss-above-target"));
    CHECK(find(v, "loss-above-target")->severity == Severity::Note);
    CHECK(v.summary == "usable");
    // The sweet spot, both ends included.
    for (double l : {4.2, 4.15, 4.1}) {
        v = with_loss(l);
        CHECK(v.usable);
        CHECK(v.findings.empty());
    }
    // Below 4.1: knife's edge, 3.8-3.9 gap, starting to overfit, 3.3-3.4 gap, overfit, below 3.0: garbled → reduce.
    for (double l : {4.099, 3.9, 3.85, 3.4, 3.35, 3.0, 2.5}) {
        v = with_loss(l);
        INFO(l);
        CHECK_FALSE(v.usable);
        REQUIRE(find(v, "garbled"));
        CHECK(find(v, "garbled")->fix == "Reduce epochs or lr");
        CHECK(find(v, "no-identity") == nullptr);
    }
    // A diverged run.
    v = with_loss(std::nan(""));
    CHECK_FALSE(v.usable);
    CHECK(find(v, "garbled"));
}

TEST_CASE("runaways: no EOS versus short texts hang") {
    JudgeInput in;
    in.loss = plan::loss_verdict(4.15);
    in.generation = clean();
    // 1 of 12 longer generations capped (8 %): under the 10 % line.
    in.generation.long_runaway = 1;
    in.generation.long_runaway_rate = 1.0 / 12;
    CHECK(judge(in).usable);
    // 2 of 12 (17 %): no EOS → retrain with fewer epochs.
    in.generation.long_runaway = 2;
    in.generation.long_runaway_rate = 2.0 / 12;
    auto v = judge(in);
    CHECK_FALSE(v.usable);
    REQUIRE(find(v, "no-eos"));
    CHECK(find(v, "no-eos")->fix == "Retrain with fewer epochs");
    CHECK(find(v, "short-hang") == nullptr);
    // Only the short prompts run away: the seed's "short texts hang" row.
    in.generation.long_runaway = 0;
    in.generation.long_runaway_rate = 0;
    in.generation.short_runaway = 3;
    in.generation.short_runaway_rate = 3.0 / 9;
    v = judge(in);
    CHECK_FALSE(v.usable);
    REQUIRE(find(v, "short-hang"));
    CHECK(find(v, "short-hang")->fix == "Add short vocalizations to training data");
    CHECK(find(v, "no-eos") == nullptr);
    // The base model's figure is quoted next to it.
    GenerationSummary base = clean(0.5);
    base.short_runaway = 1;
    in.base = base;
    v = judge(in);
    REQUIRE(find(v, "short-hang"));
    CHECK(find(v, "short-hang")->evidence.at(0).find("base model without adapter: 1 of 9") != std::string::npos);
}

TEST_CASE("speaking rate, speaker similarity, outliers, silence, reference") {
    JudgeInput in;
    in.loss = plan::loss_verdict(4.15);
    in.generation = clean(0.8);
    in.base = clean(0.6);
    CHECK(judge(in).findings.empty());

    in.generation.rate_ratio = 1.15;  // the edge of normal
    CHECK(find(judge(in), "rushed") == nullptr);
    in.generation.rate_ratio = 1.16;
    auto v = judge(in);
    REQUIRE(find(v, "rushed"));
    CHECK(find(v, "rushed")->severity == Severity::Warning);
    CHECK(v.usable);
    in.generation.rate_ratio = 1.0;

    in.generation.similarity_mean = 0.6;  // no better than the base model
    v = judge(in);
    REQUIRE(find(v, "no-identity"));
    CHECK(find(v, "no-identity")->severity == Severity::Warning);
    in.generation.similarity_mean = 0.8;

    in.generation.duration_outliers = 3;  // 3 of 21 > 10 %
    v = judge(in);
    REQUIRE(find(v, "garbled"));
    CHECK(find(v, "garbled")->severity == Severity::Warning);
    in.generation.duration_outliers = 2;  // 2 of 21 < 10 %
    CHECK(find(judge(in), "garbled") == nullptr);
    in.generation.duration_outliers = 0;

    in.generation.silent = 3;
    v = judge(in);
    CHECK_FALSE(v.usable);
    CHECK(find(v, "silent-output")->severity == Severity::Unusable);
    in.generation.silent = 1;
    CHECK(judge(in).usable);
    in.generation.silent = 0;

    in.generation.failed = 21;
    in.generation.eos = 0;
    in.generation.outputs = 21;
    CHECK_FALSE(judge(in).usable);
    in.generation = clean(0.8);

    // ref_text.txt of 30 characters for 10 s of speech when the dataset speaks 14 c/s: 3 c/s, a mismatch.
    io::AudioStats ref;
    ref.seconds = 10;
    ref.peak = 0.5;
    auto rc = check_reference("abcde fghij klmno pqrst uvwxy zabcd", true, ref, 14.0);
    CHECK(rc.mismatch);
    CHECK(rc.rate == Approx(3.0));
    in.reference = rc;
    v = judge(in);
    REQUIRE(find(v, "ref-mismatch"));
    CHECK(v.usable);
    // 140 characters in 10 s fits.
    CHECK_FALSE(check_reference(std::string(140, 'a'), true, ref, 14.0).mismatch);
    CHECK(check_reference("", false, ref, 14.0).mismatch);
}

TEST_CASE("findings are ordered by severity, then by the seed's row order") {
    JudgeInput in;
    in.loss = plan::loss_verdict(3.5);  // garbled, unusable
    in.generation = clean();
    in.generation.rate_ratio = 1.3;     // rushed, warning
    in.generation.long_runaway = 6;
    in.generation.long_runaway_rate = 0.5;  // no EOS, unusable
    auto v = judge(in);
    REQUIRE(v.findings.size() == 3);
    CHECK(v.findings[0].key == "garbled");
    CHECK(v.findings[1].key == "no-eos");
    CHECK(v.findings[2].key == "rushed");
    CHECK(v.summary.rfind("not usable: Garbled audio on new text → Reduce epochs or lr", 0) == 0);
    auto j = to_json(v);
    CHECK(j["usable"] == false);
    CHECK(j["findings"][0]["seed_row"] == true);
    CHECK(j["findings"][0]["severity"] == "unusable");
}

TEST_CASE("checkpoint comparison ordering and pick") {
    // epoch-1 undertrained, epoch-2 sweet spot, epoch-3 sweet spot with better similarity, epoch-4 overfit and
    // running away, epoch-5 usable but with runaways.
    std::vector<RankInput> in = {
        {"epoch-1", false, 0.0, 0.70, 1.0, 4.60},
        {"epoch-2", true, 0.0, 0.80, 1.05, 4.18},
        {"epoch-3", true, 0.0, 0.85, 1.10, 4.12},
        {"epoch-4", false, 0.40, 0.90, 1.30, 3.60},
        {"epoch-5", true, 0.05, 0.95, 1.0, 4.15},
    };
    auto order = rank_adapters(in);
    REQUIRE(order == std::vector<size_t>{2, 1, 4, 0, 3});
    REQUIRE(pick_adapter(in));
    CHECK(*pick_adapter(in) == 2);

    // Ties in runaways and similarity fall to the speaking-rate ratio, then the loss's distance from 4.15.
    std::vector<RankInput> tie = {
        {"a", true, 0.0, 0.8, 1.10, 4.15},
        {"b", true, 0.0, 0.8, 0.95, 4.19},
        {"c", true, 0.0, 0.8, 0.95, 4.16},
    };
    CHECK(rank_adapters(tie) == std::vector<size_t>{2, 1, 0});
    // Missing figures sort last in their key.
    std::vector<RankInput> nan = {
        {"x", true, std::nan(""), 0.9, 1.0, 4.15},
        {"y", true, 0.0, std::nan(""), 1.0, 4.15},
        {"z", true, 0.0, 0.5, 1.0, 4.15},
    };
    CHECK(rank_adapters(nan) == std::vector<size_t>{2, 1, 0});
    // Nothing usable: ranked anyway, nothing picked.
    std::vector<RankInput> none = {{"a", false, 1.0, 0.5, 1.0, 3.0}, {"b", false, 0.0, 0.5, 1.0, 4.6}};
    CHECK(rank_adapters(none) == std::vector<size_t>{1, 0});
    CHECK_FALSE(pick_adapter(none));
    CHECK_FALSE(pick_adapter({}));
}
