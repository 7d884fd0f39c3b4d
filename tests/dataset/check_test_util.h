#pragma once
// Helpers for the dataset-check tests: locating the source tree, fresh temp folders, tiny WAV writers.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace check_test {

namespace fs = std::filesystem;

inline fs::path source_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SOURCE_DIR")) return s;
    return fs::path(__FILE__).parent_path().parent_path().parent_path();
}
inline fs::path example_dataset() { return source_dir() / "examples" / "tiny-voice"; }
inline fs::path bad_corpus() { return source_dir() / "tests" / "data" / "bad"; }

// A fresh folder under the system temp dir, removed with the object.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        for (int i = 0; i < 100; ++i) {
            auto p = fs::temp_directory_path() / ("alexandria-check-" + std::to_string(rd()));
            std::error_code ec;
            if (fs::create_directory(p, ec)) {
                path = p;
                return;
            }
        }
        throw std::runtime_error("cannot create a temp folder");
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

inline void write_bytes(const fs::path& p, const std::string& bytes) {
    std::ofstream f(p, std::ios::binary);
    f.write(bytes.data(), std::streamsize(bytes.size()));
}

// Interleaved PCM16 WAV.
inline std::string wav_pcm16(const std::vector<float>& interleaved, int rate, int channels = 1) {
    auto u32 = [](uint32_t v) { return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)}; };
    auto u16 = [](uint16_t v) { return std::string{char(v), char(v >> 8)}; };
    std::string data;
    for (float x : interleaved) {
        float c = x > 1 ? 1 : x < -1 ? -1 : x;
        auto s = int16_t(c >= 0 ? c * 32767.0f + 0.5f : c * 32768.0f - 0.5f);
        data += u16(uint16_t(s));
    }
    std::string fmt = u16(1) + u16(uint16_t(channels)) + u32(uint32_t(rate)) + u32(uint32_t(rate * channels * 2)) +
                      u16(uint16_t(channels * 2)) + u16(16);
    std::string body = "WAVE" + std::string("fmt ") + u32(16) + fmt + "data" + u32(uint32_t(data.size())) + data;
    return "RIFF" + u32(uint32_t(body.size())) + body;
}

inline std::vector<float> tone(double seconds, int rate, double amp = 0.3, int channels = 1) {
    std::vector<float> out;
    size_t n = size_t(seconds * rate);
    for (size_t i = 0; i < n; ++i)
        for (int c = 0; c < channels; ++c) out.push_back(float(amp * std::sin(2 * 3.14159265358979 * 220.0 * double(i) / rate)));
    return out;
}

inline std::string read_text(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A listing (path, size) of every file under dir, to show a check wrote nothing.
inline std::vector<std::pair<std::string, uintmax_t>> listing(const fs::path& dir) {
    std::vector<std::pair<std::string, uintmax_t>> out;
    for (auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::none)) {
        std::error_code ec;
        auto size = e.is_symlink() ? 0 : (e.is_regular_file(ec) ? e.file_size(ec) : 0);
        out.emplace_back(e.path().string(), size);
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace check_test
