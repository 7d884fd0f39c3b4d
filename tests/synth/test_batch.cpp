// Several lines at once: a line's codes and audio never depend on its batch neighbours, rows are refilled as lines
// end, and audio streamed while generating is the audio of the finished line.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>

#include "alexandria/io/error.h"
#include "alexandria/synth/book.h"
#include "alexandria/synth/generate.h"
#include "alexandria/synth/static_decode.h"
#include "alexandria/synth/synthesizer.h"
#include "tiny_fixture.h"

using namespace alexandria;
using namespace alexandria::synth;
namespace fs = std::filesystem;

namespace {

Synthesizer& batch_synth() {
    static Synthesizer s([] {
        LoadOptions o;
        o.model = test::tiny().model;
        return o;
    }());
    return s;
}

const std::vector<std::string> kTexts = {
    "Hello there.", "The library is open from nine until five, every day of the week.", "Oh!",
    "A second, rather longer sentence about the ancient library and its readers.", "Goodbye for now."};

struct Line {
    PromptTensors prompt;
    GenerateOptions opts;
};

std::vector<Line> lines(bool greedy) {
    auto& s = batch_synth();
    std::vector<Line> out;
    for (size_t i = 0; i < kTexts.size(); ++i) {
        Utterance u;
        u.text = kTexts[i];
        u.ref_audio = test::tiny().ref_wav;
        Line l;
        l.prompt = s.prepare(u).tensors;
        l.opts.talker = talker_params(s.generation(), greedy);
        l.opts.subtalker = subtalker_params(s.generation(), greedy);
        l.opts.max_frames = 5 + static_cast<int64_t>(3 * i % 7);  // rows end at different steps
        l.opts.seed = 100 + i;
        out.push_back(l);
    }
    return out;
}

std::map<int64_t, GenerateResult> run_batch(const std::vector<Line>& ls, int64_t batch, BatchStats* stats = nullptr) {
    std::map<int64_t, GenerateResult> got;
    size_t next = 0;
    auto st = generate_batch(
        batch_synth().model()->talker, batch,
        [&](GenerateJob& job) {
            if (next == ls.size()) return false;
            job.id = static_cast<int64_t>(next);
            job.prompt = ls[next].prompt;
            job.opts = ls[next].opts;
            ++next;
            return true;
        },
        [&](int64_t id, GenerateResult&& r) {
            CHECK(got.count(id) == 0);
            got[id] = std::move(r);
        });
    if (stats) *stats = st;
    return got;
}

void check_same_as_alone(bool greedy) {
    auto ls = lines(greedy);
    std::vector<GenerateResult> alone;
    int64_t frames = 0;
    for (auto& l : ls) {
        alone.push_back(generate_codes(batch_synth().model()->talker, l.prompt, l.opts));
        frames += alone.back().codes.size(0);
    }
    for (int64_t batch : {2, 3, 8}) {
        CAPTURE(batch);
        BatchStats st;
        auto got = run_batch(ls, batch, &st);
        REQUIRE(got.size() == ls.size());
        CHECK(st.lines == static_cast<int64_t>(ls.size()));
        CHECK(st.frames == frames);
        CHECK(st.steps < frames);  // lines really shared steps
        for (size_t i = 0; i < ls.size(); ++i) {
            CAPTURE(i);
            CHECK(got[int64_t(i)].hit_cap == alone[i].hit_cap);
            CHECK(got[int64_t(i)].prompt_rows == alone[i].prompt_rows);
            REQUIRE(got[int64_t(i)].codes.sizes() == alone[i].codes.sizes());
            CHECK(torch::equal(got[int64_t(i)].codes, alone[i].codes));
        }
    }
}

}  // namespace

TEST_CASE("batched lines: greedy codes equal each line alone, at every batch size") { check_same_as_alone(true); }

TEST_CASE("batched lines: sampled codes equal each line alone with its own seed") { check_same_as_alone(false); }

