// LoRA branches and PEFT adapter folders (spec model-talker.md §7.4).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/kernels.h"
#include "alexandria/model/lora.h"
#include "model_test_util.h"

using namespace alexandria;
using namespace alexandria::model;
using nlohmann::json;
using test::max_abs_diff;

namespace {

// Gives every B a random value so the branches actually change the output.
void randomize_lora_B(Talker& t, double std = 0.05) {
    torch::NoGradGuard ng;
    for (auto& [path, lin] : lora_modules(t)) lin->lora_B().copy_(torch::randn(lin->lora_B().sizes()) * std);
}

torch::Tensor run(TTSModel& m, const torch::Tensor& x, const torch::Tensor& codes) {
    auto out = m->talker->forward(x);
    auto cp = m->talker->code_predictor_logits(out.hidden[0], codes);
    return torch::cat({out.logits.flatten(), cp.flatten()});
}

// The tiny model with one prompt's input and codes, for comparing the talker's outputs across weight forms.
struct Probe {
    TTSModel m = test::tiny_model();
    int64_t H = m->config().talker.hidden_size;
    torch::Tensor x = torch::randn({1, 6, H});
    torch::Tensor codes = torch::randint(0, 2048, {6, 16}, torch::kInt64);
    torch::Tensor output() { return run(m, x, codes); }
};

// r = 4, alpha = 8 on the default targets, B random.
void attach_random_lora(Talker& t) {
    LoraConfig cfg;
    cfg.r = 4;
    cfg.alpha = 8;
    attach_lora(t, cfg);
    randomize_lora_B(t);
}

}  // namespace

TEST_CASE("LoraLinear computes W x + b + (alpha/r) B A x", "[model][lora]") {
    torch::NoGradGuard ng;
    LoraLinear lin(6, 5, true, BuildOptions{});
    randomize_parameters(*lin, 3);
    auto x = torch::randn({4, 6});
    auto base = lin(x);
    CHECK(max_abs_diff(base, torch::matmul(x, lin->weight.t()) + lin->bias) < 1e-6);
    lin->attach_lora(2, 128.0 / 2, 0.0);
    CHECK(lin->lora_A().sizes() == torch::IntArrayRef({2, 6}));
    CHECK(lin->lora_B().sizes() == torch::IntArrayRef({5, 2}));
    CHECK(lin->lora_A().abs().max().item<double>() <= 1.0 / std::sqrt(6.0));  // kaiming-uniform(a=√5) bound
    CHECK(lin->lora_A().abs().max().item<double>() > 0);
    CHECK(torch::equal(lin(x), base));  // B = 0
    lin->lora_B().copy_(torch::randn({5, 2}));
    auto want = base + 64.0 * torch::matmul(torch::matmul(x, lin->lora_A().t()), lin->lora_B().t());
    CHECK(max_abs_diff(lin(x), want) < 1e-4);
    lin->set_lora_multiplier(0.5);
    CHECK(max_abs_diff(lin(x), base + 0.5 * (want - base)) < 1e-4);
    lin->set_lora_multiplier(0.0);
    CHECK(torch::equal(lin(x), base));
    // Named parameters stay the base key set.
    std::set<std::string> names;
    for (auto& p : lin->named_parameters()) names.insert(p.key());
    CHECK(names == std::set<std::string>{"weight", "bias"});
}

