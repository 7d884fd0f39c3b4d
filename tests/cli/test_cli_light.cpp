// The light executable (issue 18): `alexandria` runs --help, recommend, dataset check|split and tokenize without
// loading libtorch, hands every other command to libalexandria_torch.so, and says what to install when that
// library cannot be loaded.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "support/test_support.h"

using namespace alexandria::test;

namespace {

struct Result {
    int code = -1;
    std::string out, err;
};

std::string binary() {
    const char* v = std::getenv("ALEXANDRIA_BINARY");
    return v ? v : (fs::current_path() / "alexandria").string();
}

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::string slurp(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// env: "NAME=value " prefixes for the command.
Result run(const std::string& args, const std::string& env = "") {
    TempDir scratch;
    auto o = scratch.path / "stdout", e = scratch.path / "stderr";
    std::string cmd = env + quote(binary()) + " " + args + " </dev/null >" + quote(o.string()) + " 2>" + quote(e.string());
    int st = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(o);
    r.err = slurp(e);
    return r;
}

const std::string kNoLibrary = "ALEXANDRIA_TORCH_LIBRARY=/nonexistent/libalexandria_torch.so ";

struct Described {
    std::string path, description;
};
// Every command that needs libtorch, with the description its own file registers.
const std::vector<Described> kTorchCommands = {
    {"dataset import", "Convert recordings (folder of audio + .txt, LJSpeech metadata.csv, or JSONL) into a dataset folder"},
    {"dataset prepare", "Encode every usable clip and the reference into the codes cache (DIR/.alexandria/)"},
    {"dataset build", "Synthesise a dataset from a voice description with a VoiceDesign model (restartable)"},
    {"train", "Train a LoRA voice adapter from a dataset folder"},
    {"eval", "Judge voice adapters: held-out loss, EOS/runaway, speaking rate, speaker similarity"},
    {"synth", "Speak text (or a JSONL script) in a voice"},
    {"adapter merge", "Fold an adapter into a standalone model folder"},
    {"model info", "Show a model folder's type, languages, speakers and sizes"},
};

}  // namespace

TEST_CASE("the executable itself does not link libtorch", "[cli][light]") {
    TempDir scratch;
    auto out = scratch.path / "ldd";
    REQUIRE(std::system(("ldd " + quote(binary()) + " >" + quote(out.string()) + " 2>&1").c_str()) == 0);
    std::string libs = slurp(out);
    CHECK(libs.find("libtorch") == std::string::npos);
    CHECK(libs.find("libc10") == std::string::npos);
}

TEST_CASE("light commands run with no libtorch to load", "[cli][light]") {
    auto help = run("--help", kNoLibrary);
    CHECK(help.code == 0);
    for (const auto& c : kTorchCommands) {
        auto word = c.path.substr(c.path.rfind(' ') + 1);
        CHECK(help.out.find(word) != std::string::npos);
    }
    CHECK(run("--version", kNoLibrary).code == 0);

    auto rec = run("recommend --samples 30 --json", kNoLibrary);
    CHECK(rec.code == 0);
    CHECK(rec.out.find("\"epochs\"") != std::string::npos);

    auto dir = (source_dir() / "examples" / "tiny-voice").string();
    CHECK(run("dataset check " + quote(dir) + " --json", kNoLibrary).code == 0);

    auto tok = run("tokenize --model " + quote((shared_dir() / "reference" / "text-tokenizer").string()) +
                       " 'Hello world.'",
                   kNoLibrary);
    CHECK(tok.code == 0);
    CHECK(!tok.out.empty());

    // Alexandria's published adapter folders hold the config but not the weights: read without libtorch, the
    // answer is the input error naming the missing file, not a library that failed to load.
    auto voice = (shared_dir() / "reference" / "voices" / "alexandria-sion").string();
    auto info = run("adapter info " + quote(voice), kNoLibrary);
    CHECK(info.code == 2);
    CHECK(info.err.find("adapter_model.safetensors not found") != std::string::npos);
}

TEST_CASE("a command that needs libtorch says what to install when it cannot be loaded", "[cli][light]") {
    auto r = run("train --model m --data d --out o", kNoLibrary);
    CHECK(r.code == 1);
    CHECK(r.err.find("alexandria train: error:") != std::string::npos);
    CHECK(r.err.find("tools/install-libtorch.sh") != std::string::npos);
    CHECK(r.err.find("/nonexistent/libalexandria_torch.so") != std::string::npos);
    auto g = run("dataset prepare x --model m", kNoLibrary);
    CHECK(g.code == 1);
    CHECK(g.err.find("alexandria dataset prepare: error:") != std::string::npos);
}

TEST_CASE("the light --help describes each libtorch command as its own file does", "[cli][light]") {
    for (const auto& c : kTorchCommands) {
        INFO(c.path);
        auto r = run(c.path + " --help");
        CHECK(r.code == 0);
        // CLI11 prints the description first; the light listing carries the same words.
        CHECK(r.out.find(c.description) != std::string::npos);
        auto word = c.path.substr(c.path.rfind(' ') + 1);
        auto parent = c.path.find(' ') == std::string::npos ? std::string() : c.path.substr(0, c.path.find(' '));
        auto listing = run(parent.empty() ? "--help" : parent + " --help", kNoLibrary);
        CHECK(listing.out.find(c.description.substr(0, 30)) != std::string::npos);
    }
}

TEST_CASE("bad usage of a light command is exit 2", "[cli][light]") {
    CHECK(run("recommend --samples nope", kNoLibrary).code == 2);
    CHECK(run("no-such-command", kNoLibrary).code == 2);
}
