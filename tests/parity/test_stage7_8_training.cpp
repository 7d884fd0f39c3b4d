// Stages 7 and 8: training and PEFT adapters against the official model with real `peft`.
//  7. One batch (one sample): (a) the official finetuning/sft_12hz.py loss, rebuilt here on our modules from its
//     collate layout (it only runs where text width = talker width, as upstream); (b) Alexandria's train_lora.py
//     objective and (c) our aligned objective through our trainer's batch_loss(); losses within 1e-5 relative and
//     the LoRA gradients after one backward within the float tolerances (the harness wrote its PEFT LoRA, non-zero
//     B, as an adapter folder; we load it).
//  8. PEFT both ways: the adapter peft made (save_pretrained, non-zero B) loads here and gives the official outputs,
//     merged and unmerged; our adapter folder (written by the hidden "[.write-adapter]" case below, committed with
//     the fixtures) loaded by peft onto the official talker gives the outputs we compute with it.
#include <catch2/catch.hpp>

#include <cmath>

#include <fmt/format.h>

#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/layers.h"
#include "alexandria/model/lora.h"
#include "alexandria/train/layout.h"
#include "alexandria/train/objective.h"
#include "parity_util.h"

using namespace alexandria;
using namespace alexandria::parity;

namespace {

// HF's causal-LM loss as sft_12hz.py gets it from model.talker(labels=...): it shifts once more, so logits at p are
// scored against labels[p+1] (labels already shifted by the caller), mean over the non-ignored targets.
torch::Tensor hf_causal_loss(const torch::Tensor& logits /*[S, V]*/, const torch::Tensor& labels /*[S]*/) {
    auto lg = logits.slice(0, 0, logits.size(0) - 1).to(torch::kFloat32);
    auto lb = labels.slice(0, 1);
    return torch::nn::functional::cross_entropy(lg, lb, torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
}

// The official sft step on our modules: model-talker.md §7.1-7.2 (collate layout, no text projection, the speaker
// in slot 6, the frames' codebooks 1..15 added on codec_mask, talker loss with the double shift, the code predictor
// on the hidden at each frame's own position with forward_finetune's own label shift).
std::map<std::string, double> sft_losses(model::Talker& talker, const model::ModelConfig& cfg,
                                         const std::vector<int64_t>& text_ids, const torch::Tensor& codes,
                                         const torch::Tensor& spk) {
    const auto& tc = cfg.talker;
    const int64_t L = int64_t(text_ids.size()), N = codes.size(0), S = L + N + 8;
    auto text = torch::zeros({S}, torch::kInt64), codec = torch::zeros({S}, torch::kInt64);
    auto tmask = torch::zeros({S}, torch::kBool), cmask = torch::zeros({S}, torch::kBool),
         fmask = torch::zeros({S}, torch::kBool);
    auto labels = torch::full({S}, -100, torch::kInt64);
    auto codec_ids = torch::zeros({S, 16}, torch::kInt64);
    for (int i = 0; i < 3; ++i) text[i] = text_ids[i];
    text.slice(0, 3, 7).fill_(cfg.tts_pad_token_id);
    text[7] = cfg.tts_bos_token_id;
    for (int64_t i = 3; i < L; ++i) text[8 + i - 3] = text_ids[i];
    text[8 + L - 3] = cfg.tts_eos_token_id;
    text.slice(0, 8 + L - 2, 8 + L + N).fill_(cfg.tts_pad_token_id);
    tmask.slice(0, 0, 8 + L + N).fill_(true);
    int64_t pre[5] = {tc.codec_nothink_id, tc.codec_think_bos_id, tc.codec_think_eos_id, 0, tc.codec_pad_id};
    for (int i = 0; i < 5; ++i) codec[3 + i] = pre[i];
    codec.slice(0, 8, 8 + L - 2).fill_(tc.codec_pad_id);
    codec[8 + L - 2] = tc.codec_bos_id;
    codec.slice(0, 8 + L - 1, 8 + L - 1 + N).copy_(codes.select(1, 0));
    codec[8 + L - 1 + N] = tc.codec_eos_token_id;
    labels.slice(0, 8 + L - 1, 8 + L - 1 + N).copy_(codes.select(1, 0));
    labels[8 + L - 1 + N] = tc.codec_eos_token_id;
    codec_ids.slice(0, 8 + L - 1, 8 + L - 1 + N).copy_(codes);
    cmask.slice(0, 3, 8 + L + N).fill_(true);
    cmask[6] = false;
    fmask.slice(0, 8 + L - 1, 8 + L - 1 + N).fill_(true);

    torch::NoGradGuard ng;
    auto E = talker->model->text_embedding(text) * tmask.unsqueeze(-1);
    auto Ec = talker->codec_embed(codec) * cmask.unsqueeze(-1);
    Ec[6] = spk;
    E = E + Ec;
    for (int64_t g = 1; g < 16; ++g)
        E = E + talker->code_predictor->model->codec_embedding_list[g - 1](codec_ids.select(1, g)) *
                    fmask.unsqueeze(-1);
    // the talker call: inputs E[:-1] with the attention mask (all ones here: one unpadded sample)
    auto in = E.slice(0, 0, S - 1).unsqueeze(0);
    auto out = talker->forward(in);
    auto talker_loss = hf_causal_loss(out.logits[0], labels.slice(0, 1));
    auto pos = fmask.slice(0, 0, S - 1).nonzero().view(-1);
    auto hidden = out.hidden[0].index_select(0, pos);
    auto fc = codec_ids.index_select(0, fmask.nonzero().view(-1));
    auto cp = talker->code_predictor_logits(hidden, fc);  // [N, 15, V]: head k ↔ codebook k+1
    // forward_finetune's loss_function shifts its labels codec_ids[:, 1:] once more: head k ↔ codebook k+2
    auto sub_logits = cp.slice(1, 0, 14).reshape({-1, cp.size(2)}).to(torch::kFloat32);
    auto sub_labels = fc.slice(1, 2).reshape({-1});
    auto sub = torch::nn::functional::cross_entropy(sub_logits, sub_labels);
    double t = talker_loss.item<double>(), s = sub.item<double>();
    return {{"talker", t}, {"sub", s}, {"total", t + 0.3 * s}};
}

double rel(double got, double want) { return std::abs(got - want) / std::max(std::abs(want), 1e-12); }

void check_loss(const std::string& what, double got, double want) {
    INFO(what << ": ours " << got << ", official " << want << ", relative " << rel(got, want));
    Figures f;
    f.max_abs = std::abs(got - want);
    f.max_rel = rel(got, want);
    f.cosine = 1;
    f.count = 1;
    record("7 loss " + what.substr(0, what.find(' ')), what, f);
    CHECK(rel(got, want) <= 1e-5);
}

}  // namespace

namespace {

// Our side of stage 7 on one model: the harness's PEFT LoRA loaded from its folder, the fixture's sample through
// our trainer's prompt layout and batch_loss().
struct OurTraining {
    model::LoadedModel loaded;
    train::PromptContext ctx;
    train::Sample sample;

