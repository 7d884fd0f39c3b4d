// The vocoder's own CPU loops against the libtorch formulas they replace: SnakeBeta in one pass (also written into
// a window of a wider buffer), a causal conv that takes its activation on the way in, and the 7-tap convolutions
// as Winograd F(2,7).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "alexandria/codec/modules.h"
#include "alexandria/io/device.h"
#include "codec/cpu_kernels.h"

using namespace alexandria;
using namespace alexandria::codec;

namespace {

bool skip_without_cpu_kernels() {
    if (io::cpu_kernels_enabled()) return false;
    WARN("not run: no AVX2/FMA here (or ALEXANDRIA_NO_KERNELS is set): libtorch's form runs");
    return true;
}

// x + sin²(x·exp(α)) / (exp(β) + 1e-9), per channel, in float64.
torch::Tensor snake_reference(const torch::Tensor& x, const SnakeBeta& s) {
    auto xd = x.to(torch::kFloat64);
    auto a = torch::exp(s->alpha.to(torch::kFloat64)).view({1, -1, 1});
    auto inv_b = (1.0 / (torch::exp(s->beta.to(torch::kFloat64)) + 1e-9)).view({1, -1, 1});
    return xd + inv_b * torch::sin(xd * a).pow(2);
}

DecoderState fresh_state(int slots) {
    DecoderState st;
    st.history.resize(size_t(slots));
    return st;
}

// layer(x) over the time pieces {start, length}, on a fresh state carried from piece to piece, joined again.
template <typename Layer>
torch::Tensor in_pieces(Layer& layer, const torch::Tensor& x, int slots,
                        std::initializer_list<std::pair<int64_t, int64_t>> pieces) {
    DecoderState st = fresh_state(slots);
    std::vector<torch::Tensor> parts;
    for (auto [a, n] : pieces) parts.push_back(layer(x.narrow(-1, a, n), st));
    return torch::cat(parts, -1);
}

SnakeBeta random_snake(int64_t channels) {
    SnakeBeta s(channels, torch::TensorOptions().dtype(torch::kFloat32));
    torch::NoGradGuard ng;
    s->alpha.uniform_(-1.0, 2.0);  // exp(α) from 0.37 to 7.4
    s->beta.uniform_(-1.0, 1.0);
    return s;
}

// A random causal 7-tap convolution: the input with its left context, the weights (and their Winograd form) and
// the bias, drawn in that order.
struct Conv7Case {
    int64_t ci, co, d, len;
    torch::Tensor xin, w, bias, u;
    Conv7Case(int64_t ci_, int64_t co_, int64_t d_, int64_t len_) : ci(ci_), co(co_), d(d_), len(len_) {
        xin = torch::randn({ci, 6 * d + len});
        w = torch::randn({co, ci, 7}) / std::sqrt(7.0 * double(ci));
        bias = torch::randn({co});
        u = torch::empty({codec::cpu::winograd7_weights_size(co, ci)});
        codec::cpu::winograd7_transform_weights(w.data_ptr<float>(), co, ci, u.data_ptr<float>());
    }
    torch::Tensor winograd() const {
        auto y = torch::empty({co, len});
        codec::cpu::winograd7_conv(xin.data_ptr<float>(), ci, len, d, u.data_ptr<float>(), bias.data_ptr<float>(), co,
                                   y.data_ptr<float>());
        return y;
    }
    torch::Tensor direct_float64() const {
        return torch::conv1d(xin.to(torch::kFloat64).unsqueeze(0), w.to(torch::kFloat64), bias.to(torch::kFloat64),
                             at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{d})
            .squeeze(0);
    }
};

}  // namespace

TEST_CASE("SnakeBeta's one-pass loop equals the formula within fp32 rounding", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    torch::manual_seed(3);
    torch::NoGradGuard ng;
    auto s = random_snake(5);
    // lengths with and without an 8-sample tail; magnitudes up to where the argument reduction hands over to the
    // scalar sine (|x·a| > 1e5)
    for (int64_t len : {1, 8, 37, 1000}) {
        for (double scale : {0.01, 1.0, 30.0, 1e4, 1e6}) {
            INFO("len " << len << ", scale " << scale);
            auto x = torch::randn({2, 5, len}) * scale;
            REQUIRE(s->one_pass(x));
            auto got = s->forward(x);
            auto want = snake_reference(x, s);
            // the output's own rounding, plus the square of a sine within a few ulp
            auto err = (got.to(torch::kFloat64) - want).abs() / (want.abs() + x.to(torch::kFloat64).abs() + 1.0);
            CHECK(err.max().item<double>() < 4e-7);
        }
    }
}

