// Talker and code predictor maths on tiny random models (fp32, CPU): one layer against a hand-written reference,
// RoPE, causality, KV-cache decoding against the full forward, padding, and the code predictor's two forms.
#include <catch2/catch.hpp>

#include <cmath>

#include "alexandria/io/error.h"
#include "model_test_util.h"

using namespace alexandria;
using namespace alexandria::model;
using test::max_abs_diff;

namespace {

// Spec §3.1 written out with plain tensor ops and 1-D RoPE built from std::pow, independently of layers.cpp.
torch::Tensor reference_layer(DecoderLayer& L, const DecoderConfig& c, const torch::Tensor& x) {
    auto rms = [&](const torch::Tensor& v, const torch::Tensor& w) {
        return w * (v / torch::sqrt(v.pow(2).mean(-1, true) + c.rms_norm_eps));
    };
    int64_t T = x.size(1), nh = c.num_attention_heads, nkv = c.num_key_value_heads, D = c.head_dim;
    auto h = rms(x, L->input_layernorm->weight);
    auto q = torch::matmul(h, L->self_attn->q_proj->weight.t()).view({1, T, nh, D});
    auto k = torch::matmul(h, L->self_attn->k_proj->weight.t()).view({1, T, nkv, D});
    auto v = torch::matmul(h, L->self_attn->v_proj->weight.t()).view({1, T, nkv, D});
    q = rms(q, L->self_attn->q_norm->weight);
    k = rms(k, L->self_attn->k_norm->weight);
    auto cos = torch::empty({T, D}), sin = torch::empty({T, D});
    for (int64_t p = 0; p < T; ++p)
        for (int64_t j = 0; j < D / 2; ++j) {
            double ang = p / std::pow(c.rope_theta, 2.0 * j / D);
            cos[p][j] = cos[p][j + D / 2] = std::cos(ang);
            sin[p][j] = sin[p][j + D / 2] = std::sin(ang);
        }
    auto rope = [&](const torch::Tensor& t) {  // t [1, T, heads, D]
        auto a = t.narrow(-1, 0, D / 2), b = t.narrow(-1, D / 2, D / 2);
        auto rot = torch::cat({-b, a}, -1);
        return t * cos.view({1, T, 1, D}) + rot * sin.view({1, T, 1, D});
    };
    q = rope(q);
    k = rope(k);
    auto out = torch::zeros({1, T, nh * D});
    for (int64_t hd = 0; hd < nh; ++hd) {
        int64_t kvh = hd / (nh / nkv);
        auto qs = q.select(2, hd)[0], ks = k.select(2, kvh)[0], vs = v.select(2, kvh)[0];  // [T, D]
        auto scores = torch::matmul(qs, ks.t()) / std::sqrt(static_cast<double>(D));
        auto causal = torch::ones({T, T}).triu(1).to(torch::kBool);
        scores = scores.masked_fill(causal, -INFINITY);
        out[0].narrow(1, hd * D, D).copy_(torch::matmul(torch::softmax(scores, -1), vs));
    }
    auto x2 = x + torch::matmul(out, L->self_attn->o_proj->weight.t());
    auto h2 = rms(x2, L->post_attention_layernorm->weight);
    auto mlp = torch::matmul(torch::silu(torch::matmul(h2, L->mlp->gate_proj->weight.t())) *
                                 torch::matmul(h2, L->mlp->up_proj->weight.t()),
                             L->mlp->down_proj->weight.t());
    return x2 + mlp;
}

torch::Tensor greedy(const torch::Tensor& logits, int64_t) { return logits.argmax(-1); }

}  // namespace

