// The decoding kernel (kernels.h) against libtorch's own product, and its promises: a row's result does not depend
// on the other rows beside it nor on the number of threads.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

#include "alexandria/io/device.h"
#include "alexandria/model/kernels.h"
#include "model_test_util.h"

using namespace alexandria::model;
using alexandria::test::max_abs_diff;

namespace {

// Restores libtorch's thread count when a test changes it.
struct Threads {
    int saved = at::get_num_threads();
    explicit Threads(int n) { at::set_num_threads(n); }
    ~Threads() { at::set_num_threads(saved); }
};

}  // namespace

TEST_CASE("small_linear equals libtorch's linear for fp32 and bf16 weights", "[model][kernels]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::manual_seed(3);
    // K not a multiple of 8 and N not a multiple of 4 take the tails; N·K ≥ 65536 splits the rows into chunks.
    for (int64_t K : {8, 13, 300}) {
        for (int64_t N : {5, 258}) {
            auto w = torch::randn({N, K});
            auto b = torch::randn({N});
            for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
                auto wd = w.to(dtype);
                for (int64_t M : {int64_t(1), int64_t(3), int64_t(16), kSmallLinearRowsPerPass + 5}) {
                    auto x = torch::randn({M, K});
                    auto want = torch::nn::functional::linear(x, wd.to(torch::kFloat32), b);
                    auto got = small_linear(x, wd, b);
                    INFO("K " << K << " N " << N << " M " << M << " bf16 " << (dtype == torch::kBFloat16));
                    REQUIRE(got.sizes() == want.sizes());
                    CHECK(max_abs_diff(got, want) < 1e-4 * std::sqrt(double(K)));
                }
            }
        }
    }
}

TEST_CASE("small_linear: a row's values do not depend on its neighbours or the thread count", "[model][kernels]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::manual_seed(4);
    const int64_t N = 1030, K = 200;  // 51 chunks' worth of work: several per thread
    auto w = torch::randn({N, K}).to(torch::kBFloat16);
    auto x = torch::randn({16, K});
    torch::Tensor alone, batch1, batch2;
    {
        Threads t(1);
        alone = small_linear(x.narrow(0, 5, 1), w, {});
        batch1 = small_linear(x, w, {});
    }
    {
        Threads t(2);
        batch2 = small_linear(x, w, {});
        CHECK(torch::equal(small_linear(x.narrow(0, 5, 1), w, {}), alone));
    }
    CHECK(torch::equal(batch1, batch2));
    CHECK(torch::equal(batch1.narrow(0, 5, 1), alone));
}

TEST_CASE("small_linear refuses what it cannot do", "[model][kernels]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    auto w = torch::randn({8, 16});
    CHECK_THROWS_WITH(small_linear(torch::randn({1, 15}), w, {}), Catch::Contains("width 15"));
    CHECK_THROWS_WITH(small_linear(torch::randn({1, 16}), w.t().contiguous().t(), {}), Catch::Contains("contiguous"));
}

TEST_CASE("packed_linear: the inference layout gives libtorch's product, row by row alike", "[model][kernels]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::manual_seed(5);
    // K odd and K below one cache line of a block take the tails; 4128 rows x 300 splits into chunks.
    for (int64_t K : {7, 300}) {
        for (int64_t N : {16, 48, 4128}) {
            auto w = torch::randn({N, K});
            auto b = torch::randn({N});
            for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
                auto wd = w.to(dtype);
                REQUIRE(packable(wd));
                auto packed = pack_weight(wd);
                CHECK(torch::equal(unpack_weight(packed), wd));
                CHECK_FALSE(torch::equal(packed, wd));
                auto x = torch::randn({kSmallLinearRowsPerPass + 9, K});
                auto want = torch::nn::functional::linear(x, wd.to(torch::kFloat32), b);
                auto all = packed_linear(x, packed, b);
                INFO("K " << K << " N " << N << " bf16 " << (dtype == torch::kBFloat16));
                CHECK(max_abs_diff(all, want) < 1e-4 * std::sqrt(double(K)));
                // Every row count takes its own tile shapes; each row's values stay those it gets alone.
                for (int64_t M : {1, 2, 3, 5, 8, 16}) {
                    auto got = packed_linear(x.narrow(0, 0, M), packed, b);
                    CHECK(torch::equal(got, all.narrow(0, 0, M)));
                }
                Threads t(1);
                CHECK(torch::equal(packed_linear(x, packed, b), all));
            }
        }
    }
    CHECK_FALSE(packable(torch::randn({24, 8})));
    CHECK_THROWS_WITH(pack_weight(torch::randn({24, 8})), Catch::Contains("multiple of 16"));
    CHECK_THROWS_WITH(packed_linear(torch::randn({2, 9}), pack_weight(torch::randn({16, 8})), {}), Catch::Contains("width 9"));
}

