#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "alexandria/dataset/split.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "support/test_support.h"

using namespace alexandria;
using alexandria::test::TempDir;
namespace fs = std::filesystem;

namespace {

// A dataset folder of n distinct short clips sample_000.wav... (clip i always has the same content).
void add_clips(const fs::path& dir, int from, int to, bool with_ref_audio = true) {
    std::string meta;
    for (int i = from; i < to; ++i) {
        std::mt19937 rng(unsigned(1000 + i));
        std::uniform_real_distribution<float> u(-0.3f, 0.3f);
        io::Audio a;
        a.samples.resize(2400);
        for (auto& v : a.samples) v = u(rng);
        std::string name = fmt::format("sample_{:03d}.wav", i);
        io::write_audio((dir / name).string(), a);
        meta += fmt::format("{{\"audio_filepath\":\"{}\",\"text\":\"Line {}.\"{}}}\n", name, i,
                            with_ref_audio ? ",\"ref_audio\":\"ref.wav\"" : "");
    }
    std::ofstream(dir / "metadata.jsonl", std::ios::app | std::ios::binary) << meta;
}

std::set<std::string> names(const std::vector<dataset::SplitLine>& v) {
    std::set<std::string> s;
    for (auto& l : v) s.insert(l.audio_filepath);
    return s;
}

}  // namespace

TEST_CASE("split: deterministic, complete, and written as metadata lines") {
    TempDir t;
    add_clips(t.path, 0, 60);
    auto a = dataset::split_dataset(t.path, 0.25);
    auto b = dataset::compute_split(t.path, 0.25);
    REQUIRE(names(a.train) == names(b.train));
    REQUIRE(names(a.val) == names(b.val));
    REQUIRE(a.train.size() + a.val.size() == 60);
    REQUIRE(a.threshold == 2500);
    // a fair share lands in val (60 clips at 25%: 15 expected; 3..30 is far outside chance)
    REQUIRE(a.val.size() >= 3);
    REQUIRE(a.val.size() <= 30);
    for (auto& l : a.val) REQUIRE(l.bucket < 2500);
    for (auto& l : a.train) REQUIRE(l.bucket >= 2500);

    // the files hold the metadata lines byte for byte, paths relative to the dataset folder
    std::string all = io::read_file(t / "metadata.jsonl");
    auto val_file = io::read_file(t / "splits" / "val.jsonl");
    std::istringstream vs(val_file);
    std::string line;
    int n = 0;
    while (std::getline(vs, line)) {
        REQUIRE(all.find(line + "\n") != std::string::npos);
        REQUIRE(line.find("\"audio_filepath\":\"sample_") != std::string::npos);
        ++n;
    }
    REQUIRE(n == int(a.val.size()));
    REQUIRE(fs::exists(t / "splits" / "README"));
    auto info = nlohmann::json::parse(io::read_file(t / "splits" / "split.json"));
    REQUIRE(info["val_count"] == a.val.size());
    REQUIRE(info["buckets"].size() == 60);

    // the same split twice gives identical files
    auto before = io::read_file(t / "splits" / "train.jsonl");
    dataset::split_dataset(t.path, 0.25);
    REQUIRE(io::read_file(t / "splits" / "train.jsonl") == before);

    // a clip's bucket is a function of its bytes only: a renamed copy keeps it
    fs::copy_file(t / "sample_007.wav", t / "renamed.wav");
    REQUIRE(dataset::split_bucket(t / "renamed.wav") == dataset::split_bucket(t / "sample_007.wav"));
}

TEST_CASE("split: adding clips never moves the old ones") {
    TempDir t;
    add_clips(t.path, 0, 40);
    auto before = dataset::split_dataset(t.path, 0.2);
    add_clips(t.path, 40, 100);
    auto after = dataset::split_dataset(t.path, 0.2);
    REQUIRE(after.train.size() + after.val.size() == 100);
    auto val_after = names(after.val), train_after = names(after.train);
    for (auto& n : names(before.val)) REQUIRE(val_after.count(n));
    for (auto& n : names(before.train)) REQUIRE(train_after.count(n));
    // and the new split is what load_split returns
    auto loaded = dataset::load_split(t.path, "val");
    REQUIRE(loaded);
    REQUIRE(names(*loaded) == val_after);
}

TEST_CASE("split: the reference never lands in val") {
    TempDir t;
    add_clips(t.path, 0, 40);
    auto plain = dataset::compute_split(t.path, 0.3);
    REQUIRE(plain.val.size() >= 2);
    std::string ref_clip = plain.val[0].audio_filepath, other = plain.val[1].audio_filepath;

    SECTION("by content: ref.wav is a copy of a clip") {
        fs::copy_file(t / ref_clip, t / "ref.wav");
        auto r = dataset::compute_split(t.path, 0.3);
        REQUIRE(names(r.train).count(ref_clip));
        REQUIRE_FALSE(names(r.val).count(ref_clip));
        REQUIRE(r.ref_kept_in_train == std::vector<std::string>{ref_clip});
        REQUIRE(r.val.size() == plain.val.size() - 1);
    }
    SECTION("by path: a line's ref_audio names a clip") {
        TempDir u;
        add_clips(u.path, 0, 40, false);
        io::Audio a;
        a.samples.assign(2400, 0.1f);
        io::write_audio((u / "extra.wav").string(), a);
        std::ofstream(u / "metadata.jsonl", std::ios::app)
            << "{\"audio_filepath\":\"extra.wav\",\"text\":\"x\",\"ref_audio\":\"" << other << "\"}\n";
        auto r = dataset::compute_split(u.path, 0.3);
        REQUIRE(names(r.train).count(other));
        REQUIRE_FALSE(names(r.val).count(other));
    }
    SECTION("--val 1: everything but the reference is val") {
        fs::copy_file(t / ref_clip, t / "ref.wav");
        auto r = dataset::compute_split(t.path, 1.0);
        REQUIRE(r.train.size() == 1);
        REQUIRE(r.train[0].audio_filepath == ref_clip);
        REQUIRE(r.val.size() == 39);
    }
}

