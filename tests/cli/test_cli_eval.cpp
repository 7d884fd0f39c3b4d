// `alexandria eval` through the real binary (flags, exit codes 0/2/3, eval.json, the table on stderr), and the
// examples/Makefile pipeline on the tiny preset (hidden tag [pipeline]: run it with `test_cli "[pipeline]"`).
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/text/tokenizer.h"
#include "support/test_support.h"

namespace fs = std::filesystem;
using alexandria::test::TempDir;
using json = nlohmann::json;

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

Run shell(const std::string& cmd, const fs::path& scratch) {
    auto o = scratch / "stdout", e = scratch / "stderr";
    int st = std::system((cmd + " >" + quote(o.string()) + " 2>" + quote(e.string())).c_str());
    Run r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(o);
    r.err = slurp(e);
    return r;
}
Run run(const std::string& args, const fs::path& scratch) { return shell(quote(binary()) + " " + args, scratch); }

// A tiny random Base model (weights, tokenizer, codec) and a random adapter, once per process.
struct Fixture {
    TempDir tmp;
    std::string model, adapter;
    Fixture() {
        using namespace alexandria;
        model = (tmp / "model").string();
        model::RandomModelSpec spec;
        spec.size = "tiny";
        spec.type = "base";
        spec.seed = 5;
        spec.dtype = "f32";
        model::write_random_model(model, spec);
        text::write_tiny_tokenizer(model);
        codec::write_random_codec((fs::path(model) / "speech_tokenizer").string(), "tiny", 6);
        auto lm = model::load_model(model);
        model::LoraConfig lc;
        lc.r = 4;
        lc.alpha = 8;
        model::attach_lora(lm.model->talker, lc);
        torch::manual_seed(1);
        {
            torch::NoGradGuard ng;
            for (auto& [name, t] : model::lora_state(lm.model->talker)) t.normal_(0.0, 0.05);
        }
        adapter = (tmp / "adapter").string();
        model::save_adapter(lm.model->talker, lc, adapter);
    }
};
Fixture& fx() {
    static Fixture f;
    return f;
}

fs::path copy_tiny_voice(const fs::path& into) {
    fs::path src = alexandria::test::source_dir() / "examples" / "tiny-voice", dst = into / "tiny-voice";
    fs::create_directories(dst);
    for (auto& e : fs::directory_iterator(src))
        if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename());
    return dst;
}

std::string prompts_file(const fs::path& dir) {
    auto p = dir / "prompts.txt";
    std::ofstream(p) << "Oh!\nThe rain stopped at noon.\n";
    return p.string();
}

}  // namespace

TEST_CASE("eval --help lists every flag with its default") {
    TempDir t;
    auto r = run("eval --help", t.path);
    CHECK(r.code == 0);
    for (const char* flag : {"--model", "--adapter", "--data", "--prompts", "--seeds", "--out", "--language",
                             "--device", "--max-frames", "--no-base", "--no-gate", "--json"})
        CHECK(r.out.find(flag) != std::string::npos);
    CHECK(r.out.find("=3") != std::string::npos);  // --seeds default
}

TEST_CASE("eval: bad input exits 2 with a message naming the problem") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const std::string base = "eval --model " + quote(fx().model) + " --data " + quote(data.string()) + " --out " +
                             quote((t / "o").string());
    auto r = run(base + " --adapter " + quote((t / "missing").string()), t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("missing") != std::string::npos);
    r = run(base + " --adapter " + quote(fx().adapter) + " --seeds 0", t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("--seeds") != std::string::npos);
    r = run(base + " --adapter " + quote(fx().adapter) + " --prompts " + quote((t / "nope.txt").string()), t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("nope.txt") != std::string::npos);
    r = run("eval --model " + quote(fx().model) + " --adapter " + quote(fx().adapter), t.path);  // no --data
    CHECK(r.code == 2);
    r = run(base + " --adapter " + quote(fx().adapter) + " --language klingon", t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("klingon") != std::string::npos);
    CHECK_FALSE(fs::exists(t / "o" / "eval.json"));
}

TEST_CASE("eval: a runaway adapter exits 3 with the table on stderr and eval.json; --no-gate and --json") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const fs::path out = t / "report";
    const std::string args = "eval --model " + quote(fx().model) + " --adapter " + quote(fx().adapter) + " --data " +
                             quote(data.string()) + " --prompts " + quote(prompts_file(t.path)) +
                             " --seeds 2 --max-frames 2 --out " + quote(out.string());
    auto r = run(args, t.path);
    INFO(r.err);
    CHECK(r.code == 3);
    CHECK(r.out.empty());
    CHECK(r.err.find("NOT USABLE") != std::string::npos);
    CHECK(r.err.find("Generation hangs / no EOS") != std::string::npos);
    CHECK(r.err.find("Retrain with fewer epochs") != std::string::npos);
    REQUIRE(fs::exists(out / "eval.json"));
    json j = json::parse(slurp(out / "eval.json"));
    CHECK(j["schema"] == "alexandria.eval/1");
    CHECK(j["exit_code"] == 3);
    CHECK(j["versions"]["tool"].get<std::string>().find("libtorch") != std::string::npos);
    CHECK(j["adapters"][0]["generation"]["runaway_rate"] == 1.0);
    CHECK(fs::exists(out / "adapter" / "p02-s1.wav"));
    CHECK(fs::exists(out / "base" / "p01-s0.wav"));
    CHECK(j["report"] == "report.html");  // --out given: the page to listen with
    CHECK(fs::exists(out / "report.html"));
    CHECK(r.err.find((out / "report.html").string()) != std::string::npos);

    r = run(args + " --no-gate --json --no-base", t.path);
    INFO(r.err);
    CHECK(r.code == 0);
    json k = json::parse(r.out);
    CHECK(k == json::parse(slurp(out / "eval.json")));
    CHECK(k["usable"] == false);
    CHECK(k["base"].is_null());
}

