// The decode loop and the synthesizer on a tiny random model: seeds, greedy, EOS, the cap, min frames, ICL
// trimming, adapter scale and merged folders.
#include <catch2/catch.hpp>

#include "alexandria/io/error.h"
#include "alexandria/model/layers.h"
#include "alexandria/synth/generate.h"
#include "alexandria/synth/inspect.h"
#include "alexandria/synth/synthesizer.h"
#include "tiny_fixture.h"

using namespace alexandria;
using namespace alexandria::synth;
namespace fs = std::filesystem;

namespace {

Synthesizer& base_synth() {
    static Synthesizer s([] {
        LoadOptions o;
        o.model = test::tiny().model;
        return o;
    }());
    return s;
}

Utterance clone_line(const std::string& text = "Hello there. The library is open.") {
    Utterance u;
    u.text = text;
    u.ref_audio = test::tiny().ref_wav;
    u.max_frames = 12;
    return u;
}

GenerateOptions options(Synthesizer& s, uint64_t seed, int64_t cap, bool greedy = false) {
    GenerateOptions g;
    g.talker = talker_params(s.generation(), greedy);
    g.subtalker = subtalker_params(s.generation(), greedy);
    g.max_frames = cap;
    g.seed = seed;
    return g;
}

}  // namespace

TEST_CASE("same seed gives identical codes and audio; another seed differs; greedy is deterministic") {
    auto& s = base_synth();
    auto u = clone_line();
    u.seed = 42;
    auto a = s.speak(u);
    auto b = s.speak(u);
    REQUIRE(a.frames > 0);
    CHECK(a.audio == b.audio);
    CHECK(a.audio.size() == static_cast<size_t>(a.frames) * 1920);

    // A line's audio does not depend on what was spoken before it.
    auto other = clone_line("Something else entirely.");
    other.seed = 9;
    s.speak(other);
    CHECK(s.speak(u).audio == a.audio);

    u.seed = 43;
    CHECK(s.speak(u).audio != a.audio);

    auto p = s.prepare(clone_line());
    auto g1 = generate_codes(s.model()->talker, p.tensors, options(s, 1, 10, true));
    auto g2 = generate_codes(s.model()->talker, p.tensors, options(s, 2, 10, true));
    CHECK(torch::equal(g1.codes, g2.codes));  // greedy ignores the seed
    auto s1 = generate_codes(s.model()->talker, p.tensors, options(s, 1, 10));
    auto s2 = generate_codes(s.model()->talker, p.tensors, options(s, 2, 10));
    CHECK_FALSE(torch::equal(s1.codes, s2.codes));
    CHECK(s1.codes.size(1) == 16);
    CHECK(s1.codes.max().item<int64_t>() < 2048);
    CHECK(s1.codes.min().item<int64_t>() >= 0);
}

TEST_CASE("EOS ends generation, never before two frames; the cap ends it and says so") {
    auto& s = base_synth();
    auto p = s.prepare(clone_line());
    auto& talker = s.model()->talker;
    const int64_t eos = s.config().talker.codec_eos_token_id;

    SECTION("EOS forced from the start: exactly two frames (min_new_tokens)") {
        auto g = options(s, 1, 50);
        g.logits_hook = [&](torch::Tensor& l, int64_t) { l[0][eos] = 1e4; };
        auto r = generate_codes(talker, p.tensors, g);
        CHECK(r.codes.size(0) == 2);
        CHECK_FALSE(r.hit_cap);
    }
    SECTION("EOS at step 5: five frames") {
        auto g = options(s, 1, 50);
        g.logits_hook = [&](torch::Tensor& l, int64_t step) {
            l[0][eos] = step == 5 ? 1e4f : -1e4f;
        };
        auto r = generate_codes(talker, p.tensors, g);
        CHECK(r.codes.size(0) == 5);
        CHECK_FALSE(r.hit_cap);
    }
    SECTION("no EOS: stopped at the cap and reported; every frame is streamed as it is made") {
        auto g = options(s, 1, 7);
        g.logits_hook = [&](torch::Tensor& l, int64_t) { l[0][eos] = -1e4; };
        std::vector<torch::Tensor> streamed;
        int64_t last = 0;
        auto r = generate_codes(talker, p.tensors, g, [&](int64_t n, const torch::Tensor& frame) {
            CHECK(n == last + 1);
            last = n;
            streamed.push_back(frame.to(torch::kCPU).clone());
        });
        CHECK(r.codes.size(0) == 7);
        CHECK(r.hit_cap);
        REQUIRE(streamed.size() == 7);
        CHECK(torch::equal(torch::cat(streamed), r.codes));
    }
    SECTION("control ids other than EOS are never sampled") {
        auto g = options(s, 1, 6);
        g.logits_hook = [&](torch::Tensor& l, int64_t) {
            l[0][eos] = -1e4;
            l[0][2200] = 1e4;  // suppressed
        };
        auto r = generate_codes(talker, p.tensors, g);
        CHECK(r.codes.select(1, 0).max().item<int64_t>() < 2048);
    }
}

