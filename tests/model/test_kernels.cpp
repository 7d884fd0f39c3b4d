// The decoding kernel (kernels.h) against libtorch's own product, and its promises: a row's result does not depend
// on the other rows beside it nor on the number of threads.
#include <catch2/catch.hpp>

#include <ATen/Parallel.h>

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
    if (!small_linear_supported()) {
        WARN("not run: no AVX2/FMA here (or ALEXANDRIA_NO_KERNELS is set)");
        return;
    }
    torch::manual_seed(3);
    // K not a multiple of 8 and N not a multiple of 4 take the tails; N·K ≥ 65536 splits the rows into chunks.
    for (int64_t K : {8, 13, 300}) {
        for (int64_t N : {5, 258}) {
            auto w = torch::randn({N, K});
            auto b = torch::randn({N});
            for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
                auto wd = w.to(dtype);
                for (int64_t M : {1, 3, 16}) {
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
    if (!small_linear_supported()) {
        WARN("not run: no AVX2/FMA here (or ALEXANDRIA_NO_KERNELS is set)");
        return;
    }
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
    if (!small_linear_supported()) {
        WARN("not run: no AVX2/FMA here (or ALEXANDRIA_NO_KERNELS is set)");
        return;
    }
    auto w = torch::randn({8, 16});
    CHECK_THROWS_WITH(small_linear(torch::randn({1, 15}), w, {}), Catch::Contains("width 15"));
    CHECK_THROWS_WITH(small_linear(torch::randn({kSmallLinearMaxRows + 1, 16}), w, {}), Catch::Contains("rows"));
    CHECK_THROWS_WITH(small_linear(torch::randn({1, 16}), w.t().contiguous().t(), {}), Catch::Contains("contiguous"));
}