    OurTraining(const std::string& name, const nlohmann::json& t, const std::map<std::string, torch::Tensor>& want)
        : loaded(model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32)) {
        model::freeze_base(*loaded.model);
        model::load_adapter(talker(), (fixture_dir() / name / "stage7_adapter").string());
        ctx.ids = train::LayoutIds::from_config(loaded.config);
        ctx.prefix = train::codec_prefix(loaded.config, t.at("language").get<std::string>());
        ctx.speaker = want.at("speaker");
        auto text_ids = t.at("text_ids").get<std::vector<int64_t>>();
        sample.name = "parity";
        sample.role.assign(text_ids.begin(), text_ids.begin() + 3);
        sample.content.assign(text_ids.begin() + 3, text_ids.end());
        sample.codes = want.at("codes");
    }
    model::Talker& talker() { return loaded.model->talker; }

    // Losses of one objective and, after one backward, the LoRA gradients under PEFT's saved key names.
    std::pair<train::ObjectiveLoss, std::vector<std::pair<std::string, torch::Tensor>>> run(train::Objective obj) {
        for (auto& p : model::lora_parameters(talker())) p.mutable_grad() = torch::Tensor();
        auto bl = train::batch_loss(talker(), ctx, {&sample}, obj, 1.0);
        auto parts = bl.samples.at(0).of(obj);
        bl.backward_loss.backward();
        std::vector<std::pair<std::string, torch::Tensor>> grads;
        for (const auto& [key, tensor] : model::lora_state(talker())) {
            REQUIRE(tensor.grad().defined());
            grads.emplace_back(key, tensor.grad().clone());
        }
        return {parts, grads};
    }
};

// The LoRA gradients: sums over the whole sequence of products whose signs vary, many elements near zero. Floor 1e-2
// and max rel 3e-4, set by the official fp32's own error against float64 (parity_util.h kNoiseFloor).

}  // namespace

