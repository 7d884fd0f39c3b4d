// Synthesis speed: frames per second of the decode loop (talker + code predictor), codec decode time and the
// real-time factor, time to first audio, batched lines (aggregate frames/s) and peak RSS, on a given model or a tiny
// random one made on the fly.
//
//   bench_synth                                  # tiny preset on the CPU
//   bench_synth --model DIR --device cuda --frames 500 --runs 3
//   bench_synth --model /tmp/m06 --dtype bf16 --threads 2 --batch 8 16
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
#include "alexandria/io/device.h"
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
// System (kernel) CPU seconds: thread pools that sleep and wake every operation show up here.
double sys_seconds() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_stime.tv_sec + 1e-6 * u.ru_stime.tv_usec;
}
double peak_rss_gb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_maxrss / 1048576.0;  // KiB → GiB
}

void sync(torch::Device d) {
    if (d.is_cuda()) torch::cuda::synchronize();
}

struct BenchOptions {
    std::string model, device = "cpu", dtype = "auto", ref_audio,
        text = "The ancient library stood at the crossroads of three kingdoms, and every traveller who passed its "
               "gates left a story behind.";
    int64_t frames = 100;
    int runs = 3, threads = 0;
    std::vector<int64_t> batches;
    int64_t lines_per_slot = 2;
    bool malloc_defaults = false;
};

// Without --model: a tiny random Base model; without --ref-audio: a 2 s tone. Returns the temp folder made (or "").
fs::path default_inputs(BenchOptions& o) {
    fs::path tmp;
    if (!o.model.empty() && !o.ref_audio.empty()) return tmp;
    tmp = fs::temp_directory_path() / fmt::format("bench-synth-{}", std::random_device{}());
    fs::create_directories(tmp);
    if (o.model.empty()) {
        o.model = (tmp / "tiny").string();
        model::RandomModelSpec spec;
        spec.dtype = "f32";
        model::write_random_model(o.model, spec);
        text::write_tiny_tokenizer(o.model);
        codec::write_random_codec((fs::path(o.model) / "speech_tokenizer").string(), "tiny", 1);
    }
    if (o.ref_audio.empty()) {
        io::Audio a;
        for (int i = 0; i < 48000; ++i) a.samples.push_back(0.3f * std::sin(2 * M_PI * 150 * i / 24000.0));
        o.ref_audio = (tmp / "ref.wav").string();
        io::write_audio(o.ref_audio, a);
    }
    return tmp;
}

// One stream: `runs` timed lines of o.frames frames (after a warm-up), the decode loop and the codec apart.
void one_stream(synth::Synthesizer& s, const synth::Synthesizer::Prepared& p, const synth::GenerateOptions& g,
                const BenchOptions& o) {
    const torch::Device dev = s.load_options().device;
    double gen_total = 0, dec_total = 0, gen_cpu = 0, dec_cpu = 0, gen_sys = 0;
    int64_t frames_total = 0;
    for (int r = -1; r < o.runs; ++r) {
        auto gr = g;
        gr.seed = static_cast<uint64_t>(r + 1);
        sync(dev);
        auto t0 = Clock::now();
        double c0 = cpu_seconds(), s0 = sys_seconds();
        auto res = synth::generate_codes(s.model()->talker, p.tensors, gr);
        double s1 = sys_seconds();
        sync(dev);
        auto t1 = Clock::now();
        double c1 = cpu_seconds();
        auto wav = synth::decode_in_blocks(s.codec(), res.codes);
        sync(dev);
        auto t2 = Clock::now();
        double c2 = cpu_seconds();
        if (r < 0) continue;  // warm-up
        gen_total += secs(t0, t1);
        dec_total += secs(t1, t2);
        gen_cpu += c1 - c0;
        gen_sys += s1 - s0;
        dec_cpu += c2 - c1;
        frames_total += res.codes.size(0);
    }
    const double audio = static_cast<double>(frames_total) / 12.5;
    const double fps = frames_total / gen_total;
    fmt::print("model {} ({} {}), device {}, dtype {}{}, threads {}\n", o.model, s.config().tts_model_type,
               s.config().tts_model_size, o.device, o.dtype, s.weights_narrow() ? " (bf16 weights, fp32 compute)" : "",
               torch::get_num_threads());
    fmt::print("prompt rows {}, {} runs x {} frames\n", p.tensors.prefill.size(0), o.runs, o.frames);
    fmt::print("decode loop: {:.1f} frames/s ({:.2f} ms/frame, {:.2f}x real time)\n", fps, 1000.0 / fps, fps / 12.5);
    fmt::print("codec decode: {:.3f} s per {:.1f} s of audio\n", dec_total / o.runs, audio / o.runs);
    fmt::print("total RTF (compute/audio): {:.3f}  ({:.2f}x real time)\n", (gen_total + dec_total) / audio,
               audio / (gen_total + dec_total));
    fmt::print("codec: {:.3f} s per audio s (decoded in a block of {} frames, then blocks of {}, as synthesis does)\n",
               dec_total / audio, synth::kFirstAudioFrames, synth::kAudioBlockFrames);
    if (dev.is_cpu())
        fmt::print("by CPU time (what the work cost, other processes excluded): {:.1f} frames/s, codec {:.3f} s, "
                   "RTF {:.3f} ({:.2f} CPU-s per audio-s); decode loop CPU {:.2f} ms/frame of which system {:.2f}\n",
                   frames_total / gen_cpu, dec_cpu / o.runs, (gen_cpu + dec_cpu) / audio, (gen_cpu + dec_cpu) / audio,
                   1000 * gen_cpu / frames_total, 1000 * gen_sys / frames_total);
}

