// ICL prompt mode (train --prompt icl): the layout against the synth ICL prefill written out position by position,
// the embeddings of one sample, and training, batching, resume, early stop and bad input on the tiny model.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "alexandria/dataset/prepare.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/text/prompt.h"
#include "alexandria/train/objective.h"
#include "alexandria/train/trainer.h"
#include "train_fixture.h"

using namespace alexandria;
using namespace alexandria::train;
using alexandria::test::TempDir;
using nlohmann::json;

namespace {

// Voice-clone ICL, non-streaming (upstream generate_icl_prompt), written out by position: role, prefix, speaker,
// BOS, reference text, target text, EOSt (all over codec_pad), codec_bos, reference frames, then the target frames.
Row icl_row(int64_t p, const std::vector<int64_t>& role, const std::vector<int64_t>& prefix,
            const std::vector<int64_t>& r, const std::vector<int64_t>& t, int64_t R) {
    const int64_t PAD = 151671, BOS = 151672, EOSt = 151673;
    const int64_t K = static_cast<int64_t>(prefix.size()), Rt = static_cast<int64_t>(r.size()),
                  M = static_cast<int64_t>(t.size());
    if (p <= 2) return Row{role[p], Row::Codec::None, -1, -1};
    if (p <= 2 + K) return Row{PAD, Row::Codec::Id, prefix[p - 3], -1};
    if (p == 3 + K) return Row{PAD, Row::Codec::Speaker, -1, -1};
    if (p == 4 + K) return Row{BOS, Row::Codec::Id, 2148, -1};
    if (p <= 4 + K + Rt) return Row{r[p - 5 - K], Row::Codec::Id, 2148, -1};
    if (p <= 4 + K + Rt + M) return Row{t[p - 5 - K - Rt], Row::Codec::Id, 2148, -1};
    if (p == 5 + K + Rt + M) return Row{EOSt, Row::Codec::Id, 2148, -1};
    if (p == 6 + K + Rt + M) return Row{PAD, Row::Codec::Id, 2149, -1};
    if (p <= 6 + K + Rt + M + R) return Row{PAD, Row::Codec::RefFrame, -1, p - (7 + K + Rt + M)};
    return Row{PAD, Row::Codec::Frame, -1, p - (7 + K + Rt + M + R)};
}

TrainOptions icl_options(const fs::path& data, const fs::path& out, std::vector<std::string>* lines = nullptr) {
    TrainOptions o;
    o.model = test::tiny_model_dir().string();
    o.data = data;
    o.out = out;
    o.device = test::device_name();  // ALEXANDRIA_TEST_DEVICE: cpu unless the GPU run asks for cuda
    o.epochs = 2;
    o.lr = 2e-3;
    o.lora_r = 4;
    o.lora_alpha = 8;
    o.seed = 5;
    o.prompt = PromptMode::Icl;
    if (lines) o.protocol = [lines](const std::string& l) { lines->push_back(l); };
    return o;
}

std::map<std::string, torch::Tensor> read_tensors(const fs::path& file) {
    io::SafetensorsFile f(file.string());
    std::map<std::string, torch::Tensor> m;
    for (const auto& t : f.tensors()) m[t.name] = f.view(t.name).clone();
    return m;
}

bool has_line(const std::vector<std::string>& lines, const std::string& prefix) {
    for (const auto& l : lines)
        if (l.rfind(prefix, 0) == 0) return true;
    return false;
}

}  // namespace

