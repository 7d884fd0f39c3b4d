// The text tokenizer against ids from an independent implementation (tests/data/tokenizer/expected.json,
// made by tools/tokenizer-reference/generate.js), plus NFC, templates, errors and the tiny tokenizer.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/text/prompt.h"
#include "alexandria/text/tokenizer.h"

namespace fs = std::filesystem;
using alexandria::InputError;
using namespace alexandria::text;

namespace {

fs::path source_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SOURCE_DIR")) return s;
    return fs::path(__FILE__).parent_path().parent_path().parent_path();
}
fs::path shared_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SHARED_DIR")) return s;
    return source_dir().parent_path() / "shared";
}
fs::path real_tokenizer_dir() { return shared_dir() / "reference" / "text-tokenizer"; }

const Tokenizer& real() {
    static const Tokenizer tok = Tokenizer::from_folder(real_tokenizer_dir().string());
    return tok;
}

const nlohmann::json& expected() {
    static const nlohmann::json j = [] {
        std::ifstream f(source_dir() / "tests" / "data" / "tokenizer" / "expected.json");
        REQUIRE(f.good());
        return nlohmann::json::parse(f);
    }();
    return j;
}

struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("alexandria-text-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

void write(const fs::path& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary);
    f << s;
}

std::string read_all(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string escaped(const std::string& s) { return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

TEST_CASE("the real tokenizer loads with its vocabulary, merges and added tokens", "[text]") {
    const Tokenizer& tok = real();
    CHECK(tok.merge_count() == 151387);
    CHECK(tok.added_tokens().size() == 33);
    CHECK(tok.vocab_size() == 151676);
    CHECK(tok.added_tokens().front().id == 151643);
    CHECK(tok.added_tokens().back().id == 151675);
    CHECK(tok.added_token_id("<|im_start|>") == token_ids::im_start);
    CHECK(tok.added_token_id("<|im_end|>") == token_ids::im_end);
    CHECK(tok.added_token_id("<tts_pad>") == token_ids::tts_pad);
    CHECK(tok.added_token_id("<tts_text_bos>") == token_ids::tts_text_bos);
    CHECK(tok.added_token_id("<tts_text_eod>") == token_ids::tts_text_eod);
    CHECK(tok.token_to_id("assistant") == token_ids::assistant);
    CHECK(tok.token_to_id("user") == token_ids::user);
    CHECK(tok.token_to_id("\xC4\x8A") == token_ids::newline);  // "Ċ", the byte-level form of "\n"
    CHECK(tok.id_to_token(9707) == "Hello");
    CHECK(tok.normalizes_nfc());
    CHECK_THROWS_AS(tok.added_token_id("<nope>"), InputError);
}

TEST_CASE("every corpus line encodes id for id like the reference implementation", "[text]") {
    const Tokenizer& tok = real();
    const auto& cases = expected().at("cases");
    REQUIRE(cases.size() > 400);
    size_t mismatches = 0;
    for (const auto& c : cases) {
        const std::string text = c.at("text");
        const std::vector<int32_t> want = c.at("ids").get<std::vector<int32_t>>();
        const std::vector<int32_t> got = tok.encode(text);
        if (got != want) {
            ++mismatches;
            UNSCOPED_INFO("text " << escaped(text) << "\n  want " << nlohmann::json(want).dump() << "\n  got  "
                                  << nlohmann::json(got).dump());
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("decode(encode(s)) == NFC(s) for the corpus, and NFC matches the reference", "[text]") {
    const Tokenizer& tok = real();
    for (const auto& c : expected().at("cases")) {
        const std::string text = c.at("text"), want_nfc = c.at("nfc");
        INFO("text " << escaped(text));
        CHECK(nfc(text) == want_nfc);
        CHECK(tok.decode(tok.encode(text)) == want_nfc);
        CHECK(tok.decode(c.at("ids").get<std::vector<int32_t>>()) == c.at("decoded").get<std::string>());
    }
}

TEST_CASE("added tokens are matched first and never split", "[text]") {
    const Tokenizer& tok = real();
    for (const AddedToken& a : tok.added_tokens()) {
        INFO(a.content);
        CHECK(tok.encode(a.content) == std::vector<int32_t>{a.id});
        const auto inside = tok.encode("Hello" + a.content + "world");
        REQUIRE(inside.size() == 3);
        CHECK(inside[0] == 9707);
        CHECK(inside[1] == a.id);
        CHECK(tok.decode(inside) == "Hello" + a.content + "world");
    }
    // Leftmost-longest: a partial token is ordinary text; two adjacent tokens are two ids.
    CHECK(tok.encode("<|im_start|><|im_end|>") == std::vector<int32_t>{151644, 151645});
    const auto partial = tok.encode("<|im_start");
    CHECK(std::find(partial.begin(), partial.end(), 151644) == partial.end());
    // skip_special drops special added tokens but keeps non-special ones such as <think>.
    CHECK(tok.decode(tok.encode("<|im_start|>a<think>b<tts_pad>"), true) == "a<think>b");
}

TEST_CASE("the pre-tokenizer splits like the Qwen2 regex", "[text]") {
    const Tokenizer& tok = real();
    using V = std::vector<std::string>;
    CHECK(tok.pre_tokenize("Hello  world") == V{"Hello", " ", " world"});
    CHECK(tok.pre_tokenize("I'M here") == V{"I", "'M", " here"});
    CHECK(tok.pre_tokenize("abc123") == V{"abc", "1", "2", "3"});
    CHECK(tok.pre_tokenize("end.\n\nNext") == V{"end", ".\n\n", "Next"});
    CHECK(tok.pre_tokenize("a \n\n b") == V{"a", " \n\n", " b"});
    CHECK(tok.pre_tokenize("x   ") == V{"x", "   "});
    // U+180E is not White_Space (PCRE2's own \s would take it); U+3000 is.
    CHECK(tok.pre_tokenize("a\xE1\xA0\x8E" "b") == V{"a", "\xE1\xA0\x8E" "b"});
    CHECK(tok.pre_tokenize("a\xE3\x80\x80" "b") == V{"a", "\xE3\x80\x80" "b"});
}

TEST_CASE("invalid UTF-8 is an InputError naming the byte offset", "[text]") {
    const Tokenizer& tok = real();
    const std::vector<std::pair<std::string, size_t>> bad = {
        {"ab\xFF" "cd", 2},           // never valid
        {"abc\xC3", 3},               // truncated at the end
        {"\xC0\xAF", 0},              // overlong
        {"ok \xED\xA0\x80", 3},       // surrogate
        {"\xF4\x90\x80\x80", 0},      // above U+10FFFF
        {"caf\xC3\xA9 \x80", 6},      // stray continuation byte after valid text
        {"<|im_start|>\xFE", 12},     // beside an added token
    };
    for (auto& [text, offset] : bad) {
        INFO(escaped(std::string(text.begin(), text.end())));
        try {
            tok.encode(text);
            FAIL("no error");
        } catch (const InputError& e) {
            CHECK_THAT(e.what(), Catch::Contains("invalid UTF-8 at byte offset " + std::to_string(offset)));
        }
        CHECK_THROWS_AS(nfc(text), InputError);
    }
}

TEST_CASE("decode replaces broken byte sequences and rejects unknown ids", "[text]") {
    const Tokenizer& tok = real();
    // "你" is E4 BD A0; its first byte alone, then a complete token.
    const int32_t e4 = *tok.token_to_id(byte_to_unicode(0xE4));
    CHECK(tok.decode({e4}) == "\xEF\xBF\xBD");
    CHECK(tok.decode({e4, 9707}) == "\xEF\xBF\xBD" "Hello");
    const auto ni = tok.encode("\xE4\xBD\xA0");
    CHECK(tok.decode(ni) == "\xE4\xBD\xA0");
    CHECK_THROWS_AS(tok.decode({151676}), InputError);  // unused slot above the added tokens
    CHECK_THROWS_AS(tok.decode({-1}), InputError);
    CHECK_THROWS_AS(tok.id_to_token(999999), InputError);
}

TEST_CASE("prompt templates and their slices (spec §2, §6.1, §7.1)", "[text]") {
    const Tokenizer& tok = real();
    CHECK(target_text_template("Hi.") == "<|im_start|>assistant\nHi.<|im_end|>\n<|im_start|>assistant\n");
    CHECK(reference_text_template("Hi.") == "<|im_start|>assistant\nHi.<|im_end|>\n");
    CHECK(instruct_template("Calm.") == "<|im_start|>user\nCalm.<|im_end|>\n");

    const TargetTextIds t = encode_target_text(tok, "Hello world.");
    CHECK(t.role == std::vector<int32_t>{151644, 77091, 198});
    CHECK(t.content == tok.encode("Hello world."));
    CHECK(std::vector<int32_t>(t.ids.end() - 5, t.ids.end()) == std::vector<int32_t>{151645, 198, 151644, 77091, 198});
    auto rc = t.role_and_content();
    CHECK(rc == std::vector<int32_t>(t.ids.begin(), t.ids.end() - 5));

    CHECK(encode_reference_text(tok, "It's a test.") == tok.encode("It's a test."));
    const auto ins = encode_instruct(tok, "Speak softly.");
    CHECK(ins.front() == 151644);
    CHECK(ins[1] == token_ids::user);
    CHECK(ins[2] == token_ids::newline);
    CHECK(std::vector<int32_t>(ins.end() - 2, ins.end()) == std::vector<int32_t>{151645, 198});
    CHECK(ins == tok.encode("<|im_start|>user\nSpeak softly.<|im_end|>\n"));

    // The slices are positional like upstream's: a leading newline merges into the role's "\n".
    const TargetTextIds nl = encode_target_text(tok, "\nHello");
    CHECK(nl.role != std::vector<int32_t>{151644, 77091, 198});

    CHECK_THROWS_AS(encode_target_text(tok, ""), InputError);
    CHECK_THROWS_AS(encode_reference_text(tok, ""), InputError);
    CHECK_THROWS_AS(encode_instruct(tok, ""), InputError);
}

TEST_CASE("NFC passes the Unicode conformance file when the system has it", "[text]") {
    const char* plain = "/usr/share/unicode/NormalizationTest.txt";
    const char* packed = "/usr/share/unicode/NormalizationTest.txt.bz2";
    std::string data;
    if (fs::exists(plain)) {
        data = read_all(plain);
    } else if (fs::exists(packed) && std::system("command -v bzcat >/dev/null 2>&1") == 0) {
        FILE* p = popen((std::string("bzcat ") + packed).c_str(), "r");
        REQUIRE(p);
        char buf[65536];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0) data.append(buf, n);
        pclose(p);
    } else {
        WARN("NormalizationTest.txt not installed (Debian package unicode-data); conformance test skipped");
        return;
    }
    const auto to_utf8 = [](const std::string& field) {
        std::string out;
        std::istringstream ss(field);
        std::string hex;
        while (ss >> hex) {
            const uint32_t cp = uint32_t(std::stoul(hex, nullptr, 16));
            // encode via nfc's own path is circular; do it by hand
            if (cp < 0x80) out += char(cp);
            else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
            else if (cp < 0x10000) { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
            else { out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
        }
        return out;
    };
    std::istringstream in(data);
    std::string line;
    size_t tested = 0, failed = 0;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#' || line[0] == '@') continue;
        std::vector<std::string> f;
        size_t pos = 0;
        for (int k = 0; k < 5; ++k) {
            const size_t semi = line.find(';', pos);
            f.push_back(to_utf8(line.substr(pos, semi - pos)));
            pos = semi + 1;
        }
        // NFC conformance: c2 == NFC(c1) == NFC(c2) == NFC(c3); c4 == NFC(c4) == NFC(c5).
        const bool ok = nfc(f[0]) == f[1] && nfc(f[1]) == f[1] && nfc(f[2]) == f[1] && nfc(f[3]) == f[3] &&
                        nfc(f[4]) == f[3];
        if (!ok && ++failed <= 5) UNSCOPED_INFO("NormalizationTest line: " << line);
        ++tested;
    }
    CHECK(tested > 18000);
    CHECK(failed == 0);
}

TEST_CASE("tokenizer.json gives the same ids as the slow files; other pipelines are refused", "[text]") {
    TempDir dir;
    const fs::path ref = real_tokenizer_dir();
    nlohmann::json vocab = nlohmann::json::parse(read_all(ref / "vocab.json"));
    nlohmann::json merges = nlohmann::json::array();
    {
        std::istringstream in(read_all(ref / "merges.txt"));
        std::string line;
        while (std::getline(in, line))
            if (!line.empty() && line.rfind("#version", 0) != 0) merges.push_back(line);
    }
    nlohmann::json added = nlohmann::json::array();
    const nlohmann::json cfg = nlohmann::json::parse(read_all(ref / "tokenizer_config.json"));
    for (auto it = cfg["added_tokens_decoder"].begin(); it != cfg["added_tokens_decoder"].end(); ++it) {
        nlohmann::json a = it.value();
        a["id"] = std::stoi(it.key());
        added.push_back(a);
    }
    const std::string regex =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
        "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    nlohmann::json j = {
        {"version", "1.0"},
        {"added_tokens", added},
        {"normalizer", {{"type", "NFC"}}},
        {"pre_tokenizer",
         {{"type", "Sequence"},
          {"pretokenizers",
           {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
            {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}}}}},
        {"decoder", {{"type", "ByteLevel"}}},
        {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"vocab", vocab}, {"merges", merges}}},
    };
    write(dir.path / "tokenizer.json", j.dump());
    const Tokenizer fast = Tokenizer::from_folder(dir.path.string());
    CHECK(fast.merge_count() == real().merge_count());
    size_t n = 0;
    for (const auto& c : expected().at("cases")) {
        if (n++ % 7) continue;
        const std::string text = c.at("text");
        INFO(escaped(text));
        CHECK(fast.encode(text) == c.at("ids").get<std::vector<int32_t>>());
    }

    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\s+|\\S+";
    write(dir.path / "tokenizer.json", j.dump());
    CHECK_THROWS_AS(Tokenizer::from_folder(dir.path.string()), InputError);
}

TEST_CASE("malformed tokenizer files are InputErrors naming the file", "[text]") {
    TempDir dir;
    CHECK_THROWS_AS(Tokenizer::from_folder((dir.path / "missing").string()), InputError);
    CHECK_THROWS_AS(Tokenizer::from_folder(dir.path.string()), InputError);  // empty folder

    std::string vocab = "{";
    for (int b = 0; b < 256; ++b) vocab += (b ? "," : "") + nlohmann::json(byte_to_unicode(uint8_t(b))).dump() + ":" + std::to_string(b);
    write(dir.path / "vocab.json", vocab + ",\"ab\":256}");
    write(dir.path / "merges.txt", "#version: 0.2\na b\n");
    const Tokenizer ok = Tokenizer::from_folder(dir.path.string());
    CHECK(ok.encode("abab") == std::vector<int32_t>{256, 256});
    CHECK(ok.added_tokens().empty());

    write(dir.path / "merges.txt", "a b\nx y z\n");
    try {
        Tokenizer::from_folder(dir.path.string());
        FAIL("no error");
    } catch (const InputError& e) {
        CHECK_THAT(e.what(), Catch::Contains("merges.txt:2"));
    }
    write(dir.path / "merges.txt", "a q\n");  // "aq" is not in the vocabulary
    CHECK_THROWS_AS(Tokenizer::from_folder(dir.path.string()), InputError);

    write(dir.path / "merges.txt", "a b\n");
    write(dir.path / "vocab.json", "{\"a\": 0,");
    try {
        Tokenizer::from_folder(dir.path.string());
        FAIL("no error");
    } catch (const InputError& e) {
        CHECK_THAT(e.what(), Catch::Contains("vocab.json"));
    }
    write(dir.path / "vocab.json", "{\"a\": 0, \"b\": 1, \"ab\": 2}");  // lacks most byte tokens
    CHECK_THROWS_AS(Tokenizer::from_folder(dir.path.string()), InputError);
}

TEST_CASE("encoding from many threads gives the same ids", "[text]") {
    const Tokenizer& tok = real();
    std::vector<std::string> texts;
    for (const auto& c : expected().at("cases")) texts.push_back(c.at("text"));
    std::vector<std::vector<int32_t>> serial;
    for (auto& t : texts) serial.push_back(tok.encode(t));
    std::vector<int> ok(4, 0);
    std::vector<std::thread> threads;
    for (int k = 0; k < 4; ++k)
        threads.emplace_back([&, k] {
            bool all = true;
            for (size_t i = 0; i < texts.size(); ++i) all = all && tok.encode(texts[(i * 7 + size_t(k)) % texts.size()]) == serial[(i * 7 + size_t(k)) % texts.size()];
            ok[size_t(k)] = all;
        });
    for (auto& t : threads) t.join();
    CHECK(ok == std::vector<int>{1, 1, 1, 1});
}

TEST_CASE("the tiny tokenizer loads like a real one", "[text]") {
    TempDir dir;
    write_tiny_tokenizer(dir.path.string());
    REQUIRE(fs::exists(dir.path / "vocab.json"));
    REQUIRE(fs::exists(dir.path / "merges.txt"));
    REQUIRE(fs::exists(dir.path / "tokenizer_config.json"));
    const Tokenizer tiny = Tokenizer::from_folder(dir.path.string());
    CHECK(tiny.merge_count() >= 300);
    CHECK(tiny.merge_count() <= 400);
    CHECK(tiny.vocab_size() == 151676);
    // The added tokens are the real ones at the real ids.
    REQUIRE(tiny.added_tokens().size() == real().added_tokens().size());
    for (size_t i = 0; i < tiny.added_tokens().size(); ++i) {
        CHECK(tiny.added_tokens()[i].id == real().added_tokens()[i].id);
        CHECK(tiny.added_tokens()[i].content == real().added_tokens()[i].content);
        CHECK(tiny.added_tokens()[i].special == real().added_tokens()[i].special);
    }
    // Byte tokens at 0..255, ordered like the real vocabulary.
    for (int id = 0; id < 256; ++id) CHECK(tiny.id_to_token(id) == real().id_to_token(id));
    CHECK(tiny.encode("assistant").size() == 1);
    CHECK(tiny.encode("user").size() == 1);
    // Common English merges exist: a sentence takes far fewer tokens than bytes.
    const std::string sentence = "The assistant reads the story to the user.";
    CHECK(tiny.encode(sentence).size() < sentence.size() / 2);
    // Any text survives the round trip (unmerged bytes still have tokens).
    for (const std::string& s : {sentence, std::string("\xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80 e\xCC\x81"), std::string("a\tb\r\n")})
        CHECK(tiny.decode(tiny.encode(s)) == nfc(s));
    const TargetTextIds t = encode_target_text(tiny, "Hello there.");
    CHECK(t.role.size() == 3);
    CHECK(t.role[0] == token_ids::im_start);
    CHECK(t.content == tiny.encode("Hello there."));
    CHECK(t.ids.back() == t.role.back());
    // Deterministic: writing again gives identical files.
    TempDir again;
    write_tiny_tokenizer(again.path.string());
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"})
        CHECK(read_all(dir.path / f) == read_all(again.path / f));
}
