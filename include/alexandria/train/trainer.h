#pragma once
// `alexandria train`: a dataset folder in, a LoRA voice adapter out (DESIGN §4, §6, §7; issue 6).
//
// The output folder (interchangeable with Alexandria's and PEFT's):
//   adapter_config.json, adapter_model.safetensors   the chosen epoch's adapter (PEFT keys, fp32)
//   training_meta.json                               Alexandria's keys + ours (objective, prompt mode, both losses per epoch,
//                                                    chosen epoch and why, recommendation, dataset hash, ...)
//   ref_sample.wav                                   a byte copy of the reference audio
//   speaker_embedding.safetensors                    the speaker vector training used ("speaker_embedding" [H])
//   metrics.jsonl                                    one line per optimiser step... per micro-batch and per epoch
//   loss.svg                                         both objectives' epoch losses over the seed's loss bands
//   checkpoints/epoch-N/                             every epoch's adapter (adapter_config.json + weights)
// While training, only OUT/checkpoints/ changes (epoch adapters, `resume/` state, the live metrics log); the rest of
// the folder is replaced in one atomic step at the end, so an interrupted or killed run never leaves a half-written
// adapter and an earlier adapter in OUT stays intact until the new one is complete.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alexandria/model/talker.h"
#include "alexandria/train/early_stop.h"
#include "alexandria/train/layout.h"

namespace alexandria::train {

namespace fs = std::filesystem;

struct TrainOptions {
    std::string model;                 // folder or HF repo id (io::locate_model)
    fs::path data;                     // dataset folder
    fs::path out;                      // adapter folder
    Objective objective = Objective::Alexandria;
    // xvector: train_lora.py's prompt (speaker vector only). icl: every sequence is the ICL prompt synth builds
    // (ref_text.txt + the text, ref.wav's codes, the speaker vector); needs ref_text.txt, and a clip whose audio is
    // the reference is left out (it would teach the model to copy its prompt).
    PromptMode prompt = PromptMode::XVector;
    std::string language = "english";  // codec prefix: a codec_language_id key, or "auto"
    std::optional<int> epochs;         // default: plan::recommend
    std::optional<double> lr;          // default: plan::recommend
    int lora_r = 64;
    double lora_alpha = 128;
    double lora_dropout = 0.05;
    int grad_accum = 4;
    int batch = 1;
    uint64_t seed = 0;
    // Loss band (DESIGN §7). Unset: 4.15 / 4.1 for the alexandria objective, off for aligned.
    std::optional<double> target_loss, loss_floor;
    bool early_stop = true;            // false: run every epoch (the floor still picks the kept adapter)
    double max_seconds = 30.0;
    std::string device = "auto";       // auto | cpu | cuda | cuda:N
    bool resume = false;

    // Stop requests: checked after every optimiser step; when set, the run writes a resumable checkpoint and
    // returns Interrupted. `stop_after_steps` (> 0) does the same after that many optimiser steps of this
    // process (tests simulate an interrupt with it).
    const std::atomic<int>* stop_signal = nullptr;
    int64_t stop_after_steps = 0;
    // Alexandria's protocol lines (without newline), e.g. to stdout. Null: silent.
    std::function<void(const std::string&)> protocol;
    bool progress_bar = false;         // io::Progress on stderr
    std::string tool_version;          // recorded in training_meta.json
    // Called with the trained model (LoRA attached, last epoch's weights) just before train() returns a completed
    // or diverged run: tests check base weights and logits with it.
    std::function<void(model::TTSModel&)> inspect;
};

struct EpochRecord {
    int epoch = 0;
    double loss = 0;                   // chosen objective's epoch average
    double alexandria_loss = 0, alexandria_talker = 0, alexandria_sub = 0;
    double aligned_loss = 0, aligned_talker = 0, aligned_sub = 0;
    int64_t samples = 0;               // samples that contributed
    int64_t optimizer_steps = 0;
    int64_t oom_skips = 0;
    double seconds = 0;
};

enum class TrainStatus { Completed, Interrupted, Diverged };

struct TrainResult {
    TrainStatus status = TrainStatus::Completed;
    std::vector<EpochRecord> epochs;
    EpochChoice choice;
    bool stopped_early = false;
    std::string stop_reason;
    int planned_epochs = 0;
    double lr = 0;
    int64_t samples = 0;
    fs::path out;
    nlohmann::json meta;               // training_meta.json as written (empty when nothing was written)
    std::string message;               // for Interrupted / Diverged
};

// Runs everything: prepare (cache), recommend, LoRA, the loop, checkpoints, the output folder.
// InputError: bad options or dataset (exit 2). Error: the work failed. Interrupted/Diverged are returned (the
// command line exits 1 for both).
TrainResult train(const TrainOptions& options);

// The default loss band for an objective (DESIGN §6/§7): alexandria → 4.15 / 4.1, aligned → none, unless given.
LossBandPolicy loss_band(const TrainOptions& options);

// Python-style "{:,}" (thousands separated by commas), for the `[TRAIN] LoRA applied` line.
std::string thousands(int64_t n);
// Python's repr of a float ("5e-06", "1e-05", "0.0001"), for the `[TRAIN] Config` line.
std::string py_repr(double x);

// The plot written as loss.svg: both objectives' epoch losses, the seed's loss bands shaded, the chosen epoch marked.
std::string loss_svg(const std::vector<EpochRecord>& epochs, Objective chosen, int chosen_epoch);

}  // namespace alexandria::train
