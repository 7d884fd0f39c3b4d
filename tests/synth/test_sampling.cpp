// Logits processors against hand-computed values (spec model-talker.md §6.3, Hugging Face 4.57 semantics).
#include <catch2/catch.hpp>

#include <limits>

#include "alexandria/synth/sampling.h"

using namespace alexandria::synth;

namespace {
const float inf = std::numeric_limits<float>::infinity();
torch::Tensor row(std::vector<float> v) { return torch::tensor(v).unsqueeze(0); }
std::vector<float> vec(const torch::Tensor& t) {
    auto c = t.reshape({-1}).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}
}  // namespace

TEST_CASE("repetition penalty divides positive and multiplies negative scores, once per distinct id") {
    auto logits = row({2.0f, -1.0f, 0.5f, -3.0f, 1.0f});
    auto history = torch::tensor({{0, 1, 1, 1, 3}}, torch::kLong);  // id 1 three times
    apply_repetition_penalty(logits, history, 2.0);
    auto v = vec(logits);
    CHECK(v[0] == Approx(1.0));   // 2 / 2
    CHECK(v[1] == Approx(-2.0));  // -1 * 2, once (not -8)
    CHECK(v[2] == Approx(0.5));   // untouched
    CHECK(v[3] == Approx(-6.0));
    CHECK(v[4] == Approx(1.0));

    // The mask form used by the decode loop gives the same numbers, with the real 1.05.
    auto a = row({2.0f, -1.0f, 0.5f, -3.0f, 0.0f});
    auto b = a.clone();
    apply_repetition_penalty(a, torch::tensor({{4, 1, 0, 1}}, torch::kLong), 1.05);
    auto seen = torch::tensor({{true, true, false, false, true}});
    apply_repetition_penalty_mask(b, seen, 1.05);
    CHECK(torch::equal(a, b));
    CHECK(vec(a)[0] == Approx(2.0 / 1.05));
    CHECK(vec(a)[1] == Approx(-1.05));
    CHECK(vec(a)[4] == 0.0f);  // zero is "not negative": divided, stays 0
}

TEST_CASE("min_new_tokens blocks EOS for the first two frames only") {
    for (int generated = 0; generated < 4; ++generated) {
        auto l = row({0.f, 1.f, 2.f, 3.f});
        apply_min_new_tokens(l, 2, generated, 2);
        if (generated < 2) CHECK(vec(l)[2] == -inf);
        else CHECK(vec(l)[2] == 2.f);
        CHECK(vec(l)[3] == 3.f);
    }
}

TEST_CASE("suppression removes 2048..3071 except the codec EOS 2150") {
    auto mask = talker_suppress_mask(3072, 2150);
    REQUIRE(mask.size(0) == 3072);
    CHECK_FALSE(mask[2047].item<bool>());
    CHECK(mask[2048].item<bool>());
    CHECK(mask[2149].item<bool>());
    CHECK_FALSE(mask[2150].item<bool>());
    CHECK(mask[2151].item<bool>());
    CHECK(mask[3071].item<bool>());
    CHECK(mask.sum().item<int64_t>() == 1023);
    auto l = torch::zeros({1, 3072});
    apply_suppression(l, mask);
    CHECK(l[0][100].item<float>() == 0.f);
    CHECK(l[0][2150].item<float>() == 0.f);
    CHECK(l[0][3000].item<float>() == -inf);
}

TEST_CASE("temperature divides; 1.0 is a no-op") {
    auto l = row({0.9f, -1.8f});
    apply_temperature(l, 0.9);
    CHECK(vec(l)[0] == Approx(1.0));
    CHECK(vec(l)[1] == Approx(-2.0));
    auto m = row({0.3f});
    apply_temperature(m, 1.0);
    CHECK(vec(m)[0] == 0.3f);
}

