#include "alexandria/dataset/split.h"

#include <cmath>
#include <fstream>
#include <set>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"

namespace alexandria::dataset {

static uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

uint32_t split_bucket_of_hash(const std::string& fnv_hex16) {
    uint64_t h = std::stoull(fnv_hex16, nullptr, 16);
    return uint32_t(fmix64(h) % 10000u);
}

uint32_t split_bucket(const fs::path& audio_file) { return split_bucket_of_hash(io::hash_file(audio_file)); }

nlohmann::json SplitResult::to_json() const {
    nlohmann::json j;
    j["rule"] = "val iff fmix64(fnv1a64(audio file bytes)) mod 10000 < threshold; reference clips always train";
    j["val_fraction"] = val_fraction;
    j["threshold"] = threshold;
    j["train_count"] = train.size();
    j["val_count"] = val.size();
    j["ref_kept_in_train"] = ref_kept_in_train;
    j["fallback"] = fallback;
    j["missing"] = missing;
    j["metadata_hash"] = metadata_hash;
    auto& b = j["buckets"] = nlohmann::json::object();
    for (auto* side : {&train, &val})
        for (auto& l : *side) b[l.audio_filepath] = l.bucket;
    return j;
}

static void check_fraction(double v) {
    if (!(v >= 0.0 && v <= 1.0))
        throw InputError(fmt::format("--val must be a fraction between 0 and 1 (e.g. 0.1 for 10%), got {}", v));
}

SplitResult compute_split(const fs::path& dir, double val_fraction) {
    check_fraction(val_fraction);
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw InputError(fmt::format("{}: not a dataset folder", dir.string()));
    fs::path meta = dir / "metadata.jsonl";
    if (!fs::is_regular_file(meta, ec)) throw InputError(fmt::format("{}: no metadata.jsonl", dir.string()));

    SplitResult r;
    r.val_fraction = val_fraction;
    r.threshold = uint32_t(std::llround(val_fraction * 10000.0));
    r.metadata_hash = io::hash_file(meta);

    // Raw lines, so the split files repeat metadata.jsonl byte for byte.
    std::vector<std::string> raw_lines;
    {
        std::ifstream in(meta, std::ios::binary);
        std::string l;
        while (std::getline(in, l)) {
            if (!l.empty() && l.back() == '\r') l.pop_back();
            if (raw_lines.empty() && l.size() >= 3 && l.compare(0, 3, "\xEF\xBB\xBF") == 0) l.erase(0, 3);
            raw_lines.push_back(l);
        }
    }

    std::string ref_hash;
    std::set<fs::path> ref_paths;
    if (fs::is_regular_file(dir / "ref.wav", ec)) {
        ref_hash = io::hash_file(dir / "ref.wav");
        ref_paths.insert(io::resolve_inside(dir, "ref.wav", (dir / "ref.wav").string()));
    }
    std::vector<SplitLine> all;
    std::vector<bool> is_ref;
    io::read_jsonl(meta.string(), [&](int line, const nlohmann::json& obj) {
        std::string where = fmt::format("{}:{}", meta.string(), line);
        SplitLine s;
        s.line = line;
        const char* field = obj.contains("audio_filepath") ? "audio_filepath" : "audio";
        if (!obj.contains(field)) throw InputError(where + ": missing field 'audio_filepath' (or 'audio')");
        s.audio_filepath = io::require_string(obj, field, where);
        s.text = io::require_string(obj, "text", where);
        if (auto ra = io::optional_string(obj, "ref_audio", where)) {
            s.ref_audio = *ra;
            ref_paths.insert(io::resolve_inside(dir, *ra, where + ": field 'ref_audio'"));
        }
        s.raw = raw_lines.at(size_t(line - 1));
        fs::path audio = io::resolve_inside(dir, s.audio_filepath, where + ": field '" + field + "'");
        // A missing clip is unusable (check skips it); it has no content to place, so it joins neither side.
        // A clip listed twice needs nothing special: equal bytes, equal bucket, same side.
        if (!fs::is_regular_file(audio, ec)) {
            r.missing.push_back(s.audio_filepath);
            return;
        }
        std::string h = io::hash_file(audio);
        s.bucket = split_bucket_of_hash(h);
        all.push_back(s);
        is_ref.push_back(h == ref_hash);
    });
    // ref_audio may appear on any line, so the path comparison waits until every line is read
    for (size_t i = 0; i < all.size(); ++i) {
        if (!is_ref[i]) {
            fs::path audio = io::resolve_inside(dir, all[i].audio_filepath, meta.string());
            is_ref[i] = ref_paths.count(audio) > 0;
        }
    }

    int best = -1;  // smallest bucket among non-reference clips, for the minimum-one rule
    size_t non_ref = 0;
    for (size_t i = 0; i < all.size(); ++i) {
        if (is_ref[i]) {
            if (all[i].bucket < r.threshold) r.ref_kept_in_train.push_back(all[i].audio_filepath);
            continue;
        }
        ++non_ref;
        if (best < 0 || all[i].bucket < all[size_t(best)].bucket) best = int(i);
    }
    bool any_val = false;
    for (size_t i = 0; i < all.size(); ++i) any_val |= !is_ref[i] && all[i].bucket < r.threshold;
    if (!any_val && r.threshold > 0 && non_ref >= 2) r.fallback = all[size_t(best)].audio_filepath;
    for (size_t i = 0; i < all.size(); ++i) {
        bool val = !is_ref[i] && (all[i].bucket < r.threshold || (!r.fallback.empty() && int(i) == best));
        (val ? r.val : r.train).push_back(all[i]);
    }
    return r;
}

static std::string lines_of(const std::vector<SplitLine>& v) {
    std::string s;
    for (auto& l : v) s += l.raw + "\n";
    return s;
}

SplitResult split_dataset(const fs::path& dir, double val_fraction) {
    SplitResult r = compute_split(dir, val_fraction);
    std::string readme =
        "This folder is written by `alexandria dataset split`; do not edit it by hand.\n"
        "train.jsonl and val.jsonl hold the lines of ../metadata.jsonl (paths relative to the dataset folder).\n"
        "A clip is in val when fmix64(fnv1a64(its audio bytes)) mod 10000 < threshold (see split.json), so adding\n"
        "clips never moves the old ones. The reference clip is always in train.\n"
        "After changing metadata.jsonl, run `alexandria dataset split` again: a stale split is refused.\n";
    io::replace_directory_atomic(dir / "splits", [&](const fs::path& tmp) {
        io::write_file_atomic(tmp / "train.jsonl", lines_of(r.train));
        io::write_file_atomic(tmp / "val.jsonl", lines_of(r.val));
        io::write_file_atomic(tmp / "split.json", r.to_json().dump(2) + "\n");
        io::write_file_atomic(tmp / "README", readme);
    });
    return r;
}

fs::path split_file(const fs::path& dir, const std::string& which) {
    if (which != "train" && which != "val")
        throw InputError(fmt::format("unknown split '{}' (expected train or val)", which));
    return dir / "splits" / (which + ".jsonl");
}

std::optional<std::vector<SplitLine>> load_split(const fs::path& dir, const std::string& which) {
    fs::path file = split_file(dir, which);
    std::error_code ec;
    if (!fs::is_directory(dir / "splits", ec)) return std::nullopt;
    fs::path info = dir / "splits" / "split.json";
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(io::read_file(info));
    } catch (const nlohmann::json::exception& e) {
        throw InputError(fmt::format("{}: unreadable ({}); run `alexandria dataset split {}` again", info.string(),
                                     e.what(), dir.string()));
    }
    std::string recorded = j.value("metadata_hash", "");
    if (recorded != io::hash_file(dir / "metadata.jsonl"))
        throw InputError(fmt::format("{}: the split was made from an older metadata.jsonl; run `alexandria dataset "
                                     "split {}` again",
                                     (dir / "splits").string(), dir.string()));
    auto buckets = j.value("buckets", nlohmann::json::object());
    std::vector<SplitLine> out;
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: missing; run `alexandria dataset split {}` again", file.string(),
                                          dir.string()));
    std::string raw;
    int lineno = 0;
    while (std::getline(in, raw)) {
        ++lineno;
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        if (raw.find_first_not_of(" \t") == std::string::npos) continue;
        std::string where = fmt::format("{}:{}", file.string(), lineno);
        nlohmann::json obj;
        try {
            obj = nlohmann::json::parse(raw);
        } catch (const nlohmann::json::exception&) {
            throw InputError(where + ": invalid JSON");
        }
        if (!obj.is_object()) throw InputError(where + ": expected a JSON object");
        SplitLine s;
        s.line = lineno;
        s.raw = raw;
        const char* field = obj.contains("audio_filepath") ? "audio_filepath" : "audio";
        if (!obj.contains(field)) throw InputError(where + ": missing field 'audio_filepath' (or 'audio')");
        s.audio_filepath = io::require_string(obj, field, where);
        s.text = io::require_string(obj, "text", where);
        s.ref_audio = io::optional_string(obj, "ref_audio", where).value_or("");
        if (buckets.contains(s.audio_filepath) && buckets[s.audio_filepath].is_number_unsigned())
            s.bucket = buckets[s.audio_filepath].get<uint32_t>();
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace alexandria::dataset
