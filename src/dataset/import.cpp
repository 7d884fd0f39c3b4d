#include "alexandria/dataset/import.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "alexandria/io/audio.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"

namespace alexandria::dataset {

SourceFormat parse_source_format(const std::string& s) {
    if (s == "auto") return SourceFormat::Auto;
    if (s == "folder") return SourceFormat::Folder;
    if (s == "ljspeech" || s == "csv") return SourceFormat::LJSpeech;
    if (s == "jsonl") return SourceFormat::Jsonl;
    throw InputError(fmt::format("unknown source format '{}' (expected auto, folder, ljspeech or jsonl)", s));
}

std::string to_string(SourceFormat f) {
    switch (f) {
        case SourceFormat::Auto: return "auto";
        case SourceFormat::Folder: return "folder";
        case SourceFormat::LJSpeech: return "ljspeech";
        case SourceFormat::Jsonl: return "jsonl";
    }
    return "auto";
}

nlohmann::json ImportReport::to_json() const {
    nlohmann::json j;
    j["source"] = source.string();
    j["out"] = out.string();
    j["format"] = to_string(format);
    j["entries"] = entries;
    j["imported"] = clips.size();
    j["skipped_count"] = skipped.size();
    j["total_seconds"] = total_seconds;
    j["written"] = written;
    auto& cl = j["clips"] = nlohmann::json::array();
    for (auto& c : clips) {
        nlohmann::json o{{"source", c.source},           {"audio_filepath", c.audio_filepath},
                         {"text", c.text},               {"seconds", c.seconds},
                         {"source_rate", c.source_rate}, {"source_channels", c.source_channels},
                         {"peak", c.peak},               {"level_db", c.level_db},
                         {"snr_db", c.snr_db},           {"ref_score", c.ref_score}};
        if (c.source_line > 0) o["source_line"] = c.source_line;
        cl.push_back(std::move(o));
    }
    auto& sk = j["skipped"] = nlohmann::json::array();
    for (auto& s : skipped) sk.push_back({{"source", s.source}, {"reason", s.reason}});
    j["warnings"] = warnings;
    j["ref"] = {{"source", ref_source}, {"text", ref_text}, {"seconds", ref_seconds},
                {"score", ref_score},   {"reason", ref_reason}};
    return j;
}

// ---------------------------------------------------------------------------------------------------------------
// Reference scoring

void speech_levels(const std::vector<float>& x, int sample_rate, double* level_db, double* snr_db) {
    const size_t frame = std::max<size_t>(1, size_t(sample_rate) / 50);  // 20 ms
    std::vector<double> db;
    for (size_t s = 0; s + frame <= x.size(); s += frame) {
        double e = 0;
        for (size_t i = s; i < s + frame; ++i) e += double(x[i]) * x[i];
        db.push_back(10.0 * std::log10(e / double(frame) + 1e-12));
    }
    if (db.empty()) {
        *level_db = -120;
        *snr_db = 0;
        return;
    }
    std::sort(db.begin(), db.end());
    auto pct = [&](double p) { return db[std::min(db.size() - 1, size_t(p * double(db.size() - 1) + 0.5))]; };
    // mean energy of the louder half: pauses do not drag the level of a sparse reading down
    double e = 0;
    size_t from = db.size() / 2, n = 0;
    for (size_t i = from; i < db.size(); ++i, ++n) e += std::pow(10.0, db[i] / 10.0);
    *level_db = 10.0 * std::log10(e / double(std::max<size_t>(n, 1)) + 1e-12);
    *snr_db = pct(0.9) - pct(0.1);
}

bool ref_eligible(const RefCandidate& c) {
    return c.seconds >= 5.0 && c.seconds <= 15.0 && c.peak < 0.999 && c.clipped_fraction == 0 && !c.silent;
}

static bool ends_like_sentence(const std::string& t) {
    if (t.empty()) return false;
    static const char* endings[] = {".", ",", ";", ":", "\"", "'", "\xE2\x80\x9D" /* ” */, "\xE2\x80\x99" /* ’ */,
                                    "\xE3\x80\x82" /* 。 */};
    for (auto* e : endings) {
        size_t n = std::strlen(e);
        if (t.size() >= n && t.compare(t.size() - n, n, e) == 0) return true;
    }
    return false;
}

static bool has_shouted_word(const std::string& t) {
    size_t run = 0;  // capitals in a row; a lower-case letter makes it an ordinary word
    for (char ch : t) {
        if (ch >= 'A' && ch <= 'Z') {
            ++run;
        } else if (ch >= 'a' && ch <= 'z') {
            run = 0;
        } else {
            if (run >= 3) return true;
            run = 0;
        }
    }
    return run >= 3;
}

static int word_count(const std::string& t) {
    int n = 0;
    bool in = false;
    for (unsigned char ch : t) {
        bool space = ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
        if (!space && !in) ++n;
        in = !space;
    }
    return n;
}

double ref_score(const RefCandidate& c, double median_level_db) {
    double s = c.seconds, duration;
    if (s < 5.0) duration = s / 5.0 * 0.5;
    else if (s <= 15.0) duration = (s - 5.0) / 10.0;
    else duration = std::max(0.0, 1.0 - (s - 15.0) / 15.0) * 0.5;
    double level = std::exp(-std::fabs(c.level_db - median_level_db) / 6.0);
    double clean = std::clamp(c.snr_db, 0.0, 40.0) / 40.0;
    double calm = 1.0;
    if (c.text.find('!') != std::string::npos) calm -= 0.4;
    if (c.text.find('?') != std::string::npos) calm -= 0.2;
    if (has_shouted_word(c.text)) calm -= 0.2;
    if (!ends_like_sentence(c.text)) calm -= 0.2;
    calm = std::max(0.0, calm) * (std::min(1.0, word_count(c.text) / 20.0) * 0.5 + 0.5);
    double score = 0.35 * duration + 0.25 * level + 0.20 * clean + 0.20 * calm;
    return ref_eligible(c) ? score + 1.0 : score;
}

// ---------------------------------------------------------------------------------------------------------------
// Source listing

namespace {

struct SourceEntry {
    std::string display;  // "a.wav" or "metadata.csv:12"
    int line = 0;
    fs::path audio;        // empty when the entry is already known bad
    std::string audio_as_written;
    std::string text;
    std::string error;     // non-empty: skip with this reason
};

const std::set<std::string> kAudioExtensions = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff",
                                                 ".aifc", ".au", ".caf", ".w64", ".rf64", ".wave"};

std::string lower(std::string s) {
    for (auto& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    return s;
}

// Transcripts are kept as written except for surrounding whitespace and line breaks, which become spaces.
std::string clean_text(std::string t) {
    if (t.size() >= 3 && t.compare(0, 3, "\xEF\xBB\xBF") == 0) t.erase(0, 3);
    for (auto& ch : t)
        if (ch == '\r' || ch == '\n' || ch == '\t') ch = ' ';
    std::string out;
    out.reserve(t.size());
    for (char ch : t) {
        if (ch == ' ' && !out.empty() && out.back() == ' ') continue;
        out.push_back(ch);
    }
    size_t a = out.find_first_not_of(' ');
    if (a == std::string::npos) return "";
    size_t b = out.find_last_not_of(' ');
    return out.substr(a, b - a + 1);
}

// Empty string when fine, else why the text cannot be used.
std::string text_problem(const std::string& t) {
    size_t bad = 0;
    if (!io::valid_utf8(t, &bad)) return fmt::format("transcript is not valid UTF-8 (byte {})", bad + 1);
    if (t.empty()) return "empty transcript";
    return "";
}

fs::path canonical_or_absolute(const fs::path& p) {
    std::error_code ec;
    auto c = fs::weakly_canonical(fs::absolute(p), ec);
    return ec ? fs::absolute(p).lexically_normal() : c;
}

bool is_inside(const fs::path& inner, const fs::path& outer) {  // inner == outer counts
    auto i = canonical_or_absolute(inner), o = canonical_or_absolute(outer);
    auto ii = i.begin(), oi = o.begin();
    for (; oi != o.end(); ++oi, ++ii) {
        if (oi->empty()) continue;  // trailing separator
        if (ii == i.end() || *ii != *oi) return false;
    }
    return true;
}

std::vector<SourceEntry> list_folder(const fs::path& dir) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (std::error_code fe; it->is_regular_file(fe)) files.push_back(it->path());
    if (ec) throw InputError(fmt::format("{}: cannot list the folder: {}", dir.string(), ec.message()));
    std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
        return a.filename().string() < b.filename().string();
    });
    std::map<std::string, std::vector<fs::path>> audio_by_stem;
    std::set<std::string> txt_stems;
    for (auto& f : files) {
        auto ext = lower(f.extension().string());
        if (kAudioExtensions.count(ext)) audio_by_stem[f.stem().string()].push_back(f);
        else if (ext == ".txt") txt_stems.insert(f.stem().string());
    }
    std::vector<SourceEntry> out;
    for (auto& f : files) {
        auto ext = lower(f.extension().string());
        std::string stem = f.stem().string();
        if (ext == ".txt") {
            if (!audio_by_stem.count(stem)) {
                SourceEntry e;
                e.display = f.filename().string();
                e.error = fmt::format("transcript without an audio file (expected {}.wav or another audio file)", stem);
                out.push_back(e);
            }
            continue;
        }
        if (!kAudioExtensions.count(ext)) continue;
        SourceEntry e;
        e.display = f.filename().string();
        e.audio = f;
        e.audio_as_written = f.filename().string();
        auto& same = audio_by_stem[stem];
        fs::path txt = dir / (stem + ".txt");
        if (same.size() > 1) {
            std::string names;
            for (auto& s : same) names += (names.empty() ? "" : ", ") + s.filename().string();
            e.error = fmt::format("duplicate name: {} all claim the transcript {}.txt; rename all but one", names, stem);
        } else if (!txt_stems.count(stem)) {
            e.error = fmt::format("missing transcript {}.txt", stem);
        } else {
            try {
                e.text = clean_text(io::read_file(txt));
                if (auto p = text_problem(e.text); !p.empty()) e.error = fmt::format("{}.txt: {}", stem, p);
            } catch (const std::exception& ex) {
                e.error = ex.what();
            }
        }
        out.push_back(e);
    }
    return out;
}

