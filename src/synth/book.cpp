#include "alexandria/synth/book.h"

#include <chrono>
#include <filesystem>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace alexandria::synth {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::string extension_of(io::AudioFormat f) { return f == io::AudioFormat::Flac ? "flac" : "wav"; }

std::string preview(const std::string& text) {
    // Cut at a code-point boundary.
    size_t n = 0, i = 0;
    for (; i < text.size(); ++i) {
        if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && n++ == 60) break;
    }
    return i < text.size() ? text.substr(0, i) + "..." : text;
}

// A script line waiting for the batched pass: its report row, utterance, output file and length.
struct DeferredLine {
    size_t report = 0;
    Utterance u;
    fs::path out;
    size_t chars = 0;
};

// Chunks of a line joined without gaps, as speak_long() joins them.
SynthResult join_chunks(std::vector<SynthResult>& parts) {
    SynthResult total;
    for (size_t i = 0; i < parts.size(); ++i) {
        auto& r = parts[i];
        if (i == 0) {
            total.mode = r.mode;
            total.language = r.language;
            total.layout = r.layout;
        }
        total.audio.insert(total.audio.end(), r.audio.begin(), r.audio.end());
        total.frames += r.frames;
        total.frame_cap += r.frame_cap;
        total.text_tokens += r.text_tokens;
        total.generate_seconds += r.generate_seconds;
        total.decode_seconds += r.decode_seconds;
        total.hit_cap = total.hit_cap || r.hit_cap;
    }
    return total;
}

// Renders the deferred lines `opts.batch` chunks at a time; each line is written (and reported) when its last
// chunk is done.
void render_deferred(Synthesizer& synth, const ScriptOptions& opts, std::vector<DeferredLine>& lines,
                     ScriptReport& rep, const std::function<void(size_t)>& account, size_t& chars_total,
                     size_t& chars_done) {
    struct Pending {
        std::vector<SynthResult> parts;
        size_t left = 0, count = 0;
        std::string error;
    };
    std::vector<Pending> pend(lines.size());
    std::vector<Utterance> chunks;
    std::vector<std::pair<size_t, size_t>> owner;  // chunk → (line, part)
    auto fail = [&](size_t d, const std::string& why) {
        auto& lr = rep.lines[lines[d].report];
        lr.status = LineReport::Status::Failed;
        lr.error = fmt::format("{}:{}: {}", opts.script, lr.line, why);
        chars_total -= std::min(chars_total, lines[d].chars);
        account(lines[d].report);
    };
    for (size_t d = 0; d < lines.size(); ++d) {
        auto parts = split_text(lines[d].u.text, opts.max_chars);
        if (parts.empty()) {
            fail(d, "the text is empty");
            continue;
        }
        pend[d].parts.resize(parts.size());
        pend[d].left = pend[d].count = parts.size();
        for (size_t k = 0; k < parts.size(); ++k) {
            Utterance c = lines[d].u;
            c.text = parts[k];
            chunks.push_back(std::move(c));
            owner.emplace_back(d, k);
        }
    }
    synth.speak_batch(chunks, opts.batch, [&](size_t ci, BatchLineResult&& r) {
        auto [d, k] = owner[ci];
        auto& p = pend[d];
        if (!r.error.empty() && p.error.empty()) p.error = r.error;
        p.parts[k] = std::move(r.result);
        if (--p.left > 0) return;
        if (!p.error.empty()) return fail(d, p.error);
        auto& lr = rep.lines[lines[d].report];
        try {
            auto total = join_chunks(p.parts);
            p.parts.clear();
            fs::create_directories(lines[d].out.parent_path());
            io::Audio a;
            a.samples = std::move(total.audio);
            a.sample_rate = codec::kSampleRate;
            io::write_audio(lines[d].out.string(), a, opts.format);
            lr.chunks = static_cast<int>(p.count);
            lr.frames = total.frames;
            lr.hit_cap = total.hit_cap;
            lr.audio_seconds = a.seconds();
            lr.compute_seconds = total.compute_seconds();
            lr.status = LineReport::Status::Rendered;
        } catch (const std::exception& ex) {
            return fail(d, ex.what());
        }
        chars_done += lines[d].chars;
        account(lines[d].report);
    });
}

}  // namespace