TEST_CASE("the ICL layout is synth's ICL prefill followed by the target frames", "[train][layout][icl]") {
    LayoutIds ids;
    const std::vector<int64_t> role{151644, 77091, 198};
    for (bool english : {true, false}) {
        auto prefix = codec_prefix(ids, english ? 2050 : -1);
        for (int64_t Rt : {1, 4}) {
            for (int64_t R : {1, 5}) {
                for (int64_t N : {1, 6}) {
                    for (Objective obj : {Objective::Alexandria, Objective::Aligned}) {
                        std::vector<int64_t> r, t{1000, 1017, 1034};
                        for (int64_t i = 0; i < Rt; ++i) r.push_back(500 + 3 * i);
                        Layout L = build_icl_layout(ids, prefix, role, r, t, R, N, obj);
                        const int64_t K = static_cast<int64_t>(prefix.size()), M = 3;
                        const int64_t prefill = 7 + K + Rt + M + R;
                        INFO("english=" << english << " Rt=" << Rt << " R=" << R << " N=" << N);
                        REQUIRE(L.prefill_len == prefill);
                        REQUIRE(L.length() == prefill + N);
                        CHECK(L.ref_frames == R);
                        for (int64_t p = 0; p < L.length(); ++p) {
                            INFO("p=" << p);
                            CHECK(L.rows[p] == icl_row(p, role, prefix, r, t, R));
                        }
                        // Scored: only the target's frames (and the aligned EOS), from the last reference row on.
                        std::vector<int64_t> code0;
                        for (int64_t j = 0; j < N; ++j) code0.push_back(7 * j + 1);
                        auto labels = L.talker_labels(code0);
                        for (int64_t p = 0; p < L.length(); ++p) {
                            INFO("p=" << p);
                            if (p >= prefill - 1 && p < prefill - 1 + N) CHECK(labels[p] == code0[p - prefill + 1]);
                            else if (obj == Objective::Aligned && p == prefill - 1 + N) CHECK(labels[p] == 2150);
                            else CHECK(labels[p] == kIgnoreIndex);
                        }
                        REQUIRE(L.sub_hidden_positions.size() == size_t(N));
                        for (int64_t j = 0; j < N; ++j) CHECK(L.sub_hidden_positions[j] == prefill - 1 + j);
                        // Same targets as the x-vector layout of the same text, shifted by the ICL part.
                        Layout X = build_layout(ids, prefix, role, t, N, obj);
                        REQUIRE(X.talker_targets.size() == L.talker_targets.size());
                        for (size_t i = 0; i < X.talker_targets.size(); ++i)
                            CHECK(L.talker_targets[i].position - X.talker_targets[i].position == Rt + R);
                        CHECK(X.sub_pairs == L.sub_pairs);
                    }
                }
            }
        }
    }
    CHECK_THROWS_AS(build_icl_layout(ids, codec_prefix(ids, -1), role, {}, {1000}, 3, 2, Objective::Aligned),
                    InputError);
    CHECK_THROWS_AS(build_icl_layout(ids, codec_prefix(ids, -1), role, {500}, {1000}, 0, 2, Objective::Aligned),
                    InputError);
    CHECK(parse_prompt_mode("icl") == PromptMode::Icl);
    CHECK(parse_prompt_mode("xvector") == PromptMode::XVector);
    CHECK_THROWS_AS(parse_prompt_mode("clone"), InputError);
}

