#include "alexandria/eval/evaluate.h"

#include <chrono>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <set>

#include <unistd.h>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include "alexandria/dataset/prepare.h"
#include "alexandria/dataset/split.h"
#include "alexandria/eval/report.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/device.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/strings.h"
#include "alexandria/model/speaker_encoder.h"
#include "alexandria/synth/generate.h"
#include "alexandria/synth/synthesizer.h"
#include "alexandria/text/prompt.h"
#include "alexandria/train/layout.h"
#include "alexandria/version.h"

namespace alexandria::eval {

using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

std::vector<float> to_vector(const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous().reshape({-1});
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
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
        if (m && m->contains("language") && (*m)["language"].is_string()) return io::ascii_lower((*m)["language"].get<std::string>());
        return "";
    };
    std::string l = lang_of(d / synth::kTrainingMetaFile);
    if (l.empty() && d.parent_path().filename() == "checkpoints")
        l = lang_of(d.parent_path().parent_path() / synth::kTrainingMetaFile);
    return l;
}

std::string recorded_prompt(const std::string& adapter_dir) {
    const fs::path d = folder_path(adapter_dir);
    auto prompt_of = [](const fs::path& meta_path) -> std::string {
        auto m = read_json_object(meta_path);
        if (m && m->contains("prompt") && (*m)["prompt"].is_string()) return io::ascii_lower((*m)["prompt"].get<std::string>());
        return "";
    };
    std::string p = prompt_of(d / synth::kTrainingMetaFile);
    if (p.empty() && d.parent_path().filename() == "checkpoints")
        p = prompt_of(d.parent_path().parent_path() / synth::kTrainingMetaFile);
    return p == "icl" ? "icl" : "xvector";
}

// ---- the run, step by step ---------------------------------------------------------------------------------------

namespace {

// The output folder must be creatable and writable; checked on the path alone first (no model loaded, nothing
// created), then for real by open_out_folder just before any generation.
void check_out_path(const std::string& out) {
    if (out.empty()) throw InputError("--out: an output folder is required");
    std::error_code ec;
    fs::path p = fs::absolute(fs::path(out), ec).lexically_normal();
    if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
    if (fs::exists(p, ec) && !fs::is_directory(p, ec)) throw InputError(fmt::format("--out {}: not a folder", out));
    fs::path existing = p;
    while (!existing.empty() && !fs::exists(existing, ec) && existing.has_parent_path() &&
           existing.parent_path() != existing)
        existing = existing.parent_path();
    if (!fs::is_directory(existing, ec))
        throw InputError(fmt::format("--out {}: {} is not a folder, so the output folder cannot be created", out,
                                     existing.string()));
    if (::access(existing.c_str(), W_OK | X_OK) != 0)
        throw InputError(fmt::format("--out {}: {} is not writable ({})", out, existing.string(), std::strerror(errno)));
}

void check_options(const EvalOptions& o) {
    if (o.adapters.empty()) throw InputError("--adapter: give at least one adapter folder");
    if (o.seeds < 1 || o.seeds > 1000) throw InputError(fmt::format("--seeds {}: expected 1..1000", o.seeds));
    if (!(o.frames_per_token > 0)) throw InputError("--frames-per-token must be > 0");
    if (o.min_frames < 1) throw InputError("--min-frames must be >= 1");
    if (o.max_frames < 0) throw InputError("--max-frames must be >= 0");
    if (o.batch < 0) throw InputError("--batch must be at least 1");
    if (!(o.max_seconds > 0)) throw InputError("--max-seconds must be > 0");
    if (!o.loss && !o.generate) throw InputError("nothing to do: both the loss and the generation checks are off");
    check_out_path(o.out);
}

// Creates the output folder and proves it takes a file; InputError (exit 2) otherwise.
fs::path open_out_folder(const std::string& out) {
    const fs::path dir(out);
    try {
        fs::create_directories(dir);
        io::write_file_atomic(dir / ".alexandria-write-test", "");
        fs::remove(dir / ".alexandria-write-test");
    } catch (const fs::filesystem_error& e) {
        throw InputError(fmt::format("--out {}: cannot write there ({})", out, e.code().message()));
    } catch (const Error& e) {
        throw InputError(fmt::format("--out {}: cannot write there ({})", out, e.what()));
    }
    return dir;
}

// What the command line names, read and validated before any model is loaded, so a typo fails in a second.
struct Inputs {
    std::vector<std::string> labels;  // parallel to options.adapters
    std::vector<Prompt> prompts;
    dataset::Dataset ds;
    std::optional<std::vector<int>> val_lines;
};

Inputs read_inputs(const EvalOptions& o) {
    std::vector<std::string> labels;
    for (const auto& dir : o.adapters) {
        model::read_adapter(dir);
        labels.push_back(adapter_label(dir, labels));
    }
    std::vector<Prompt> prompts = o.prompts_file.empty() ? default_prompts() : read_prompts(o.prompts_file);
    dataset::Dataset ds = dataset::Dataset::load(o.data);
    auto val_lines = held_out_lines(ds);
    return Inputs{std::move(labels), std::move(prompts), std::move(ds), std::move(val_lines)};
}

synth::Synthesizer load_base_model(const EvalOptions& o, torch::Device device, torch::Dtype dtype) {
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
        if (std::find(langs.begin(), langs.end(), io::ascii_lower(o.language)) == langs.end())
            throw InputError(fmt::format("--language '{}': this model knows {}", o.language, fmt::join(langs, ", ")));
    }
    return synth;
}

