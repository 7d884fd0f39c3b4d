#include "alexandria/synth/dataset_build.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"
#include "alexandria/io/strings.h"
#include "alexandria/synth/generate.h"

namespace alexandria::synth {

namespace fs = std::filesystem;

namespace {

// A seed cell: integer ≥ 0 or a digit string; empty, null or negative = none (Alexandria's rule); anything else
// is an error (returned as a message).
std::optional<uint64_t> parse_seed(const nlohmann::json& v, std::string* error) {
    if (v.is_null()) return std::nullopt;
    if (v.is_number_integer()) {
        if (v.is_number_unsigned()) return v.get<uint64_t>();
        int64_t s = v.get<int64_t>();
        if (s < 0) return std::nullopt;
        return uint64_t(s);
    }
    if (v.is_number_float()) {
        double d = v.get<double>();
        if (d < 0) return std::nullopt;
        if (std::floor(d) == d && d < 1.8e19) return uint64_t(d);
        *error = fmt::format("expected a whole number, got {}", d);
        return std::nullopt;
    }
    if (v.is_string()) {
        std::string s = io::trim(v.get<std::string>());
        if (s.empty()) return std::nullopt;
        if (s[0] == '-' && s.size() > 1 && std::all_of(s.begin() + 1, s.end(), ::isdigit)) return std::nullopt;
        if (!std::all_of(s.begin(), s.end(), ::isdigit) || s.size() > 19) {
            *error = fmt::format("expected a whole number, got '{}'", s);
            return std::nullopt;
        }
        return std::stoull(s);
    }
    *error = fmt::format("expected a number, got {}", v.type_name());
    return std::nullopt;
}

// Fills `row` from an object; returns the problems ("field 'text': ...").
std::vector<std::string> row_from_object(const nlohmann::json& obj, BuildRow& row) {
    std::vector<std::string> errs;
    const char* efield = obj.contains("emotion") ? "emotion" : obj.contains("instruct") ? "instruct" : nullptr;
    if (efield) {
        auto& e = obj[efield];
        if (e.is_string()) row.emotion = io::trim(e.get<std::string>());
        else if (!e.is_null()) errs.push_back(fmt::format("field '{}': expected a string, got {}", efield, e.type_name()));
    }
    if (!obj.contains("text")) errs.push_back("field 'text': missing");
    else if (!obj["text"].is_string()) errs.push_back(fmt::format("field 'text': expected a string, got {}", obj["text"].type_name()));
    else row.text = io::trim(obj["text"].get<std::string>());
    if (obj.contains("seed")) {
        std::string err;
        row.seed = parse_seed(obj["seed"], &err);
        if (!err.empty()) errs.push_back("field 'seed': " + err);
    }
    return errs;
}

// RFC 4180 records: quoted fields may hold commas, quotes ("") and line breaks. Returns (line of record start,
// fields).
std::vector<std::pair<int, std::vector<std::string>>> parse_csv(const std::string& data, std::vector<std::string>& errors,
                                                                const std::string& name) {
    std::vector<std::pair<int, std::vector<std::string>>> recs;
    std::vector<std::string> fields;
    std::string field;
    bool quoted = false, field_started = false, any = false;
    int line = 1, rec_line = 1;
    size_t i = 0;
    if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
    auto end_record = [&] {
        fields.push_back(field);
        bool blank = fields.size() == 1 && io::trim(fields[0]).empty() && !any;
        if (!blank) recs.emplace_back(rec_line, fields);
        fields.clear();
        field.clear();
        field_started = any = false;
    };
    for (; i < data.size(); ++i) {
        char c = data[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < data.size() && data[i + 1] == '"') field.push_back('"'), ++i;
                else quoted = false;
            } else {
                if (c == '\n') ++line;
                field.push_back(c);
            }
            continue;
        }
        if (c == '"' && !field_started) {
            quoted = field_started = any = true;
        } else if (c == ',') {
            fields.push_back(field);
            field.clear();
            field_started = false;
            any = true;
        } else if (c == '\r' && i + 1 < data.size() && data[i + 1] == '\n') {
            continue;
        } else if (c == '\n') {
            end_record();
            rec_line = ++line;
        } else {
            field.push_back(c);
            field_started = true;
        }
    }
    if (quoted) errors.push_back(fmt::format("{}:{}: unterminated quoted field", name, rec_line));
    else if (field_started || any || !field.empty() || !fields.empty()) end_record();
    return recs;
}

