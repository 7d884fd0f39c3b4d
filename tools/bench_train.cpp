// Training throughput: one training pass = a teacher-forced forward of a batch, both objectives' losses, backward,
// gradient clipping and an AdamW update of the LoRA tensors, on a random model of the given preset.
//
//   bench_train --preset tiny --frames 100 --text-tokens 30 --rank 64 --batch 1 --passes 20 [--device cuda]
//   bench_train --preset 1.7b --device cuda --rank 32,64 --batch 1,4,8 --clip-seconds 5,10,15 --json train.json
//
// --prompt, --rank, --batch and --clip-seconds take comma lists: every combination is measured on one base model
// (the LoRA branches are re-attached per rank), so a matrix pays the model's construction once. --prompt icl puts a
// random reference of --ref-seconds (default 15 s = 188 frames) and --ref-text-tokens in every sequence, as
// train --prompt icl does. --max-seconds stops the matrix early; the cases left are listed as skipped. Per case:
// passes/s, ms/pass, samples/s and peak memory (RSS on the CPU, reset per case through /proc/self/clear_refs; the
// CUDA caching allocator's peak per case on a GPU, in CUDA builds).
// stdout: the case's JSON object for one case, else the whole document; --json FILE writes the document.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/device.h"
#include "alexandria/io/files.h"
#include "alexandria/io/torch_compat.h"
#include "alexandria/model/config.h"
#include "alexandria/model/layers.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/model/talker.h"
#include "alexandria/train/objective.h"

// ALEXANDRIA_CUDA: set by the build when libtorch's CUDA parts are linked (-DALEXANDRIA_CUDA=ON).
#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && (defined(ALEXANDRIA_CUDA) || defined(ALEXANDRIA_CUDA_STATS))
#include <c10/cuda/CUDACachingAllocator.h>
#define HAVE_CUDA_STATS 1
#endif

using namespace alexandria;
using Clock = std::chrono::steady_clock;

