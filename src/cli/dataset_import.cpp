// `alexandria dataset import SRC --out DIR`: own recordings → a dataset folder (dataset/import.h), then the check.
#include <memory>

#include <nlohmann/json.hpp>

#include "alexandria/dataset/check.h"
#include "alexandria/dataset/import.h"
#include "cli.h"

namespace dataset_import_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string source, out, format = "auto", ref, ref_text;
    double max_seconds = alexandria::dataset::kDefaultMaxSeconds;
    bool normalized = false, force = false, json = false;
};

void say_skipped(const alexandria::dataset::ImportReport& r) {
    for (auto& s : r.skipped) alexandria::cli::say("  skipped {}: {}", s.source, s.reason);
    for (auto& w : r.warnings) alexandria::cli::say("  warning: {}", w);
}

int run(const Options& o) {
    using namespace alexandria;
    dataset::ImportOptions opt;
    opt.source = o.source;
    opt.out = o.out;
    opt.format = dataset::parse_source_format(o.format);
    opt.max_seconds = o.max_seconds;
    opt.ref = o.ref;
    opt.ref_text = o.ref_text;
    opt.use_normalized = o.normalized;
    opt.force = o.force;

    dataset::ImportReport rep;
    try {
        rep = dataset::import_dataset(opt);
    } catch (const dataset::ImportFailed& e) {
        // The partial report still tells the user what to fix, entry by entry.
        if (o.json) {
            auto j = e.report().to_json();
            j["error"] = e.what();
            cli::print_json(j);
        } else {
            say_skipped(e.report());
        }
        throw;
    }
    if (!o.json) {
        cli::say("{}: imported {} of {} entries ({:.1f} min of audio) from {} ({}) into {}", o.out, rep.clips.size(),
                 rep.entries, rep.total_seconds / 60.0, o.source, dataset::to_string(rep.format), o.out);
        say_skipped(rep);
        cli::say("reference: {} ({:.1f} s), {}", rep.ref_source, rep.ref_seconds, rep.ref_reason);
    }
    dataset::CheckOptions copt;
    copt.max_seconds = o.max_seconds;
    auto check = dataset::check_dataset(o.out, copt);
    if (o.json) {
        auto j = rep.to_json();
        j["check"] = dataset::to_json(check);
        cli::print_json(j);
    } else {
        cli::say("{}", dataset::to_text(check));
    }
    return check.exit_code();
}

const bool group = alexandria::cli::add_group("dataset", "Dataset folders: check, import, prepare, split, build");
const bool registered = alexandria::cli::add_command(
    {"import", "dataset",
     "Convert recordings (folder of audio + .txt, LJSpeech metadata.csv, or JSONL) into a dataset folder",
     [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("SRC", o->source,
                        "Folder of audio files with same-named .txt transcripts, a metadata.csv (file|text[|normalized]) "
                        "or a .jsonl (audio_filepath|audio, text); a folder holding metadata.csv or metadata.jsonl is "
                        "read as that")
             ->required();
         app.add_option("--out", o->out, "Dataset folder to create (written atomically)")->required();
         app.add_option("--format", o->format, "Source form: auto, folder, ljspeech or jsonl")->capture_default_str();
         app.add_option("--max-seconds", o->max_seconds, "Leave out clips longer than this (with a warning)")
             ->capture_default_str();
         app.add_option("--ref", o->ref,
                        "Reference clip: a source clip's file or name, or another audio file (then with --ref-text "
                        "or a same-named .txt); default: the best-scoring calm 5-15 s clip")
             ->capture_default_str();
         app.add_option("--ref-text", o->ref_text, "Transcript of a --ref that is not one of the source clips")
             ->capture_default_str();
         app.add_flag("--normalized", o->normalized, "LJSpeech: use the third (normalized) column as the text")
             ->capture_default_str();
         app.add_flag("--force", o->force, "Replace --out if it exists and is not empty")->capture_default_str();
         app.add_flag("--json", o->json, "Machine output on stdout (the import report and the check)");
         return [o] { return run(*o); };
     }});

}  // namespace dataset_import_command