TEST_CASE("SnakeBeta's loop keeps NaN and gives NaN for infinities, as the formula does", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    torch::NoGradGuard ng;
    auto s = random_snake(1);
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    auto x = torch::zeros({1, 1, 16});
    x[0][0][3] = nan;
    x[0][0][9] = inf;
    x[0][0][12] = -inf;
    auto y = s->forward(x);
    for (int64_t t = 0; t < 16; ++t) {
        INFO("t " << t);
        const bool special = t == 3 || t == 9 || t == 12;
        CHECK(std::isnan(y[0][0][t].item<float>()) == special);
    }
}

TEST_CASE("SnakeBeta into a window of a wider buffer leaves the rest alone", "[codec][kernels]") {
    torch::manual_seed(4);
    torch::NoGradGuard ng;
    auto s = random_snake(3);
    auto x = torch::randn({2, 3, 21});
    auto buf = torch::full({2, 3, 7 + 21}, 42.0f);
    s->forward_into(x, buf.narrow(-1, 7, 21));
    CHECK(torch::equal(buf.narrow(-1, 0, 7), torch::full({2, 3, 7}, 42.0f)));
    CHECK(torch::equal(buf.narrow(-1, 7, 21), s->forward(x)));
}

TEST_CASE("a causal conv taking its activation on the way in equals conv(act(x)) across calls", "[codec][kernels]") {
    torch::manual_seed(5);
    torch::NoGradGuard ng;
    auto o = torch::TensorOptions().dtype(torch::kFloat32);
    auto s = random_snake(4);
    int slots = 0;
    CausalConv conv(4, 6, 7, slots, o, /*dilation=*/3);
    conv->conv->weight.normal_(0.0, 0.2);
    conv->conv->bias.normal_(0.0, 0.1);
    DecoderState fused = fresh_state(slots), plain = fresh_state(slots);
    // calls shorter and longer than the 18-sample left context
    for (int64_t len : {5, 40, 11, 1}) {
        INFO("len " << len);
        auto x = torch::randn({1, 4, len});
        auto got = conv->forward_activated(*s, x, fused);
        auto want = conv(s(x), plain);
        REQUIRE(got.sizes() == want.sizes());
        CHECK(torch::equal(got, want));
        CHECK(torch::equal(fused.history[0], plain.history[0]));
    }
}

TEST_CASE("Winograd F(2,7) equals the direct 7-tap convolution within fp32 rounding", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    torch::manual_seed(6);
    torch::NoGradGuard ng;
    // output channels a multiple of 6, any input channels; lengths shorter than a pair block, odd, and long
    for (auto [ci, co] : {std::pair<int64_t, int64_t>{5, 6}, {16, 12}, {96, 96}, {40, 18}})
        for (int64_t d : {1, 3, 9})
            for (int64_t len : {1, 7, 18, 100, 1000}) {
                INFO("ci " << ci << ", co " << co << ", dilation " << d << ", len " << len);
                const Conv7Case c(ci, co, d, len);
                auto got = c.winograd();
                auto want = c.direct_float64();
                const double scale = want.abs().max().item<double>();
                // direct fp32 sums are within ~1e-7 of the scale here; F(2,7) within a few times that
                CHECK((got.to(torch::kFloat64) - want).abs().max().item<double>() < 2e-6 * scale);
            }
}

TEST_CASE("every form of the Winograd convolution gives the same bits, wide layers included", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    const bool have_avx512 = io::cpu_avx512_enabled();
    torch::manual_seed(12);
    torch::NoGradGuard ng;
    struct Reset {
        ~Reset() {
            io::allow_avx512(true);
            codec::cpu::use_winograd_layout(codec::cpu::WinogradLayout::by_size);
        }
    } reset;
    // 576 × 384: weights of 7 MB at the 8 points, past any core's cache, so the size picks the row-block order
    for (auto [ci, co] : {std::pair<int64_t, int64_t>{384, 576}, {24, 30}})
        for (int64_t d : {1, 9})
            for (int64_t len : {7, 100, 700}) {
                INFO("ci " << ci << ", co " << co << ", dilation " << d << ", len " << len);
                const Conv7Case c(ci, co, d, len);
                using L = codec::cpu::WinogradLayout;
                io::allow_avx512(true);
                codec::cpu::use_winograd_layout(L::by_size);
                auto first = c.winograd();
                auto want = c.direct_float64();
                // the rounding error grows as the root of the terms summed: 2e-6 of the scale for 96 channels
                const double bound = 3e-6 * std::sqrt(std::max(1.0, double(ci) / 96.0));
                CHECK((first.to(torch::kFloat64) - want).abs().max().item<double>() < bound * want.abs().max().item<double>());
                for (bool wide : {true, false})
                    for (L layout : {L::groups, L::rows}) {
                        io::allow_avx512(wide);
                        codec::cpu::use_winograd_layout(layout);
                        INFO("512-bit " << wide << ", layout " << int(layout));
                        CHECK(torch::equal(c.winograd(), first));
                    }
            }
    if (!have_avx512) WARN("no AVX-512 here: only the AVX2 products were compared");
}

