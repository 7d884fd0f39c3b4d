// Behaviour of encode/decode on the tiny random codec: lengths, chunking, streaming, causality, real clips,
// bad input.
#include <catch2/catch.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "codec_test_util.h"

using namespace alexandria;
using namespace alexandria::codec;
namespace fs = std::filesystem;
using codec_test::max_abs_diff;
using codec_test::random_codes;
using codec_test::test_signal;
using codec_test::tiny;

namespace {
constexpr double kTol = 1e-5;  // same maths on differently sized matrices: float rounding only
}

TEST_CASE("encoder frame counts: ceil(n / 1920)", "[codec][encode]") {
    const std::pair<int64_t, int64_t> cases[] = {{1, 1}, {1919, 1}, {1920, 1}, {1921, 2}, {48000, 25}, {3841, 3}};
    for (auto [n, frames] : cases) {
        INFO("samples " << n);
        CHECK(frames_for_samples(n) == frames);
        auto codes = tiny().encode(test_signal(n));
        REQUIRE(codes.dim() == 2);
        CHECK(codes.size(0) == frames);
        CHECK(codes.size(1) == 16);
        CHECK(codes.scalar_type() == torch::kLong);
        CHECK(codes.min().item<int64_t>() >= 0);
        CHECK(codes.max().item<int64_t>() < 2048);
    }
    CHECK(frames_for_samples(0) == 0);
    CHECK_THROWS_AS(tiny().encode({}), InputError);
}

TEST_CASE("encoder codes are not constant and depend on the audio", "[codec][encode]") {
    auto a = tiny().encode(test_signal(24000, 1));
    auto b = tiny().encode(test_signal(24000, 2));
    // Several distinct ids per codebook over 13 frames, and different audio gives different codes.
    CHECK(std::get<0>(torch::_unique(a.select(1, 0))).numel() > 1);
    CHECK(!torch::equal(a, b));
}

TEST_CASE("encoder is causal: appending audio keeps the codes of complete frames", "[codec][encode][causal]") {
    auto full = test_signal(1920 * 14 + 700);
    auto full_codes = tiny().encode(full);
    for (int64_t n : {1920 * 5, 1920 * 9 + 300, 1920 * 12 + 1919}) {
        INFO("prefix " << n);
        std::vector<float> prefix(full.begin(), full.begin() + n);
        auto codes = tiny().encode(prefix);
        const int64_t complete = n / 1920;  // frames whose 1920 samples are all present
        auto same = codes.narrow(0, 0, complete).eq(full_codes.narrow(0, 0, complete));
        // Exact except for a rare argmin near-tie under different float accumulation (spec §8.9).
        CHECK(same.to(torch::kFloat32).mean().item<float>() >= 0.99f);
    }
}

TEST_CASE("decode gives 1920 samples per frame, finite and within [-1, 1]", "[codec][decode]") {
    for (int64_t t : {0, 1, 2, 17, 80}) {
        INFO("frames " << t);
        auto wav = tiny().decode(random_codes(t, uint64_t(t) + 1));
        CHECK(int64_t(wav.size()) == t * 1920);
        for (float x : wav) {
            REQUIRE(std::isfinite(x));
            REQUIRE(std::fabs(x) <= 1.0f);
        }
    }
    auto wav = tiny().decode(random_codes(10, 3));
    double energy = 0;
    for (float x : wav) energy += double(x) * x;
    CHECK(energy > 0);  // random weights still make sound
}

TEST_CASE("decoder is causal: early samples do not change when frames are appended", "[codec][decode][causal]") {
    auto codes = random_codes(120, 11);
    auto full = tiny().decode(codes);
    for (int64_t k : {1, 30, 73, 119}) {
        INFO("prefix frames " << k);
        auto part = tiny().decode(codes.narrow(0, 0, k));
        REQUIRE(int64_t(part.size()) == k * 1920);
        CHECK(max_abs_diff(part, full) <= kTol);
    }
    // A change at frame 50 leaves every earlier sample alone and changes later ones.
    auto edited = codes.clone();
    edited[50].fill_(7);
    auto other = tiny().decode(edited);
    CHECK(max_abs_diff(other, full, 0, 50 * 1920) == 0.0);
    CHECK(max_abs_diff(other, full, 50 * 1920) > 1e-4);
}

