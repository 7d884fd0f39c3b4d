// Talker + code predictor speed on random weights (or a model folder): prefill, per-frame decoding (talker step +
// 15 code-predictor steps, greedy) as frames/s and real-time factor (12.5 frames per audio second), and one LoRA
// training step (teacher-forced talker + code predictor, forward and backward). Prints figures; asserts nothing.
//
//   bench_model [--preset tiny|0.6b|1.7b] [--model DIR] [--device cpu|cuda] [--dtype fp32|bf16] [--prompt 64]
//               [--frames 24] [--train-frames 100] [--threads N]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>

#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"

namespace {

using namespace alexandria;
using namespace alexandria::model;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void sync(torch::Device d) {
    if (d.is_cuda()) torch::cuda::synchronize();
}

// Prefill of `prompt` random rows, then `frames` greedy frames (code predictor + talker step each).
void decode(TTSModel& m, torch::Device device, torch::Dtype dtype, int64_t prompt, int64_t frames) {
    auto& talker = m->talker;
    const int64_t H = m->config().talker.hidden_size;
    auto opts = torch::TensorOptions().device(device).dtype(dtype);
    torch::NoGradGuard ng;
    KVCache cache = talker->make_cache(1, prompt + frames + 1);
    KVCache cp_cache = talker->code_predictor->make_cache(1);
    auto x = torch::randn({1, prompt, H}, opts) * 0.1;
    talker->forward(x.narrow(1, 0, std::min<int64_t>(prompt, 8)));  // warm-up
    sync(device);
    auto t0 = Clock::now();
    auto out = talker->forward(x, &cache);
    sync(device);
    double prefill = since(t0);
    auto greedy = [](const torch::Tensor& logits, int64_t) { return logits.argmax(-1); };
    auto h = out.hidden.select(1, prompt - 1);
    auto c0 = out.logits.select(1, prompt - 1).narrow(-1, 0, 2048).argmax(-1);
    double cp_time = 0, talker_time = 0;
    for (int64_t f = 0; f < frames; ++f) {
        auto t1 = Clock::now();
        auto codes = talker->predict_frame(h, c0, cp_cache, greedy);
        sync(device);
        cp_time += since(t1);
        t1 = Clock::now();
        auto step = talker->forward(talker->frame_embed(codes).unsqueeze(1), &cache);
        h = step.hidden.select(1, 0);
        c0 = step.logits.select(1, 0).narrow(-1, 0, 2048).argmax(-1);
        sync(device);
        talker_time += since(t1);
    }
    double dec = cp_time + talker_time;
    std::printf("prefill %lld rows: %.3f s (%.0f rows/s)\n", static_cast<long long>(prompt), prefill, prompt / prefill);
    std::printf("decode %lld frames: %.3f s, %.1f frames/s, real-time factor %.2fx (12.5 frames per second)\n",
                static_cast<long long>(frames), dec, frames / dec, frames / dec / 12.5);
    std::printf("  per frame: code predictor %.1f ms (15 steps), talker step %.1f ms\n", 1e3 * cp_time / frames,
                1e3 * talker_time / frames);
}

// One LoRA training step (teacher-forced talker + code predictor, forward and backward), best of 3.
void train_step(TTSModel& m, torch::Device device, torch::Dtype dtype, int64_t prompt, int64_t train_frames) {
    auto& talker = m->talker;
    const int64_t H = m->config().talker.hidden_size;
    auto opts = torch::TensorOptions().device(device).dtype(dtype);
    LoraConfig lc;
    attach_lora(talker, lc);
    freeze_base(*m);
    m->train();
    auto params = lora_parameters(talker);
    torch::optim::AdamW opt(params, torch::optim::AdamWOptions(1e-5).weight_decay(0.01));
    int64_t S = prompt + train_frames;
    auto x = torch::randn({1, S, H}, opts) * 0.1;
    auto labels = torch::randint(0, 2048, {S - 1}, torch::TensorOptions().device(device).dtype(torch::kInt64));
    auto codes = torch::randint(0, 2048, {train_frames, 16}, torch::TensorOptions().device(device).dtype(torch::kInt64));
    double best = 1e30;
    for (int it = 0; it < 3; ++it) {
        sync(device);
        auto t0 = Clock::now();
        auto out = talker->forward(x);
        auto loss = torch::nn::functional::cross_entropy(out.logits.narrow(1, 0, S - 1)[0].to(torch::kFloat32), labels);
        auto cp = talker->code_predictor_logits(out.hidden[0].narrow(0, prompt - 1, train_frames), codes);
        loss = loss + 0.3 * torch::nn::functional::cross_entropy(cp.reshape({-1, cp.size(-1)}).to(torch::kFloat32),
                                                                 codes.narrow(1, 1, 15).reshape({-1}));
        loss.backward();
        opt.step();
        opt.zero_grad();
        sync(device);
        best = std::min(best, since(t0));
    }
    std::printf("LoRA r=32 train step (%lld rows, %lld frames): %.3f s (best of 3), %lld LoRA parameters\n",
                static_cast<long long>(S), static_cast<long long>(train_frames), best,
                static_cast<long long>(lora_parameter_count(talker)));
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Benchmark the talker and code predictor"};
    std::string preset = "tiny", model_dir, device_name = "cpu", dtype_name = "fp32";
    int64_t prompt = 64, frames = 24, train_frames = 100;
    int threads = 0;
    app.add_option("--preset", preset, "random model size when --model is not given")
        ->capture_default_str()
        ->check(CLI::IsMember({"tiny", "0.6b", "1.7b"}));
    app.add_option("--model", model_dir, "a model folder to load instead of random weights");
    app.add_option("--device", device_name, "cpu or cuda")->capture_default_str();
    app.add_option("--dtype", dtype_name, "fp32 or bf16")->capture_default_str()->check(CLI::IsMember({"fp32", "bf16"}));
    app.add_option("--prompt", prompt, "prompt rows")->capture_default_str();
    app.add_option("--frames", frames, "frames to decode")->capture_default_str();
    app.add_option("--train-frames", train_frames, "frames in the training sequence (0: skip)")->capture_default_str();
    app.add_option("--threads", threads, "CPU threads (0: libtorch default)")->capture_default_str();
    CLI11_PARSE(app, argc, argv);
    alexandria::io::keep_freed_memory();  // as the commands do

    try {
        if (threads > 0) torch::set_num_threads(threads);
        torch::Device device(device_name);
        torch::Dtype dtype = dtype_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
        auto t0 = Clock::now();
        TTSModel m{nullptr};
        if (!model_dir.empty()) {
            m = load_model(model_dir, device, dtype).model;
        } else {
            RandomModelSpec spec;
            spec.size = preset;
            spec.type = "custom_voice";  // no speaker encoder (not measured here); exists at both sizes
            ModelConfig cfg = ModelConfig::from_json(random_model_config(spec), preset);
            BuildOptions o;
            o.device = device;
            o.dtype = dtype;
            m = TTSModel(cfg, o);
            randomize_parameters(*m, 1);
        }
        m->eval();
        sync(device);
        std::printf("model: %s on %s %s, built in %.1f s, %d CPU threads\n", model_dir.empty() ? preset.c_str() : model_dir.c_str(),
                    device_name.c_str(), dtype_name.c_str(), since(t0), torch::get_num_threads());
        decode(m, device, dtype, prompt, frames);
        if (train_frames > 0) train_step(m, device, dtype, prompt, train_frames);
        return 0;
    } catch (const Error& e) {
        std::fprintf(stderr, "bench_model: %s\n", e.what());
        return e.exit_code();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_model: %s\n", e.what());
        return 1;
    }
}
