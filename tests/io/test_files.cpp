#include <catch2/catch.hpp>

#include <fstream>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/jsonl.h"
#include "alexandria/io/model_location.h"
#include "support/test_support.h"
#include <nlohmann/json.hpp>

using namespace alexandria;
using alexandria::test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("atomic writes replace the file and leave no temp file on failure") {
    TempDir dir;
    auto p = dir / "out.txt";
    io::write_file_atomic(p, "one");
    REQUIRE(io::read_file(p) == "one");
    io::write_file_atomic(p, "two");
    REQUIRE(io::read_file(p) == "two");
    REQUIRE_THROWS(io::write_atomic(p, [](const fs::path& tmp) {
        std::ofstream(tmp) << "partial";
        throw Error("boom");
    }));
    REQUIRE(io::read_file(p) == "two");
    int n = 0;
    for (auto& e : fs::directory_iterator(dir.path)) (void)e, ++n;
    REQUIRE(n == 1);
}

TEST_CASE("directories are replaced atomically") {
    TempDir dir;
    auto d = dir / "adapter";
    io::replace_directory_atomic(d, [](const fs::path& t) { std::ofstream(t / "a") << "1"; });
    io::replace_directory_atomic(d, [](const fs::path& t) { std::ofstream(t / "b") << "2"; });
    REQUIRE(!fs::exists(d / "a"));
    REQUIRE(io::read_file(d / "b") == "2");
    REQUIRE_THROWS(io::replace_directory_atomic(d, [](const fs::path& t) { throw Error("fail"); }));
    REQUIRE(io::read_file(d / "b") == "2");
}

TEST_CASE("hashes are stable and content based") {
    TempDir dir;
    io::write_file_atomic(dir / "a", "hello");
    io::write_file_atomic(dir / "b", "hello");
    REQUIRE(io::hash_file(dir / "a") == io::hash_file(dir / "b"));
    REQUIRE(io::hash_file(dir / "a") == io::hash_string("hello"));
    REQUIRE(io::hash_string("hello") == "a430d84680aabd0b");  // FNV-1a 64 reference value
}

TEST_CASE("paths resolve inside the dataset folder only") {
    TempDir dir;
    fs::create_directories(dir / "ds" / "sub");
    std::ofstream(dir / "ds" / "sub" / "a.wav") << "x";
    std::ofstream(dir / "outside.wav") << "x";
    REQUIRE(io::resolve_inside(dir / "ds", "sub/a.wav", "m:1") == fs::canonical(dir / "ds" / "sub" / "a.wav"));
    REQUIRE_THROWS_WITH(io::resolve_inside(dir / "ds", "../outside.wav", "m:1"), Catch::Contains("outside the dataset folder"));
    REQUIRE_THROWS_WITH(io::resolve_inside(dir / "ds", (dir / "outside.wav").string(), "m:1"), Catch::Contains("outside"));
    fs::create_symlink(dir / "outside.wav", dir / "ds" / "link.wav");
    REQUIRE_THROWS_WITH(io::resolve_inside(dir / "ds", "link.wav", "m:1"), Catch::Contains("outside"));
    fs::create_symlink(dir / "ds" / "loop2", dir / "ds" / "loop1");
    fs::create_symlink(dir / "ds" / "loop1", dir / "ds" / "loop2");
    REQUIRE_THROWS_WITH(io::resolve_inside(dir / "ds", "loop1", "m:3"), Catch::Contains("m:3"));
}

TEST_CASE("JSONL errors name file, line and field") {
    TempDir dir;
    auto p = (dir / "m.jsonl").string();
    io::write_file_atomic(p, "{\"text\": \"a\"}\n\n[1]\n{bad\n{\"text\": 5}\n\xff\xfe\n");
    std::vector<std::string> errors;
    std::vector<int> good;
    io::read_jsonl(p, [&](int line, const nlohmann::json& o) { good.push_back(line); },
                   [&](int line, const std::string& m) { errors.push_back(m); });
    REQUIRE(good == std::vector<int>{1, 5});
    REQUIRE(errors.size() == 3);
    REQUIRE_THAT(errors[0], Catch::Contains("m.jsonl:3: expected a JSON object"));
    REQUIRE_THAT(errors[1], Catch::Contains("m.jsonl:4: invalid JSON"));
    REQUIRE_THAT(errors[2], Catch::Contains("m.jsonl:6: not valid UTF-8"));
    REQUIRE_THROWS_AS(io::read_jsonl(p, [](int, const nlohmann::json&) {}), InputError);
    auto obj = nlohmann::json::parse("{\"text\": 5}");
    REQUIRE_THROWS_WITH(io::require_string(obj, "text", "m.jsonl:5"), "m.jsonl:5: field 'text': expected a string, got number");
    REQUIRE_THROWS_WITH(io::require_string(obj, "audio", "m.jsonl:5"), "m.jsonl:5: missing field 'audio'");
    REQUIRE_THROWS_WITH(io::read_jsonl((dir / "none.jsonl").string(), [](int, const nlohmann::json&) {}), Catch::Contains("none.jsonl"));
}

