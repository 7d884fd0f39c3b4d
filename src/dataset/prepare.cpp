#include "alexandria/dataset/prepare.h"

#include <sys/stat.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/config.h"
#include "alexandria/model/speaker_encoder.h"

namespace alexandria::dataset {

namespace {

using nlohmann::json;

std::string dtype_key(torch::Dtype d) {
    switch (d) {
        case torch::kFloat32: return "f32";
        case torch::kBFloat16: return "bf16";
        case torch::kFloat16: return "f16";
        default: return "other";
    }
}

// Python's repr of a float for the SKIP line ("30.0", "12.5"), as train_lora.py prints max_audio_seconds.
std::string py_float(double x) {
    std::string s = fmt::format("{}", x);
    if (s.find_first_of(".e") == std::string::npos && s.find("inf") == std::string::npos &&
        s.find("nan") == std::string::npos)
        s += ".0";
    return s;
}

// Size and modification time let an unchanged file skip re-hashing.
struct FileStamp {
    int64_t size = -1;
    int64_t mtime_ns = -1;
};
FileStamp stamp(const fs::path& p) {
    struct stat st {};
    FileStamp s;
    if (::stat(p.c_str(), &st) == 0) {
        s.size = st.st_size;
        s.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    }
    return s;
}

class HashCache {
public:
    explicit HashCache(fs::path file) : file_(std::move(file)) {
        std::error_code ec;
        if (!fs::exists(file_, ec)) return;
        try {
            j_ = json::parse(io::read_file(file_));
            if (!j_.is_object()) j_ = json::object();
        } catch (const std::exception&) {
            j_ = json::object();  // a damaged cache index only costs re-hashing
        }
    }
    std::string hash(const fs::path& p) {
        std::string key = p.string();
        FileStamp s = stamp(p);
        auto it = j_.find(key);
        if (it != j_.end() && it->is_object() && it->value("size", int64_t(-2)) == s.size &&
            it->value("mtime_ns", int64_t(-2)) == s.mtime_ns && it->contains("hash") && (*it)["hash"].is_string())
            return (*it)["hash"].get<std::string>();
        std::string h = io::hash_file(p);
        j_[key] = json{{"size", s.size}, {"mtime_ns", s.mtime_ns}, {"hash", h}};
        dirty_ = true;
        return h;
    }
    void save() {
        if (!dirty_) return;
        fs::create_directories(file_.parent_path());
        io::write_file_atomic(file_, j_.dump(1) + "\n");
        dirty_ = false;
    }

private:
    fs::path file_;
    json j_ = json::object();
    bool dirty_ = false;
};

// Loads only the speaker_encoder.* tensors of a Base checkpoint (prepare needs nothing else).
model::SpeakerEncoder load_speaker_encoder(const std::string& model_dir, torch::Device device, torch::Dtype dtype) {
    auto cfg = model::ModelConfig::load(model_dir);
    if (!cfg.is_base() || !cfg.speaker_encoder)
        throw InputError(fmt::format("{}: not a Base model (tts_model_type '{}'): it has no speaker encoder, so it "
                                     "cannot be trained on a voice",
                                     model_dir, cfg.tts_model_type));
    model::SpeakerEncoder enc(*cfg.speaker_encoder);
    io::SafetensorsFile file((fs::path(model_dir) / "model.safetensors").string());
    torch::NoGradGuard ng;
    std::vector<std::string> problems;
    for (auto& p : enc->named_parameters()) {
        std::string key = "speaker_encoder." + p.key();
        if (!file.contains(key)) {
            problems.push_back("missing " + key);
            continue;
        }
        auto src = file.view(key);
        if (src.sizes() != p.value().sizes()) {
            problems.push_back("mis-shaped " + key);
            continue;
        }
        p.value().copy_(src);
    }
    if (!problems.empty())
        throw InputError(fmt::format("{}/model.safetensors: speaker encoder tensors do not match: {}", model_dir,
                                     problems.front()));
    enc->to(device, dtype);
    enc->eval();
    return enc;
}

}  // namespace

std::string codec_cache_key(const codec::Codec& codec, torch::Dtype dtype) {
    return io::hash_string(codec.identity() + "/" + dtype_key(dtype));
}

std::string speaker_cache_key(const std::string& model_dir) {
    std::string acc = io::read_file(fs::path(model_dir) / "config.json");
    io::SafetensorsFile file((fs::path(model_dir) / "model.safetensors").string());
    for (const auto& t : file.tensors()) {
        if (t.name.rfind("speaker_encoder.", 0) != 0) continue;
        acc += t.name;
        acc += io::dtype_name(t.dtype);
        for (auto d : t.shape) acc += "," + std::to_string(d);
        acc.append(reinterpret_cast<const char*>(file.data(t)), t.end - t.begin);
    }
    return io::hash_string(acc);
}

double PrepareResult::usable_seconds() const {
    double s = 0;
    for (const auto& c : clips) s += c.seconds;
    return s;
}

torch::Tensor PrepareResult::load_codes(const PreparedClip& clip) const {
    io::SafetensorsFile f(clip.codes_file.string());
    auto t = f.view("codes").to(torch::kInt64).clone();
    if (t.dim() != 2 || t.size(1) != codec::kNumCodebooks || t.size(0) < 1)
        throw InputError(fmt::format("{}: codes must be [frames, {}]", clip.codes_file.string(), codec::kNumCodebooks));
    return t;
}

torch::Tensor PrepareResult::load_reference_codes() const {
    if (reference_codes_file.empty()) throw Error("the reference codes were not prepared (PrepareOptions::reference_codes)");
    io::SafetensorsFile f(reference_codes_file.string());
    auto t = f.view("codes").to(torch::kInt64).clone();
    if (t.dim() != 2 || t.size(1) != codec::kNumCodebooks || t.size(0) < 1)
        throw InputError(fmt::format("{}: codes must be [frames, {}]", reference_codes_file.string(),
                                     codec::kNumCodebooks));
    return t;
}

torch::Tensor PrepareResult::speaker_embedding() const {
    io::SafetensorsFile f(speaker_file.string());
    return f.view("speaker_embedding").to(torch::kFloat32).clone();
}

nlohmann::json PrepareResult::to_json() const {
    json clips_j = json::array();
    for (const auto& c : clips)
        clips_j.push_back({{"line", c.line}, {"audio", c.audio}, {"hash", c.hash}, {"seconds", c.seconds},
                           {"frames", c.frames}, {"encoded_now", c.encoded_now}});
    json skipped_j = json::array();
    for (const auto& s : skipped)
        skipped_j.push_back({{"line", s.line}, {"audio", s.audio}, {"code", s.code}, {"reason", s.reason}});
    return json{{"dir", dir.string()},
                {"entries", entries},
                {"prepared", clips.size()},
                {"skipped", skipped.size()},
                {"encoded", encoded},
                {"reused", reused},
                {"usable_seconds", usable_seconds()},
                {"codec_key", codec_key},
                {"speaker_key", speaker_key},
                {"reference", reference.string()},
                {"reference_source", reference_source},
                {"reference_hash", reference_hash},
                {"speaker_computed_now", speaker_computed_now},
                {"reference_frames", reference_frames},
                {"verdict_cached", verdict_cached},
                {"dataset_hash", dataset_hash},
                {"clips", clips_j},
                {"skipped_clips", skipped_j}};
}

namespace {

// ---------------------------------------------------------------------------------------------------------------
// prepare, step by step: check_cached (the usable-clip verdict, from the cache when nothing changed) →
// choose_reference → resolve_codec_key → encode_clips → speaker_embedding_of → reference_codes_of → dataset_hash.

// What prepare needs from check(): which clips are usable, why the others are not, how long they are.
struct VerdictClip {
    int line = 0;
    std::string audio;
    fs::path path;
    std::string text;
    bool usable = false;
    std::string skip_code, skip_reason;
    double seconds = 0;
};

struct Verdict {
    int entries = 0;
    bool trainable = false;
    std::string first_error;  // when not trainable
    std::vector<VerdictClip> clips;
};

// Bumped whenever check.h's rule changes, so a verdict cached by an older rule is not reused.
constexpr int kVerdictVersion = 1;
constexpr const char* kVerdictFile = "check.json";

Verdict verdict_from_check(const CheckReport& report) {
    Verdict v;
    v.entries = report.entries;
    v.trainable = report.trainable();
    for (const auto& p : report.problems)
        if (p.severity == Severity::Error) {
            v.first_error = p.message;
            break;
        }
    for (const auto& c : report.clips)
        v.clips.push_back({c.line, c.audio, c.path, c.text, c.usable, c.skip_code, c.skip_reason, c.stats.seconds});
    return v;
}

json verdict_json(const Verdict& v) {
    json clips = json::array();
    for (const auto& c : v.clips)
        clips.push_back({{"line", c.line}, {"audio", c.audio}, {"path", c.path.string()}, {"text", c.text},
                         {"usable", c.usable}, {"skip_code", c.skip_code}, {"skip_reason", c.skip_reason},
                         {"seconds", c.seconds}});
    return json{{"entries", v.entries}, {"trainable", v.trainable}, {"first_error", v.first_error}, {"clips", clips}};
}

Verdict verdict_from_json(const json& j) {
    Verdict v;
    v.entries = j.at("entries");
    v.trainable = j.at("trainable");
    v.first_error = j.at("first_error");
    for (const auto& c : j.at("clips"))
        v.clips.push_back({c.at("line").get<int>(), c.at("audio").get<std::string>(),
                           fs::path(c.at("path").get<std::string>()), c.at("text").get<std::string>(),
                           c.at("usable").get<bool>(), c.at("skip_code").get<std::string>(),
                           c.at("skip_reason").get<std::string>(), c.at("seconds").get<double>()});
    return v;
}

// One file as the verdict sees it: its content hash when it is a regular file (stat-stamped, so an unchanged
// file is not read), otherwise what it is instead. Pipes and devices are never opened.
std::string file_identity(const fs::path& p, HashCache& hashes) {
    if (p.empty()) return "-";
    std::error_code ec;
    auto st = fs::status(p, ec);
    if (!fs::exists(st)) return "missing";
    if (fs::is_directory(st)) return "folder";
    if (!fs::is_regular_file(st)) return "special";
    return hashes.hash(p);
}

// The verdict's key: everything check() reads (the metadata, ref_text.txt, every named audio file's content and
// the reference's), the clip length limit and the rule's version.
std::string verdict_key(const Dataset& ds, const PrepareOptions& opt, HashCache& hashes) {
    std::string acc = fmt::format("v{}|{}|", kVerdictVersion, py_float(opt.max_seconds));
    std::error_code ec;
    acc += fs::exists(ds.metadata_path, ec) ? io::read_file(ds.metadata_path) : std::string("<no metadata>");
    acc += "|ref_text:" + (ds.ref_text ? *ds.ref_text : std::string("<none>"));
    for (const auto& e : ds.entries) acc += "|" + e.audio_path.string() + "=" + file_identity(e.audio_path, hashes);
    std::string source;
    auto ref = ds.reference_audio(&source);
    acc += "|ref:" + source + ":" + (ref ? ref->string() + "=" + file_identity(*ref, hashes) : std::string("-"));
    return io::hash_string(acc);
}

// check()'s verdict on the folder; decoded only when the folder changed since the verdict was cached.
Verdict check_cached(const Dataset& ds, const PrepareOptions& opt, const fs::path& cache, HashCache& hashes,
                     bool& from_cache) {
    const fs::path file = cache / kVerdictFile;
    const std::string key = verdict_key(ds, opt, hashes);
    from_cache = false;
    std::error_code ec;
    if (fs::exists(file, ec)) {
        try {
            json j = json::parse(io::read_file(file));
            if (j.is_object() && j.value("key", std::string()) == key) {
                from_cache = true;
                return verdict_from_json(j.at("verdict"));
            }
        } catch (const std::exception&) {
            // A damaged verdict only costs a new check.
        }
    }
    CheckOptions co;
    co.max_seconds = opt.max_seconds;
    Verdict v = verdict_from_check(check(ds, co));
    fs::create_directories(cache);
    io::write_file_atomic(file, json{{"key", key}, {"verdict", verdict_json(v)}}.dump(1) + "\n");
    return v;
}

struct Reference {
    fs::path path;
    std::string source;
};

// Alexandria's order (the first entry's ref_audio, else ref.wav); the first usable selected clip otherwise.
Reference choose_reference(const Dataset& ds, const Verdict& v, const std::set<int>& only, const fs::path& dir) {
    Reference r;
    auto ref = ds.reference_audio(&r.source);
    if (!ref) {
        for (const auto& c : v.clips)
            if (c.usable && (only.empty() || only.count(c.line))) {
                ref = c.path;
                r.source = "first usable clip";
                break;
            }
    }
    if (!ref) throw InputError(fmt::format("{}: no reference audio and no usable clip", dir.string()));
    r.path = *ref;
    return r;
}

// Loads the codec on first use: a run whose cache is complete loads no model.
class LazyCodec {
public:
    LazyCodec(const PrepareOptions& opt, std::string model_dir) : opt_(opt), model_dir_(std::move(model_dir)) {}
    const codec::Codec& get() {
        if (opt_.codec) return *opt_.codec;
        if (!own_) own_ = codec::Codec::load(model_dir_, opt_.device, opt_.dtype);
        return *own_;
    }

private:
    const PrepareOptions& opt_;
    std::string model_dir_;
    std::optional<codec::Codec> own_;
};

// The codec key needs the codec's identity, which needs the codec loaded; an already-loaded codec is free, and
// otherwise the identity is remembered per speech_tokenizer folder stamp so a fresh cache loads nothing.
std::string resolve_codec_key(const std::string& model_dir, const fs::path& cache, const PrepareOptions& opt,
                              LazyCodec& codec) {
    fs::path st = fs::path(model_dir) / "speech_tokenizer";
    if (!fs::exists(st / "model.safetensors")) st = fs::path(model_dir);
    fs::path idfile = cache / "codec_identity.json";
    FileStamp cs = stamp(st / "model.safetensors"), cc = stamp(st / "config.json");
    std::string stamp_key = fs::absolute(st).lexically_normal().string() +
                            fmt::format("|{}|{}|{}|{}", cs.size, cs.mtime_ns, cc.size, cc.mtime_ns);
    json ids = json::object();
    try {
        if (fs::exists(idfile)) ids = json::parse(io::read_file(idfile));
    } catch (const std::exception&) {
        ids = json::object();
    }
    if (!opt.codec && ids.is_object() && ids.contains(stamp_key) && ids[stamp_key].is_string())
        return ids[stamp_key].get<std::string>();
    std::string key = codec_cache_key(codec.get(), opt.dtype);
    if (!ids.is_object()) ids = json::object();
    if (!ids.contains(stamp_key) || ids[stamp_key] != key) {
        ids[stamp_key] = key;
        fs::create_directories(cache);
        io::write_file_atomic(idfile, ids.dump(1) + "\n");
    }
    return key;
}

// Frames of a cached codes file, or nothing when it is absent or damaged (then it is encoded again).
std::optional<int64_t> cached_frames(const fs::path& file) {
    if (!fs::exists(file)) return std::nullopt;
    try {
        io::SafetensorsFile f(file.string());
        const auto& info = f.info("codes");
        if (info.shape.size() == 2 && info.shape[1] == codec::kNumCodebooks && info.shape[0] >= 1)
            return info.shape[0];
    } catch (const InputError&) {
    }
    return std::nullopt;
}

// Encodes `audio` into `file` ("codes" [frames, 16] int16); returns the frame count.
int64_t encode_to(const fs::path& audio, const fs::path& file, LazyCodec& codec, const std::string& source,
                  double seconds) {
    auto wav = io::read_audio_resampled(audio.string(), io::kModelSampleRate);
    torch::Tensor codes;
    {
        torch::NoGradGuard ng;
        codes = codec.get().encode(wav.samples);
    }
    fs::create_directories(file.parent_path());
    io::save_safetensors(file.string(), {{"codes", codes.to(torch::kInt16).contiguous()}},
                         {{"source", source}, {"seconds", fmt::format("{}", seconds)}});
    return codes.size(0);
}

// Every selected clip: a SKIP line for the unusable ones, codes from the cache or encoded now for the rest.
void encode_clips(const Verdict& v, const std::set<int>& only, const fs::path& codes_dir, const PrepareOptions& opt,
                  LazyCodec& codec, HashCache& hashes, PrepareResult& r, const std::function<void(const std::string&)>& log) {
    const int total = static_cast<int>(v.clips.size());
    for (int i = 0; i < total; ++i) {
        const VerdictClip& c = v.clips[i];
        if (!only.empty() && !only.count(c.line)) continue;
        if (!c.usable) {
            SkippedClip s{c.line, c.audio, c.skip_code, c.skip_reason};
            if (c.skip_code == "missing")
                s.reason = "file not found";
            else if (c.skip_code == "too-long")
                s.reason = fmt::format("{:.1f}s > {}s", c.seconds, py_float(opt.max_seconds));
            else if (s.reason.empty())
                s.reason = c.skip_code;
            log(fmt::format("[DATA] SKIP {}/{}: {} ({})", i + 1, total, c.audio, s.reason));
            r.skipped.push_back(s);
            continue;
        }
        log(fmt::format("[DATA] Tokenizing {}/{}: {}", i + 1, total, c.path.filename().string()));
        PreparedClip p;
        p.line = c.line;
        p.audio = c.audio;
        p.path = c.path;
        p.text = c.text;
        p.seconds = c.seconds;
        p.hash = hashes.hash(c.path);
        p.codes_file = codes_dir / (p.hash + ".safetensors");
        if (auto frames = cached_frames(p.codes_file)) {
            p.frames = *frames;
            ++r.reused;
        } else {
            p.frames = encode_to(c.path, p.codes_file, codec, c.audio, p.seconds);
            p.encoded_now = true;
            ++r.encoded;
        }
        r.clips.push_back(std::move(p));
    }
}

// The reference's speaker vector, from the cache or computed now (with train's encoder when it passes one).
void speaker_embedding_of(const Dataset& ds, const std::string& model_dir, const PrepareOptions& opt,
                          const fs::path& cache, PrepareResult& r) {
    r.speaker_key = io::hash_string(speaker_cache_key(model_dir) + "/" + dtype_key(opt.speaker_dtype));
    r.speaker_file = cache / "speaker" / r.speaker_key / (r.reference_hash + ".safetensors");
    if (fs::exists(r.speaker_file)) {
        try {
            io::SafetensorsFile f(r.speaker_file.string());
            if (f.contains("speaker_embedding") && f.info("speaker_embedding").shape.size() == 1) return;
        } catch (const InputError&) {
            // damaged: computed again below
        }
    }
    auto wav = io::read_audio_resampled(r.reference.string(), io::kModelSampleRate);
    torch::Tensor emb;
    if (opt.speaker_encoder) {
        emb = model::speaker_embedding(*opt.speaker_encoder, wav.samples);
    } else {
        auto enc = load_speaker_encoder(model_dir, opt.device, opt.speaker_dtype);
        emb = model::speaker_embedding(enc, wav.samples);
    }
    fs::create_directories(r.speaker_file.parent_path());
    io::save_safetensors(r.speaker_file.string(),
                         {{"speaker_embedding", emb.detach().to(torch::kCPU, torch::kFloat32).reshape({-1}).contiguous()}},
                         {{"reference", ds.display(r.reference)}});
    r.speaker_computed_now = true;
}

// The reference's codes (the ICL prompt's codec stream), in the same content-keyed store as the clips'.
void reference_codes_of(const Dataset& ds, const fs::path& codes_dir, LazyCodec& codec, PrepareResult& r) {
    r.reference_codes_file = codes_dir / (r.reference_hash + ".safetensors");
    if (auto frames = cached_frames(r.reference_codes_file)) {
        r.reference_frames = *frames;
        return;
    }
    r.reference_frames = encode_to(r.reference, r.reference_codes_file, codec, ds.display(r.reference), 0);
    r.reference_codes_now = true;
}

}  // namespace

PrepareResult prepare(const fs::path& dir, const std::string& model_dir, const PrepareOptions& opt) {
    auto log = [&](const std::string& s) {
        if (opt.log) opt.log(s);
    };
    PrepareResult r;
    Dataset ds = Dataset::load(dir);
    r.dir = ds.dir;
    const fs::path cache = ds.dir / kCacheDir;
    HashCache hashes(cache / "files.json");

    const Verdict verdict = check_cached(ds, opt, cache, hashes, r.verdict_cached);
    r.entries = verdict.entries;
    log(fmt::format("[DATA] Found {} entries in metadata.jsonl", verdict.entries));
    if (!verdict.trainable) {
        hashes.save();
        throw InputError(fmt::format("{}: cannot be trained: {}", ds.metadata_display.empty() ? dir.string()
                                                                                               : ds.metadata_display,
                                     verdict.first_error.empty() ? "no usable clip" : verdict.first_error));
    }

    const std::set<int> only(opt.only_lines.begin(), opt.only_lines.end());
    const Reference ref = choose_reference(ds, verdict, only, dir);
    r.reference = ref.path;
    r.reference_source = ref.source;
    log(fmt::format("[DATA] Using reference audio: {}", r.reference.filename().string()));

    LazyCodec codec(opt, model_dir);
    r.codec_key = resolve_codec_key(model_dir, cache, opt, codec);
    const fs::path codes_dir = cache / "codes" / r.codec_key;
    encode_clips(verdict, only, codes_dir, opt, codec, hashes, r, log);
    log(fmt::format("[DATA] Prepared {} samples ({} skipped)", r.clips.size(), r.skipped.size()));
    if (r.clips.empty()) {
        hashes.save();
        throw InputError(fmt::format("{}: no usable clip to train on ({} skipped{})", dir.string(), r.skipped.size(),
                                     r.skipped.empty() ? "" : ", e.g. " + r.skipped.front().audio + ": " +
                                                                  r.skipped.front().reason));
    }

    r.reference_hash = hashes.hash(r.reference);
    speaker_embedding_of(ds, model_dir, opt, cache, r);
    log("[DATA] Speaker embedding extracted from reference audio");
    if (opt.reference_codes) reference_codes_of(ds, codes_dir, codec, r);
    hashes.save();

    std::string acc = r.codec_key + "|" + r.speaker_key + "|" + r.reference_hash;
    for (const auto& p : r.clips) acc += "|" + p.hash + ":" + p.text;
    r.dataset_hash = io::hash_string(acc);
    return r;
}

}  // namespace alexandria::dataset
