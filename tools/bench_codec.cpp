// Speech codec speed: encode and decode real-time factor (audio seconds per wall second) of a random-weight codec
// in the real layout, tiny and/or full size, on the chosen device. Prints figures; asserts nothing.
//
//   bench_codec [--preset tiny|full|both] [--seconds 10] [--repeat 3] [--threads N] [--device cpu|cuda]
//               [--dtype fp32|bf16] [--dir existing/speech_tokenizer] [--stream-frames 4] [--json FILE]
//
// --json FILE also writes the figures as one JSON document (atomically), for tools/gpu-run.sh.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "alexandria/io/device.h"
#include "alexandria/codec/codec.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace {

namespace fs = std::filesystem;
using namespace alexandria;

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::vector<float> signal(int64_t n) {
    std::vector<float> x(static_cast<size_t>(n));
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; ++i) {
        s = s * 1664525u + 1013904223u;
        double t = double(i) / codec::kSampleRate;
        x[size_t(i)] = float(0.2 * std::sin(2 * M_PI * 180 * t * (1 + 0.1 * std::sin(t))) +
                             0.03 * ((double(s >> 8) / double(1u << 24)) - 0.5));
    }
    return x;
}

void sync(const codec::Codec& c) {
    if (c.device().is_cuda()) torch::cuda::synchronize();
}

struct Figures {
    double load_s = 0, encode_rtf = 0, decode_rtf = 0, stream_rtf = 0;
};

Figures bench(const std::string& dir, double audio_s, int repeat, torch::Device device, torch::Dtype dtype,
              int stream_frames) {
    Figures f;
    auto t0 = std::chrono::steady_clock::now();
    auto c = codec::Codec::load(dir, device, dtype);
    f.load_s = seconds_since(t0);
    const int64_t n = int64_t(audio_s * codec::kSampleRate);
    auto wav = signal(n);
    c.encode(std::vector<float>(wav.begin(), wav.begin() + std::min<int64_t>(n, 24000)));  // warm-up
    torch::Tensor codes;
    double best = 1e30;
    for (int r = 0; r < repeat; ++r) {
        sync(c);
        auto t = std::chrono::steady_clock::now();
        codes = c.encode(wav);
        sync(c);
        best = std::min(best, seconds_since(t));
    }
    f.encode_rtf = audio_s / best;
    const double decoded_s = double(codes.size(0)) * codec::kSamplesPerFrame / codec::kSampleRate;
    best = 1e30;
    for (int r = 0; r < repeat; ++r) {
        sync(c);
        auto t = std::chrono::steady_clock::now();
        auto out = c.decode(codes);
        sync(c);
        best = std::min(best, seconds_since(t));
    }
    f.decode_rtf = decoded_s / best;
    // Streaming as synthesis would use it: a few frames per push.
    codec::IncrementalDecoder stream(c);
    sync(c);
    auto t = std::chrono::steady_clock::now();
    for (int64_t at = 0; at < codes.size(0); at += stream_frames)
        stream.push(codes.narrow(0, at, std::min<int64_t>(stream_frames, codes.size(0) - at)));
    sync(c);
    f.stream_rtf = decoded_s / seconds_since(t);
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Speech codec encode/decode real-time factor on random weights"};
    std::string preset = "both", device_name = "cpu", dtype_name = "fp32", dir, json_path;
    double seconds = 10;
    int repeat = 3, threads = 0, stream_frames = 4;
    app.add_option("--preset", preset, "tiny, full or both")->capture_default_str();
    app.add_option("--seconds", seconds, "audio length to encode")->capture_default_str();
    app.add_option("--repeat", repeat, "runs per figure (best is reported)")->capture_default_str();
    app.add_option("--threads", threads, "intra-op threads (0: libtorch default)")->capture_default_str();
    app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
    app.add_option("--dtype", dtype_name, "fp32 or bf16")->capture_default_str();
    app.add_option("--dir", dir, "benchmark this speech_tokenizer folder instead of random ones");
    app.add_option("--stream-frames", stream_frames, "frames per push in the streaming figure")->capture_default_str();
    app.add_option("--json", json_path, "also write the figures to this JSON file");
    CLI11_PARSE(app, argc, argv);
    alexandria::io::keep_freed_memory();  // as the commands do
    try {
        if (threads > 0) torch::set_num_threads(threads);
        torch::Device device = device_name == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
        torch::Dtype dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
        std::vector<std::pair<std::string, std::string>> runs;
        std::string tmp;
        if (!dir.empty()) {
            runs.emplace_back("given", dir);
        } else {
            std::string tmpl = (fs::temp_directory_path() / "bench-codec-XXXXXX").string();
            tmp = mkdtemp(tmpl.data());
            for (const char* p : {"tiny", "full"}) {
                if (preset != "both" && preset != p) continue;
                auto t0 = std::chrono::steady_clock::now();
                codec::write_random_codec(tmp + "/" + p, p, 1);
                std::fprintf(stderr, "wrote random %s codec in %.1f s\n", p, seconds_since(t0));
                runs.emplace_back(p, tmp + "/" + p);
            }
        }
        std::printf("device %s, dtype %s, threads %d, %.1f s of audio, stream pushes of %d frames\n",
                    device_name.c_str(), dtype_name.c_str(), torch::get_num_threads(), seconds, stream_frames);
        std::printf("%-6s %8s %12s %12s %12s\n", "codec", "load s", "encode RTF", "decode RTF", "stream RTF");
        nlohmann::json doc{{"bench", "codec"},          {"device", device_name}, {"dtype", dtype_name},
                           {"threads", torch::get_num_threads()}, {"audio_seconds", seconds},
                           {"stream_frames", stream_frames},      {"runs", nlohmann::json::array()}};
        for (auto& [name, path] : runs) {
            auto f = bench(path, seconds, repeat, device, dtype, stream_frames);
            std::printf("%-6s %8.2f %12.1f %12.1f %12.1f\n", name.c_str(), f.load_s, f.encode_rtf, f.decode_rtf,
                        f.stream_rtf);
            std::fflush(stdout);
            doc["runs"].push_back({{"codec", name}, {"load_seconds", f.load_s}, {"encode_rtf", f.encode_rtf},
                                   {"decode_rtf", f.decode_rtf}, {"stream_rtf", f.stream_rtf}});
        }
        if (!tmp.empty()) fs::remove_all(tmp);
        if (!json_path.empty()) io::write_file_atomic(json_path, doc.dump(2) + "\n");
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return e.exit_code();
    }
    return 0;
}