TEST_CASE("one decoder layer equals the spec's formulas (GQA, q/k norm, RoPE θ, SwiGLU)", "[model][talker]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    const auto& tc = m->config().talker;
    std::vector<std::pair<DecoderLayer, const DecoderConfig*>> cases{
        {m->talker->model->layer_list[1], &tc}, {m->talker->code_predictor->model->layer_list[0], &tc.code_predictor}};
    for (auto& pair : cases) {
        DecoderLayer& L = pair.first;
        const DecoderConfig& c = *pair.second;
        auto xi = torch::randn({1, 7, c.hidden_size});
        auto pos = torch::arange(7).unsqueeze(0);
        auto [cos, sin] = RotaryEmbedding(c).cos_sin(pos, torch::kFloat32);
        auto mask = attention_mask(7, 0, torch::Tensor(), torch::kFloat32, torch::kCPU);
        auto ours = L->forward(xi, cos, sin, mask);
        CHECK(max_abs_diff(ours, reference_layer(L, c, xi)) < 1e-5);
    }
}

TEST_CASE("interleaved MRoPE sections and equality with 1-D RoPE for equal rows", "[model][rope]") {
    ModelConfig real = ModelConfig::load(test::real_model_dir("Qwen3-TTS-12Hz-1.7B-Base"));
    RotaryEmbedding mrope(real.talker);
    const auto& rows = mrope.slot_rows();
    REQUIRE(rows.size() == 64);
    int counts[3] = {0, 0, 0};
    for (auto r : rows) counts[r]++;
    CHECK(counts[0] == 24);
    CHECK(counts[1] == 20);
    CHECK(counts[2] == 20);
    CHECK(rows[1] == 1);
    CHECK(rows[2] == 2);
    CHECK(rows[3] == 0);
    CHECK(rows[58] == 1);
    CHECK(rows[59] == 2);
    CHECK(rows[60] == 0);
    CHECK(rows[63] == 0);

    DecoderConfig plain = real.talker;
    plain.mrope_section.clear();
    RotaryEmbedding rope1d(plain);
    auto pos = torch::tensor({0, 1, 2, 5, 100, 4000}, torch::kInt64).view({2, 3});
    auto [c3, s3] = mrope.cos_sin(torch::stack({pos, pos, pos}), torch::kFloat32);
    auto [c1, s1] = rope1d.cos_sin(pos, torch::kFloat32);
    auto [c2, s2] = mrope.cos_sin(pos, torch::kFloat32);
    CHECK(torch::equal(c3, c1));
    CHECK(torch::equal(s3, s1));
    CHECK(torch::equal(c2, c1));
    // θ = 1e6: slot j at position p has angle p / 1e6^(2j/128)
    CHECK(std::fabs(c1[1][2][10].item<double>() - std::cos(4000.0 / std::pow(1e6, 20.0 / 128))) < 1e-3);
    CHECK(std::fabs(s1[0][1][64 + 3].item<double>() - std::sin(1.0 / std::pow(1e6, 6.0 / 128))) < 1e-6);

    // Different rows only change the slots that read them.
    auto other = pos + 7;
    auto [cd, sd] = mrope.cos_sin(torch::stack({pos, other, pos}), torch::kFloat32);
    for (int64_t j = 0; j < 64; ++j) {
        bool same = torch::equal(cd.select(-1, j), c1.select(-1, j));
        CHECK(same == (rows[j] != 1));
    }
}

TEST_CASE("causality: a later input never changes earlier logits", "[model][talker]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    int64_t H = m->config().talker.hidden_size;
    auto x = torch::randn({1, 9, H});
    auto y = x.clone();
    y[0][6] += torch::randn({H});
    auto a = m->talker->forward(x).logits, b = m->talker->forward(y).logits;
    CHECK(torch::equal(a.narrow(1, 0, 6), b.narrow(1, 0, 6)));
    CHECK(max_abs_diff(a.narrow(1, 6, 3), b.narrow(1, 6, 3)) > 1e-4);

    // Code predictor teacher-forced form: changing codebook 5 leaves heads 0..4 alone.
    auto hidden = torch::randn({3, H});
    auto codes = torch::randint(0, 2048, {3, 16}, torch::kInt64);
    auto codes2 = codes.clone();
    codes2.select(1, 5).add_(1).remainder_(2048);
    auto la = m->talker->code_predictor_logits(hidden, codes), lb = m->talker->code_predictor_logits(hidden, codes2);
    REQUIRE(la.sizes() == torch::IntArrayRef({3, 15, 2048}));
    CHECK(torch::equal(la.narrow(1, 0, 5), lb.narrow(1, 0, 5)));
    CHECK(max_abs_diff(la.narrow(1, 5, 10), lb.narrow(1, 5, 10)) > 1e-4);
    // Codebook 15 is never an input.
    auto codes3 = codes.clone();
    codes3.select(1, 15).add_(1).remainder_(2048);
    CHECK(torch::equal(la, m->talker->code_predictor_logits(hidden, codes3)));
}

