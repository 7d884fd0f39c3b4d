// `evaluate` on a tiny random Base model and the bundled tiny dataset: held-out loss, speaker similarity, a forced
// runaway, eval.json's schema, the split rule and several adapters.
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/dataset/prepare.h"
#include "alexandria/dataset/split.h"
#include "alexandria/eval/evaluate.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/model/speaker_encoder.h"
#include "alexandria/text/prompt.h"
#include "alexandria/text/tokenizer.h"
#include "alexandria/train/layout.h"
#include "support/test_support.h"
#include "eval_fixture.h"

using namespace alexandria;
using namespace alexandria::eval;
using alexandria::test::TempDir;
using alexandria::test::copy_tiny_voice;
using alexandria::test::small_options;
using alexandria::test::tiny;
using json = nlohmann::json;
namespace fs = std::filesystem;


TEST_CASE("held-out loss is train's teacher-forced loss, without updates") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto lm = model::load_model(tiny().model);
    auto tok = text::Tokenizer::from_folder(tiny().model);
    dataset::PrepareOptions po;
    po.only_lines = {4, 5};
    auto prep = dataset::prepare(data, tiny().model, po);
    REQUIRE(prep.clips.size() == 2);
    std::vector<train::Sample> samples;
    for (const auto& c : prep.clips) {
        train::Sample s;
        s.name = c.audio;
        auto ids = text::encode_target_text(tok, c.text);
        s.role.assign(ids.role.begin(), ids.role.end());
        s.content.assign(ids.content.begin(), ids.content.end());
        s.codes = prep.load_codes(c);
        samples.push_back(s);
    }
    train::PromptContext ctx;
    ctx.ids = train::LayoutIds::from_config(lm.config);
    ctx.prefix = train::codec_prefix(lm.config, "english");
    ctx.speaker = prep.speaker_embedding();
    auto& talker = lm.model->talker;
    auto before = talker->parameters()[0].clone();

    auto h = held_out_loss(talker, ctx, samples);
    CHECK(h.samples == 2);
    CHECK(std::isfinite(h.alexandria.total));
    CHECK(std::isfinite(h.aligned.total));
    CHECK(h.alexandria.total == Approx(h.alexandria.talker + 0.3 * h.alexandria.sub));
    CHECK(h.aligned.total == Approx(h.aligned.talker + 0.3 * h.aligned.sub));
    // The mean of the per-sample losses train computes.
    double sum = 0;
    {
        torch::NoGradGuard ng;
        for (const auto& s : samples) sum += train::batch_loss(talker, ctx, {&s}, train::Objective::Alexandria, 1.0).samples[0].alexandria.total;
    }
    CHECK(h.alexandria.total == Approx(sum / 2).epsilon(1e-5));
    CHECK(h.verdict.loss == h.alexandria.total);
    CHECK(torch::equal(before, talker->parameters()[0]));

    // A fresh adapter (B = 0) changes nothing; a random one changes the loss.
    model::load_adapter(talker, tiny().zero_adapter);
    CHECK(held_out_loss(talker, ctx, samples).alexandria.total == Approx(h.alexandria.total).epsilon(1e-6));
    model::detach_lora(talker);
    model::load_adapter(talker, tiny().adapter_b);
    CHECK(held_out_loss(talker, ctx, samples).alexandria.total != Approx(h.alexandria.total).epsilon(1e-4));
    model::detach_lora(talker);

    CHECK_THROWS_AS(held_out_loss(talker, ctx, {}), InputError);
}

