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

struct DeviceChoice {
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;
    std::string name;  // "cpu", "cuda", "cuda:1"
};

DeviceChoice resolve_device(const std::string& spec) {
    DeviceChoice d;
    if (spec == "cpu" || (spec == "auto" && !compat::cuda_available())) {
        d.name = "cpu";
        return d;
    }
    if (spec == "auto" || spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
        if (!compat::cuda_available())
            throw InputError(fmt::format("--device {}: CUDA is not available in this build or on this machine", spec));
        int index = 0;
        if (spec.rfind("cuda:", 0) == 0) {
            try {
                size_t used = 0;
                index = std::stoi(spec.substr(5), &used);
                if (used != spec.size() - 5 || index < 0) throw std::invalid_argument("index");
            } catch (const std::exception&) {
                throw InputError(fmt::format("--device {}: expected cuda:N", spec));
            }
            if (index >= static_cast<int>(torch::cuda::device_count()))
                throw InputError(fmt::format("--device {}: only {} CUDA device(s)", spec, torch::cuda::device_count()));
        }
        d.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
        d.dtype = torch::kBFloat16;  // bf16 base weights; LoRA, optimiser state and losses stay fp32
        d.name = spec == "auto" ? "cuda" : spec;
        return d;
    }
    throw InputError(fmt::format("--device: '{}' is not a device (auto, cpu, cuda, cuda:N)", spec));
}

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
json fingerprint(const TrainOptions& o, int epochs, double lr, const std::string& dataset_hash, const DeviceChoice& d) {
    return json{{"objective", objective_name(o.objective)},
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

}  // namespace

TrainResult train(const TrainOptions& o) {
    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    auto say = [&](const std::string& line) {
        if (o.protocol) o.protocol(line);
    };
    if (o.lora_r < 1) throw InputError(fmt::format("--lora-r must be >= 1 (got {})", o.lora_r));
    if (!(o.lora_alpha > 0)) throw InputError(fmt::format("--lora-alpha must be > 0 (got {})", o.lora_alpha));
    if (o.grad_accum < 1) throw InputError(fmt::format("--grad-accum must be >= 1 (got {})", o.grad_accum));
    if (o.batch < 1) throw InputError(fmt::format("--batch must be >= 1 (got {})", o.batch));
    if (o.epochs && *o.epochs < 1) throw InputError(fmt::format("--epochs must be >= 1 (got {})", *o.epochs));
    if (o.lr && !(std::isfinite(*o.lr) && *o.lr > 0)) throw InputError("--lr must be a positive number");
    if (!(o.lora_dropout >= 0 && o.lora_dropout < 1)) throw InputError("--lora-dropout must be in [0, 1)");
    if (!(o.max_seconds > 0)) throw InputError("--max-seconds must be > 0");
    if (o.out.empty()) throw InputError("--out: an adapter folder is required");

    const DeviceChoice dev = resolve_device(o.device);
    const std::string model_dir = io::locate_model(o.model);
    const fs::path out = fs::absolute(o.out).lexically_normal();
    const fs::path work = out / "checkpoints";
    const fs::path resume_dir = work / "resume";
    if (fs::exists(out) && !fs::is_directory(out)) throw InputError(fmt::format("--out {}: not a folder", out.string()));
    if (!o.resume && fs::exists(resume_dir / "state.json"))
        throw InputError(fmt::format("{}: holds an interrupted run; continue it with --resume, or delete {} to start "
                                     "over",
                                     out.string(), work.string()));
    if (o.resume && !fs::exists(resume_dir / "state.json"))
        throw InputError(fmt::format("--resume: {} has no resumable checkpoint ({} is missing)", out.string(),
                                     (resume_dir / "state.json").string()));

    say(fmt::format("[TRAIN] Device: {}, dtype: {}", dev.name, torch_dtype_name(dev.dtype)));

    // Model, tokenizer, prompt form.
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

    // Dataset: the train side of a split when there is one; the codes cache, refreshed as needed.
    std::vector<int> only_lines;
    int held_out = 0;
    bool used_split = false;
    {
        auto train_side = dataset::load_split(o.data, "train");
        if (train_side) {
            used_split = true;
            auto val_side = dataset::load_split(o.data, "val");
            held_out = val_side ? static_cast<int>(val_side->size()) : 0;
            dataset::Dataset ds = dataset::Dataset::load(o.data);
            std::set<std::pair<std::string, std::string>> wanted;
            for (const auto& l : *train_side) wanted.insert({l.audio_filepath, l.text});
            for (const auto& e : ds.entries)
                if (wanted.count({e.audio, e.text})) only_lines.push_back(e.line);
            if (only_lines.empty())
                throw InputError(fmt::format("{}: the split's train side matches no metadata line; run `alexandria "
                                             "dataset split {}` again",
                                             o.data.string(), o.data.string()));
        }
    }
    dataset::PrepareOptions popt;
    popt.max_seconds = o.max_seconds;
    popt.device = dev.device;
    popt.dtype = torch::kFloat32;  // the codec always encodes in fp32 (codes are ids: no reason to round)
    popt.speaker_dtype = dev.dtype;
    popt.only_lines = only_lines;
    popt.speaker_encoder = &lm.model->speaker_encoder;
    popt.log = [&](const std::string& line) {
        // prepare's own "Found" line cannot know about the split; say it as train_lora.py does.
        if (used_split && line.rfind("[DATA] Found ", 0) == 0) {
            say(fmt::format("[DATA] Found {} entries in train split ({} held out in val and NOT trained on)",
                            only_lines.size(), held_out));
            return;
        }
        say(line);
    };
    dataset::PrepareResult prep;
    prep = dataset::prepare(o.data, model_dir, popt);
    const int64_t n = static_cast<int64_t>(prep.clips.size());

    // Recommendation (printed before training starts).
    plan::Request req;
    req.samples = n;
    req.epochs = o.epochs;
    req.lr = o.lr;
    req.lora_r = o.lora_r;
    req.lora_alpha = static_cast<int>(std::lround(o.lora_alpha));
    plan::Recommendation rec = plan::recommend(req);
    const int epochs = rec.epochs;
    const double lr = rec.lr;
    {
        std::string text = plan::to_text(rec);
        size_t start = 0;
        while (start <= text.size()) {
            size_t nl = text.find('\n', start);
            std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
            say("[TRAIN] Plan: " + line);
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
    }
    say(fmt::format("[TRAIN] Config: epochs={}, lr={}, lora_r={}, lora_alpha={}, grad_accum={}", epochs, py_repr(lr),
                    o.lora_r,
                    std::floor(o.lora_alpha) == o.lora_alpha ? fmt::format("{}", int64_t(o.lora_alpha)) : py_repr(o.lora_alpha),
                    o.grad_accum));

    // Samples: text ids + cached codes.
    std::vector<Sample> samples;
    samples.reserve(n);
    for (const auto& c : prep.clips) {
        Sample s;
        s.name = c.audio;
        auto ids = text::encode_target_text(tok, c.text);
        s.role.assign(ids.role.begin(), ids.role.end());
        s.content.assign(ids.content.begin(), ids.content.end());
        s.codes = prep.load_codes(c);
        samples.push_back(std::move(s));
    }
    torch::Tensor speaker_cpu = prep.speaker_embedding();
    if (speaker_cpu.numel() != lm.config.talker.hidden_size)
        throw Error(fmt::format("speaker embedding has {} values, the talker is {} wide", speaker_cpu.numel(),
                                lm.config.talker.hidden_size));
    ctx.speaker = speaker_cpu.to(dev.device, dev.dtype);

    // LoRA: seeded init, base frozen.
    say("[TRAIN] Applying LoRA to talker...");
    torch::manual_seed(o.seed);
    model::LoraConfig lcfg;
    lcfg.r = o.lora_r;
    lcfg.alpha = o.lora_alpha;
    lcfg.dropout = o.lora_dropout;
    model::freeze_base(*lm.model);
    model::attach_lora(talker, lcfg);
    auto named = model::lora_state(talker);
    std::vector<torch::Tensor> params;
    for (auto& [name, t] : named) params.push_back(t);
    int64_t trainable = 0, total_params = 0;
    for (auto& t : params) trainable += t.numel();
    for (auto& p : talker->parameters()) total_params += p.numel();
    total_params += trainable;
    say(fmt::format("[TRAIN] LoRA applied: {} trainable / {} total ({:.2f}%)", thousands(trainable),
                    thousands(total_params), 100.0 * double(trainable) / double(total_params)));
    AdamW opt(params, lr);
    talker->train();

    const LossBandPolicy band = loss_band(o);
    fs::create_directories(work);
    MetricsLog metrics(work / "metrics.jsonl");
    std::vector<EpochRecord> history;
    int start_epoch = 1;
    int64_t start_pos = 0;
    EpochSums start_sums;
    const json fp = fingerprint(o, epochs, lr, prep.dataset_hash, dev);
    int64_t global_step = 0;

    if (o.resume) {
        json st;
        try {
            st = json::parse(io::read_file(resume_dir / "state.json"));
        } catch (const json::exception& e) {
            throw InputError(fmt::format("{}: unreadable: {}", (resume_dir / "state.json").string(), e.what()));
        }
        std::vector<std::string> diffs;
        for (auto& [k, v] : fp.items())
            if (!st["fingerprint"].contains(k) || st["fingerprint"][k] != v)
                diffs.push_back(fmt::format("{} (checkpoint {}, now {})", k,
                                            st["fingerprint"].contains(k) ? st["fingerprint"][k].dump() : "none",
                                            v.dump()));
        if (!diffs.empty()) {
            std::string all;
            for (auto& d : diffs) all += (all.empty() ? "" : "; ") + d;
            throw InputError(fmt::format("--resume: the checkpoint in {} was made with different settings or data: {}",
                                         resume_dir.string(), all));
        }
        io::SafetensorsFile w((resume_dir / "state.safetensors").string());
        torch::NoGradGuard ng;
        for (size_t i = 0; i < named.size(); ++i) {
            const std::string& name = named[i].first;
            params[i].copy_(w.view("lora/" + name));
            opt.exp_avg[i].copy_(w.view("exp_avg/" + name));
            opt.exp_avg_sq[i].copy_(w.view("exp_avg_sq/" + name));
        }
        opt.step = st.at("optimizer_step");
        {
            auto gen = at::detail::getDefaultCPUGenerator();
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_state(w.view("rng/cpu").clone());
        }
        for (const auto& e : st.at("epochs")) history.push_back(epoch_from_json(e));
        start_epoch = st.at("epoch");
        start_pos = st.at("position");
        start_sums = EpochSums::from_json(st.at("sums"));
        global_step = st.at("global_step");
        metrics.truncate_to(st.at("metrics_bytes").get<uint64_t>());
        say(fmt::format("[TRAIN] Resuming at epoch {} sample {}/{}", start_epoch, start_pos, n));
    } else {
        metrics.clear();
        std::error_code ec;
        for (auto& entry : fs::directory_iterator(work, ec))
            if (entry.path().filename().string().rfind("epoch-", 0) == 0) fs::remove_all(entry.path(), ec);
    }

    auto save_resume = [&](int epoch, int64_t position, const EpochSums& sums) {
        io::replace_directory_atomic(resume_dir, [&](const fs::path& tmp) {
            std::vector<std::pair<std::string, torch::Tensor>> t;
            for (size_t i = 0; i < named.size(); ++i) {
                t.emplace_back("lora/" + named[i].first, params[i].detach().to(torch::kCPU).contiguous());
                t.emplace_back("exp_avg/" + named[i].first, opt.exp_avg[i].to(torch::kCPU).contiguous());
                t.emplace_back("exp_avg_sq/" + named[i].first, opt.exp_avg_sq[i].to(torch::kCPU).contiguous());
            }
            {
                auto gen = at::detail::getDefaultCPUGenerator();
                std::lock_guard<std::mutex> lock(gen.mutex());
                t.emplace_back("rng/cpu", gen.get_state().clone());
            }
            io::save_safetensors((tmp / "state.safetensors").string(), t);
            json ep = json::array();
            for (const auto& e : history) ep.push_back(epoch_json(e));
            json st{{"fingerprint", fp},      {"epoch", epoch},          {"position", position},
                    {"sums", sums.to_json()}, {"optimizer_step", opt.step}, {"global_step", global_step},
                    {"epochs", ep},           {"metrics_bytes", metrics.size()}};
            io::write_file_atomic(tmp / "state.json", st.dump(1) + "\n");
        });
    };

    TrainResult res;
    res.planned_epochs = epochs;
    res.lr = lr;
    res.samples = n;
    res.out = out;
    res.epochs = history;

    std::unique_ptr<io::Progress> bar;
    if (o.progress_bar) bar = std::make_unique<io::Progress>("train", int64_t(epochs) * n, "samples", true);
    const int64_t done_before = int64_t(start_epoch - 1) * n + start_pos;
    int64_t steps_this_process = 0;
    int consecutive_oom = 0;
    bool stop_requested = false;
    auto want_stop = [&] {
        if (o.stop_signal && o.stop_signal->load() != 0) return true;
        return o.stop_after_steps > 0 && steps_this_process >= o.stop_after_steps;
    };
    const double weight = 1.0 / (double(o.batch) * double(o.grad_accum));

    for (int epoch = start_epoch; epoch <= epochs && !stop_requested && res.status == TrainStatus::Completed;
         ++epoch) {
        const auto t_epoch = clock::now();
        auto order = epoch_order(n, o.seed, epoch);
        int64_t pos = epoch == start_epoch ? start_pos : 0;
        EpochSums sums = epoch == start_epoch ? start_sums : EpochSums{};
        const double seconds_before = sums.seconds;
        int pending = 0;
        double step_alex = 0, step_align = 0;
        int64_t step_samples = 0;
        auto do_step = [&]() {
            double norm = torch::nn::utils::clip_grad_norm_(params, kClipNorm);
            opt.update();
            opt.zero_grad();
            ++sums.steps;
            ++global_step;
            ++steps_this_process;
            json m{{"type", "step"},
                   {"epoch", epoch},
                   {"step", global_step},
                   {"position", pos},
                   {"samples", step_samples},
                   {"loss", step_samples ? (o.objective == Objective::Aligned ? step_align : step_alex) / step_samples
                                         : std::nan("")},
                   {"alexandria_loss", step_samples ? step_alex / step_samples : std::nan("")},
                   {"aligned_loss", step_samples ? step_align / step_samples : std::nan("")},
                   {"grad_norm", norm},
                   {"lr", lr}};
            metrics.write(m);
            pending = 0;
            step_alex = step_align = 0;
            step_samples = 0;
        };

        while (pos < n) {
            const int64_t end = std::min<int64_t>(pos + o.batch, n);
            std::vector<const Sample*> batch;
            for (int64_t i = pos; i < end; ++i) batch.push_back(&samples[order[i]]);
            bool ok = false;
            BatchLoss bl;
            try {
                bl = batch_loss(talker, ctx, batch, o.objective, weight);
                if (!bl.finite) {
                    res.status = TrainStatus::Diverged;
                    res.message = fmt::format("non-finite loss at epoch {} step {}/{} ({}); stopped", epoch, end, n,
                                              batch.front()->name);
                    break;
                }
                bl.backward_loss.backward();
                ok = true;
                consecutive_oom = 0;
            } catch (const std::exception& e) {
                if (!is_oom(e)) throw;
                // Keep what was accumulated (train_lora.py of the clone zeroed it): this sample simply adds nothing.
                bl = BatchLoss{};
                ++sums.oom;
                if (++consecutive_oom > kMaxConsecutiveOom)
                    throw Error(fmt::format("{} consecutive out-of-memory failures at epoch {} step {}: stopping "
                                            "(try --batch 1, a shorter --max-seconds or another device)",
                                            consecutive_oom, epoch, end));
                say(fmt::format("[TRAIN] OOM at epoch={} step={}, skipping sample", epoch, end));
            }
            if (res.status != TrainStatus::Completed) break;
            if (ok) {
                ++pending;
                for (size_t b = 0; b < batch.size(); ++b) {
                    const auto& sl = bl.samples[b];
                    const auto& ch = sl.of(o.objective);
                    sums.alex += sl.alexandria.total;
                    sums.alex_talker += sl.alexandria.talker;
                    sums.alex_sub += sl.alexandria.sub;
                    sums.align += sl.aligned.total;
                    sums.align_talker += sl.aligned.talker;
                    sums.align_sub += sl.aligned.sub;
                    ++sums.samples;
                    step_alex += sl.alexandria.total;
                    step_align += sl.aligned.total;
                    ++step_samples;
                    say(fmt::format("[TRAIN] epoch={}/{} step={}/{} loss={:.4f} talker_loss={:.4f} sub_loss={:.4f} "
                                    "lr={:.2e}",
                                    epoch, epochs, pos + int64_t(b) + 1, n, ch.total, ch.talker, ch.sub, lr));
                }
            }
            pos = end;
            if (bar)
                bar->update(int64_t(epoch - 1) * n + pos - done_before,
                            ok ? fmt::format("loss {:.4f}", bl.samples.back().of(o.objective).total) : "oom");
            if (pending >= o.grad_accum || (pos == n && pending > 0)) {
                do_step();
                if (pos < n && want_stop()) {
                    sums.seconds = seconds_before + std::chrono::duration<double>(clock::now() - t_epoch).count();
                    save_resume(epoch, pos, sums);
                    stop_requested = true;
                    res.status = TrainStatus::Interrupted;
                    res.message = fmt::format("interrupted at epoch {} sample {}/{}; continue with --resume", epoch,
                                              pos, n);
                    break;
                }
            }
        }
        if (res.status != TrainStatus::Completed) break;
        if (sums.samples == 0)
            throw Error(fmt::format("epoch {} finished with no successful sample ({} out-of-memory skips); refusing "
                                    "to save an untrained adapter",
                                    epoch, sums.oom));

        EpochRecord rec_e;
        rec_e.epoch = epoch;
        const double k = double(sums.samples);
        rec_e.alexandria_loss = sums.alex / k;
        rec_e.alexandria_talker = sums.alex_talker / k;
        rec_e.alexandria_sub = sums.alex_sub / k;
        rec_e.aligned_loss = sums.align / k;
        rec_e.aligned_talker = sums.align_talker / k;
        rec_e.aligned_sub = sums.align_sub / k;
        rec_e.loss = o.objective == Objective::Aligned ? rec_e.aligned_loss : rec_e.alexandria_loss;
        rec_e.samples = sums.samples;
        rec_e.optimizer_steps = sums.steps;
        rec_e.oom_skips = sums.oom;
        rec_e.seconds = seconds_before + std::chrono::duration<double>(clock::now() - t_epoch).count();
        history.push_back(rec_e);

        // Every epoch's adapter, kept.
        io::replace_directory_atomic(work / fmt::format("epoch-{}", epoch),
                                     [&](const fs::path& tmp) { model::save_adapter(talker, lcfg, tmp.string()); });
        json em = epoch_json(rec_e);
        em["type"] = "epoch";
        metrics.write(em);
        say(fmt::format("[EPOCH] {}/{} avg_loss={:.4f}", epoch, epochs, rec_e.loss));

        if (reached_target(rec_e.loss, band)) {
            res.stopped_early = epoch < epochs;
            res.stop_reason = fmt::format("epoch {} loss {:.4f} reached the target {}", epoch, rec_e.loss,
                                          py_repr(*band.target));
            if (res.stopped_early) say(fmt::format("[TRAIN] Early stop: loss {:.4f} reached target {}", rec_e.loss,
                                                   py_repr(*band.target)));
            save_resume(epoch + 1, 0, EpochSums{});
            break;
        }
        save_resume(epoch + 1, 0, EpochSums{});
        if (epoch < epochs && want_stop()) {
            stop_requested = true;
            res.status = TrainStatus::Interrupted;
            res.message = fmt::format("interrupted after epoch {}; continue with --resume", epoch);
        }
    }
    if (bar) bar->finish();
    res.epochs = history;
    if (res.status == TrainStatus::Interrupted) {
        say(fmt::format("[TRAIN] {}", res.message));
        return res;
    }
    if (history.empty()) {
        // Diverged before any epoch finished: there is no good adapter to keep.
        return res;
    }

    // The chosen epoch and the output folder.
    std::vector<double> losses;
    for (const auto& e : history) losses.push_back(e.loss);
    res.choice = choose_epoch(losses, band);
    if (res.status == TrainStatus::Completed && res.stop_reason.empty())
        res.stop_reason = fmt::format("ran all {} epochs", history.size());
    say(fmt::format("[TRAIN] Kept epoch {}: {}", res.choice.epoch, res.choice.reason));
    if (res.choice.epoch < 1) throw Error("no epoch produced a usable adapter");

    std::string ref_text;
    fs::path ref_text_file = prep.dir / "ref_text.txt";
    bool ref_text_from_file = false;
    if (fs::exists(ref_text_file)) {
        ref_text = io::read_file(ref_text_file);
        auto b = ref_text.find_first_not_of(" \t\r\n"), e = ref_text.find_last_not_of(" \t\r\n");
        ref_text = b == std::string::npos ? "" : ref_text.substr(b, e - b + 1);
        ref_text_from_file = true;
    }
    if (ref_text.empty()) {
        ref_text = prep.clips.front().text;
        ref_text_from_file = false;
    }
    {
        // train_lora.py's preview: the first 60 characters (Python counts code points).
        std::string head;
        size_t cps = 0;
        for (size_t i = 0; i < ref_text.size() && cps < 60; ++cps) {
            size_t len = 1;
            unsigned char c = static_cast<unsigned char>(ref_text[i]);
            if (c >= 0xF0) len = 4;
            else if (c >= 0xE0) len = 3;
            else if (c >= 0xC0) len = 2;
            head += ref_text.substr(i, len);
            i += len;
        }
        say(ref_text_from_file ? fmt::format("[DATA] Using ref text from ref_text.txt: '{}...'", head)
                               : fmt::format("[DATA] Using first sample text as ref text: '{}...'", head));
    }

    const double training_time = std::chrono::duration<double>(clock::now() - t_start).count();
    double best = std::numeric_limits<double>::infinity();
    for (double l : losses)
        if (std::isfinite(l)) best = std::min(best, l);
    auto finite_or_null = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
    json hist = json::array();
    for (const auto& e : history) hist.push_back(epoch_json(e));
    const EpochRecord& chosen_rec = history[res.choice.epoch - 1];
    json meta{
        // Alexandria's keys (compat §2.4), same meaning.
        {"model_name", o.model},
        {"epochs", epochs},
        {"lr", lr},
        {"lora_r", o.lora_r},
        {"lora_alpha", std::floor(o.lora_alpha) == o.lora_alpha ? json(int64_t(o.lora_alpha)) : json(o.lora_alpha)},
        {"gradient_accumulation_steps", o.grad_accum},
        {"batch_size", o.batch},
        {"num_samples", n},
        {"final_loss", finite_or_null(history.back().loss)},
        {"best_loss", finite_or_null(best)},
        {"training_time_seconds", std::round(training_time * 10) / 10},
        {"ref_sample_audio", prep.reference.string()},
        {"ref_sample_text", ref_text},
        // Later Alexandria keys.
        {"oom_skips", [&] {
             int64_t s = 0;
             for (const auto& e : history) s += e.oom_skips;
             return s;
         }()},
        {"language", o.language},
        // Ours.
        {"tool", "alexandria"},
        {"tool_version", o.tool_version},
        {"model_dir", model_dir},
        {"objective", objective_name(o.objective)},
        {"seed", o.seed},
        {"lora_dropout", o.lora_dropout},
        {"device", dev.name},
        {"precision", dev.dtype == torch::kBFloat16 ? "bf16 base, fp32 LoRA/optimizer/loss" : "fp32"},
        {"epochs_run", history.size()},
        {"chosen_epoch", res.choice.epoch},
        {"chosen_loss", res.choice.loss},
        {"chosen_rule", res.choice.rule},
        {"chosen_reason", res.choice.reason},
        {"stopped_early", res.stopped_early},
        {"stop_reason", res.status == TrainStatus::Diverged ? res.message : res.stop_reason},
        {"status", res.status == TrainStatus::Diverged ? "diverged" : "completed"},
        {"target_loss", band.target ? json(*band.target) : json(nullptr)},
        {"loss_floor", band.floor ? json(*band.floor) : json(nullptr)},
        {"epoch_history", hist},
        {"alexandria_loss_per_epoch", [&] { json a = json::array(); for (auto& e : history) a.push_back(finite_or_null(e.alexandria_loss)); return a; }()},
        {"aligned_loss_per_epoch", [&] { json a = json::array(); for (auto& e : history) a.push_back(finite_or_null(e.aligned_loss)); return a; }()},
        {"chosen_loss_verdict", plan::to_json(plan::loss_verdict(chosen_rec.alexandria_loss))},
        {"exposure", n * int64_t(history.size())},
        {"recommendation", plan::to_json(rec)},
        {"dataset_dir", prep.dir.string()},
        {"dataset_hash", prep.dataset_hash},
        {"dataset_split", used_split ? "train" : "none"},
        {"skipped_clips", prep.skipped.size()},
        {"reference_source", prep.reference_source},
        {"codec_cache_key", prep.codec_key},
        {"optimizer", {{"name", "AdamW"}, {"betas", {kBeta1, kBeta2}}, {"eps", kEps}, {"weight_decay", kWeightDecay},
                       {"clip_grad_norm", kClipNorm}, {"schedule", "constant"}}},
        {"speaker_embedding_file", "speaker_embedding.safetensors"},
    };
    res.meta = meta;

    io::replace_directory_atomic(out, [&](const fs::path& tmp) {
        const fs::path chosen_dir = work / fmt::format("epoch-{}", res.choice.epoch);
        copy_file_bytes(chosen_dir / model::kAdapterConfigFile, tmp / model::kAdapterConfigFile);
        copy_file_bytes(chosen_dir / model::kAdapterWeightsFile, tmp / model::kAdapterWeightsFile);
        io::write_file_atomic(tmp / "training_meta.json", meta.dump(2) + "\n");
        copy_file_bytes(prep.reference, tmp / "ref_sample.wav");
        io::save_safetensors((tmp / "speaker_embedding.safetensors").string(),
                             {{"speaker_embedding", speaker_cpu.contiguous()}},
                             {{"reference", prep.reference.filename().string()}});
        copy_file_bytes(metrics.path(), tmp / "metrics.jsonl");
        io::write_file_atomic(tmp / "loss.svg", loss_svg(history, o.objective, res.choice.epoch));
        fs::create_directories(tmp / "checkpoints");
        for (const auto& e : history) {
            fs::path from = work / fmt::format("epoch-{}", e.epoch), to = tmp / "checkpoints" / from.filename();
            fs::create_directories(to);
            for (auto& f : fs::directory_iterator(from)) link_or_copy(f.path(), to / f.path().filename());
        }
    });

    if (o.inspect) o.inspect(lm.model);
    if (res.status == TrainStatus::Completed)
        say(fmt::format("[DONE] Adapter saved to {} (best_loss={:.4f}, time={:.0f}s)", o.out.string(), best,
                    training_time));
    return res;
}

}  // namespace alexandria::train
