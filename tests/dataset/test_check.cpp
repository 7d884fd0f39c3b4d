#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "alexandria/dataset/check.h"
#include "alexandria/io/error.h"
#include "check_test_util.h"

using namespace alexandria;
using namespace alexandria::dataset;
using namespace check_test;

namespace {
const Problem* find_problem(const CheckReport& r, const std::string& code) {
    for (auto& p : r.problems)
        if (p.code == code) return &p;
    return nullptr;
}
std::string all_messages(const CheckReport& r) {
    std::string s;
    for (auto& p : r.problems) s += severity_name(p.severity) + " [" + p.code + "] " + p.message + "\n";
    return s;
}
}  // namespace

TEST_CASE("the bundled example dataset checks clean enough to train", "[dataset][check]") {
    auto r = check_dataset(example_dataset());
    INFO(all_messages(r));
    CHECK(r.trainable());
    CHECK(r.exit_code() == 0);
    CHECK(r.entries == 9);
    CHECK(r.usable == 9);
    CHECK(r.count(Severity::Error) == 0);
    CHECK(r.usable_seconds > 3);
    CHECK(r.usable_seconds < 30);
    CHECK(r.short_utterances >= 3);  // "Oh!", "Hmm.", "Right."
    CHECK(r.sample_rates == std::map<int, int>{{24000, 9}});
    CHECK(r.channel_counts == std::map<int, int>{{1, 9}});
    int binned = 0;
    for (auto& b : r.histogram) binned += b.count;
    CHECK(binned == 9);
    CHECK(r.ref.present);
    CHECK(r.ref.decoded);
    CHECK(r.ref.source == "ref.wav");
    CHECK(r.ref.seconds > 1);
    CHECK(r.ref.text_nonempty);
    // A tiny dataset: the checker says so, but it still trains.
    CHECK(find_problem(r, "few-minutes"));
    CHECK(!find_problem(r, "no-short-utterances"));
    CHECK(!find_problem(r, "resampled"));
    REQUIRE(r.recommendation);
    CHECK(r.recommendation->samples == 9);
    CHECK(!r.recommendation->warnings.empty());  // fewer than 10 samples
    for (auto& c : r.clips) {
        CHECK(c.usable);
        CHECK(c.decoded);
        CHECK(c.stats.peak > 0.01);
        CHECK(c.stats.clipped_fraction < 0.001);
    }
}

TEST_CASE("the bad-input corpus: each case's message and exit code", "[dataset][check][bad]") {
    auto manifest = nlohmann::json::parse(read_text(bad_corpus() / "manifest.json"));
    REQUIRE(manifest.size() >= 20);
    for (auto& m : manifest) {
        const std::string name = m["case"];
        SECTION(name) {
            TempDir t;
            auto dir = t.path / name;
            fs::copy(bad_corpus() / name, dir, fs::copy_options::recursive);
            if (m.contains("symlink_loop")) {
                std::vector<std::string> loop = m["symlink_loop"];
                for (size_t i = 0; i < loop.size(); ++i) {
                    std::error_code ec;
                    fs::remove(dir / loop[i], ec);
                    fs::create_symlink(loop[(i + 1) % loop.size()], dir / loop[i]);
                }
            }
            auto before = listing(dir);
            auto r = check_dataset(dir);
            INFO(name << ":\n" << all_messages(r));
            CHECK(r.exit_code() == m["exit"].get<int>());
            const Problem* p = find_problem(r, m["code"]);
            REQUIRE(p);
            CHECK(p->message.find(m["expect"].get<std::string>()) != std::string::npos);
            CHECK(p->severity == (m["exit"] == 0 ? Severity::Warning : Severity::Error));
            if (m["exit"] == 0) {
                CHECK(r.usable == 1);  // the good clip
                CHECK(r.recommendation);
            } else {
                CHECK(!r.recommendation);
            }
            auto j = to_json(r);
            CHECK(j["exit_code"] == m["exit"]);
            CHECK(!to_text(r).empty());
            CHECK(listing(dir) == before);  // a check writes nothing
        }
    }
}