namespace {

double rss_peak_mib() {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Same distributions as model::randomize_parameters, drawn on the device: the CPU generator would spend tens of
// seconds on 1.7B values, which speed figures do not need to be reproducible across machines.
void randomize_on_device(torch::nn::Module& module) {
    torch::NoGradGuard no_grad;
    for (auto& p : module.named_parameters()) {
        torch::Tensor t = p.value();
        if (t.dim() >= 2) {
            t.normal_(0.0, 1.0 / std::sqrt(double(t.numel() / t.size(0))));
        } else if (p.key().size() >= 4 && p.key().compare(p.key().size() - 4, 4, "bias") == 0) {
            t.normal_(0.0, 0.02);
        } else {
            t.normal_(1.0, 0.05);
        }
    }
}

#ifdef HAVE_CUDA_STATS
c10::DeviceIndex cuda_index(const torch::Device& d) { return d.index() < 0 ? 0 : d.index(); }
#endif

void reset_peak(const torch::Device& d) {
    // Linux resets VmHWM to the current RSS on "5" (since 4.0), so each case's CPU peak is its own.
    std::ofstream("/proc/self/clear_refs") << "5";
#ifdef HAVE_CUDA_STATS
    if (d.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(cuda_index(d));
#endif
}

void add_peak(nlohmann::json& j, const torch::Device& d) {
    j["peak_rss_mib"] = rss_peak_mib();
#ifdef HAVE_CUDA_STATS
    if (d.is_cuda()) {
        auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(cuda_index(d));
        const size_t agg = 0;  // StatType::AGGREGATE, whose namespace moved between libtorch 2.x releases
        j["cuda_peak_allocated_mib"] = double(st.allocated_bytes[agg].peak) / (1024.0 * 1024.0);
        j["cuda_peak_reserved_mib"] = double(st.reserved_bytes[agg].peak) / (1024.0 * 1024.0);
    }
#endif
}

struct Case {
    train::PromptMode prompt = train::PromptMode::XVector;
    int64_t rank = 64, batch = 1, frames = 100;
    double clip_seconds = 0;  // 0: --frames given directly
};

struct Bench {
    model::ModelConfig cfg;
    model::Talker talker{nullptr};
    train::PromptContext ctx;
    torch::Device device{torch::kCPU};
    int64_t text_tokens = 30, passes = 10, warmup = 2;
    int64_t ref_frames = 188, ref_text_tokens = 40;  // ICL: the reference in every sequence (15 s by default)
};

// The prompt context of a case: ICL adds a random reference (codes and transcript) to every sequence.
train::PromptContext case_context(const Bench& b, const Case& c) {
    train::PromptContext ctx = b.ctx;
    if (c.prompt != train::PromptMode::Icl) return ctx;
    ctx.mode = train::PromptMode::Icl;
    for (int64_t i = 0; i < b.ref_text_tokens; ++i) ctx.ref_content.push_back(2000 + i);
    ctx.ref_codes = torch::randint(0, 2048, {b.ref_frames, 16}, torch::kInt64);
    return ctx;
}

nlohmann::json run_case(Bench& b, const Case& c) {
    std::vector<train::Sample> samples(c.batch);
    for (auto& s : samples) {
        s.role = {151644, 77091, 198};
        for (int64_t i = 0; i < b.text_tokens; ++i) s.content.push_back(1000 + i);
        s.codes = torch::randint(0, 2048, {c.frames, 16}, torch::kInt64);
    }
    std::vector<const train::Sample*> ptrs;
    for (auto& s : samples) ptrs.push_back(&s);
    const train::PromptContext ctx = case_context(b, c);
    const int64_t seq_len = train::sample_layout(ctx, samples[0], train::Objective::Alexandria).length();
    auto params = model::lora_parameters(b.talker);
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-5).weight_decay(0.01));
    auto pass = [&] {
        auto bl = train::batch_loss(b.talker, ctx, ptrs, train::Objective::Alexandria, 1.0 / double(c.batch));
        bl.backward_loss.backward();
        torch::nn::utils::clip_grad_norm_(params, 1.0);
        opt.step();
        opt.zero_grad();
        return bl.samples[0].alexandria.total;
    };
    auto sync = [&] {
        if (b.device.is_cuda()) torch::cuda::synchronize(b.device.index() < 0 ? -1 : b.device.index());
    };
    reset_peak(b.device);
    for (int64_t i = 0; i < b.warmup; ++i) pass();
    sync();
    auto t0 = Clock::now();
    double last = 0;
    for (int64_t i = 0; i < b.passes; ++i) last = pass();
    sync();
    double secs = seconds_since(t0);
    nlohmann::json j{{"prompt", train::prompt_mode_name(c.prompt)},
                     {"frames", c.frames},
                     {"text_tokens", b.text_tokens},
                     {"sequence_length", seq_len},
                     {"rank", c.rank},
                     {"batch", c.batch},
                     {"passes", b.passes},
                     {"lora_parameters", model::lora_parameter_count(b.talker)},
                     {"passes_per_second", b.passes / secs},
                     {"ms_per_pass", 1000.0 * secs / b.passes},
                     {"samples_per_second", b.passes * c.batch / secs},
                     {"last_loss", last}};
    if (c.clip_seconds > 0) j["clip_seconds"] = c.clip_seconds;
    if (c.prompt == train::PromptMode::Icl) {
        j["ref_frames"] = b.ref_frames;
        j["ref_text_tokens"] = b.ref_text_tokens;
    }
    add_peak(j, b.device);
    return j;
}

std::vector<Case> cases(const std::vector<train::PromptMode>& prompts, const std::vector<int64_t>& ranks,
                        const std::vector<int64_t>& batches, const std::vector<double>& clips, int64_t frames) {
    std::vector<Case> out;
    for (int64_t r : ranks)
        for (double s : clips.empty() ? std::vector<double>{0.0} : clips)
            for (int64_t bsz : batches)
                for (train::PromptMode pm : prompts) {
                    Case c;
                    c.prompt = pm;
                    c.rank = r;
                    c.batch = bsz;
                    c.clip_seconds = s;
                    c.frames = s > 0 ? std::max<int64_t>(1, std::llround(s * 12.5)) : frames;
                    out.push_back(c);
                }
    return out;
}

// Every case in turn (LoRA branches re-attached when the rank changes); a case that would start after
// max_seconds is listed in `skipped` instead.
nlohmann::json run_cases(Bench& b, const std::vector<Case>& all, double max_seconds, Clock::time_point start,
                         nlohmann::json& skipped) {
    nlohmann::json runs = nlohmann::json::array();
    int64_t attached_rank = 0;
    for (const Case& c : all) {
        if (max_seconds > 0 && seconds_since(start) > max_seconds) {
            skipped.push_back({{"prompt", train::prompt_mode_name(c.prompt)}, {"rank", c.rank}, {"batch", c.batch},
                               {"frames", c.frames}, {"reason", fmt::format("--max-seconds {} spent", max_seconds)}});
            continue;
        }
        if (c.rank != attached_rank) {
            torch::manual_seed(0);
            model::LoraConfig lc;
            lc.r = c.rank;
            lc.alpha = 128;
            lc.dropout = 0.05;
            model::attach_lora(b.talker, lc);  // replaces the previous rank's branches
            attached_rank = c.rank;
        }
        runs.push_back(run_case(b, c));
        std::fprintf(stderr, "bench_train: %s rank %lld batch %lld frames %lld: %.2f passes/s, peak RSS %.0f MiB\n",
                     train::prompt_mode_name(c.prompt).c_str(), static_cast<long long>(c.rank),
                     static_cast<long long>(c.batch), static_cast<long long>(c.frames),
                     runs.back()["passes_per_second"].get<double>(), runs.back()["peak_rss_mib"].get<double>());
    }
    return runs;
}

// The document to --json; on stdout, a single run alone (with the settings), else the whole document.
void emit(const nlohmann::json& doc, const std::string& json_path) {
    if (!json_path.empty()) io::write_file_atomic(json_path, doc.dump(2) + "\n");
    const auto& runs = doc["runs"];
    if (runs.size() == 1 && doc["skipped"].empty()) {
        nlohmann::json one = runs[0];
        for (const char* k : {"preset", "device", "dtype", "threads"}) one[k] = doc[k];
        std::printf("%s\n", one.dump(2).c_str());
    } else {
        std::printf("%s\n", doc.dump(2).c_str());
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bench_train: LoRA training passes per second on a random model"};
    std::string preset = "tiny", device_s = "cpu", json_path;
    int64_t frames = 100, text_tokens = 30, passes = 10, warmup = 2;
    std::vector<int64_t> ranks{64}, batches{1};
    std::vector<double> clips;
    std::vector<std::string> prompt_names{"xvector", "icl"};
    double ref_seconds = 15.0;
    int64_t ref_text_tokens = 40;
    double max_seconds = 0;
    int threads = 0;
    app.add_option("--preset", preset, "tiny | 0.6b | 1.7b")->capture_default_str();
    app.add_option("--frames", frames, "Codec frames per sample (12.5 per second); ignored with --clip-seconds")
        ->capture_default_str();
    app.add_option("--clip-seconds", clips, "Clip lengths in seconds, comma list (frames = 12.5 x seconds)")
        ->delimiter(',')
        ->check(CLI::PositiveNumber);
    app.add_option("--text-tokens", text_tokens, "Text content tokens per sample")->capture_default_str();
    app.add_option("--prompt", prompt_names, "Prompt mode(s), comma list: xvector, icl (train --prompt)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--ref-seconds", ref_seconds, "ICL: reference length in seconds (12.5 frames per second)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--ref-text-tokens", ref_text_tokens, "ICL: reference transcript tokens")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    app.add_option("--rank", ranks, "LoRA rank(s), comma list")->delimiter(',')->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--batch", batches, "Samples per pass, comma list")->delimiter(',')->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--passes", passes, "Timed passes per case")->capture_default_str()->check(CLI::PositiveNumber);
    app.add_option("--warmup", warmup, "Untimed passes first, per case")->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    app.add_option("--device", device_s, "cpu | cuda | cuda:N")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0 = libtorch's default)")->capture_default_str();
    app.add_option("--max-seconds", max_seconds, "Start no new case after this many seconds (0 = no limit)")
        ->capture_default_str();
    app.add_option("--json", json_path, "Also write the whole document to this file (atomically)");
    CLI11_PARSE(app, argc, argv);
    alexandria::io::keep_freed_memory();  // as the commands do
    try {
        const auto start = Clock::now();
        if (threads > 0) torch::set_num_threads(threads);
        Bench b;
        b.device = torch::Device(device_s);
        b.text_tokens = text_tokens;
        b.passes = passes;
        b.warmup = warmup;
        b.ref_frames = std::max<int64_t>(1, std::llround(ref_seconds * 12.5));
        b.ref_text_tokens = ref_text_tokens;
        std::vector<train::PromptMode> prompts;
        for (const auto& n : prompt_names) prompts.push_back(train::parse_prompt_mode(n));
        torch::Dtype dtype = b.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
        model::RandomModelSpec spec;
        spec.size = preset;
        b.cfg = model::ModelConfig::from_json(model::random_model_config(spec), "random " + preset);
        model::BuildOptions bo;
        bo.device = b.device;
        bo.dtype = dtype;
        model::TTSModel m(b.cfg, bo);
        if (b.device.is_cuda())
            randomize_on_device(*m);
        else
            model::randomize_parameters(*m, 1);
        b.talker = m->talker;
        model::freeze_base(*m);
        b.talker->train();

        b.ctx.ids = train::LayoutIds::from_config(b.cfg);
        b.ctx.prefix = train::codec_prefix(b.cfg, "english");
        b.ctx.speaker = (torch::randn({b.cfg.talker.hidden_size}) * 0.1).to(b.device, dtype);
        const double build_s = seconds_since(start);

        nlohmann::json skipped = nlohmann::json::array();
        const nlohmann::json runs =
            run_cases(b, cases(prompts, ranks, batches, clips, frames), max_seconds, start, skipped);
        nlohmann::json doc{{"bench", "train"},
                           {"preset", preset},
                           {"device", device_s},
                           {"dtype", b.device.is_cuda() ? "bf16" : "fp32"},
                           {"threads", torch::get_num_threads()},
                           {"model_build_seconds", build_s},
                           {"runs", runs},
                           {"skipped", skipped},
                           {"total_seconds", seconds_since(start)}};
        emit(doc, json_path);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_train: %s\n", e.what());
        return 1;
    }
}
