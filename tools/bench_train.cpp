// Training throughput: one training pass = a teacher-forced forward of a batch, both objectives' losses, backward,
// gradient clipping and an AdamW update of the LoRA tensors, on a random model of the given preset.
//
//   bench_train --preset tiny --frames 100 --text-tokens 30 --rank 64 --batch 1 --passes 20 [--device cuda]
//
// Prints passes/s, ms/pass, samples/s and peak memory (RSS on the CPU; the CUDA caching allocator's peak on a GPU)
// as JSON on stdout.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/torch_compat.h"
#include "alexandria/model/config.h"
#include "alexandria/model/layers.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/model/talker.h"
#include "alexandria/train/objective.h"

#if __has_include(<c10/cuda/CUDACachingAllocator.h>) && defined(ALEXANDRIA_CUDA_STATS)
#include <c10/cuda/CUDACachingAllocator.h>
#define HAVE_CUDA_STATS 1
#endif

using namespace alexandria;

namespace {

double rss_peak_mib() {
    std::ifstream f("/proc/self/status");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"bench_train: LoRA training passes per second on a random model"};
    std::string preset = "tiny", device_s = "cpu";
    int64_t frames = 100, text_tokens = 30, rank = 64, batch = 1, passes = 10, warmup = 2;
    int threads = 0;
    app.add_option("--preset", preset, "tiny | 0.6b | 1.7b")->capture_default_str();
    app.add_option("--frames", frames, "Codec frames per sample (12.5 per second)")->capture_default_str();
    app.add_option("--text-tokens", text_tokens, "Text content tokens per sample")->capture_default_str();
    app.add_option("--rank", rank, "LoRA rank")->capture_default_str();
    app.add_option("--batch", batch, "Samples per pass")->capture_default_str();
    app.add_option("--passes", passes, "Timed passes")->capture_default_str();
    app.add_option("--warmup", warmup, "Untimed passes first")->capture_default_str();
    app.add_option("--device", device_s, "cpu | cuda | cuda:N")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0 = libtorch's default)")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    try {
        if (threads > 0) torch::set_num_threads(threads);
        torch::Device device(device_s);
        torch::Dtype dtype = device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
        model::RandomModelSpec spec;
        spec.size = preset;
        auto cfg = model::ModelConfig::from_json(model::random_model_config(spec), "random " + preset);
        model::BuildOptions bo;
        bo.device = device;
        bo.dtype = dtype;
        model::TTSModel m(cfg, bo);
        model::randomize_parameters(*m, 1);
        model::Talker talker = m->talker;
        torch::manual_seed(0);
        model::LoraConfig lc;
        lc.r = rank;
        lc.alpha = 128;
        lc.dropout = 0.05;
        model::freeze_base(*m);
        model::attach_lora(talker, lc);
        talker->train();
        auto params = model::lora_parameters(talker);
        int64_t lora_count = model::lora_parameter_count(talker);

        train::PromptContext ctx;
        ctx.ids = train::LayoutIds::from_config(cfg);
        ctx.prefix = train::codec_prefix(cfg, "english");
        ctx.speaker = (torch::randn({cfg.talker.hidden_size}) * 0.1).to(device, dtype);
        std::vector<train::Sample> samples(batch);
        for (auto& s : samples) {
            s.role = {151644, 77091, 198};
            for (int64_t i = 0; i < text_tokens; ++i) s.content.push_back(1000 + i);
            s.codes = torch::randint(0, 2048, {frames, 16}, torch::kInt64);
        }
        std::vector<const train::Sample*> ptrs;
        for (auto& s : samples) ptrs.push_back(&s);
        torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-5).weight_decay(0.01));
        auto pass = [&] {
            auto bl = train::batch_loss(talker, ctx, ptrs, train::Objective::Alexandria, 1.0 / double(batch));
            bl.backward_loss.backward();
            torch::nn::utils::clip_grad_norm_(params, 1.0);
            opt.step();
            opt.zero_grad();
            return bl.samples[0].alexandria.total;
        };
        auto sync = [&] {
            if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? -1 : device.index());
        };
        for (int64_t i = 0; i < warmup; ++i) pass();
        sync();
        auto t0 = std::chrono::steady_clock::now();
        double last = 0;
        for (int64_t i = 0; i < passes; ++i) last = pass();
        sync();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json j{{"preset", preset},
                         {"device", device_s},
                         {"dtype", device.is_cuda() ? "bf16" : "fp32"},
                         {"threads", torch::get_num_threads()},
                         {"frames", frames},
                         {"text_tokens", text_tokens},
                         {"sequence_length", 11 + text_tokens + frames},
                         {"rank", rank},
                         {"batch", batch},
                         {"passes", passes},
                         {"lora_parameters", lora_count},
                         {"passes_per_second", passes / secs},
                         {"ms_per_pass", 1000.0 * secs / passes},
                         {"samples_per_second", passes * batch / secs},
                         {"peak_rss_mib", rss_peak_mib()},
                         {"last_loss", last}};
#ifdef HAVE_CUDA_STATS
        if (device.is_cuda()) {
            auto st = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
            j["cuda_peak_allocated_mib"] =
                double(st.allocated_bytes[static_cast<size_t>(c10::cuda::CUDACachingAllocator::StatType::AGGREGATE)].peak) /
                (1024.0 * 1024.0);
        }
#endif
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_train: %s\n", e.what());
        return 1;
    }
}