TEST_CASE("speaker similarity of identical audio is 1 through the model's encoder") {
    auto lm = model::load_model(tiny().model);
    auto a = io::read_audio_resampled((test::source_dir() / "examples" / "tiny-voice" / "ref.wav").string());
    auto b = io::read_audio_resampled((test::source_dir() / "examples" / "tiny-voice" / "sample_003.wav").string());
    auto va = model::speaker_embedding(lm.model->speaker_encoder, a.samples);
    auto vb = model::speaker_embedding(lm.model->speaker_encoder, b.samples);
    auto vec = [](const torch::Tensor& t) {
        auto c = t.to(torch::kFloat32).contiguous();
        return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    };
    CHECK(cosine_similarity(vec(va), vec(va)) == Approx(1.0).margin(1e-6));
    auto a2 = model::speaker_embedding(lm.model->speaker_encoder, a.samples);
    CHECK(cosine_similarity(vec(va), vec(a2)) == Approx(1.0).margin(1e-6));
    CHECK(cosine_similarity(vec(va), vec(vb)) < 1.0 - 1e-6);
}

TEST_CASE("dataset speaking rate and held-out lines") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto ds = dataset::Dataset::load(data);
    std::vector<std::string> skipped;
    auto r = dataset_speaking_rate(ds, &skipped);
    CHECK(skipped.empty());
    CHECK(r.clips == int(ds.entries.size()));
    CHECK(r.chars_per_second > 3);   // espeak-ng speaks English at ~10-20 chars/s
    CHECK(r.chars_per_second < 40);

    CHECK_FALSE(held_out_lines(ds).has_value());
    dataset::split_dataset(data, 0.3);
    auto lines = held_out_lines(dataset::Dataset::load(data));
    REQUIRE(lines.has_value());
    CHECK(!lines->empty());
    auto val = dataset::load_split(data, "val");
    CHECK(lines->size() == val->size());
    // A stale split is refused.
    {
        std::ofstream(data / "metadata.jsonl", std::ios::app) << "{\"audio_filepath\": \"sample_000.wav\", \"text\": \"Oh again!\"}\n";
    }
    CHECK_THROWS_AS(held_out_lines(dataset::Dataset::load(data)), InputError);
}

TEST_CASE("adapter labels and recorded languages") {
    CHECK(adapter_label("out/checkpoints/epoch-3", {}) == "epoch-3");
    CHECK(adapter_label("out/checkpoints/epoch-3/", {}) == "epoch-3");
    CHECK(adapter_label("a/epoch-3", {"epoch-3"}) == "epoch-3-2");
    CHECK(adapter_label("x/base", {}) == "base-adapter");
    CHECK(adapter_label("x/my voice", {}) == "my_voice");
    CHECK(recorded_language(tiny().adapter_a) == "english");
    TempDir t;
    fs::create_directories(t / "run" / "checkpoints" / "epoch-1");
    std::ofstream((t / "run" / "training_meta.json").string()) << R"({"language": "German"})";
    CHECK(recorded_language((t / "run" / "checkpoints" / "epoch-1").string()) == "german");
    CHECK(recorded_language((t / "run" / "checkpoints" / "epoch-1").string() + "/") == "german");
    CHECK(recorded_language((t / "run").string()) == "german");
    CHECK(recorded_language(t.path.string()).empty());
}