TEST_CASE("one ICL sample's embeddings: the x-vector rows around the reference's text and frames",
          "[train][icl]") {
    TempDir tmp;
    auto data = test::copy_tiny_voice(tmp.path);
    auto lm = model::load_model(test::tiny_model_dir().string());
    model::Talker talker = lm.model->talker;
    auto tok = text::Tokenizer::from_folder(test::tiny_model_dir().string());
    dataset::PrepareOptions po;
    po.reference_codes = true;
    auto prep = dataset::prepare(data, test::tiny_model_dir().string(), po);
    REQUIRE(prep.reference_frames > 0);

    PromptContext ctx;
    ctx.ids = LayoutIds::from_config(lm.config);
    ctx.prefix = codec_prefix(lm.config, "english");
    ctx.speaker = prep.speaker_embedding();
    Sample s;
    auto ids = text::encode_target_text(tok, prep.clips[2].text);
    s.role.assign(ids.role.begin(), ids.role.end());
    s.content.assign(ids.content.begin(), ids.content.end());
    s.codes = prep.load_codes(prep.clips[2]);
    auto x = sample_inputs(talker, ctx, s, Objective::Aligned);

    ctx.mode = PromptMode::Icl;
    auto ref_ids = text::encode_reference_text(tok, io::read_file(data / "ref_text.txt"));
    ctx.ref_content.assign(ref_ids.begin(), ref_ids.end());
    ctx.ref_codes = prep.load_reference_codes();
    auto icl = sample_inputs(talker, ctx, s, Objective::Aligned);

    const int64_t Rt = static_cast<int64_t>(ctx.ref_content.size()), R = ctx.ref_codes.size(0);
    const int64_t K = static_cast<int64_t>(ctx.prefix.size()), M = static_cast<int64_t>(s.content.size());
    REQUIRE(icl.embeds.size(0) == x.embeds.size(0) + Rt + R);
    // Role, prefix, speaker and BOS rows: identical.
    CHECK(torch::equal(icl.embeds.narrow(0, 0, 5 + K), x.embeds.narrow(0, 0, 5 + K)));
    // The reference text rows: T(r_i) + C(codec_pad).
    torch::NoGradGuard ng;
    auto pad = talker->codec_embed(torch::tensor({ctx.ids.codec_pad}));
    auto rt = talker->text_embed(torch::tensor(ctx.ref_content)) + pad;
    CHECK(torch::allclose(icl.embeds.narrow(0, 5 + K, Rt), rt, 1e-6, 1e-6));
    // Target text, EOSt and codec_bos rows: the x-vector rows, shifted by the reference text.
    CHECK(torch::equal(icl.embeds.narrow(0, 5 + K + Rt, M + 2), x.embeds.narrow(0, 5 + K, M + 2)));
    // The reference frames, then the target frames as in x-vector mode.
    auto tpad = talker->text_embed(torch::tensor({ctx.ids.tts_pad}));
    auto rf = talker->frame_embed(ctx.ref_codes) + tpad;
    CHECK(torch::allclose(icl.embeds.narrow(0, 7 + K + Rt + M, R), rf, 1e-5, 1e-6));
    // (the same sums; libtorch's AVX-512 reduction may round a frame's 16-way sum differently for another count of
    // frames, so within an ulp rather than bit for bit)
    CHECK(torch::allclose(icl.embeds.narrow(0, icl.layout.prefill_len, s.frames()),
                          x.embeds.narrow(0, x.layout.prefill_len, s.frames()), 1e-6, 1e-6));
    CHECK(icl.layout.prefill_len == x.layout.prefill_len + Rt + R);
}

TEST_CASE("ICL training: losses fall, the mode is recorded, batching and resume hold", "[train][icl][e2e]") {
    TempDir tmp;
    auto data = test::copy_tiny_voice(tmp.path);
    std::vector<std::string> lines;
    auto o = icl_options(data, tmp / "icl", &lines);
    o.epochs = 3;
    o.lora_dropout = 0;
    auto r = train::train(o);
    REQUIRE(r.status == TrainStatus::Completed);
    REQUIRE(r.epochs.size() == 3);
    CHECK(r.samples == 9);
    CHECK(r.epochs.back().alexandria_loss < r.epochs.front().alexandria_loss);
    CHECK(r.epochs.back().aligned_loss < r.epochs.front().aligned_loss);
    json meta = json::parse(io::read_file(tmp / "icl" / "training_meta.json"));
    CHECK(meta["prompt"] == "icl");
    CHECK(meta["text_layout"] == "non-streaming");
    CHECK(meta["reference_frames"].get<int64_t>() > 0);
    CHECK(meta["ref_sample_text"] == "The wooden table stood by the window, in the quiet morning light.");
    CHECK(io::read_file(tmp / "icl" / "ref_sample.wav") == io::read_file(data / "ref.wav"));
    CHECK(has_line(lines, "[DONE] Adapter saved to "));

    // The ICL prompt changes what the model sees: the x-vector run of the same settings scores differently.
    auto xo = o;
    xo.prompt = PromptMode::XVector;
    xo.out = tmp / "xvector";
    xo.epochs = 1;
    auto rx = train::train(xo);
    REQUIRE(rx.status == TrainStatus::Completed);
    CHECK(rx.epochs[0].alexandria_loss != r.epochs[0].alexandria_loss);
    CHECK(json::parse(io::read_file(tmp / "xvector" / "training_meta.json"))["prompt"] == "xvector");

    SECTION("--batch 3 --grad-accum 1 follows --batch 1 --grad-accum 3") {
        auto a = o;
        a.epochs = 2;
        a.grad_accum = 3;
        a.out = tmp / "seq";
        auto b = a;
        b.out = tmp / "bat";
        b.batch = 3;
        b.grad_accum = 1;
        auto ra = train::train(a), rb = train::train(b);
        REQUIRE(ra.epochs.size() == rb.epochs.size());
        for (size_t e = 0; e < ra.epochs.size(); ++e) {
            CHECK(rb.epochs[e].alexandria_loss == Approx(ra.epochs[e].alexandria_loss).epsilon(1e-4));
            CHECK(rb.epochs[e].aligned_loss == Approx(ra.epochs[e].aligned_loss).epsilon(1e-4));
        }
        auto ta = read_tensors(tmp / "seq" / "adapter_model.safetensors");
        auto tb = read_tensors(tmp / "bat" / "adapter_model.safetensors");
        for (auto& [name, t] : ta) CHECK(torch::allclose(t, tb[name], 1e-3, 1e-5));
    }
    SECTION("an interrupted ICL run resumes to exactly the uninterrupted result") {
        auto part = o;
        part.out = tmp / "part";
        part.stop_after_steps = 4;
        REQUIRE(train::train(part).status == TrainStatus::Interrupted);
        // The checkpoint is tied to the prompt mode.
        auto wrong = part;
        wrong.stop_after_steps = 0;
        wrong.resume = true;
        wrong.prompt = PromptMode::XVector;
        CHECK_THROWS_AS(train::train(wrong), InputError);
        auto cont = part;
        cont.stop_after_steps = 0;
        cont.resume = true;
        auto rc = train::train(cont);
        REQUIRE(rc.status == TrainStatus::Completed);
        REQUIRE(rc.epochs.size() == r.epochs.size());
        for (size_t e = 0; e < r.epochs.size(); ++e) CHECK(rc.epochs[e].alexandria_loss == r.epochs[e].alexandria_loss);
        auto ta = read_tensors(tmp / "icl" / "adapter_model.safetensors");
        auto tc = read_tensors(tmp / "part" / "adapter_model.safetensors");
        for (auto& [name, t] : ta) CHECK(torch::equal(t, tc[name]));
    }
    SECTION("early stop on the loss band") {
        auto e = o;
        e.out = tmp / "early";
        e.target_loss = 100.0;  // any loss reaches it: stop after epoch 1
        auto re = train::train(e);
        REQUIRE(re.status == TrainStatus::Completed);
        CHECK(re.stopped_early);
        CHECK(re.epochs.size() == 1);
    }
}