TEST_CASE("top-k keeps everything tied with the k-th largest") {
    auto l = row({1.f, 3.f, 2.f, 2.f, 0.f});
    apply_top_k(l, 2);  // 2nd largest is 2 → both 2s survive
    CHECK(vec(l) == std::vector<float>{-inf, 3.f, 2.f, 2.f, -inf});
    auto m = row({1.f, 3.f, 2.f, 0.5f});
    apply_top_k(m, 1);
    CHECK(vec(m) == std::vector<float>{-inf, 3.f, -inf, -inf});
    auto big = row({1.f, 2.f});
    apply_top_k(big, 50);  // k larger than the vocabulary keeps all
    CHECK(vec(big) == std::vector<float>{1.f, 2.f});
    auto off = row({1.f, 2.f});
    apply_top_k(off, 0);
    CHECK(vec(off) == std::vector<float>{1.f, 2.f});
}

TEST_CASE("top-p removes the low tail whose cumulative probability is <= 1 - p") {
    // probabilities 0.5, 0.25, 0.125, 0.125 (ascending cumsum 0.125, 0.25, 0.5, 1.0)
    auto probs = std::vector<float>{0.5f, 0.25f, 0.125f, 0.125f};
    auto logits = [&] {
        std::vector<float> v;
        for (float p : probs) v.push_back(std::log(p));
        return row(v);
    };
    auto a = logits();
    apply_top_p(a, 0.75);  // remove cum ≤ 0.25: both 0.125s
    auto va = vec(a);
    CHECK(va[0] > -inf);
    CHECK(va[1] > -inf);
    CHECK(va[2] == -inf);
    CHECK(va[3] == -inf);
    auto b = logits();
    apply_top_p(b, 0.3);  // remove cum ≤ 0.7: everything but the 0.5
    auto vb = vec(b);
    CHECK(vb[0] > -inf);
    CHECK(vb[1] == -inf);
    auto c = logits();
    apply_top_p(c, 0.01);  // min_keep 1: the top token always survives
    auto vc = vec(c);
    CHECK(vc[0] > -inf);
    CHECK(std::count(vc.begin(), vc.end(), -inf) == 3);
    auto d = logits();
    apply_top_p(d, 1.0);  // off
    auto vd = vec(d);
    CHECK(std::count(vd.begin(), vd.end(), -inf) == 0);
}

TEST_CASE("the talker processor chains penalty, min tokens and suppression in order") {
    TalkerSamplingParams p;
    p.do_sample = false;
    TalkerLogitsProcessor proc(p, 3072, 2150, 1, torch::kCPU);
    at::Generator gen = make_generator(torch::kCPU, 1);
    // EOS is the best logit, but blocked for two frames; a control id is never picked.
    auto make = [] {
        auto l = torch::zeros({1, 3072});
        l[0][2150] = 10.f;
        l[0][3000] = 20.f;
        l[0][7] = 5.f;
        l[0][9] = 4.9f;
        return l;
    };
    auto l0 = make();
    CHECK(proc.step(l0, 0, gen).item<int64_t>() == 7);
    // Frame 1: 7 was generated → 5/1.05 = 4.76 < 4.9 → 9
    auto l1 = make();
    CHECK(proc.step(l1, 1, gen).item<int64_t>() == 9);
    auto l2 = make();
    CHECK(proc.step(l2, 2, gen).item<int64_t>() == 2150);
}

TEST_CASE("sampling is reproducible for a seed and differs across seeds") {
    auto logits = torch::randn({1, 2048}, torch::TensorOptions().dtype(torch::kFloat32));
    SamplingParams p;
    auto draw = [&](uint64_t seed) {
        at::Generator gen = make_generator(torch::kCPU, seed);
        std::vector<int64_t> ids;
        for (int i = 0; i < 20; ++i) {
            auto l = logits.clone();
            apply_warpers(l, p);
            ids.push_back(pick_token(l, true, gen).item<int64_t>());
        }
        return ids;
    };
    CHECK(draw(5) == draw(5));
    CHECK(draw(5) != draw(6));
    // Top-k 50: every draw is among the 50 best.
    auto top = std::get<1>(torch::topk(logits, 50, -1));
    for (auto id : draw(9)) CHECK((top == id).any().item<bool>());
}