// The held-out clips (through the codes cache) as training samples, and the dataset's reference speaker.
struct HeldOutSet {
    std::vector<train::Sample> samples;
    std::string split, note;      // "val" | "all", and what that means for the loss
    size_t clips = 0, skipped = 0;
    fs::path reference;           // the reference audio (the clone reference of every generation)
    std::string reference_source;
    torch::Tensor speaker;        // [hidden] fp32 CPU
    torch::Tensor ref_codes;      // [frames, 16] the reference's codes (ICL prompts)
};

HeldOutSet prepare_held_out(const dataset::Dataset& ds, const std::optional<std::vector<int>>& val_lines,
                            synth::Synthesizer& synth, const EvalOptions& o, torch::Device device) {
    dataset::PrepareOptions popt;
    popt.max_seconds = o.max_seconds;
    popt.device = device;
    popt.dtype = torch::kFloat32;
    if (val_lines) popt.only_lines = *val_lines;
    popt.codec = &synth.codec();
    popt.speaker_encoder = &synth.model()->speaker_encoder;
    popt.reference_codes = true;  // ICL adapters are scored with the reference in the prompt
    popt.log = o.log;
    dataset::PrepareResult prep = dataset::prepare(ds.dir, synth.model_dir(), popt);

    HeldOutSet h;
    h.split = val_lines ? "val" : "all";
    h.note = val_lines ? fmt::format("{} clips of {} held out (never trained on)", prep.clips.size(),
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
        h.samples.push_back(std::move(s));
    }
    h.clips = prep.clips.size();
    h.skipped = prep.skipped.size();
    h.reference = prep.reference;
    h.reference_source = prep.reference_source;
    h.speaker = prep.speaker_embedding();
    h.ref_codes = prep.load_reference_codes();
    const int64_t hidden = synth.config().talker.hidden_size;
    if (h.speaker.numel() != hidden)
        throw Error(fmt::format("speaker embedding has {} values, the talker is {} wide", h.speaker.numel(), hidden));
    return h;
}

// What every generation is conditioned on and measured against.
struct Conditioning {
    torch::Tensor speaker;          // the reference speaker vector, model device/dtype (the loss prompt)
    std::vector<float> ref_vector;  // same, fp32 CPU, for similarities
    std::string reference;          // reference audio path (the clone reference of every generation)
    double dataset_rate = kNaN;     // chars/s of the dataset's own clips
    std::string ref_text;           // ref_text.txt, trimmed ("" when missing): the ICL prompt's transcript
};