TEST_CASE("KV-cache decoding equals the full forward", "[model][talker][cache]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    int64_t H = m->config().talker.hidden_size;
    auto x = torch::randn({2, 12, H});
    auto full = m->talker->forward(x);
    KVCache cache = m->talker->make_cache(2, 16);
    std::vector<torch::Tensor> hs, ls;
    auto pre = m->talker->forward(x.narrow(1, 0, 5), &cache);
    hs.push_back(pre.hidden);
    ls.push_back(pre.logits);
    auto two = m->talker->forward(x.narrow(1, 5, 2), &cache);  // a chunk of 2
    hs.push_back(two.hidden);
    ls.push_back(two.logits);
    for (int64_t t = 7; t < 12; ++t) {
        auto o = m->talker->forward(x.narrow(1, t, 1), &cache);
        hs.push_back(o.hidden);
        ls.push_back(o.logits);
    }
    CHECK(cache.length() == 12);
    CHECK(max_abs_diff(torch::cat(hs, 1), full.hidden) < 1e-5);
    CHECK(max_abs_diff(torch::cat(ls, 1), full.logits) < 1e-5);
    // Capacity is static: going past it is an error, not a reallocation.
    REQUIRE_THROWS_AS(m->talker->forward(torch::randn({2, 5, H}), &cache), Error);
    cache.reset();
    auto again = m->talker->forward(x.narrow(1, 0, 5), &cache);
    CHECK(max_abs_diff(again.hidden, pre.hidden) < 1e-6);
}

TEST_CASE("left padding with an attention mask gives the unpadded result", "[model][talker][cache]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    int64_t H = m->config().talker.hidden_size;
    auto a = torch::randn({1, 6, H}), b = torch::randn({1, 8, H});
    // Batch: a left-padded by two zero rows, b as is. Positions count real tokens (spec §3.2).
    auto batch = torch::cat({torch::cat({torch::zeros({1, 2, H}), a}, 1), b}, 0);
    auto mask = torch::ones({2, 8}, torch::kInt64);
    mask[0][0] = 0;
    mask[0][1] = 0;
    auto pos = (mask.cumsum(1) - 1).clamp_min(0);
    KVCache cache = m->talker->make_cache(2, 10);
    auto out = m->talker->forward(batch, &cache, mask, pos);
    auto ra = m->talker->forward(a).logits, rb = m->talker->forward(b).logits;
    CHECK(max_abs_diff(out.logits[0].narrow(0, 2, 6), ra[0]) < 1e-5);
    CHECK(max_abs_diff(out.logits[1], rb[0]) < 1e-5);
    // One decode step continues each row's own count.
    auto step = torch::randn({2, 1, H});
    auto next_pos = torch::tensor({6, 8}, torch::kInt64).view({2, 1});
    auto o2 = m->talker->forward(step, &cache, torch::Tensor(), next_pos);
    auto fa = m->talker->forward(torch::cat({a, step.narrow(0, 0, 1)}, 1)).logits;
    auto fb = m->talker->forward(torch::cat({b, step.narrow(0, 1, 1)}, 1)).logits;
    CHECK(max_abs_diff(o2.logits[0][0], fa[0][6]) < 1e-5);
    CHECK(max_abs_diff(o2.logits[1][0], fb[0][8]) < 1e-5);
}

