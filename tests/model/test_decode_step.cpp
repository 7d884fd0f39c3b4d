// The CPU decoding step's loops (decode_step.h) against the same maths in libtorch operations, and their promises:
// keys land in the cache after RoPE, each new position attends causally over its own row's keys only, and a row's
// values do not depend on the rows beside it or on the thread count.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>
#include <cmath>

#include "alexandria/model/decode_step.h"
#include "model_test_util.h"

using namespace alexandria::model;
using alexandria::test::max_abs_diff;

namespace {

torch::Tensor rms(const torch::Tensor& x, const torch::Tensor& w, double eps) {
    return w * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
}

// x [..., D], cos/sin [D]
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
    const int64_t half = x.size(-1) / 2;
    auto rotated = torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
    return x * cos + rotated * sin;
}

struct Case {
    int64_t heads, kv_heads, D, T, capacity;
    std::vector<int64_t> starts;
};

}  // namespace

TEST_CASE("decode step: attention over a row-ragged cache equals the libtorch formula", "[model][decode]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::manual_seed(11);
    const double eps = 1e-6;
    // D = 10 takes the dot product's and the value sum's scalar tails; 128 the full-width loops (0.6B/1.7B heads).
    for (const Case& c : {Case{4, 2, 10, 1, 20, {0, 5, 11}}, Case{4, 2, 10, 2, 20, {3, 0, 17}},
                          Case{16, 8, 128, 1, 40, {33, 7}}, Case{6, 6, 64, 3, 12, {0, 9}}}) {
        const int64_t B = static_cast<int64_t>(c.starts.size()), D = c.D, G = c.heads / c.kv_heads;
        INFO("heads " << c.heads << " kv " << c.kv_heads << " D " << D << " T " << c.T);
        auto q = torch::randn({B, c.T, c.heads * D}), k = torch::randn({B, c.T, c.kv_heads * D});
        auto v = torch::randn({B, c.T, c.kv_heads * D});
        auto qn = torch::rand({D}) + 0.5, kn = torch::rand({D}) + 0.5;
        auto cos = torch::rand({B, c.T, D}) * 2 - 1, sin = torch::rand({B, c.T, D}) * 2 - 1;
        auto ck = torch::randn({B + 1, c.kv_heads, c.capacity, D}), cv = torch::randn({B + 1, c.kv_heads, c.capacity, D});
        auto ck0 = ck.clone(), cv0 = cv.clone();
        auto out = decode::attention(q, k, v, qn, kn, eps, cos, sin, ck, cv, c.starts, c.heads, c.kv_heads);
        REQUIRE(out.sizes() == torch::IntArrayRef({B, c.T, c.heads * D}));

        const double scale = 1.0 / std::sqrt(double(D));
        for (int64_t b = 0; b < B; ++b) {
            const int64_t s0 = c.starts[size_t(b)];
            for (int64_t h = 0; h < c.kv_heads; ++h) {
                // The new keys after norm and RoPE, the values as given; the cache around them untouched.
                for (int64_t t = 0; t < c.T; ++t) {
                    auto kt = rope(rms(k[b][t].narrow(0, h * D, D), kn, eps), cos[b][t], sin[b][t]);
                    CHECK(max_abs_diff(ck[b][h][s0 + t], kt) < 1e-5);
                    CHECK(torch::equal(cv[b][h][s0 + t], v[b][t].narrow(0, h * D, D)));
                }
                CHECK(torch::equal(ck[b][h].narrow(0, 0, s0), ck0[b][h].narrow(0, 0, s0)));
                const int64_t end = s0 + c.T;
                CHECK(torch::equal(ck[b][h].narrow(0, end, c.capacity - end), ck0[b][h].narrow(0, end, c.capacity - end)));
            }
            for (int64_t t = 0; t < c.T; ++t)
                for (int64_t hq = 0; hq < c.heads; ++hq) {
                    const int64_t h = hq / G, S = s0 + t + 1;
                    auto qt = rope(rms(q[b][t].narrow(0, hq * D, D), qn, eps), cos[b][t], sin[b][t]);
                    auto keys = ck[b][h].narrow(0, 0, S), vals = cv[b][h].narrow(0, 0, S);
                    auto want = torch::matmul(torch::softmax(torch::matmul(keys, qt) * scale, 0), vals);
                    CHECK(max_abs_diff(out[b][t].narrow(0, hq * D, D), want) < 1e-5);
                }
        }
        CHECK(torch::equal(ck[B], ck0[B]));  // a row beyond the batch is never written
        CHECK(torch::equal(cv[B], cv0[B]));

        // Row by row, on one thread and on two: the same bits.
        for (int threads : {1, 2}) {
            const int saved = at::get_num_threads();
            at::set_num_threads(threads);
            for (int64_t b = 0; b < B; ++b) {
                auto ck1 = ck0.narrow(0, b, 1).clone(), cv1 = cv0.narrow(0, b, 1).clone();
                auto o1 = decode::attention(q.narrow(0, b, 1).contiguous(), k.narrow(0, b, 1).contiguous(),
                                            v.narrow(0, b, 1).contiguous(), qn, kn, eps, cos.narrow(0, b, 1),
                                            sin.narrow(0, b, 1), ck1, cv1, {c.starts[size_t(b)]}, c.heads, c.kv_heads);
                CHECK(torch::equal(o1[0], out[b]));
                CHECK(torch::equal(ck1[0], ck[b]));
            }
            at::set_num_threads(saved);
        }
    }
    // Positions beyond the capacity are refused before anything is written.
    auto ck = torch::zeros({1, 1, 4, 8}), cv = torch::zeros({1, 1, 4, 8});
    auto x = torch::randn({1, 1, 8});
    auto one = torch::ones({8});
    REQUIRE_THROWS(decode::attention(x, x, x, one, one, 1e-6, torch::ones({1, 1, 8}), torch::zeros({1, 1, 8}), ck, cv,
                                     {4}, 1, 1));
    CHECK(torch::equal(ck, torch::zeros({1, 1, 4, 8})));
}