TEST_CASE("ICL mode: a clip that is the reference is skipped; ref_text.txt is required", "[train][icl][bad-input]") {
    TempDir tmp;
    auto data = test::copy_tiny_voice(tmp.path);
    SECTION("a training entry whose audio is the reference") {
        // Alexandria's Dataset Builder copies one of the samples to ref.wav.
        fs::copy_file(data / "sample_004.wav", data / "ref.wav", fs::copy_options::overwrite_existing);
        std::vector<std::string> lines;
        auto o = icl_options(data, tmp / "out", &lines);
        o.epochs = 1;
        auto r = train::train(o);
        REQUIRE(r.status == TrainStatus::Completed);
        CHECK(r.samples == 8);
        CHECK(has_line(lines, "[DATA] SKIP sample_004.wav: the same audio as the reference"));
        json meta = json::parse(io::read_file(tmp / "out" / "training_meta.json"));
        CHECK(meta["num_samples"] == 8);
        CHECK(meta["reference_clips_skipped"] == 1);
        // x-vector mode keeps it (train_lora.py's behaviour).
        auto x = o;
        x.prompt = PromptMode::XVector;
        x.out = tmp / "x";
        CHECK(train::train(x).samples == 9);
    }
    SECTION("missing ref_text.txt") {
        fs::remove(data / "ref_text.txt");
        try {
            train::train(icl_options(data, tmp / "out"));
            FAIL("expected InputError");
        } catch (const InputError& e) {
            CHECK(std::string(e.what()).find("ref_text.txt: missing") != std::string::npos);
        }
        CHECK_FALSE(fs::exists(tmp / "out" / "adapter_model.safetensors"));
    }
    SECTION("blank ref_text.txt") {
        io::write_file_atomic(data / "ref_text.txt", " \n\t\n");
        try {
            train::train(icl_options(data, tmp / "out"));
            FAIL("expected InputError");
        } catch (const InputError& e) {
            CHECK(std::string(e.what()).find("ref_text.txt: empty") != std::string::npos);
        }
    }
}
