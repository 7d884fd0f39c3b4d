// `alexandria adapter info` (a light command: the adapter's files are read without libtorch).
#include "alexandria/model/adapter_files.h"
#include "cli.h"

namespace alexandria::cli {
namespace adapter_info_command {  // named, not anonymous: the command files compile together in unity builds

struct InfoOpts {
    std::string adapter;
    bool json = false;
};

int run_info(const InfoOpts& o) {
    auto j = model::adapter_summary(o.adapter);
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

const bool info_registered = add_command({"info", "adapter", "Show an adapter's settings, size and voice",
    [](CLI::App& app) -> Action {
        auto o = std::make_shared<InfoOpts>();
        app.add_option("adapter", o->adapter, "Adapter folder")->required();
        app.add_flag("--json", o->json, "Machine-readable output on stdout");
        return [o] { return run_info(*o); };
    }});

}  // namespace adapter_info_command
}  // namespace alexandria::cli
