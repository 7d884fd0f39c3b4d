#pragma once
// Shared helpers for the codec tests: paths, a temp folder, one tiny random codec per test process.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <unistd.h>

#include "alexandria/codec/codec.h"

namespace codec_test {

namespace fs = std::filesystem;

inline fs::path shared_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SHARED_DIR")) return s;
    if (const char* src = std::getenv("ALEXANDRIA_SOURCE_DIR")) return fs::path(src) / ".." / "shared";
    return fs::path("..") / "shared";
}

// A fresh folder removed at process exit.
struct TempDir {
    fs::path path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "alexandria-codec-XXXXXX").string();
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

inline const fs::path& tiny_dir() {
    static TempDir dir;
    static bool written = [] {
        alexandria::codec::write_random_codec((dir.path / "speech_tokenizer").string(), "tiny", 1234);
        return true;
    }();
    (void)written;
    static fs::path p = dir.path / "speech_tokenizer";
    return p;
}

inline const alexandria::codec::Codec& tiny() {
    static alexandria::codec::Codec c = alexandria::codec::Codec::load(tiny_dir().string());
    return c;
}

// Deterministic pseudo-speech: a few partials plus noise, amplitude ~0.3.
inline std::vector<float> test_signal(int64_t n, uint32_t seed = 7) {
    std::vector<float> x(static_cast<size_t>(n));
    uint32_t s = seed;
    for (int64_t i = 0; i < n; ++i) {
        s = s * 1664525u + 1013904223u;
        double noise = (double(s >> 8) / double(1u << 24)) - 0.5;
        double t = double(i) / 24000.0;
        x[size_t(i)] = float(0.15 * std::sin(2 * M_PI * 220 * t) + 0.1 * std::sin(2 * M_PI * 523 * t + 0.3) +
                             0.05 * noise);
    }
    return x;
}

inline torch::Tensor random_codes(int64_t frames, uint64_t seed) {
    auto gen = at::detail::createCPUGenerator(seed);
    return torch::randint(0, alexandria::codec::kCodebookSize, {frames, alexandria::codec::kNumCodebooks}, gen,
                          torch::kLong);
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b, size_t from = 0,
                           size_t to = SIZE_MAX) {
    double m = 0;
    to = std::min({to, a.size(), b.size()});
    for (size_t i = from; i < to; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
    return m;
}

}  // namespace codec_test