std::vector<std::string> split_pipe(const std::string& line) {
    std::vector<std::string> f;
    size_t s = 0;
    while (true) {
        size_t p = line.find('|', s);
        f.push_back(line.substr(s, p == std::string::npos ? std::string::npos : p - s));
        if (p == std::string::npos) break;
        s = p + 1;
    }
    return f;
}

}  // namespace

CsvRow parse_ljspeech_row(std::string line, int lineno, bool use_normalized) {
    CsvRow row;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (lineno == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (line.find_first_not_of(" \t") == std::string::npos) {
        row.skip = true;
        return row;
    }
    auto fields = split_pipe(line);
    row.columns = int(fields.size());
    if (fields.size() < 2 || fields.size() > 3) {
        row.error = fmt::format("expected 'file|text' or 'file|text|normalized', found {} column{}", fields.size(),
                                fields.size() == 1 ? "" : "s");
        return row;
    }
    row.file = clean_text(fields[0]);
    if (lineno == 1) {
        static const std::set<std::string> file_heads = {"file", "filename", "audio", "audio_file", "audio_filepath",
                                                         "path", "wav", "id"};
        static const std::set<std::string> text_heads = {"text", "transcript", "transcription", "sentence"};
        if (file_heads.count(lower(row.file)) && text_heads.count(lower(clean_text(fields[1])))) {
            row.skip = true;  // a header
            return row;
        }
    }
    std::string text = fields[1];
    if (use_normalized) {
        if (fields.size() == 3) text = fields[2];
        else row.no_normalized = true;
    }
    row.text = clean_text(text);
    if (row.file.empty()) row.error = "empty file column";
    else row.error = text_problem(row.text);
    return row;
}

namespace {

// The audio a row's file column names: a path relative to the csv's folder, or an LJSpeech id looked up with the
// usual extensions. Sets e.audio, or e.error listing where it looked.
void find_row_audio(const fs::path& base, const std::string& file, SourceEntry& e) {
    std::vector<fs::path> tries;
    fs::path fp(file);
    tries.push_back(fp.is_absolute() ? fp : base / fp);
    if (!fp.has_extension() || !kAudioExtensions.count(lower(fp.extension().string()))) {
        for (auto* ext : {".wav", ".flac"}) {
            tries.push_back(base / "wavs" / (file + ext));
            tries.push_back(base / (file + ext));
        }
    }
    std::error_code ec;
    for (auto& t : tries)
        if (fs::is_regular_file(t, ec)) {
            e.audio = t;
            return;
        }
    std::string looked;
    for (auto& t : tries) looked += (looked.empty() ? "" : ", ") + t.lexically_relative(base).string();
    e.error = fmt::format("audio file not found (looked for {})", looked);
}

std::vector<SourceEntry> list_ljspeech(const fs::path& csv, bool use_normalized, std::vector<std::string>& warnings) {
    std::ifstream in(csv, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot read", csv.string()));
    const fs::path base = csv.parent_path();
    const std::string name = csv.filename().string();
    std::vector<SourceEntry> out;
    std::string line;
    int lineno = 0;
    bool warned_no_normalized = false;
    while (std::getline(in, line)) {
        CsvRow row = parse_ljspeech_row(line, ++lineno, use_normalized);
        if (row.skip) continue;
        SourceEntry e;
        e.line = lineno;
        e.audio_as_written = row.file;
        e.display = row.columns == 2 || row.columns == 3 ? fmt::format("{}:{} ({})", name, lineno, row.file)
                                                         : fmt::format("{}:{}", name, lineno);
        e.text = row.text;
        e.error = row.error;
        if (row.no_normalized && !warned_no_normalized) {
            warnings.push_back(fmt::format("{}:{}: no normalized column; using the text column for such lines", name,
                                           lineno));
            warned_no_normalized = true;
        }
        if (e.error.empty()) find_row_audio(base, row.file, e);
        out.push_back(e);
    }
    return out;
}

std::vector<SourceEntry> list_jsonl(const fs::path& file) {
    fs::path base = file.parent_path();
    std::vector<SourceEntry> out;
    std::string name = file.filename().string();
    io::read_jsonl(
        file.string(),
        [&](int line, const nlohmann::json& obj) {
            SourceEntry e;
            e.line = line;
            e.display = fmt::format("{}:{}", name, line);
            const nlohmann::json* audio = nullptr;
            const char* field = "audio_filepath";
            if (obj.contains("audio_filepath")) audio = &obj["audio_filepath"];
            else if (obj.contains("audio")) audio = &obj["audio"], field = "audio";
            if (!audio) {
                e.error = "missing field 'audio_filepath' (or 'audio')";
            } else if (!audio->is_string()) {
                e.error = fmt::format("field '{}': expected a string, got {}", field, audio->type_name());
            } else if (!obj.contains("text")) {
                e.error = "missing field 'text'";
            } else if (!obj["text"].is_string()) {
                e.error = fmt::format("field 'text': expected a string, got {}", obj["text"].type_name());
            } else {
                e.audio_as_written = audio->get<std::string>();
                e.display = fmt::format("{}:{} ({})", name, line, e.audio_as_written);
                e.text = clean_text(obj["text"].get<std::string>());
                if (e.audio_as_written.empty()) e.error = fmt::format("field '{}' is empty", field);
                else if (auto p = text_problem(e.text); !p.empty()) e.error = p;
                else {
                    fs::path written(e.audio_as_written);
                    e.audio = written.is_absolute() ? written : base / written;
                }
            }
            out.push_back(e);
        },
        [&](int line, const std::string& message) {
            SourceEntry e;
            e.line = line;
            e.display = fmt::format("{}:{}", name, line);
            e.error = message;
            out.push_back(e);
        });
    return out;
}

int digits(size_t n) {
    int d = 1;
    while (n >= 10) n /= 10, ++d;
    return d;
}

struct Converted {
    std::string hash;
    double clipped_fraction = 0;
    bool silent = false;
};

std::string dump_line(const nlohmann::ordered_json& j) {
    // UTF-8 unescaped, as Alexandria writes with ensure_ascii=False; the text was validated already
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

// ---------------------------------------------------------------------------------------------------------------
// The steps of an import, in order.

// Where the entries come from.
struct Source {
    SourceFormat format = SourceFormat::Auto;
    fs::path file;  // metadata.csv / .jsonl (the folder itself for the folder form)
    fs::path root;  // the folder the source occupies (empty for a lone file); never written to
    bool is_dir = false;
};

// The reference asked for with --ref: one of the entries, or a file outside the source.
struct RefRequest {
    int entry = -1;
    fs::path external;
};

ImportOptions checked_options(const ImportOptions& options) {
    ImportOptions opt = options;
    // "out/" names the folder "out": the temp folder must be its sibling, not inside it
    opt.out = opt.out.lexically_normal();
    if (!opt.out.empty() && opt.out.filename().empty()) opt.out = opt.out.parent_path();
    std::error_code ec;
    if (opt.source.empty()) throw InputError("no source given");
    if (opt.out.empty()) throw InputError("--out: no output folder given");
    if (!(opt.max_seconds > 0) || !std::isfinite(opt.max_seconds))
        throw InputError(fmt::format("--max-seconds must be a positive number, got {}", opt.max_seconds));
    if (!fs::exists(opt.source, ec)) throw InputError(fmt::format("{}: source not found", opt.source.string()));
    return opt;
}

// The form (detected unless given) and the file to read.
Source resolve_source(const ImportOptions& opt) {
    std::error_code ec;
    Source src;
    src.format = opt.format;
    src.file = opt.source;
    src.is_dir = fs::is_directory(opt.source, ec);
    if (src.is_dir) {
        src.root = opt.source;
        if (src.format == SourceFormat::Auto) {
            if (fs::is_regular_file(opt.source / "metadata.csv", ec)) src.format = SourceFormat::LJSpeech;
            else if (fs::is_regular_file(opt.source / "metadata.jsonl", ec)) src.format = SourceFormat::Jsonl;
            else src.format = SourceFormat::Folder;
        }
        if (src.format == SourceFormat::LJSpeech) src.file = opt.source / "metadata.csv";
        else if (src.format == SourceFormat::Jsonl) src.file = opt.source / "metadata.jsonl";
        if (src.format != SourceFormat::Folder && !fs::is_regular_file(src.file, ec))
            throw InputError(fmt::format("{}: no {} in this folder", opt.source.string(), src.file.filename().string()));
        return src;
    }
    auto ext = lower(opt.source.extension().string());
    if (src.format == SourceFormat::Auto) {
        if (ext == ".csv" || ext == ".txt" || ext == ".psv") src.format = SourceFormat::LJSpeech;
        else if (ext == ".jsonl" || ext == ".json" || ext == ".ndjson") src.format = SourceFormat::Jsonl;
        else
            throw InputError(fmt::format(
                "{}: not a folder, a metadata.csv or a .jsonl file (use --format to say which form it is)",
                opt.source.string()));
    }
    if (src.format == SourceFormat::Folder)
        throw InputError(fmt::format("{}: --format folder needs a directory", opt.source.string()));
    return src;
}

// The output must not overlap the source: SRC is never modified, and --force must never delete it.
void check_output_location(const ImportOptions& opt, const Source& src) {
    std::error_code ec;
    if (src.is_dir && is_inside(opt.out, src.root))
        throw InputError(fmt::format("--out {} is inside the source folder {}; the source is never modified, choose "
                                     "a folder outside it",
                                     opt.out.string(), opt.source.string()));
    if (is_inside(opt.source, opt.out))
        throw InputError(fmt::format("the source {} is inside --out {}; choose another output folder",
                                     opt.source.string(), opt.out.string()));
    if (fs::exists(opt.out, ec)) {
        if (!fs::is_directory(opt.out, ec))
            throw InputError(fmt::format("--out {} exists and is not a folder", opt.out.string()));
        if (!fs::is_empty(opt.out, ec) && !opt.force)
            throw InputError(fmt::format("--out {} exists and is not empty; pass --force to replace it",
                                         opt.out.string()));
    }
}

std::vector<SourceEntry> list_source(const ImportOptions& opt, const Source& src, ImportReport& rep) {
    std::vector<SourceEntry> entries;
    if (src.format == SourceFormat::Folder) entries = list_folder(opt.source);
    else if (src.format == SourceFormat::LJSpeech) entries = list_ljspeech(src.file, opt.use_normalized, rep.warnings);
    else entries = list_jsonl(src.file);
    for (auto& e : entries)
        if (!e.audio.empty() && is_inside(e.audio, opt.out))
            throw InputError(fmt::format("{}: its audio {} lies inside --out {}; choose another output folder",
                                         e.display, e.audio.string(), opt.out.string()));
    return entries;
}

// --ref is resolved before the long conversion so a typo fails fast.
RefRequest resolve_ref(const ImportOptions& opt, const Source& src, const std::vector<SourceEntry>& entries) {
    RefRequest ref;
    if (opt.ref.empty()) return ref;
    std::error_code ec;
    fs::path as_given(opt.ref);
    fs::path base = src.is_dir ? src.root : src.file.parent_path();
    fs::path candidate;
    if (fs::is_regular_file(as_given, ec)) candidate = as_given;
    else if (fs::is_regular_file(base / as_given, ec)) candidate = base / as_given;
    if (!candidate.empty()) {
        auto c = canonical_or_absolute(candidate);
        for (size_t i = 0; i < entries.size(); ++i)
            if (!entries[i].audio.empty() && canonical_or_absolute(entries[i].audio) == c) ref.entry = int(i);
        if (ref.entry < 0) ref.external = candidate;
    } else {
        for (size_t i = 0; i < entries.size() && ref.entry < 0; ++i) {
            auto& w = entries[i].audio_as_written;
            if (w.empty()) continue;
            if (w == opt.ref || fs::path(w).stem().string() == opt.ref || fs::path(w).filename().string() == opt.ref)
                ref.entry = int(i);
        }
        if (ref.entry < 0)
            throw InputError(fmt::format("--ref {}: no such file, and no source clip has that name", opt.ref));
    }
    if (ref.entry >= 0 && !entries[size_t(ref.entry)].error.empty())
        throw InputError(fmt::format("--ref {}: that clip cannot be used: {}", opt.ref, entries[size_t(ref.entry)].error));
    if (!ref.external.empty() && opt.ref_text.empty()) {
        fs::path txt = ref.external;
        txt.replace_extension(".txt");
        if (!fs::is_regular_file(txt, ec))
            throw InputError(fmt::format("--ref {}: it is not one of the source clips, so its transcript is needed: "
                                         "pass --ref-text or put {} beside it",
                                         opt.ref, txt.filename().string()));
    }
    return ref;
}

// Every entry decoded, checked, resampled to 24 kHz and written into `tmp` as sample_NNN.wav, or skipped with its
// reason. Returns the index in rep.clips of the --ref entry (-1 when it was skipped or not asked for).
int convert_entries(const std::vector<SourceEntry>& entries, const ImportOptions& opt, const fs::path& tmp,
                    int ref_entry, ImportReport& rep, std::vector<Converted>& conv) {
    const int width = std::max(3, digits(entries.empty() ? 0 : entries.size() - 1));
    std::map<fs::path, size_t> seen_audio;        // canonical source path → entry index
    std::map<std::string, std::string> seen_hash;  // converted content → dataset name
    int clip_of_ref = -1;
    for (size_t i = 0; i < entries.size(); ++i) {
        auto& e = entries[i];
        auto skip = [&](const std::string& why) { rep.skipped.push_back({e.display, why}); };
        if (!e.error.empty()) {
            skip(e.error);
            continue;
        }
        auto canon = canonical_or_absolute(e.audio);
        if (auto it = seen_audio.find(canon); it != seen_audio.end()) {
            skip(fmt::format("duplicate: the same audio file as {}", entries[it->second].display));
            continue;
        }
        seen_audio[canon] = i;
        ImportedClip c;
        c.source = e.audio_as_written;
        c.source_line = e.line;
        c.text = e.text;
        io::Audio a;
        try {
            auto info = io::probe_audio(e.audio.string());
            c.source_rate = info.sample_rate;
            c.source_channels = info.channels;
            if (info.sample_rate > 0 && double(info.frames) / info.sample_rate > opt.max_seconds) {
                skip(fmt::format("{:.1f} s is longer than --max-seconds {:g}", double(info.frames) / info.sample_rate,
                                 opt.max_seconds));
                continue;
            }
            a = io::read_audio_resampled(e.audio.string(), io::kModelSampleRate);
        } catch (const Error& ex) {
            skip(ex.what());
            continue;
        }
        auto st = io::audio_stats(a);
        if (st.silent()) {
            skip("silent (below -50 dBFS everywhere)");
            continue;
        }
        if (st.seconds > opt.max_seconds) {
            skip(fmt::format("{:.1f} s is longer than --max-seconds {:g}", st.seconds, opt.max_seconds));
            continue;
        }
        c.audio_filepath = fmt::format("sample_{:0{}d}.wav", i, width);
        io::write_audio((tmp / c.audio_filepath).string(), a, io::AudioFormat::WavPcm16);
        c.seconds = st.seconds;
        c.peak = st.peak;
        speech_levels(a.samples, a.sample_rate, &c.level_db, &c.snr_db);
        Converted cv;
        cv.hash = io::hash_file(tmp / c.audio_filepath);
        cv.clipped_fraction = st.clipped_fraction;
        if (auto h = seen_hash.find(cv.hash); h != seen_hash.end())
            rep.warnings.push_back(fmt::format("{}: same audio content as {} (kept both)", e.display, h->second));
        else
            seen_hash[cv.hash] = c.audio_filepath;
        if (int(i) == ref_entry) clip_of_ref = int(rep.clips.size());
        rep.clips.push_back(c);
        conv.push_back(cv);
        rep.total_seconds += c.seconds;
    }
    return clip_of_ref;
}

// Every clip's reference score (reported even when --ref decides); returns the best clip's index.
int score_clips(ImportReport& rep, const std::vector<Converted>& conv) {
    std::vector<double> levels;
    for (auto& c : rep.clips) levels.push_back(c.level_db);
    std::sort(levels.begin(), levels.end());
    double median = levels.size() % 2 ? levels[levels.size() / 2]
                                      : 0.5 * (levels[levels.size() / 2 - 1] + levels[levels.size() / 2]);
    int best = 0;
    for (size_t k = 0; k < rep.clips.size(); ++k) {
        auto& c = rep.clips[k];
        RefCandidate rc{c.seconds, c.peak, conv[k].clipped_fraction, c.level_db, c.snr_db, false, c.text};
        c.ref_score = ref_score(rc, median);
        if (c.ref_score > rep.clips[size_t(best)].ref_score) best = int(k);
    }
    return best;
}

// ref.wav as a byte copy of clip k.
void use_clip_as_ref(const fs::path& tmp, size_t k, const std::string& reason, ImportReport& rep) {
    auto& c = rep.clips[k];
    fs::copy_file(tmp / c.audio_filepath, tmp / "ref.wav", fs::copy_options::overwrite_existing);
    rep.ref_source = c.source;
    rep.ref_text = c.text;
    rep.ref_seconds = c.seconds;
    rep.ref_score = c.ref_score;
    rep.ref_reason = reason;
}

// ref.wav from a --ref file that is not one of the training clips, with its transcript.
void use_external_ref(const ImportOptions& opt, const fs::path& file, const fs::path& tmp, ImportReport& rep) {
    std::string text = opt.ref_text;
    if (text.empty()) {
        fs::path txt = file;
        txt.replace_extension(".txt");
        text = io::read_file(txt);
    }
    text = clean_text(text);
    if (auto p = text_problem(text); !p.empty()) throw ImportFailed(fmt::format("--ref {}: {}", opt.ref, p), rep);
    io::Audio a;
    try {
        a = io::read_audio_resampled(file.string(), io::kModelSampleRate);
    } catch (const Error& ex) {
        throw ImportFailed(fmt::format("--ref {}: {}", opt.ref, ex.what()), rep);
    }
    auto st = io::audio_stats(a);
    if (st.silent()) throw ImportFailed(fmt::format("--ref {}: silent", opt.ref), rep);
    if (st.seconds > 30.0)
        rep.warnings.push_back(
            fmt::format("--ref {}: {:.1f} s is long for a reference (5-15 s works best)", opt.ref, st.seconds));
    io::write_audio((tmp / "ref.wav").string(), a, io::AudioFormat::WavPcm16);
    rep.ref_source = opt.ref;
    rep.ref_text = text;
    rep.ref_seconds = st.seconds;
    rep.ref_reason = "chosen with --ref (not one of the training clips)";
}

void choose_reference(const ImportOptions& opt, const std::vector<SourceEntry>& entries, const RefRequest& ref,
                      int clip_of_ref, int best, const fs::path& tmp, ImportReport& rep) {
    if (!opt.ref.empty() && ref.entry >= 0) {
        if (clip_of_ref < 0) {
            std::string why;
            for (auto& s : rep.skipped)
                if (s.source == entries[size_t(ref.entry)].display) why = s.reason;
            throw ImportFailed(fmt::format("--ref {}: that clip was skipped: {}", opt.ref, why), rep);
        }
        use_clip_as_ref(tmp, size_t(clip_of_ref), "chosen with --ref", rep);
    } else if (!ref.external.empty()) {
        use_external_ref(opt, ref.external, tmp, rep);
    } else {
        const double score = rep.clips[size_t(best)].ref_score;
        use_clip_as_ref(tmp, size_t(best),
                        score >= 1.0 ? fmt::format("automatic: best score {:.3f} (5-15 s, unclipped, calm text, level "
                                                   "near the median)",
                                                   score - 1.0)
                                     : fmt::format("automatic, but no clip is 5-15 s long and unclipped: best score "
                                                   "{:.3f}; consider recording a calm 5-15 s passage and passing --ref",
                                                   score),
                        rep);
        if (score < 1.0) rep.warnings.push_back("reference: " + rep.ref_reason);
    }
    io::write_file_atomic(tmp / "ref_text.txt", rep.ref_text);
}

void write_metadata(const fs::path& tmp, ImportReport& rep) {
    std::string meta;
    for (auto& c : rep.clips) {
        nlohmann::ordered_json j;
        j["audio_filepath"] = c.audio_filepath;
        j["text"] = c.text;
        j["ref_audio"] = "ref.wav";
        meta += dump_line(j);
        meta.push_back('\n');
    }
    io::write_file_atomic(tmp / "metadata.jsonl", meta);
    rep.written = true;
    io::write_file_atomic(tmp / "import.json", rep.to_json().dump(2) + "\n");
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
ImportReport import_dataset(const ImportOptions& options) {
    const ImportOptions opt = checked_options(options);
    ImportReport rep;
    rep.source = opt.source;
    rep.out = opt.out;
    const Source src = resolve_source(opt);
    rep.format = src.format;
    check_output_location(opt, src);
    const auto entries = list_source(opt, src, rep);
    rep.entries = int(entries.size());
    const RefRequest ref = resolve_ref(opt, src, entries);

    io::replace_directory_atomic(opt.out, [&](const fs::path& tmp) {
        std::vector<Converted> conv;
        const int clip_of_ref = convert_entries(entries, opt, tmp, ref.entry, rep, conv);
        if (rep.clips.empty())
            throw ImportFailed(fmt::format("{}: no usable clip among {} entr{} ({} skipped); nothing written",
                                           opt.source.string(), entries.size(), entries.size() == 1 ? "y" : "ies",
                                           rep.skipped.size()),
                               rep);
        const int best = score_clips(rep, conv);
        choose_reference(opt, entries, ref, clip_of_ref, best, tmp, rep);
        write_metadata(tmp, rep);
    });
    return rep;
}

}  // namespace alexandria::dataset
