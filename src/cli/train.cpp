// `alexandria train`: flags → train::train(). Alexandria's progress protocol goes to stdout (flushed per line, so its
// UI can follow a pipe); human messages and the progress bar go to stderr.
#include <csignal>
#include <cstdio>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "alexandria/io/files.h"
#include "alexandria/plan/loss_bands.h"
#include "alexandria/plan/recommend.h"
#include "alexandria/train/trainer.h"
#include "cli.h"

namespace train_command {  // named, not anonymous: the command files compile together in unity builds

std::atomic<int> g_stop{0};

extern "C" void on_stop_signal(int sig) {
    // First signal: finish the current step, checkpoint, exit. A second one: stop now.
    if (g_stop.exchange(sig) != 0) {
        std::signal(sig, SIG_DFL);
        std::raise(sig);
    }
}

void emit(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

struct Options {
    std::string model, data, out, objective = "alexandria", prompt = "xvector", language = "english", device = "auto";
    std::optional<int> epochs;
    std::optional<double> lr, target_loss, loss_floor;
    int lora_r = alexandria::plan::kLoraR;
    double lora_alpha = alexandria::plan::kLoraAlpha;
    double lora_dropout = 0.05;
    int grad_accum = alexandria::plan::kGradAccum;
    int batch = 1;
    uint64_t seed = 0;
    double max_seconds = 30.0;
    bool no_early_stop = false, resume = false, no_progress = false;
};

int run(const Options& o) {
    using namespace alexandria;
    train::TrainOptions t;
    t.model = o.model;
    t.data = o.data;
    t.out = o.out;
    t.objective = train::parse_objective(o.objective);
    t.prompt = train::parse_prompt_mode(o.prompt);
    t.language = o.language;
    t.epochs = o.epochs;
    t.lr = o.lr;
    t.lora_r = o.lora_r;
    t.lora_alpha = o.lora_alpha;
    t.lora_dropout = o.lora_dropout;
    t.grad_accum = o.grad_accum;
    t.batch = o.batch;
    t.seed = o.seed;
    t.target_loss = o.target_loss;
    t.loss_floor = o.loss_floor;
    t.early_stop = !o.no_early_stop;
    t.max_seconds = o.max_seconds;
    t.device = o.device;
    t.resume = o.resume;
    t.stop_signal = &g_stop;
    t.protocol = emit;
    t.progress_bar = !o.no_progress && io::is_terminal(2);
    t.tool_version = cli::version_string();
    std::signal(SIGINT, on_stop_signal);
    std::signal(SIGTERM, on_stop_signal);
    try {
        auto r = train::train(t);
        if (r.status == train::TrainStatus::Interrupted) {
            cli::say("alexandria train: {}", r.message);
            return 1;
        }
        if (r.status == train::TrainStatus::Diverged) {
            emit("[ERROR] " + r.message);
            if (r.choice.epoch >= 1)
                cli::say("alexandria train: {}; kept epoch {} in {}", r.message, r.choice.epoch, r.out.string());
            else
                cli::say("alexandria train: {}; no epoch finished, nothing was written", r.message);
            return 1;
        }
        cli::say("alexandria train: kept epoch {} of {} ({}) in {}", r.choice.epoch, r.epochs.size(),
                 r.choice.reason, r.out.string());
        return 0;
    } catch (const Error& e) {
        emit(std::string("[ERROR] ") + e.what());
        throw;
    } catch (const std::exception& e) {
        emit(std::string("[ERROR] ") + e.what());
        throw;
    }
}

const bool registered = alexandria::cli::add_command(
    {"train", "", "Train a LoRA voice adapter from a dataset folder", [](CLI::App& app) -> alexandria::cli::Action {
         auto o = std::make_shared<Options>();
         app.add_option("--model", o->model, "Base model folder or Hugging Face repo id")->required();
         app.add_option("--data", o->data, "Dataset folder (metadata.jsonl, ref.wav, clips)")->required();
         app.add_option("--out", o->out, "Adapter folder to write")->required();
         app.add_option("--objective", o->objective, "alexandria (train_lora.py's loss) or aligned")
             ->capture_default_str();
         app.add_option("--prompt", o->prompt,
                        "xvector (speaker vector only, as train_lora.py; the seed's loss bands were measured with "
                        "it) or icl (every sequence is synth's ICL prompt: ref_text.txt + the text, ref.wav's codes "
                        "and the speaker vector; needs ref_text.txt; the adapter then speaks in ICL mode)")
             ->capture_default_str();
         app.add_option("--language", o->language, "Codec language token (a model language, or auto)")
             ->capture_default_str();
         app.add_option("--epochs", o->epochs, "Epochs (default: recommend's answer for this dataset)");
         app.add_option("--lr", o->lr, "Learning rate (default: recommend's answer for this dataset)");
         app.add_option("--lora-r", o->lora_r, "LoRA rank")->capture_default_str();
         app.add_option("--lora-alpha", o->lora_alpha, "LoRA alpha")->capture_default_str();
         app.add_option("--lora-dropout", o->lora_dropout, "LoRA dropout")->capture_default_str();
         app.add_option("--grad-accum", o->grad_accum, "Gradient accumulation (optimizer step every N batches)")
             ->capture_default_str();
         app.add_option("--batch", o->batch, "Samples per padded forward pass")->capture_default_str();
         app.add_option("--seed", o->seed, "Seed for shuffling and LoRA init (recorded)")->capture_default_str();
         app.add_option("--target-loss", o->target_loss,
                        "Stop after the first epoch at or below this loss (default 4.15 for alexandria, off for "
                        "aligned)");
         app.add_option("--loss-floor", o->loss_floor,
                        "Keep the last epoch at or above this loss (default 4.1 for alexandria, off for aligned)");
         app.add_flag("--no-early-stop", o->no_early_stop, "Run every epoch (the floor still picks the adapter)");
         app.add_option("--max-seconds", o->max_seconds, "Skip clips longer than this")->capture_default_str();
         app.add_option("--device", o->device, "auto (CUDA when there is one), cpu, cuda or cuda:N")->capture_default_str();
         app.add_flag("--resume", o->resume, "Continue an interrupted run in --out");
         app.add_flag("--no-progress", o->no_progress, "No progress bar on stderr");
         return [o] { return run(*o); };
     }});

}  // namespace train_command