TEST_CASE("the product's 512-bit and AVX2 forms give the same bits (transposed conv, linear)", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    if (!io::cpu_avx512_enabled()) {
        WARN("not run: no AVX-512 here");
        return;
    }
    torch::manual_seed(13);
    torch::NoGradGuard ng;
    struct Reset {
        ~Reset() { io::allow_avx512(true); }
    } reset;
    const int64_t s = 8, ci = 300, co = 96, len = 83;
    auto xin = torch::randn({ci, 1 + len});
    auto w = torch::randn({ci, co, 2 * s}) / std::sqrt(2.0 * double(ci));
    auto bias = torch::randn({co});
    auto u = torch::empty({codec::cpu::transposed_weights_size(co, ci, s)});
    codec::cpu::transform_transposed_weights(w.data_ptr<float>(), co, ci, s, u.data_ptr<float>());
    const int64_t rows = 37, k = 640, n = 130;
    auto x = torch::randn({rows, k});
    auto lw = torch::randn({n, k}) / std::sqrt(double(k));
    auto lu = torch::empty({codec::cpu::linear_weights_size(n, k)});
    codec::cpu::transform_linear_weights(lw.data_ptr<float>(), n, k, lu.data_ptr<float>());
    auto run = [&](bool wide) {
        io::allow_avx512(wide);
        auto y = torch::empty({co, len * s});
        codec::cpu::transposed_conv(xin.data_ptr<float>(), ci, len, s, u.data_ptr<float>(), bias.data_ptr<float>(), co,
                                    y.data_ptr<float>());
        auto z = torch::empty({rows, n});
        codec::cpu::linear(x.data_ptr<float>(), rows, k, lu.data_ptr<float>(), nullptr, n, z.data_ptr<float>());
        return std::make_pair(y, z);
    };
    auto [y512, z512] = run(true);
    auto [y256, z256] = run(false);
    CHECK(torch::equal(y512, y256));
    CHECK(torch::equal(z512, z256));
}

TEST_CASE("a 7-tap causal conv streams through Winograd and follows a change of its weights", "[codec][kernels]") {
    torch::manual_seed(7);
    torch::NoGradGuard ng;
    auto o = torch::TensorOptions().dtype(torch::kFloat32);
    int slots = 0;
    CausalConv conv(8, 12, 7, slots, o, /*dilation=*/3);
    conv->conv->weight.normal_(0.0, 0.2);
    conv->conv->bias.normal_(0.0, 0.1);
    auto x = torch::randn({2, 8, 61});
    auto direct = [&](const torch::Tensor& in) {
        return torch::conv1d(torch::constant_pad_nd(in, {18, 0}), conv->conv->weight, conv->conv->bias, at::IntArrayRef{1},
                             at::IntArrayRef{0}, at::IntArrayRef{3});
    };
    auto whole = in_pieces(conv, x, slots, {{0, 61}});
    CHECK((whole - direct(x)).abs().max().item<double>() < 1e-5);
    // in pieces, the left context carried between calls
    CHECK((in_pieces(conv, x, slots, {{0, 5}, {5, 30}, {35, 1}, {36, 25}}) - whole).abs().max().item<double>() < 1e-5);
    // new weights, in place: the transformed copy is made again
    conv->conv->weight.mul_(-2.0);
    CHECK((in_pieces(conv, x, slots, {{0, 61}}) - direct(x)).abs().max().item<double>() < 2e-5);
}