uint64_t random_seed() {
    static std::mt19937_64 rng{std::random_device{}()};
    return rng() % 2147483648ull;  // Alexandria's seeds are 32-bit ints
}

}  // namespace

std::vector<BuildRow> read_build_rows(const std::string& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw InputError(fmt::format("{}: rows file not found", path));
    std::string name = fs::path(path).filename().string();
    std::string ext = io::ascii_lower(fs::path(path).extension().string());
    std::vector<BuildRow> rows;
    std::vector<std::string> errors;
    auto add = [&](int line, BuildRow row, std::vector<std::string> errs) {
        if (errs.empty() && row.text.empty()) errs.push_back("field 'text': empty");
        size_t bad = 0;
        if (errs.empty() && !io::valid_utf8(row.text + row.emotion, &bad)) errs.push_back("not valid UTF-8");
        for (auto& e : errs) errors.push_back(fmt::format("{}:{}: {}", name, line, e));
        row.line = line;
        row.index = int(rows.size());
        rows.push_back(std::move(row));
    };
    if (ext == ".jsonl" || ext == ".ndjson") {
        io::read_jsonl(
            path,
            [&](int line, const nlohmann::json& obj) {
                BuildRow r;
                auto errs = row_from_object(obj, r);
                add(line, std::move(r), std::move(errs));
            },
            [&](int, const std::string& msg) { errors.push_back(msg); });
    } else if (ext == ".json") {
        nlohmann::json arr = io::read_json_file(path);
        if (!arr.is_array()) throw InputError(fmt::format("{}: expected an array of rows", path));
        int k = 0;
        for (auto& obj : arr) {
            ++k;
            if (!obj.is_object()) {
                errors.push_back(fmt::format("{}: element {}: expected an object", name, k));
                continue;
            }
            BuildRow r;
            auto errs = row_from_object(obj, r);
            add(k, std::move(r), std::move(errs));
        }
    } else if (ext == ".csv") {
        auto recs = parse_csv(io::read_file(path), errors, name);
        int col_emotion = 0, col_text = 1, col_seed = 2;
        size_t start = 0;
        if (!recs.empty()) {
            auto& h = recs[0].second;
            std::map<std::string, int> cols;
            bool header = true;
            for (size_t c = 0; c < h.size(); ++c) {
                std::string k = io::ascii_lower(io::trim(h[c]));
                if (k == "instruct" || k == "style") k = "emotion";
                if (k != "emotion" && k != "text" && k != "seed") header = false;
                cols[k] = int(c);
            }
            if (header && cols.count("text")) {
                start = 1;
                col_emotion = cols.count("emotion") ? cols["emotion"] : -1;
                col_text = cols["text"];
                col_seed = cols.count("seed") ? cols["seed"] : -1;
            }
        }
        for (size_t k = start; k < recs.size(); ++k) {
            auto& [line, f] = recs[k];
            BuildRow r;
            std::vector<std::string> errs;
            int need = std::max({col_emotion, col_text, start ? col_seed : 1}) + 1;
            if (int(f.size()) < need || f.size() > 3) {
                errs.push_back(fmt::format("expected emotion,text[,seed], found {} column{} (quote text that holds "
                                           "commas)",
                                           f.size(), f.size() == 1 ? "" : "s"));
            } else {
                if (col_emotion >= 0) r.emotion = io::trim(f[size_t(col_emotion)]);
                r.text = io::trim(f[size_t(col_text)]);
                if (col_seed >= 0 && size_t(col_seed) < f.size()) {
                    std::string err;
                    r.seed = parse_seed(nlohmann::json(f[size_t(col_seed)]), &err);
                    if (!err.empty()) errs.push_back("field 'seed': " + err);
                }
            }
            add(line, std::move(r), std::move(errs));
        }
    } else {
        throw InputError(fmt::format("{}: rows must be a .jsonl, .json or .csv file", path));
    }
    if (!errors.empty()) {
        std::string msg = fmt::format("{}: {} bad row{}:", path, errors.size(), errors.size() == 1 ? "" : "s");
        for (auto& e : errors) msg += "\n  " + e;
        throw InputError(msg);
    }
    if (rows.empty()) throw InputError(fmt::format("{}: no rows", path));
    return rows;
}

