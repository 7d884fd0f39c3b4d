// The default prompt set and --prompts files.
#include <catch2/catch.hpp>

#include <fstream>

#include "alexandria/eval/prompts.h"
#include "alexandria/io/error.h"
#include "support/test_support.h"

using namespace alexandria;
using namespace alexandria::eval;
using alexandria::test::TempDir;

namespace {
std::string write(const TempDir& t, const std::string& text) {
    auto p = (t / "prompts.txt").string();
    std::ofstream(p, std::ios::binary) << text;
    return p;
}
}  // namespace

TEST_CASE("the default prompts mix the seed's short utterances, sentences and one paragraph") {
    auto p = default_prompts();
    REQUIRE(p.size() == 7);
    CHECK(p[0].text == "Oh!");
    CHECK(p[1].text == "Hmm.");
    CHECK(p[2].text == "Right.");
    int shorts = 0, sentences = 0, paragraphs = 0;
    for (const auto& x : p) {
        CHECK(classify_prompt(x.text) == x.kind);  // the built-in kinds follow the same rule as a file's
        shorts += x.kind == PromptKind::Short;
        sentences += x.kind == PromptKind::Sentence;
        paragraphs += x.kind == PromptKind::Paragraph;
    }
    CHECK(shorts == 3);
    CHECK(sentences == 3);
    CHECK(paragraphs == 1);
    CHECK(p[0].id == "p01");
    CHECK(p[6].id == "p07");
}

TEST_CASE("prompt classification") {
    CHECK(classify_prompt("Oh!") == PromptKind::Short);
    CHECK(classify_prompt("Oh, right.") == PromptKind::Short);
    CHECK(classify_prompt("Oh, all right.") == PromptKind::Sentence);       // three words
    CHECK(classify_prompt("Extraordinarily!") == PromptKind::Sentence);     // one word, 15 characters
    CHECK(classify_prompt(std::string(199, 'a') + " b") == PromptKind::Paragraph);
    CHECK(classify_prompt(std::string(198, 'a') + " b") == PromptKind::Sentence);
}

TEST_CASE("prompts files: plain lines and JSON lines") {
    TempDir t;
    auto p = read_prompts(write(t, "# a comment\n\nOh!\r\n{\"text\": \"A line with an id.\", \"id\": \"intro\"}\n"
                                   "{\"text\": \"Forced long.\", \"kind\": \"paragraph\"}\n"));
    REQUIRE(p.size() == 3);
    CHECK(p[0].id == "p01");
    CHECK(p[0].text == "Oh!");
    CHECK(p[0].kind == PromptKind::Short);
    CHECK(p[1].id == "intro");
    CHECK(p[1].kind == PromptKind::Sentence);
    CHECK(p[2].id == "p03");
    CHECK(p[2].kind == PromptKind::Paragraph);
}

TEST_CASE("bad prompts files name the line") {
    TempDir t;
    auto fails_with = [&](const std::string& text, const std::string& needle) {
        INFO(text);
        try {
            read_prompts(write(t, text));
            FAIL("no error");
        } catch (const InputError& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find(needle) != std::string::npos);
        }
    };
    fails_with("Oh!\n{\"text\": 3}\n", "prompts.txt:2: field 'text'");
    fails_with("{nope\n", "prompts.txt:1: invalid JSON");
    fails_with("{\"text\": \"x y\", \"kind\": \"huge\"}\n", "field 'kind'");
    fails_with("{\"text\": \"x\", \"id\": \"../evil\"}\n", "field 'id'");
    fails_with("{\"text\": \"x\", \"id\": \"a\"}\n{\"text\": \"y\", \"id\": \"a\"}\n", "used twice");
    fails_with("...\n", "nothing to speak");
    fails_with("# only a comment\n\n", "no prompt");
    CHECK_THROWS_AS(read_prompts((t / "missing.txt").string()), InputError);
}
