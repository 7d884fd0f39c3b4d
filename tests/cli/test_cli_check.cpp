// `alexandria recommend` and `alexandria dataset check` through the real binary (ALEXANDRIA_BINARY): exit codes,
// --json on stdout only, human text on stderr, the bad-input corpus.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "dataset/check_test_util.h"

using namespace check_test;

namespace {

struct Result {
    int code = -1;
    std::string out, err;
};

std::string alexandria_binary() {
    const char* v = std::getenv("ALEXANDRIA_BINARY");
    return v ? v : (fs::current_path() / "alexandria").string();
}

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

Result run_cli(const std::string& args) {
    TempDir scratch;
    auto o = scratch.path / "stdout", e = scratch.path / "stderr";
    std::string cmd = shell_quote(alexandria_binary()) + " " + args + " </dev/null >" + shell_quote(o.string()) +
                      " 2>" + shell_quote(e.string());
    int st = std::system(cmd.c_str());
    Result r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = read_text(o);
    r.err = read_text(e);
    return r;
}

nlohmann::json parse_json(const Result& r) {
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE_NOTHROW(nlohmann::json::parse(r.out));
    return nlohmann::json::parse(r.out);
}

}  // namespace

TEST_CASE("recommend --samples: the Quick Reference through the command line", "[cli][recommend]") {
    auto r30 = run_cli("recommend --samples 30 --json");
    REQUIRE(r30.code == 0);
    auto j = parse_json(r30);
    CHECK(j["epochs"].get<int>() >= 10);
    CHECK(j["epochs"].get<int>() <= 15);
    CHECK(j["lr"].get<double>() == Approx(5e-6).epsilon(0.1));
    CHECK(j["lora_r"] == 64);
    CHECK(j["lora_alpha"] == 128);
    CHECK(j["grad_accum"] == 4);
    CHECK(j["batch_size"] == 1);
    CHECK(j["exposure_band"] == "target");

    auto male = parse_json(run_cli("recommend --samples 61 --lr 1e-6 --json"));
    CHECK((male["epochs"] == 9 || male["epochs"] == 10));
    auto female = parse_json(run_cli("recommend --samples 121 --lr 2e-6 --json"));
    CHECK(female["epochs"] == 3);
    auto fixed = parse_json(run_cli("recommend --samples 121 --epochs 15 --lr 3e-6 --json"));
    CHECK(fixed["exposure"] == 1815);
    CHECK(fixed["exposure_band"] == "overfit");
    CHECK(fixed["warnings"].size() >= 1);

    auto human = run_cli("recommend --samples 60");
    CHECK(human.code == 0);
    CHECK(human.out.empty());
    CHECK(human.err.find("learning rate") != std::string::npos);
}

TEST_CASE("recommend DIR counts usable clips like dataset check", "[cli][recommend]") {
    auto r = run_cli("recommend " + shell_quote(example_dataset().string()) + " --json");
    REQUIRE(r.code == 0);
    auto j = parse_json(r);
    CHECK(j["samples"] == 9);
    CHECK(j["source"]["usable"] == 9);
    CHECK(j["warnings"].size() >= 1);  // fewer than 10 samples

    // Over --max-seconds clips are not counted.
    auto shorter = parse_json(run_cli("recommend " + shell_quote(example_dataset().string()) +
                                      " --max-seconds 0.6 --json"));
    CHECK(shorter["samples"].get<int>() < 9);

    auto bad = run_cli("recommend " + shell_quote((bad_corpus() / "invalid-json").string()));
    CHECK(bad.code == 2);
    CHECK(bad.err.find("metadata.jsonl:2") != std::string::npos);
}

TEST_CASE("recommend: bad usage exits 2", "[cli][recommend]") {
    CHECK(run_cli("recommend").code == 2);
    CHECK(run_cli("recommend --samples 0").code == 2);
    CHECK(run_cli("recommend --samples 30 --lr -1").code == 2);
    CHECK(run_cli("recommend --samples 30 --lr nan").code == 2);
    CHECK(run_cli("recommend --samples 30 --epochs 0").code == 2);
    CHECK(run_cli("recommend " + shell_quote(example_dataset().string()) + " --samples 3").code == 2);
    auto help = run_cli("recommend --help");
    CHECK(help.code == 0);
    CHECK(help.out.find("--lora-r") != std::string::npos);
    CHECK(help.out.find("64") != std::string::npos);
}

TEST_CASE("dataset check on the example dataset", "[cli][check]") {
    auto r = run_cli("dataset check " + shell_quote(example_dataset().string()) + " --json");
    REQUIRE(r.code == 0);
    auto j = parse_json(r);
    CHECK(j["trainable"] == true);
    CHECK(j["usable"] == 9);
    CHECK(j["recommendation"]["samples"] == 9);
    CHECK(j["sample_rates"]["24000"] == 9);

    auto human = run_cli("dataset check " + shell_quote(example_dataset().string()));
    CHECK(human.code == 0);
    CHECK(human.out.empty());
    CHECK(human.err.find("usable clips") != std::string::npos);
    CHECK(human.err.find("result: trainable") != std::string::npos);

    auto help = run_cli("dataset check --help");
    CHECK(help.code == 0);
    CHECK(help.out.find("--max-seconds") != std::string::npos);
    CHECK(help.out.find("30") != std::string::npos);
}

TEST_CASE("dataset check on the bad-input corpus", "[cli][check][bad]") {
    auto manifest = nlohmann::json::parse(read_text(bad_corpus() / "manifest.json"));
    for (auto& m : manifest) {
        const std::string name = m["case"];
        TempDir t;
        auto dir = t.path / name;
        fs::copy(bad_corpus() / name, dir, fs::copy_options::recursive);
        if (m.contains("symlink_loop")) {
            std::vector<std::string> loop = m["symlink_loop"];
            for (size_t i = 0; i < loop.size(); ++i) {
                std::error_code ec;
                fs::remove(dir / loop[i], ec);  // in case a checkout stored them
                fs::create_symlink(loop[(i + 1) % loop.size()], dir / loop[i]);
            }
        }
        auto r = run_cli("dataset check " + shell_quote(dir.string()) + " --json");
        INFO(name << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.code == m["exit"].get<int>());
        auto j = parse_json(r);
        bool found = false;
        for (auto& p : j["problems"])
            if (p["code"] == m["code"] && p["message"].get<std::string>().find(m["expect"].get<std::string>()) !=
                                              std::string::npos)
                found = true;
        CHECK(found);

        // Human output for a few (each run of the real binary loads libtorch, so not for every case).
        if (name == "truncated-wav" || name == "invalid-json" || name == "path-escape") {
            auto human = run_cli("dataset check " + shell_quote(dir.string()));
            CHECK(human.code == m["exit"].get<int>());
            CHECK(human.out.empty());
            CHECK(human.err.find(m["expect"].get<std::string>()) != std::string::npos);
        }
    }
    auto missing = run_cli("dataset check /nonexistent/alexandria-folder");
    CHECK(missing.code == 2);
    CHECK(missing.err.find("not found") != std::string::npos);
    CHECK(run_cli("dataset check").code == 2);
}