std::string prompt_for(const EvalOptions& o, const std::string& adapter) {
    if (!o.prompt.empty()) return io::ascii_lower(o.prompt);
    return adapter.empty() ? std::string("xvector") : recorded_prompt(adapter);
}

// ref_text.txt against ref.wav (the seed's "ref.wav mismatch" row).
std::optional<RefCheck> reference_check(const dataset::Dataset& ds, double dataset_rate) {
    if (!ds.ref_wav) return std::nullopt;
    try {
        io::Audio ra = io::read_audio_resampled(ds.ref_wav->string());
        return check_reference(ds.ref_text.value_or(""), ds.ref_text.has_value(), io::audio_stats(ra), dataset_rate);
    } catch (const InputError& e) {
        RefCheck r;
        r.mismatch = true;
        r.reason = fmt::format("ref.wav cannot be read: {}", e.what());
        return r;
    }
}

std::string reference_transcript(const dataset::Dataset& ds) {
    if (!ds.ref_text) return "";
    const std::string& t = *ds.ref_text;
    auto b = t.find_first_not_of(" \t\r\n"), e = t.find_last_not_of(" \t\r\n");
    return b == std::string::npos ? "" : t.substr(b, e - b + 1);
}

// An ICL prompt needs the reference's transcript; said before any work.
void check_prompt_modes(const EvalOptions& o, const std::string& ref_text) {
    if (!o.prompt.empty() && io::ascii_lower(o.prompt) != "xvector" && io::ascii_lower(o.prompt) != "icl")
        throw InputError(fmt::format("--prompt: '{}' is not a prompt mode (xvector, icl)", o.prompt));
    if (!ref_text.empty()) return;
    for (const auto& a : o.adapters)
        if (prompt_for(o, a) == "icl")
            throw InputError(fmt::format("{}: {} is evaluated in ICL mode, which needs the exact transcript of the "
                                         "reference in the dataset's ref_text.txt (missing or empty); or pass "
                                         "--prompt xvector",
                                         o.data, a));
}

std::string language_for(const EvalOptions& o, const std::string& adapter) {
    if (!o.language.empty()) return io::ascii_lower(o.language);
    std::string l = adapter.empty() ? "" : recorded_language(adapter);
    return l.empty() ? std::string("english") : l;  // train's default
}

HeldOutLoss loss_with_language(synth::Synthesizer& synth, const HeldOutSet& held, const Conditioning& cond,
                               const std::string& language, const std::string& prompt) {
    const auto& cfg = synth.config();
    train::PromptContext ctx;
    ctx.ids = train::LayoutIds::from_config(cfg);
    ctx.prefix = train::codec_prefix(cfg, language);
    ctx.speaker = cond.speaker;
    if (prompt == "icl") {  // the sequences train --prompt icl trained on
        auto ids = text::encode_reference_text(synth.tokenizer(), cond.ref_text);
        ctx.mode = train::PromptMode::Icl;
        ctx.ref_content.assign(ids.begin(), ids.end());
        ctx.ref_codes = held.ref_codes;
    }
    HeldOutLoss h = held_out_loss(synth.model()->talker, ctx, held.samples);
    h.split = held.split;
    h.note = held.note;
    h.language = language;
    return h;
}

// Who speaks: a label (the WAV folder), the adapter folder ("" = the base model), the prompt language and mode.
struct Voice {
    std::string label, adapter, language, prompt;
};