TEST_CASE("a generation forced to hit the frame cap is a runaway: not usable, eval.json has every figure") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto o = small_options(t.path, data);
    o.max_frames = 2;  // EOS is blocked for the first 2 frames (min_new_tokens): every line must hit the cap
    std::vector<std::string> log;
    o.log = [&](const std::string& s) { log.push_back(s); };
    auto r = evaluate(o);

    REQUIRE(r.adapters.size() == 1);
    const auto& a = r.adapters[0];
    CHECK(a.label == "epoch-1");
    CHECK(a.language == "english");
    REQUIRE(a.outputs.size() == 4);  // 2 prompts × 2 seeds
    for (const auto& c : a.outputs) {
        CHECK_FALSE(c.failed);
        CHECK(c.hit_cap);
        CHECK(c.frames == 2);
        CHECK(c.frame_cap == 2);
        CHECK(fs::exists(c.wav));
    }
    CHECK(a.generation.runaway_rate == 1.0);
    CHECK(a.generation.eos_rate == 0.0);
    CHECK_FALSE(a.verdict.usable);
    bool no_eos = false;
    for (const auto& f : a.verdict.findings) no_eos |= f.key == "no-eos";
    CHECK(no_eos);
    CHECK(r.exit_code == kExitNotUsable);
    CHECK_FALSE(r.pick.has_value());
    REQUIRE(r.base.has_value());
    CHECK(r.base->outputs.size() == 4);
    CHECK(fs::exists(fs::path(o.out) / "base" / "p01-s0.wav"));
    CHECK(fs::exists(fs::path(o.out) / "epoch-1" / "p02-s1.wav"));
    // Without html_report (the command line without --out) there is no page and no copied reference.
    CHECK(r.report_path.empty());
    CHECK_FALSE(fs::exists(fs::path(o.out) / "report.html"));
    CHECK_FALSE(fs::exists(fs::path(o.out) / "reference"));

    // eval.json: the schema.
    json j = json::parse(io::read_file(fs::path(o.out) / "eval.json"));
    CHECK(j == r.json);
    CHECK(j["schema"] == kEvalSchema);
    for (const char* k : {"versions", "model", "data", "settings", "thresholds", "seed_tables", "not_measured", "base",
                          "adapters", "comparison", "usable", "exit_code", "seconds"})
        CHECK(j.contains(k));
    CHECK(j["versions"]["alexandria"].is_string());
    CHECK(j["versions"]["libtorch"].is_string());
    CHECK(j["data"]["held_out"]["split"] == "all");
    CHECK(j["data"]["held_out"]["note"].get<std::string>().find("no validation split") != std::string::npos);
    CHECK(j["data"]["speaking_rate"]["chars_per_second"].is_number());
    CHECK(j["settings"]["seeds"] == json::array({0, 1}));
    CHECK(j["settings"]["prompts"].size() == 2);
    CHECK(j["settings"]["prompts"][0]["kind"] == "short");
    CHECK(j["seed_tables"]["troubleshooting"].size() == 7);
    CHECK(j["seed_tables"]["loss_bands"].size() == 5);
    const json& ja = j["adapters"][0];
    CHECK(ja["label"] == "epoch-1");
    for (const char* k : {"alexandria", "aligned"}) {
        CHECK(ja["held_out_loss"][k]["loss"].is_number());
        CHECK(ja["held_out_loss"][k]["talker_loss"].is_number());
        CHECK(ja["held_out_loss"][k]["sub_loss"].is_number());
    }
    CHECK(ja["held_out_loss"]["samples"] == 9);
    CHECK(ja["held_out_loss"]["verdict"]["band"].is_string());
    CHECK(ja["generation"]["runaway_rate"] == 1.0);
    CHECK(ja["generation"]["short"]["outputs"] == 2);
    CHECK(ja["outputs"].size() == 4);
    for (const auto& out : ja["outputs"]) {
        for (const char* k : {"prompt", "kind", "seed", "frames", "frame_cap", "eos", "hit_cap", "seconds",
                              "speech_seconds", "silent", "clipped", "chars_per_second", "duration_ratio",
                              "duration_outlier", "speaker_similarity", "wav"})
            CHECK(out.contains(k));
        CHECK(out["hit_cap"] == true);
    }
    CHECK(ja["verdict"]["usable"] == false);
    CHECK(ja["verdict"]["findings"].is_array());
    CHECK(ja["training"]["language"] == "english");
    CHECK(j["comparison"]["pick"].is_null());
    CHECK(j["usable"] == false);
    CHECK(j["exit_code"] == 3);

    auto table = format_table(r);
    CHECK(table.find("epoch-1") != std::string::npos);
    CHECK(table.find("Generation hangs / no EOS") != std::string::npos);
    CHECK(table.find("Retrain with fewer epochs") != std::string::npos);
    bool logged = false;
    for (const auto& l : log) logged |= l.find("[EVAL] epoch-1 p01 seed 0") == 0;
    CHECK(logged);
}