TEST_CASE("LoRA on the talker: B = 0 and scale 0 equal the base; merged equals unmerged", "[model][lora]") {
    torch::NoGradGuard ng;
    auto m = test::tiny_model();
    int64_t H = m->config().talker.hidden_size;
    auto x = torch::randn({1, 6, H});
    auto codes = torch::randint(0, 2048, {6, 16}, torch::kInt64);
    auto base = run(m, x, codes);
    auto w_before = m->talker->model->layer_list[0]->self_attn->q_proj->weight.clone();

    LoraConfig cfg;
    cfg.r = 4;
    cfg.alpha = 8;
    CHECK(attach_lora(m->talker, cfg) == 16);  // (2 talker + 2 code-predictor layers) × q/k/v/o
    auto names = lora_state(m->talker);
    REQUIRE(names.size() == 32);
    CHECK(names[0].first == "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    CHECK(names[1].first == "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
    CHECK(names.back().first == "base_model.model.code_predictor.model.layers.1.self_attn.o_proj.lora_B.weight");
    CHECK(torch::equal(run(m, x, codes), base));  // B = 0

    randomize_lora_B(m->talker);
    auto adapted = run(m, x, codes);
    CHECK(max_abs_diff(adapted, base) > 1e-3);
    set_lora_scale(m->talker, 0.0);
    CHECK(torch::equal(run(m, x, codes), base));
    set_lora_scale(m->talker, 1.0);
    CHECK(max_abs_diff(run(m, x, codes), adapted) < 1e-6);

    merge_lora(m->talker);
    CHECK(max_abs_diff(m->talker->model->layer_list[0]->self_attn->q_proj->weight, w_before) > 1e-4);
    CHECK(max_abs_diff(run(m, x, codes), adapted) < 1e-4);
    set_lora_scale(m->talker, 0.0);  // re-merges at the new strength
    CHECK(max_abs_diff(run(m, x, codes), base) < 1e-4);
    set_lora_scale(m->talker, 1.0);
    unmerge_lora(m->talker);
    // unmerge subtracts what merge added: W comes back up to fp32 rounding.
    CHECK(max_abs_diff(m->talker->model->layer_list[0]->self_attn->q_proj->weight, w_before) < 1e-6);
    CHECK(max_abs_diff(run(m, x, codes), adapted) < 1e-5);

    detach_lora(m->talker);
    CHECK(lora_state(m->talker).empty());
    CHECK(max_abs_diff(run(m, x, codes), base) < 1e-5);
}

TEST_CASE("training: base frozen, gradients reach only LoRA, dropout only in train mode", "[model][lora]") {
    auto m = test::tiny_model();
    LoraConfig cfg;
    cfg.r = 2;
    cfg.dropout = 0.5;
    attach_lora(m->talker, cfg);
    randomize_lora_B(m->talker);
    freeze_base(*m);
    for (auto& p : m->named_parameters()) REQUIRE_FALSE(p.value().requires_grad());
    auto params = lora_parameters(m->talker);
    REQUIRE(params.size() == 32);
    for (auto& p : params) REQUIRE(p.requires_grad());

    int64_t H = m->config().talker.hidden_size;
    auto x = torch::randn({1, 5, H});
    m->eval();
    auto e1 = m->talker->forward(x).logits, e2 = m->talker->forward(x).logits;
    CHECK(torch::equal(e1, e2));
    m->train();
    torch::manual_seed(1);
    auto t1 = m->talker->forward(x).logits;
    torch::manual_seed(2);
    auto t2 = m->talker->forward(x).logits;
    CHECK(max_abs_diff(t1, t2) > 1e-6);
    t1.sum().backward();
    for (auto& [n, p] : lora_state(m->talker)) {
        INFO(n);
        // The talker forward does not run the code predictor.
        CHECK(p.grad().defined() == (n.find("code_predictor") == std::string::npos));
    }
    CHECK(params[0].grad().abs().sum().item<double>() > 0);  // q_proj A (B ≠ 0)
    CHECK(params[1].grad().abs().sum().item<double>() > 0);  // q_proj B
    for (auto& p : m->parameters()) CHECK_FALSE(p.grad().defined());

    // Teacher-forced code predictor logits are differentiable into its LoRA too.
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    auto cp = m->talker->code_predictor_logits(torch::randn({2, H}), torch::randint(0, 2048, {2, 16}, torch::kInt64));
    torch::nn::functional::cross_entropy(cp.reshape({-1, 2048}), torch::randint(0, 2048, {30}, torch::kInt64)).backward();
    auto state = lora_state(m->talker);
    bool cp_grad = false;
    for (auto& [n, t] : state)
        if (n.find("code_predictor") != std::string::npos && t.grad().defined() && t.grad().abs().sum().item<double>() > 0)
            cp_grad = true;
    CHECK(cp_grad);
}

TEST_CASE("adapter save → load is bit-exact and in PEFT's layout", "[model][lora][adapter]") {
    torch::NoGradGuard ng;
    test::TempDir tmp;
    auto m = test::tiny_model();
    LoraConfig cfg;
    cfg.r = 4;
    cfg.alpha = 16;
    cfg.dropout = 0.05;
    attach_lora(m->talker, cfg);
    randomize_lora_B(m->talker);
    std::string dir = (tmp / "adapter").string();
    save_adapter(m->talker, cfg, dir);

    // Files as PEFT writes them.
    io::SafetensorsFile f(dir + "/adapter_model.safetensors");
    CHECK(f.tensors().size() == 32);
    for (const auto& info : f.tensors()) CHECK(info.dtype == io::DType::F32);
    CHECK(f.metadata().at("format") == "pt");
    json ours = json::parse(io::read_file(dir + "/adapter_config.json"));
    json real = json::parse(
        io::read_file((test::shared_dir() / "reference/voices/alexandria-sion/adapter_config.json").string()));
    std::set<std::string> ours_keys, real_keys;
    for (auto it = ours.begin(); it != ours.end(); ++it) ours_keys.insert(it.key());
    for (auto it = real.begin(); it != real.end(); ++it) real_keys.insert(it.key());
    CHECK(ours_keys == real_keys);
    for (auto it = real.begin(); it != real.end(); ++it) {
        if (it.key() == "r" || it.key() == "lora_alpha" || it.key() == "target_modules") continue;
        INFO(it.key());
        CHECK(ours.at(it.key()) == it.value());
    }
    CHECK(ours["r"] == 4);
    CHECK(ours["lora_alpha"] == 16);

    auto m2 = test::tiny_model();
    LoraConfig back = load_adapter(m2->talker, dir);
    CHECK(back.r == 4);
    CHECK(back.alpha == 16);
    CHECK(back.dropout == 0.05);
    auto s1 = lora_state(m->talker), s2 = lora_state(m2->talker);
    REQUIRE(s1.size() == s2.size());
    for (size_t i = 0; i < s1.size(); ++i) {
        CHECK(s1[i].first == s2[i].first);
        CHECK(torch::equal(s1[i].second, s2[i].second));
    }
    auto x = torch::randn({1, 4, m->config().talker.hidden_size});
    CHECK(torch::equal(m->talker->forward(x).logits, m2->talker->forward(x).logits));
}

TEST_CASE("the real Alexandria adapter_config.json is understood", "[model][lora][adapter]") {
    for (const char* voice : {"alexandria-sion", "alexandria-watson"}) {
        auto path = test::shared_dir() / "reference/voices" / voice / "adapter_config.json";
        LoraConfig c = LoraConfig::from_peft_json(json::parse(io::read_file(path)), path.string());
        CHECK(c.r == 32);
        CHECK(c.alpha == 128);
        CHECK(c.dropout == 0.05);
        CHECK(c.scaling() == 4.0);
        CHECK(std::set<std::string>(c.target_modules.begin(), c.target_modules.end()) ==
              std::set<std::string>{"q_proj", "k_proj", "v_proj", "o_proj"});
        CHECK(c.matches("model.layers.3.self_attn.q_proj"));
        CHECK(c.matches("code_predictor.model.layers.0.self_attn.o_proj"));
        CHECK_FALSE(c.matches("code_predictor.small_to_mtp_projection"));
        CHECK_FALSE(c.matches("model.layers.3.mlp.up_proj"));
    }
    json j = LoraConfig{}.to_peft_json();
    j["use_dora"] = true;
    REQUIRE_THROWS_WITH(LoraConfig::from_peft_json(j, "a.json"), Catch::Contains("use_dora"));
    j = LoraConfig{}.to_peft_json();
    j["peft_type"] = "IA3";
    REQUIRE_THROWS_WITH(LoraConfig::from_peft_json(j, "a.json"), Catch::Contains("peft_type"));
    j = LoraConfig{}.to_peft_json();
    j["rank_pattern"] = {{"q_proj", 8}};
    REQUIRE_THROWS_WITH(LoraConfig::from_peft_json(j, "a.json"), Catch::Contains("rank_pattern"));
    j = LoraConfig{}.to_peft_json();
    j["target_modules"] = ".*\\.(q|v)_proj";
    LoraConfig rx = LoraConfig::from_peft_json(j, "a.json");
    CHECK(rx.matches("model.layers.0.self_attn.q_proj"));
    CHECK_FALSE(rx.matches("model.layers.0.self_attn.k_proj"));
}

TEST_CASE("adapters that do not fit are rejected with every problem named", "[model][lora][adapter]") {
    torch::NoGradGuard ng;
    test::TempDir tmp;
    auto m = test::tiny_model();
    LoraConfig cfg;
    cfg.r = 4;
    attach_lora(m->talker, cfg);
    std::string good = (tmp / "good").string();
    save_adapter(m->talker, cfg, good);
    auto state = lora_state(m->talker);

    auto write = [&](const std::string& name, std::vector<std::pair<std::string, torch::Tensor>> tensors,
                     const LoraConfig& c) {
        std::string dir = (tmp / name).string();
        std::filesystem::create_directories(dir);
        io::save_safetensors(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});
        io::write_file_atomic(dir + "/adapter_config.json", c.to_peft_json().dump(2));
        return dir;
    };
    auto fresh = test::tiny_model();
    {
        // one missing, one unexpected, one mis-shaped
        std::vector<std::pair<std::string, torch::Tensor>> t(state.begin() + 1, state.end());
        t.emplace_back("base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight", torch::zeros({4, 64}));
        t[2].second = torch::zeros({33, 4});  // k_proj lora_B: out 32 in the model
        std::string dir = write("bad", t, cfg);
        REQUIRE_THROWS_AS(load_adapter(fresh->talker, dir), InputError);
        REQUIRE_THROWS_WITH(load_adapter(fresh->talker, dir),
                            Catch::Contains(state[0].first) && Catch::Contains("layers.9") &&
                                Catch::Contains(t[2].first) && Catch::Contains("missing") &&
                                Catch::Contains("unexpected") && Catch::Contains("mis-shaped"));
        CHECK(lora_state(fresh->talker).empty());
    }
    {
        // rank in the file differs from adapter_config.json
        LoraConfig c8 = cfg;
        c8.r = 8;
        std::string dir = write("rank", {state.begin(), state.end()}, c8);
        REQUIRE_THROWS_WITH(load_adapter(fresh->talker, dir), Catch::Contains("rank 4") && Catch::Contains("r = 8"));
    }
    {
        // an adapter trained on another model size (other widths)
        ModelConfig other = test::tiny_config();
        other.talker.hidden_size = 48;
        other.speaker_encoder->enc_dim = 48;
        TTSModel wide(other);
        attach_lora(wide->talker, cfg);
        std::string dir = (tmp / "other-size").string();
        save_adapter(wide->talker, cfg, dir);
        REQUIRE_THROWS_WITH(load_adapter(fresh->talker, dir), Catch::Contains("different model size"));
    }
    {
        std::string dir = write("names", {{"model.layers.0.self_attn.q_proj.weight", torch::zeros({4, 64})}}, cfg);
        REQUIRE_THROWS_WITH(load_adapter(fresh->talker, dir), Catch::Contains("not a PEFT LoRA key"));
    }
    REQUIRE_THROWS_AS(load_adapter(fresh->talker, (tmp / "nothing").string()), InputError);
    std::filesystem::create_directories(tmp / "half");
    std::filesystem::copy_file(good + "/adapter_config.json", tmp / "half" / "adapter_config.json");
    REQUIRE_THROWS_WITH(load_adapter(fresh->talker, (tmp / "half").string()),
                        Catch::Contains("adapter_model.safetensors"));
    // The good one still loads.
    CHECK(load_adapter(fresh->talker, good).r == 4);
}