// The utterance of one prompt and seed.
synth::Utterance utterance_for(const Voice& v, const Prompt& p, uint64_t seed, const Conditioning& cond,
                               const EvalOptions& o) {
    synth::Utterance u;
    u.text = p.text;
    u.language = v.language;
    u.ref_audio = cond.reference;
    if (v.prompt == "icl") u.ref_text = cond.ref_text;  // the reference's codes and transcript in the prompt
    u.adapter = v.adapter.empty() ? "-" : v.adapter;
    u.seed = seed;
    u.max_frames = o.max_frames;
    u.cap_rule.frames_per_token = o.frames_per_token;
    u.cap_rule.min_frames = o.min_frames;
    return u;
}

// One generated output measured, its WAV written to DIR/<prompt>-s<seed>.wav.
OutputCheck check_output(synth::Synthesizer& synth, const Prompt& p, uint64_t seed, synth::BatchLineResult&& line,
                         const Conditioning& cond, const fs::path& dir) {
    OutputCheck c;
    c.prompt_id = p.id;
    c.kind = prompt_kind_name(p.kind);
    c.seed = seed;
    c.characters = spoken_characters(p.text);
    synth::SynthResult& r = line.result;
    c.compute_seconds = r.compute_seconds();
    if (!line.error.empty()) {
        c.failed = true;
        c.error = line.error;
        return c;
    }
    c.frames = r.frames;
    c.frame_cap = r.frame_cap;
    c.hit_cap = r.hit_cap;
    io::Audio a;
    a.samples = std::move(r.audio);
    a.sample_rate = io::kModelSampleRate;
    if (a.samples.empty()) {
        c.silent = true;
        return c;
    }
    measure_audio(c, io::audio_stats(a), cond.dataset_rate);
    c.thirds = thirds_rate(a.samples, a.sample_rate);
    if (!c.silent) {
        try {
            c.similarity = cosine_similarity(
                to_vector(model::speaker_embedding(synth.model()->speaker_encoder, a.samples)), cond.ref_vector);
        } catch (const InputError&) {
            // Too short for the encoder's padding: no similarity for this output.
        }
    }
    const fs::path wav = dir / fmt::format("{}-s{}.wav", p.id, seed);
    io::write_audio(wav.string(), a);
    c.wav = wav.string();
    return c;
}

std::string output_line(const std::string& label, const OutputCheck& c) {
    if (c.failed) return fmt::format("[EVAL] {} {} seed {}: FAILED: {}", label, c.prompt_id, c.seed, c.error);
    return fmt::format("[EVAL] {} {} seed {}: {:.2f} s, {} frames, {}{}{}{}", label, c.prompt_id, c.seed, c.seconds,
                       c.frames, c.hit_cap ? "HIT THE CAP" : "EOS",
                       std::isfinite(c.rate) ? fmt::format(", {:.1f} chars/s", c.rate) : "",
                       std::isfinite(c.thirds.first) && std::isfinite(c.thirds.last)
                           ? fmt::format(", {:.1f} → {:.1f} syllables/s (first → last third)", c.thirds.first,
                                         c.thirds.last)
                           : "",
                       c.similarity ? fmt::format(", similarity {:.3f}", *c.similarity) : "");
}

// Every prompt × seed for one voice (the synthesizer already has its adapter applied), generated o.batch at a
// time: each output keeps its own seed and stop, so it is the output generated alone (Synthesizer::speak_batch).
// Outputs are logged as they finish and kept in prompt × seed order.
std::vector<OutputCheck> generate_all(synth::Synthesizer& synth, const Voice& v, const std::vector<Prompt>& prompts,
                                      const Conditioning& cond, const EvalOptions& o, const fs::path& out) {
    const fs::path dir = out / v.label;
    fs::create_directories(dir);
    std::vector<synth::Utterance> us;
    std::vector<std::pair<const Prompt*, uint64_t>> what;  // prompt and seed of us[i]
    for (const auto& p : prompts)
        for (int k = 0; k < o.seeds; ++k) {
            what.emplace_back(&p, o.first_seed + static_cast<uint64_t>(k));
            us.push_back(utterance_for(v, p, what.back().second, cond, o));
        }
    std::vector<OutputCheck> outs(us.size());
    std::string bad_input;  // the same for every prompt (language, model, adapter): exit 2 once the run is over
    synth.speak_batch(us, o.batch, [&](size_t i, synth::BatchLineResult&& line) {
        if (line.bad_input && bad_input.empty()) bad_input = line.error;
        outs[i] = check_output(synth, *what[i].first, what[i].second, std::move(line), cond, dir);
        if (o.log) o.log(output_line(v.label, outs[i]));
    });
    if (!bad_input.empty()) throw InputError(bad_input);
    return outs;
}

