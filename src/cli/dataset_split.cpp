// `alexandria dataset split DIR --val 0.1`: a held-out set fixed by content hash (dataset/split.h).
#include <memory>

#include "alexandria/dataset/split.h"
#include "cli.h"

namespace dataset_split_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string dir;
    double val = 0.1;
    bool dry_run = false, json = false;
};

int run(const Options& o) {
    using namespace alexandria;
    auto r = o.dry_run ? dataset::compute_split(o.dir, o.val) : dataset::split_dataset(o.dir, o.val);
    if (o.json) {
        auto j = r.to_json();
        j["written"] = !o.dry_run;
        j["train_file"] = dataset::split_file(o.dir, "train").string();
        j["val_file"] = dataset::split_file(o.dir, "val").string();
        cli::print_json(j);
        return 0;
    }
    cli::say("{}: {} train, {} val (--val {:g}: clips whose content bucket is below {} of 10000){}", o.dir,
             r.train.size(), r.val.size(), o.val, r.threshold, o.dry_run ? " [dry run, nothing written]" : "");
    for (auto& f : r.ref_kept_in_train) cli::say("  {} is the reference: kept in train", f);
    if (!r.fallback.empty())
        cli::say("  no clip fell below the threshold; {} (the lowest bucket) is val so eval has something to score",
                 r.fallback);
    for (auto& f : r.missing) cli::say("  {} is missing: in neither side (split again once it exists)", f);
    if (r.val.empty() && o.val > 0) cli::say("  warning: the validation set is empty (too few clips)");
    if (!o.dry_run)
        cli::say("  wrote {} and {}", dataset::split_file(o.dir, "train").string(),
                 dataset::split_file(o.dir, "val").string());
    return 0;
}

const bool group = alexandria::cli::add_group("dataset", "Dataset folders: check, import, prepare, split, build");
const bool registered = alexandria::cli::add_command(
    {"split", "dataset", "Hold out a validation set for eval, fixed by each clip's content hash",
     [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("DIR", o->dir, "Dataset folder")->required();
         app.add_option("--val", o->val, "Fraction of clips held out for validation, 0 to 1")->capture_default_str();
         app.add_flag("--dry-run", o->dry_run, "Show the split without writing DIR/splits/")->capture_default_str();
         app.add_flag("--json", o->json, "Machine output on stdout");
         return [o] { return run(*o); };
     }});

}  // namespace dataset_split_command
