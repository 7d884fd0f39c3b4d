// Mel front end (spec model-talker.md §5.3).
#include <catch2/catch.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/model/mel.h"

#include <cmath>
#include <complex>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace fs = std::filesystem;
using namespace alexandria;
using namespace alexandria::model;

namespace {

const double kPi = 3.14159265358979323846;

fs::path shared_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SHARED_DIR")) return s;
    if (const char* s = std::getenv("ALEXANDRIA_SOURCE_DIR")) return fs::path(s) / ".." / "shared";
    return fs::path("..") / "shared";
}

// The Slaney scale written out independently of the library: 3 mel per 200 Hz up to 1 kHz (= 15 mel), then
// 27 mel per factor 6.4 in frequency.
double ref_hz_to_mel(double f) { return f < 1000.0 ? 3.0 * f / 200.0 : 15.0 + 27.0 * std::log(f / 1000.0) / std::log(6.4); }
double ref_mel_to_hz(double m) { return m < 15.0 ? 200.0 * m / 3.0 : 1000.0 * std::pow(6.4, (m - 15.0) / 27.0); }

std::vector<double> ref_edges() {
    std::vector<double> e(130);
    const double top = ref_hz_to_mel(12000.0);
    for (int i = 0; i < 130; ++i) e[i] = ref_mel_to_hz(top * i / 129.0);
    return e;
}

double ref_weight(const std::vector<double>& e, int i, int k) {
    const double f = k * 24000.0 / 1024.0;
    const double tri = std::max(0.0, std::min((f - e[i]) / (e[i + 1] - e[i]), (e[i + 2] - f) / (e[i + 2] - e[i + 1])));
    return tri * 2.0 / (e[i + 2] - e[i]);
}

torch::Tensor tone(double hz, int64_t n, double amplitude = 0.5) {
    auto t = torch::arange(n, torch::kFloat64) / 24000.0;
    return (amplitude * torch::sin(2 * kPi * hz * t)).to(torch::kFloat32);
}

// The whole front end for one frame, in double, with a naive DFT and hand-made reflection: an independent check
// of padding, windowing, frame placement, magnitude and log.
std::vector<double> ref_log_mel_frame(const std::vector<float>& wav, int64_t frame) {
    const int64_t n = static_cast<int64_t>(wav.size());
    auto sample = [&](int64_t padded_index) {
        int64_t i = padded_index - 384;
        if (i < 0) i = -i;                  // reflect without repeating the edge sample
        if (i >= n) i = 2 * (n - 1) - i;
        return static_cast<double>(wav[i]);
    };
    std::vector<double> mag(513);
    for (int k = 0; k < 513; ++k) {
        std::complex<double> acc = 0;
        for (int j = 0; j < 1024; ++j) {
            const double w = 0.5 - 0.5 * std::cos(2 * kPi * j / 1024.0);
            acc += w * sample(frame * 256 + j) * std::polar(1.0, -2 * kPi * double(k) * j / 1024.0);
        }
        mag[k] = std::sqrt(std::norm(acc) + 1e-9);
    }
    const auto e = ref_edges();
    std::vector<double> out(128);
    for (int i = 0; i < 128; ++i) {
        double m = 0;
        for (int k = 0; k < 513; ++k) m += ref_weight(e, i, k) * mag[k];
        out[i] = std::log(std::max(m, 1e-5));
    }
    return out;
}

}  // namespace

TEST_CASE("Slaney mel scale matches librosa's definition", "[mel]") {
    CHECK(slaney_hz_to_mel(0.0) == 0.0);
    CHECK(slaney_hz_to_mel(1000.0) == Approx(15.0).epsilon(1e-12));
    CHECK(slaney_hz_to_mel(500.0) == Approx(7.5).epsilon(1e-12));
    CHECK(slaney_hz_to_mel(6400.0) == Approx(42.0).epsilon(1e-12));  // one factor 6.4 above 1 kHz = 27 mel
    for (double f : {10.0, 440.0, 999.0, 1000.0, 1234.5, 8000.0, 12000.0}) {
        CHECK(slaney_hz_to_mel(f) == Approx(ref_hz_to_mel(f)).epsilon(1e-12));
        CHECK(slaney_mel_to_hz(slaney_hz_to_mel(f)) == Approx(f).epsilon(1e-12));
    }
}