TEST_CASE("int8 weights: per-row scales, products as the dequantized weight gives, rows alike", "[model][kernels]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::manual_seed(6);
    const int64_t N = 64, K = 300;
    auto w = torch::randn({N, K}) * torch::linspace(0.01, 3.0, N).unsqueeze(1);  // rows of different ranges
    w[7].zero_();                                                                // an all-zero row
    auto b = torch::randn({N});
    auto q = quantize_weight(w.to(torch::kBFloat16));
    REQUIRE(q.q.scalar_type() == torch::kChar);
    REQUIRE(q.scale.sizes() == torch::IntArrayRef({N}));
    auto wb = w.to(torch::kBFloat16).to(torch::kFloat32);
    auto absmax = std::get<0>(wb.abs().max(1));
    CHECK(max_abs_diff(q.scale.narrow(0, 8, N - 8), absmax.narrow(0, 8, N - 8) / 127) < 1e-7);
    CHECK(q.scale[7].item<float>() == 1.0f);
    // The dequantized weight: within half a step of every weight.
    auto ints = unpack_weight(q.q.view({N, K})).to(torch::kFloat32);  // rows in order: unpacking reads them back
    auto deq = ints * q.scale.unsqueeze(1);
    CHECK(((deq - wb).abs() <= q.scale.unsqueeze(1) * 0.5001).all().item<bool>());
    auto x = torch::randn({11, K});
    auto got = int8_linear(x, q, b);
    CHECK(max_abs_diff(got, torch::nn::functional::linear(x, deq, b)) < 1e-4 * std::sqrt(double(K)));
    for (int64_t M : {1, 2, 4, 8}) CHECK(torch::equal(int8_linear(x.narrow(0, 0, M), q, b), got.narrow(0, 0, M)));
    CHECK_THROWS_WITH(int8_linear(x, Int8Weight{pack_weight(w), q.scale}, b), Catch::Contains("not a quantized"));
}

TEST_CASE("the 512-bit tiles give the AVX2 tiles' bits: fp32, bf16 and int8 weights, any rows", "[model][kernels]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    if (!alexandria::io::cpu_avx512_enabled()) {
        WARN("not run: no AVX-512 here");
        return;
    }
    struct Reset {
        ~Reset() { alexandria::io::allow_avx512(true); }
    } reset;
    torch::manual_seed(7);
    // 5 and 7 blocks: the two-block and four-block tiles' odd tails; K odd takes the tail steps
    for (int64_t N : {80, 112})
        for (int64_t K : {67, 512}) {
            auto w = torch::randn({N, K});
            auto b = torch::randn({N});
            auto x = torch::randn({kSmallLinearRowsPerPass + 3, K});
            auto q = quantize_weight(w.to(torch::kBFloat16));
            for (int64_t M : {int64_t(1), int64_t(2), int64_t(3), int64_t(5), int64_t(6), int64_t(7), int64_t(8), int64_t(13), int64_t(16), kSmallLinearRowsPerPass + 3}) {
                INFO("N " << N << " K " << K << " rows " << M);
                auto xm = x.narrow(0, 0, M);
                auto run = [&](bool wide) {
                    alexandria::io::allow_avx512(wide);
                    return std::vector<torch::Tensor>{packed_linear(xm, pack_weight(w), b),
                                                      packed_linear(xm, pack_weight(w.to(torch::kBFloat16)), b),
                                                      int8_linear(xm, q, b)};
                };
                auto wide = run(true), narrow = run(false);
                for (size_t i = 0; i < wide.size(); ++i) CHECK(torch::equal(wide[i], narrow[i]));
            }
        }
}
