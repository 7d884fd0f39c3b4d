// `alexandria adapter merge` and `alexandria adapter info`.
#include "alexandria/synth/inspect.h"
#include "cli.h"

namespace alexandria::cli {
namespace {

struct MergeOpts {
    synth::MergeOptions m;
    bool json = false;
};

int run_merge(const MergeOpts& o) {
    auto r = synth::merge_adapter_folder(o.m);
    say("merged {} LoRA modules at scale {} into {} ({} weights)", r.merged_modules, o.m.scale, r.out, r.dtype);
    if (o.json) print_json({{"out", r.out}, {"merged_modules", r.merged_modules}, {"scale", o.m.scale}, {"dtype", r.dtype}});
    return 0;
}

struct InfoOpts {
    std::string adapter;
    bool json = false;
};

int run_info(const InfoOpts& o) {
    auto j = synth::adapter_info(o.adapter);
    if (o.json) {
        print_json(j);
        return 0;
    }
    say("adapter      {}", o.adapter);
    say("LoRA         r {}, alpha {}, scaling {}{}", j["r"].get<int64_t>(), j["alpha"].get<double>(),
        j["scaling"].get<double>(), j["use_rslora"].get<bool>() ? " (rsLoRA)" : "");
    say("targets      {}", j["target_modules"].dump());
    say("tensors      {} ({} talker, {} code predictor), {} parameters", j["tensors"].get<size_t>(),
        j["talker_tensors"].get<int64_t>(), j["code_predictor_tensors"].get<int64_t>(), j["parameters"].get<int64_t>());
    if (j.contains("fits")) {
        auto fits = j["fits"].get<std::string>();
        bool named = fits == "1.7B" || fits == "0.6B";
        say("fits         {}", named ? fmt::format("{} (talker width {})", fits, j["talker_hidden_size"].get<int64_t>()) : fits);
    }
    const auto& v = j["voice"];
    say("voice        speaker embedding: {}; ref_sample.wav: {}; language: {}",
        v["speaker_embedding"].get<std::string>().empty() ? "no" : "yes",
        v["ref_sample"].get<std::string>().empty() ? "no" : "yes",
        v["language"].get<std::string>().empty() ? "not recorded (auto)" : v["language"].get<std::string>());
    if (j.contains("training_meta")) {
        const auto& m = j["training_meta"];
        for (const char* k : {"model_name", "epochs", "lr", "num_samples", "final_loss", "objective"})
            if (m.contains(k)) say("{:<12} {}", k, m[k].is_string() ? m[k].get<std::string>() : m[k].dump());
    }
    return 0;
}

const bool group = add_group("adapter", "Inspect and merge LoRA adapters");

const bool merge_registered = add_command({"merge", "adapter", "Fold an adapter into a standalone model folder",
    [](CLI::App& app) -> Action {
        auto o = std::make_shared<MergeOpts>();
        app.add_option("--model", o->m.model, "Base model folder or Hugging Face id in the local cache")->required();
        app.add_option("--adapter", o->m.adapter, "Adapter folder")->required();
        app.add_option("--out", o->m.out, "New model folder")->required();
        app.add_option("--scale", o->m.scale, "LoRA strength baked into the weights")->capture_default_str();
        app.add_option("--dtype", o->m.dtype, "auto (the base file's dtype) | f32 | bf16")->capture_default_str();
        app.add_flag("--force", o->m.force, "Replace --out if it exists");
        app.add_flag("--json", o->json, "Machine-readable summary on stdout");
        return [o] { return run_merge(*o); };
    }});

const bool info_registered = add_command({"info", "adapter", "Show an adapter's settings, size and voice",
    [](CLI::App& app) -> Action {
        auto o = std::make_shared<InfoOpts>();
        app.add_option("adapter", o->adapter, "Adapter folder")->required();
        app.add_flag("--json", o->json, "Machine-readable output on stdout");
        return [o] { return run_info(*o); };
    }});

}  // namespace
}  // namespace alexandria::cli