TEST_CASE("mel filterbank is librosa's Slaney-normalised [128, 513] bank", "[mel]") {
    auto fb = mel_filterbank();
    REQUIRE(fb.sizes() == torch::IntArrayRef({128, 513}));
    REQUIRE(fb.scalar_type() == torch::kFloat32);
    CHECK(fb.min().item<float>() >= 0.0f);
    auto acc = fb.accessor<float, 2>();
    const auto e = ref_edges();

    SECTION("every weight equals the triangle formula times the area norm 2/(e[i+2]-e[i])") {
        double worst = 0;
        for (int i = 0; i < 128; ++i)
            for (int k = 0; k < 513; ++k) worst = std::max(worst, std::abs(acc[i][k] - ref_weight(e, i, k)));
        CHECK(worst < 1e-8);
        // A few spelled out: band 0 spans 0 Hz to e[2], its peak e[1] lies between bins 1 and 2.
        CHECK(e[1] == Approx(26.430575).epsilon(1e-6));
        CHECK(acc[0][0] == 0.0f);
        CHECK(acc[0][1] == Approx((23.4375 / e[1]) * 2.0 / e[2]).epsilon(1e-6));
        CHECK(acc[127][512] == 0.0f);  // Nyquist = the top edge
        CHECK(acc[64][300] == Approx(ref_weight(e, 64, 300)).epsilon(1e-6));
    }
    SECTION("every band is non-empty and peaks next to its centre frequency") {
        for (int i = 0; i < 128; ++i) {
            auto row = fb[i];
            REQUIRE(row.max().item<float>() > 0.0f);
            const int64_t peak = row.argmax().item<int64_t>();
            CHECK(std::abs(peak * 24000.0 / 1024.0 - e[i + 1]) <= 24000.0 / 1024.0);
        }
    }
    SECTION("area normalisation: every band integrates to about one over frequency") {
        // Sampled at 23.4 Hz, a band's sum is exact only up to where its corners fall between bins: bands wider
        // than ~8 bins (from band 80 up) come within 1.5 %, the narrow low ones within 10 %.
        for (int i = 0; i < 128; ++i) {
            const double area = fb[i].sum().item<double>() * 24000.0 / 1024.0;
            INFO("band " << i);
            CHECK(area == Approx(1.0).epsilon(i >= 80 ? 0.015 : 0.1));
        }
    }
}

TEST_CASE("mel frame count is floor((N + 768 - 1024) / 256) + 1", "[mel]") {
    for (int64_t n : {385, 640, 1023, 1024, 1279, 1280, 24000, 24255, 24256, 24257}) {
        const int64_t expected = (n + 768 - 1024) / 256 + 1;
        CHECK(mel_frame_count(n) == expected);
        auto mel = mel_spectrogram(torch::rand({n}) - 0.5);
        CHECK(mel.sizes() == torch::IntArrayRef({1, expected, 128}));
    }
    CHECK(mel_frame_count(384) == 0);
    CHECK(mel_frame_count(0) == 0);
}

TEST_CASE("mel spectrogram equals a naive DFT of the reflect-padded, Hann-windowed frames", "[mel]") {
    torch::manual_seed(7);
    const int64_t n = 3000;
    auto wav = (torch::rand({n}) - 0.5) * 0.8;
    std::vector<float> samples(wav.data_ptr<float>(), wav.data_ptr<float>() + n);
    auto mel = mel_spectrogram(wav);
    const int64_t frames = mel.size(1);
    REQUIRE(frames == 11);
    // First and last frames reach into the reflected padding; a middle frame does not.
    for (int64_t t : {int64_t(0), int64_t(5), frames - 1}) {
        const auto ref = ref_log_mel_frame(samples, t);
        double worst = 0;
        for (int i = 0; i < 128; ++i) worst = std::max(worst, std::abs(mel[0][t][i].item<double>() - ref[i]));
        INFO("frame " << t);
        CHECK(worst < 1e-3);
    }
}

