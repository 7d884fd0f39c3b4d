#include "alexandria/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <new>
#include <random>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/dataset/dataset.h"
#include "alexandria/dataset/prepare.h"
#include "alexandria/dataset/split.h"
#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/model_location.h"
#include "alexandria/io/progress.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/io/torch_compat.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/plan/loss_bands.h"
#include "alexandria/plan/recommend.h"
#include "alexandria/text/prompt.h"
#include "alexandria/text/tokenizer.h"
#include "alexandria/train/objective.h"
#include "alexandria/version.h"

namespace alexandria::train {

using nlohmann::json;

LossBandPolicy loss_band(const TrainOptions& o) {
    LossBandPolicy p;
    if (o.objective == Objective::Alexandria) {
        p.target = o.target_loss.value_or(plan::kTargetLoss);
        p.floor = o.loss_floor.value_or(plan::kLossFloor);
    } else {
        p.target = o.target_loss;
        p.floor = o.loss_floor;
    }
    if (!o.early_stop) p.target.reset();
    return p;
}

namespace {

constexpr double kBeta1 = 0.9, kBeta2 = 0.999, kEps = 1e-8, kWeightDecay = 0.01, kClipNorm = 1.0;
constexpr int kMaxConsecutiveOom = 10;

using io::DeviceChoice;
using io::resolve_device;

std::string torch_dtype_name(torch::Dtype d) { return d == torch::kBFloat16 ? "torch.bfloat16" : "torch.float32"; }

// Per-epoch shuffle from the seed alone, so a resumed run re-derives the same order without storing it.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int epoch) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) * 0xBF58476D1CE4E5B9ull + 1;
    std::mt19937_64 rng(z);
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[static_cast<int64_t>(rng() % uint64_t(i + 1))]);
    return order;
}

// AdamW exactly as torch.optim.AdamW (single-tensor form): decoupled decay, bias-corrected moments. Kept here (not
// torch::optim) so its state is ours to checkpoint and restore bit for bit on every libtorch version.
struct AdamW {
    double lr;
    int64_t step = 0;
    std::vector<torch::Tensor> params, exp_avg, exp_avg_sq;
    AdamW(std::vector<torch::Tensor> p, double lr_) : lr(lr_), params(std::move(p)) {
        for (auto& t : params) {
            exp_avg.push_back(torch::zeros_like(t));
            exp_avg_sq.push_back(torch::zeros_like(t));
        }
    }
    void zero_grad() {
        for (auto& p : params)
            if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
    }
    void update() {
        torch::NoGradGuard ng;
        ++step;
        const double bc1 = 1 - std::pow(kBeta1, double(step)), bc2 = 1 - std::pow(kBeta2, double(step));
        for (size_t i = 0; i < params.size(); ++i) {
            auto& p = params[i];
            if (!p.grad().defined()) continue;
            const auto& g = p.grad();
            p.mul_(1 - lr * kWeightDecay);
            exp_avg[i].mul_(kBeta1).add_(g, 1 - kBeta1);
            exp_avg_sq[i].mul_(kBeta2).addcmul_(g, g, 1 - kBeta2);
            auto denom = (exp_avg_sq[i].sqrt() / std::sqrt(bc2)).add_(kEps);
            p.addcdiv_(exp_avg[i], denom, -lr / bc1);
        }
    }
};

bool is_oom(const std::exception& e) {
    if (dynamic_cast<const std::bad_alloc*>(&e)) return true;
#if ALEXANDRIA_TORCH_AT_LEAST(1, 13)
    if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) return true;
#endif
    std::string w = e.what();
    return w.find("out of memory") != std::string::npos || w.find("CUDA error: out of memory") != std::string::npos;
}

// Everything a resumed run must agree on with the run it continues.
json fingerprint(const TrainOptions& o, int epochs, double lr, const std::string& dataset_hash, const DeviceChoice& d,
                 const std::string& icl_ref_text) {
    json fp{{"objective", objective_name(o.objective)},
                {"language", o.language},
                {"epochs", epochs},
                {"lr", lr},
                {"lora_r", o.lora_r},
                {"lora_alpha", o.lora_alpha},
                {"lora_dropout", o.lora_dropout},
                {"grad_accum", o.grad_accum},
                {"batch", o.batch},
                {"seed", o.seed},
                {"dataset_hash", dataset_hash},
                {"precision", d.dtype == torch::kBFloat16 ? "bf16" : "fp32"}};
    // Only ICL runs carry these, so x-vector checkpoints made before prompt modes existed still resume.
    if (o.prompt == PromptMode::Icl) {
        fp["prompt"] = prompt_mode_name(o.prompt);
        fp["ref_text"] = io::hash_string(icl_ref_text);
    }
    return fp;
}

json epoch_json(const EpochRecord& e) {
    return json{{"epoch", e.epoch},
                {"loss", e.loss},
                {"alexandria", {{"loss", e.alexandria_loss}, {"talker_loss", e.alexandria_talker}, {"sub_loss", e.alexandria_sub}}},
                {"aligned", {{"loss", e.aligned_loss}, {"talker_loss", e.aligned_talker}, {"sub_loss", e.aligned_sub}}},
                {"samples", e.samples},
                {"optimizer_steps", e.optimizer_steps},
                {"oom_skips", e.oom_skips},
                {"seconds", e.seconds}};
}

EpochRecord epoch_from_json(const json& j) {
    EpochRecord e;
    e.epoch = j.at("epoch");
    e.loss = j.at("loss");
    e.alexandria_loss = j.at("alexandria").at("loss");
    e.alexandria_talker = j.at("alexandria").at("talker_loss");
    e.alexandria_sub = j.at("alexandria").at("sub_loss");
    e.aligned_loss = j.at("aligned").at("loss");
    e.aligned_talker = j.at("aligned").at("talker_loss");
    e.aligned_sub = j.at("aligned").at("sub_loss");
    e.samples = j.at("samples");
    e.optimizer_steps = j.at("optimizer_steps");
    e.oom_skips = j.at("oom_skips");
    e.seconds = j.at("seconds");
    return e;
}

