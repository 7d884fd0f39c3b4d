// Script rendering end to end on the tiny model: files, merged book length, reruns, shards, bad lines.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "alexandria/io/audio.h"
#include "alexandria/synth/book.h"
#include "tiny_fixture.h"

using namespace alexandria;
using namespace alexandria::synth;
namespace fs = std::filesystem;

namespace {

Synthesizer& shared_synth() {
    static Synthesizer s([] {
        LoadOptions o;
        o.model = test::tiny().model;
        return o;
    }());
    return s;
}

ScriptOptions options(const std::string& script, const std::string& out_dir) {
    ScriptOptions o;
    o.script = script;
    o.out_dir = out_dir;
    o.defaults.ref_audio = test::tiny().ref_wav;
    o.defaults.max_frames = 4;
    o.defaults.seed = 1;
    return o;
}

int64_t samples_of(const std::string& path) { return static_cast<int64_t>(io::read_audio(path).samples.size()); }

}  // namespace

TEST_CASE("script: one file per line, the book is the parts plus the pauses, reruns redo only what is missing") {
    test::TempDir tmp;
    auto script = (tmp / "book.jsonl").string();
    std::ofstream(script) << R"({"text": "Chapter one.", "speaker": "narrator"})" << "\n"
                          << R"({"text": "It was late.", "speaker": "narrator", "pause_after": 1.0})" << "\n"
                          << R"({"text": "Who is there?", "speaker": "anna", "out": "anna/q.wav"})" << "\n"
                          << R"({"text": "Only me.", "speaker": "narrator", "seed": 99})" << "\n";
    auto o = options(script, (tmp / "out").string());
    o.merge_path = (tmp / "book.wav").string();
    auto rep = render_script(shared_synth(), o);
    REQUIRE(rep.ok());
    CHECK(rep.rendered == 4);
    CHECK(rep.merged);
    std::vector<std::string> files = {(tmp / "out/line-00001.wav").string(), (tmp / "out/line-00002.wav").string(),
                                      (tmp / "out/anna/q.wav").string(), (tmp / "out/line-00004.wav").string()};
    int64_t parts = 0;
    for (auto& f : files) {
        REQUIRE(fs::exists(f));
        auto n = samples_of(f);
        CHECK(n > 0);
        CHECK(n % 1920 == 0);
        parts += n;
    }
    // narrator→narrator 0.25 s, then pause_after 1.0 s, anna→narrator 0.5 s
    int64_t pauses = 6000 + 24000 + 12000;
    CHECK(samples_of(o.merge_path) == parts + pauses);

    // Rerun: everything exists → nothing rendered. Delete one → only that one is rendered again, identically.
    auto before = io::read_audio(files[2]).samples;
    auto again = render_script(shared_synth(), o);
    CHECK(again.rendered == 0);
    CHECK(again.skipped == 4);
    fs::remove(files[2]);
    auto third = render_script(shared_synth(), o);
    CHECK(third.rendered == 1);
    CHECK(third.skipped == 3);
    REQUIRE(third.lines.size() == 4);
    CHECK(third.lines[2].status == LineReport::Status::Rendered);
    CHECK(third.lines[2].line == 3);
    CHECK(io::read_audio(files[2]).samples == before);  // per-line seed: same audio when redone alone
}

TEST_CASE("script: a bad line is reported with its line number while the others render") {
    test::TempDir tmp;
    auto script = (tmp / "s.jsonl").string();
    std::ofstream(script) << R"({"text": "Fine."})" << "\n"
                          << R"({"text": "broken)" << "\n"
                          << R"({"speaker": "x"})" << "\n"
                          << R"({"text": "Escapes.", "out": "../../evil.wav"})" << "\n"
                          << R"({"text": "Also fine."})" << "\n";
    auto o = options(script, (tmp / "out").string());
    o.merge_path = (tmp / "book.wav").string();
    auto rep = render_script(shared_synth(), o);
    CHECK_FALSE(rep.ok());
    CHECK(rep.rendered == 2);
    CHECK(rep.failed == 3);
    std::set<int> failed;
    for (auto& l : rep.lines)
        if (l.status == LineReport::Status::Failed) {
            failed.insert(l.line);
            CHECK(l.error.find(fmt::format(":{}", l.line)) != std::string::npos);
        }
    CHECK(failed == std::set<int>{2, 3, 4});
    CHECK(fs::exists(tmp / "out/line-00001.wav"));
    CHECK(fs::exists(tmp / "out/line-00005.wav"));
    CHECK_FALSE(fs::exists(tmp.path.parent_path() / "evil.wav"));
    // No book with holes in it.
    CHECK_FALSE(rep.merged);
    CHECK_FALSE(fs::exists(o.merge_path));
    CHECK(rep.merge_note.find("2, 3, 4") != std::string::npos);
}

TEST_CASE("script: shards render every line exactly once into the same folder, then merge") {
    test::TempDir tmp;
    auto script = (tmp / "s.jsonl").string();
    {
        std::ofstream f(script);
        for (int i = 0; i < 7; ++i) f << fmt::format(R"({{"text": "Line number {}."}})", i + 1) << "\n";
    }
    for (int n : {1, 3}) {
        auto out = (tmp / fmt::format("out{}", n)).string();
        std::multiset<int> seen;
        for (int k = 1; k <= n; ++k) {
            auto o = options(script, out);
            o.shard = Shard{k, n};
            o.merge_path = (tmp / fmt::format("book{}.wav", n)).string();
            auto rep = render_script(shared_synth(), o);
            CHECK(rep.ok());
            CHECK(rep.other_shards == 7 - static_cast<int>(rep.lines.size()));
            for (auto& l : rep.lines) {
                CHECK(l.status == LineReport::Status::Rendered);
                seen.insert(l.line);
            }
            // The book appears once the last shard has finished.
            CHECK(rep.merged == (k == n));
        }
        CHECK(seen == std::multiset<int>{1, 2, 3, 4, 5, 6, 7});
    }
    // Shards give the same audio as one run (per-line seeds).
    CHECK(io::read_audio((tmp / "out1/line-00005.wav").string()).samples ==
          io::read_audio((tmp / "out3/line-00005.wav").string()).samples);
}

TEST_CASE("long text is split at sentences and the chunks joined") {
    Utterance u;
    u.ref_audio = test::tiny().ref_wav;
    u.max_frames = 3;
    u.text = "First sentence here. Second sentence here. Third one.";
    int chunks = 0;
    auto r = speak_long(shared_synth(), u, 25, &chunks);
    CHECK(chunks == 3);
    CHECK(r.audio.size() == static_cast<size_t>(r.frames) * 1920);
    CHECK(r.frames <= 9);
}
