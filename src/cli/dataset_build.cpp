// `alexandria dataset build NAME --model VOICEDESIGN --description TEXT --rows ROWS`: Alexandria's Dataset Builder
// as a restartable command (synth/dataset_build.h), then the check.
#include <cstdio>
#include <memory>

#include <fmt/ranges.h>

#include "alexandria/dataset/check.h"
#include "alexandria/io/device.h"
#include "alexandria/synth/dataset_build.h"
#include "cli.h"

namespace dataset_build_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string name, model, description, rows, device = "auto", language = "auto", rows_template;
    int64_t seed = -1;
    int ref_index = -1;
    int max_attempts = 3;
    double max_seconds = 30.0, max_cps = 40.0, min_cps = 5.0;
    int64_t max_frames = 0, batch = 0;
    bool accept_suspect = false, force = false, restart = false, json = false;
};

int run(const Options& o) {
    using namespace alexandria;
    if (!o.rows_template.empty()) {
        std::string t = synth::rows_template(o.rows_template);
        std::fwrite(t.data(), 1, t.size(), stdout);
        cli::say("Tips (from the guide): mix emotions, pacing and sentence lengths; keep the short utterances (they "
                 "teach the model to stop); the long calm passage last is the reference, with a fixed seed; aim for "
                 "15-30 minutes of audio in all.");
        return 0;
    }
    if (o.name.empty()) throw InputError("NAME (the dataset folder) is required");
    if (o.model.empty()) throw InputError("--model is required (a VoiceDesign checkpoint)");
    if (o.description.empty()) throw InputError("--description is required (the voice, e.g. \"A male tenor with a steady, clean tone\")");
    if (o.rows.empty()) throw InputError("--rows is required (see --rows-template jsonl)");

    synth::LoadOptions lo;
    lo.model = o.model;
    const io::DeviceChoice dev = io::resolve_device(o.device);
    lo.device = dev.device;
    lo.dtype = dev.dtype;

    synth::DatasetBuildOptions b;
    b.out = o.name;
    b.description = o.description;
    b.rows = o.rows;
    if (o.seed >= 0) b.seed = uint64_t(o.seed);
    if (o.ref_index >= 0) b.ref_index = o.ref_index;
    b.max_attempts = o.max_attempts;
    b.max_seconds = o.max_seconds;
    b.max_chars_per_second = o.max_cps;
    b.min_chars_per_second = o.min_cps;
    b.accept_suspect = o.accept_suspect;
    b.force = o.force;
    b.restart = o.restart;
    b.language = o.language == "auto" ? "" : o.language;
    b.max_frames = o.max_frames;
    if (o.batch < 0) throw InputError("--batch must be at least 1");
    b.batch = o.batch;
    // rows are validated before the model is loaded: a typo costs nothing
    synth::read_build_rows(o.rows);

    synth::Synthesizer synth(lo);
    auto rep = synth::build_dataset(synth, b, [&](const synth::BuildRowResult& r, int done, int total) {
        std::string preview = r.row.text.size() > 60 ? r.row.text.substr(0, 60) + "..." : r.row.text;
        std::string what = r.reused ? "kept from the last run"
                           : r.status == "done"
                               ? fmt::format("{:.1f} s, seed {}{}", r.seconds, r.seed_used,
                                             r.suspect ? fmt::format(" (kept despite: {})", r.reason) : "")
                               : fmt::format("FAILED after seeds {}: {}", fmt::join(r.seeds_tried, ", "), r.reason);
        cli::say("[{}/{}] [{}] \"{}\" {}", done, total, r.row.emotion, preview, what);
    });
    dataset::CheckOptions copt;
    copt.max_seconds = o.max_seconds;
    auto check = dataset::check_dataset(rep.out, copt);
    if (o.json) {
        auto j = rep.to_json();
        j["check"] = dataset::to_json(check);
        cli::print_json(j);
    } else {
        cli::say("[DONE] Generated {}/{} samples ({} kept from earlier runs, {} failed) into {}; reference: {}",
                 rep.done, rep.rows.size(), rep.reused, rep.failed, rep.out, rep.ref_note);
        if (rep.failed > 0)
            cli::say("Failed rows are left out; run the same command again to retry them with the next seeds.");
        cli::say("{}", dataset::to_text(check));
    }
    if (!check.trainable()) return check.exit_code();
    return rep.complete() ? 0 : 1;
}

const bool group = alexandria::cli::add_group("dataset", "Dataset folders: check, import, prepare, split, build");
const bool registered = alexandria::cli::add_command(
    {"build", "dataset", "Synthesise a dataset from a voice description with a VoiceDesign model (restartable)",
     [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("NAME", o->name, "Dataset folder to build (the work state lives in NAME.build/)");
         app.add_option("--model", o->model, "VoiceDesign model folder or Hugging Face repo id")->capture_default_str();
         app.add_option("--description", o->description, "Root voice description (the instruct)")
             ->capture_default_str();
         app.add_option("--rows", o->rows, "Rows file: .jsonl, .json or .csv of emotion, text, optional seed")
             ->capture_default_str();
         app.add_option("--rows-template", o->rows_template,
                        "Print a starter rows file (jsonl or csv) following the guide's tips, and exit")
             ->capture_default_str();
         app.add_option("--seed", o->seed, "Seed for rows without their own (-1: random; the seed used is recorded)")
             ->capture_default_str();
         app.add_option("--ref-index", o->ref_index, "Row (0-based) to use as the reference (-1: the longest neutral row)")
             ->capture_default_str();
         app.add_option("--max-attempts", o->max_attempts,
                        "Generations per row (the next seed each time) before a suspect row is reported")
             ->capture_default_str();
         app.add_option("--max-seconds", o->max_seconds, "A row longer than this is suspect (training skips it)")
             ->capture_default_str();
         app.add_option("--max-cps", o->max_cps, "Suspect when faster than this many characters per second")
             ->capture_default_str();
         app.add_option("--min-cps", o->min_cps, "Suspect when slower than this (plus 2 s of slack)")
             ->capture_default_str();
         app.add_option("--max-frames", o->max_frames, "Frame cap per row (0: the checkpoint's max_new_tokens)")
             ->capture_default_str();
         app.add_option("--batch", o->batch,
                       "Rows generated at once, each with its own seed and stop (default: 8 on CPU, 32 on CUDA)");
        app.add_option("--language", o->language, "Language (auto, english, chinese, ...)")->capture_default_str();
         app.add_option("--device", o->device, "auto (CUDA when there is one), cpu, cuda or cuda:N")->capture_default_str();
         app.add_flag("--accept-suspect", o->accept_suspect,
                      "Keep rows still suspect after every attempt (with a warning) instead of leaving them out")
             ->capture_default_str();
         app.add_flag("--force", o->force, "Replace NAME even if it was not made by dataset build")
             ->capture_default_str();
         app.add_flag("--restart", o->restart, "Regenerate every row, ignoring NAME.build/")->capture_default_str();
         app.add_flag("--json", o->json, "Machine output on stdout");
         return [o] { return run(*o); };
     }});

}  // namespace dataset_build_command
