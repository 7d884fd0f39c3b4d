// Stage 1: text ids identical to transformers' AutoTokenizer (the Rust `tokenizers` fast tokenizer) on the real
// Qwen3-TTS tokenizer files, for ≥1000 lines: many scripts, emoji, control and format characters, long numbers,
// whitespace runs, every added token, the chat templates (tools/tokenizer-reference/generate.py --extra-corpus).
#include <catch2/catch.hpp>

#include "alexandria/text/tokenizer.h"
#include "parity_util.h"

using namespace alexandria;
using namespace alexandria::parity;

TEST_CASE("stage 1: tokenizer ids equal AutoTokenizer's for the whole corpus", "[parity][stage1]") {
    nlohmann::json doc = load_json("tokenizer.json");
    const auto& cases = doc.at("cases");
    REQUIRE(cases.size() >= 1000);
    text::Tokenizer tok = text::Tokenizer::from_folder((shared_dir() / "reference" / "text-tokenizer").string());
    size_t mismatches = 0, decode_mismatches = 0;
    int64_t ids = 0;
    for (const auto& c : cases) {
        const std::string s = c.at("text").get<std::string>();
        const auto want = c.at("ids").get<std::vector<int32_t>>();
        const auto got = tok.encode(s);
        ids += int64_t(want.size());
        if (got != want) {
            ++mismatches;
            UNSCOPED_INFO("text " << nlohmann::json(s).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace)
                                  << "\n  want " << nlohmann::json(want).dump() << "\n  got  "
                                  << nlohmann::json(got).dump());
        }
        // --compact leaves "decoded" out where it equals the text.
        const std::string want_decoded = c.contains("decoded") ? c.at("decoded").get<std::string>() : s;
        if (!want.empty() && tok.decode(want) != want_decoded) ++decode_mismatches;
    }
    record_ids("1 tokenizer (" + std::to_string(cases.size()) + " lines)", "encode", mismatches == 0, ids);
    CHECK(mismatches == 0);
    CHECK(decode_mismatches == 0);
}
