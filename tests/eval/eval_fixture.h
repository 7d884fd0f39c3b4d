#pragma once
// The eval tests' shared fixture: a tiny random Base model (weights, tokenizer, codec) with three adapters made
// once per process, the bundled tiny dataset, and small options that keep a run to seconds.
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/eval/evaluate.h"
#include "alexandria/io/files.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/text/tokenizer.h"
#include "support/test_support.h"

namespace alexandria::test {

struct Tiny {
    TempDir tmp;
    std::string model, adapter_a, adapter_b, zero_adapter;
    Tiny() {
        using nlohmann::json;
        model = (tmp / "model").string();
        model::RandomModelSpec spec;
        spec.size = "tiny";
        spec.type = "base";
        spec.seed = 21;
        spec.dtype = "f32";
        model::write_random_model(model, spec);
        text::write_tiny_tokenizer(model);
        codec::write_random_codec((fs::path(model) / "speech_tokenizer").string(), "tiny", 9);
        auto lm = model::load_model(model);
        model::LoraConfig lc;
        lc.r = 4;
        lc.alpha = 8;
        auto make = [&](const std::string& dir, double stddev, uint64_t seed) {
            model::attach_lora(lm.model->talker, lc);
            torch::manual_seed(seed);
            if (stddev > 0) {
                torch::NoGradGuard ng;
                for (auto& [name, t] : model::lora_state(lm.model->talker)) t.normal_(0.0, stddev);
            }
            model::save_adapter(lm.model->talker, lc, dir);
            io::write_file_atomic(fs::path(dir) / "training_meta.json",
                                  json{{"language", "english"}, {"objective", "alexandria"}, {"epochs_run", 1}}.dump());
            model::detach_lora(lm.model->talker);
        };
        adapter_a = (tmp / "run" / "checkpoints" / "epoch-1").string();
        adapter_b = (tmp / "run" / "checkpoints" / "epoch-2").string();
        zero_adapter = (tmp / "zero").string();
        make(adapter_a, 0.05, 1);
        make(adapter_b, 0.3, 2);
        make(zero_adapter, 0.0, 3);  // fresh LoRA: B = 0, the base model exactly
        // The training run's metrics log, as train writes it: two epochs of two optimiser steps.
        std::string log;
        for (int step = 1; step <= 4; ++step) {
            const int epoch = (step + 1) / 2;
            log += json{{"type", "step"}, {"epoch", epoch}, {"step", step}, {"loss", 4.6 - 0.1 * step},
                        {"alexandria_loss", 4.6 - 0.1 * step}, {"aligned_loss", 5.0 - 0.1 * step}}
                       .dump() +
                   "\n";
            if (step % 2 == 0)
                log += json{{"type", "epoch"}, {"epoch", epoch}, {"loss", 4.55 - 0.2 * epoch},
                            {"alexandria", {{"loss", 4.55 - 0.2 * epoch}}}, {"aligned", {{"loss", 4.95 - 0.2 * epoch}}}}
                           .dump() +
                       "\n";
        }
        io::write_file_atomic(tmp / "run" / "metrics.jsonl", log);
    }
};
inline Tiny& tiny() {
    static Tiny t;
    return t;
}

inline fs::path copy_tiny_voice(const fs::path& into) {
    fs::path src = source_dir() / "examples" / "tiny-voice", dst = into / "tiny-voice";
    fs::create_directories(dst);
    for (auto& e : fs::directory_iterator(src))
        if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename());
    return dst;
}

inline std::string write_prompts(const fs::path& dir) {
    auto p = (dir / "prompts.txt").string();
    std::ofstream(p) << "Oh!\nThe rain stopped at noon.\n";
    return p;
}

inline eval::EvalOptions small_options(const fs::path& tmp, const fs::path& data) {
    eval::EvalOptions o;
    o.model = tiny().model;
    o.adapters = {tiny().adapter_a};
    o.data = data.string();
    o.prompts_file = write_prompts(tmp);
    o.seeds = 2;
    o.out = (tmp / "eval-out").string();
    o.max_frames = 6;
    return o;
}

}  // namespace alexandria::test
