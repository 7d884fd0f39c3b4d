#include "alexandria/eval/evaluate.h"

#include <chrono>
#include <cmath>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "alexandria/dataset/prepare.h"
#include "alexandria/dataset/split.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/model/speaker_encoder.h"
#include "alexandria/synth/synthesizer.h"
#include "alexandria/text/prompt.h"
#include "alexandria/train/layout.h"
#include "alexandria/version.h"

namespace alexandria::eval {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

json num(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

std::vector<float> to_vector(const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

torch::Device parse_device(const std::string& s) {
    try {
        torch::Device d(s);
        if (d.is_cuda() && !torch::cuda::is_available())
            throw InputError(fmt::format("--device {}: this build or machine has no CUDA device", s));
        return d;
    } catch (const c10::Error&) {
        throw InputError(fmt::format("--device '{}': expected cpu, cuda or cuda:N", s));
    }
}

torch::Dtype parse_dtype(const std::string& s, torch::Device d) {
    if (s == "auto") return d.is_cpu() ? torch::kFloat32 : torch::kBFloat16;
    if (s == "f32" || s == "float32") return torch::kFloat32;
    if (s == "bf16" || s == "bfloat16") return torch::kBFloat16;
    if (s == "f16" || s == "float16") return torch::kFloat16;
    throw InputError(fmt::format("--dtype '{}': expected auto, f32, bf16 or f16", s));
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// "a/b/" and "a/./b" → "a/b", so filename() and parent_path() mean the folder itself and its parent.
fs::path folder_path(const std::string& dir) {
    fs::path p = fs::path(dir).lexically_normal();
    if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
    return p;
}

std::optional<json> read_json_object(const fs::path& p) {
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return std::nullopt;
    try {
        json j = json::parse(io::read_file(p));
        if (j.is_object()) return j;
    } catch (const json::exception&) {
    }
    return std::nullopt;
}

// The training facts worth showing next to an adapter's evaluation.
json training_summary(const std::string& dir) {
    const fs::path d = folder_path(dir);
    auto meta = read_json_object(d / synth::kTrainingMetaFile);
    bool from_parent = false;
    if (!meta && d.parent_path().filename() == "checkpoints") {
        meta = read_json_object(d.parent_path().parent_path() / synth::kTrainingMetaFile);
        from_parent = meta.has_value();
    }
    if (!meta) return json(nullptr);
    json out = json::object();
    for (const char* k : {"objective", "language", "epochs", "epochs_run", "chosen_epoch", "final_loss", "best_loss",
                          "chosen_loss", "lr", "num_samples", "dataset_split", "tool_version"})
        if (meta->contains(k)) out[k] = (*meta)[k];
    if (from_parent) {
        out["from"] = "the training run's training_meta.json (this folder is one of its epoch checkpoints)";
        // The epoch's own training loss, from the run's history.
        const std::string name = d.filename().string();
        if (name.rfind("epoch-", 0) == 0 && meta->contains("epoch_history") && (*meta)["epoch_history"].is_array()) {
            for (const auto& e : (*meta)["epoch_history"])
                if (e.is_object() && e.contains("epoch") && fmt::format("epoch-{}", e["epoch"].dump()) == name) {
                    out["epoch"] = e;
                    break;
                }
        }
    }
    return out;
}

}  // namespace

HeldOutLoss held_out_loss(model::Talker& talker, const train::PromptContext& ctx,
                          const std::vector<train::Sample>& samples) {
    if (samples.empty()) throw InputError("no held-out sample to compute a loss on");
    const auto t0 = clock_type::now();
    const bool was_training = talker->is_training();
    talker->eval();
    torch::NoGradGuard no_grad;
    double a = 0, at = 0, as = 0, g = 0, gt = 0, gs = 0;
    try {
        for (const auto& s : samples) {
            auto bl = train::batch_loss(talker, ctx, {&s}, train::Objective::Alexandria, 1.0);
            const auto& sl = bl.samples.at(0);
            a += sl.alexandria.total, at += sl.alexandria.talker, as += sl.alexandria.sub;
            g += sl.aligned.total, gt += sl.aligned.talker, gs += sl.aligned.sub;
        }
    } catch (...) {
        if (was_training) talker->train();
        throw;
    }
    if (was_training) talker->train();
    const double n = static_cast<double>(samples.size());
    HeldOutLoss h;
    h.alexandria = {a / n, at / n, as / n};
    h.aligned = {g / n, gt / n, gs / n};
    h.samples = static_cast<int>(samples.size());
    h.verdict = plan::loss_verdict(h.alexandria.total);
    h.seconds = since(t0);
    return h;
}

PooledRate dataset_speaking_rate(const dataset::Dataset& ds, std::vector<std::string>* skipped) {
    std::vector<RateSample> samples;
    for (const auto& e : ds.entries) {
        if (e.has_errors() || e.audio_path.empty() || dataset::blank(e.text)) continue;
        try {
            io::Audio a = io::read_audio(e.audio_path.string());
            samples.push_back({spoken_characters(e.text), speech_seconds(io::audio_stats(a))});
        } catch (const Error& err) {
            if (skipped) skipped->push_back(fmt::format("{}: {}", e.audio, err.what()));
        }
    }
    return pooled_rate(samples);
}

std::optional<std::vector<int>> held_out_lines(const dataset::Dataset& ds) {
    auto val = dataset::load_split(ds.dir, "val");
    if (!val) return std::nullopt;
    if (val->empty())
        throw InputError(fmt::format("{}: the validation split is empty; run `alexandria dataset split {} --val "
                                     "FRACTION` with a larger fraction, or remove {} to evaluate on every clip",
                                     dataset::split_file(ds.dir, "val").string(), ds.dir.string(),
                                     (ds.dir / "splits").string()));
    std::set<std::pair<std::string, std::string>> wanted;
    for (const auto& l : *val) wanted.insert({l.audio_filepath, l.text});
    std::vector<int> lines;
    for (const auto& e : ds.entries)
        if (wanted.count({e.audio, e.text})) lines.push_back(e.line);
    if (lines.empty())
        throw InputError(fmt::format("{}: the split's val side matches no metadata line; run `alexandria dataset split "
                                     "{}` again",
                                     ds.dir.string(), ds.dir.string()));
    return lines;
}

std::string adapter_label(const std::string& dir, const std::vector<std::string>& taken) {
    const fs::path p = folder_path(dir);
    std::string name = p.filename().string();
    if (name.empty() || name == "." || name == "..") name = fs::weakly_canonical(p).filename().string();
    std::string clean;
    for (char c : name) clean += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
    if (clean.empty() || clean == "." || clean == "..") clean = "adapter";
    if (clean == kBaseLabel) clean = "base-adapter";
    std::string label = clean;
    for (int k = 2; std::find(taken.begin(), taken.end(), label) != taken.end(); ++k) label = fmt::format("{}-{}", clean, k);
    return label;
}

std::string recorded_language(const std::string& adapter_dir) {
    const fs::path d = folder_path(adapter_dir);
    auto lang_of = [](const fs::path& meta_path) -> std::string {
        auto m = read_json_object(meta_path);
        if (m && m->contains("language") && (*m)["language"].is_string()) return lower((*m)["language"].get<std::string>());
        return "";
    };
    std::string l = lang_of(d / synth::kTrainingMetaFile);
    if (l.empty() && d.parent_path().filename() == "checkpoints")
        l = lang_of(d.parent_path().parent_path() / synth::kTrainingMetaFile);
    return l;
}

// ---- JSON --------------------------------------------------------------------------------------------------------

namespace {
json objective_json(const train::ObjectiveLoss& l) {
    return json{{"loss", num(l.total)}, {"talker_loss", num(l.talker)}, {"sub_loss", num(l.sub)}};
}
}  // namespace

json to_json(const HeldOutLoss& l) {
    return json{{"split", l.split},
                {"samples", l.samples},
                {"language", l.language},
                {"alexandria", objective_json(l.alexandria)},
                {"aligned", objective_json(l.aligned)},
                {"verdict", plan::to_json(l.verdict)},
                {"note", l.note},
                {"seconds", l.seconds}};
}

json to_json(const PooledRate& r) {
    return json{{"chars_per_second", num(r.chars_per_second)},
                {"characters", r.characters},
                {"speech_seconds", r.speech_seconds},
                {"clips", r.clips}};
}

json to_json(const OutputCheck& o) {
    json j{{"prompt", o.prompt_id}, {"kind", o.kind}, {"seed", o.seed}, {"characters", o.characters},
           {"failed", o.failed}};
    if (o.failed) {
        j["error"] = o.error;
        return j;
    }
    j.update(json{{"frames", o.frames},
                  {"frame_cap", o.frame_cap},
                  {"eos", !o.hit_cap},
                  {"hit_cap", o.hit_cap},
                  {"seconds", o.seconds},
                  {"speech_seconds", o.speech_seconds},
                  {"peak", o.peak},
                  {"rms", o.rms},
                  {"clipped_fraction", o.clipped_fraction},
                  {"silent", o.silent},
                  {"clipped", o.clipped},
                  {"chars_per_second", num(o.rate)},
                  {"expected_seconds", num(o.duration.expected_seconds)},
                  {"duration_ratio", num(o.duration.ratio)},
                  {"duration_outlier", o.duration.outlier},
                  {"speaker_similarity", o.similarity ? num(*o.similarity) : json(nullptr)},
                  {"wav", o.wav},
                  {"compute_seconds", o.compute_seconds}});
    return j;
}

json to_json(const GenerationSummary& g) {
    return json{{"outputs", g.outputs},
                {"failed", g.failed},
                {"eos", g.eos},
                {"runaway", g.runaway},
                {"eos_rate", num(g.eos_rate)},
                {"runaway_rate", num(g.runaway_rate)},
                {"short", {{"outputs", g.short_outputs}, {"runaway", g.short_runaway}, {"runaway_rate", num(g.short_runaway_rate)}}},
                {"long", {{"outputs", g.long_outputs}, {"runaway", g.long_runaway}, {"runaway_rate", num(g.long_runaway_rate)}}},
                {"speaking_rate", to_json(g.rate)},
                {"speaking_rate_ratio", num(g.rate_ratio)},
                {"speaker_similarity",
                 {{"count", g.similarity_count},
                  {"mean", num(g.similarity_mean)},
                  {"min", num(g.similarity_min)},
                  {"max", num(g.similarity_max)}}},
                {"silent", g.silent},
                {"clipped", g.clipped},
                {"duration_outliers", g.duration_outliers},
                {"audio_seconds", g.audio_seconds},
                {"compute_seconds", g.compute_seconds}};
}

namespace {

json adapter_json(const AdapterEval& a, bool judged) {
    json outs = json::array();
    for (const auto& o : a.outputs) outs.push_back(to_json(o));
    json j{{"label", a.label},
           {"dir", a.dir},
           {"language", a.language},
           {"held_out_loss", a.loss ? to_json(*a.loss) : json(nullptr)},
           {"generation", to_json(a.generation)},
           {"outputs", outs},
           {"training", a.training}};
    if (judged) j["verdict"] = to_json(a.verdict);
    return j;
}

// ---- the run ---------------------------------------------------------------------------------------------------

struct Context {
    Context(const EvalOptions& options, synth::Synthesizer& synthesizer) : o(options), synth(synthesizer) {}
    const EvalOptions& o;
    synth::Synthesizer& synth;
    std::vector<Prompt> prompts;
    std::vector<train::Sample> samples;
    torch::Tensor speaker;           // reference speaker vector, model device/dtype
    std::vector<float> ref_vector;   // same, fp32 CPU, for similarities
    std::string reference;           // reference audio path (the clone reference of every generation)
    double dataset_rate = kNaN;
    std::string split, split_note;
    fs::path out;

    void log(const std::string& s) const {
        if (o.log) o.log(s);
    }

    HeldOutLoss loss(const std::string& language) {
        const auto& cfg = synth.config();
        train::PromptContext ctx;
        ctx.ids = train::LayoutIds::from_config(cfg);
        ctx.prefix = train::codec_prefix(cfg, language);
        ctx.speaker = speaker;
        HeldOutLoss h = held_out_loss(synth.model()->talker, ctx, samples);
        h.split = split;
        h.note = split_note;
        h.language = language;
        return h;
    }

    std::vector<OutputCheck> generate(const std::string& label, const std::string& adapter, const std::string& language) {
        std::vector<OutputCheck> outs;
        const fs::path dir = out / label;
        fs::create_directories(dir);
        for (const auto& p : prompts) {
            for (int k = 0; k < o.seeds; ++k) {
                const uint64_t seed = o.first_seed + static_cast<uint64_t>(k);
                OutputCheck c;
                c.prompt_id = p.id;
                c.kind = prompt_kind_name(p.kind);
                c.seed = seed;
                c.characters = spoken_characters(p.text);
                synth::Utterance u;
                u.text = p.text;
                u.language = language;
                u.ref_audio = reference;
                u.adapter = adapter.empty() ? "-" : adapter;
                u.seed = seed;
                u.max_frames = o.max_frames;
                u.cap_rule.frames_per_token = o.frames_per_token;
                u.cap_rule.min_frames = o.min_frames;
                const auto t0 = clock_type::now();
                synth::SynthResult r;
                try {
                    r = synth.speak(u);
                } catch (const InputError&) {
                    throw;  // the same for every prompt: bad language, model, adapter (exit 2)
                } catch (const std::exception& e) {
                    c.failed = true;
                    c.error = e.what();
                    c.compute_seconds = since(t0);
                    log(fmt::format("[EVAL] {} {} seed {}: FAILED: {}", label, p.id, seed, c.error));
                    outs.push_back(std::move(c));
                    continue;
                }
                c.compute_seconds = since(t0);
                c.frames = r.frames;
                c.frame_cap = r.frame_cap;
                c.hit_cap = r.hit_cap;
                io::Audio a;
                a.samples = std::move(r.audio);
                a.sample_rate = io::kModelSampleRate;
                if (a.samples.empty()) {
                    c.silent = true;
                } else {
                    measure_audio(c, io::audio_stats(a), dataset_rate);
                    if (!c.silent) {
                        try {
                            c.similarity = cosine_similarity(
                                to_vector(model::speaker_embedding(synth.model()->speaker_encoder, a.samples)), ref_vector);
                        } catch (const InputError&) {
                            // Too short for the encoder's padding: no similarity for this output.
                        }
                    }
                    const fs::path wav = dir / fmt::format("{}-s{}.wav", p.id, seed);
                    io::write_audio(wav.string(), a);
                    c.wav = wav.string();
                }
                log(fmt::format("[EVAL] {} {} seed {}: {:.2f} s, {} frames, {}{}{}", label, p.id, seed, c.seconds,
                                c.frames, c.hit_cap ? "HIT THE CAP" : "EOS",
                                std::isfinite(c.rate) ? fmt::format(", {:.1f} chars/s", c.rate) : "",
                                c.similarity ? fmt::format(", similarity {:.3f}", *c.similarity) : ""));
                outs.push_back(std::move(c));
            }
        }
        return outs;
    }
};

}  // namespace

EvalReport evaluate(const EvalOptions& o) {
    const auto t_start = clock_type::now();
    if (o.adapters.empty()) throw InputError("--adapter: give at least one adapter folder");
    if (o.seeds < 1 || o.seeds > 1000) throw InputError(fmt::format("--seeds {}: expected 1..1000", o.seeds));
    if (o.out.empty()) throw InputError("--out: an output folder is required");
    if (!(o.frames_per_token > 0)) throw InputError("--frames-per-token must be > 0");
    if (o.min_frames < 1) throw InputError("--min-frames must be >= 1");
    if (o.max_frames < 0) throw InputError("--max-frames must be >= 0");
    if (!(o.max_seconds > 0)) throw InputError("--max-seconds must be > 0");
    if (!o.loss && !o.generate) throw InputError("nothing to do: both the loss and the generation checks are off");
    {
        std::error_code ec;
        if (fs::exists(o.out, ec) && !fs::is_directory(o.out, ec))
            throw InputError(fmt::format("--out {}: not a folder", o.out));
    }
    // Every adapter folder is validated before any model is loaded, so a typo fails in a second.
    std::vector<std::string> labels;
    for (const auto& dir : o.adapters) {
        model::read_adapter(dir);
        labels.push_back(adapter_label(dir, labels));
    }
    std::vector<Prompt> prompts = o.prompts_file.empty() ? default_prompts() : read_prompts(o.prompts_file);
    dataset::Dataset ds = dataset::Dataset::load(o.data);
    auto val_lines = held_out_lines(ds);

    const torch::Device device = parse_device(o.device);
    const torch::Dtype dtype = parse_dtype(o.dtype, device);
    synth::LoadOptions lo;
    lo.model = o.model;
    lo.device = device;
    lo.dtype = dtype;
    lo.merge_adapter = false;  // several adapters (and the base) in turn: keep the branches separate
    if (o.log) o.log("[EVAL] Loading model...");
    synth::Synthesizer synth(lo);
    const auto& cfg = synth.config();
    if (!cfg.is_base() || !synth.model()->has_speaker_encoder())
        throw InputError(fmt::format("--model {}: a Base checkpoint is required (tts_model_type is '{}'); voice "
                                     "adapters are trained and evaluated on Base models",
                                     o.model, cfg.tts_model_type));

    if (!o.language.empty()) {
        const auto langs = cfg.supported_languages();
        if (std::find(langs.begin(), langs.end(), lower(o.language)) == langs.end())
            throw InputError(fmt::format("--language '{}': this model knows {}", o.language, fmt::join(langs, ", ")));
    }

    Context C{o, synth};
    C.prompts = prompts;
    C.out = fs::path(o.out);
    fs::create_directories(C.out);

    // The dataset's own speaking rate (every usable clip, not only the held-out ones).
    std::vector<std::string> rate_skipped;
    PooledRate ds_rate = dataset_speaking_rate(ds, &rate_skipped);
    C.dataset_rate = ds_rate.chars_per_second;

    // The held-out clips through the codes cache (and the reference speaker vector).
    dataset::PrepareOptions popt;
    popt.max_seconds = o.max_seconds;
    popt.device = device;
    popt.dtype = torch::kFloat32;
    if (val_lines) popt.only_lines = *val_lines;
    popt.codec = &synth.codec();
    popt.speaker_encoder = &synth.model()->speaker_encoder;
    popt.log = o.log;
    dataset::PrepareResult prep = dataset::prepare(ds.dir, synth.model_dir(), popt);
    C.split = val_lines ? "val" : "all";
    C.split_note = val_lines ? fmt::format("{} clips of {} held out (never trained on)", prep.clips.size(),
                                           dataset::split_file(ds.dir, "val").string())
                             : fmt::format("no validation split (run `alexandria dataset split {}` before training): the "
                                           "loss is over every clip, i.e. the training data, and reads lower than a "
                                           "held-out loss would",
                                           ds.dir.string());
    for (const auto& c : prep.clips) {
        train::Sample s;
        s.name = c.audio;
        auto ids = text::encode_target_text(synth.tokenizer(), c.text);
        s.role.assign(ids.role.begin(), ids.role.end());
        s.content.assign(ids.content.begin(), ids.content.end());
        s.codes = prep.load_codes(c);
        C.samples.push_back(std::move(s));
    }
    torch::Tensor spk = prep.speaker_embedding();
    if (spk.numel() != cfg.talker.hidden_size)
        throw Error(fmt::format("speaker embedding has {} values, the talker is {} wide", spk.numel(),
                                cfg.talker.hidden_size));
    C.speaker = spk.to(device, dtype);
    C.ref_vector = to_vector(spk);
    C.reference = prep.reference.string();

    // ref_text.txt against ref.wav (the seed's "ref.wav mismatch" row).
    std::optional<RefCheck> ref_check;
    if (ds.ref_wav) {
        try {
            io::Audio ra = io::read_audio_resampled(ds.ref_wav->string());
            std::string text = ds.ref_text.value_or("");
            ref_check = check_reference(text, ds.ref_text.has_value(), io::audio_stats(ra), C.dataset_rate);
        } catch (const InputError& e) {
            RefCheck r;
            r.mismatch = true;
            r.reason = fmt::format("ref.wav cannot be read: {}", e.what());
            ref_check = r;
        }
    }

    auto language_for = [&](const std::string& adapter) {
        if (!o.language.empty()) return lower(o.language);
        std::string l = adapter.empty() ? "" : recorded_language(adapter);
        return l.empty() ? std::string("english") : l;  // train's default
    };

    EvalReport rep;
    if (o.compare_base) {
        AdapterEval b;
        b.label = kBaseLabel;
        b.language = language_for(o.adapters.front());
        synth.use_adapter("");
        C.log(fmt::format("[EVAL] base model (no adapter), language {}", b.language));
        if (o.loss) b.loss = C.loss(b.language);
        if (o.generate) b.outputs = C.generate(b.label, "", b.language);
        b.generation = summarize(b.outputs, C.dataset_rate);
        rep.base = std::move(b);
    }
    for (size_t i = 0; i < o.adapters.size(); ++i) {
        AdapterEval a;
        a.label = labels[i];
        a.dir = o.adapters[i];
        a.language = language_for(a.dir);
        a.training = training_summary(a.dir);
        synth.use_adapter(a.dir);
        C.log(fmt::format("[EVAL] adapter {} ({}), language {}", a.label, a.dir, a.language));
        if (o.loss) {
            a.loss = C.loss(a.language);
            C.log(fmt::format("[EVAL] {} held-out loss: alexandria {:.4f}, aligned {:.4f} ({} clips, {})", a.label,
                              a.loss->alexandria.total, a.loss->aligned.total, a.loss->samples, C.split));
        }
        if (o.generate) a.outputs = C.generate(a.label, a.dir, a.language);
        a.generation = summarize(a.outputs, C.dataset_rate);
        JudgeInput in;
        if (a.loss) in.loss = a.loss->verdict;
        if (o.generate) {
            in.generation = a.generation;
            if (rep.base && o.generate) in.base = rep.base->generation;
        }
        in.reference = ref_check;
        a.verdict = judge(in);
        rep.adapters.push_back(std::move(a));
    }

    std::vector<RankInput> ranks;
    for (const auto& a : rep.adapters)
        ranks.push_back({a.label, a.verdict.usable, a.generation.runaway_rate, a.generation.similarity_mean,
                         a.generation.rate_ratio, a.loss ? a.loss->alexandria.total : kNaN});
    rep.ranking = rank_adapters(ranks);
    rep.pick = pick_adapter(ranks);
    rep.usable = rep.pick.has_value();
    rep.exit_code = rep.usable ? kExitUsable : kExitNotUsable;
    rep.seconds = since(t_start);

    // eval.json
    json prompts_json = json::array();
    for (const auto& p : prompts)
        prompts_json.push_back({{"id", p.id}, {"text", p.text}, {"kind", prompt_kind_name(p.kind)},
                                {"characters", spoken_characters(p.text)}});
    json seeds = json::array();
    for (int k = 0; k < o.seeds; ++k) seeds.push_back(o.first_seed + static_cast<uint64_t>(k));
    json adapters = json::array();
    for (const auto& a : rep.adapters) adapters.push_back(adapter_json(a, true));
    json ranking = json::array();
    for (size_t r = 0; r < rep.ranking.size(); ++r) {
        const auto& a = rep.adapters[rep.ranking[r]];
        ranking.push_back({{"rank", r + 1}, {"label", a.label}, {"dir", a.dir}, {"usable", a.verdict.usable}});
    }
    json table = json::array();
    for (const auto& r : troubleshooting_table())
        table.push_back({{"key", r.key}, {"problem", r.problem}, {"cause", r.cause}, {"fix", r.fix}});
    json bands = json::array();
    for (const auto& r : plan::loss_table())
        bands.push_back({{"loss", r.loss_label}, {"verdict", r.verdict}, {"band", plan::loss_band_name(r.band)}});
    const auto& gen = synth.generation();
    rep.json = json{
        {"schema", kEvalSchema},
        {"versions", {{"alexandria", kVersion}, {"tool", o.tool_version},
                      {"libtorch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)}}},
        {"model", {{"name", o.model}, {"dir", synth.model_dir()}, {"type", cfg.tts_model_type}, {"size", cfg.tts_model_size},
                   {"device", device.str()}, {"dtype", dtype == torch::kFloat32 ? "f32" : dtype == torch::kBFloat16 ? "bf16" : "f16"}}},
        {"data",
         {{"dir", ds.dir.string()},
          {"held_out", {{"split", C.split}, {"clips", prep.clips.size()}, {"skipped", prep.skipped.size()}, {"note", C.split_note}}},
          {"speaking_rate", to_json(ds_rate)},
          {"speaking_rate_skipped", rate_skipped},
          {"reference", C.reference},
          {"reference_source", prep.reference_source},
          {"reference_check", ref_check ? to_json(*ref_check) : json(nullptr)}}},
        {"settings",
         {{"prompts", prompts_json},
          {"prompts_file", o.prompts_file},
          {"seeds", seeds},
          {"max_frames", o.max_frames > 0 ? o.max_frames : gen.max_new_tokens},
          {"frames_per_token", o.frames_per_token},
          {"min_frames", o.min_frames},
          {"language", o.language.empty() ? json("per adapter (training_meta.json), else english") : json(lower(o.language))},
          {"sampling", "generation_config.json (seeded)"},
          {"voice", "x-vector clone of the dataset's reference, with and without the adapter"},
          {"compare_base", o.compare_base},
          {"loss", o.loss},
          {"generate", o.generate}}},
        {"thresholds",
         {{"max_runaway_rate", kMaxRunawayRate},
          {"speaking_rate_ratio", {kRateRatioLow, kRateRatioHigh}},
          {"duration_ratio", {kDurationRatioLow, kDurationRatioHigh}},
          {"duration_slack_seconds", kDurationSlackSeconds},
          {"max_clipped_fraction", kMaxClippedFraction},
          {"max_silent_rate", kMaxSilentRate},
          {"max_outlier_rate", kMaxOutlierRate},
          {"reference_rate_ratio", {kRefRateRatioLow, kRefRateRatioHigh}}}},
        {"seed_tables", {{"loss_bands", bands}, {"troubleshooting", table},
                         {"loss_bands_note", "the seed measured its bands on Alexandria's training loss; a held-out "
                                             "loss on unseen clips usually reads somewhat higher"}}},
        {"not_measured", {"the seed's \"Initial audio glitch\" row", "garbling itself (no speech recogniser): listen to the WAVs"}},
        {"base", rep.base ? adapter_json(*rep.base, false) : json(nullptr)},
        {"adapters", adapters},
        {"comparison", {{"ranking", ranking},
                        {"order", "usable first; fewer runaways; higher speaker similarity; speaking-rate ratio "
                                  "closer to 1; held-out loss closer to 4.15"},
                        {"pick", rep.pick ? json(rep.adapters[*rep.pick].label) : json(nullptr)},
                        {"pick_dir", rep.pick ? json(rep.adapters[*rep.pick].dir) : json(nullptr)}}},
        {"usable", rep.usable},
        {"exit_code", rep.exit_code},
        {"seconds", rep.seconds},
    };
    rep.json_path = C.out / kEvalFile;
    io::write_file_atomic(rep.json_path, rep.json.dump(2) + "\n");
    return rep;
}

// ---- the human table ---------------------------------------------------------------------------------------------

namespace {
std::string f3(double x) { return std::isfinite(x) ? fmt::format("{:.3f}", x) : "-"; }
std::string f2(double x) { return std::isfinite(x) ? fmt::format("{:.2f}", x) : "-"; }
std::string f1(double x) { return std::isfinite(x) ? fmt::format("{:.1f}", x) : "-"; }
std::string frac(int k, int n) { return n > 0 ? fmt::format("{}/{}", k, n) : "-"; }
}  // namespace

std::string format_table(const EvalReport& r) {
    std::string s;
    const json& d = r.json.at("data");
    s += fmt::format("dataset {}: speaking rate {} chars/s over {} clips; loss on {} ({})\n", d.at("dir").get<std::string>(),
                     f1(d.at("speaking_rate").at("chars_per_second").is_number()
                            ? d.at("speaking_rate").at("chars_per_second").get<double>()
                            : kNaN),
                     d.at("speaking_rate").at("clips").get<int>(), d.at("held_out").at("split").get<std::string>(),
                     d.at("held_out").at("note").get<std::string>());
    s += fmt::format("{:<14} {:>8} {:<20} {:>8} {:>7} {:>8} {:>8} {:>11} {:>11}  {}\n", "adapter", "loss", "band",
                     "aligned", "EOS", "runaway", "short", "rate (×ds)", "similarity", "verdict");
    auto line = [&](const AdapterEval& a, bool judged) {
        const auto& g = a.generation;
        std::string verdict = judged ? (a.verdict.usable ? "usable" : "NOT USABLE") : "(reference)";
        s += fmt::format("{:<14} {:>8} {:<20} {:>8} {:>7} {:>8} {:>8} {:>11} {:>11}  {}\n", a.label,
                         a.loss ? f3(a.loss->alexandria.total) : "-", a.loss ? a.loss->verdict.name : "-",
                         a.loss ? f3(a.loss->aligned.total) : "-", frac(g.eos, g.eos + g.runaway),
                         frac(g.runaway, g.eos + g.runaway), frac(g.short_runaway, g.short_outputs),
                         std::isfinite(g.rate_ratio) ? fmt::format("{} ({})", f1(g.rate.chars_per_second), f2(g.rate_ratio))
                                                     : f1(g.rate.chars_per_second),
                         f3(g.similarity_mean), verdict);
    };
    if (r.base) line(*r.base, false);
    for (const auto& a : r.adapters) line(a, true);
    for (const auto& a : r.adapters) {
        s += fmt::format("\n{}: {}\n", a.label, a.verdict.summary);
        if (a.loss && !a.loss->verdict.note.empty()) s += fmt::format("  loss: {}\n", a.loss->verdict.note);
        for (const auto& f : a.verdict.findings) {
            s += fmt::format("  [{}] {}{} — fix: {}\n", severity_name(f.severity), f.problem,
                             f.seed_row ? fmt::format(" (cause: {})", f.cause) : "", f.fix);
            for (const auto& e : f.evidence) s += fmt::format("      {}\n", e);
        }
        const auto& g = a.generation;
        if (g.silent || g.clipped || g.duration_outliers)
            s += fmt::format("  silent {} and clipped {} of {} outputs; duration outliers {} of {} that ended on EOS\n",
                             g.silent, g.clipped, g.eos + g.runaway, g.duration_outliers, g.eos);
    }
    if (r.adapters.size() > 1) {
        s += "\nranking:";
        for (size_t k = 0; k < r.ranking.size(); ++k)
            s += fmt::format(" {}{}", k ? "> " : "", r.adapters[r.ranking[k]].label);
        s += "\n";
    }
    if (r.pick)
        s += fmt::format("recommended: {} ({})\n", r.adapters[*r.pick].label, r.adapters[*r.pick].dir);
    else
        s += r.adapters.size() > 1 ? "recommended: none of these adapters is usable\n" : "";
    s += fmt::format("report: {}\n", r.json_path.string());
    return s;
}

}  // namespace alexandria::eval
