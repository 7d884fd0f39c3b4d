#include <catch2/catch.hpp>

#include "alexandria/dataset/dataset.h"
#include "alexandria/io/error.h"
#include "check_test_util.h"

using namespace alexandria;
using namespace alexandria::dataset;
using namespace check_test;

TEST_CASE("load the bundled example dataset", "[dataset][load]") {
    auto ds = Dataset::load(example_dataset());
    REQUIRE(ds.problems.empty());
    REQUIRE(ds.entries.size() == 9);
    CHECK(!ds.has_errors());
    const auto& first = ds.entries.front();
    CHECK(first.line == 1);
    CHECK(first.audio == "sample_000.wav");
    CHECK(first.text == "Oh!");
    CHECK(first.audio_path == ds.dir / "sample_000.wav");
    CHECK(fs::exists(first.audio_path));
    CHECK(!first.ref_audio);
    for (auto& e : ds.entries) {
        CHECK(e.problems.empty());
        CHECK(e.audio_path.parent_path() == ds.dir);
    }
    REQUIRE(ds.ref_wav);
    CHECK(*ds.ref_wav == ds.dir / "ref.wav");
    REQUIRE(ds.ref_text);
    CHECK(*ds.ref_text == read_text(example_dataset() / "ref_text.txt"));
    CHECK(ds.ref_text->back() != '\n');
    std::string source;
    auto ref = ds.reference_audio(&source);
    REQUIRE(ref);
    CHECK(source == "ref.wav");
    CHECK(ds.display(first.audio_path) == "sample_000.wav");
}

TEST_CASE("metadata fields: audio alias, ref_audio, line numbers", "[dataset][load]") {
    TempDir t;
    write_bytes(t.path / "a.wav", wav_pcm16(tone(0.5, 24000), 24000));
    fs::create_directory(t.path / "clips");
    write_bytes(t.path / "clips" / "b.wav", wav_pcm16(tone(0.5, 24000), 24000));
    write_bytes(t.path / "metadata.jsonl",
                "{\"audio\": \"a.wav\", \"text\": \"One.\", \"ref_audio\": \"clips/b.wav\"}\n"
                "\n"
                "{\"audio_filepath\": \"clips/b.wav\", \"text\": \"Two words.\", \"extra\": 1}\r\n");
    auto ds = Dataset::load(t.path);
    REQUIRE(ds.entries.size() == 2);
    CHECK(ds.problems.empty());
    CHECK(ds.entries[0].audio == "a.wav");
    CHECK(ds.entries[0].audio_path == fs::canonical(t.path) / "a.wav");
    REQUIRE(ds.entries[0].ref_audio);
    CHECK(*ds.entries[0].ref_audio_path == fs::canonical(t.path) / "clips" / "b.wav");
    CHECK(ds.entries[1].line == 3);
    CHECK(ds.entries[1].text == "Two words.");
    std::string source;
    auto ref = ds.reference_audio(&source);
    REQUIRE(ref);
    CHECK(*ref == fs::canonical(t.path) / "clips" / "b.wav");
    CHECK(source == "metadata line 1 ref_audio");
    CHECK(!ds.ref_wav);
    CHECK(!ds.ref_text);
}

TEST_CASE("metadata problems name file, line and field and never throw", "[dataset][load]") {
    TempDir t;
    write_bytes(t.path / "metadata.jsonl",
                "{\"audio_filepath\": \"a.wav\"}\n"
                "{\"audio_filepath\": 3, \"text\": \"x\"}\n"
                "{\"text\": \"x\"}\n"
                "not json\n"
                "{\"audio_filepath\": \"../up.wav\", \"text\": \"x\"}\n"
                "{\"audio_filepath\": \"a.wav\", \"text\": [1]}\n");
    auto ds = Dataset::load(t.path);
    REQUIRE(ds.entries.size() == 5);
    CHECK(ds.has_errors());
    auto first_error = [](const Entry& e) { return e.problems.at(0); };
    auto p1 = first_error(ds.entries[0]);
    CHECK(p1.line == 1);
    CHECK(p1.field == "text");
    CHECK(p1.code == "missing-field");
    CHECK(p1.message.find("metadata.jsonl:1: field 'text': missing") != std::string::npos);
    CHECK(first_error(ds.entries[1]).code == "invalid-field");
    CHECK(first_error(ds.entries[1]).field == "audio_filepath");
    CHECK(first_error(ds.entries[2]).message.find("metadata.jsonl:3: field 'audio_filepath': missing") !=
          std::string::npos);
    REQUIRE(ds.problems.size() == 1);
    CHECK(ds.problems[0].line == 4);
    CHECK(ds.problems[0].code == "invalid-json");
    CHECK(first_error(ds.entries[3]).code == "path-outside");
    CHECK(first_error(ds.entries[3]).line == 5);
    CHECK(ds.entries[3].audio_path.empty());
    CHECK(first_error(ds.entries[4]).message.find("field 'text': expected a string") != std::string::npos);
}

TEST_CASE("a folder that is not there, or is a file, is an input error", "[dataset][load]") {
    TempDir t;
    CHECK_THROWS_AS(Dataset::load(t.path / "nope"), InputError);
    write_bytes(t.path / "file", "x");
    CHECK_THROWS_AS(Dataset::load(t.path / "file"), InputError);
    auto ds = Dataset::load(t.path);  // no metadata: recorded, not thrown
    REQUIRE(ds.problems.size() == 1);
    CHECK(ds.problems[0].code == "missing-metadata");
    fs::create_directory(t.path / "metadata.jsonl");
    auto ds2 = Dataset::load(t.path);
    REQUIRE(ds2.problems.size() == 1);
    CHECK(ds2.problems[0].code == "unreadable-metadata");
}

TEST_CASE("blank text", "[dataset][load]") {
    CHECK(blank(""));
    CHECK(blank(" \t\r\n"));
    CHECK(blank("\xC2\xA0 \xE3\x80\x80"));
    CHECK(!blank("Oh!"));
    CHECK(!blank("  a "));
}
