// `alexandria dataset prepare` and `alexandria train` through the real binary: check → prepare → train on the
// bundled tiny dataset, Alexandria's stdout protocol, exit codes, a real SIGINT and --resume.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace fs = std::filesystem;
using alexandria::test::TempDir;

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

struct Fixture {
    TempDir tmp;
    std::string model;
    Fixture() {
        model = (tmp / "model").string();
        auto tool = fs::path(build_dir()) / "make_model";
        std::string cmd = quote(tool.string()) + " --preset tiny --type base --out " + quote(model) + " >/dev/null";
        REQUIRE(std::system(cmd.c_str()) == 0);
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

std::vector<std::string> lines_of(const std::string& s) {
    std::vector<std::string> v;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) v.push_back(l);
    return v;
}

}  // namespace

TEST_CASE("train --help and dataset prepare --help list their flags with defaults", "[cli][train]") {
    TempDir t;
    auto r = run("train --help", t.path);
    CHECK(r.code == 0);
    for (const char* f : {"--model", "--data", "--out", "--objective", "--prompt", "--language", "--epochs", "--lr", "--lora-r",
                          "--lora-alpha", "--grad-accum", "--batch", "--seed", "--target-loss", "--loss-floor",
                          "--device", "--resume", "--max-seconds"})
        CHECK(r.out.find(f) != std::string::npos);
    CHECK(r.out.find("english") != std::string::npos);
    auto p = run("dataset prepare --help", t.path);
    CHECK(p.code == 0);
    CHECK(p.out.find("--max-seconds") != std::string::npos);
}

TEST_CASE("check, prepare, train on the bundled tiny dataset", "[cli][train]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const std::string m = quote(fx().model), d = quote(data.string()), out = quote((t / "adapter").string());

    auto p1 = run("dataset prepare " + d + " --model " + m + " --json", t.path);
    REQUIRE(p1.code == 0);
    auto j1 = nlohmann::json::parse(p1.out);
    CHECK(j1["prepared"] == 9);
    CHECK(j1["encoded"] == 9);
    auto p2 = run("dataset prepare " + d + " --model " + m, t.path);
    REQUIRE(p2.code == 0);
    CHECK(p2.out.find("[DATA] Prepared 9 samples (0 skipped)") != std::string::npos);
    CHECK(p2.err.find("0 encoded now, 9 from the cache") != std::string::npos);

    auto r = run("train --model " + m + " --data " + d + " --out " + out + " --epochs 2 --lr 1e-3 --lora-r 4 --device cpu",
                 t.path);
    INFO(r.err);
    REQUIRE(r.code == 0);
    auto lines = lines_of(r.out);
    // Every stdout line is protocol: Alexandria's prefixes only.
    std::regex prefix(R"(^\[(TRAIN|DATA|EPOCH|DONE)\] )");
    for (auto& l : lines) CHECK(std::regex_search(l, prefix));
    // The UI's regexes (index.html) and the exact formats of train_lora.py.
    std::regex ui_epoch(R"(\[EPOCH\]\s*(\d+)\/(\d+)\s+avg_loss=([\d.]+))");
    std::regex ui_train(R"(\[TRAIN\]\s*epoch=(\d+)\/(\d+)\s+step=\d+\/\d+\s+loss=([\d.]+))");
    int e = 0, s = 0;
    for (auto& l : lines) {
        if (std::regex_search(l, ui_epoch)) {
            ++e;
            CHECK(std::regex_match(l, std::regex(R"(^\[EPOCH\] [12]/2 avg_loss=\d+\.\d{4}$)")));
        }
        if (std::regex_search(l, ui_train)) ++s;
    }
    CHECK(e == 2);
    CHECK(s == 18);
    CHECK(lines.front() == "[TRAIN] Device: cpu, dtype: torch.float32");
    CHECK(r.out.find("[TRAIN] Config: epochs=2, lr=0.001, lora_r=4, lora_alpha=128, grad_accum=4") != std::string::npos);
    CHECK(r.out.find("[DATA] Using reference audio: ref.wav") != std::string::npos);
    CHECK(std::regex_search(r.out, std::regex(R"(\[TRAIN\] LoRA applied: [\d,]+ trainable / [\d,]+ total \(\d+\.\d\d%\))")));
    CHECK(std::regex_search(lines.back(), std::regex(R"(^\[DONE\] Adapter saved to .* \(best_loss=\d+\.\d{4}, time=\d+s\)$)")));
    CHECK(fs::exists(t / "adapter" / "adapter_model.safetensors"));
    CHECK(fs::exists(t / "adapter" / "training_meta.json"));
}

TEST_CASE("train exits 2 with [ERROR] on a dataset that cannot be trained", "[cli][train]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    std::ofstream(data / "metadata.jsonl", std::ios::trunc).close();
    auto r = run("train --model " + quote(fx().model) + " --data " + quote(data.string()) + " --out " +
                     quote((t / "adapter").string()) + " --device cpu",
                 t.path);
    CHECK(r.code == 2);
    CHECK(r.out.find("[ERROR] ") != std::string::npos);
    CHECK(r.err.find("alexandria train: error:") != std::string::npos);
    CHECK_FALSE(fs::exists(t / "adapter" / "adapter_model.safetensors"));
    auto bad = run("train --model " + quote(fx().model) + " --data " + quote(data.string()) + " --out " +
                       quote((t / "adapter").string()) + " --objective nope",
                   t.path);
    CHECK(bad.code == 2);
}

