// `alexandria adapter merge`.
#include "alexandria/synth/inspect.h"
#include "cli.h"

namespace alexandria::cli {
namespace adapter_merge_command {  // named, not anonymous: the command files compile together in unity builds

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

}  // namespace adapter_merge_command
}  // namespace alexandria::cli