TEST_CASE("generation_config values map to the talker and subtalker settings") {
    alexandria::model::GenerationConfig g;
    g.temperature = 0.7;
    g.subtalker_top_k = 10;
    g.repetition_penalty = 1.1;
    auto t = talker_params(g);
    CHECK(t.do_sample);
    CHECK(t.temperature == 0.7);
    CHECK(t.repetition_penalty == 1.1);
    CHECK(t.min_new_tokens == 2);
    auto s = subtalker_params(g);
    CHECK(s.top_k == 10);
    CHECK_FALSE(talker_params(g, true).do_sample);
    CHECK_FALSE(subtalker_params(g, true).do_sample);
}

TEST_CASE("sample_rows draws from the distribution the warpers and softmax define, each row from its generator") {
    torch::manual_seed(21);
    for (const auto& [temperature, top_k, top_p] :
         {std::tuple{0.7, int64_t(10), 0.8}, std::tuple{1.0, int64_t(0), 1.0}, std::tuple{1.3, int64_t(4), 1.0}}) {
        INFO("temperature " << temperature << " top_k " << top_k << " top_p " << top_p);
        SamplingParams p;
        p.temperature = temperature;
        p.top_k = top_k;
        p.top_p = top_p;
        auto logits = torch::randn({1, 30}) * 1.5;
        logits[0][3] = -std::numeric_limits<float>::infinity();  // as suppression leaves it: never drawn
        auto warped = logits.clone();
        apply_warpers(warped, p);
        auto want = warped.softmax(-1)[0];
        at::Generator gen = make_generator(torch::kCPU, 77);
        const int n = 40000;
        auto counts = torch::zeros({30}, torch::kFloat64);
        for (int i = 0; i < n; ++i) counts[sample(logits, p, gen).item<int64_t>()] += 1;
        auto freq = counts / n;
        CHECK((freq - want.to(torch::kFloat64)).abs().max().item<double>() < 0.012);
        CHECK(torch::equal(freq > 0, want > 0));  // exactly the warpers' support
    }
    // The same draws as the warpers and multinomial from the same seed (the random stream is unchanged).
    SamplingParams p;
    auto logits = torch::randn({3, 2048});
    {
        at::Generator g1 = make_generator(torch::kCPU, 5), g2 = make_generator(torch::kCPU, 5);
        for (int i = 0; i < 200; ++i) {
            auto w = logits.narrow(0, i % 3, 1).clone();
            apply_warpers(w, p);
            CHECK(sample(logits.narrow(0, i % 3, 1), p, g1).item<int64_t>() == pick_token(w, true, g2).item<int64_t>());
        }
    }
    // Rows are independent: a batch draws what each row draws alone with its own generator.
    at::Generator a = make_generator(torch::kCPU, 1), b = make_generator(torch::kCPU, 2), c = make_generator(torch::kCPU, 3);
    at::Generator a1 = make_generator(torch::kCPU, 1), b1 = make_generator(torch::kCPU, 2), c1 = make_generator(torch::kCPU, 3);
    for (int i = 0; i < 5; ++i) {
        auto ids = sample_rows(logits, p, {&a, &b, &c});
        CHECK(ids[0].item<int64_t>() == sample(logits.narrow(0, 0, 1), p, a1).item<int64_t>());
        CHECK(ids[1].item<int64_t>() == sample(logits.narrow(0, 1, 1), p, b1).item<int64_t>());
        CHECK(ids[2].item<int64_t>() == sample(logits.narrow(0, 2, 1), p, c1).item<int64_t>());
    }
    auto before = logits.clone();
    sample_rows(logits, p, {&a, &b, &c});
    CHECK(torch::equal(logits, before));  // the logits are read, not changed
    p.do_sample = false;
    CHECK(torch::equal(sample_rows(logits, p, {&a, &b, &c}), logits.argmax(-1)));
}
