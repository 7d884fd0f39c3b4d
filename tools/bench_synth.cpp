// Synthesis speed: frames per second of the decode loop (talker + code predictor), codec decode time and the
// real-time factor, on a given model or a tiny random one made on the fly.
//
//   bench_synth                                  # tiny preset on the CPU
//   bench_synth --model DIR --device cuda --frames 500 --runs 3
//
// EOS is forbidden so every run produces exactly --frames frames (a fair, repeatable workload).
#include <CLI/CLI.hpp>

#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "alexandria/codec/codec.h"
#include "alexandria/io/audio.h"
#include "alexandria/model/random_model.h"
#include "alexandria/synth/generate.h"
#include "alexandria/synth/synthesizer.h"
#include "alexandria/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace alexandria;
using Clock = std::chrono::steady_clock;

namespace {
double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// CPU seconds of this process (all threads). On a shared machine the wall clock also counts the time other
// processes held the cores; CPU time is what the work itself cost.
double cpu_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

void sync(torch::Device d) {
    if (d.is_cuda()) torch::cuda::synchronize();
}
}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bench_synth: decode-loop frames/s, codec decode time and real-time factor"};
    std::string model, device = "cpu", dtype = "auto", ref_audio, text =
        "The ancient library stood at the crossroads of three kingdoms, and every traveller who passed its gates "
        "left a story behind.";
    int64_t frames = 100;
    int runs = 3, threads = 0;
    app.add_option("--model", model, "Model folder (default: a tiny random Base model in a temp folder)");
    app.add_option("--device", device, "cpu | cuda")->capture_default_str();
    app.add_option("--dtype", dtype, "auto | f32 | bf16")->capture_default_str();
    app.add_option("--frames", frames, "Frames per run (EOS forbidden)")->capture_default_str();
    app.add_option("--runs", runs, "Timed runs (after one warm-up)")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0 = libtorch default)")->capture_default_str();
    app.add_option("--ref-audio", ref_audio, "Reference clip for the speaker vector (default: a synthetic tone)");
    app.add_option("--text", text, "Text of the prompt");
    CLI11_PARSE(app, argc, argv);
    if (threads > 0) torch::set_num_threads(threads);

    try {
        fs::path tmp;
        if (model.empty() || ref_audio.empty()) {
            tmp = fs::temp_directory_path() / fmt::format("bench-synth-{}", std::random_device{}());
            fs::create_directories(tmp);
        }
        if (model.empty()) {
            model = (tmp / "tiny").string();
            model::RandomModelSpec spec;
            spec.dtype = "f32";
            model::write_random_model(model, spec);
            text::write_tiny_tokenizer(model);
            codec::write_random_codec((fs::path(model) / "speech_tokenizer").string(), "tiny", 1);
        }
        if (ref_audio.empty()) {
            io::Audio a;
            for (int i = 0; i < 48000; ++i) a.samples.push_back(0.3f * std::sin(2 * M_PI * 150 * i / 24000.0));
            ref_audio = (tmp / "ref.wav").string();
            io::write_audio(ref_audio, a);
        }
        synth::LoadOptions lo;
        lo.model = model;
        lo.device = torch::Device(device);
        lo.dtype = dtype == "auto" ? (lo.device.is_cpu() ? torch::kFloat32 : torch::kBFloat16)
                                   : (dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32);
        synth::Synthesizer s(lo);
        synth::Utterance u;
        u.text = text;
        u.ref_audio = ref_audio;
        auto p = s.prepare(u);

        synth::GenerateOptions g;
        g.talker = synth::talker_params(s.generation());
        g.subtalker = synth::subtalker_params(s.generation());
        g.max_frames = frames;
        const int64_t eos = s.config().talker.codec_eos_token_id;
        g.logits_hook = [eos](torch::Tensor& l, int64_t) { l.select(1, eos).fill_(-1e4); };

        double gen_total = 0, dec_total = 0, gen_cpu = 0, dec_cpu = 0;
        int64_t frames_total = 0;
        for (int r = -1; r < runs; ++r) {
            g.seed = static_cast<uint64_t>(r + 1);
            sync(lo.device);
            auto t0 = Clock::now();
            double c0 = cpu_seconds();
            auto res = synth::generate_codes(s.model()->talker, p.tensors, g);
            sync(lo.device);
            auto t1 = Clock::now();
            double c1 = cpu_seconds();
            auto wav = s.codec().decode(res.codes);
            sync(lo.device);
            auto t2 = Clock::now();
            double c2 = cpu_seconds();
            if (r < 0) continue;  // warm-up
            gen_total += secs(t0, t1);
            dec_total += secs(t1, t2);
            gen_cpu += c1 - c0;
            dec_cpu += c2 - c1;
            frames_total += res.codes.size(0);
        }
        double audio = static_cast<double>(frames_total) / 12.5;
        double fps = frames_total / gen_total;
        fmt::print("model {} ({} {}), device {}, dtype {}, threads {}\n", model, s.config().tts_model_type,
                   s.config().tts_model_size, device, dtype, torch::get_num_threads());
        fmt::print("prompt rows {}, {} runs x {} frames\n", p.tensors.prefill.size(0), runs, frames);
        fmt::print("decode loop: {:.1f} frames/s ({:.2f} ms/frame, {:.2f}x real time)\n", fps, 1000.0 / fps,
                   fps / 12.5);
        fmt::print("codec decode: {:.3f} s per {:.1f} s of audio\n", dec_total / runs, audio / runs);
        fmt::print("total RTF (compute/audio): {:.3f}  ({:.2f}x real time)\n", (gen_total + dec_total) / audio,
                   audio / (gen_total + dec_total));
        if (lo.device.is_cpu())
            fmt::print("by CPU time (what the work cost, other processes excluded): {:.1f} frames/s, codec {:.3f} s, "
                       "RTF {:.3f} ({:.2f} CPU-s per audio-s)\n",
                       frames_total / gen_cpu, dec_cpu / runs, (gen_cpu + dec_cpu) / audio, (gen_cpu + dec_cpu) / audio);
        if (!tmp.empty()) fs::remove_all(tmp);
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_synth: {}\n", e.what());
        return 1;
    }
    return 0;
}