TEST_CASE("chunked decode beyond 300 frames follows the reference's 300/25 rule", "[codec][decode][chunk]") {
    auto codes = random_codes(620, 21);
    auto wav = tiny().decode(codes);
    REQUIRE(wav.size() == 620u * 1920);
    auto c = codes.transpose(0, 1).unsqueeze(0);  // [1, 16, T]
    auto flat = [](const torch::Tensor& w) {
        auto v = w.reshape({-1}).contiguous();
        return std::vector<float>(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
    };
    // Chunk k decodes frames [300k − 25, min(300k + 300, T)) on its own and drops the 25 context frames.
    auto first = flat(tiny().decode_unchunked(c.narrow(2, 0, 300)));
    auto second = flat(tiny().decode_unchunked(c.narrow(2, 275, 325)));
    auto third = flat(tiny().decode_unchunked(c.narrow(2, 575, 45)));
    std::vector<float> expected = first;
    expected.insert(expected.end(), second.begin() + 25 * 1920, second.end());
    expected.insert(expected.end(), third.begin() + 25 * 1920, third.end());
    REQUIRE(expected.size() == wav.size());
    CHECK(max_abs_diff(wav, expected) <= kTol);
    // The chunking matters: one long forward agrees up to frame 300 and differs after it.
    auto whole = flat(tiny().decode_unchunked(c));
    CHECK(max_abs_diff(wav, whole, 0, 300 * 1920) <= kTol);
    CHECK(max_abs_diff(wav, whole, 300 * 1920) > 1e-4);
}

TEST_CASE("incremental decode equals one-shot decode", "[codec][decode][stream]") {
    auto codes = random_codes(640, 31);
    auto oneshot = tiny().decode(codes);
    IncrementalDecoder stream(tiny());
    std::vector<float> got;
    // Irregular pieces, single frames around the chunk boundaries at 300 and 600, and an empty push.
    const int64_t pieces[] = {1, 7, 64, 0, 200, 27, 1, 1, 1, 50, 240, 8, 1, 1, 38};
    int64_t at = 0;
    for (int64_t n : pieces) {
        auto part = stream.push(codes.narrow(0, at, n));
        CHECK(int64_t(part.size()) == n * 1920);  // final at once
        got.insert(got.end(), part.begin(), part.end());
        at += n;
    }
    REQUIRE(at == 640);
    CHECK(stream.frames_decoded() == 640);
    REQUIRE(got.size() == oneshot.size());
    CHECK(max_abs_diff(got, oneshot) <= kTol);

    // Frame by frame, after a reset, across the first chunk boundary.
    stream.reset();
    std::vector<float> one_by_one;
    for (int64_t t = 0; t < 330; ++t) {
        auto part = stream.push(codes[t]);
        one_by_one.insert(one_by_one.end(), part.begin(), part.end());
    }
    CHECK(max_abs_diff(one_by_one, oneshot, 0, 330 * 1920) <= kTol);
    CHECK_THROWS_AS(stream.push(torch::full({1, 16}, -1, torch::kLong)), InputError);
}

TEST_CASE("decoder attention sees exactly 72 keys; encoder attention is unbounded causal", "[codec][attention]") {
    const int64_t t = 200;
    // Equal scores, one-hot values: each output row is the uniform average over the visible keys.
    auto q = torch::zeros({1, 1, t, t});
    auto v = torch::eye(t).view({1, 1, t, t});
    auto windowed = causal_attention(q, q, v, 0, 72, 1.0)[0][0];
    auto visible = windowed.gt(0).sum(1);
    CHECK(visible[0].item<int64_t>() == 1);
    CHECK(visible[71].item<int64_t>() == 72);
    CHECK(visible[150].item<int64_t>() == 72);
    // Query 150 sees keys 79..150 (150 − 72 < j ≤ 150): 78 is out, 79 is in, 151 is in the future.
    CHECK(windowed[150][78].item<float>() == 0.0f);
    CHECK(windowed[150][79].item<float>() > 0.0f);
    CHECK(windowed[150][150].item<float>() > 0.0f);
    CHECK(windowed[150][151].item<float>() == 0.0f);
    auto full = causal_attention(q, q, v, 0, 0, 1.0)[0][0];
    CHECK(full.gt(0).sum(1)[150].item<int64_t>() == 151);
    // Streaming layout: 10 queries after 71 cached keys see all of them (the first query) or 71 + itself.
    auto q2 = torch::zeros({1, 1, 10, t});
    auto k2 = torch::zeros({1, 1, 81, t});
    auto v2 = torch::eye(81).view({1, 1, 81, 81});
    auto s = causal_attention(q2, k2, v2, 71, 72, 1.0)[0][0];
    CHECK(s.gt(0).sum(1)[0].item<int64_t>() == 72);
    CHECK(s.gt(0).sum(1)[9].item<int64_t>() == 72);
}

TEST_CASE("-1 padding: trailing rows give no samples, batches equal single decodes", "[codec][decode][padding]") {
    auto codes = random_codes(12, 41);
    auto plain = tiny().decode(codes);
    auto padded = torch::cat({codes, torch::full({3, 16}, -1, torch::kLong)}, 0);
    auto got = tiny().decode(padded);
    REQUIRE(got.size() == plain.size());
    CHECK(max_abs_diff(got, plain) <= kTol);

    auto shorter = random_codes(5, 42);
    auto batch = torch::full({2, 12, 16}, -1, torch::kLong);
    batch[0].copy_(codes);
    batch[1].narrow(0, 0, 5).copy_(shorter);
    auto out = tiny().decode_batch(batch);
    REQUIRE(out.size() == 2);
    CHECK(out[0].size() == 12u * 1920);
    CHECK(out[1].size() == 5u * 1920);
    CHECK(max_abs_diff(out[0], plain) <= kTol);
    CHECK(max_abs_diff(out[1], tiny().decode(shorter)) <= kTol);
}

TEST_CASE("bad input gives clear errors", "[codec][errors]") {
    auto expect = [](const std::function<void()>& fn, const std::string& needle) {
        try {
            fn();
            FAIL("no error; expected one mentioning " << needle);
        } catch (const InputError& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find(needle) != std::string::npos);
        }
    };
    expect([] { tiny().encode({}); }, "empty");
    expect([] {
        auto x = test_signal(5000);
        x[4321] = std::nanf("");
        tiny().encode(x);
    }, "sample 4321");
    expect([] {
        auto x = test_signal(100);
        x[3] = INFINITY;
        tiny().encode(x);
    }, "not finite");
    expect([] {
        auto c = random_codes(4, 1);
        c[2][5] = 2048;
        tiny().decode(c);
    }, "frame 2, codebook 5: id 2048");
    expect([] {
        auto c = random_codes(4, 1);
        c[1][0] = -2;
        tiny().decode(c);
    }, "id -2");
    expect([] { tiny().decode(random_codes(4, 1).narrow(1, 0, 15)); }, "exactly 16");
    expect([] { tiny().decode(torch::zeros({4, 16}, torch::kFloat32)); }, "integer");
    expect([] { tiny().decode(torch::zeros({2, 4, 16}, torch::kLong)); }, "[frames, 16]");
    expect([] {
        auto c = random_codes(4, 1);
        c[1].fill_(-1);  // padding followed by a real frame
        tiny().decode(c);
    }, "follows -1 padding");
    expect([] {
        auto c = random_codes(4, 1);
        c[3][7] = -1;  // a partial padding row
        tiny().decode(c);
    }, "partly -1");
    expect([] { tiny().decode_unchunked(torch::full({1, 16, 3}, 5000, torch::kLong)); }, "0..2047");
    expect([] { tiny().decode_unchunked(torch::zeros({1, 8, 3}, torch::kLong)); }, "16");
}