TEST_CASE("batched lines: EOS ends a row early and the row is refilled; frames are reported per line") {
    auto ls = lines(false);
    const int64_t eos = batch_synth().config().talker.codec_eos_token_id;
    // Line 1 stops after 2 frames (its EOS forced), everyone else runs to its cap.
    for (size_t i = 0; i < ls.size(); ++i)
        ls[i].opts.logits_hook = [eos, i](torch::Tensor& l, int64_t step) {
            l.select(1, eos).fill_(i == 1 && step >= 2 ? 1e4 : -1e4);
        };
    std::map<int64_t, std::vector<torch::Tensor>> streamed;
    std::map<int64_t, GenerateResult> got;
    size_t next = 0;
    generate_batch(
        batch_synth().model()->talker, 2,
        [&](GenerateJob& job) {
            if (next == ls.size()) return false;
            job.id = static_cast<int64_t>(next);
            job.prompt = ls[next].prompt;
            job.opts = ls[next].opts;
            ++next;
            return true;
        },
        [&](int64_t id, GenerateResult&& r) { got[id] = std::move(r); },
        [&](int64_t id, int64_t n, const torch::Tensor& frame) {
            CHECK(static_cast<int64_t>(streamed[id].size()) == n - 1);
            streamed[id].push_back(frame.to(torch::kCPU).clone());
        });
    REQUIRE(got.size() == ls.size());
    CHECK(got[1].codes.size(0) == 2);
    CHECK_FALSE(got[1].hit_cap);
    for (size_t i = 0; i < ls.size(); ++i) {
        if (i == 1) continue;
        CHECK(got[int64_t(i)].hit_cap);
        CHECK(got[int64_t(i)].codes.size(0) == ls[i].opts.max_frames);
        CHECK(torch::equal(torch::cat(streamed[int64_t(i)]), got[int64_t(i)].codes));
    }
    // The same as alone (forced EOS included).
    auto alone = generate_codes(batch_synth().model()->talker, ls[3].prompt, ls[3].opts);
    CHECK(torch::equal(alone.codes, got[3].codes));
}

TEST_CASE("batched lines must share sampling settings") {
    auto ls = lines(false);
    ls[1].opts.talker.temperature = 0.5;
    CHECK_THROWS_AS(run_batch(ls, 2), Error);
}

TEST_CASE("speak_batch: each line's audio equals speak() of it alone; a failing line does not stop the others") {
    auto& s = batch_synth();
    std::vector<Utterance> us;
    for (size_t i = 0; i < 4; ++i) {
        Utterance u;
        u.text = kTexts[i];
        u.ref_audio = test::tiny().ref_wav;
        u.seed = 7 + i;
        u.max_frames = 6 + static_cast<int64_t>(i);
        us.push_back(u);
    }
    us[2].ref_audio = "/nonexistent/ref.wav";  // fails in preparation
    std::map<size_t, BatchLineResult> got;
    s.speak_batch(us, 3, [&](size_t i, BatchLineResult&& r) {
        CHECK(got.count(i) == 0);
        got[i] = std::move(r);
    });
    REQUIRE(got.size() == us.size());
    CHECK_FALSE(got[2].error.empty());
    for (size_t i : {0, 1, 3}) {
        CAPTURE(i);
        REQUIRE(got[i].error.empty());
        auto alone = s.speak(us[i]);
        CHECK(got[i].result.frames == alone.frames);
        CHECK(got[i].result.audio == alone.audio);
    }
    CHECK_THROWS_AS(s.speak_batch(us, -1, [](size_t, BatchLineResult&&) {}), InputError);
    // 0: the device's default batch (8 on the CPU), the one rule every command uses.
    CHECK(s.batch_size(0) == default_batch(torch::kCPU));
    CHECK(s.batch_size(3) == 3);
    size_t n0 = 0;
    s.speak_batch({us[0]}, 0, [&](size_t, BatchLineResult&& r) { n0 += r.error.empty(); });
    CHECK(n0 == 1);
}

