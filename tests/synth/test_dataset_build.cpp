// `dataset build` end to end on the tiny random VoiceDesign model, plus the rows reader and the take checks.
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/model/random_model.h"
#include "alexandria/synth/dataset_build.h"
#include "alexandria/text/tokenizer.h"
#include "support/test_support.h"

using namespace alexandria;
using namespace alexandria::synth;
using alexandria::test::TempDir;
namespace fs = std::filesystem;

namespace {

struct TinyVoiceDesign {
    TempDir tmp;
    std::string model;
    TinyVoiceDesign() {
        model = (tmp / "vd").string();
        model::RandomModelSpec spec;
        spec.size = "tiny";
        spec.type = "voice_design";
        spec.seed = 21;
        spec.dtype = "f32";
        model::write_random_model(model, spec);
        text::write_tiny_tokenizer(model);
        codec::write_random_codec((fs::path(model) / "speech_tokenizer").string(), "tiny", 5);
    }
};

Synthesizer& vd() {
    static TinyVoiceDesign m;
    static Synthesizer s([] {
        LoadOptions o;
        o.model = m.model;
        return o;
    }());
    return s;
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

std::vector<nlohmann::json> meta_of(const fs::path& dir) {
    std::vector<nlohmann::json> v;
    std::ifstream in(dir / "metadata.jsonl");
    std::string l;
    while (std::getline(in, l))
        if (!l.empty()) v.push_back(nlohmann::json::parse(l));
    return v;
}

const char* kRows =
    R"({"emotion": "happy", "text": "We did it!", "seed": 7})" "\n"
    R"({"emotion": "", "text": "Oh!"})" "\n"
    R"({"emotion": "calm, neutral", "text": "The harbour town wakes slowly, and the boats drift back with the tide."})" "\n"
    R"({"emotion": "angry", "text": "I told you never to come back here, not ever again, do you hear me?"})" "\n";

DatasetBuildOptions options(const TempDir& t) {
    DatasetBuildOptions o;
    o.out = (t / "voice").string();
    o.description = "A male tenor with a steady, clean tone";
    o.rows = (t / "rows.jsonl").string();
    o.seed = 100;
    o.max_frames = 3;  // a random model never says EOS: keep every take tiny
    o.max_attempts = 2;
    return o;
}

}  // namespace

TEST_CASE("dataset build: suspect takes are retried with the next seed, reported, and resumed on the next run") {
    TempDir t;
    write(t / "rows.jsonl", kRows);
    auto o = options(t);
    // every take of the random model hits the 3-frame cap
    REQUIRE_THROWS_WITH(build_dataset(vd(), o), Catch::Contains("no row could be generated"));
    REQUIRE_FALSE(fs::exists(o.out));  // never a dataset of nothing
    auto state = nlohmann::json::parse(io::read_file(t / "voice.build" / "state.json"));
    REQUIRE(state["rows"].size() == 4);
    std::set<std::vector<uint64_t>> tried;
    for (auto& [k, v] : state["rows"].items()) {
        REQUIRE(v["status"] == "failed");
        CHECK_THAT(v["reason"].get<std::string>(), Catch::Contains("frame cap"));
        tried.insert(v["seeds_tried"].get<std::vector<uint64_t>>());
    }
    REQUIRE(tried.count({7, 8}));      // the row's own seed, then the next
    REQUIRE(tried.count({100, 101}));  // --seed for rows without one

    // the next run goes on from the last seed tried; with accept_suspect the last take is kept, flagged
    o.accept_suspect = true;
    auto rep = build_dataset(vd(), o);
    REQUIRE(rep.done == 4);
    REQUIRE(rep.suspect_kept == 4);
    REQUIRE(rep.rows[0].seeds_tried == std::vector<uint64_t>{9, 10});
    REQUIRE(rep.rows[0].seed_used == 10);
    REQUIRE(rep.rows[0].suspect);
}

TEST_CASE("dataset build: rows generated together are the rows generated one at a time") {
    TempDir t;
    write(t / "rows.jsonl", kRows);
    auto o = options(t);
    o.accept_suspect = true;  // every take is suspect (frame cap): two attempts each, the second kept
    o.batch = 1;
    auto one = build_dataset(vd(), o);
    o.out = (t / "batched").string();
    o.batch = 3;  // fewer slots than rows: a slot is refilled within a round
    auto three = build_dataset(vd(), o);
    REQUIRE(one.done == 4);
    REQUIRE(three.done == 4);
    REQUIRE(three.generated == 8);
    for (size_t i = 0; i < 4; ++i) {
        INFO("row " << i);
        REQUIRE(three.rows[i].seeds_tried == one.rows[i].seeds_tried);
        REQUIRE(three.rows[i].seed_used == one.rows[i].seed_used);
        const auto name = fmt::format("sample_{:03d}.wav", i);
        REQUIRE(io::read_file(fs::path(o.out) / name) == io::read_file(t / "voice" / name));
    }
    REQUIRE(three.rows[0].seeds_tried == std::vector<uint64_t>{7, 8});
}

TEST_CASE("dataset build: files, metadata, reference pick, recorded seeds, restart") {
    TempDir t;
    write(t / "rows.jsonl", kRows);
    auto o = options(t);
    o.accept_suspect = true;
    o.max_attempts = 1;
    o.seed.reset();  // row 0 has its own seed, the others get random ones
    auto rep = build_dataset(vd(), o);
    REQUIRE(rep.written);
    REQUIRE(rep.done == 4);
    REQUIRE(rep.generated == 4);
    fs::path out = o.out;
    auto meta = meta_of(out);
    REQUIRE(meta.size() == 4);
    for (int i = 0; i < 4; ++i) {
        REQUIRE(meta[size_t(i)]["audio_filepath"] == fmt::format("sample_{:03d}.wav", i));
        REQUIRE(meta[size_t(i)]["ref_audio"] == "ref.wav");
        auto info = io::probe_audio((out / meta[size_t(i)]["audio_filepath"].get<std::string>()).string());
        REQUIRE(info.sample_rate == 24000);
        REQUIRE(info.channels == 1);
        REQUIRE(info.format == "wav Signed 16 bit PCM");
        REQUIRE(info.frames == 3 * 1920);
    }
    REQUIRE(meta[1]["text"] == "Oh!");
    // Alexandria's exact line layout
    std::ifstream in(out / "metadata.jsonl");
    std::string first;
    std::getline(in, first);
    REQUIRE(first == R"({"audio_filepath":"sample_000.wav","text":"We did it!","ref_audio":"ref.wav"})");
    // the reference: the longest neutral row (row 3 is longer but angry)
    REQUIRE(rep.ref_row == 2);
    REQUIRE(io::read_file(out / "ref.wav") == io::read_file(out / "sample_002.wav"));
    REQUIRE(io::read_file(out / "ref_text.txt") ==
            "The harbour town wakes slowly, and the boats drift back with the tide.");
    // instruct and seeds recorded in build.json
    auto bj = nlohmann::json::parse(io::read_file(out / "build.json"));
    REQUIRE(bj["rows"][0]["instruct"] == "A male tenor with a steady, clean tone, happy");
    REQUIRE(bj["rows"][1]["instruct"] == "A male tenor with a steady, clean tone");
    REQUIRE(bj["rows"][0]["seed_used"] == 7);
    REQUIRE(bj["rows"][1]["seed_used"].is_number_unsigned());
    REQUIRE(bj["rows"][1]["seed_requested"].is_null());
    REQUIRE(bj["description"] == "A male tenor with a steady, clean tone");

    SECTION("a rerun keeps every finished row") {
        auto sample0 = io::read_file(out / "sample_000.wav");
        auto r2 = build_dataset(vd(), o);
        REQUIRE(r2.reused == 4);
        REQUIRE(r2.generated == 0);
        REQUIRE(io::read_file(out / "sample_000.wav") == sample0);
        REQUIRE(r2.rows[1].seed_used == rep.rows[1].seed_used);  // the random seed is remembered
    }
    SECTION("changing one row's emotion regenerates only that row; an added row is generated") {
        std::string rows = kRows;
        rows.replace(rows.find("\"angry\""), 7, "\"furious\"");
        rows += R"({"emotion": "neutral", "text": "Hmm."})" "\n";
        write(t / "rows.jsonl", rows);
        auto r2 = build_dataset(vd(), o);
        REQUIRE(r2.generated == 2);
        REQUIRE(r2.reused == 3);
        REQUIRE(meta_of(out).size() == 5);
        REQUIRE(r2.rows[3].instruct == "A male tenor with a steady, clean tone, furious");
    }
    SECTION("a fixed seed reproduces the audio; --ref-index picks the reference") {
        auto o2 = o;
        o2.out = (t / "again").string();
        o2.ref_index = 0;
        auto r2 = build_dataset(vd(), o2);
        REQUIRE(io::read_file(fs::path(o2.out) / "sample_000.wav") == io::read_file(out / "sample_000.wav"));
        REQUIRE(r2.ref_row == 0);
        REQUIRE(io::read_file(fs::path(o2.out) / "ref_text.txt") == "We did it!");
    }
    SECTION("a folder not made by dataset build is not replaced without force") {
        auto o2 = o;
        o2.out = (t / "mine").string();
        fs::create_directories(o2.out);
        write(fs::path(o2.out) / "notes.txt", "keep");
        REQUIRE_THROWS_WITH(build_dataset(vd(), o2), Catch::Contains("--force"));
        REQUIRE(fs::exists(fs::path(o2.out) / "notes.txt"));
        o2.ref_index = 9;
        REQUIRE_THROWS_WITH(build_dataset(vd(), o2), Catch::Contains("--ref-index 9"));
    }
}

TEST_CASE("dataset build: rows files") {
    TempDir t;
    SECTION("CSV with a header, quoted commas, string seeds") {
        write(t / "rows.csv",
              "text,emotion,seed\r\n"
              "\"Well, that was \"\"fun\"\".\",\"warm, amused\",12\r\n"
              "Oh!,surprised,\r\n"
              "\"A line\nover two lines.\",,-1\r\n");
        auto rows = read_build_rows((t / "rows.csv").string());
        REQUIRE(rows.size() == 3);
        REQUIRE(rows[0].text == "Well, that was \"fun\".");
        REQUIRE(rows[0].emotion == "warm, amused");
        REQUIRE(rows[0].seed == uint64_t(12));
        REQUIRE_FALSE(rows[1].seed);
        REQUIRE(rows[2].text == "A line\nover two lines.");
        REQUIRE_FALSE(rows[2].seed);  // negative = none
        REQUIRE(rows[2].line == 4);
    }
    SECTION("CSV without a header is emotion,text[,seed]") {
        write(t / "rows.csv", "happy,Hello there.\nsad,Goodbye.,5\n");
        auto rows = read_build_rows((t / "rows.csv").string());
        REQUIRE(rows.size() == 2);
        REQUIRE(rows[1].emotion == "sad");
        REQUIRE(rows[1].seed == uint64_t(5));
    }
    SECTION("Alexandria's JSON export with instruct and string seeds") {
        write(t / "x_script.json", R"([{"instruct": "calm", "text": "One.", "seed": "42"}, {"emotion": "", "text": "Two."}])");
        auto rows = read_build_rows((t / "x_script.json").string());
        REQUIRE(rows.size() == 2);
        REQUIRE(rows[0].emotion == "calm");
        REQUIRE(rows[0].seed == uint64_t(42));
    }
    SECTION("every bad row is listed at once") {
        write(t / "rows.jsonl", "{\"emotion\": \"x\", \"text\": \"\"}\n"
                                "{\"emotion\": \"x\"}\n"
                                "{\"text\": \"ok\", \"seed\": \"abc\"}\n"
                                "[1]\n"
                                "{\"text\": \"fine\"}\n");
        try {
            read_build_rows((t / "rows.jsonl").string());
            FAIL("expected InputError");
        } catch (const InputError& e) {
            std::string m = e.what();
            CHECK_THAT(m, Catch::Contains("4 bad rows"));
            CHECK_THAT(m, Catch::Contains("rows.jsonl:1: field 'text': empty"));
            CHECK_THAT(m, Catch::Contains("rows.jsonl:2: field 'text': missing"));
            CHECK_THAT(m, Catch::Contains("rows.jsonl:3: field 'seed'"));
            CHECK_THAT(m, Catch::Contains(":4:"));
        }
        write(t / "rows.txt", "x");
        REQUIRE_THROWS_AS(read_build_rows((t / "rows.txt").string()), InputError);
        write(t / "bad.csv", "happy,\"unterminated\n");
        REQUIRE_THROWS_WITH(read_build_rows((t / "bad.csv").string()), Catch::Contains("unterminated"));
    }
    SECTION("the template follows the guide and reads back") {
        for (std::string fmt_ : {"jsonl", "csv"}) {
            auto path = t / ("template." + fmt_);
            write(path, rows_template(fmt_));
            auto rows = read_build_rows(path.string());
            REQUIRE(rows.size() >= 12);
            int shorts = 0;
            std::set<std::string> emotions;
            for (auto& r : rows) {
                shorts += r.text.size() <= 6;
                emotions.insert(r.emotion);
            }
            REQUIRE(shorts >= 3);  // "Oh!", "Hmm.", "Right."
            REQUIRE(emotions.size() >= 8);
            auto& last = rows.back();
            REQUIRE(is_neutral_emotion(last.emotion));
            REQUIRE(last.seed);  // a consistent seed for the reference
            std::vector<int> all;
            for (auto& r : rows) all.push_back(r.index);
            REQUIRE(default_ref_row(rows, all) == last.index);
        }
        REQUIRE_THROWS_AS(rows_template("xml"), InputError);
    }
}

TEST_CASE("dataset build: take checks and helpers") {
    DatasetBuildOptions o;
    std::string text = "I told you never to come back here!";  // 35 characters
    REQUIRE(judge_take(2.2, false, 2048, false, text, o).empty());
    CHECK_THAT(judge_take(2.2, true, 64, false, text, o), Catch::Contains("frame cap (64 frames)"));
    CHECK_THAT(judge_take(0.5, false, 2048, false, text, o), Catch::Contains("too short"));
    CHECK_THAT(judge_take(10.0, false, 2048, false, text, o), Catch::Contains("too long"));
    CHECK_THAT(judge_take(31.0, false, 2048, false, std::string(300, 'a'), o), Catch::Contains("training limit"));
    CHECK_THAT(judge_take(2.0, false, 2048, true, text, o), Catch::Contains("silent"));
    REQUIRE(judge_take(0.0, false, 2048, false, text, o) == "no audio");
    REQUIRE(judge_take(0.6, false, 2048, false, "Oh!", o).empty());

    REQUIRE(build_instruct("A deep voice", "") == "A deep voice");
    REQUIRE(build_instruct("A deep voice", "sad") == "A deep voice, sad");
    REQUIRE(text_weight("abc") == 3.0);
    REQUIRE(text_weight("\xE4\xBD\xA0\xE5\xA5\xBD") == 6.0);  // 你好: two syllables ≈ six Latin letters
    REQUIRE(is_neutral_emotion(""));
    REQUIRE(is_neutral_emotion("Calm and Neutral"));
    REQUIRE_FALSE(is_neutral_emotion("angry"));
}

TEST_CASE("dataset build: refuses a non-VoiceDesign model and an empty description") {
    TempDir t;
    write(t / "rows.jsonl", kRows);
    auto o = options(t);
    o.description = "   ";
    REQUIRE_THROWS_WITH(build_dataset(vd(), o), Catch::Contains("description"));
    REQUIRE_FALSE(fs::exists(o.out));
}