TEST_CASE("stage 7: training losses and LoRA gradients", "[parity][stage7]") {
    int checked = 0;
    for (const auto& name : model_names()) {
        const auto& e = model_entry(name);
        if (!e.contains("training")) continue;
        const auto& t = e.at("training");
        INFO("model " << name);
        auto want = load_tensors(fs::path(name) / "stage7.safetensors");
        OurTraining ours(name, t, want);

        // (a) the official sft step, on the base weights (the harness runs it before attaching its LoRA)
        if (!t.at("sft").is_null()) {
            auto base = model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32);
            auto got = sft_losses(base.model->talker, base.config, t.at("text_ids").get<std::vector<int64_t>>(),
                                  want.at("codes"), want.at("speaker"));
            for (const char* k : {"talker", "sub", "total"})
                check_loss(std::string("sft ") + k + " " + name, got[k], t.at("sft").at(k).get<double>());
        }

        // (b) alexandria and (c) aligned
        {
            torch::NoGradGuard ng;
            auto in = train::sample_inputs(ours.talker(), ours.ctx, ours.sample, train::Objective::Alexandria);
            CHECK(in.layout.prefill_len == t.at("prefill_len").get<int64_t>());
            PARITY_CHECK_CLOSE("7 training inputs", name, in.embeds, want.at("embeds"));
        }
        for (auto obj : {train::Objective::Alexandria, train::Objective::Aligned}) {
            const std::string on = train::objective_name(obj);
            auto [got, grads] = ours.run(obj);
            const auto& w = t.at("losses").at(on);
            check_loss(on + " talker " + name, got.talker, w.at("talker").get<double>());
            check_loss(on + " sub " + name, got.sub, w.at("sub").get<double>());
            check_loss(on + " total " + name, got.total, w.at("total").get<double>());
            for (const auto& [key, grad] : grads) {
                std::string k = "grad." + on + "." + key;
                REQUIRE(want.count(k));
                PARITY_CHECK_CLOSE_NOISY("7 LoRA gradients " + on, name + " " + key, grad, want.at(k));
            }
            CHECK(grads.size() == size_t(std::count_if(want.begin(), want.end(), [&](const auto& kv) {
                      return kv.first.rfind("grad." + on + ".", 0) == 0;
                  })));
            if (e.contains("float64"))
                record_float64("7 noise: official fp32 vs float64, " + on, name,
                               e.at("float64").at("stage7").at("grads").at(on));
        }
        ++checked;
    }
    CHECK(checked >= 2);
}

// Measurement, not run by default: our fp32 gradients against the official model's float64 ones
// (tools/parity/float64.py --save into $ALEXANDRIA_PARITY_FLOAT64), floor 1e-3 as the official fp32's own figure.
TEST_CASE("stage 7 against float64", "[.float64]") {
    REQUIRE(!float64_dir().empty());
    for (const auto& name : model_names()) {
        fs::path f64 = float64_dir() / (name + ".f64.safetensors");
        const auto& e = model_entry(name);
        if (!fs::exists(f64) || !e.contains("training")) continue;
        io::SafetensorsFile file(f64.string());
        auto want = load_tensors(fs::path(name) / "stage7.safetensors");
        OurTraining ours(name, e.at("training"), want);
        for (auto obj : {train::Objective::Alexandria, train::Objective::Aligned}) {
            const std::string on = train::objective_name(obj);
            auto grads = ours.run(obj).second;
            for (const auto& [key, grad] : grads) {
                std::string k = "stage7.grad." + on + "." + key;
                torch::Tensor ref = file.view(k).clone();
                const auto& official = want.at("grad." + on + "." + key);
                for (double floor : {1e-3, 1e-2}) {
                    record(fmt::format("7 f64 {} ours fp32 vs official float64, floor {:g}", on, floor),
                           name + " " + key, compare(grad, ref, floor));
                    record(fmt::format("7 f64 {} official fp32 vs official float64, floor {:g}", on, floor),
                           name + " " + key, compare(official, ref, floor));
                    record(fmt::format("7 f64 {} ours fp32 vs official fp32, floor {:g}", on, floor),
                           name + " " + key, compare(grad, official, floor));
                }
            }
        }
    }
}

namespace {

struct Outputs {
    torch::Tensor hidden, logits, cp_logits;
};

// What the harness records (training.py logits_with): the talker's hidden states of every row, the last row's
// logits, and the code predictor's logits over the first cp_vocab codes of each head.
Outputs outputs_of(model::Talker& talker, const torch::Tensor& embeds, const torch::Tensor& cp_hidden,
                   const torch::Tensor& cp_codes, int64_t cp_vocab) {
    torch::NoGradGuard ng;
    auto out = talker->forward(embeds.unsqueeze(0));
    return {out.hidden[0], out.logits[0][-1],
            talker->code_predictor_logits(cp_hidden, cp_codes).slice(-1, 0, cp_vocab)};
}

void check_outputs(const std::string& stage, const std::string& what, const Outputs& got,
                   const std::map<std::string, torch::Tensor>& want, const std::string& prefix) {
    // the talker: floor 1e-2 as stage 3's prefill hidden/logits (the same decoder layers, with a LoRA branch); the
    // code predictor: stage 4's tolerance (its logits, with a LoRA branch)
    PARITY_CHECK_CLOSE_FLOOR(stage + " talker", what + " hidden", got.hidden, want.at(prefix + ".hidden"), 1e-2);
    PARITY_CHECK_CLOSE_FLOOR(stage + " talker", what + " last logits", got.logits, want.at(prefix + ".logits"), 1e-2);
    PARITY_CHECK_CLOSE_NOISY(stage + " code predictor", what, got.cp_logits, want.at(prefix + ".cp_logits"));
}

constexpr int64_t kOurRank = 4;
constexpr double kOurAlpha = 8;
constexpr uint64_t kOurSeed = 4242;

// Our adapter for a model: deterministic non-zero A and B on Alexandria's targets (r 4, alpha 8).
model::LoraConfig our_lora_config() {
    model::LoraConfig lc;
    lc.r = kOurRank;
    lc.alpha = kOurAlpha;
    lc.dropout = 0;
    return lc;
}

void make_our_adapter(model::Talker& talker) {
    model::attach_lora(talker, our_lora_config());
    torch::NoGradGuard ng;
    for (auto& [key, tensor] : model::lora_state(talker))
        tensor.copy_(model::random_parameter(key, tensor.sizes(), kOurSeed) * 0.1);
}

}  // namespace