TEST_CASE("streamed audio is the finished line's audio, and starts within the first block of frames") {
    auto& s = batch_synth();
    Utterance u;
    u.text = kTexts[1];
    u.ref_audio = test::tiny().ref_wav;
    u.seed = 5;
    u.max_frames = 30;
    auto whole = s.speak(u);
    REQUIRE(whole.frames > kFirstAudioFrames + kAudioBlockFrames);

    AudioStream stream(s.codec());
    std::vector<float> streamed;
    int64_t first_audio_after = -1;
    auto r = s.speak(u, [&](int64_t n, const torch::Tensor& frame) {
        auto part = stream.push(frame);
        if (!part.empty() && first_audio_after < 0) first_audio_after = n;
        streamed.insert(streamed.end(), part.begin(), part.end());
    });
    auto rest = stream.finish();
    streamed.insert(streamed.end(), rest.begin(), rest.end());
    CHECK(first_audio_after == kFirstAudioFrames);
    CHECK(r.audio == whole.audio);
    CHECK(streamed == whole.audio);  // bit for bit

    // Block decoding matches the one-shot (reference-chunked) decoder up to float rounding.
    GenerateOptions g;
    g.talker = talker_params(s.generation());
    g.subtalker = subtalker_params(s.generation());
    g.max_frames = 30;
    g.seed = 5;
    auto gen = generate_codes(s.model()->talker, s.prepare(u).tensors, g);
    std::vector<float> a = decode_in_blocks(s.codec(), gen.codes);
    std::vector<float> b = s.codec().decode(gen.codes);
    REQUIRE(a.size() == b.size());
    auto ta = torch::from_blob(a.data(), {static_cast<int64_t>(a.size())});
    auto tb = torch::from_blob(b.data(), {static_cast<int64_t>(b.size())});
    CHECK((ta - tb).abs().max().item<float>() < 1e-4);
}

TEST_CASE("script: --batch renders the same files as one line at a time") {
    test::TempDir tmp;
    auto script = tmp / "lines.jsonl";
    {
        std::ofstream f(script);
        for (size_t i = 0; i < 4; ++i)
            f << "{\"text\": \"" << kTexts[i] << "\", \"seed\": " << 20 + i << "}\n";
    }
    auto render = [&](int64_t batch, const std::string& dir) {
        ScriptOptions o;
        o.script = script.string();
        o.out_dir = (tmp / dir).string();
        o.batch = batch;
        o.defaults.ref_audio = test::tiny().ref_wav;
        o.defaults.max_frames = 8;
        std::vector<int> order;
        auto rep = render_script(batch_synth(), o, [&](const LineReport& l, const ScriptProgress& p) {
            order.push_back(l.line);
            CHECK(p.done == static_cast<int>(order.size()));
        });
        CHECK(rep.rendered == 4);
        CHECK(rep.failed == 0);
        REQUIRE(rep.lines.size() == 4);
        for (size_t i = 0; i < 4; ++i) CHECK(rep.lines[i].line == static_cast<int>(i + 1));  // script order
        return rep;
    };
    auto one = render(1, "one"), many = render(3, "many");
    for (size_t i = 0; i < 4; ++i) {
        auto a = io::read_audio(one.lines[i].out), b = io::read_audio(many.lines[i].out);
        CHECK(a.samples == b.samples);
        CHECK(one.lines[i].frames == many.lines[i].frames);
    }
}

TEST_CASE("the static decode form (what CUDA graphs capture) gives the codes of the ordinary loop") {
    auto ls = lines(true);
    for (size_t i : {0, 3}) {
        auto a = generate_codes(batch_synth().model()->talker, ls[i].prompt, ls[i].opts);
        std::vector<torch::Tensor> streamed;
        auto b = generate_codes_static(batch_synth().model()->talker, ls[i].prompt, ls[i].opts,
                                       [&](int64_t, const torch::Tensor& f) { streamed.push_back(f.clone()); });
        CHECK(a.hit_cap == b.hit_cap);
        REQUIRE(a.codes.sizes() == b.codes.sizes());
        CHECK(torch::equal(a.codes, b.codes));
        CHECK(torch::equal(torch::cat(streamed), b.codes));
    }
    auto sampled = lines(false);
    auto a = generate_codes(batch_synth().model()->talker, sampled[3].prompt, sampled[3].opts);
    auto b = generate_codes_static(batch_synth().model()->talker, sampled[3].prompt, sampled[3].opts);
    CHECK(torch::equal(a.codes, b.codes));  // the same draws: multinomial's own algorithm, without its checks
}
