// `alexandria dataset check DIR`: is this folder trainable, and what will training see? (dataset/check.h)
// Exit 2 when it cannot be trained, 0 otherwise (warnings included).
#include <memory>

#include "alexandria/dataset/check.h"
#include "cli.h"

namespace dataset_check_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string dir;
    double max_seconds = alexandria::dataset::kDefaultMaxSeconds;
    double lr = 0;
    int epochs = 0;
    bool json = false;
    CLI::Option* lr_opt = nullptr;
    CLI::Option* epochs_opt = nullptr;
};

int run(const Options& o) {
    using namespace alexandria;
    dataset::CheckOptions co;
    co.max_seconds = o.max_seconds;
    if (o.lr_opt->count()) co.lr = o.lr;
    if (o.epochs_opt->count()) co.epochs = o.epochs;
    auto report = dataset::check_dataset(o.dir, co);
    if (o.json)
        cli::print_json(dataset::to_json(report));
    else
        cli::say("{}", dataset::to_text(report));
    return report.exit_code();
}

const bool group =
    alexandria::cli::add_group("dataset", "Check, prepare, split, import and build dataset folders");
const bool registered = alexandria::cli::add_command(
    {"check", "dataset", "Validate a dataset folder and show what training will see",
     [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("DIR", o->dir, "Dataset folder (metadata.jsonl, ref.wav, ref_text.txt, clips)")->required();
         app.add_option("--max-seconds", o->max_seconds, "Clips longer than this are skipped by training")
             ->capture_default_str()
             ->check(CLI::PositiveNumber);
         o->lr_opt = app.add_option("--lr", o->lr, "Fixed learning rate for the recommendation (default: recommended)")
                         ->check(CLI::PositiveNumber);
         o->epochs_opt = app.add_option("--epochs", o->epochs, "Fixed epochs for the recommendation (default: recommended)")
                             ->check(CLI::Range(1, 100000));
         app.add_flag("--json", o->json, "Machine output (the whole report) on stdout");
         return [o] { return run(*o); };
     }});

}  // namespace dataset_check_command