TEST_CASE("stage 8: PEFT adapters both ways, merged and unmerged", "[parity][stage8]") {
    int checked = 0;
    for (const auto& name : model_names()) {
        const auto& e = model_entry(name);
        if (!e.contains("peft")) continue;
        INFO("model " << name);
        const auto& pe = e.at("peft");
        auto want = load_tensors(fs::path(name) / "stage8.safetensors");
        auto st3 = load_tensors(fs::path(name) / "stage3.safetensors");
        auto st4 = load_tensors(fs::path(name) / "stage4.safetensors");
        const std::string input = pe.at("input").get<std::string>();
        const int64_t cp_vocab = pe.at("cp_vocab").get<int64_t>();
        torch::Tensor embeds = st3.at(input), cp_hidden = st4.at("hidden"), cp_codes = st4.at("codes");
        {
            // the base model's outputs first: the adapters below must move them far beyond the tolerance, or the
            // comparisons would pass with the adapter ignored
            auto loaded = model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32);
            check_outputs("8 PEFT no adapter,", name, outputs_of(loaded.model->talker, embeds, cp_hidden, cp_codes,
                                                                          cp_vocab),
                          want, "base");
        }
        REQUIRE(pe.at("cases").contains("peft"));
        REQUIRE(pe.at("cases").contains("ours"));
        for (const auto& [which, folder] : pe.at("cases").items()) {
            INFO("adapter " << which);
            // "peft": peft's adapter loaded here; "ours": our adapter, loaded by peft for the official outputs
            const std::string label = which == "peft" ? "8 PEFT peft's adapter in ours" : "8 PEFT our adapter in peft";
            for (const char* part : {".hidden", ".cp_logits"}) {
                auto effect = compare(want.at("base" + std::string(part)), want.at(which + ".unmerged" + part));
                CHECK(effect.max_rel > 1e-2);
            }
            auto loaded = model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32);
            auto& talker = loaded.model->talker;
            model::load_adapter(talker, (fixture_dir() / name / folder.get<std::string>()).string());
            check_outputs(label + ", unmerged", name,
                          outputs_of(talker, embeds, cp_hidden, cp_codes, cp_vocab), want, which + ".unmerged");
            model::merge_lora(talker);
            check_outputs(label + ", merged", name,
                          outputs_of(talker, embeds, cp_hidden, cp_codes, cp_vocab), want, which + ".merged");
            ++checked;
        }
        // the committed folder is what our code writes today for the same adapter
        auto loaded = model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32);
        make_our_adapter(loaded.model->talker);
        auto read = model::read_adapter((fixture_dir() / name / "ours_adapter").string());
        auto live = model::lora_state(loaded.model->talker);
        REQUIRE(read.tensors.size() == live.size());
        for (size_t i = 0; i < live.size(); ++i) {
            CHECK(read.tensors[i].first == live[i].first);
            CHECK(torch::equal(read.tensors[i].second, live[i].second));
        }
    }
    CHECK(checked >= 4);
}

// Not run by default: tools/parity/run.sh calls it to write our adapter folders before the harness loads them with
// peft (ALEXANDRIA_PARITY_ADAPTER_OUT=<fixtures>, models from the fixture manifest).
TEST_CASE("write our adapters for the PEFT stage", "[.write-adapter]") {
    const char* out = std::getenv("ALEXANDRIA_PARITY_ADAPTER_OUT");
    REQUIRE(out != nullptr);
    for (const auto& name : model_names()) {
        if (model_entry(name).at("type").get<std::string>() != "base") continue;
        auto loaded = model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32);
        make_our_adapter(loaded.model->talker);
        model::save_adapter(loaded.model->talker, our_lora_config(), (fs::path(out) / name / "ours_adapter").string());
    }
}