TEST_CASE("SIGINT checkpoints the run, --resume finishes it", "[cli][train][signal]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const std::string args = "train --model " + quote(fx().model) + " --data " + quote(data.string()) + " --out " +
                             quote((t / "adapter").string()) +
                             " --epochs 20 --lr 1e-4 --lora-r 4 --device cpu --grad-accum 1 --no-early-stop";
    const auto out = t / "stdout", rc = t / "rc";
    // Start, wait for the first training line, interrupt, record the exit status.
    std::string script = "(" + quote(binary()) + " " + args + " >" + quote(out.string()) + " 2>/dev/null & pid=$!; " +
                         "for i in $(seq 1 600); do grep -q 'step=' " + quote(out.string()) +
                         " 2>/dev/null && break; sleep 0.05; done; kill -INT $pid; wait $pid; echo $? >" +
                         quote(rc.string()) + ")";
    REQUIRE(std::system(("bash -c " + quote(script)).c_str()) == 0);
    int code = std::stoi(slurp(rc));
    auto text = slurp(out);
    if (text.find("[DONE]") != std::string::npos) {
        WARN("the run finished before the signal arrived; nothing to resume");
        return;
    }
    CHECK(code == 1);
    CHECK(fs::exists(t / "adapter" / "checkpoints" / "resume" / "state.json"));
    CHECK_FALSE(fs::exists(t / "adapter" / "adapter_model.safetensors"));
    auto again = run(args + " --resume", t.path);
    INFO(again.err);
    CHECK(again.code == 0);
    CHECK(again.out.find("[TRAIN] Resuming at epoch") != std::string::npos);
    CHECK(fs::exists(t / "adapter" / "adapter_model.safetensors"));
}

TEST_CASE("train --prompt icl: an ICL adapter that synth speaks in ICL mode unless told otherwise",
          "[cli][train][icl]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    const std::string m = quote(fx().model), d = quote(data.string()), out = quote((t / "icl").string());
    auto r = run("train --model " + m + " --data " + d + " --out " + out +
                     " --prompt icl --epochs 1 --lr 1e-3 --lora-r 4 --device cpu",
                 t.path);
    INFO(r.err);
    REQUIRE(r.code == 0);
    auto meta = nlohmann::json::parse(slurp(t / "icl" / "training_meta.json"));
    CHECK(meta["prompt"] == "icl");
    CHECK(meta["text_layout"] == "non-streaming");

    const std::string speak = "synth --model " + m + " --adapter " + out +
                              " --text 'Chapter one.' --seed 3 --max-frames 8 --device cpu --json --out ";
    auto s1 = run(speak + quote((t / "a.wav").string()), t.path);
    INFO(s1.err);
    REQUIRE(s1.code == 0);
    auto j1 = nlohmann::json::parse(s1.out);
    CHECK(j1["mode"] == "clone ICL");
    CHECK(j1["text_layout"] == "non-streaming");
    auto s2 = run(speak + quote((t / "b.wav").string()) + " --prompt xvector", t.path);
    REQUIRE(s2.code == 0);
    CHECK(nlohmann::json::parse(s2.out)["mode"] == "clone x-vector");
    auto s3 = run(speak + quote((t / "c.wav").string()) + " --prompt bogus", t.path);
    CHECK(s3.code == 2);

    // An x-vector adapter keeps speaking in x-vector mode; --icl switches it.
    auto rx = run("train --model " + m + " --data " + d + " --out " + quote((t / "xv").string()) +
                      " --epochs 1 --lr 1e-3 --lora-r 4 --device cpu",
                  t.path);
    REQUIRE(rx.code == 0);
    const std::string speak_x = "synth --model " + m + " --adapter " + quote((t / "xv").string()) +
                                " --text 'Chapter one.' --seed 3 --max-frames 8 --device cpu --json --out ";
    auto s4 = run(speak_x + quote((t / "d.wav").string()), t.path);
    REQUIRE(s4.code == 0);
    CHECK(nlohmann::json::parse(s4.out)["mode"] == "clone x-vector");
    auto s5 = run(speak_x + quote((t / "e.wav").string()) + " --prompt icl", t.path);
    REQUIRE(s5.code == 0);
    CHECK(nlohmann::json::parse(s5.out)["mode"] == "clone ICL");

    // ICL training without the reference's transcript is bad input.
    fs::remove(data / "ref_text.txt");
    auto bad = run("train --model " + m + " --data " + d + " --out " + quote((t / "bad").string()) +
                       " --prompt icl --epochs 1 --device cpu",
                   t.path);
    CHECK(bad.code == 2);
    CHECK(bad.out.find("[ERROR] ") != std::string::npos);
    CHECK(bad.out.find("ref_text.txt: missing") != std::string::npos);
    CHECK_FALSE(fs::exists(t / "bad" / "adapter_model.safetensors"));
}