// Everything the run measured besides the adapters themselves (for eval.json).
struct RunFacts {
    const dataset::Dataset& ds;
    const std::vector<Prompt>& prompts;
    const HeldOutSet& held;
    const PooledRate& ds_rate;
    const std::vector<std::string>& rate_skipped;
    const std::optional<RefCheck>& ref_check;
    const synth::Synthesizer& synth;
    torch::Device device;
    torch::Dtype dtype;
};

AdapterEval evaluate_base(synth::Synthesizer& synth, const std::vector<Prompt>& prompts, const HeldOutSet& held,
                          const Conditioning& cond, const EvalOptions& o, const fs::path& out) {
    AdapterEval b;
    b.label = kBaseLabel;
    b.language = language_for(o, o.adapters.front());
    b.prompt = prompt_for(o, o.adapters.front());
    synth.use_adapter("");
    if (o.log) o.log(fmt::format("[EVAL] base model (no adapter), language {}, prompt {}", b.language, b.prompt));
    if (o.loss) b.loss = loss_with_language(synth, held, cond, b.language, b.prompt);
    if (o.generate) b.outputs = generate_all(synth, {b.label, "", b.language, b.prompt}, prompts, cond, o, out);
    b.generation = summarize(b.outputs, cond.dataset_rate);
    return b;
}

AdapterEval evaluate_adapter(synth::Synthesizer& synth, const std::string& label, const std::string& dir,
                             const std::vector<Prompt>& prompts, const HeldOutSet& held, const Conditioning& cond,
                             const std::optional<RefCheck>& ref_check, const std::optional<AdapterEval>& base,
                             const EvalOptions& o, const fs::path& out) {
    AdapterEval a;
    a.label = label;
    a.dir = dir;
    a.language = language_for(o, a.dir);
    a.prompt = prompt_for(o, a.dir);
    a.training = training_summary(a.dir);
    synth.use_adapter(a.dir);
    if (o.log)
        o.log(fmt::format("[EVAL] adapter {} ({}), language {}, prompt {}", a.label, a.dir, a.language, a.prompt));
    if (o.loss) {
        a.loss = loss_with_language(synth, held, cond, a.language, a.prompt);
        if (o.log)
            o.log(fmt::format("[EVAL] {} held-out loss: alexandria {:.4f}, aligned {:.4f} ({} clips, {})", a.label,
                              a.loss->alexandria.total, a.loss->aligned.total, a.loss->samples, held.split));
    }
    if (o.generate) a.outputs = generate_all(synth, {a.label, a.dir, a.language, a.prompt}, prompts, cond, o, out);
    a.generation = summarize(a.outputs, cond.dataset_rate);
    JudgeInput in;
    if (a.loss) in.loss = a.loss->verdict;
    if (o.generate) {
        in.generation = a.generation;
        if (base) in.base = base->generation;
    }
    in.reference = ref_check;
    a.verdict = judge(in);
    return a;
}

void rank(EvalReport& rep) {
    std::vector<RankInput> ranks;
    for (const auto& a : rep.adapters)
        ranks.push_back({a.label, a.verdict.usable, a.generation.runaway_rate, a.generation.similarity_mean,
                         a.generation.rate_ratio, a.loss ? a.loss->alexandria.total : kNaN});
    rep.ranking = rank_adapters(ranks);
    rep.pick = pick_adapter(ranks);
    rep.usable = rep.pick.has_value();
    rep.exit_code = rep.usable ? kExitUsable : kExitNotUsable;
}

