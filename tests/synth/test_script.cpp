// Script parsing, sharding, naming, chunking and book assembly (no model).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "alexandria/io/error.h"
#include "alexandria/synth/script.h"
#include "support/test_support.h"

using namespace alexandria;
using namespace alexandria::synth;

TEST_CASE("script lines parse; bad lines are reported with their line numbers while the others stay") {
    test::TempDir tmp;
    auto path = (tmp / "book.jsonl").string();
    std::ofstream(path) << R"({"text": "Chapter one.", "speaker": "narrator", "seed": 7})" << "\n"
                        << "\n"  // blank: skipped, not an entry
                        << R"({"text": "Hello", "voice": "anna", "pause_after": 1.5, "out": "a/b.wav"})" << "\n"
                        << R"({"text": )" << "\n"                                   // bad JSON
                        << R"({"speaker": "narrator"})" << "\n"                     // no text
                        << R"({"text": "   "})" << "\n"                             // empty text
                        << R"({"text": "x", "seed": "seven"})" << "\n"              // ill-typed
                        << R"({"text": "Last.", "instruct": "slowly", "language": "english"})" << "\n";
    auto s = read_script(path);
    REQUIRE(s.lines.size() == 3);
    CHECK(s.lines[0].line == 1);
    CHECK(s.lines[0].index == 0);
    CHECK(*s.lines[0].seed == 7);
    CHECK(s.lines[0].identity() == "narrator");
    CHECK(s.lines[1].line == 3);
    CHECK(s.lines[1].index == 1);
    CHECK(*s.lines[1].pause_after == 1.5);
    CHECK(s.lines[1].identity() == "anna");
    CHECK(s.lines[1].out == "a/b.wav");
    CHECK(s.lines[2].line == 8);
    CHECK(s.lines[2].index == 6);
    CHECK(s.lines[2].instruct == "slowly");
    REQUIRE(s.errors.size() == 4);
    CHECK(s.errors[0].line == 4);
    CHECK(s.errors[1].line == 5);
    CHECK(s.errors[1].message.find("'text'") != std::string::npos);
    CHECK(s.errors[1].message.find(":5:") != std::string::npos);
    CHECK(s.errors[2].line == 6);
    CHECK(s.errors[3].line == 7);
    CHECK(s.errors[3].message.find("seed") != std::string::npos);
    CHECK_THROWS_AS(read_script((tmp / "missing.jsonl").string()), InputError);
}

TEST_CASE("every entry is in exactly one shard for N = 1..7") {
    for (int n = 1; n <= 7; ++n) {
        for (int index = 0; index < 50; ++index) {
            int hits = 0;
            for (int k = 1; k <= n; ++k) hits += Shard{k, n}.contains(index);
            CHECK(hits == 1);
        }
        // and the parsed form agrees
        for (int k = 1; k <= n; ++k) {
            auto sh = parse_shard(fmt::format("{}/{}", k, n));
            CHECK(sh.k == k);
            CHECK(sh.n == n);
        }
    }
    CHECK_THROWS_AS(parse_shard("0/3"), InputError);
    CHECK_THROWS_AS(parse_shard("4/3"), InputError);
    CHECK_THROWS_AS(parse_shard("3"), InputError);
    CHECK_THROWS_AS(parse_shard("a/b"), InputError);
}

TEST_CASE("output names come from `out` or the line number") {
    ScriptLine l;
    l.line = 12;
    CHECK(line_output_name(l, "wav") == "line-00012.wav");
    CHECK(line_output_name(l, "flac") == "line-00012.flac");
    l.out = "ch1/intro.wav";
    CHECK(line_output_name(l, "wav") == "ch1/intro.wav");
}