std::pair<std::string, std::string> resolve_voice(const std::string& voice,
                                                  const std::map<std::string, std::string>& voices,
                                                  const std::string& script_dir) {
    fs::path p;
    if (auto it = voices.find(voice); it != voices.end()) {
        p = it->second;
    } else {
        p = fs::path(voice);
        if (p.is_relative()) p = fs::path(script_dir) / p;
    }
    if (fs::is_directory(p)) return {p.string(), ""};
    if (fs::is_regular_file(p)) return {"", p.string()};
    throw InputError(fmt::format("voice '{}': not a --voice name and no adapter folder or audio file at {}", voice,
                                 p.string()));
}

SynthResult speak_long(Synthesizer& synth, const Utterance& u, int max_chars, int* chunks, bool* any_capped,
                       const std::function<void(int)>& on_chunk_start, const FrameCallback& on_frame) {
    auto parts = split_text(u.text, max_chars);
    if (parts.empty()) throw InputError("the text is empty");
    std::vector<SynthResult> done;
    for (size_t i = 0; i < parts.size(); ++i) {
        Utterance c = u;
        c.text = parts[i];
        if (on_chunk_start) on_chunk_start(static_cast<int>(i));
        done.push_back(synth.speak(c, on_frame));
    }
    SynthResult total = join_chunks(done);
    if (chunks) *chunks = static_cast<int>(parts.size());
    if (any_capped) *any_capped = total.hit_cap;
    return total;
}

bool script_switches_adapters(const Script& script, const ScriptOptions& opts, const std::string& default_adapter) {
    auto dir = fs::path(script.path).parent_path().string();
    for (const auto& l : script.lines) {
        std::string v = !l.voice.empty() ? l.voice : (opts.voices.count(l.speaker) ? l.speaker : "");
        if (v.empty()) continue;
        try {
            auto [adapter, wav] = resolve_voice(v, opts.voices, dir);
            if (!wav.empty() && !default_adapter.empty()) return true;  // a clip voice runs without the adapter
            if (!adapter.empty() &&
                (default_adapter.empty() || fs::weakly_canonical(adapter) != fs::weakly_canonical(default_adapter)))
                return true;
        } catch (const InputError&) {
            // reported when the line renders
        }
    }
    return false;
}

// render_script, step by step: script_entries → output_paths → (per line) utterance_for → render_line or
// deferred to render_deferred → merge_book. ScriptTally counts every finished line and reports progress.
namespace {

// A script entry in script order: a good line or a bad one.
struct Entry {
    const ScriptLine* line = nullptr;
    const ScriptError* error = nullptr;
    int index() const { return line ? line->index : error->index; }
    int lineno() const { return line ? line->line : error->line; }
};

std::vector<Entry> script_entries(const Script& script) {
    std::vector<Entry> entries;
    for (const auto& l : script.lines) entries.push_back({&l, nullptr});
    for (const auto& e : script.errors) entries.push_back({nullptr, &e});
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.index() < b.index(); });
    return entries;
}

// Script line number → output path (every good line, every shard), or why it has none (an `out` that leaves the
// output folder).
struct Outputs {
    std::map<int, fs::path> paths;
    std::map<int, std::string> errors;
};

Outputs output_paths(const std::vector<Entry>& entries, const fs::path& out_dir, const std::string& ext,
                     const std::string& script_path) {
    Outputs o;
    for (const auto& e : entries) {
        if (!e.line) continue;
        try {
            o.paths[e.line->line] = io::resolve_inside(out_dir, line_output_name(*e.line, ext),
                                                       fmt::format("{}:{}: field 'out'", script_path, e.line->line));
        } catch (const InputError& ex) {
            o.errors[e.line->line] = ex.what();
        }
    }
    return o;
}