// ---- eval.json ---------------------------------------------------------------------------------------------------

json data_json(const RunFacts& f) {
    return json{{"dir", f.ds.dir.string()},
                {"held_out",
                 {{"split", f.held.split}, {"clips", f.held.clips}, {"skipped", f.held.skipped}, {"note", f.held.note}}},
                {"speaking_rate", to_json(f.ds_rate)},
                {"speaking_rate_skipped", f.rate_skipped},
                {"reference", f.held.reference.string()},
                {"reference_source", f.held.reference_source},
                {"reference_check", f.ref_check ? to_json(*f.ref_check) : json(nullptr)}};
}

json settings_json(const RunFacts& f, const EvalOptions& o) {
    json prompts = json::array();
    for (const auto& p : f.prompts)
        prompts.push_back({{"id", p.id}, {"text", p.text}, {"kind", prompt_kind_name(p.kind)},
                           {"characters", spoken_characters(p.text)}});
    json seeds = json::array();
    for (int k = 0; k < o.seeds; ++k) seeds.push_back(o.first_seed + static_cast<uint64_t>(k));
    const auto& gen = f.synth.generation();
    return json{
        {"prompts", prompts},
        {"prompts_file", o.prompts_file},
        {"seeds", seeds},
        {"max_frames", o.max_frames > 0 ? o.max_frames : gen.max_new_tokens},
        {"frames_per_token", o.frames_per_token},
        {"min_frames", o.min_frames},
        {"language", o.language.empty() ? json("per adapter (training_meta.json), else english") : json(io::ascii_lower(o.language))},
        {"sampling", "generation_config.json (seeded)"},
        {"voice", "clone of the dataset's reference, with and without the adapter: x-vector, or ICL (the reference's "
                  "codes and ref_text.txt in the prompt) for adapters trained with --prompt icl"},
        {"prompt", o.prompt.empty() ? json("per adapter (training_meta.json), else xvector") : json(io::ascii_lower(o.prompt))},
        {"compare_base", o.compare_base},
        {"loss", o.loss},
        {"generate", o.generate}};
}

json thresholds_json() {
    return json{{"max_runaway_rate", kMaxRunawayRate},
                {"speaking_rate_ratio", {kRateRatioLow, kRateRatioHigh}},
                {"duration_ratio", {kDurationRatioLow, kDurationRatioHigh}},
                {"duration_slack_seconds", kDurationSlackSeconds},
                {"max_clipped_fraction", kMaxClippedFraction},
                {"max_silent_rate", kMaxSilentRate},
                {"max_outlier_rate", kMaxOutlierRate},
                {"reference_rate_ratio", {kRefRateRatioLow, kRefRateRatioHigh}}};
}

json seed_tables_json() {
    json table = json::array();
    for (const auto& r : troubleshooting_table())
        table.push_back({{"key", r.key}, {"problem", r.problem}, {"cause", r.cause}, {"fix", r.fix}});
    json bands = json::array();
    for (const auto& r : plan::loss_table())
        bands.push_back({{"loss", r.loss_label}, {"verdict", r.verdict}, {"band", plan::loss_band_name(r.band)}});
    return json{{"loss_bands", bands},
                {"troubleshooting", table},
                {"loss_bands_note", "the seed measured its bands on Alexandria's training loss; a held-out loss on "
                                    "unseen clips usually reads somewhat higher"}};
}

json comparison_json(const EvalReport& rep) {
    json ranking = json::array();
    for (size_t r = 0; r < rep.ranking.size(); ++r) {
        const auto& a = rep.adapters[rep.ranking[r]];
        ranking.push_back({{"rank", r + 1}, {"label", a.label}, {"dir", a.dir}, {"usable", a.verdict.usable}});
    }
    return json{{"ranking", ranking},
                {"order", "usable first; fewer runaways; higher speaker similarity; speaking-rate ratio closer to 1; "
                          "held-out loss closer to 4.15"},
                {"pick", rep.pick ? json(rep.adapters[*rep.pick].label) : json(nullptr)},
                {"pick_dir", rep.pick ? json(rep.adapters[*rep.pick].dir) : json(nullptr)}};
}

