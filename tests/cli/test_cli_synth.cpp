// `alexandria synth`, `adapter`, `model info` through the real binary on a tiny random model.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "alexandria/io/audio.h"
#include "support/test_support.h"

using namespace alexandria;
namespace fs = std::filesystem;

namespace {

struct Run {
    int code = -1;
    std::string out, err;
};

std::string env_or(const char* name, const std::string& fallback) {
    const char* v = std::getenv(name);
    return v ? v : fallback;
}
std::string binary() { return env_or("ALEXANDRIA_BINARY", (fs::current_path() / "alexandria").string()); }
std::string build_dir() { return env_or("ALEXANDRIA_BUILD_DIR", fs::current_path().string()); }

std::string slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

Run run(const std::string& args, const fs::path& scratch) {
    auto o = scratch / "stdout", e = scratch / "stderr";
    std::string cmd = quote(binary()) + " " + args + " >" + quote(o.string()) + " 2>" + quote(e.string());
    int st = std::system(cmd.c_str());
    Run r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(o);
    r.err = slurp(e);
    return r;
}

// The tiny model and a reference clip, made once.
struct Fixture {
    test::TempDir tmp;
    std::string model, ref;
    Fixture() {
        model = (tmp / "model").string();
        auto tool = fs::path(build_dir()) / "make_model";
        std::string cmd = quote(tool.string()) + " --preset tiny --type base --out " + quote(model) + " >/dev/null";
        REQUIRE(std::system(cmd.c_str()) == 0);
        io::Audio a;
        for (int i = 0; i < 36000; ++i) a.samples.push_back(0.3f * std::sin(2 * M_PI * 160 * i / 24000.0));
        ref = (tmp / "ref.wav").string();
        io::write_audio(ref, a);
    }
};
Fixture& fx() {
    static Fixture f;
    return f;
}

}  // namespace

TEST_CASE("synth --help lists its flags with defaults") {
    test::TempDir t;
    auto r = run("synth --help", t.path);
    CHECK(r.code == 0);
    for (const char* flag : {"--adapter", "--lora-scale", "--script", "--shard", "--merge", "--ref-audio",
                             "--text-layout", "--seed", "--greedy", "--max-frames", "--format", "--voice"})
        CHECK(r.out.find(flag) != std::string::npos);
    CHECK(r.out.find("pcm16") != std::string::npos);
}

TEST_CASE("synth speaks one line into a WAV, reproducibly, and reports as JSON") {
    auto& f = fx();
    test::TempDir t;
    auto a = (t / "a.wav").string(), b = (t / "b.wav").string();
    std::string common = "synth --model " + quote(f.model) + " --ref-audio " + quote(f.ref) +
                         " --text 'The library opens at dawn.' --seed 3 --max-frames 6";
    auto r1 = run(common + " --out " + quote(a) + " --json", t.path);
    REQUIRE(r1.code == 0);
    auto j = nlohmann::json::parse(r1.out);
    CHECK(j["frames"].get<int64_t>() >= 1);
    CHECK(j["frames"].get<int64_t>() <= 6);
    CHECK(j["mode"] == "clone x-vector");
    auto wav = io::read_audio(a);
    CHECK(wav.sample_rate == 24000);
    CHECK(static_cast<int64_t>(wav.samples.size()) == j["frames"].get<int64_t>() * 1920);
    REQUIRE(run(common + " --out " + quote(b), t.path).code == 0);
    CHECK(slurp(a) == slurp(b));

    // Raw PCM16 on stdout: two bytes per sample, nothing else, and the very samples of the .wav file (its data
    // chunk ends the file).
    auto raw = run(common + " --out -", t.path);
    REQUIRE(raw.code == 0);
    REQUIRE(raw.out.size() == wav.samples.size() * 2);
    const std::string file = slurp(a);
    CHECK(raw.out == file.substr(file.size() - raw.out.size()));

    // FLAC and float32 WAV.
    auto fl = (t / "c.flac").string();
    REQUIRE(run(common + " --format flac --out " + quote(fl), t.path).code == 0);
    CHECK(io::read_audio(fl).samples.size() == wav.samples.size());
}