std::string build_instruct(const std::string& description, const std::string& emotion) {
    return emotion.empty() ? description : description + ", " + emotion;
}

double text_weight(const std::string& t) {
    double w = 0;
    for (size_t i = 0; i < t.size();) {
        unsigned char c = static_cast<unsigned char>(t[i]);
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
        uint32_t cp = c;
        if (len > 1 && i + len <= t.size()) {
            cp = c & (0x7F >> len);
            for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(t[i + k]) & 0x3F);
        }
        bool cjk = (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x3400 && cp <= 0x9FFF) || (cp >= 0xAC00 && cp <= 0xD7AF) ||
                   (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x20000 && cp <= 0x2FFFF);
        w += cjk ? 3.0 : 1.0;
        i += len;
    }
    return w;
}

bool is_neutral_emotion(const std::string& emotion) {
    std::string e = io::ascii_lower(io::trim(emotion));
    return e.empty() || e.find("neutral") != std::string::npos || e.find("calm") != std::string::npos;
}

int default_ref_row(const std::vector<BuildRow>& rows, const std::vector<int>& candidates) {
    int best = -1;
    for (bool neutral_only : {true, false}) {
        for (int i : candidates) {
            auto& r = rows[size_t(i)];
            if (neutral_only && !is_neutral_emotion(r.emotion)) continue;
            if (best < 0 || text_weight(r.text) > text_weight(rows[size_t(best)].text)) best = i;
        }
        if (best >= 0) return best;
    }
    return best;
}

std::string rows_template(const std::string& format) {
    struct R { const char* emotion; const char* text; int seed; };
    // Mixed emotions and lengths, short utterances for EOS, and a long calm neutral passage last (the reference,
    // with a fixed seed so regenerating keeps the speaker embedding stable).
    static const R rows[] = {
        {"neutral", "Good morning. Let me tell you about the old house at the end of the lane.", -1},
        {"happy, excited", "We did it! I can't believe we actually did it!", -1},
        {"sad, quiet", "I just don't know what to do anymore.", -1},
        {"angry", "I told you never to come back here!", -1},
        {"surprised", "Oh!", -1},
        {"thoughtful", "Hmm.", -1},
        {"", "Right.", -1},
        {"curious", "Wait, what did you just say?", -1},
        {"whispering", "Keep your voice down. They can hear us.", -1},
        {"warm, amused", "Well, that was certainly one way to make an entrance.", -1},
        {"tired", "Yes.", -1},
        {"sarcastic", "Oh, wonderful. Another meeting that could have been an email.", -1},
        {"fearful", "Did you hear that? Something is moving downstairs.", -1},
        {"determined", "We leave at dawn, and we do not stop until we reach the river.", -1},
        {"gentle", "It's all right. Take your time, there's no hurry at all.", -1},
        {"calm, neutral",
         "The harbour town wakes slowly. Fishing boats drift back with the tide, gulls circle the market square, "
         "and the baker props open his door so the smell of fresh bread can wander down the narrow streets toward "
         "the sea.",
         42},
    };
    std::string out;
    if (format == "csv") {
        out = "emotion,text,seed\n";
        auto q = [](const std::string& s) {
            std::string r = "\"";
            for (char c : s) r += c == '"' ? std::string("\"\"") : std::string(1, c);
            return r + "\"";
        };
        for (auto& r : rows) out += fmt::format("{},{},{}\n", q(r.emotion), q(r.text), r.seed >= 0 ? std::to_string(r.seed) : "");
        return out;
    }
    if (format != "jsonl") throw InputError(fmt::format("unknown rows format '{}' (expected jsonl or csv)", format));
    for (auto& r : rows) {
        nlohmann::ordered_json j;
        j["emotion"] = r.emotion;
        j["text"] = r.text;
        if (r.seed >= 0) j["seed"] = r.seed;
        out += j.dump() + "\n";
    }
    return out;
}