TEST_CASE("a pure tone puts its energy in the mel band centred on it", "[mel]") {
    const auto e = ref_edges();
    for (int band : {12, 40, 70, 100, 120}) {
        const double hz = e[band + 1];  // centre of the band: every other triangle is zero there
        auto mel = mel_spectrogram(tone(hz, 24000));
        auto mid = mel[0][mel.size(1) / 2];
        INFO("band " << band << " at " << hz << " Hz");
        CHECK(mid.argmax().item<int64_t>() == band);
        const double peak = mid[band].item<double>();
        for (int j = 0; j < 128; ++j)
            if (std::abs(j - band) > 6) CHECK(peak - mid[j].item<double>() > 5.0);  // > 5 nepers (~43 dB) below
        // The same level in every frame away from the reflected edges.
        CHECK(mel[0][10][band].item<double>() == Approx(peak).margin(0.01));
        CHECK(mel[0][mel.size(1) - 10][band].item<double>() == Approx(peak).margin(0.01));
    }
}

TEST_CASE("silence is clamped at log(1e-5), batches equal single clips", "[mel]") {
    auto silent = mel_spectrogram(torch::zeros({4000}));
    CHECK(silent.max().item<float>() == Approx(std::log(1e-5)).epsilon(1e-6));

    auto a = tone(300.0, 5000), b = (torch::rand({5000}) - 0.5);
    auto both = mel_spectrogram(torch::stack({a, b}));
    REQUIRE(both.sizes() == torch::IntArrayRef({2, mel_frame_count(5000), 128}));
    CHECK(torch::allclose(both[0], mel_spectrogram(a)[0], 1e-5, 1e-5));
    CHECK(torch::allclose(both[1], mel_spectrogram(b)[0], 1e-5, 1e-5));
}

TEST_CASE("mel spectrogram rejects unusable input with InputError", "[mel]") {
    CHECK_THROWS_AS(mel_spectrogram(torch::zeros({384})), InputError);
    CHECK_THROWS_AS(mel_spectrogram(torch::zeros({0})), InputError);
    CHECK_THROWS_AS(mel_spectrogram(torch::zeros({2, 2, 2000})), InputError);
    auto bad = torch::zeros({2000});
    bad[100] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_AS(mel_spectrogram(bad), InputError);
}

TEST_CASE("the real voice clips give finite features of the expected frame count", "[mel][real]") {
    int clips = 0;
    for (const auto& dir : fs::directory_iterator(shared_dir() / "reference" / "voices")) {
        const auto path = dir.path() / "ref_sample.wav";
        if (!fs::exists(path)) continue;
        ++clips;
        const auto audio = io::read_audio(path.string());
        INFO(path.string());
        REQUIRE(audio.sample_rate == 24000);
        const auto n = static_cast<int64_t>(audio.samples.size());
        REQUIRE(n > 24000);  // at least a second of speech
        auto wav = torch::from_blob(const_cast<float*>(audio.samples.data()), {n}, torch::kFloat32);
        auto mel = mel_spectrogram(wav);
        CHECK(mel.sizes() == torch::IntArrayRef({1, (n - 256) / 256 + 1, 128}));
        CHECK(torch::isfinite(mel).all().item<bool>());
        // Speech: well above the clamp floor somewhere, and louder in the low-mid bands than at the very top.
        CHECK(mel.max().item<float>() > 0.0f);
        auto per_band = mel[0].mean(0);
        CHECK(per_band.slice(0, 10, 60).mean().item<float>() > per_band.slice(0, 110, 128).mean().item<float>());
    }
    CHECK(clips >= 2);
}