TEST_CASE("the synthesizer reports a line that hits the frame cap") {
    auto& s = base_synth();
    auto u = clone_line();
    u.max_frames = 3;
    auto r = s.speak(u);
    // A random model practically never samples EOS within 3 frames (and the seed fixes the outcome).
    CHECK(r.frame_cap == 3);
    CHECK(r.frames <= 3);
    CHECK(r.hit_cap == (r.frames == 3));
}

TEST_CASE("frame cap rule: at least the minimum, proportional to tokens, never above --max-frames") {
    FrameCapRule rule;
    rule.frames_per_token = 6;
    rule.min_frames = 64;
    CHECK(frame_cap(1, 2048, rule) == 64);
    CHECK(frame_cap(20, 2048, rule) == 120);
    CHECK(frame_cap(1000, 2048, rule) == 2048);
    CHECK(frame_cap(20, 50, rule) == 50);
}

TEST_CASE("ICL trims the reference's share of the waveform exactly as the reference wrapper") {
    // cut = int(ref/total * len): values computed with Python's float arithmetic.
    std::vector<float> wav(10);
    for (int i = 0; i < 10; ++i) wav[i] = static_cast<float>(i);
    CHECK(trim_reference(wav, 3, 10) == std::vector<float>{3, 4, 5, 6, 7, 8, 9});  // int(0.3*10) = 3
    CHECK(trim_reference(wav, 1, 3).front() == 3.f);                               // int(1/3*10) = 3
    CHECK(trim_reference(wav, 2, 3).front() == 6.f);                               // int(2/3*10) = 6
    CHECK(trim_reference(wav, 0, 3).size() == 10);
    CHECK(trim_reference(wav, 3, 3).empty());
    std::vector<float> big(7 * 1920, 0.f);
    CHECK(trim_reference(big, 3, 7).size() == 7 * 1920 - 5760);  // int(3/7 * 13440) = 5760

    // Whole path: the reference clip's frames are decoded with the output and cut off again.
    auto& s = base_synth();
    auto u = clone_line();
    u.ref_text = "A sine wave speaks.";
    u.seed = 5;
    auto p = s.prepare(u);
    CHECK(p.mode == "clone ICL");
    REQUIRE(p.ref_codes.defined());
    CHECK(p.ref_codes.size(0) == codec::frames_for_samples(36000));
    auto r = s.speak(u);
    int64_t total = p.ref_codes.size(0) + r.frames;
    auto expected = total * 1920 -
                    static_cast<int64_t>(std::floor(double(p.ref_codes.size(0)) / double(total) * double(total * 1920)));
    CHECK(static_cast<int64_t>(r.audio.size()) == expected);
}

TEST_CASE("mode resolution refuses what a Base model cannot do") {
    auto& s = base_synth();
    Utterance u;
    u.text = "Hi.";
    CHECK_THROWS_AS(s.prepare(u), InputError);  // no voice at all
    u.ref_audio = test::tiny().ref_wav;
    u.speaker = "ryan";
    CHECK_THROWS_AS(s.prepare(u), InputError);  // named speakers are CustomVoice
    u.speaker.clear();
    u.language = "klingon";
    CHECK_THROWS_AS(s.prepare(u), InputError);
    u.language = "english";
    u.instruct = "Speak slowly.";
    auto p = s.prepare(u);
    CHECK(p.mode == "clone x-vector");
    CHECK_FALSE(p.request.instruct.empty());
    CHECK(p.request.layout == TextLayout::NonStreaming);  // every mode (the streaming layout drifts: issue 14)
    Utterance v;
    v.text = "Hi.";
    v.ref_text = "orphan transcript";
    CHECK_THROWS_AS(s.prepare(v), InputError);
}