// Time to first audio: prompt → prefill → the first block of frames → its samples (what --out - waits for).
void first_audio(synth::Synthesizer& s, const synth::Utterance& u, const synth::GenerateOptions& g,
                 const BenchOptions& o) {
    synth::AudioStream stream(s.codec());
    sync(s.load_options().device);
    auto t0 = Clock::now();
    double first = -1;
    auto g1 = g;
    g1.max_frames = std::max<int64_t>(o.frames, synth::kAudioBlockFrames);
    auto p1 = s.prepare(u);
    synth::generate_codes(s.model()->talker, p1.tensors, g1, [&](int64_t, const torch::Tensor& f) {
        if (first < 0 && !stream.push(f).empty()) first = secs(t0, Clock::now());
    });
    fmt::print("time to first audio: {:.3f} s (prompt, prefill, {} frames and their decode)\n", first,
               synth::kFirstAudioFrames);
}

// Batched lines: B x lines_per_slot lines of slightly different lengths (so rows end at different steps and are
// refilled), EOS forbidden, each with its own seed.
void batched(synth::Synthesizer& s, const synth::Synthesizer::Prepared& p, const synth::GenerateOptions& g,
             const BenchOptions& o, int64_t B) {
    const int64_t n_lines = B * o.lines_per_slot, frames = o.frames;
    int64_t next_line = 0, frames_done = 0;
    synth::JobSource src = [&](synth::GenerateJob& job) {
        if (next_line == n_lines) return false;
        job.id = next_line;
        job.prompt = p.tensors;
        job.opts = g;
        job.opts.seed = static_cast<uint64_t>(1000 + next_line);
        job.opts.max_frames = frames - frames / 4 + (next_line * 7) % std::max<int64_t>(1, frames / 2);
        ++next_line;
        return true;
    };
    synth::JobDone done = [&](int64_t, synth::GenerateResult&& r) { frames_done += r.codes.size(0); };
    sync(s.load_options().device);
    auto t0 = Clock::now();
    double c0 = cpu_seconds(), s0 = sys_seconds();
    auto st = synth::generate_batch(s.model()->talker, B, src, done);
    sync(s.load_options().device);
    double wall = secs(t0, Clock::now()), cpu = cpu_seconds() - c0, sys = sys_seconds() - s0;
    fmt::print("batch {}: {} lines, {} frames in {} steps: {:.1f} frames/s aggregate ({:.2f}x real time), "
               "{:.1f} ms/step; by CPU time {:.1f} frames/s (system {:.0f}%)\n",
               B, st.lines, frames_done, st.steps, frames_done / wall, frames_done / wall / 12.5,
               1000 * wall / st.steps, frames_done / cpu, 100 * sys / cpu);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bench_synth: decode-loop frames/s, codec decode time and real-time factor"};
    BenchOptions o;
    app.add_option("--model", o.model, "Model folder (default: a tiny random Base model in a temp folder)");
    app.add_option("--device", o.device, "cpu | cuda")->capture_default_str();
    app.add_option("--dtype", o.dtype, "auto (CPU: bf16 weights, fp32 compute) | f32 | bf16 | int8 (CPU: int8 weights, fp32 compute)")->capture_default_str();
    app.add_option("--frames", o.frames, "Frames per run (EOS forbidden)")->capture_default_str();
    app.add_option("--runs", o.runs, "Timed runs (after one warm-up)")->capture_default_str();
    app.add_option("--threads", o.threads, "CPU threads (0 = libtorch default)")->capture_default_str();
    app.add_option("--ref-audio", o.ref_audio, "Reference clip for the speaker vector (default: a synthetic tone)");
    app.add_option("--text", o.text, "Text of the prompt");
    app.add_option("--batch", o.batches, "Also measure batched lines at these batch sizes (e.g. --batch 8 16)");
    app.add_option("--lines-per-slot", o.lines_per_slot, "Batched runs render batch x this many lines")
        ->capture_default_str();
    app.add_flag("--malloc-defaults", o.malloc_defaults,
                 "Leave glibc's allocator as it is (the commands call io::keep_freed_memory(); this measures without)");
    CLI11_PARSE(app, argc, argv);
    if (o.threads > 0) torch::set_num_threads(o.threads);
    if (!o.malloc_defaults) io::keep_freed_memory();

    try {
        const fs::path tmp = default_inputs(o);
        synth::LoadOptions lo;
        lo.model = o.model;
        lo.device = torch::Device(o.device);
        lo.dtype = o.dtype == "auto" ? (lo.device.is_cpu() ? torch::kFloat32 : torch::kBFloat16)
                                     : (o.dtype == "bf16" ? torch::kBFloat16 : torch::kFloat32);
        lo.narrow_weights = o.dtype == "auto" || o.dtype == "int8";
        lo.int8_weights = o.dtype == "int8";
        synth::Synthesizer s(lo);
        synth::Utterance u;
        u.text = o.text;
        u.ref_audio = o.ref_audio;
        const auto p = s.prepare(u);

        synth::GenerateOptions g;
        g.talker = synth::talker_params(s.generation());
        g.subtalker = synth::subtalker_params(s.generation());
        g.max_frames = o.frames;
        const int64_t eos = s.config().talker.codec_eos_token_id;
        g.logits_hook = [eos](torch::Tensor& l, int64_t) { l.select(1, eos).fill_(-1e4); };

        fmt::print("loaded: peak RSS {:.2f} GiB\n", peak_rss_gb());
        one_stream(s, p, g, o);
        first_audio(s, u, g, o);
        for (int64_t B : o.batches) batched(s, p, g, o, B);
        fmt::print("peak RSS {:.2f} GiB\n", peak_rss_gb());
        if (!tmp.empty()) fs::remove_all(tmp);
    } catch (const std::exception& e) {
        fmt::print(stderr, "bench_synth: {}\n", e.what());
        return 1;
    }
    return 0;
}