// Counts finished lines (rendered, skipped or failed) into the report and reports each with the progress so far.
struct ScriptTally {
    ScriptReport& rep;
    ScriptProgress prog;
    const LineCallback& on_line;
    bool batched = false;
    Clock::time_point start = Clock::now();
    double compute_for_done = 0;
    size_t chars_total = 0, chars_done = 0;

    void account(size_t idx) {
        const LineReport& lr = rep.lines[idx];
        switch (lr.status) {
            case LineReport::Status::Rendered:
                ++rep.rendered;
                compute_for_done += lr.compute_seconds;
                break;
            case LineReport::Status::Skipped: ++rep.skipped; break;
            case LineReport::Status::Failed: ++rep.failed; break;
        }
        rep.capped += lr.hit_cap;
        ++prog.done;
        prog.elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        if (chars_done > 0) {
            // Batched lines overlap, so their own times do not add up: estimate from the elapsed time instead.
            const double spent = batched ? prog.elapsed : compute_for_done;
            double per_char = spent / static_cast<double>(chars_done);
            prog.eta = per_char * static_cast<double>(chars_total > chars_done ? chars_total - chars_done : 0);
        }
        if (on_line) on_line(lr, prog);
    }
    // A line that will not be rendered no longer counts towards the work left.
    void drop(const std::string& text) { chars_total -= std::min(chars_total, count_code_points(text)); }
};

// The run's defaults with the line's own fields; a voice resolves to an adapter or a reference clip.
Utterance utterance_for(const ScriptLine& l, const ScriptOptions& opts, bool custom_voice,
                        const std::string& script_dir) {
    Utterance u = opts.defaults;
    u.text = l.text;
    if (!l.language.empty()) u.language = l.language;
    if (!l.instruct.empty()) u.instruct = l.instruct;
    if (l.seed) u.seed = *l.seed;
    std::string voice = l.voice;
    if (custom_voice) {
        if (!l.speaker.empty()) u.speaker = l.speaker;
    } else if (voice.empty() && !l.speaker.empty() && opts.voices.count(l.speaker)) {
        voice = l.speaker;  // speakers name voices on clone models
    }
    if (!voice.empty()) {
        auto [adapter, wav] = resolve_voice(voice, opts.voices, script_dir);
        u.ref_text.clear();
        if (!adapter.empty()) {
            u.adapter = adapter;
            u.ref_audio.clear();
        } else {
            u.adapter = "-";  // a clip voice is a plain clone, without the run's adapter
            u.ref_audio = wav;
        }
    }
    return u;
}

// One line alone (its chunks one after the other), written to `out`.
void render_line(Synthesizer& synth, const ScriptOptions& opts, const Utterance& u, const fs::path& out,
                 LineReport& lr) {
    bool capped = false;
    auto r = speak_long(synth, u, opts.max_chars, &lr.chunks, &capped);
    fs::create_directories(out.parent_path());
    io::Audio a;
    a.samples = std::move(r.audio);
    a.sample_rate = codec::kSampleRate;
    io::write_audio(out.string(), a, opts.format);
    lr.frames = r.frames;
    lr.hit_cap = capped;
    lr.audio_seconds = a.seconds();
    lr.compute_seconds = r.compute_seconds();
    lr.status = LineReport::Status::Rendered;
}