TEST_CASE("line-level problems name the metadata file, line and field", "[dataset][check][bad]") {
    auto r = check_dataset(bad_corpus() / "missing-text");
    const Problem* p = find_problem(r, "missing-field");
    REQUIRE(p);
    CHECK(p->line == 2);
    CHECK(p->field == "text");
    CHECK(p->file.find("metadata.jsonl") != std::string::npos);

    auto r2 = check_dataset(bad_corpus() / "missing-audio");
    const Problem* q = find_problem(r2, "missing-audio");
    REQUIRE(q);
    CHECK(q->line == 2);
    CHECK(q->field == "audio_filepath");
    CHECK(q->message.find("sample_404.wav") != std::string::npos);
    CHECK(q->message.find("metadata.jsonl:2") != std::string::npos);
}

TEST_CASE("clips over --max-seconds are skipped, short ones counted", "[dataset][check]") {
    CheckOptions o;
    o.max_seconds = 0.6;
    auto r = check_dataset(example_dataset(), o);
    CHECK(r.over_max > 0);
    CHECK(r.usable == 9 - r.over_max);
    CHECK(r.usable >= 3);  // the short utterances stay
    const Problem* p = find_problem(r, "too-long");
    REQUIRE(p);
    CHECK(p->message.find("over the 0.6 s limit") != std::string::npos);
    CHECK(p->severity == Severity::Warning);
    CHECK(r.trainable());

    o.max_seconds = 0.01;
    auto none = check_dataset(example_dataset(), o);
    CHECK(none.usable == 0);
    CHECK(!none.trainable());
    CHECK(find_problem(none, "no-usable-clips"));

    o.max_seconds = -1;
    CHECK_THROWS_AS(check_dataset(example_dataset(), o), InputError);
}

TEST_CASE("sample rates, channels, clipping, duplicates, short utterances", "[dataset][check]") {
    TempDir t;
    write_bytes(t.path / "a.wav", wav_pcm16(tone(0.8, 44100, 0.3, 2), 44100, 2));  // stereo 44.1 kHz
    write_bytes(t.path / "b.wav", wav_pcm16(tone(0.8, 16000, 3.0), 16000));       // hard-clipped
    write_bytes(t.path / "c.wav", wav_pcm16(tone(0.5, 24000), 24000));
    write_bytes(t.path / "ref.wav", wav_pcm16(tone(2.0, 24000), 24000));
    write_bytes(t.path / "ref_text.txt", "A calm passage.");
    write_bytes(t.path / "metadata.jsonl",
                "{\"audio_filepath\": \"a.wav\", \"text\": \"This is a longer sentence.\"}\n"
                "{\"audio_filepath\": \"b.wav\", \"text\": \"Another long sentence here.\"}\n"
                "{\"audio_filepath\": \"c.wav\", \"text\": \"Yet another full sentence.\"}\n"
                "{\"audio_filepath\": \"c.wav\", \"text\": \"Yet another full sentence.\"}\n"
                "{\"audio_filepath\": \"a.wav\", \"text\": \"A different text for a.\"}\n");
    auto r = check_dataset(t.path);
    INFO(all_messages(r));
    CHECK(r.trainable());
    CHECK(r.sample_rates == std::map<int, int>{{16000, 1}, {24000, 2}, {44100, 2}});
    CHECK(r.channel_counts == std::map<int, int>{{1, 3}, {2, 2}});
    CHECK(find_problem(r, "resampled"));
    CHECK(find_problem(r, "resampled")->severity == Severity::Note);
    CHECK(find_problem(r, "resampled")->message.find("44100 Hz") != std::string::npos);
    CHECK(find_problem(r, "downmixed"));
    CHECK(r.clipped == 1);
    CHECK(find_problem(r, "clipping")->message.find("b.wav") != std::string::npos);
    CHECK(r.duplicates == 1);
    CHECK(find_problem(r, "duplicate")->line == 4);
    CHECK(find_problem(r, "same-audio-different-text")->line == 5);
    CHECK(r.usable == 4);  // the duplicate is skipped; clipped and re-used audio still train
    CHECK(r.short_utterances == 0);
    CHECK(find_problem(r, "no-short-utterances"));
    CHECK(find_problem(r, "few-minutes"));
    CHECK(!find_problem(r, "missing-ref-text"));
}

