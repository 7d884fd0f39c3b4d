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
                {"dataset_hash", dataset_hash},
                {"clips", clips_j},
                {"skipped_clips", skipped_j}};
}

PrepareResult prepare(const fs::path& dir, const std::string& model_dir, const PrepareOptions& opt) {
    auto log = [&](const std::string& s) {
        if (opt.log) opt.log(s);
    };
    PrepareResult r;
    CheckOptions co;
    co.max_seconds = opt.max_seconds;
    Dataset ds = Dataset::load(dir);
    r.dir = ds.dir;
    CheckReport report = check(ds, co);
    r.entries = report.entries;
    log(fmt::format("[DATA] Found {} entries in metadata.jsonl", report.entries));
    if (!report.trainable()) {
        std::string first;
        for (const auto& p : report.problems)
            if (p.severity == Severity::Error) {
                first = p.message;
                break;
            }
        throw InputError(fmt::format("{}: cannot be trained: {}", ds.metadata_display.empty() ? dir.string()
                                                                                               : ds.metadata_display,
                                     first.empty() ? "no usable clip" : first));
    }

    std::set<int> only(opt.only_lines.begin(), opt.only_lines.end());
    const fs::path cache = ds.dir / kCacheDir;
    HashCache hashes(cache / "files.json");

    // The reference (Alexandria's order); the first usable clip when the folder names none.
    std::string source;
    auto ref = ds.reference_audio(&source);
    const int total = static_cast<int>(report.clips.size());
    if (!ref) {
        for (const auto& c : report.clips)
            if (c.usable && (only.empty() || only.count(c.line))) {
                ref = c.path;
                source = "first usable clip";
                break;
            }
    }
    if (!ref) throw InputError(fmt::format("{}: no reference audio and no usable clip", dir.string()));
    r.reference = *ref;
    r.reference_source = source;
    log(fmt::format("[DATA] Using reference audio: {}", r.reference.filename().string()));

    // Lazily loaded models: a fresh cache loads neither.
    std::optional<codec::Codec> own_codec;
    auto get_codec = [&]() -> const codec::Codec& {
        if (opt.codec) return *opt.codec;
        if (!own_codec) own_codec = codec::Codec::load(model_dir, opt.device, opt.dtype);
        return *own_codec;
    };
    // The codec key needs the codec's identity, which needs the codec loaded; an already-loaded codec is free, and
    // otherwise the identity is remembered per speech_tokenizer folder stamp so a fresh cache loads nothing.
    {
        fs::path st = fs::path(model_dir) / "speech_tokenizer";
        if (!fs::exists(st / "model.safetensors")) st = fs::path(model_dir);
        std::string codec_identity;
        fs::path idfile = cache / "codec_identity.json";
        FileStamp cs = stamp(st / "model.safetensors"), cc = stamp(st / "config.json");
        std::string stamp_key =
            fs::absolute(st).lexically_normal().string() + fmt::format("|{}|{}|{}|{}", cs.size, cs.mtime_ns, cc.size,
                                                                     cc.mtime_ns);
        json ids = json::object();
        try {
            if (fs::exists(idfile)) ids = json::parse(io::read_file(idfile));
        } catch (const std::exception&) {
            ids = json::object();
        }
        if (!opt.codec && ids.is_object() && ids.contains(stamp_key) && ids[stamp_key].is_string()) {
            r.codec_key = ids[stamp_key].get<std::string>();
        } else {
            r.codec_key = codec_cache_key(get_codec(), opt.dtype);
            if (!ids.is_object()) ids = json::object();
            if (!ids.contains(stamp_key) || ids[stamp_key] != r.codec_key) {
                ids[stamp_key] = r.codec_key;
                fs::create_directories(cache);
                io::write_file_atomic(idfile, ids.dump(1) + "\n");
            }
        }
    }
    const fs::path codes_dir = cache / "codes" / r.codec_key;

    for (int i = 0; i < total; ++i) {
        const Clip& c = report.clips[i];
        if (!only.empty() && !only.count(c.line)) continue;
        SkippedClip s{c.line, c.audio, c.skip_code, c.skip_reason};
        if (!c.usable) {
            if (c.skip_code == "missing")
                s.reason = "file not found";
            else if (c.skip_code == "too-long")
                s.reason = fmt::format("{:.1f}s > {}s", c.stats.seconds, py_float(opt.max_seconds));
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
        p.seconds = c.stats.seconds;
        p.hash = hashes.hash(c.path);
        p.codes_file = codes_dir / (p.hash + ".safetensors");
        bool cached = false;
        if (fs::exists(p.codes_file)) {
            try {
                io::SafetensorsFile f(p.codes_file.string());
                const auto& info = f.info("codes");
                if (info.shape.size() == 2 && info.shape[1] == codec::kNumCodebooks && info.shape[0] >= 1) {
                    p.frames = info.shape[0];
                    cached = true;
                }
            } catch (const InputError&) {
                cached = false;  // a damaged entry is simply re-encoded
            }
        }
        if (!cached) {
            auto audio = io::read_audio_resampled(c.path.string(), io::kModelSampleRate);
            torch::Tensor codes;
            {
                torch::NoGradGuard ng;
                codes = get_codec().encode(audio.samples);
            }
            p.frames = codes.size(0);
            fs::create_directories(codes_dir);
            io::save_safetensors(p.codes_file.string(), {{"codes", codes.to(torch::kInt16).contiguous()}},
                                 {{"source", c.audio}, {"seconds", fmt::format("{}", p.seconds)}});
            p.encoded_now = true;
            ++r.encoded;
        } else {
            ++r.reused;
        }
        r.clips.push_back(std::move(p));
    }
    log(fmt::format("[DATA] Prepared {} samples ({} skipped)", r.clips.size(), r.skipped.size()));
    if (r.clips.empty()) {
        hashes.save();
        throw InputError(fmt::format("{}: no usable clip to train on ({} skipped{})", dir.string(), r.skipped.size(),
                                     r.skipped.empty() ? "" : ", e.g. " + r.skipped.front().audio + ": " +
                                                                  r.skipped.front().reason));
    }

    // Speaker embedding of the reference.
    r.reference_hash = hashes.hash(r.reference);
    r.speaker_key = io::hash_string(speaker_cache_key(model_dir) + "/" + dtype_key(opt.speaker_dtype));
    r.speaker_file = cache / "speaker" / r.speaker_key / (r.reference_hash + ".safetensors");
    bool have_speaker = false;
    if (fs::exists(r.speaker_file)) {
        try {
            io::SafetensorsFile f(r.speaker_file.string());
            have_speaker = f.contains("speaker_embedding") && f.info("speaker_embedding").shape.size() == 1;
        } catch (const InputError&) {
            have_speaker = false;
        }
    }
    if (!have_speaker) {
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
    log("[DATA] Speaker embedding extracted from reference audio");
    hashes.save();

    std::string acc = r.codec_key + "|" + r.speaker_key + "|" + r.reference_hash;
    for (const auto& p : r.clips) acc += "|" + p.hash + ":" + p.text;
    r.dataset_hash = io::hash_string(acc);
    return r;
}

}  // namespace alexandria::dataset
