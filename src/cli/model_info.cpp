// `alexandria model info`: what a model folder is and holds, without loading its weights.
#include "alexandria/synth/inspect.h"
#include "cli.h"

#include <fmt/ranges.h>

namespace alexandria::cli {
namespace model_info_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string model;
    bool json = false;
};

std::string millions(int64_t n) { return fmt::format("{:.1f}M", static_cast<double>(n) / 1e6); }

int run(const Options& o) {
    auto j = synth::model_info(o.model);
    if (o.json) {
        print_json(j);
        return 0;
    }
    say("model        {}", j["path"].get<std::string>());
    say("type         {} ({})", j["type"].get<std::string>(), j["size"].get<std::string>());
    say("languages    {}", fmt::join(j["languages"].get<std::vector<std::string>>(), ", "));
    auto speakers = j["speakers"].get<std::vector<std::string>>();
    say("speakers     {}", speakers.empty() ? std::string("none") : fmt::format("{}", fmt::join(speakers, ", ")));
    say("voice        {}{}", j["clones_from_audio"].get<bool>() ? "clones from audio (speaker encoder)" : "built in",
        j["supports_instruct"].get<bool>() ? ", follows --instruct" : ", ignores instructions");
    const auto& p = j["parameters"];
    say("parameters   {} total: talker {} (text embedding {}), code predictor {}, speaker encoder {}",
        millions(p["total"].get<int64_t>()), millions(p["talker"].get<int64_t>()),
        millions(p["talker_text_embedding"].get<int64_t>()), millions(p["code_predictor"].get<int64_t>()),
        millions(p["speaker_encoder"].get<int64_t>()));
    const auto& w = j["weights"];
    if (w["present"].get<bool>())
        say("weights      model.safetensors, {} tensors, {}, {:.1f} MB, {}", w["tensors"].get<size_t>(),
            fmt::join(w["dtypes"].get<std::vector<std::string>>(), "/"), w["bytes"].get<double>() / 1e6,
            w["matches_config"].get<bool>() ? "matches config.json"
                                            : fmt::format("DOES NOT match config.json ({} missing, {} mis-shaped, "
                                                          "{} unexpected)",
                                                          w["missing"].get<size_t>(), w["mis_shaped"].get<size_t>(),
                                                          w["unexpected"].get<size_t>()));
    else
        say("weights      model.safetensors missing");
    auto tok = j["tokenizer"].get<std::string>();
    say("tokenizer    {}", tok.empty() ? std::string("missing") : tok);
    say("codec        {}", j["codec"]["present"].get<bool>() ? "speech_tokenizer/ present" : "speech_tokenizer/ missing");
    if (j.contains("merged_from"))
        say("merged from  {} (scale {})", j["merged_from"].value("adapter", std::string()),
            j["merged_from"].value("scale", 1.0));
    return 0;
}

const bool group = add_group("model", "Inspect model folders");
const bool registered = add_command({"info", "model", "Show a model folder's type, languages, speakers and sizes",
    [](CLI::App& app) -> Action {
        auto o = std::make_shared<Options>();
        app.add_option("--model", o->model, "Model folder or Hugging Face id in the local cache")->required();
        app.add_flag("--json", o->json, "Machine-readable output on stdout");
        return [o] { return run(*o); };
    }});

}  // namespace model_info_command
}  // namespace alexandria::cli