std::string dtype_name(torch::Dtype d) {
    return d == torch::kFloat32 ? "f32" : d == torch::kBFloat16 ? "bf16" : "f16";
}

json eval_document(const EvalReport& rep, const RunFacts& f, const EvalOptions& o) {
    json adapters = json::array();
    for (const auto& a : rep.adapters) adapters.push_back(to_json(a, true));
    const auto& cfg = f.synth.config();
    return json{
        {"schema", kEvalSchema},
        {"versions", {{"alexandria", kVersion}, {"tool", o.tool_version},
                      {"libtorch", fmt::format("{}.{}.{}", TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH)}}},
        {"model", {{"name", o.model}, {"dir", f.synth.model_dir()}, {"type", cfg.tts_model_type},
                   {"size", cfg.tts_model_size}, {"device", f.device.str()}, {"dtype", dtype_name(f.dtype)}}},
        {"data", data_json(f)},
        {"settings", settings_json(f, o)},
        {"thresholds", thresholds_json()},
        {"seed_tables", seed_tables_json()},
        {"not_measured", {"the seed's \"Initial audio glitch\" row", "garbling itself (no speech recogniser): listen to the WAVs"}},
        {"base", rep.base ? to_json(*rep.base, false) : json(nullptr)},
        {"adapters", adapters},
        {"comparison", comparison_json(rep)},
        {"report", o.html_report ? json(kReportFile) : json(nullptr)},
        {"usable", rep.usable},
        {"exit_code", rep.exit_code},
        {"seconds", rep.seconds},
    };
}

}  // namespace

EvalReport evaluate(const EvalOptions& o) {
    const auto t_start = clock_type::now();
    check_options(o);
    const Inputs in = read_inputs(o);
    check_prompt_modes(o, reference_transcript(in.ds));
    const io::DeviceChoice dev = io::resolve_device(o.device);
    const torch::Device device = dev.device;
    const torch::Dtype dtype = io::resolve_dtype(o.dtype, dev);
    synth::Synthesizer synth = load_base_model(o, device, dtype);
    const fs::path out = open_out_folder(o.out);

    // The dataset's own speaking rate (every usable clip, not only the held-out ones).
    std::vector<std::string> rate_skipped;
    const PooledRate ds_rate = dataset_speaking_rate(in.ds, &rate_skipped);
    const HeldOutSet held = prepare_held_out(in.ds, in.val_lines, synth, o, device);
    const Conditioning cond{held.speaker.to(device, dtype), to_vector(held.speaker), held.reference.string(),
                            ds_rate.chars_per_second, reference_transcript(in.ds)};
    const std::optional<RefCheck> ref_check = reference_check(in.ds, cond.dataset_rate);

    EvalReport rep;
    if (o.compare_base) rep.base = evaluate_base(synth, in.prompts, held, cond, o, out);
    for (size_t i = 0; i < o.adapters.size(); ++i)
        rep.adapters.push_back(evaluate_adapter(synth, in.labels[i], o.adapters[i], in.prompts, held, cond, ref_check,
                                                rep.base, o, out));
    rank(rep);
    rep.seconds = since(t_start);

    const RunFacts facts{in.ds, in.prompts, held, ds_rate, rate_skipped, ref_check, synth, device, dtype};
    rep.json = eval_document(rep, facts, o);
    rep.json_path = out / kEvalFile;
    if (o.html_report) rep.report_path = write_report(rep, out, cond.reference);
    io::write_file_atomic(rep.json_path, rep.json.dump(2) + "\n");
    return rep;
}

}  // namespace alexandria::eval