TEST_CASE("eval: report.html only with --out; an unwritable --out exits 2 before any generation") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const std::string args = "eval --model " + quote(fx().model) + " --adapter " + quote(fx().adapter) + " --data " +
                             quote(data.string()) + " --prompts " + quote(prompts_file(t.path)) +
                             " --seeds 1 --max-frames 2 --no-base";
    fs::create_directories(t / "cwd");
    auto r = shell("cd " + quote((t / "cwd").string()) + " && " + quote(binary()) + " " + args, t.path);
    INFO(r.err);
    CHECK(r.code == 3);
    CHECK(fs::exists(t / "cwd" / "eval" / "eval.json"));  // the default folder, as always
    CHECK_FALSE(fs::exists(t / "cwd" / "eval" / "report.html"));
    CHECK_FALSE(fs::exists(t / "cwd" / "eval" / "reference"));
    CHECK(json::parse(slurp(t / "cwd" / "eval" / "eval.json"))["report"].is_null());

    std::ofstream(t / "a-file") << "x";
    r = run(args + " --out " + quote((t / "a-file" / "eval").string()), t.path);
    CHECK(r.code == 2);
    CHECK(r.err.find("--out") != std::string::npos);
    CHECK(r.err.find("[EVAL] Loading model") == std::string::npos);
    r = run(args + " --out /proc/alexandria-eval-test", t.path);  // refused even to root, by the real probe
    CHECK(r.code == 2);
    CHECK(r.err.find("--out") != std::string::npos);
    CHECK(r.err.find("[EVAL] adapter") == std::string::npos);
}

TEST_CASE("examples/Makefile: check -> prepare -> train -> eval -> synth -> book on the tiny preset", "[.pipeline][pipeline]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const fs::path src = alexandria::test::source_dir() / "examples";
    const fs::path script = t / "chapter.jsonl";
    fs::copy_file(src / "chapter1.jsonl", script);
    const fs::path out = t / "out";
    const std::string make = "make --no-print-directory -C " + quote(src.string()) + " ALEXANDRIA=" + quote(binary()) +
                             " MODEL=" + quote(fx().model) + " DATA=" + quote(data.string()) + " OUT=" +
                             quote(out.string()) + " SCRIPT=" + quote(script.string()) +
                             " TRAIN_FLAGS='--epochs 1' SYNTH_FLAGS='--max-frames 8'";
    const std::string eval_flags = " EVAL_FLAGS='--seeds 1 --max-frames 8 --prompts " + prompts_file(t.path) + "'";

    // Random weights are never usable: eval exits 3 and the pipeline stops before any speech.
    auto r = shell(make + eval_flags + " -j2", t.path);
    INFO(r.out + r.err);
    CHECK(r.code != 0);
    CHECK(fs::exists(out / "adapter" / "adapter_model.safetensors"));
    CHECK(fs::exists(out / "eval" / "eval.json"));
    CHECK_FALSE(fs::exists(out / "eval" / "eval.ok"));
    CHECK_FALSE(fs::exists(out / "book.wav"));
    const auto adapter_time = fs::last_write_time(out / "adapter" / "adapter_model.safetensors");

    // With the gate off it runs to the end; training is not repeated.
    const std::string nogate = " EVAL_FLAGS='--seeds 1 --max-frames 8 --no-gate --prompts " + prompts_file(t.path) + "'";
    r = shell(make + nogate + " -j2", t.path);
    INFO(r.out + r.err);
    REQUIRE(r.code == 0);
    CHECK(fs::exists(out / "book.wav"));
    CHECK(fs::exists(out / "lines" / "ch01-003.wav"));
    CHECK(fs::last_write_time(out / "adapter" / "adapter_model.safetensors") == adapter_time);

    // Up to date: nothing to do.
    CHECK(shell(make + nogate + " -q", t.path).code == 0);
    // A changed script reruns only the synthesis.
    std::ofstream(script, std::ios::app) << "{\"text\": \"The end.\", \"out\": \"ch01-006.wav\"}\n";
    r = shell(make + nogate + " -n", t.path);
    CHECK(r.out.find(" synth ") != std::string::npos);
    CHECK(r.out.find(" train ") == std::string::npos);
    CHECK(r.out.find(" eval ") == std::string::npos);
    r = shell(make + nogate + " -j2", t.path);
    INFO(r.out + r.err);
    CHECK(r.code == 0);
    CHECK(fs::exists(out / "lines" / "ch01-006.wav"));
    CHECK(fs::last_write_time(out / "adapter" / "adapter_model.safetensors") == adapter_time);
}