nlohmann::json DatasetBuildReport::to_json() const {
    nlohmann::json j;
    j["out"] = out;
    j["work_dir"] = work_dir;
    j["done"] = done;
    j["failed"] = failed;
    j["reused"] = reused;
    j["generated"] = generated;
    j["suspect_kept"] = suspect_kept;
    j["ref_row"] = ref_row;
    j["ref_note"] = ref_note;
    j["total_seconds"] = total_seconds;
    j["written"] = written;
    auto& rs = j["rows"] = nlohmann::json::array();
    for (auto& r : rows) {
        nlohmann::json o{{"index", r.row.index},   {"line", r.row.line},       {"emotion", r.row.emotion},
                         {"text", r.row.text},     {"instruct", r.instruct},   {"status", r.status},
                         {"reused", r.reused},     {"suspect", r.suspect},     {"seeds_tried", r.seeds_tried},
                         {"reason", r.reason},     {"seconds", r.seconds},     {"frames", r.frames},
                         {"hit_cap", r.hit_cap},   {"audio_filepath", r.audio_filepath}};
        o["seed_used"] = r.status == "done" ? nlohmann::json(r.seed_used) : nlohmann::json(nullptr);
        o["seed_requested"] = r.row.seed ? nlohmann::json(*r.row.seed) : nlohmann::json(nullptr);
        rs.push_back(std::move(o));
    }
    return j;
}

std::string judge_take(double secs, bool hit_cap, int64_t frame_cap, bool silent, const std::string& text,
                       const DatasetBuildOptions& opt) {
    double weight = text_weight(text);
    if (secs <= 0) return "no audio";
    if (hit_cap) return fmt::format("hit the frame cap ({} frames) without ending", frame_cap);
    if (secs > opt.max_seconds) return fmt::format("{:.1f} s is over the {:g} s training limit", secs, opt.max_seconds);
    if (silent) return "silent";
    if (secs < weight / opt.max_chars_per_second)
        return fmt::format("too short for its text ({:.2f} s for {:g} characters)", secs, weight);
    if (secs > weight / opt.min_chars_per_second + 2.0)
        return fmt::format("too long for its text ({:.2f} s for {:g} characters)", secs, weight);
    return "";
}

// ---------------------------------------------------------------------------------------------------------------
// build_dataset, step by step: check_options, check_ref_index → dataset_folders → load_state → resume_rows (rows an earlier run
// kept) → generate_rounds (the rest, batched) → choose_reference → write_dataset.

