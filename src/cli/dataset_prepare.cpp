// `alexandria dataset prepare DIR --model M`: fill the codes cache (dataset/prepare.h).
#include <cstdio>
#include <memory>

#include "alexandria/dataset/prepare.h"
#include "alexandria/io/model_location.h"
#include "alexandria/io/device.h"
#include "cli.h"

namespace dataset_prepare_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string dir, model, device = "cpu";
    double max_seconds = alexandria::dataset::kDefaultMaxSeconds;
    bool json = false;
};

int run(const Options& o) {
    using namespace alexandria;
    dataset::PrepareOptions p;
    p.max_seconds = o.max_seconds;
    p.reference_codes = true;  // the cache then serves train --prompt icl as well
    // The codec runs in fp32 on every device (codes are the training targets); only the device is chosen here.
    p.device = io::resolve_device(o.device).device;
    // Alexandria's [DATA] lines: on stdout unless --json (then stdout is the JSON document).
    p.log = [&](const std::string& line) {
        if (o.json) return;
        std::fputs(line.c_str(), stdout);
        std::fputc('\n', stdout);
        std::fflush(stdout);
    };
    auto r = dataset::prepare(o.dir, io::locate_model(o.model), p);
    if (o.json) {
        cli::print_json(r.to_json());
    } else {
        cli::say("{}: {} clips ready ({} encoded now, {} from the cache), {} skipped; speaker embedding {}; reference "
                 "codes {} ({} frames); clip check {}",
                 o.dir, r.clips.size(), r.encoded, r.reused, r.skipped.size(),
                 r.speaker_computed_now ? "computed" : "from the cache",
                 r.reference_codes_now ? "encoded" : "from the cache", r.reference_frames,
                 r.verdict_cached ? "from the cache (no audio read)" : "ran");
    }
    return 0;
}

const bool group = alexandria::cli::add_group("dataset", "Dataset folders: check, import, prepare, split, build");
const bool registered = alexandria::cli::add_command(
    {"prepare", "dataset", "Encode every usable clip and the reference into the codes cache (DIR/.alexandria/)",
     [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("DIR", o->dir, "Dataset folder")->required();
         app.add_option("--model", o->model, "Base model folder or Hugging Face repo id")->required();
         app.add_option("--max-seconds", o->max_seconds, "Skip clips longer than this")->capture_default_str();
         app.add_option("--device", o->device, "cpu (the default: the same codes on every machine), auto, cuda or cuda:N")->capture_default_str();
         app.add_flag("--json", o->json, "Machine output on stdout");
         return [o] { return run(*o); };
     }});

}  // namespace dataset_prepare_command