TEST_CASE("outputs generated together are the outputs generated one at a time") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto o = small_options(t.path, data);
    o.loss = false;
    o.compare_base = false;
    o.seeds = 3;  // 2 prompts × 3 seeds = 6 outputs
    o.batch = 1;
    o.out = (t / "one").string();
    auto one = evaluate(o);
    o.batch = 4;  // fewer slots than outputs: slots are refilled
    o.out = (t / "four").string();
    auto four = evaluate(o);
    REQUIRE(one.adapters[0].outputs.size() == 6);
    REQUIRE(four.adapters[0].outputs.size() == 6);
    for (size_t i = 0; i < 6; ++i) {
        const auto &a = one.adapters[0].outputs[i], &b = four.adapters[0].outputs[i];
        INFO("output " << i);
        CHECK(a.prompt_id == b.prompt_id);
        CHECK(a.seed == b.seed);
        CHECK(a.frames == b.frames);
        CHECK_FALSE(b.failed);
        CHECK(io::read_file(a.wav) == io::read_file(b.wav));
    }
}

TEST_CASE("several adapters on a split dataset: one table, a ranking, the base model once") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    dataset::split_dataset(data, 0.3);
    auto val = dataset::load_split(data, "val");
    auto o = small_options(t.path, data);
    o.adapters = {tiny().adapter_a, tiny().adapter_b, tiny().zero_adapter};
    o.seeds = 1;
    auto r = evaluate(o);
    REQUIRE(r.adapters.size() == 3);
    CHECK(r.adapters[0].label == "epoch-1");
    CHECK(r.adapters[1].label == "epoch-2");
    CHECK(r.adapters[2].label == "zero");
    std::vector<size_t> sorted = r.ranking;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<size_t>{0, 1, 2});
    for (const auto& a : r.adapters) {
        REQUIRE(a.loss);
        CHECK(a.loss->split == "val");
        CHECK(a.loss->samples == int(val->size()));
    }
    REQUIRE(r.base);
    REQUIRE(r.base->loss);
    // The zero adapter is the base model: the same held-out losses.
    CHECK(r.adapters[2].loss->alexandria.total == Approx(r.base->loss->alexandria.total).epsilon(1e-5));
    CHECK(r.adapters[2].loss->aligned.total == Approx(r.base->loss->aligned.total).epsilon(1e-5));
    CHECK(r.adapters[1].loss->alexandria.total != Approx(r.base->loss->alexandria.total).epsilon(1e-4));
    json j = json::parse(io::read_file(fs::path(o.out) / "eval.json"));
    CHECK(j["adapters"].size() == 3);
    CHECK(j["comparison"]["ranking"].size() == 3);
    CHECK(j["comparison"]["ranking"][0]["rank"] == 1);
    CHECK(j["data"]["held_out"]["split"] == "val");
    auto table = format_table(r);
    CHECK(table.find("ranking:") != std::string::npos);
}

TEST_CASE("bad input is an InputError before any work") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto o = small_options(t.path, data);
    auto bad = o;
    bad.adapters = {(t / "nope").string()};
    CHECK_THROWS_AS(evaluate(bad), InputError);
    bad = o;
    bad.adapters.clear();
    CHECK_THROWS_AS(evaluate(bad), InputError);
    bad = o;
    bad.seeds = 0;
    CHECK_THROWS_AS(evaluate(bad), InputError);
    bad = o;
    bad.prompts_file = (t / "missing.txt").string();
    CHECK_THROWS_AS(evaluate(bad), InputError);
    bad = o;
    bad.data = (t / "no-data").string();
    CHECK_THROWS_AS(evaluate(bad), InputError);
    bad = o;
    bad.language = "klingon";
    CHECK_THROWS_AS(evaluate(bad), InputError);
    CHECK_FALSE(fs::exists(fs::path(o.out) / "eval.json"));
}