namespace {

// The options and rows, checked before any model work. Returns the trimmed voice description.
std::string check_options(const Synthesizer& synth, const DatasetBuildOptions& opt) {
    if (synth.config().tts_model_type != "voice_design")
        throw InputError(fmt::format("{}: a '{}' checkpoint; dataset build needs a VoiceDesign model "
                                     "(e.g. Qwen3-TTS-12Hz-1.7B-VoiceDesign)",
                                     synth.model_dir(), synth.config().tts_model_type));
    std::string description = io::trim(opt.description);
    if (description.empty()) throw InputError("--description: the voice description is empty");
    if (!io::valid_utf8(description)) throw InputError("--description: not valid UTF-8");
    if (opt.out.empty()) throw InputError("no dataset folder (NAME) given");
    if (opt.max_attempts < 1) throw InputError(fmt::format("--max-attempts must be at least 1, got {}", opt.max_attempts));
    if (!(opt.max_seconds > 0)) throw InputError("--max-seconds must be positive");
    if (!(opt.max_chars_per_second > 0) || !(opt.min_chars_per_second > 0) ||
        opt.min_chars_per_second >= opt.max_chars_per_second)
        throw InputError("the plausible speaking-rate range must satisfy 0 < min < max chars per second");
    return description;
}

void check_ref_index(const DatasetBuildOptions& opt, const std::vector<BuildRow>& rows) {
    if (opt.ref_index && (*opt.ref_index < 0 || *opt.ref_index >= int(rows.size())))
        throw InputError(fmt::format("--ref-index {} is out of range: the rows file has {} rows (0..{})", *opt.ref_index,
                                     rows.size(), rows.size() - 1));
}

struct Folders {
    fs::path out;   // the dataset, replaced as a whole at the end
    fs::path work;  // NAME.build beside it: every take and the restart state
};

Folders dataset_folders(const DatasetBuildOptions& opt) {
    fs::path out = fs::path(opt.out).lexically_normal();
    if (out.filename().empty()) out = out.parent_path();
    std::error_code ec;
    if (fs::exists(out, ec)) {
        if (!fs::is_directory(out, ec)) throw InputError(fmt::format("{} exists and is not a folder", out.string()));
        if (!fs::is_empty(out, ec) && !fs::exists(out / "build.json", ec) && !opt.force)
            throw InputError(fmt::format("{} exists, is not empty and was not made by `dataset build`; pass --force "
                                         "to replace it",
                                         out.string()));
    }
    fs::path work = out;
    work += ".build";
    fs::create_directories(work, ec);
    if (ec) throw Error(fmt::format("{}: cannot create the work folder: {}", work.string(), ec.message()));
    return {out, work};
}

// The restart state, work/state.json: {"rows": {key: entry}, ...}. Unreadable or absent (or --restart): empty.
struct BuildState {
    fs::path path;
    nlohmann::json j;
    void save() const { io::write_file_atomic(path, j.dump(2) + "\n"); }
};

BuildState load_state(const fs::path& work, bool restart) {
    BuildState st{work / "state.json", nlohmann::json::object()};
    std::error_code ec;
    if (!restart && fs::exists(st.path, ec)) {
        try {
            st.j = nlohmann::json::parse(io::read_file(st.path));
            if (!st.j.is_object() || !st.j.contains("rows") || !st.j["rows"].is_object()) st.j = nlohmann::json::object();
        } catch (const nlohmann::json::exception&) {
            st.j = nlohmann::json::object();  // unreadable: start over (the wavs are regenerated)
        }
    }
    if (!st.j.contains("rows")) st.j["rows"] = nlohmann::json::object();
    return st;
}

// The model's part of the row keys: its folder and weight file size (cheap; a different checkpoint in the same
// folder almost always has another size).
std::string model_identity(const Synthesizer& synth) {
    std::string id = synth.model_dir();
    std::error_code ec;
    if (auto w = fs::path(synth.model_dir()) / "model.safetensors"; fs::exists(w, ec))
        id += fmt::format("#{}", fs::file_size(w, ec));
    return id;
}

// A row's identity across runs: everything its audio depends on.
std::string row_key(const std::string& model_id, const DatasetBuildOptions& opt, const BuildRow& row,
                    const std::string& instruct) {
    std::optional<uint64_t> requested = row.seed ? row.seed : opt.seed;
    nlohmann::json k{{"model", model_id},
                     {"instruct", instruct},
                     {"text", row.text},
                     {"language", opt.language},
                     {"max_frames", opt.max_frames},
                     {"cap", {opt.cap_rule.frames_per_token, opt.cap_rule.min_frames}},
                     {"seed", requested ? nlohmann::json(*requested) : nlohmann::json("random")}};
    return io::hash_string(k.dump());
}

// A row still to generate.
struct Pending {
    size_t slot = 0;              // index in rows, keys and rep.rows
    std::vector<uint64_t> tried;  // seeds tried, also by earlier runs (a failed row resumes after its last)
    uint64_t seed = 0;            // the next seed to try
    int attempts = 0;             // this run's
    std::vector<float> last_audio;
    bool have_audio = false, ok = false;
};

// Counts a finished row into the report and tells the caller.
struct RowTally {
    DatasetBuildReport& rep;
    const BuildRowCallback& on_row;
    int handled = 0;

