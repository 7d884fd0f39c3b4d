#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include <sndfile.h>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "support/test_support.h"

using namespace alexandria;
using alexandria::test::TempDir;

static io::Audio tone(double hz, double seconds, int rate, float amp = 0.5f) {
    io::Audio a;
    a.sample_rate = rate;
    a.samples.resize(size_t(seconds * rate));
    for (size_t i = 0; i < a.samples.size(); ++i) a.samples[i] = amp * float(std::sin(2 * M_PI * hz * double(i) / rate));
    return a;
}

TEST_CASE("audio writes and reads back in every format") {
    TempDir dir;
    auto a = tone(440, 0.5, 24000);
    for (auto [fmt, name, tol] : {std::tuple{io::AudioFormat::WavPcm16, "a.wav", 1.0 / 16000},
                                  std::tuple{io::AudioFormat::WavFloat, "b.wav", 0.0},
                                  std::tuple{io::AudioFormat::Flac, "c.flac", 1.0 / 16000}}) {
        auto p = (dir / name).string();
        io::write_audio(p, a, fmt);
        auto info = io::probe_audio(p);
        REQUIRE(info.sample_rate == 24000);
        REQUIRE(info.channels == 1);
        auto b = io::read_audio(p);
        REQUIRE(b.samples.size() == a.samples.size());
        double maxdiff = 0;
        for (size_t i = 0; i < a.samples.size(); ++i) maxdiff = std::max(maxdiff, double(std::fabs(a.samples[i] - b.samples[i])));
        REQUIRE(maxdiff <= tol + 1e-7);
    }
}

TEST_CASE("resampling to 24 kHz keeps duration and pitch") {
    for (int rate : {16000, 22050, 44100, 48000}) {
        auto a = tone(1000, 1.0, rate);
        auto r = io::resample(a.samples, rate, 24000);
        // librosa's length: ceil(n * (24000 / rate)) in doubles, 24001 for 22.05 and 44.1 kHz (audio.cpp resample)
        REQUIRE(r.size() == size_t(std::ceil(double(rate) * (24000.0 / rate))));
        // zero crossings of a 1 kHz tone over 1 s ≈ 2000
        int zc = 0;
        for (size_t i = 1000; i + 1000 < r.size(); ++i) zc += (r[i - 1] < 0) != (r[i] < 0);
        REQUIRE(std::abs(zc - 1833) <= 3);
    }
}

TEST_CASE("stereo is downmixed by averaging") {
    TempDir dir;
    auto p = (dir / "s.wav").string();
    SF_INFO info{};
    (void)info;
    // write a stereo float file through libsndfile directly
    io::Audio left = tone(300, 0.1, 24000, 0.4f);
    {
        std::vector<float> inter(left.samples.size() * 2);
        for (size_t i = 0; i < left.samples.size(); ++i) {
            inter[2 * i] = left.samples[i];
            inter[2 * i + 1] = 0.0f;
        }
        SF_INFO si{};
        si.samplerate = 24000;
        si.channels = 2;
        si.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
        SNDFILE* f = sf_open(p.c_str(), SFM_WRITE, &si);
        REQUIRE(f);
        sf_writef_float(f, inter.data(), sf_count_t(left.samples.size()));
        sf_close(f);
    }
    auto m = io::read_audio(p);
    REQUIRE(m.samples.size() == left.samples.size());
    REQUIRE(m.samples[10] == Approx(left.samples[10] / 2).margin(1e-6));
}

TEST_CASE("statistics: peak, rms, clipping and silence") {
    io::Audio a;
    a.sample_rate = 1000;
    a.samples.assign(1000, 0.0f);
    for (int i = 200; i < 800; ++i) a.samples[size_t(i)] = (i % 2) ? 1.0f : -1.0f;
    auto st = io::audio_stats(a);
    REQUIRE(st.seconds == Approx(1.0));
    REQUIRE(st.peak == Approx(1.0));
    REQUIRE(st.rms == Approx(std::sqrt(0.6)));
    REQUIRE(st.clipped_fraction == Approx(0.6));
    REQUIRE(st.leading_silence == Approx(0.2));
    REQUIRE(st.trailing_silence == Approx(0.2));
    REQUIRE_FALSE(st.silent());
    io::Audio z;
    z.samples.assign(100, 0.0f);
    REQUIRE(io::audio_stats(z).silent());
}

TEST_CASE("bad audio files give input errors naming the file") {
    TempDir dir;
    auto text = (dir / "text.wav").string();
    std::ofstream(text) << "this is not audio at all";
    REQUIRE_THROWS_WITH(io::read_audio(text), Catch::Contains("text.wav") && Catch::Contains("cannot decode"));
    REQUIRE_THROWS_WITH(io::read_audio((dir / "missing.wav").string()), Catch::Contains("not found"));
    // zero-length WAV
    auto empty = (dir / "empty.wav").string();
    io::Audio none;
    io::write_audio(empty, none);
    REQUIRE_THROWS_WITH(io::read_audio(empty), Catch::Contains("no audio"));
    // NaN in a float WAV
    auto nan = (dir / "nan.wav").string();
    auto a = tone(100, 0.01, 24000);
    a.samples[5] = std::nanf("");
    io::write_audio(nan, a, io::AudioFormat::WavFloat);
    REQUIRE_THROWS_WITH(io::read_audio(nan), Catch::Contains("not a finite number"));
    REQUIRE_THROWS_AS(io::parse_audio_format("mp3"), InputError);
}

TEST_CASE("a file cut short is refused by every reader, a whole one is not") {
    TempDir dir;
    auto whole = (dir / "whole.wav").string();
    io::write_audio(whole, tone(200, 0.5, 24000));
    CHECK(io::probe_audio(whole).truncated.empty());
    CHECK(io::read_audio(whole).samples.size() == 12000);
    std::ifstream in(whole, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // 90% of the samples: libsndfile alone would quietly decode the shorter clip
    auto cut = (dir / "cut.wav").string();
    std::ofstream(cut, std::ios::binary) << bytes.substr(0, 44 + 2 * 10800);
    auto info = io::probe_audio(cut);
    CHECK_THAT(info.truncated, Catch::Contains("declares 24000 bytes of audio, the file holds 21600"));
    REQUIRE_THROWS_WITH(io::read_audio(cut), Catch::StartsWith(cut + ": truncated"));
    REQUIRE_THROWS_WITH(io::read_audio_resampled(cut, 16000), Catch::Contains("truncated"));
    // a data size far beyond the file: refused on the header, nothing of that size allocated
    std::string huge = bytes;
    huge[40] = '\x00', huge[41] = '\xff', huge[42] = '\xff', huge[43] = '\x7f';
    auto big = (dir / "huge.wav").string();
    std::ofstream(big, std::ios::binary) << huge;
    REQUIRE_THROWS_WITH(io::read_audio(big), Catch::Contains("truncated"));
    // FLAC cut in half: fewer frames decode than STREAMINFO declares
    auto flac = (dir / "a.flac").string();
    io::write_audio(flac, tone(200, 1.0, 24000), io::AudioFormat::Flac);
    std::ifstream fin(flac, std::ios::binary);
    std::string fb((std::istreambuf_iterator<char>(fin)), std::istreambuf_iterator<char>());
    auto half = (dir / "half.flac").string();
    std::ofstream(half, std::ios::binary) << fb.substr(0, fb.size() / 2);
    REQUIRE_THROWS_WITH(io::read_audio(half), Catch::Contains("truncated"));
}