// Running sums of one epoch (doubles, like train_lora.py's `epoch_loss += loss.item()`).
struct EpochSums {
    double alex = 0, alex_talker = 0, alex_sub = 0, align = 0, align_talker = 0, align_sub = 0;
    int64_t samples = 0, steps = 0, oom = 0;
    double seconds = 0;
    json to_json() const {
        return json{{"alex", alex}, {"alex_talker", alex_talker}, {"alex_sub", alex_sub}, {"align", align},
                    {"align_talker", align_talker}, {"align_sub", align_sub}, {"samples", samples},
                    {"steps", steps}, {"oom", oom}, {"seconds", seconds}};
    }
    static EpochSums from_json(const json& j) {
        EpochSums s;
        s.alex = j.at("alex");
        s.alex_talker = j.at("alex_talker");
        s.alex_sub = j.at("alex_sub");
        s.align = j.at("align");
        s.align_talker = j.at("align_talker");
        s.align_sub = j.at("align_sub");
        s.samples = j.at("samples");
        s.steps = j.at("steps");
        s.oom = j.at("oom");
        s.seconds = j.at("seconds");
        return s;
    }
};

void copy_file_bytes(const fs::path& from, const fs::path& to) {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// Hard link when possible (the epoch checkpoints are large at 1.7B), else a copy.
void link_or_copy(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::create_hard_link(from, to, ec);
    if (ec) copy_file_bytes(from, to);
}

class MetricsLog {
public:
    explicit MetricsLog(fs::path path) : path_(std::move(path)) {}
    void truncate_to(uint64_t size) {
        std::error_code ec;
        if (fs::exists(path_, ec)) fs::resize_file(path_, size, ec);
    }
    void clear() {
        std::error_code ec;
        fs::remove(path_, ec);
    }
    void write(const json& j) {
        std::ofstream f(path_, std::ios::app | std::ios::binary);
        f << j.dump() << "\n";
        f.flush();
        if (!f) throw Error(fmt::format("{}: cannot write", path_.string()));
    }
    uint64_t size() const {
        std::error_code ec;
        auto s = fs::file_size(path_, ec);
        return ec ? 0 : s;
    }
    const fs::path& path() const { return path_; }

private:
    fs::path path_;
};

// ---------------------------------------------------------------------------------------------------------------
// The training run, top to bottom: validate_options → run_paths → load_base_model → load_training_data → plan_run → attach_lora →
// start_or_resume → run_epoch (train_micro_batch, optimizer_step, save_checkpoint) → close_epoch → finish.
// Each step takes what it needs as arguments and returns what it made; nothing else is shared.

using Clock = std::chrono::steady_clock;
using Say = std::function<void(const std::string&)>;

// --- set-up ---------------------------------------------------------------------------------------------------

struct RunPaths {
    fs::path out;         // the adapter folder
    fs::path work;        // out/checkpoints: the only part of out that changes while training
    fs::path resume_dir;  // work/resume: the state a --resume continues from
};

void validate_options(const TrainOptions& o) {
    if (o.lora_r < 1) throw InputError(fmt::format("--lora-r must be >= 1 (got {})", o.lora_r));
    if (!(o.lora_alpha > 0)) throw InputError(fmt::format("--lora-alpha must be > 0 (got {})", o.lora_alpha));
    if (o.grad_accum < 1) throw InputError(fmt::format("--grad-accum must be >= 1 (got {})", o.grad_accum));
    if (o.batch < 1) throw InputError(fmt::format("--batch must be >= 1 (got {})", o.batch));
    if (o.epochs && *o.epochs < 1) throw InputError(fmt::format("--epochs must be >= 1 (got {})", *o.epochs));
    if (o.lr && !(std::isfinite(*o.lr) && *o.lr > 0)) throw InputError("--lr must be a positive number");
    if (!(o.lora_dropout >= 0 && o.lora_dropout < 1)) throw InputError("--lora-dropout must be in [0, 1)");
    if (!(o.max_seconds > 0)) throw InputError("--max-seconds must be > 0");
    if (o.out.empty()) throw InputError("--out: an adapter folder is required");
}

// The output folder must be a folder, and a resumable run in it is continued only when asked for.
RunPaths run_paths(const TrainOptions& o) {
    RunPaths p;
    p.out = fs::absolute(o.out).lexically_normal();
    p.work = p.out / "checkpoints";
    p.resume_dir = p.work / "resume";
    if (fs::exists(p.out) && !fs::is_directory(p.out))
        throw InputError(fmt::format("--out {}: not a folder", p.out.string()));
    const fs::path state = p.resume_dir / "state.json";
    if (!o.resume && fs::exists(state))
        throw InputError(fmt::format("{}: holds an interrupted run; continue it with --resume, or delete {} to start "
                                     "over",
                                     p.out.string(), p.work.string()));
    if (o.resume && !fs::exists(state))
        throw InputError(fmt::format("--resume: {} has no resumable checkpoint ({} is missing)", p.out.string(),
                                     state.string()));
    return p;
}

struct BaseModel {
    model::LoadedModel lm;
    model::Talker talker;
    text::Tokenizer tok;
    PromptContext ctx;  // ids and codec prefix; the speaker vector is filled in by load_training_data
};

BaseModel load_base_model(const TrainOptions& o, const std::string& model_dir, const DeviceChoice& dev,
                          const Say& say) {
    say("[TRAIN] Loading Base model...");
    model::LoadedModel lm = model::load_model(model_dir, dev.device, dev.dtype);
    if (!lm.config.is_base() || !lm.model->has_speaker_encoder())
        throw InputError(fmt::format("--model {}: a Base checkpoint is required (tts_model_type is '{}'); voices are "
                                     "trained on Base models",
                                     o.model, lm.config.tts_model_type));
    model::Talker talker = lm.model->talker;
    say("[TRAIN] Base model loaded");
    text::Tokenizer tok = text::Tokenizer::from_folder(model_dir);
    PromptContext ctx;
    ctx.ids = LayoutIds::from_config(lm.config);
    ctx.prefix = codec_prefix(lm.config, o.language);
    return BaseModel{std::move(lm), talker, std::move(tok), std::move(ctx)};
}

// --- data -----------------------------------------------------------------------------------------------------

// The train side of a split, as metadata lines; empty when the folder has no split.
struct SplitSelection {
    bool used = false;
    std::vector<int> lines;
    int held_out = 0;
};

SplitSelection select_split(const fs::path& data) {
    SplitSelection s;
    auto train_side = dataset::load_split(data, "train");
    if (!train_side) return s;
    s.used = true;
    auto val_side = dataset::load_split(data, "val");
    s.held_out = val_side ? static_cast<int>(val_side->size()) : 0;
    dataset::Dataset ds = dataset::Dataset::load(data);
    std::set<std::pair<std::string, std::string>> wanted;
    for (const auto& l : *train_side) wanted.insert({l.audio_filepath, l.text});
    for (const auto& e : ds.entries)
        if (wanted.count({e.audio, e.text})) s.lines.push_back(e.line);
    if (s.lines.empty())
        throw InputError(fmt::format("{}: the split's train side matches no metadata line; run `alexandria "
                                     "dataset split {}` again",
                                     data.string(), data.string()));
    return s;
}

// ICL mode speaks the reference's transcript before the target's: ref_text.txt must hold it (trimmed here).
std::string icl_reference_text(const TrainOptions& o) {
    std::error_code ec;
    if (o.prompt != PromptMode::Icl || !fs::is_directory(o.data, ec)) return {};  // the dataset loader reports that
    const fs::path file = o.data / dataset::kRefTextFile;
    if (!fs::is_regular_file(file, ec))
        throw InputError(fmt::format("{}: missing; --prompt icl puts the reference's exact transcript in every "
                                     "training prompt (write it there, or train with --prompt xvector)",
                                     file.string()));
    std::string t = io::read_file(file);
    auto b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
    if (b == std::string::npos)
        throw InputError(fmt::format("{}: empty; --prompt icl needs the exact transcript of the reference audio",
                                     file.string()));
    return t.substr(b, e - b + 1);
}

struct TrainingData {
    SplitSelection split;
    dataset::PrepareResult prep;
    std::vector<Sample> samples;  // text ids + cached codes, in metadata order
    torch::Tensor speaker_cpu;    // [H] fp32
    int64_t reference_clips_skipped = 0;  // ICL: clips whose audio is the reference
};

// ICL: the reference transcript and codes every prompt carries.
void set_icl_reference(const std::string& ref_text, const dataset::PrepareResult& prep, BaseModel& base) {
    auto ids = text::encode_reference_text(base.tok, ref_text);
    base.ctx.mode = PromptMode::Icl;
    base.ctx.ref_content.assign(ids.begin(), ids.end());
    base.ctx.ref_codes = prep.load_reference_codes();
}

// The codes cache (refreshed as needed), each clip's text ids and codes, and the speaker vector.
TrainingData load_training_data(const TrainOptions& o, const std::string& model_dir, const DeviceChoice& dev,
                                const std::string& icl_ref_text, BaseModel& base, const Say& say) {
    TrainingData d;
    d.split = select_split(o.data);
    dataset::PrepareOptions popt;
    popt.max_seconds = o.max_seconds;
    popt.device = dev.device;
    popt.dtype = torch::kFloat32;  // the codec always encodes in fp32 (codes are ids: no reason to round)
    popt.speaker_dtype = dev.dtype;
    popt.only_lines = d.split.lines;
    popt.speaker_encoder = &base.lm.model->speaker_encoder;
    popt.reference_codes = o.prompt == PromptMode::Icl;
    const SplitSelection& split = d.split;
    popt.log = [&](const std::string& line) {
        // prepare's own "Found" line cannot know about the split; say it as train_lora.py does.
        if (split.used && line.rfind("[DATA] Found ", 0) == 0) {
            say(fmt::format("[DATA] Found {} entries in train split ({} held out in val and NOT trained on)",
                            split.lines.size(), split.held_out));
            return;
        }
        say(line);
    };
    d.prep = dataset::prepare(o.data, model_dir, popt);

    d.samples.reserve(d.prep.clips.size());
    for (const auto& c : d.prep.clips) {
        if (o.prompt == PromptMode::Icl && c.hash == d.prep.reference_hash) {
            // Its prompt would hold its own codes: the model would learn to copy the reference.
            say(fmt::format("[DATA] SKIP {}: the same audio as the reference (--prompt icl would teach the model to "
                            "copy its prompt)",
                            c.audio));
            ++d.reference_clips_skipped;
            continue;
        }
        Sample s;
        s.name = c.audio;
        auto ids = text::encode_target_text(base.tok, c.text);
        s.role.assign(ids.role.begin(), ids.role.end());
        s.content.assign(ids.content.begin(), ids.content.end());
        s.codes = d.prep.load_codes(c);
        d.samples.push_back(std::move(s));
    }
    d.speaker_cpu = d.prep.speaker_embedding();
    if (d.speaker_cpu.numel() != base.lm.config.talker.hidden_size)
        throw Error(fmt::format("speaker embedding has {} values, the talker is {} wide", d.speaker_cpu.numel(),
                                base.lm.config.talker.hidden_size));
    base.ctx.speaker = d.speaker_cpu.to(dev.device, dev.dtype);
    if (d.samples.empty())
        throw InputError(fmt::format("{}: no clip left to train on: every usable clip is the reference audio",
                                     o.data.string()));
    if (o.prompt == PromptMode::Icl) set_icl_reference(icl_ref_text, d.prep, base);
    return d;
}

// Epochs and learning rate (plan::recommend fills in what the user left open), printed before training starts.
plan::Recommendation plan_run(const TrainOptions& o, int64_t samples, const Say& say) {
    plan::Request req;
    req.samples = samples;
    req.epochs = o.epochs;
    req.lr = o.lr;
    req.lora_r = o.lora_r;
    req.lora_alpha = static_cast<int>(std::lround(o.lora_alpha));
    plan::Recommendation rec = plan::recommend(req);
    const std::string text = plan::to_text(rec);
    size_t start = 0;
    while (start <= text.size()) {
        size_t nl = text.find('\n', start);
        say("[TRAIN] Plan: " + text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    say(fmt::format("[TRAIN] Config: epochs={}, lr={}, lora_r={}, lora_alpha={}, grad_accum={}", rec.epochs,
                    py_repr(rec.lr), o.lora_r,
                    std::floor(o.lora_alpha) == o.lora_alpha ? fmt::format("{}", int64_t(o.lora_alpha))
                                                             : py_repr(o.lora_alpha),
                    o.grad_accum));
    return rec;
}

// --- LoRA and optimiser ---------------------------------------------------------------------------------------

struct LoraState {
    model::LoraConfig cfg;
    std::vector<std::pair<std::string, torch::Tensor>> named;  // PEFT names → trainable tensors
    std::vector<torch::Tensor> params;                         // the same tensors, in that order
    AdamW opt;
};

// Seeded LoRA init on a frozen base; the talker is left in training mode.
LoraState attach_lora(const TrainOptions& o, BaseModel& base, double lr, const Say& say) {
    say("[TRAIN] Applying LoRA to talker...");
    torch::manual_seed(o.seed);
    model::LoraConfig lcfg;
    lcfg.r = o.lora_r;
    lcfg.alpha = o.lora_alpha;
    lcfg.dropout = o.lora_dropout;
    model::freeze_base(*base.lm.model);
    model::attach_lora(base.talker, lcfg);
    auto named = model::lora_state(base.talker);
    std::vector<torch::Tensor> params;
    for (auto& [name, t] : named) params.push_back(t);
    int64_t trainable = 0, total_params = 0;
    for (auto& t : params) trainable += t.numel();
    for (auto& p : base.talker->parameters()) total_params += p.numel();
    total_params += trainable;
    say(fmt::format("[TRAIN] LoRA applied: {} trainable / {} total ({:.2f}%)", thousands(trainable),
                    thousands(total_params), 100.0 * double(trainable) / double(total_params)));
    base.talker->train();
    return LoraState{lcfg, named, params, AdamW(params, lr)};
}

// --- resumable state ------------------------------------------------------------------------------------------

// Where the run stands: what a checkpoint stores and a resumed run starts from.
struct RunState {
    std::vector<EpochRecord> history;  // finished epochs
    int epoch = 1;                     // the epoch in progress (1-based)
    int64_t position = 0;              // samples of that epoch already seen
    EpochSums sums;                    // that epoch's running sums
    int64_t global_step = 0;           // optimiser steps since the run began
};

void save_checkpoint(const RunPaths& paths, const json& fp, const LoraState& lora, const RunState& at,
                     const MetricsLog& metrics) {
    io::replace_directory_atomic(paths.resume_dir, [&](const fs::path& tmp) {
        std::vector<std::pair<std::string, torch::Tensor>> t;
        for (size_t i = 0; i < lora.named.size(); ++i) {
            t.emplace_back("lora/" + lora.named[i].first, lora.params[i].detach().to(torch::kCPU).contiguous());
            t.emplace_back("exp_avg/" + lora.named[i].first, lora.opt.exp_avg[i].to(torch::kCPU).contiguous());
            t.emplace_back("exp_avg_sq/" + lora.named[i].first, lora.opt.exp_avg_sq[i].to(torch::kCPU).contiguous());
        }
        {
            auto gen = at::detail::getDefaultCPUGenerator();
            std::lock_guard<std::mutex> lock(gen.mutex());
            t.emplace_back("rng/cpu", gen.get_state().clone());
        }
        io::save_safetensors((tmp / "state.safetensors").string(), t);
        json ep = json::array();
        for (const auto& e : at.history) ep.push_back(epoch_json(e));
        json st{{"fingerprint", fp},         {"epoch", at.epoch},            {"position", at.position},
                {"sums", at.sums.to_json()}, {"optimizer_step", lora.opt.step}, {"global_step", at.global_step},
                {"epochs", ep},              {"metrics_bytes", metrics.size()}};
        io::write_file_atomic(tmp / "state.json", st.dump(1) + "\n");
    });
}

// Restores weights, optimiser moments, the CPU generator and the run state; InputError when the checkpoint was
// made with other settings or data (its fingerprint differs from `fp`).
RunState restore_checkpoint(const RunPaths& paths, const json& fp, LoraState& lora, MetricsLog& metrics) {
    json st;
    try {
        st = json::parse(io::read_file(paths.resume_dir / "state.json"));
    } catch (const json::exception& e) {
        throw InputError(fmt::format("{}: unreadable: {}", (paths.resume_dir / "state.json").string(), e.what()));
    }
    // Every key of either side: a key only one side has (e.g. an ICL checkpoint's "prompt") is a difference too.
    const json& was = st["fingerprint"];
    std::set<std::string> keys;
    for (auto& [k, v] : fp.items()) keys.insert(k);
    if (was.is_object())
        for (auto& [k, v] : was.items()) keys.insert(k);
    std::vector<std::string> diffs;
    for (const auto& k : keys) {
        const bool in_was = was.is_object() && was.contains(k), in_now = fp.contains(k);
        if (in_was && in_now && was[k] == fp[k]) continue;
        diffs.push_back(fmt::format("{} (checkpoint {}, now {})", k, in_was ? was[k].dump() : "none",
                                    in_now ? fp[k].dump() : "none"));
    }
    if (!diffs.empty()) {
        std::string all;
        for (auto& d : diffs) all += (all.empty() ? "" : "; ") + d;
        throw InputError(fmt::format("--resume: the checkpoint in {} was made with different settings or data: {}",
                                     paths.resume_dir.string(), all));
    }
    io::SafetensorsFile w((paths.resume_dir / "state.safetensors").string());
    {
        torch::NoGradGuard ng;
        for (size_t i = 0; i < lora.named.size(); ++i) {
            const std::string& name = lora.named[i].first;
            lora.params[i].copy_(w.view("lora/" + name));
            lora.opt.exp_avg[i].copy_(w.view("exp_avg/" + name));
            lora.opt.exp_avg_sq[i].copy_(w.view("exp_avg_sq/" + name));
        }
    }
    lora.opt.step = st.at("optimizer_step");
    {
        auto gen = at::detail::getDefaultCPUGenerator();
        std::lock_guard<std::mutex> lock(gen.mutex());
        gen.set_state(w.view("rng/cpu").clone());
    }
    RunState at;
    for (const auto& e : st.at("epochs")) at.history.push_back(epoch_from_json(e));
    at.epoch = st.at("epoch");
    at.position = st.at("position");
    at.sums = EpochSums::from_json(st.at("sums"));
    at.global_step = st.at("global_step");
    metrics.truncate_to(st.at("metrics_bytes").get<uint64_t>());
    return at;
}

// A fresh run forgets the last run's epochs and metrics; --resume picks up its checkpoint.
RunState start_or_resume(const TrainOptions& o, const RunPaths& paths, const json& fp, LoraState& lora,
                         MetricsLog& metrics, int64_t n, const Say& say) {
    if (o.resume) {
        RunState at = restore_checkpoint(paths, fp, lora, metrics);
        say(fmt::format("[TRAIN] Resuming at epoch {} sample {}/{}", at.epoch, at.position, n));
        return at;
    }
    metrics.clear();
    std::error_code ec;
    for (auto& entry : fs::directory_iterator(paths.work, ec))
        if (entry.path().filename().string().rfind("epoch-", 0) == 0) fs::remove_all(entry.path(), ec);
    return RunState{};
}

// --- the epoch loop -------------------------------------------------------------------------------------------

// Fixed for the whole loop.
struct LoopConfig {
    int epochs = 0;                // planned
    double lr = 0;
    int64_t n = 0;                 // samples per epoch
    double weight = 0;             // each sample's share of one optimiser step: 1 / (batch · grad_accum)
    LossBandPolicy band;
};

// Counters of this process (a resumed run starts them again).
struct ProcessCounters {
    int64_t steps = 0;             // optimiser steps
    int consecutive_oom = 0;
    int64_t done_before = 0;       // samples already seen when this process started (for the progress bar)
};

bool stop_wanted(const TrainOptions& o, const ProcessCounters& pc) {
    if (o.stop_signal && o.stop_signal->load() != 0) return true;
    return o.stop_after_steps > 0 && pc.steps >= o.stop_after_steps;
}

// Sums of the micro-batches since the last optimiser step (for its metrics line).
struct PendingStep {
    int micro_batches = 0;
    double alex = 0, align = 0;
    int64_t samples = 0;
};

// What one forward/backward of a micro-batch gave.
struct MicroBatch {
    enum class Outcome { Ok, OutOfMemory, Diverged } outcome = Outcome::Ok;
    BatchLoss loss;
};

// Forward and backward of samples[order[pos..end)]; an out-of-memory failure skips the batch (up to
// kMaxConsecutiveOom in a row), keeping what earlier micro-batches accumulated.
MicroBatch train_micro_batch(const TrainOptions& o, model::Talker& talker, const PromptContext& ctx,
                             const std::vector<const Sample*>& batch, const LoopConfig& lc, int epoch, int64_t end,
                             ProcessCounters& pc, EpochSums& sums, const Say& say) {
    MicroBatch mb;
    try {
        mb.loss = batch_loss(talker, ctx, batch, o.objective, lc.weight);
        if (!mb.loss.finite) {
            mb.outcome = MicroBatch::Outcome::Diverged;
            return mb;
        }
        mb.loss.backward_loss.backward();
        pc.consecutive_oom = 0;
    } catch (const std::exception& e) {
        if (!is_oom(e)) throw;
        // Keep what was accumulated (train_lora.py of the clone zeroed it): this sample simply adds nothing.
        mb = MicroBatch{MicroBatch::Outcome::OutOfMemory, BatchLoss{}};
        ++sums.oom;
        if (++pc.consecutive_oom > kMaxConsecutiveOom)
            throw Error(fmt::format("{} consecutive out-of-memory failures at epoch {} step {}: stopping "
                                    "(try --batch 1, a shorter --max-seconds or another device)",
                                    pc.consecutive_oom, epoch, end));
        say(fmt::format("[TRAIN] OOM at epoch={} step={}, skipping sample", epoch, end));
    }
    return mb;
}

// Adds a successful micro-batch's per-sample losses to the epoch and step sums, one [TRAIN] line per sample.
void record_micro_batch(const TrainOptions& o, const BatchLoss& bl, const LoopConfig& lc, int epoch, int64_t pos,
                        EpochSums& sums, PendingStep& pending, const Say& say) {
    ++pending.micro_batches;
    for (size_t b = 0; b < bl.samples.size(); ++b) {
        const auto& sl = bl.samples[b];
        const auto& ch = sl.of(o.objective);
        sums.alex += sl.alexandria.total;
        sums.alex_talker += sl.alexandria.talker;
        sums.alex_sub += sl.alexandria.sub;
        sums.align += sl.aligned.total;
        sums.align_talker += sl.aligned.talker;
        sums.align_sub += sl.aligned.sub;
        ++sums.samples;
        pending.alex += sl.alexandria.total;
        pending.align += sl.aligned.total;
        ++pending.samples;
        say(fmt::format("[TRAIN] epoch={}/{} step={}/{} loss={:.4f} talker_loss={:.4f} sub_loss={:.4f} lr={:.2e}",
                        epoch, lc.epochs, pos + int64_t(b) + 1, lc.n, ch.total, ch.talker, ch.sub, lc.lr));
    }
}

// Clip, update, zero; one metrics line.
void optimizer_step(const TrainOptions& o, LoraState& lora, const LoopConfig& lc, RunState& at, EpochSums& sums,
                    PendingStep& pending, ProcessCounters& pc, MetricsLog& metrics) {
    const double norm = torch::nn::utils::clip_grad_norm_(lora.params, kClipNorm);
    lora.opt.update();
    lora.opt.zero_grad();
    ++sums.steps;
    ++at.global_step;
    ++pc.steps;
    const double k = double(pending.samples);
    const double nan = std::nan("");
    metrics.write(json{{"type", "step"},
                       {"epoch", at.epoch},
                       {"step", at.global_step},
                       {"position", at.position},
                       {"samples", pending.samples},
                       {"loss", k ? (o.objective == Objective::Aligned ? pending.align : pending.alex) / k : nan},
                       {"alexandria_loss", k ? pending.alex / k : nan},
                       {"aligned_loss", k ? pending.align / k : nan},
                       {"grad_norm", norm},
                       {"lr", lc.lr}});
    pending = PendingStep{};
}

enum class EpochEnd { Finished, Interrupted, Diverged };

struct EpochRun {
    EpochEnd end = EpochEnd::Finished;
    EpochSums sums;
    std::string message;  // Interrupted / Diverged
};

// One epoch from at.position on: micro-batches of o.batch samples in the epoch's seeded order, an optimiser step
// every grad_accum of them (and at the epoch's end). A stop request after a step checkpoints and returns.
EpochRun run_epoch(const TrainOptions& o, BaseModel& base, const std::vector<Sample>& samples, LoraState& lora,
                   const LoopConfig& lc, const RunPaths& paths, const json& fp, RunState& at, ProcessCounters& pc,
                   MetricsLog& metrics, io::Progress* bar, const Say& say) {
    const auto t_epoch = Clock::now();
    const auto order = epoch_order(lc.n, o.seed, at.epoch);
    EpochRun run;
    run.sums = at.sums;
    const double seconds_before = run.sums.seconds;
    PendingStep pending;
    while (at.position < lc.n) {
        const int64_t pos = at.position, end = std::min<int64_t>(pos + o.batch, lc.n);
        std::vector<const Sample*> batch;
        for (int64_t i = pos; i < end; ++i) batch.push_back(&samples[order[i]]);
        MicroBatch mb = train_micro_batch(o, base.talker, base.ctx, batch, lc, at.epoch, end, pc, run.sums, say);
        if (mb.outcome == MicroBatch::Outcome::Diverged) {
            run.end = EpochEnd::Diverged;
            run.message = fmt::format("non-finite loss at epoch {} step {}/{} ({}); stopped", at.epoch, end, lc.n,
                                      batch.front()->name);
            return run;
        }
        const bool ok = mb.outcome == MicroBatch::Outcome::Ok;
        if (ok) record_micro_batch(o, mb.loss, lc, at.epoch, pos, run.sums, pending, say);
        at.position = end;
        if (bar)
            bar->update(int64_t(at.epoch - 1) * lc.n + end - pc.done_before,
                        ok ? fmt::format("loss {:.4f}", mb.loss.samples.back().of(o.objective).total) : "oom");
        if (pending.micro_batches >= o.grad_accum || (end == lc.n && pending.micro_batches > 0)) {
            optimizer_step(o, lora, lc, at, run.sums, pending, pc, metrics);
            if (end < lc.n && stop_wanted(o, pc)) {
                run.sums.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
                at.sums = run.sums;
                save_checkpoint(paths, fp, lora, at, metrics);
                run.end = EpochEnd::Interrupted;
                run.message =
                    fmt::format("interrupted at epoch {} sample {}/{}; continue with --resume", at.epoch, end, lc.n);
                return run;
            }
        }
    }
    run.sums.seconds = seconds_before + std::chrono::duration<double>(Clock::now() - t_epoch).count();
    return run;
}

// The epoch's averages, its adapter kept under checkpoints/epoch-N, its metrics and [EPOCH] lines.
EpochRecord close_epoch(const TrainOptions& o, const EpochSums& sums, int epoch, int epochs, model::Talker& talker,
                        const LoraState& lora, const RunPaths& paths, MetricsLog& metrics, const Say& say) {
    if (sums.samples == 0)
        throw Error(fmt::format("epoch {} finished with no successful sample ({} out-of-memory skips); refusing "
                                "to save an untrained adapter",
                                epoch, sums.oom));
    EpochRecord rec;
    rec.epoch = epoch;
    const double k = double(sums.samples);
    rec.alexandria_loss = sums.alex / k;
    rec.alexandria_talker = sums.alex_talker / k;
    rec.alexandria_sub = sums.alex_sub / k;
    rec.aligned_loss = sums.align / k;
    rec.aligned_talker = sums.align_talker / k;
    rec.aligned_sub = sums.align_sub / k;
    rec.loss = o.objective == Objective::Aligned ? rec.aligned_loss : rec.alexandria_loss;
    rec.samples = sums.samples;
    rec.optimizer_steps = sums.steps;
    rec.oom_skips = sums.oom;
    rec.seconds = sums.seconds;
    io::replace_directory_atomic(paths.work / fmt::format("epoch-{}", epoch), [&](const fs::path& tmp) {
        model::save_adapter(talker, lora.cfg, tmp.string());
    });
    json em = epoch_json(rec);
    em["type"] = "epoch";
    metrics.write(em);
    say(fmt::format("[EPOCH] {}/{} avg_loss={:.4f}", epoch, epochs, rec.loss));
    return rec;
}

struct LoopEnd {
    TrainStatus status = TrainStatus::Completed;
    bool stopped_early = false;
    std::string stop_reason;  // early stop
    std::string message;      // Interrupted / Diverged
};

// Epochs from where `at` stands to the planned count, the loss band's early stop, a checkpoint after each epoch.
LoopEnd run_epochs(const TrainOptions& o, BaseModel& base, const std::vector<Sample>& samples, LoraState& lora,
                   const LoopConfig& lc, const RunPaths& paths, const json& fp, RunState& at, MetricsLog& metrics,
                   const Say& say) {
    ProcessCounters pc;
    pc.done_before = int64_t(at.epoch - 1) * lc.n + at.position;
    std::unique_ptr<io::Progress> bar;
    if (o.progress_bar) bar = std::make_unique<io::Progress>("train", int64_t(lc.epochs) * lc.n, "samples", true);
    LoopEnd end;
    for (; at.epoch <= lc.epochs; ++at.epoch) {
        EpochRun run = run_epoch(o, base, samples, lora, lc, paths, fp, at, pc, metrics, bar.get(), say);
        if (run.end != EpochEnd::Finished) {
            end.status = run.end == EpochEnd::Diverged ? TrainStatus::Diverged : TrainStatus::Interrupted;
            end.message = run.message;
            break;
        }
        const EpochRecord rec = close_epoch(o, run.sums, at.epoch, lc.epochs, base.talker, lora, paths, metrics, say);
        at.history.push_back(rec);
        const int epoch = at.epoch;
        // The next epoch starts from scratch; the checkpoint says so.
        RunState next{at.history, epoch + 1, 0, EpochSums{}, at.global_step};
        if (reached_target(rec.loss, lc.band)) {
            end.stopped_early = epoch < lc.epochs;
            end.stop_reason = fmt::format("epoch {} loss {:.4f} reached the target {}", epoch, rec.loss,
                                          py_repr(*lc.band.target));
            if (end.stopped_early)
                say(fmt::format("[TRAIN] Early stop: loss {:.4f} reached target {}", rec.loss,
                                py_repr(*lc.band.target)));
            save_checkpoint(paths, fp, lora, next, metrics);
            break;
        }
        save_checkpoint(paths, fp, lora, next, metrics);
        at.position = 0;
        at.sums = EpochSums{};
        if (epoch < lc.epochs && stop_wanted(o, pc)) {
            end.status = TrainStatus::Interrupted;
            end.message = fmt::format("interrupted after epoch {}; continue with --resume", epoch);
            break;
        }
    }
    if (bar) bar->finish();
    return end;
}

// --- finish ---------------------------------------------------------------------------------------------------

struct RefText {
    std::string text;
    bool from_file = false;  // ref_text.txt; otherwise the first clip's text (Alexandria's fallback)
};

RefText reference_text(const dataset::PrepareResult& prep) {
    RefText r;
    const fs::path file = prep.dir / "ref_text.txt";
    if (fs::exists(file)) {
        std::string t = io::read_file(file);
        auto b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
        r.text = b == std::string::npos ? "" : t.substr(b, e - b + 1);
        r.from_file = true;
    }
    if (r.text.empty()) {
        r.text = prep.clips.front().text;
        r.from_file = false;
    }
    return r;
}

// train_lora.py's preview: the first 60 characters (Python counts code points).
std::string preview60(const std::string& s) {
    std::string head;
    size_t cps = 0;
    for (size_t i = 0; i < s.size() && cps < 60; ++cps) {
        size_t len = 1;
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0xF0) len = 4;
        else if (c >= 0xE0) len = 3;
        else if (c >= 0xC0) len = 2;
        head += s.substr(i, len);
        i += len;
    }
    return head;
}

// Everything training_meta.json records besides the loop's outcome.
struct RunFacts {
    std::string model_dir;
    DeviceChoice dev;
    plan::Recommendation rec;
    LossBandPolicy band;
    double training_time = 0;
    double best = 0;
};

json training_meta(const TrainOptions& o, const RunFacts& f, const TrainingData& d, const RefText& ref,
                   const std::vector<EpochRecord>& history, const TrainResult& res) {
    const int64_t n = static_cast<int64_t>(d.samples.size());
    auto finite_or_null = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
    json hist = json::array(), alex = json::array(), align = json::array();
    int64_t oom = 0;
    for (const auto& e : history) {
        hist.push_back(epoch_json(e));
        alex.push_back(finite_or_null(e.alexandria_loss));
        align.push_back(finite_or_null(e.aligned_loss));
        oom += e.oom_skips;
    }
    const EpochRecord& chosen_rec = history[res.choice.epoch - 1];
    const bool diverged = res.status == TrainStatus::Diverged;
    return json{
        // Alexandria's keys (compat §2.4), same meaning.
        {"model_name", o.model},
        {"epochs", f.rec.epochs},
        {"lr", f.rec.lr},
        {"lora_r", o.lora_r},
        {"lora_alpha", std::floor(o.lora_alpha) == o.lora_alpha ? json(int64_t(o.lora_alpha)) : json(o.lora_alpha)},
        {"gradient_accumulation_steps", o.grad_accum},
        {"batch_size", o.batch},
        {"num_samples", n},
        {"final_loss", finite_or_null(history.back().loss)},
        {"best_loss", finite_or_null(f.best)},
        {"training_time_seconds", std::round(f.training_time * 10) / 10},
        {"ref_sample_audio", d.prep.reference.string()},
        {"ref_sample_text", ref.text},
        // Later Alexandria keys.
        {"oom_skips", oom},
        {"language", o.language},
        // Ours.
        {"tool", "alexandria"},
        {"tool_version", o.tool_version},
        {"model_dir", f.model_dir},
        {"objective", objective_name(o.objective)},
        {"prompt", prompt_mode_name(o.prompt)},
        {"text_layout", "non-streaming"},
        {"reference_frames", o.prompt == PromptMode::Icl ? json(d.prep.reference_frames) : json(nullptr)},
        {"reference_clips_skipped", d.reference_clips_skipped},
        {"seed", o.seed},
        {"lora_dropout", o.lora_dropout},
        {"device", f.dev.name},
        {"precision", f.dev.dtype == torch::kBFloat16 ? "bf16 base, fp32 LoRA/optimizer/loss" : "fp32"},
        {"epochs_run", history.size()},
        {"chosen_epoch", res.choice.epoch},
        {"chosen_loss", res.choice.loss},
        {"chosen_rule", res.choice.rule},
        {"chosen_reason", res.choice.reason},
        {"stopped_early", res.stopped_early},
        {"stop_reason", diverged ? res.message : res.stop_reason},
        {"status", diverged ? "diverged" : "completed"},
        {"target_loss", f.band.target ? json(*f.band.target) : json(nullptr)},
        {"loss_floor", f.band.floor ? json(*f.band.floor) : json(nullptr)},
        {"epoch_history", hist},
        {"alexandria_loss_per_epoch", alex},
        {"aligned_loss_per_epoch", align},
        {"chosen_loss_verdict", plan::to_json(plan::loss_verdict(chosen_rec.alexandria_loss))},
        {"exposure", n * int64_t(history.size())},
        {"recommendation", plan::to_json(f.rec)},
        {"dataset_dir", d.prep.dir.string()},
        {"dataset_hash", d.prep.dataset_hash},
        {"dataset_split", d.split.used ? "train" : "none"},
        {"skipped_clips", d.prep.skipped.size()},
        {"reference_source", d.prep.reference_source},
        {"codec_cache_key", d.prep.codec_key},
        {"optimizer", {{"name", "AdamW"}, {"betas", {kBeta1, kBeta2}}, {"eps", kEps}, {"weight_decay", kWeightDecay},
                       {"clip_grad_norm", kClipNorm}, {"schedule", "constant"}}},
        {"speaker_embedding_file", "speaker_embedding.safetensors"},
    };
}

// The whole adapter folder in one atomic step: the chosen epoch's adapter, metadata, reference, speaker vector,
// metrics, plot, and every epoch's checkpoint (hard links).
void write_adapter_folder(const TrainOptions& o, const RunPaths& paths, const TrainingData& d, const json& meta,
                          const std::vector<EpochRecord>& history, int chosen_epoch) {
    io::replace_directory_atomic(paths.out, [&](const fs::path& tmp) {
        const fs::path chosen_dir = paths.work / fmt::format("epoch-{}", chosen_epoch);
        copy_file_bytes(chosen_dir / model::kAdapterConfigFile, tmp / model::kAdapterConfigFile);
        copy_file_bytes(chosen_dir / model::kAdapterWeightsFile, tmp / model::kAdapterWeightsFile);
        io::write_file_atomic(tmp / "training_meta.json", meta.dump(2) + "\n");
        copy_file_bytes(d.prep.reference, tmp / "ref_sample.wav");
        io::save_safetensors((tmp / "speaker_embedding.safetensors").string(),
                             {{"speaker_embedding", d.speaker_cpu.contiguous()}},
                             {{"reference", d.prep.reference.filename().string()}});
        copy_file_bytes(paths.work / "metrics.jsonl", tmp / "metrics.jsonl");
        io::write_file_atomic(tmp / "loss.svg", loss_svg(history, o.objective, chosen_epoch));
        fs::create_directories(tmp / "checkpoints");
        for (const auto& e : history) {
            fs::path from = paths.work / fmt::format("epoch-{}", e.epoch), to = tmp / "checkpoints" / from.filename();
            fs::create_directories(to);
            for (auto& f : fs::directory_iterator(from)) link_or_copy(f.path(), to / f.path().filename());
        }
    });
}

// Chooses the epoch to keep and writes the adapter folder (completed or diverged runs with at least one epoch);
// returns the facts with the run's time and best loss filled in.
RunFacts finish(const TrainOptions& o, RunFacts facts, const RunPaths& paths, const TrainingData& d,
            const Clock::time_point t_start, TrainResult& res, const Say& say) {
    std::vector<double> losses;
    for (const auto& e : res.epochs) losses.push_back(e.loss);
    res.choice = choose_epoch(losses, facts.band);
    if (res.status == TrainStatus::Completed && res.stop_reason.empty())
        res.stop_reason = fmt::format("ran all {} epochs", res.epochs.size());
    say(fmt::format("[TRAIN] Kept epoch {}: {}", res.choice.epoch, res.choice.reason));
    if (res.choice.epoch < 1) throw Error("no epoch produced a usable adapter");

    const RefText ref = reference_text(d.prep);
    say(ref.from_file ? fmt::format("[DATA] Using ref text from ref_text.txt: '{}...'", preview60(ref.text))
                      : fmt::format("[DATA] Using first sample text as ref text: '{}...'", preview60(ref.text)));

    facts.training_time = std::chrono::duration<double>(Clock::now() - t_start).count();
    facts.best = std::numeric_limits<double>::infinity();
    for (double l : losses)
        if (std::isfinite(l)) facts.best = std::min(facts.best, l);
    res.meta = training_meta(o, facts, d, ref, res.epochs, res);
    write_adapter_folder(o, paths, d, res.meta, res.epochs, res.choice.epoch);
    return facts;
}

}  // namespace

TrainResult train(const TrainOptions& o) {
    const auto t_start = Clock::now();
    const Say say = [&](const std::string& line) {
        if (o.protocol) o.protocol(line);
    };

    // Set-up: options, device, output folder, model.
    validate_options(o);
    const DeviceChoice dev = resolve_device(o.device);
    const std::string model_dir = io::locate_model(o.model);
    const RunPaths paths = run_paths(o);
    const std::string icl_ref_text = icl_reference_text(o);
    say(fmt::format("[TRAIN] Device: {}, dtype: {}", dev.name, torch_dtype_name(dev.dtype)));
    BaseModel base = load_base_model(o, model_dir, dev, say);

    // Data and plan.
    const TrainingData data = load_training_data(o, model_dir, dev, icl_ref_text, base, say);
    const int64_t n = static_cast<int64_t>(data.samples.size());
    const plan::Recommendation rec = plan_run(o, n, say);
    LoraState lora = attach_lora(o, base, rec.lr, say);

    // Resume.
    LoopConfig lc;
    lc.epochs = rec.epochs;
    lc.lr = rec.lr;
    lc.n = n;
    lc.weight = 1.0 / (double(o.batch) * double(o.grad_accum));
    lc.band = loss_band(o);
    fs::create_directories(paths.work);
    MetricsLog metrics(paths.work / "metrics.jsonl");
    const json fp = fingerprint(o, rec.epochs, rec.lr, data.prep.dataset_hash, dev, icl_ref_text);
    RunState at = start_or_resume(o, paths, fp, lora, metrics, n, say);

    // The epoch loop.
    const LoopEnd end = run_epochs(o, base, data.samples, lora, lc, paths, fp, at, metrics, say);

    TrainResult res;
    res.status = end.status;
    res.message = end.message;
    res.stopped_early = end.stopped_early;
    res.stop_reason = end.stop_reason;
    res.planned_epochs = rec.epochs;
    res.lr = rec.lr;
    res.samples = n;
    res.out = paths.out;
    res.epochs = at.history;
    if (res.status == TrainStatus::Interrupted) {
        say(fmt::format("[TRAIN] {}", res.message));
        return res;
    }
    if (res.epochs.empty()) return res;  // diverged before any epoch finished: no adapter worth keeping

    // Finish: the kept epoch and the adapter folder.
    const RunFacts facts = finish(o, RunFacts{model_dir, dev, rec, lc.band, 0, 0}, paths, data, t_start, res, say);
    if (o.inspect) o.inspect(base.lm.model);
    if (res.status == TrainStatus::Completed)
        say(fmt::format("[DONE] Adapter saved to {} (best_loss={:.4f}, time={:.0f}s)", o.out.string(), facts.best,
                        facts.training_time));
    return res;
}

}  // namespace alexandria::train