TEST_CASE("real voice clips encode and decode on the tiny codec", "[codec][real]") {
    auto voices = codec_test::shared_dir() / "reference" / "voices";
    int clips = 0;
    for (const auto& entry : fs::directory_iterator(voices)) {
        auto path = entry.path() / "ref_sample.wav";
        if (!fs::exists(path)) continue;
        ++clips;
        INFO(path.string());
        auto audio = io::read_audio_resampled(path.string(), kSampleRate);
        REQUIRE(audio.sample_rate == kSampleRate);
        const int64_t n = int64_t(audio.samples.size());
        REQUIRE(n > 24000);
        auto codes = tiny().encode(audio.samples);
        CHECK(codes.size(0) == frames_for_samples(n));
        CHECK(codes.size(1) == 16);
        CHECK(codes.min().item<int64_t>() >= 0);
        CHECK(codes.max().item<int64_t>() <= 2047);
        CHECK(torch::equal(tiny().encode_file(path.string()), codes));
        auto wav = tiny().decode(codes);
        CHECK(int64_t(wav.size()) == codes.size(0) * 1920);
        CHECK(int64_t(wav.size()) >= n);
        bool finite = true;
        for (float x : wav) finite = finite && std::isfinite(x) && std::fabs(x) <= 1.0f;
        CHECK(finite);
    }
    CHECK(clips >= 2);
}