TEST_CASE("decode step: the norms and the gated activation equal libtorch's", "[model][decode]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::manual_seed(12);
    for (int64_t H : {7, 64, 1030}) {
        INFO("H " << H);
        auto x = torch::randn({3, 2, H}) * 3, a = torch::randn({3, 2, H});
        auto w = torch::rand({H}) + 0.5;
        CHECK(max_abs_diff(decode::rms_norm(x, w, 1e-6), rms(x, w, 1e-6)) < 1e-5);
        CHECK(max_abs_diff(decode::rms_norm(x, w.to(torch::kBFloat16), 1e-6), rms(x, w.to(torch::kBFloat16).to(torch::kFloat32), 1e-6)) < 1e-5);
        auto h = x.clone();
        auto hn = decode::add_rms_norm(h, a, w, 1e-6);
        CHECK(torch::equal(h, x + a));
        CHECK(max_abs_diff(hn, rms(x + a, w, 1e-6)) < 1e-5);
        auto g = torch::randn({3, H}) * 6, u = torch::randn({3, H});
        auto want = torch::silu(g) * u;
        CHECK(max_abs_diff(decode::silu_mul(g.clone(), u), want) < 1e-5);
    }
    // Extremes of the gate saturate as silu does: x for large x, -0 for very negative x, never NaN.
    auto g = torch::tensor({-200.0f, -90.0f, -30.0f, 0.0f, 30.0f, 90.0f, 200.0f, 1e30f}), u = torch::ones({8});
    auto got = decode::silu_mul(g.clone(), u);
    CHECK(!torch::isnan(got).any().item<bool>());
    CHECK(got[7].item<float>() == 1e30f);
    CHECK(max_abs_diff(got.narrow(0, 0, 7), torch::silu(g).narrow(0, 0, 7)) < 1e-4);
}