TEST_CASE("synth refuses bad usage with exit code 2 and a clear message") {
    auto& f = fx();
    test::TempDir t;
    auto r = run("synth --model " + quote(f.model) + " --text hi --out " + quote((t / "x.wav").string()), t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("--ref-audio") != std::string::npos);
    CHECK_FALSE(fs::exists(t / "x.wav"));
    auto r2 = run("synth --model " + quote(f.model) + " --ref-audio " + quote(f.ref) +
                      " --text hi --language klingon --out " + quote((t / "x.wav").string()),
                  t.path);
    CHECK(r2.code == 2);
    CHECK(r2.err.find("klingon") != std::string::npos);
    auto r3 = run("synth --model " + quote((t / "nope").string()) + " --text hi --out x.wav", t.path);
    CHECK(r3.code == 2);
}

TEST_CASE("synth --script checks every line first: one bad line stops the run with nothing rendered, exit 2") {
    auto& f = fx();
    test::TempDir t;
    auto out = (t / "out").string();
    auto render = [&](const std::string& lines) {
        auto script = (t / "s.jsonl").string();
        std::ofstream(script) << lines;
        return run("synth --model " + quote(f.model) + " --ref-audio " + quote(f.ref) + " --script " +
                       quote(script) + " --out-dir " + quote(out) + " --max-frames 4 --json",
                   t.path);
    };
    const std::string good = R"({"text": "One."})" "\n";
    struct Case {
        std::string line, expect;
    };
    for (const auto& c : {Case{R"({"txt": "typo"})", "s.jsonl:2: field 'text': missing"},
                          Case{R"({"text": 3})", "s.jsonl:2: field 'text': expected a string"},
                          Case{R"({"text": "Two.", "x": 8e458})", "s.jsonl:2: invalid JSON: number overflow"},
                          Case{R"({"text": "Two.")", "s.jsonl:2: invalid JSON"},
                          Case{R"({"text": "Two.", "voice": "nobody"})", "s.jsonl:2: field 'voice': voice 'nobody'"}}) {
        auto r = render(good + c.line + "\n" + good);
        INFO(c.line << "\n" << r.err);
        CHECK(r.code == 2);
        CHECK(r.err.find(c.expect) != std::string::npos);
        CHECK(r.err.find("error: [json.exception") == std::string::npos);
        CHECK_FALSE(fs::exists(fs::path(out) / "line-00001.wav"));
        CHECK_FALSE(fs::exists(fs::path(out) / "line-00003.wav"));
    }
    // all bad lines are listed at once
    auto r = render(R"({"text": 1})" "\n" + good + R"({"seed": 2})" "\n");
    CHECK(r.code == 2);
    CHECK(r.err.find("s.jsonl:1: field 'text'") != std::string::npos);
    CHECK(r.err.find("s.jsonl:3: field 'text'") != std::string::npos);
    // and a clean script renders every line
    auto ok = render(good + good);
    CHECK(ok.code == 0);
    CHECK(fs::exists(fs::path(out) / "line-00002.wav"));
}

TEST_CASE("model info describes the folder; adapter info rejects an adapter without weights") {
    auto& f = fx();
    test::TempDir t;
    auto r = run("model info --model " + quote(f.model) + " --json", t.path);
    REQUIRE(r.code == 0);
    auto j = nlohmann::json::parse(r.out);
    CHECK(j["type"] == "base");
    CHECK(j["weights"]["matches_config"] == true);
    CHECK(run("model info --model " + quote(f.model), t.path).code == 0);

    // The real Alexandria adapter in shared/ ships its config but not its weights.
    auto sion = test::shared_dir() / "reference/voices/alexandria-sion";
    if (fs::exists(sion)) {
        auto a = run("adapter info " + quote(sion.string()), t.path);
        CHECK(a.code == 2);
        CHECK(a.err.find("adapter_model.safetensors") != std::string::npos);
    }
}
