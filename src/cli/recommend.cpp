// `alexandria recommend DIR | --samples N [--lr X] [--epochs N]`: epochs and learning rate for a dataset's
// size (plan/recommend.h). A folder's usable clips are counted by dataset check's rule.
#include <memory>

#include "alexandria/dataset/check.h"
#include "alexandria/plan/recommend.h"
#include "cli.h"

namespace recommend_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string dir;
    int64_t samples = 0;
    double lr = 0;
    int epochs = 0;
    int lora_r = alexandria::plan::kLoraR;
    int lora_alpha = alexandria::plan::kLoraAlpha;
    double max_seconds = alexandria::dataset::kDefaultMaxSeconds;
    bool json = false;
    CLI::Option* samples_opt = nullptr;
    CLI::Option* lr_opt = nullptr;
    CLI::Option* epochs_opt = nullptr;
};

int run(const Options& o) {
    using namespace alexandria;
    const bool have_dir = !o.dir.empty();
    const bool have_samples = o.samples_opt->count() > 0;
    if (have_dir == have_samples)
        throw InputError(have_dir ? "give a dataset folder or --samples N, not both"
                                  : "give a dataset folder (its usable clips are counted) or --samples N");
    plan::Request q;
    q.lora_r = o.lora_r;
    q.lora_alpha = o.lora_alpha;
    if (o.lr_opt->count()) q.lr = o.lr;
    if (o.epochs_opt->count()) q.epochs = o.epochs;

    nlohmann::json source;
    if (have_dir) {
        dataset::CheckOptions co;
        co.max_seconds = o.max_seconds;
        auto report = dataset::check_dataset(o.dir, co);
        if (!report.trainable()) {
            std::string first;
            for (auto& p : report.problems)
                if (p.severity == dataset::Severity::Error) {
                    first = p.message;
                    break;
                }
            throw InputError(fmt::format("{} cannot be trained: {} (`alexandria dataset check {}` shows every "
                                         "problem)", o.dir, first, o.dir));
        }
        q.samples = report.usable;
        source = {{"dataset", o.dir}, {"entries", report.entries}, {"usable", report.usable},
                  {"usable_minutes", report.usable_seconds / 60}};
        if (!o.json)
            cli::say("{}: {} usable clip{} of {} ({:.1f} min of audio)", o.dir, report.usable,
                     report.usable == 1 ? "" : "s", report.entries, report.usable_seconds / 60);
    } else {
        q.samples = o.samples;
        source = {{"samples", o.samples}};
    }
    auto r = plan::recommend(q);
    if (o.json) {
        auto j = plan::to_json(r);
        j["source"] = source;
        cli::print_json(j);
    } else {
        cli::say("{}", plan::to_text(r));
    }
    return 0;
}

const bool registered = alexandria::cli::add_command(
    {"recommend", "", "Suggest epochs and learning rate for a dataset's size (the seed's heuristic)",
     [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("DIR", o->dir, "Dataset folder: its usable clips are counted as `dataset check` does");
         o->samples_opt = app.add_option("--samples", o->samples, "Number of training clips (instead of DIR; no default)")
                              ->check(CLI::Range(int64_t(1), int64_t(1000000000)));
         o->lr_opt = app.add_option("--lr", o->lr, "Fixed learning rate: recommend epochs for it (default: the recommended rate)")
                         ->check(CLI::PositiveNumber);
         o->epochs_opt = app.add_option("--epochs", o->epochs, "Fixed epochs: report the exposure, suggest an lr (default: the recommended epochs)")
                             ->check(CLI::Range(1, 100000));
         app.add_option("--lora-r", o->lora_r, "LoRA rank (alpha/r scales the update)")
             ->capture_default_str()
             ->check(CLI::Range(1, 4096));
         app.add_option("--lora-alpha", o->lora_alpha, "LoRA alpha")
             ->capture_default_str()
             ->check(CLI::Range(1, 1 << 20));
         app.add_option("--max-seconds", o->max_seconds, "With DIR: clips longer than this are not counted")
             ->capture_default_str()
             ->check(CLI::PositiveNumber);
         app.add_flag("--json", o->json, "Machine output on stdout");
         return [o] { return run(*o); };
     }});

}  // namespace recommend_command