TEST_CASE("split: --val edge cases") {
    TempDir t;
    add_clips(t.path, 0, 12);
    auto zero = dataset::compute_split(t.path, 0.0);
    REQUIRE(zero.val.empty());
    REQUIRE(zero.train.size() == 12);
    REQUIRE(zero.fallback.empty());
    auto one = dataset::compute_split(t.path, 1.0);
    REQUIRE(one.val.size() == 12);  // no ref.wav here
    for (double bad : {1.5, -0.1, std::numeric_limits<double>::quiet_NaN(), 10.0})
        REQUIRE_THROWS_AS(dataset::compute_split(t.path, bad), InputError);
    REQUIRE_THROWS_WITH(dataset::split_dataset(t.path, 2.0), Catch::Contains("between 0 and 1"));
    REQUIRE_FALSE(fs::exists(t / "splits"));

    // a tiny fraction that the rule leaves empty still gives one val clip: the smallest bucket
    auto tiny = dataset::compute_split(t.path, 0.0001);
    uint32_t smallest = 10000;
    for (auto* side : {&tiny.train, &tiny.val})
        for (auto& l : *side) smallest = std::min(smallest, l.bucket);
    REQUIRE(tiny.val.size() == 1);
    REQUIRE(tiny.val[0].bucket == smallest);
    if (smallest >= tiny.threshold) REQUIRE(tiny.fallback == tiny.val[0].audio_filepath);
}

TEST_CASE("split: readers") {
    TempDir t;
    add_clips(t.path, 0, 20);
    REQUIRE_FALSE(dataset::load_split(t.path, "train"));  // never split
    REQUIRE_THROWS_AS(dataset::load_split(t.path, "test"), InputError);
    REQUIRE(dataset::split_file(t.path, "val") == t.path / "splits" / "val.jsonl");
    auto r = dataset::split_dataset(t.path, 0.2);
    auto train = dataset::load_split(t.path, "train");
    REQUIRE(train);
    REQUIRE(train->size() == r.train.size());
    REQUIRE((*train)[0].text.rfind("Line ", 0) == 0);
    REQUIRE((*train)[0].ref_audio == "ref.wav");
    REQUIRE((*train)[0].bucket == r.train[0].bucket);

    // a metadata change makes the split stale: refused, not silently used
    add_clips(t.path, 20, 21);
    REQUIRE_THROWS_WITH(dataset::load_split(t.path, "train"), Catch::Contains("dataset split"));
}

TEST_CASE("split: a clip listed twice stays on one side") {
    TempDir t;
    add_clips(t.path, 0, 30);
    std::string again = io::read_file(t / "metadata.jsonl");
    std::ofstream(t / "metadata.jsonl", std::ios::app) << again;  // every clip twice
    auto r = dataset::compute_split(t.path, 0.3);
    REQUIRE(r.train.size() + r.val.size() == 60);
    REQUIRE(r.val.size() % 2 == 0);
    auto val = names(r.val);
    for (auto& l : r.train) REQUIRE_FALSE(val.count(l.audio_filepath));
}

TEST_CASE("split: bad dataset folders") {
    TempDir t;
    REQUIRE_THROWS_WITH(dataset::compute_split(t.path, 0.1), Catch::Contains("no metadata.jsonl"));
    io::write_file_atomic(t / "metadata.jsonl", "{\"audio_filepath\":\"gone.wav\",\"text\":\"x\"}\n");
    auto gone = dataset::compute_split(t.path, 0.1);
    REQUIRE(gone.missing == std::vector<std::string>{"gone.wav"});
    REQUIRE(gone.train.empty());
    REQUIRE(gone.val.empty());
    io::write_file_atomic(t / "metadata.jsonl", "{\"audio_filepath\":\"a.wav\",\"text\":5}\n");
    REQUIRE_THROWS_WITH(dataset::compute_split(t.path, 0.1), Catch::Contains("metadata.jsonl:1: field 'text'"));
    io::write_file_atomic(t / "metadata.jsonl", "{\"audio_filepath\":\"../escape.wav\",\"text\":\"x\"}\n");
    REQUIRE_THROWS_WITH(dataset::compute_split(t.path, 0.1), Catch::Contains("outside"));
    io::write_file_atomic(t / "metadata.jsonl", "{\"text\":\"x\"}\n");
    REQUIRE_THROWS_WITH(dataset::compute_split(t.path, 0.1), Catch::Contains("audio_filepath"));
}