// The book: every line's audio (all shards') joined with the script's pauses; a note instead when lines are missing.
void merge_book(const std::vector<Entry>& entries, const Outputs& outputs, const ScriptOptions& opts,
                ScriptReport& rep) {
    std::vector<int> missing;
    for (const auto& e : entries) {
        if (e.error) missing.push_back(e.error->line);
        else if (!outputs.paths.count(e.line->line) || !fs::exists(outputs.paths.at(e.line->line)))
            missing.push_back(e.line->line);
    }
    if (!missing.empty()) {
        std::string list;
        for (size_t i = 0; i < missing.size() && i < 20; ++i) list += (i ? ", " : "") + std::to_string(missing[i]);
        if (missing.size() > 20) list += ", ...";
        rep.merge_note = fmt::format("book not written: {} line(s) have no audio yet (lines {}){}", missing.size(),
                                     list, rep.other_shards ? "; merge again once every shard has finished" : "");
        return;
    }
    std::vector<std::vector<float>> parts;
    std::vector<int64_t> gaps;
    const ScriptLine* prev = nullptr;
    for (const auto& e : entries) {
        auto a = io::read_audio_resampled(outputs.paths.at(e.line->line).string(), codec::kSampleRate);
        if (prev) gaps.push_back(pause_samples(pause_between(*prev, *e.line, opts.pauses), codec::kSampleRate));
        parts.push_back(std::move(a.samples));
        prev = e.line;
    }
    io::Audio book;
    book.samples = join_audio(parts, gaps);
    book.sample_rate = codec::kSampleRate;
    auto mp = fs::path(opts.merge_path);
    if (mp.has_parent_path()) fs::create_directories(mp.parent_path());
    io::write_audio(opts.merge_path, book, opts.format);
    rep.merged = true;
    rep.book_seconds = book.seconds();
}

}  // namespace

ScriptReport render_script(Synthesizer& synth, const ScriptOptions& opts, const LineCallback& on_line) {
    const Script script = read_script(opts.script);
    const std::string script_dir = fs::path(opts.script).parent_path().string();
    const fs::path out_dir(opts.out_dir.empty() ? std::string(".") : opts.out_dir);
    fs::create_directories(out_dir);
    const bool custom_voice = synth.config().tts_model_type == "custom_voice";
    const Shard shard = opts.shard.value_or(Shard{});
    const bool batched = synth.batch_size(opts.batch) > 1;

    const std::vector<Entry> entries = script_entries(script);
    const Outputs outputs = output_paths(entries, out_dir, extension_of(opts.format), opts.script);
    ScriptReport rep;
    ScriptTally tally{rep, {}, on_line, batched};
    for (const auto& e : entries)
        if (shard.contains(e.index())) {
            ++tally.prog.total;
            if (e.line) tally.chars_total += count_code_points(e.line->text);
        } else {
            ++rep.other_shards;
        }

    std::vector<DeferredLine> deferred;  // batched: rendered after this loop, several lines at once
    for (const auto& e : entries) {
        if (!shard.contains(e.index())) continue;
        LineReport lr;
        lr.line = e.lineno();
        if (e.error) {
            lr.status = LineReport::Status::Failed;
            lr.error = e.error->message;
        } else {
            const auto& l = *e.line;
            lr.text_preview = preview(l.text);
            const fs::path out = outputs.paths.count(l.line) ? outputs.paths.at(l.line) : fs::path();
            lr.out = out.string();
            if (out.empty()) {
                lr.status = LineReport::Status::Failed;
                lr.error = outputs.errors.at(l.line);
                tally.drop(l.text);
            } else if (!opts.force && fs::exists(out)) {
                lr.status = LineReport::Status::Skipped;
                tally.drop(l.text);
            } else {
                try {
                    Utterance u = utterance_for(l, opts, custom_voice, script_dir);
                    if (batched) {
                        deferred.push_back({rep.lines.size(), std::move(u), out, count_code_points(l.text)});
                        rep.lines.push_back(lr);
                        continue;
                    }
                    render_line(synth, opts, u, out, lr);
                    tally.chars_done += count_code_points(l.text);
                } catch (const std::exception& ex) {
                    lr.status = LineReport::Status::Failed;
                    lr.error = fmt::format("{}:{}: {}", opts.script, l.line, ex.what());
                    tally.drop(l.text);
                }
            }
        }
        rep.lines.push_back(lr);
        tally.account(rep.lines.size() - 1);
    }
    if (!deferred.empty())
        render_deferred(synth, opts, deferred, rep, [&](size_t i) { tally.account(i); }, tally.chars_total,
                        tally.chars_done);
    if (!opts.merge_path.empty()) merge_book(entries, outputs, opts, rep);
    return rep;
}

}  // namespace alexandria::synth