TEST_CASE("the reference: fallbacks and problems", "[dataset][check]") {
    TempDir t;
    write_bytes(t.path / "a.wav", wav_pcm16(tone(0.8, 24000), 24000));
    write_bytes(t.path / "metadata.jsonl", "{\"audio_filepath\": \"a.wav\", \"text\": \"Oh!\"}\n");
    auto r = check_dataset(t.path);
    CHECK(r.trainable());
    CHECK(find_problem(r, "no-ref"));
    CHECK(find_problem(r, "missing-ref-text"));
    CHECK(r.ref.source.empty());

    write_bytes(t.path / "ref_text.txt", "  \n");
    write_bytes(t.path / "ref.wav", wav_pcm16(std::vector<float>(24000, 0.0f), 24000));
    auto r2 = check_dataset(t.path);
    CHECK(r2.trainable());
    CHECK(find_problem(r2, "empty-ref-text"));
    CHECK(find_problem(r2, "silent-ref"));
    CHECK(r2.ref.decoded);
    CHECK(!r2.ref.text_nonempty);
}

TEST_CASE("a folder that does not exist is reported, exit 2", "[dataset][check]") {
    TempDir t;
    auto r = check_dataset(t.path / "nope");
    CHECK(r.exit_code() == 2);
    REQUIRE(find_problem(r, "missing-folder"));
    CHECK(find_problem(r, "missing-folder")->message.find("not found") != std::string::npos);
}

TEST_CASE("check JSON and text reports", "[dataset][check]") {
    auto r = check_dataset(example_dataset());
    auto j = to_json(r);
    CHECK(j["trainable"] == true);
    CHECK(j["exit_code"] == 0);
    CHECK(j["entries"] == 9);
    CHECK(j["usable"] == 9);
    CHECK(j["sample_rates"]["24000"] == 9);
    CHECK(j["clips"].size() == 9);
    CHECK(j["clips"][0]["audio"] == "sample_000.wav");
    CHECK(j["clips"][0]["seconds"].get<double>() > 0.1);
    CHECK(j["counts"]["short_utterances"].get<int>() >= 3);
    CHECK(j["reference"]["decoded"] == true);
    CHECK(j["recommendation"]["samples"] == 9);
    CHECK(j["recommendation"]["lora_r"] == 64);
    CHECK(j["histogram"].is_array());
    CHECK(j["target_minutes"][0] == 15);
    CHECK(j["problems"].is_array());
    auto text = to_text(r);
    CHECK(text.find("usable clips      9") != std::string::npos);
    CHECK(text.find("recommendation:") != std::string::npos);
    CHECK(text.find("result: trainable") != std::string::npos);

    auto bad = to_text(check_dataset(bad_corpus() / "invalid-json"));
    CHECK(bad.find("NOT trainable") != std::string::npos);
    CHECK(bad.find("metadata.jsonl:2: invalid JSON") != std::string::npos);
}

TEST_CASE("a pipe named like a clip is skipped, never read (no hang)", "[dataset][check][bad]") {
    TempDir t;
    write_bytes(t.path / "a.wav", wav_pcm16(tone(0.8, 24000), 24000));
    REQUIRE(::mkfifo((t.path / "pipe.wav").c_str(), 0600) == 0);
    REQUIRE(::mkfifo((t.path / "ref.wav").c_str(), 0600) == 0);
    write_bytes(t.path / "metadata.jsonl",
                "{\"audio_filepath\": \"a.wav\", \"text\": \"Oh!\"}\n"
                "{\"audio_filepath\": \"pipe.wav\", \"text\": \"Hello there.\"}\n");
    auto r = check_dataset(t.path);
    INFO(all_messages(r));
    CHECK(r.usable == 1);
    REQUIRE(find_problem(r, "undecodable"));
    CHECK(find_problem(r, "undecodable")->message.find("not a regular file") != std::string::npos);
    CHECK(find_problem(r, "undecodable-ref"));
    CHECK(r.exit_code() == 2);
}
