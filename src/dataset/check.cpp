#include "alexandria/dataset/check.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"

namespace alexandria::dataset {

bool CheckReport::trainable() const { return count(Severity::Error) == 0; }

int CheckReport::count(Severity s) const {
    int n = 0;
    for (auto& p : problems) n += p.severity == s;
    return n;
}

std::vector<const Clip*> CheckReport::usable_clips() const {
    std::vector<const Clip*> out;
    for (auto& c : clips)
        if (c.usable) out.push_back(&c);
    return out;
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
const double kBinEdges[] = {0, 1, 2, 5, 10, 20, 30, 60, kInf};

// io messages begin with the path they were given; we name files relative to the folder instead.
std::string strip_path_prefix(const std::string& message, const std::string& path) {
    if (message.rfind(path + ": ", 0) == 0) return message.substr(path.size() + 2);
    return message;
}

int word_count(const std::string& text) {
    int n = 0;
    bool in_word = false;
    for (unsigned char c : text) {
        bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (!space && !in_word) ++n;
        in_word = !space;
    }
    return n;
}

std::string fmt_seconds(double s) {
    if (s < 60) return fmt::format("{:.1f} s", s);
    return fmt::format("{:.1f} min", s / 60);
}

std::string bin_label(const HistogramBin& b) {
    if (std::isinf(b.high)) return fmt::format("{:g}s+", b.low);
    return fmt::format("{:g}-{:g}s", b.low, b.high);
}

constexpr const char* kAudioField = "audio_filepath";

struct Checker {
    const Dataset& ds;
    const CheckOptions& opt;
    CheckReport& r;
    std::string meta;  // metadata.jsonl as named in messages

    void add(Severity s, std::string code, std::string file, int line, std::string field, std::string msg) {
        r.problems.push_back(Problem{s, std::move(code), std::move(file), line, std::move(field), std::move(msg)});
    }

    void tally(const Clip& c) {
        ++r.sample_rates[c.sample_rate];
        ++r.channel_counts[c.channels];
        for (auto& b : r.histogram)
            if (c.stats.seconds >= b.low && c.stats.seconds < b.high) ++b.count;
    }

    void skip(Clip& c, Severity s, const std::string& code, const std::string& reason, const char* field) {
        std::string msg = fmt::format("{}:{}: field '{}': {}: {} (training skips this line)", meta, c.line, field,
                                      c.audio, reason);
        add(s, code, ds.display(c.path.empty() ? fs::path(c.audio) : c.path), c.line, field, msg);
        if (c.skip_code.empty()) {
            c.skip_code = code;
            c.skip_reason = reason;
        }
        c.usable = false;
    }

    // Step 1: the entry's own problems and the file's presence. False when the clip is already skipped.
    bool locate(const Entry& e, Clip& c) {
        c.line = e.line;
        c.audio = e.audio;
        c.path = e.audio_path;
        c.text = e.text;
        c.short_utterance = !blank(e.text) && word_count(e.text) <= kShortUtteranceWords;
        for (auto& p : e.problems) r.problems.push_back(p);
        if (e.has_errors()) {
            for (auto& p : e.problems)
                if (p.severity == Severity::Error) {
                    c.skip_code = p.code;
                    c.skip_reason = p.message;
                    break;
                }
            return false;
        }
        std::error_code ec;
        auto st = fs::status(c.path, ec);
        if (!fs::exists(st)) {
            skip(c, Severity::Warning, "missing-audio", "file not found", kAudioField);
            return false;
        }
        if (fs::is_directory(st)) {
            skip(c, Severity::Warning, "undecodable", "is a folder, not an audio file", kAudioField);
            ++r.undecodable;
            return false;
        }
        if (!fs::is_regular_file(st)) {  // a pipe would block the decoder forever
            skip(c, Severity::Warning, "undecodable", "not a regular file (a pipe, socket or device)", kAudioField);
            ++r.undecodable;
            return false;
        }
        c.found = true;
        return true;
    }

    // Step 2: header and samples. False when the clip is skipped (undecodable, truncated, over-long, ...).
    bool decode(Clip& c, io::Audio& audio) {
        const char* field = kAudioField;
        try {
            auto info = io::probe_audio(c.path.string());
            c.sample_rate = info.sample_rate;
            c.channels = info.channels;
            c.format = info.format;
            if (!info.truncated.empty()) {  // every reader refuses it; the rate and channel tallies still see it
                ++r.sample_rates[c.sample_rate];
                ++r.channel_counts[c.channels];
                ++r.undecodable;
                skip(c, Severity::Warning, "truncated", info.truncated + "; the audio no longer matches its text", field);
                return false;
            }
            // Over-long clips are skipped on the header alone: no need to decode an hour of audio to say so.
            double probed = info.sample_rate > 0 ? double(info.frames) / info.sample_rate : 0;
            if (probed > opt.max_seconds && c.skip_code.empty()) {
                c.stats.seconds = probed;
                tally(c);
                ++r.over_max;
                skip(c, Severity::Warning, "too-long",
                     fmt::format("{} long, over the {:g} s limit (--max-seconds)", fmt_seconds(probed),
                                 opt.max_seconds),
                     field);
                return false;
            }
            audio = io::read_audio(c.path.string());
        } catch (const InputError& err) {
            std::string msg = strip_path_prefix(err.what(), c.path.string());
            std::string code = msg.find("no audio") != std::string::npos            ? "empty-audio"
                               : msg.find("not a finite number") != std::string::npos ? "non-finite"
                               : msg.find("truncated") != std::string::npos           ? "truncated"
                                                                                      : "undecodable";
            if (code == "undecodable" && msg.find("cannot decode audio") != std::string::npos)
                msg = "not a readable audio file (" + msg + ")";
            if (c.skip_code.empty()) skip(c, Severity::Warning, code, msg, field);
            ++r.undecodable;
            return false;
        }
        c.decoded = true;
        c.stats = io::audio_stats(audio);
        tally(c);
        return true;
    }

    // Step 3: what training would make of the decoded clip.
    void judge(Clip& c, std::map<std::pair<std::string, std::string>, int>& seen,
               std::map<std::string, std::pair<int, std::string>>& by_audio) {
        const char* field = kAudioField;
        if (blank(c.text)) {
            ++r.empty_text;
            std::string msg = fmt::format("{}:{}: field 'text': {} (training skips this line)", meta, c.line,
                                          c.text.empty() ? "empty" : "only whitespace");
            add(Severity::Warning, "empty-text", meta, c.line, "text", msg);
            c.skip_code = "empty-text";
            c.skip_reason = c.text.empty() ? "empty text" : "text is only whitespace";
            return;
        }
        if (c.stats.seconds > opt.max_seconds) {
            ++r.over_max;
            skip(c, Severity::Warning, "too-long",
                 fmt::format("{} long, over the {:g} s limit (--max-seconds)", fmt_seconds(c.stats.seconds),
                             opt.max_seconds),
                 field);
            return;
        }
        if (c.stats.seconds < kMinClipSeconds) {
            ++r.too_short;
            skip(c, Severity::Warning, "too-short",
                 fmt::format("{:.3f} s, shorter than two codec frames ({:g} s)", c.stats.seconds, kMinClipSeconds),
                 field);
            return;
        }
        if (c.stats.silent()) {
            ++r.silent;
            skip(c, Severity::Warning, "silent",
                 fmt::format("silent (peak {:.1f} dBFS, below -50 dBFS)", 20 * std::log10(std::max(c.stats.peak, 1e-9))),
                 field);
            return;
        }
        auto key = std::make_pair(c.path.string(), c.text);
        auto [it, fresh] = seen.emplace(key, c.line);
        if (!fresh) {
            ++r.duplicates;
            skip(c, Severity::Warning, "duplicate",
                 fmt::format("duplicate of line {} (same file, same text)", it->second), field);
            return;
        }
        auto [at, first_use] = by_audio.emplace(c.path.string(), std::make_pair(c.line, c.text));
        if (!first_use)
            add(Severity::Warning, "same-audio-different-text", ds.display(c.path), c.line, "text",
                fmt::format("{}:{}: field 'text': {} is also line {} with a different text; one of them does not "
                            "match the audio", meta, c.line, c.audio, at->second.first));
        if (c.stats.clipped_fraction > kClippingWarnFraction) {
            ++r.clipped;
            add(Severity::Warning, "clipping", ds.display(c.path), c.line, field,
                fmt::format("{}:{}: field '{}': {}: {:.2f}% of samples at full scale (clipped); the voice learns the "
                            "distortion", meta, c.line, field, c.audio, 100 * c.stats.clipped_fraction));
        }
        c.usable = true;
        ++r.usable;
        r.usable_seconds += c.stats.seconds;
        if (c.short_utterance) ++r.short_utterances;
    }

    void clip(const Entry& e, Clip& c, std::map<std::pair<std::string, std::string>, int>& seen,
              std::map<std::string, std::pair<int, std::string>>& by_audio) {
        io::Audio audio;
        if (locate(e, c) && decode(c, audio)) judge(c, seen, by_audio);
    }

    void reference() {
        std::string source;
        auto path = ds.reference_audio(&source);
        r.ref.source = source;
        if (source.empty()) {
            add(Severity::Warning, "no-ref", "ref.wav", 0, "",
                "no ref.wav and no ref_audio in metadata.jsonl: training uses the first usable clip as the reference "
                "for the speaker embedding (add ref.wav: a long, calm, neutral passage)");
        } else if (path) {
            r.ref.path = ds.display(*path);
            std::error_code ec;
            const bool from_meta = source != kRefAudioFile;
            const std::string file = from_meta ? meta : (fs::path(meta).parent_path() / kRefAudioFile).string();
            const int line = from_meta && !ds.entries.empty() ? ds.entries.front().line : 0;
            const std::string where =
                from_meta ? fmt::format("{}:{}: field 'ref_audio': {}", meta, line, r.ref.path)
                          : (fs::path(meta).parent_path() / r.ref.path).string();
            auto st = fs::status(*path, ec);
            if (!fs::exists(st)) {
                add(Severity::Error, "missing-ref", file, line, from_meta ? "ref_audio" : "",
                    fmt::format("{}: reference audio not found", where));
            } else if (!fs::is_regular_file(st)) {
                add(Severity::Error, "undecodable-ref", file, line, from_meta ? "ref_audio" : "",
                    fmt::format("{}: cannot use the reference audio: not a regular file", where));
            } else {
                r.ref.present = true;
                try {
                    auto info = io::probe_audio(path->string());
                    r.ref.sample_rate = info.sample_rate;
                    r.ref.channels = info.channels;
                    // Training and synthesis refuse a truncated reference, so it stops training here too.
                    if (!info.truncated.empty())
                        throw InputError(fmt::format("{}; ref_text.txt may no longer match it", info.truncated));
                    auto audio = io::read_audio(path->string());
                    auto st = io::audio_stats(audio);
                    r.ref.decoded = true;
                    r.ref.seconds = st.seconds;
                    if (st.silent())
                        add(Severity::Warning, "silent-ref", r.ref.path, line, "",
                            fmt::format("{}: the reference audio is silent; the speaker embedding will be meaningless",
                                        where));
                } catch (const InputError& err) {
                    const bool cut = std::string(err.what()).find("truncated") != std::string::npos;
                    add(Severity::Error, cut ? "truncated-ref" : "undecodable-ref", file, line,
                        from_meta ? "ref_audio" : "",
                        fmt::format("{}: cannot use the reference audio: {}", where,
                                    strip_path_prefix(err.what(), path->string())));
                }
            }
        }
        // ref_text.txt: Alexandria records it as the adapter's ref_sample_text, and synthesis uses it with
        // ref_sample.wav as the voice-clone prompt, so it must be the exact transcript.
        const std::string ref_text_file = (fs::path(meta).parent_path() / kRefTextFile).string();
        if (!ds.ref_text) {
            add(Severity::Warning, "missing-ref-text", kRefTextFile, 0, "",
                "ref_text.txt missing: the first clip's text is recorded as the reference transcript (Alexandria's "
                "fallback), which may not match the reference audio");
        } else {
            r.ref.text_present = true;
            if (!ds.ref_text_utf8) {
                add(Severity::Error, "ref-text-not-utf8", ref_text_file, 0, "",
                    fmt::format("{}: not valid UTF-8", ref_text_file));
            } else if (blank(*ds.ref_text)) {
                add(Severity::Warning, "empty-ref-text", ref_text_file, 0, "",
                    fmt::format("{}: empty; it must hold the exact transcript of the reference audio",
                                ref_text_file));
            } else {
                r.ref.text_nonempty = true;
                r.ref.text = *ds.ref_text;
            }
        }
    }

    void summary() {
        if (r.entries > 0 && r.usable == 0)
            add(Severity::Error, "no-usable-clips", meta, 0, "",
                fmt::format("{}: none of the {} entries is usable for training (see the warnings above)", meta,
                            r.entries));
        if (r.usable > 0) {
            double minutes = r.usable_seconds / 60;
            if (minutes < kTargetMinutesLow)
                add(Severity::Warning, "few-minutes", meta, 0, "",
                    fmt::format("{} of usable audio: below the seed's 15-30 minute target for a premium voice",
                                fmt_seconds(r.usable_seconds)));
            else if (minutes > kTargetMinutesHigh)
                add(Severity::Note, "many-minutes", meta, 0, "",
                    fmt::format("{:.1f} minutes of usable audio: above the seed's 15-30 minute target (fine; the "
                                "recommendation uses fewer epochs)", minutes));
            if (r.short_utterances == 0)
                add(Severity::Warning, "no-short-utterances", meta, 0, "text",
                    "no short utterances (\"Oh!\", \"Hmm.\", \"Right.\"): the model may never learn to stop on short "
                    "texts (they hang at max_new_tokens); add a few");
        }
        std::vector<std::string> rates;
        for (auto& [rate, n] : r.sample_rates)
            if (rate != io::kModelSampleRate) rates.push_back(fmt::format("{} Hz ({} clip{})", rate, n, n == 1 ? "" : "s"));
        if (!rates.empty())
            add(Severity::Note, "resampled", meta, 0, "",
                fmt::format("sample rates {}: resampled to 24 kHz (soxr, high quality) when prepared; fine",
                            fmt::join(rates, ", ")));
        int multi = 0;
        for (auto& [ch, n] : r.channel_counts)
            if (ch != 1) multi += n;
        if (multi > 0)
            add(Severity::Note, "downmixed", meta, 0, "",
                fmt::format("{} clip{} with more than one channel: mixed down to mono by averaging; fine", multi,
                            multi == 1 ? "" : "s"));
    }
};

}  // namespace

CheckReport check(const Dataset& ds, const CheckOptions& opt) {
    if (!(opt.max_seconds > 0) || !std::isfinite(opt.max_seconds))
        throw InputError(fmt::format("--max-seconds: must be a positive number, got {}", opt.max_seconds));
    CheckReport r;
    r.dir = ds.dir.string();
    r.max_seconds = opt.max_seconds;
    for (size_t i = 0; i + 1 < std::size(kBinEdges); ++i) r.histogram.push_back({kBinEdges[i], kBinEdges[i + 1], 0});
    Checker k{ds, opt, r, ds.metadata_display};
    for (auto& p : ds.problems) r.problems.push_back(p);
    r.entries = int(ds.entries.size());
    std::map<std::pair<std::string, std::string>, int> seen;
    std::map<std::string, std::pair<int, std::string>> by_audio;
    for (auto& e : ds.entries) {
        r.clips.emplace_back();
        k.clip(e, r.clips.back(), seen, by_audio);
        if (r.clips.back().skip_code == "missing-audio") ++r.missing;
    }
    k.reference();
    k.summary();
    // Errors first, so the reason a folder cannot be trained leads the report; otherwise file order.
    std::stable_sort(r.problems.begin(), r.problems.end(),
                     [](const Problem& a, const Problem& b) { return int(a.severity) < int(b.severity); });
    if (r.trainable()) {
        plan::Request q;
        q.samples = r.usable;
        q.lr = opt.lr;
        q.epochs = opt.epochs;
        r.recommendation = plan::recommend(q);
    }
    return r;
}

CheckReport check_dataset(const fs::path& dir, const CheckOptions& opt) {
    Dataset ds;
    try {
        ds = Dataset::load(dir);
    } catch (const InputError& err) {
        CheckReport r;
        r.dir = dir.string();
        r.max_seconds = opt.max_seconds;
        r.problems.push_back(Problem{Severity::Error, "missing-folder", dir.string(), 0, "", err.what()});
        return r;
    }
    return check(ds, opt);
}

nlohmann::json to_json(const CheckReport& r) {
    using nlohmann::json;
    json hist = json::array();
    for (auto& b : r.histogram)
        hist.push_back({{"low", b.low}, {"high", std::isinf(b.high) ? json(nullptr) : json(b.high)},
                        {"label", bin_label(b)}, {"count", b.count}});
    json rates = json::object(), channels = json::object();
    for (auto& [k, v] : r.sample_rates) rates[std::to_string(k)] = v;
    for (auto& [k, v] : r.channel_counts) channels[std::to_string(k)] = v;
    json clips = json::array();
    for (auto& c : r.clips) {
        json j{{"line", c.line}, {"audio", c.audio}, {"usable", c.usable}, {"found", c.found},
               {"decoded", c.decoded}, {"short_utterance", c.short_utterance}};
        if (c.decoded) {
            j["seconds"] = c.stats.seconds;
            j["sample_rate"] = c.sample_rate;
            j["channels"] = c.channels;
            j["format"] = c.format;
            j["peak"] = c.stats.peak;
            j["rms"] = c.stats.rms;
            j["clipped_fraction"] = c.stats.clipped_fraction;
            j["leading_silence"] = c.stats.leading_silence;
            j["trailing_silence"] = c.stats.trailing_silence;
        }
        if (!c.usable) {
            j["skip_code"] = c.skip_code;
            j["skip_reason"] = c.skip_reason;
        }
        clips.push_back(std::move(j));
    }
    json problems = json::array();
    for (auto& p : r.problems) {
        json j{{"severity", severity_name(p.severity)}, {"code", p.code}, {"message", p.message}};
        if (!p.file.empty()) j["file"] = p.file;
        if (p.line > 0) j["line"] = p.line;
        if (!p.field.empty()) j["field"] = p.field;
        problems.push_back(std::move(j));
    }
    json ref{{"source", r.ref.source}, {"path", r.ref.path}, {"present", r.ref.present}, {"decoded", r.ref.decoded},
             {"seconds", r.ref.seconds}, {"sample_rate", r.ref.sample_rate}, {"channels", r.ref.channels},
             {"text_present", r.ref.text_present}, {"text_nonempty", r.ref.text_nonempty}, {"text", r.ref.text}};
    return json{
        {"dir", r.dir},
        {"trainable", r.trainable()},
        {"exit_code", r.exit_code()},
        {"max_seconds", r.max_seconds},
        {"entries", r.entries},
        {"usable", r.usable},
        {"usable_seconds", r.usable_seconds},
        {"usable_minutes", r.usable_seconds / 60},
        {"target_minutes", {kTargetMinutesLow, kTargetMinutesHigh}},
        {"histogram", hist},
        {"sample_rates", rates},
        {"channels", channels},
        {"counts",
         {{"missing", r.missing}, {"undecodable", r.undecodable}, {"over_max", r.over_max},
          {"too_short", r.too_short}, {"silent", r.silent}, {"clipped", r.clipped}, {"empty_text", r.empty_text},
          {"duplicates", r.duplicates}, {"short_utterances", r.short_utterances}}},
        {"reference", ref},
        {"errors", r.count(Severity::Error)},
        {"warnings", r.count(Severity::Warning)},
        {"problems", problems},
        {"clips", clips},
        {"recommendation", r.recommendation ? plan::to_json(*r.recommendation) : json(nullptr)},
    };
}

std::string to_text(const CheckReport& r) {
    std::string s = fmt::format("dataset {}\n", r.dir);
    s += fmt::format("  entries           {}\n", r.entries);
    s += fmt::format("  usable clips      {}", r.usable);
    if (r.usable < r.entries) s += fmt::format(" ({} skipped)", r.entries - r.usable);
    s += "\n";
    s += fmt::format("  usable audio      {:.1f} min (the seed's target: 15-30 min)\n", r.usable_seconds / 60);
    std::vector<std::string> bins;
    for (auto& b : r.histogram)
        if (b.count > 0) bins.push_back(fmt::format("{} ×{}", bin_label(b), b.count));
    if (!bins.empty()) s += fmt::format("  durations         {}\n", fmt::join(bins, ", "));
    std::vector<std::string> rates, chans;
    for (auto& [k, v] : r.sample_rates) rates.push_back(fmt::format("{} Hz ×{}", k, v));
    for (auto& [k, v] : r.channel_counts)
        chans.push_back(fmt::format("{} ×{}", k == 1 ? std::string("mono") : k == 2 ? "stereo" : fmt::format("{} ch", k), v));
    if (!rates.empty()) s += fmt::format("  formats           {}; {}\n", fmt::join(rates, ", "), fmt::join(chans, ", "));
    s += fmt::format("  over {:g} s         {}\n", r.max_seconds, r.over_max);
    s += fmt::format("  short utterances  {}\n", r.short_utterances);
    if (r.ref.source.empty())
        s += "  reference         none (first usable clip)\n";
    else if (r.ref.decoded)
        s += fmt::format("  reference         {} ({:.1f} s, {} Hz){}\n", r.ref.path, r.ref.seconds, r.ref.sample_rate,
                         r.ref.text_nonempty ? fmt::format("; ref_text.txt {} chars", r.ref.text.size())
                                             : std::string("; no usable ref_text.txt"));
    else
        s += fmt::format("  reference         {}: not usable\n", r.ref.path.empty() ? r.ref.source : r.ref.path);
    for (Severity sev : {Severity::Error, Severity::Warning, Severity::Note}) {
        int n = r.count(sev);
        if (n == 0) continue;
        s += fmt::format("{} ({}):\n", sev == Severity::Error ? "errors" : sev == Severity::Warning ? "warnings" : "notes", n);
        for (auto& p : r.problems)
            if (p.severity == sev) s += fmt::format("  {} {}\n", sev == Severity::Error ? "✗" : sev == Severity::Warning ? "!" : "-", p.message);
    }
    if (r.recommendation) {
        s += "recommendation:\n";
        std::string t = plan::to_text(*r.recommendation);
        size_t start = 0;
        while (start <= t.size()) {
            size_t end = t.find('\n', start);
            if (end == std::string::npos) end = t.size();
            s += "  " + t.substr(start, end - start) + "\n";
            start = end + 1;
        }
    }
    if (r.trainable())
        s += r.count(Severity::Warning) ? fmt::format("result: trainable, with {} warning{}", r.count(Severity::Warning),
                                                      r.count(Severity::Warning) == 1 ? "" : "s")
                                        : std::string("result: trainable");
    else
        s += fmt::format("result: NOT trainable ({} error{}): fix the errors above", r.count(Severity::Error),
                         r.count(Severity::Error) == 1 ? "" : "s");
    return s;
}

}  // namespace alexandria::dataset