TEST_CASE("every JSON library error is an input error naming the file and line") {
    TempDir dir;
    auto p = (dir / "m.jsonl").string();
    io::write_file_atomic(p, "{\"text\": \"a\"}\n{\"text\": \"Hi.\", \"x\": 8e458}\n{\"text\": \"b\", \"y\": -1e400}\n");
    std::vector<std::string> errors;
    io::read_jsonl(p, [](int, const nlohmann::json&) {}, [&](int, const std::string& m) { errors.push_back(m); });
    REQUIRE(errors.size() == 2);
    CHECK(errors[0] == p + ":2: invalid JSON: number overflow parsing '8e458'");
    CHECK_THAT(errors[1], Catch::StartsWith(p + ":3: invalid JSON: number overflow"));
    REQUIRE_THROWS_WITH(io::read_jsonl(p, [](int, const nlohmann::json&) {}), Catch::StartsWith(p + ":2: "));
    auto whole = (dir / "config.json").string();
    io::write_file_atomic(whole, "{\"a\": 1e999}");
    REQUIRE_THROWS_WITH(io::read_json_file(whole), whole + ": invalid JSON: number overflow parsing '1e999'");
    io::write_file_atomic(whole, "{\"a\": [1, 2}");
    REQUIRE_THROWS_WITH(io::read_json_file(whole), Catch::StartsWith(whole + ": invalid JSON at byte 12: "));
    CHECK(io::parse_json_text("[1]", "x") == nlohmann::json::array({1}));
}

TEST_CASE("UTF-8 validation rejects overlongs, surrogates and truncation") {
    size_t off = 0;
    REQUIRE(io::valid_utf8("héllo 你好 😀"));
    REQUIRE_FALSE(io::valid_utf8("ab\xC0\xAF", &off));
    REQUIRE(off == 2);
    REQUIRE_FALSE(io::valid_utf8("\xED\xA0\x80"));
    REQUIRE_FALSE(io::valid_utf8("\xE4\xBD"));
    REQUIRE_FALSE(io::valid_utf8("\xF5\x80\x80\x80"));
}

TEST_CASE("models are found as folders or in the Hugging Face cache") {
    TempDir dir;
    fs::create_directories(dir / "plain");
    std::ofstream(dir / "plain" / "config.json") << "{}";
    REQUIRE(io::locate_model((dir / "plain").string()) == (dir / "plain").string());
    auto snap = dir / "hub" / "models--Qwen--Qwen3-TTS-12Hz-1.7B-Base" / "snapshots" / "abc123";
    fs::create_directories(snap);
    std::ofstream(snap / "config.json") << "{}";
    fs::create_directories(dir / "hub" / "models--Qwen--Qwen3-TTS-12Hz-1.7B-Base" / "refs");
    std::ofstream(dir / "hub" / "models--Qwen--Qwen3-TTS-12Hz-1.7B-Base" / "refs" / "main") << "abc123\n";
    setenv("HF_HUB_CACHE", (dir / "hub").c_str(), 1);
    REQUIRE(io::locate_model("Qwen/Qwen3-TTS-12Hz-1.7B-Base") == snap.string());
    try {
        io::locate_model("Qwen/Nope");
        FAIL("expected an error");
    } catch (const InputError& e) {
        REQUIRE_THAT(e.what(), Catch::Contains("models--Qwen--Nope"));
        REQUIRE_THAT(e.what(), Catch::Contains("never downloads"));
    }
    unsetenv("HF_HUB_CACHE");
    REQUIRE_THROWS_WITH(io::locate_model(dir.path.string()), Catch::Contains("no config.json"));
}