TEST_CASE("The CPU inference layout: same outputs, merging and moving still work, no gradients", "[model][lora]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::NoGradGuard ng;
    Probe p;
    auto natural = p.output();
    auto q = p.m->talker->model->layer_list[0]->self_attn->q_proj;
    auto w = q->weight.clone();

    CHECK(use_inference_layout(*p.m->talker) > 0);
    CHECK(q->inference_layout());
    CHECK_FALSE(torch::equal(q->weight, w));  // reordered in place: same shape, other order
    CHECK(q->weight.sizes() == w.sizes());
    auto packed = p.output();
    CHECK(max_abs_diff(packed, natural) < 1e-3);

    // An adapter merged into reordered weights equals the same adapter merged into natural ones.
    attach_random_lora(p.m->talker);
    auto branch = p.output();
    merge_lora(p.m->talker);
    CHECK(q->inference_layout());
    CHECK(max_abs_diff(p.output(), branch) < 1e-3);
    unmerge_lora(p.m->talker);
    q->set_inference_layout(false);
    CHECK(max_abs_diff(q->weight, w) < 1e-6);
    q->set_inference_layout(true);

    {
        torch::AutoGradMode grad(true);
        CHECK_THROWS_WITH(q(torch::randn({1, p.H})), Catch::Contains("inference layout"));
    }
    q->to(torch::kCPU);  // moving puts the natural order back
    CHECK_FALSE(q->inference_layout());
    CHECK(max_abs_diff(q->weight, w) < 1e-6);
}

TEST_CASE("int8 weights on the talker: close to bf16, requantized after merging", "[model][lora]") {
    if (alexandria::test::skip_without_cpu_kernels()) return;
    torch::NoGradGuard ng;
    Probe p;
    auto natural = p.output();
    use_inference_layout(*p.m->talker);
    CHECK(use_int8_weights(*p.m->talker) > 0);
    auto q = p.m->talker->model->layer_list[0]->self_attn->q_proj;
    REQUIRE(q->int8());
    auto int8 = p.output();
    const double rel = max_abs_diff(int8, natural) / natural.abs().max().item<double>();
    CHECK(rel > 0);     // the rounding shows
    CHECK(rel < 0.05);  // and stays small

    attach_random_lora(p.m->talker);
    auto branch = p.output();
    merge_lora(p.m->talker);  // the merged weight is quantized afresh
    const double rel_merged = max_abs_diff(p.output(), branch) / branch.abs().max().item<double>();
    CHECK(rel_merged < 0.05);
    q->set_int8(false);
    CHECK_FALSE(q->int8());
}