TEST_CASE("code predictor: the inference step matches the teacher-forced form", "[model][code_predictor]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    REQUIRE(m->talker->code_predictor->small_to_mtp_projection);  // tiny mirrors 1.7B
    int64_t H = m->config().talker.hidden_size;
    auto past = torch::randn({3, H});
    auto c0 = torch::tensor({5, 2047, 0}, torch::kInt64);
    KVCache cache = m->talker->code_predictor->make_cache(3);
    std::vector<torch::Tensor> seen;
    auto sampler = [&](const torch::Tensor& logits, int64_t g) {
        CHECK(logits.scalar_type() == torch::kFloat32);
        CHECK(logits.sizes() == torch::IntArrayRef({3, 2048}));
        CHECK(g == static_cast<int64_t>(seen.size()) + 1);
        seen.push_back(logits.clone());
        return greedy(logits, g);
    };
    auto codes = m->talker->predict_frame(past, c0, cache, sampler);
    REQUIRE(codes.sizes() == torch::IntArrayRef({3, 16}));
    REQUIRE(seen.size() == 15);
    CHECK(torch::equal(codes.select(1, 0), c0));
    auto tf = m->talker->code_predictor_logits(past, codes);
    for (int64_t k = 0; k < 15; ++k) {
        INFO("head " << k);
        CHECK(max_abs_diff(tf.select(1, k), seen[k]) < 1e-5);
        CHECK(torch::equal(tf.select(1, k).argmax(-1), codes.select(1, k + 1)));
    }
    // The same cache serves the next frame (reset inside).
    auto codes2 = m->talker->predict_frame(past, c0, cache, greedy);
    CHECK(torch::equal(codes, codes2));
}

TEST_CASE("embedding stages: text projection, codec rows, frame sums", "[model][talker]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    auto& t = m->talker;
    auto ids = torch::tensor({151644, 77091, 198, 151671}, torch::kInt64);
    auto te = t->text_embed(ids);
    auto raw = t->model->text_embedding->weight.index_select(0, ids);
    auto fc1 = t->text_projection->linear_fc1, fc2 = t->text_projection->linear_fc2;
    auto want = torch::matmul(torch::silu(torch::matmul(raw, fc1->weight.t()) + fc1->bias), fc2->weight.t()) + fc2->bias;
    CHECK(max_abs_diff(te, want) < 1e-6);
    CHECK(te.size(-1) == m->config().talker.hidden_size);

    auto frame = torch::randint(0, 2048, {2, 16}, torch::kInt64);
    auto f = t->frame_embed(frame);
    auto sum = t->model->codec_embedding->weight.index_select(0, frame.select(1, 0));
    for (int g = 1; g < 16; ++g)
        sum = sum + t->code_predictor->model->codec_embedding_list[g - 1]->weight.index_select(0, frame.select(1, g));
    CHECK(max_abs_diff(f, sum) < 1e-6);
    REQUIRE_THROWS_AS(t->frame_embed(frame.narrow(1, 0, 15)), InputError);
    REQUIRE_THROWS_AS(t->codec_embed(torch::tensor({3072}, torch::kInt64)), InputError);
    REQUIRE_THROWS_AS(t->text_embed(torch::tensor({-1}, torch::kInt64)), InputError);
}

TEST_CASE("bf16 modules run and stay close to fp32", "[model][talker]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model("voice_design");
    auto x = torch::randn({1, 5, m->config().talker.hidden_size});
    auto ref = m->talker->forward(x).logits;
    m->to(torch::kBFloat16);
    auto out = m->talker->forward(x.to(torch::kBFloat16)).logits;
    CHECK(out.scalar_type() == torch::kBFloat16);
    CHECK(torch::isfinite(out).all().item<bool>());
    CHECK(max_abs_diff(out, ref) < 0.1 * ref.abs().max().item<double>() + 0.05);
}