TEST_CASE("long text splits at sentence ends into chunks within the limit") {
    std::string text =
        "The library was old. Its shelves bent under the weight of centuries! Who had built it? Nobody knew. "
        "Dr. Smith paid 3.50 for the map.";
    auto chunks = split_text(text, 50);
    REQUIRE(chunks.size() >= 3);
    std::string rejoined;
    for (auto& c : chunks) {
        CHECK(count_code_points(c) <= 50);
        CHECK_FALSE(c.empty());
        CHECK(c.front() != ' ');
        CHECK(c.back() != ' ');
        rejoined += (rejoined.empty() ? "" : " ") + c;
    }
    CHECK(rejoined == text);
    CHECK(chunks[0] == "The library was old.");
    // Neither "3.50" nor the abbreviation "Dr." ends a sentence.
    CHECK(chunks.back() == "Dr. Smith paid 3.50 for the map.");

    // Within the limit or no limit: one chunk, trimmed.
    CHECK(split_text("  Short one.  ", 100) == std::vector<std::string>{"Short one."});
    CHECK(split_text(text, 0).size() == 1);
    CHECK(split_text("   ", 10).empty());

    // A sentence over the limit splits at commas, then spaces.
    auto c2 = split_text("one two three, four five six, seven eight nine ten eleven twelve.", 20);
    for (auto& c : c2) CHECK(count_code_points(c) <= 20);
    CHECK(c2[0] == "one two three,");

    // CJK full stops need no following space; code points, not bytes, are counted.
    auto c3 = split_text("你好。今天天气很好。我们走吧！", 7);
    CHECK(c3 == std::vector<std::string>{"你好。", "今天天气很好。", "我们走吧！"});
    // Closing quotes stay with their sentence.
    auto c4 = split_text("He said \"stop.\" Then he left the room quietly.", 20);
    CHECK(c4[0] == "He said \"stop.\"");
    // A single over-long word is cut rather than exceeding the limit.
    for (auto& c : split_text(std::string(50, 'a'), 20)) CHECK(count_code_points(c) <= 20);
}

TEST_CASE("pauses: 500 ms between speakers, 250 ms same speaker, pause_after wins") {
    ScriptLine a, b, c;
    a.speaker = "narrator";
    b.speaker = "narrator";
    c.voice = "anna";
    CHECK(pause_between(a, b) == 0.25);
    CHECK(pause_between(b, c) == 0.5);
    b.pause_after = 2.0;
    CHECK(pause_between(b, c) == 2.0);
    CHECK(pause_samples(0.25, 24000) == 6000);
    CHECK(pause_samples(0.5, 24000) == 12000);

    auto book = join_audio({{1.f, 1.f}, {2.f}, {3.f, 3.f, 3.f}}, {2, 1});
    CHECK(book == std::vector<float>{1.f, 1.f, 0.f, 0.f, 2.f, 0.f, 3.f, 3.f, 3.f});
}

TEST_CASE("validate_script stops on any bad line, naming file:line:field, and lists them all") {
    test::TempDir tmp;
    auto path = (tmp / "book.jsonl").string();
    std::ofstream(path) << R"({"text": "One.", "voice": "narrator"})" << "\n"
                        << R"({"text": "Two.", "n": 8e458})" << "\n"                // number overflow
                        << R"({"text": ["Three."]})" << "\n"                       // non-string text
                        << R"({"text": "Four.", "voice": "ghost"})" << "\n"        // unknown voice
                        << R"({"text": "Five.", "speaker": "Nobody"})" << "\n"     // unknown speaker
                        << R"({"text": "Six.", "speaker": "RYAN"})" << "\n";       // case-insensitive
    auto s = read_script(path);
    REQUIRE(s.errors.size() == 2);
    CHECK(s.errors[0].message == path + ":2: invalid JSON: number overflow parsing '8e458'");
    ScriptCheck check;
    check.voice = [](const std::string& v) {
        if (v != "narrator") throw InputError("voice '" + v + "': not a --voice name");
    };
    check.speakers = {"ryan", "vivian"};
    try {
        validate_script(s, check);
        FAIL("no error");
    } catch (const InputError& e) {
        std::string m = e.what();
        CHECK(m.rfind(path + ":2: invalid JSON", 0) == 0);
        CHECK(m.find("4 bad lines in all") != std::string::npos);
        CHECK(m.find(path + ":3: field 'text': expected a string, got array") != std::string::npos);
        CHECK(m.find(path + ":4: field 'voice': voice 'ghost'") != std::string::npos);
        CHECK(m.find(path + ":5: field 'speaker': unknown speaker 'Nobody'") != std::string::npos);
        CHECK(m.find(":6:") == std::string::npos);
    }
    // without a speaker list (clone models) any speaker is an identity; a clean script passes
    std::ofstream(path) << R"({"text": "One.", "voice": "narrator", "speaker": "anyone"})" << "\n";
    CHECK_THROWS_WITH(validate_script(read_script(path), check), Catch::Contains("unknown speaker 'anyone'"));
    check.speakers.clear();
    CHECK_NOTHROW(validate_script(read_script(path), check));
}
