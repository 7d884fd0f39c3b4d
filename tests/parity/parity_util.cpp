#include "parity_util.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include "alexandria/codec/codec.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/random_model.h"

namespace alexandria::parity {

fs::path source_dir() {
    const char* s = std::getenv("ALEXANDRIA_SOURCE_DIR");
    return s ? fs::path(s) : fs::path(ALEXANDRIA_TEST_SOURCE_DIR);
}
fs::path shared_dir() {
    const char* s = std::getenv("ALEXANDRIA_SHARED_DIR");
    return s ? fs::path(s) : source_dir() / ".." / "shared";
}
fs::path fixture_dir() {
    const char* s = std::getenv("ALEXANDRIA_PARITY_DIR");
    return s && *s ? fs::path(s) : source_dir() / "tests" / "data" / "parity";
}

nlohmann::json load_json(const fs::path& relative) {
    fs::path p = fixture_dir() / relative;
    std::ifstream f(p);
    INFO("fixture " << p.string());
    REQUIRE(f.good());
    return nlohmann::json::parse(f);
}

const nlohmann::json& manifest() {
    static const nlohmann::json j = load_json("manifest.json");
    return j;
}

std::vector<std::string> model_names() {
    std::vector<std::string> out;
    for (const auto& [name, _] : manifest().at("models").items()) out.push_back(name);
    return out;
}

const nlohmann::json& model_entry(const std::string& name) { return manifest().at("models").at(name); }

namespace {

struct ModelCache {
    fs::path root;
    std::map<std::string, fs::path> dirs;
    ModelCache() {
        std::random_device rd;
        root = fs::temp_directory_path() / ("alexandria-parity-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(root);
    }
    ~ModelCache() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

ModelCache& cache() {
    static ModelCache c;
    return c;
}

void copy_tokenizer(const fs::path& from, const fs::path& to) {
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
        fs::copy_file(from / f, to / f, fs::copy_options::overwrite_existing);
}

}  // namespace

fs::path model_dir(const std::string& name) {
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    auto& c = cache();
    if (auto it = c.dirs.find(name); it != c.dirs.end()) return it->second;
    const auto& e = model_entry(name);
    fs::path dir = c.root / name;
    model::RandomModelSpec spec;
    spec.size = e.at("preset").get<std::string>();
    spec.type = e.at("type").get<std::string>();
    spec.seed = e.at("seed").get<uint64_t>();
    spec.dtype = e.at("dtype").get<std::string>();
    // The same steps as tools/make_model with --tokenizer (the real tokenizer files).
    model::write_random_model(dir.string(), spec);
    copy_tokenizer(shared_dir() / "reference" / "text-tokenizer", dir);
    codec::write_random_codec((dir / "speech_tokenizer").string(), model::is_tiny_size(spec.size) ? "tiny" : "full",
                              spec.seed);
    for (const auto& [rel, want] : e.at("sha256").items()) {
        INFO("model " << name << " file " << rel
                      << ": make_model no longer writes the bytes the fixtures were made from (random_parameter or "
                         "libtorch's generator changed?). Regenerate: tools/parity/run.sh --seed "
                      << manifest().at("seed").get<uint64_t>() << " --out tests/data/parity");
        REQUIRE(fs::exists(dir / rel));
        REQUIRE(sha256_file(dir / rel) == want.get<std::string>());
    }
    c.dirs[name] = dir;
    return dir;
}

std::map<std::string, torch::Tensor> load_tensors(const fs::path& relative) {
    fs::path p = fixture_dir() / relative;
    INFO("fixture " << p.string());
    REQUIRE(fs::exists(p));
    io::SafetensorsFile f(p.string());
    std::map<std::string, torch::Tensor> out;
    for (const auto& t : f.tensors()) out[t.name] = f.view(t.name).clone();
    return out;
}

Figures compare(const torch::Tensor& got_in, const torch::Tensor& want_in, double floor) {
    torch::Tensor got = got_in.detach().to(torch::kCPU, torch::kFloat64).contiguous().view(-1);
    torch::Tensor want = want_in.detach().to(torch::kCPU, torch::kFloat64).contiguous().view(-1);
    REQUIRE(got.numel() == want.numel());
    Figures f;
    f.count = got.numel();
    f.floor = floor;
    if (f.count == 0) return f;
    torch::Tensor diff = (got - want).abs();
    double scale = want.abs().max().item<double>();
    torch::Tensor denom = torch::clamp_min(want.abs(), std::max(floor * scale, 1e-30));
    f.max_abs = diff.max().item<double>();
    f.max_rel = (diff / denom).max().item<double>();
    double ng = got.norm().item<double>(), nw = want.norm().item<double>();
    f.cosine = (ng == 0 && nw == 0) ? 1.0 : (got * want).sum().item<double>() / std::max(ng * nw, 1e-300);
    return f;
}

bool within(const Figures& f, double max_rel, double min_cosine) {
    return f.max_rel <= max_rel && f.cosine >= min_cosine;
}

std::string describe(const Figures& f) {
    return fmt::format("max abs {:.3g}, max rel {:.3g}, cosine {:.9f} over {} values", f.max_abs, f.max_rel, f.cosine,
                       f.count);
}

namespace {

struct StageRow {
    Figures worst;
    int64_t values = 0, cases = 0, id_cases = 0;
    bool has_ids = false, ids_identical = true;
    int64_t id_count = 0;
};

struct Table {
    std::map<std::string, StageRow> rows;
    std::mutex mu;
    ~Table() {
        if (rows.empty()) return;
        // The figures of the report: the worst case of each stage.
        std::fprintf(stderr, "\nparity figures (worst case per stage; fixtures %s)\n", fixture_dir().string().c_str());
        std::fprintf(stderr, "%-58s %6s %11s %11s %7s %13s %s\n", "stage", "cases", "max abs", "max rel", "floor",
                     "cosine", "ids");
        for (const auto& [stage, r] : rows) {
            std::string ids = r.has_ids ? fmt::format("{} ({} ids)", r.ids_identical ? "identical" : "DIFFER",
                                                      r.id_count)
                                        : "-";
            if (r.values > 0)
                std::fprintf(stderr, "%-58s %6lld %11.3g %11.3g %7s %13.9f %s\n", stage.c_str(),
                             (long long)std::max(r.cases, r.id_cases), r.worst.max_abs, r.worst.max_rel,
                             r.worst.floor > 0 ? fmt::format("{:g}", r.worst.floor).c_str() : "-", r.worst.cosine,
                             ids.c_str());
            else
                std::fprintf(stderr, "%-58s %6lld %11s %11s %7s %13s %s\n", stage.c_str(),
                             (long long)std::max(r.cases, r.id_cases), "-", "-", "-", "-", ids.c_str());
        }
        if (const char* out = std::getenv("ALEXANDRIA_PARITY_FIGURES")) {
            nlohmann::json j = nlohmann::json::object();
            for (const auto& [stage, r] : rows)
                j[stage] = {{"cases", std::max(r.cases, r.id_cases)},          {"max_abs", r.worst.max_abs}, {"max_rel", r.worst.max_rel}, {"floor", r.worst.floor},
                            {"cosine", r.worst.cosine},  {"ids_checked", r.has_ids},   {"ids_identical", r.ids_identical},
                            {"id_count", r.id_count}};
            std::ofstream(out) << j.dump(2) << "\n";
        }
    }
};

Table& table() {
    static Table t;
    return t;
}

}  // namespace

void record(const std::string& stage, const std::string& what, const Figures& f) {
    auto& t = table();
    std::lock_guard<std::mutex> lock(t.mu);
    auto& r = t.rows[stage];
    (void)what;
    r.cases += 1;
    if (r.values == 0) {
        r.worst = f;
    } else {
        r.worst.max_abs = std::max(r.worst.max_abs, f.max_abs);
        r.worst.max_rel = std::max(r.worst.max_rel, f.max_rel);
        r.worst.cosine = std::min(r.worst.cosine, f.cosine);
        r.worst.floor = std::max(r.worst.floor, f.floor);
    }
    r.values += f.count;
}

void record_ids(const std::string& stage, const std::string& what, bool identical, int64_t count) {
    auto& t = table();
    std::lock_guard<std::mutex> lock(t.mu);
    auto& r = t.rows[stage];
    (void)what;
    r.id_cases += 1;
    r.has_ids = true;
    r.ids_identical = r.ids_identical && identical;
    r.id_count += count;
}

void record_float64(const std::string& stage, const std::string& name, const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("max_rel")) return;
    Figures f;
    f.max_abs = j.at("max_abs").get<double>();
    f.max_rel = j.at("max_rel").get<double>();
    f.cosine = j.at("cosine").get<double>();
    f.count = j.at("count").get<int64_t>();
    f.floor = 1e-3;
    record(stage + " (floor 1e-3)", name, f);
    if (j.contains("max_rel_floor_1e-2")) {
        f.max_rel = j.at("max_rel_floor_1e-2").get<double>();
        f.floor = 1e-2;
        record(stage + " (floor 1e-2)", name, f);
    }
}

fs::path float64_dir() {
    const char* s = std::getenv("ALEXANDRIA_PARITY_FLOAT64");
    return s && *s ? fs::path(s) : fs::path();
}

// ---------------------------------------------------------------------------------------------------------------
// SHA-256 (FIPS 180-4), for the model files' recorded hashes.
namespace {

constexpr std::array<uint32_t, 64> kK = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

struct Sha256 {
    std::array<uint32_t, 8> h{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    uint8_t block[64];
    size_t fill = 0;
    uint64_t bits = 0;

    void compress(const uint8_t* p) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i)
            w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
        for (int i = 16; i < 64; ++i) {
            uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
            uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    void update(const uint8_t* p, size_t n) {
        bits += uint64_t(n) * 8;
        while (n > 0) {
            size_t k = std::min(n, size_t(64) - fill);
            std::memcpy(block + fill, p, k);
            fill += k; p += k; n -= k;
            if (fill == 64) { compress(block); fill = 0; }
        }
    }
    std::string hex() {
        uint64_t total = bits;
        uint8_t pad = 0x80;
        update(&pad, 1);
        uint8_t zero = 0;
        while (fill != 56) update(&zero, 1);
        uint8_t len[8];
        for (int i = 0; i < 8; ++i) len[i] = uint8_t(total >> (56 - 8 * i));
        update(len, 8);
        std::string out;
        for (uint32_t v : h) out += fmt::format("{:08x}", v);
        return out;
    }
};

}  // namespace

std::string sha256_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) return "(unreadable)";
    Sha256 s;
    std::vector<char> buf(1 << 20);
    while (f) {
        f.read(buf.data(), std::streamsize(buf.size()));
        s.update(reinterpret_cast<const uint8_t*>(buf.data()), size_t(f.gcount()));
    }
    return s.hex();
}

std::string code_differences(const codec::Codec& c, const std::vector<float>& wav24k, const torch::Tensor& ours_,
                             const torch::Tensor& official_) {
    auto ours = ours_.to(torch::kLong), official = official_.to(torch::kLong);
    if (ours.sizes() != official.sizes()) return "the shapes differ";
    const int64_t frames = ours.size(0);
    std::vector<int64_t> differ;
    for (int64_t t = 0; t < frames; ++t)
        if (!torch::equal(ours[t], official[t])) differ.push_back(t);
    if (int64_t(differ.size()) * 50 > frames)
        return fmt::format("{} of {} frames differ (more than one in 50)", differ.size(), frames);
    torch::NoGradGuard ng;
    auto& enc = c.model()->encoder;
    auto x = torch::from_blob(const_cast<float*>(wav24k.data()), {1, 1, int64_t(wav24k.size())}, torch::kFloat32).clone();
    auto z = enc->downsample_25hz(enc->transform(enc->seanet(x)));  // [1, hidden, T]
    auto& q = enc->quantizer;
    for (int64_t t : differ) {
        int64_t j = 0;
        while (ours[t][j].item<int64_t>() == official[t][j].item<int64_t>()) ++j;
        auto& rvq = j == 0 ? q->semantic_residual_vector_quantizer : q->acoustic_residual_vector_quantizer;
        const int64_t first = j == 0 ? 0 : 1;  // the acoustic quantizer's first codebook is code 1
        auto r = rvq->input_proj(z)[0].select(1, t).to(torch::kFloat64);
        for (int64_t i = first; i < j; ++i)
            r = r - rvq->codebooks[size_t(i - first)]->embed()[ours[t][i].item<int64_t>()].to(torch::kFloat64);
        const auto e = rvq->codebooks[size_t(j - first)]->embed().to(torch::kFloat64);
        const double d_ours = (r - e[ours[t][j].item<int64_t>()]).norm().item<double>();
        const double d_official = (r - e[official[t][j].item<int64_t>()]).norm().item<double>();
        if (std::abs(d_ours - d_official) > 1e-4 * std::max(d_ours, d_official))
            return fmt::format("frame {} codebook {}: code {} at distance {:.7g}, official {} at {:.7g}: not a near-tie",
                               t, j, ours[t][j].item<int64_t>(), d_ours, official[t][j].item<int64_t>(), d_official);
        std::fprintf(stderr, "codec encode: frame %lld codebook %lld is a near-tie (distances %.9g and %.9g)\n",
                     (long long)t, (long long)j, d_ours, d_official);
    }
    return "";
}

}  // namespace alexandria::parity