    void finished(size_t slot) {
        const BuildRowResult& res = rep.rows[slot];
        if (res.status == "done") {
            ++rep.done;
            if (res.reused) ++rep.reused;
            if (res.suspect) ++rep.suspect_kept;
        } else {
            ++rep.failed;
        }
        ++handled;
        if (on_row) on_row(res, handled, int(rep.rows.size()));
    }
};

// Fills rep.rows: a row kept by an earlier run (state says done, its take is on disk) is reused and finished now;
// the others are returned, each with its next seed.
std::vector<Pending> resume_rows(const std::vector<BuildRow>& rows, const std::vector<std::string>& keys,
                                 const std::string& description, const DatasetBuildOptions& opt,
                                 const BuildState& state, const fs::path& work, DatasetBuildReport& rep,
                                 RowTally& tally) {
    std::vector<Pending> pending;
    std::error_code ec;
    for (size_t i = 0; i < rows.size(); ++i) {
        BuildRowResult& res = rep.rows[i];
        res.row = rows[i];
        res.instruct = build_instruct(description, rows[i].emotion);
        const nlohmann::json* st = state.j["rows"].contains(keys[i]) ? &state.j["rows"][keys[i]] : nullptr;
        if (st && st->is_object() && st->value("status", "") == "done" && fs::exists(work / (keys[i] + ".wav"), ec)) {
            res.status = "done";
            res.reused = true;
            res.suspect = st->value("suspect", false);
            res.seed_used = st->value("seed_used", uint64_t(0));
            res.seeds_tried = st->value("seeds_tried", std::vector<uint64_t>{});
            res.reason = st->value("reason", "");
            res.seconds = st->value("seconds", 0.0);
            res.frames = st->value("frames", int64_t(0));
            res.hit_cap = st->value("hit_cap", false);
            tally.finished(i);
            continue;
        }
        Pending p;
        p.slot = i;
        if (st && st->is_object()) p.tried = st->value("seeds_tried", std::vector<uint64_t>{});
        std::optional<uint64_t> requested = rows[i].seed ? rows[i].seed : opt.seed;
        p.seed = !p.tried.empty() ? p.tried.back() + 1 : requested ? *requested : random_seed();
        pending.push_back(std::move(p));
    }
    return pending;
}

// A finished row: its kept take (if any) into the work folder, its entry into the state (saved at once, so an
// interrupted run resumes after it).
void save_row(Pending& p, const DatasetBuildOptions& opt, const std::vector<BuildRow>& rows,
              const std::vector<std::string>& keys, const fs::path& work, BuildState& state, DatasetBuildReport& rep,
              RowTally& tally) {
    BuildRowResult& res = rep.rows[p.slot];
    if (p.ok || (p.have_audio && opt.accept_suspect)) {
        io::Audio a;
        a.samples = std::move(p.last_audio);
        io::write_audio((work / (keys[p.slot] + ".wav")).string(), a, io::AudioFormat::WavPcm16);
        res.status = "done";
        res.suspect = !p.ok;
    } else {
        res.status = "failed";
    }
    // seeds_tried in the state spans runs; the report shows this run's attempts
    state.j["rows"][keys[p.slot]] = nlohmann::json{
        {"status", res.status}, {"suspect", res.suspect}, {"seed_used", res.seed_used}, {"seeds_tried", p.tried},
        {"reason", res.reason}, {"seconds", res.seconds}, {"frames", res.frames},       {"hit_cap", res.hit_cap},
        {"text", rows[p.slot].text}, {"instruct", res.instruct}};
    state.save();
    tally.finished(p.slot);
}

// Rows are generated `batch` at a time (Synthesizer::speak_batch), in rounds: each round takes the next seed of
// every row not yet finished, so a row's takes are the ones it gets alone, and rows that need another attempt
// simply come back in the next round. A row is finished as soon as a take is kept or it is out of attempts.
void generate_rounds(Synthesizer& synth, const DatasetBuildOptions& opt, const std::vector<BuildRow>& rows,
                     const std::vector<std::string>& keys, std::vector<Pending> pending, const fs::path& work,
                     BuildState& state, DatasetBuildReport& rep, RowTally& tally) {
    while (!pending.empty()) {
        std::vector<Utterance> us;
        for (auto& p : pending) {
            Utterance u;
            u.text = rows[p.slot].text;
            u.instruct = rep.rows[p.slot].instruct;
            u.language = opt.language;
            u.seed = p.seed;
            u.max_frames = opt.max_frames;
            u.cap_rule = opt.cap_rule;
            us.push_back(std::move(u));
            p.tried.push_back(p.seed);
            rep.rows[p.slot].seeds_tried.push_back(p.seed);
            ++p.attempts;
        }
        std::vector<bool> done_now(pending.size(), false);
        synth.speak_batch(us, opt.batch, [&](size_t k, BatchLineResult&& line) {
            Pending& p = pending[k];
            BuildRowResult& res = rep.rows[p.slot];
            const uint64_t seed = p.seed++;
            if (!line.error.empty()) {
                res.reason = line.error;
                // the same input fails the same way with any seed
                if (line.bad_input || p.attempts >= opt.max_attempts) done_now[k] = true;
                return;
            }
            ++rep.generated;
            io::Audio a;
            a.samples = std::move(line.result.audio);
            const double secs = a.seconds();
            const std::string why = judge_take(secs, line.result.hit_cap, line.result.frame_cap,
                                               io::audio_stats(a).silent(), rows[p.slot].text, opt);
            res.reason = why;
            res.seconds = secs;
            res.frames = line.result.frames;
            res.hit_cap = line.result.hit_cap;
            res.seed_used = seed;
            p.last_audio = std::move(a.samples);
            p.have_audio = true;
            p.ok = why.empty();
            if (p.ok || p.attempts >= opt.max_attempts) done_now[k] = true;
        });
        std::vector<Pending> next;
        for (size_t k = 0; k < pending.size(); ++k) {
            if (done_now[k])
                save_row(pending[k], opt, rows, keys, work, state, rep, tally);
            else
                next.push_back(std::move(pending[k]));
        }
        pending = std::move(next);
    }
    state.save();
}

// The reference row (ref.wav): --ref-index when it was generated, else the longest neutral row kept.
void choose_reference(const DatasetBuildOptions& opt, const std::vector<BuildRow>& rows, const fs::path& work,
                      DatasetBuildReport& rep) {
    std::vector<int> done_rows;
    for (auto& r : rep.rows)
        if (r.status == "done") done_rows.push_back(r.row.index);
    if (done_rows.empty())
        throw Error(fmt::format("no row could be generated ({} failed); the state is kept in {}", rep.failed,
                                work.string()));
    if (opt.ref_index && rep.rows[size_t(*opt.ref_index)].status == "done") {
        rep.ref_row = *opt.ref_index;
        rep.ref_note = fmt::format("row {} (--ref-index)", rep.ref_row);
        return;
    }
    rep.ref_row = default_ref_row(rows, done_rows);
    if (opt.ref_index)
        rep.ref_note =
            fmt::format("--ref-index {} failed to generate; using row {} instead", *opt.ref_index, rep.ref_row);
    else
        rep.ref_note = fmt::format("row {}: the longest {}row", rep.ref_row,
                                   is_neutral_emotion(rows[size_t(rep.ref_row)].emotion) ? "neutral " : "");
}

// The dataset folder in Alexandria's layout (metadata.jsonl, sample_NNN.wav, ref.wav, ref_text.txt) plus
// build.json, replaced as a whole.
void write_dataset(const Folders& dirs, const Synthesizer& synth, const DatasetBuildOptions& opt,
                   const std::string& description, const std::vector<std::string>& keys, DatasetBuildReport& rep) {
    const int width = 3;  // sample_{i:03d}, as Alexandria (wider indices simply grow)
    for (auto& r : rep.rows)
        if (r.status == "done") {
            r.audio_filepath = fmt::format("sample_{:0{}d}.wav", r.row.index, width);
            rep.total_seconds += r.seconds;
        }
    io::replace_directory_atomic(dirs.out, [&](const fs::path& tmp) {
        std::string meta;
        for (size_t i = 0; i < rep.rows.size(); ++i) {
            const auto& r = rep.rows[i];
            if (r.status != "done") continue;
            fs::copy_file(dirs.work / (keys[i] + ".wav"), tmp / r.audio_filepath);
            nlohmann::ordered_json j;
            j["audio_filepath"] = r.audio_filepath;
            j["text"] = r.row.text;
            j["ref_audio"] = "ref.wav";
            meta += j.dump() + "\n";
        }
        auto& ref = rep.rows[size_t(rep.ref_row)];
        fs::copy_file(tmp / ref.audio_filepath, tmp / "ref.wav");
        io::write_file_atomic(tmp / "ref_text.txt", ref.row.text);
        io::write_file_atomic(tmp / "metadata.jsonl", meta);
        rep.written = true;
        auto j = rep.to_json();
        j["description"] = description;
        j["model"] = synth.model_dir();
        j["rows_file"] = opt.rows;
        j["global_seed"] = opt.seed ? nlohmann::json(*opt.seed) : nlohmann::json(nullptr);
        j["language"] = opt.language.empty() ? "auto" : opt.language;
        io::write_file_atomic(tmp / "build.json", j.dump(2) + "\n");
    });
}

}  // namespace

DatasetBuildReport build_dataset(Synthesizer& synth, const DatasetBuildOptions& opt, const BuildRowCallback& on_row) {
    const std::string description = check_options(synth, opt);
    const std::vector<BuildRow> rows = read_build_rows(opt.rows);
    check_ref_index(opt, rows);
    const Folders dirs = dataset_folders(opt);

    BuildState state = load_state(dirs.work, opt.restart);
    state.j["description"] = description;
    state.j["model"] = synth.model_dir();

    DatasetBuildReport rep;
    rep.out = dirs.out.string();
    rep.work_dir = dirs.work.string();
    rep.rows.resize(rows.size());
    std::vector<std::string> keys;
    const std::string model_id = model_identity(synth);
    for (auto& row : rows) keys.push_back(row_key(model_id, opt, row, build_instruct(description, row.emotion)));

    RowTally tally{rep, on_row};
    auto pending = resume_rows(rows, keys, description, opt, state, dirs.work, rep, tally);
    generate_rounds(synth, opt, rows, keys, std::move(pending), dirs.work, state, rep, tally);
    choose_reference(opt, rows, dirs.work, rep);
    write_dataset(dirs, synth, opt, description, keys, rep);
    return rep;
}

}  // namespace alexandria::synth
