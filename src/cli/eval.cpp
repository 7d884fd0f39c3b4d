// `alexandria eval`: held-out loss, generation checks and the seed's verdict for one or several adapters.
// Exit 0: usable (with several adapters: one is recommended); 3: not usable; 2: bad input; 1: the work failed.
#include "alexandria/eval/evaluate.h"
#include "cli.h"

namespace alexandria::cli {
namespace eval_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    eval::EvalOptions e;
    CLI::Option* out = nullptr;
    bool no_base = false, no_loss = false, no_generate = false, no_gate = false, json = false;
};

int run(Options& o) {
    o.e.compare_base = !o.no_base;
    o.e.loss = !o.no_loss;
    o.e.generate = !o.no_generate;
    o.e.html_report = o.out->count() > 0;  // without --out, nothing beyond what eval always wrote
    o.e.tool_version = version_string();
    o.e.log = [](const std::string& line) { say("{}", line); };
    eval::EvalReport r = eval::evaluate(o.e);
    std::fputs("\n", stderr);
    std::fputs(eval::format_table(r).c_str(), stderr);
    if (o.json) print_json(r.json);
    if (!r.usable && o.no_gate) {
        say("--no-gate: not usable, exiting 0 anyway");
        return 0;
    }
    return r.exit_code;
}

const bool registered = add_command(
    {"eval", "", "Judge voice adapters: held-out loss, EOS/runaway, speaking rate, speaker similarity",
     [](CLI::App& app) -> Action {
         auto o = std::make_shared<Options>();
         auto& e = o->e;
         app.add_option("--model", e.model, "Base model folder or Hugging Face id")->required();
         app.add_option("--adapter", e.adapters,
                        "Adapter folder(s); several (e.g. OUT/checkpoints/epoch-*) are compared and one is picked")
             ->required()
             ->expected(1, -1);
         app.add_option("--data", e.data, "Dataset folder (its splits/val.jsonl is the held-out set when present)")
             ->required();
         app.add_option("--prompts", e.prompts_file,
                        "Prompts file: one text per line, or JSONL {\"text\", \"kind\", \"id\"} (default: built-in "
                        "short/sentence/paragraph set)")
             ->capture_default_str();
         app.add_option("--seeds", e.seeds, "Seeds per prompt")->capture_default_str();
         app.add_option("--first-seed", e.first_seed, "First seed (seeds are consecutive)")->capture_default_str();
         o->out = app.add_option("--out", e.out,
                                 "Output folder: eval.json and the WAVs; when given, also report.html (a page to "
                                 "listen with: every take side by side, the verdict and the loss curves)")
                      ->capture_default_str();
         app.add_option("--language", e.language,
                        "Language of the prompts (default: each adapter's training language, else english)")
             ->capture_default_str();
         app.add_option("--prompt", e.prompt,
                        "xvector or icl (default: each adapter's training prompt mode, training_meta.json 'prompt'; "
                        "icl puts the dataset's reference clip and ref_text.txt in every prompt)");
         app.add_option("--device", e.device, "auto (CUDA when there is one), cpu, cuda or cuda:N")->capture_default_str();
         app.add_option("--dtype", e.dtype, "auto (f32 on CPU, bf16 on CUDA), f32, bf16, f16")->capture_default_str();
         app.add_option("--batch", e.batch,
                       "Outputs generated at once, each with its own seed and stop (default: 8 on CPU, 32 on CUDA)");
        app.add_option("--max-frames", e.max_frames, "Frame cap (0 = generation_config.json max_new_tokens)")
             ->capture_default_str();
         app.add_option("--frames-per-token", e.frames_per_token, "Runaway guard: frames allowed per text token")
             ->capture_default_str();
         app.add_option("--min-frames", e.min_frames, "Runaway guard: frames allowed at least")->capture_default_str();
         app.add_option("--max-seconds", e.max_seconds, "Skip held-out clips longer than this")->capture_default_str();
         app.add_flag("--no-base", o->no_base, "Skip the base model comparison (speaker similarity without adapter)");
         app.add_flag("--no-loss", o->no_loss, "Skip the held-out loss");
         app.add_flag("--no-generate", o->no_generate, "Skip the generation checks (loss only)");
         app.add_flag("--no-gate", o->no_gate,
                      "Exit 0 even when no adapter is usable (the verdict is still reported); for smoke tests on "
                      "random weights");
         app.add_flag("--json", o->json, "Also print eval.json on stdout");
         return [o] { return run(*o); };
     }});

}  // namespace eval_command
}  // namespace alexandria::cli