TEST_CASE("the upsampling transposed conv as one product equals libtorch's within fp32 rounding", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    torch::manual_seed(8);
    torch::NoGradGuard ng;
    // the vocoder's strides; stride × output channels a multiple of 6; lengths below, at and past a panel of 16
    for (auto [s, ci, co] : {std::tuple<int64_t, int64_t, int64_t>{8, 12, 3}, {5, 20, 6}, {4, 7, 3}, {3, 16, 2}})
        for (int64_t len : {1, 15, 16, 17, 100}) {
            INFO("stride " << s << ", ci " << ci << ", co " << co << ", len " << len);
            auto xin = torch::randn({ci, 1 + len});
            auto w = torch::randn({ci, co, 2 * s}) / std::sqrt(2.0 * double(ci));
            auto bias = torch::randn({co});
            auto u = torch::empty({codec::cpu::transposed_weights_size(co, ci, s)});
            codec::cpu::transform_transposed_weights(w.data_ptr<float>(), co, ci, s, u.data_ptr<float>());
            auto got = torch::empty({co, len * s});
            codec::cpu::transposed_conv(xin.data_ptr<float>(), ci, len, s, u.data_ptr<float>(), bias.data_ptr<float>(),
                                        co, got.data_ptr<float>());
            auto want = torch::conv_transpose1d(xin.to(torch::kFloat64).unsqueeze(0), w.to(torch::kFloat64),
                                                bias.to(torch::kFloat64), {s}, {0})
                            .squeeze(0)
                            .narrow(-1, s, len * s);
            CHECK((got.to(torch::kFloat64) - want).abs().max().item<double>() < 1e-6 * want.abs().max().item<double>());
        }
}

TEST_CASE("a causal transposed conv streams through the product and follows a change of its weights", "[codec][kernels]") {
    torch::manual_seed(9);
    torch::NoGradGuard ng;
    auto o = torch::TensorOptions().dtype(torch::kFloat32);
    int slots = 0;
    CausalTransConv up(10, 6, 10, 5, slots, o);
    up->conv->weight.normal_(0.0, 0.2);
    up->conv->bias.normal_(0.0, 0.1);
    auto x = torch::randn({2, 10, 23});
    auto reference = [&](const torch::Tensor& in) {
        auto padded = torch::constant_pad_nd(in, {1, 0});
        return torch::conv_transpose1d(padded, up->conv->weight, up->conv->bias, {5}, {0}).narrow(-1, 5, 23 * 5);
    };
    auto whole = in_pieces(up, x, slots, {{0, 23}});
    CHECK((whole - reference(x)).abs().max().item<double>() < 1e-5);
    CHECK((in_pieces(up, x, slots, {{0, 1}, {1, 17}, {18, 5}}) - whole).abs().max().item<double>() < 1e-5);
    up->conv->weight.mul_(3.0);
    CHECK((in_pieces(up, x, slots, {{0, 23}}) - reference(x)).abs().max().item<double>() < 3e-5);
}

TEST_CASE("the linear product equals libtorch's within fp32 rounding, any number of outputs", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    torch::manual_seed(10);
    torch::NoGradGuard ng;
    for (auto [k, n] : {std::pair<int64_t, int64_t>{5, 6}, {64, 10}, {512, 1024}, {33, 1}})
        for (int64_t rows : {1, 12, 16, 17, 48}) {
            INFO("k " << k << ", n " << n << ", rows " << rows);
            auto x = torch::randn({rows, k});
            auto w = torch::randn({n, k}) / std::sqrt(double(k));
            auto bias = torch::randn({n});
            auto u = torch::empty({codec::cpu::linear_weights_size(n, k)});
            codec::cpu::transform_linear_weights(w.data_ptr<float>(), n, k, u.data_ptr<float>());
            auto got = torch::full({rows, n}, 7.0f);
            codec::cpu::linear(x.data_ptr<float>(), rows, k, u.data_ptr<float>(), bias.data_ptr<float>(), n,
                               got.data_ptr<float>());
            auto want = torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64), bias.to(torch::kFloat64));
            CHECK((got.to(torch::kFloat64) - want).abs().max().item<double>() < 1e-6 * want.abs().max().item<double>());
        }
}

TEST_CASE("a prepared linear layer uses the product, and libtorch again once its weights change", "[codec][kernels]") {
    if (skip_without_cpu_kernels()) return;
    torch::manual_seed(11);
    torch::NoGradGuard ng;
    LinearLayer lin(40, 1024, true, torch::TensorOptions().dtype(torch::kFloat32));
    lin->weight.normal_(0.0, 0.15);
    lin->bias.normal_(0.0, 0.1);
    auto x = torch::randn({2, 12, 40});
    auto plain = lin(x);  // not prepared: libtorch
    CHECK(torch::equal(plain, torch::linear(x, lin->weight, lin->bias)));
    REQUIRE(lin->kernel_applies(torch::kCPU, torch::kFloat32));
    lin->prepare_kernel();
    auto fast = lin(x);
    REQUIRE(fast.sizes() == plain.sizes());
    CHECK((fast - plain).abs().max().item<double>() < 1e-5);
    lin->weight.mul_(0.5);
    CHECK(torch::equal(lin(x), torch::linear(x, lin->weight, lin->bias)));
}