TEST_CASE("adapter: the stored voice is the default, scale 0 equals the base model, scale 1 does not") {
    const auto& t = test::tiny();
    auto u = clone_line();
    u.seed = 8;
    u.layout = TextLayout::NonStreaming;  // the default of every mode, said explicitly
    auto base = base_synth().speak(u);    // voice from ref_audio in both

    for (bool merge : {true, false}) {
        LoadOptions o;
        o.model = t.model;
        o.adapter = t.adapter;
        o.lora_scale = 0.0;
        o.merge_adapter = merge;
        Synthesizer zero(o);
        CHECK(zero.adapter_merged() == merge);
        CHECK(zero.speak(u).audio == base.audio);
    }
    LoadOptions o;
    o.model = t.model;
    o.adapter = t.adapter;
    Synthesizer full(o);
    CHECK(full.speak(u).audio != base.audio);

    // Without --ref-audio the adapter's stored speaker vector is used, in the training layout.
    Utterance plain;
    plain.text = u.text;
    plain.max_frames = 6;
    auto p = full.prepare(plain);
    CHECK(p.mode == "clone x-vector");
    CHECK(p.request.layout == TextLayout::NonStreaming);
    CHECK(p.request.voice == VoiceKind::SpeakerVector);
}

TEST_CASE("int8 synthesis holds each linear weight once, as int8, and runs adapters unmerged") {
    const auto& t = test::tiny();
    auto u = clone_line();
    u.seed = 5;
    auto load = [&](const std::string& adapter, double scale) {
        LoadOptions o;
        o.model = t.model;
        o.int8_weights = true;
        o.adapter = adapter;
        o.lora_scale = scale;
        return std::make_unique<Synthesizer>(o);
    };
    auto plain = load("", 1.0);
    int64_t quantized = 0;
    for (auto& m : plain->model()->modules())
        if (auto* lin = dynamic_cast<model::LoraLinearImpl*>(m.get()); lin && lin->int8()) {
            ++quantized;
            CHECK(lin->weight_released());
            CHECK(lin->weight.numel() == 0);
        }
    CHECK(quantized > 0);
    auto base = plain->speak(u);
    CHECK(!base.audio.empty());

    auto zero = load(t.adapter, 0.0), full = load(t.adapter, 1.0);
    CHECK_FALSE(full->adapter_merged());
    CHECK(zero->speak(u).audio == base.audio);  // a branch at scale 0 adds nothing
    CHECK(full->speak(u).audio != base.audio);  // the unmerged branch has its effect
    auto none = u;
    none.adapter = "-";  // this line without the adapter: the branch is detached, the int8 weights untouched
    CHECK(full->speak(none).audio == base.audio);
    CHECK(full->speak(u).audio != base.audio);

    // Nothing can be merged into the released weights: refused, not corrupted.
    for (auto& m : full->model()->modules())
        if (auto* lin = dynamic_cast<model::LoraLinearImpl*>(m.get()); lin && lin->int8()) {
            lin->attach_lora(2, 1.0, 0.0);
            CHECK_THROWS_AS(lin->merge(), Error);
            CHECK_FALSE(lin->merged());
            lin->detach_lora();
            break;
        }
}

TEST_CASE("a merged folder speaks exactly like base + adapter at the same scale") {
    const auto& t = test::tiny();
    test::TempDir tmp;
    MergeOptions m;
    m.model = t.model;
    m.adapter = t.adapter;
    m.out = (tmp / "merged").string();
    m.scale = 0.5;
    auto res = merge_adapter_folder(m);
    CHECK(res.dtype == "f32");
    CHECK(res.merged_modules > 0);
    CHECK(fs::exists(fs::path(m.out) / "speech_tokenizer" / "model.safetensors"));
    CHECK(fs::exists(fs::path(m.out) / kMergedFromFile));
    CHECK(fs::exists(fs::path(m.out) / kSpeakerEmbeddingFile));
    // A second merge into the same non-empty folder needs --force.
    CHECK_THROWS_AS(merge_adapter_folder(m), InputError);

    LoadOptions a;
    a.model = t.model;
    a.adapter = t.adapter;
    a.lora_scale = 0.5;
    Synthesizer with_adapter(a);
    LoadOptions b;
    b.model = m.out;
    Synthesizer merged(b);
    Utterance u;
    u.text = "The merged voice.";
    u.seed = 3;
    u.max_frames = 8;
    auto x = with_adapter.speak(u);  // adapter's stored voice
    auto y = merged.speak(u);        // the merged folder carries the same voice
    CHECK(x.mode == y.mode);
    CHECK(x.layout == y.layout);
    CHECK(x.audio == y.audio);
}

TEST_CASE("model and adapter info describe the folders") {
    const auto& t = test::tiny();
    auto mi = model_info(t.model);
    CHECK(mi["type"] == "base");
    CHECK(mi["weights"]["matches_config"] == true);
    CHECK(mi["codec"]["present"] == true);
    CHECK(mi["tokenizer"] == "vocab.json + merges.txt");
    CHECK(mi["parameters"]["total"].get<int64_t>() > 0);
    auto ai = model::adapter_summary(t.adapter);
    CHECK(ai["r"] == 4);
    CHECK(ai["talker_hidden_size"] == t.hidden);
    CHECK_FALSE(ai["voice"]["speaker_embedding"].get<std::string>().empty());
}

TEST_CASE("CustomVoice and VoiceDesign checkpoints: named speakers and described voices") {
    test::TempDir tmp;
    auto make = [&](const std::string& type) {
        auto dir = (tmp / type).string();
        model::RandomModelSpec spec;
        spec.type = type;
        spec.seed = 2;
        model::write_random_model(dir, spec);
        text::write_tiny_tokenizer(dir);
        codec::write_random_codec((fs::path(dir) / "speech_tokenizer").string(), "tiny", 5);
        LoadOptions o;
        o.model = dir;
        return Synthesizer(o);
    };
    auto cv = make("custom_voice");
    Utterance u;
    u.text = "Good evening.";
    u.max_frames = 4;
    CHECK_THROWS_AS(cv.prepare(u), InputError);  // which speaker?
    u.speaker = "Eric";                          // a Sichuan-dialect speaker, language auto
    u.instruct = "Cheerfully.";
    auto p = cv.prepare(u);
    CHECK(p.mode == "custom voice");
    CHECK(p.request.layout == TextLayout::NonStreaming);
    CHECK(p.request.voice == VoiceKind::NamedSpeaker);
    CHECK_FALSE(p.request.instruct.empty());
    auto r = cv.speak(u);
    CHECK(r.frames >= 1);
    CHECK(r.audio.size() == static_cast<size_t>(r.frames) * 1920);
    u.ref_audio = test::tiny().ref_wav;
    CHECK_THROWS_AS(cv.prepare(u), InputError);  // no speaker encoder

    auto vd = make("voice_design");
    Utterance d;
    d.text = "Good evening.";
    d.instruct = "A deep, calm male voice.";
    d.max_frames = 4;
    auto q = vd.prepare(d);
    CHECK(q.mode == "voice design");
    CHECK(q.request.voice == VoiceKind::None);
    d.speaker = "ryan";
    CHECK_THROWS_AS(vd.prepare(d), InputError);
}

TEST_CASE("an Alexandria adapter folder: English training prefix, its reference sample and transcript") {
    auto sion = test::shared_dir() / "reference/voices/alexandria-sion";
    if (!fs::exists(sion)) return;
    auto v = inspect_adapter_voice(sion.string());
    CHECK(v.language == "english");  // train_lora.py hard-codes think + English
    CHECK_FALSE(v.ref_sample.empty());
    CHECK(v.ref_sample_text.rfind("\"The wooden table", 0) == 0);
    CHECK(v.speaker_file.empty());
    CHECK_THROWS_AS(inspect_adapter_voice((sion / "nope").string()), InputError);
}
