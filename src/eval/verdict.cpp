#include "alexandria/eval/verdict.h"
#include "format.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace alexandria::eval {

using fmtx::json_number;

const std::vector<TroubleshootingRow>& troubleshooting_table() {
    static const std::vector<TroubleshootingRow> rows = {
        {Trouble::Garbled, "garbled", "Garbled audio on new text", "Overfitting (loss too low)", "Reduce epochs or lr"},
        {Trouble::NoEos, "no-eos", "Generation hangs / no EOS", "Severe overfitting", "Retrain with fewer epochs"},
        {Trouble::NoIdentity, "no-identity", "Clear but no voice identity", "Undertrained (loss too high)",
         "Increase epochs or lr"},
        {Trouble::Rushed, "rushed", "Fast/rushed speech", "Training data had fast pacing",
         "Use \"slow, even narration\" in instruct, or retune dataset"},
        {Trouble::ShortHang, "short-hang", "Short texts hang at max_new_tokens", "Model never learned short-utterance EOS",
         "Add short vocalizations to training data"},
        {Trouble::InitialGlitch, "initial-glitch", "Initial audio glitch", "Clone prompt alignment artifact",
         "Minor — usually not present in full audiobook generation"},
        {Trouble::RefMismatch, "ref-mismatch", "ref.wav mismatch", "ref_text.txt doesn't match ref.wav content",
         "Ensure ref_text.txt contains the exact transcript of ref.wav"},
    };
    return rows;
}

const TroubleshootingRow& troubleshooting_row(Trouble id) {
    for (const auto& r : troubleshooting_table())
        if (r.id == id) return r;
    return troubleshooting_table().front();
}

std::string severity_name(Severity s) {
    switch (s) {
        case Severity::Note: return "note";
        case Severity::Warning: return "warning";
        case Severity::Unusable: return "unusable";
    }
    return "?";
}

RefCheck check_reference(const std::string& ref_text, bool has_text, const io::AudioStats& ref_audio,
                         double dataset_rate) {
    RefCheck r;
    r.characters = has_text ? spoken_characters(ref_text) : 0;
    r.speech_seconds = speech_seconds(ref_audio);
    r.present = has_text && ref_audio.seconds > 0;
    if (!has_text || r.characters == 0) {
        r.mismatch = true;
        r.reason = "no transcript of the reference (ref_text.txt missing or empty)";
        return r;
    }
    if (!(r.speech_seconds > 0)) {
        r.mismatch = true;
        r.reason = "the reference audio is silent";
        return r;
    }
    r.rate = speaking_rate(r.characters, r.speech_seconds);
    if (dataset_rate > 0 && std::isfinite(dataset_rate)) {
        r.ratio = r.rate / dataset_rate;
        if (r.ratio < kRefRateRatioLow || r.ratio > kRefRateRatioHigh) {
            r.mismatch = true;
            r.reason = fmt::format("ref_text.txt has {} characters for {:.2f} s of speech ({:.1f} chars/s, {:.2f}× the "
                                   "dataset's {:.1f}): the transcript does not fit the clip",
                                   r.characters, r.speech_seconds, r.rate, r.ratio, dataset_rate);
        }
    }
    return r;
}

namespace {

struct Builder {
    std::vector<Finding> findings;

    Finding& get(const std::string& key) {
        for (auto& f : findings)
            if (f.key == key) return f;
        findings.emplace_back();
        findings.back().key = key;
        return findings.back();
    }
    void row(Trouble t, Severity s, const std::string& evidence) {
        const auto& r = troubleshooting_row(t);
        Finding& f = get(r.key);
        f.problem = r.problem;
        f.cause = r.cause;
        f.fix = r.fix;
        f.seed_row = true;
        f.severity = std::max(f.severity, s);
        f.evidence.push_back(evidence);
    }
    void other(const std::string& key, const std::string& problem, const std::string& cause, const std::string& fix,
               Severity s, const std::string& evidence) {
        Finding& f = get(key);
        f.problem = problem;
        f.cause = cause;
        f.fix = fix;
        f.severity = std::max(f.severity, s);
        f.evidence.push_back(evidence);
    }
};

std::string pct(double x) { return std::isfinite(x) ? fmt::format("{:.0f}%", 100 * x) : "n/a"; }

int table_order(const std::string& key) {
    const auto& t = troubleshooting_table();
    for (size_t i = 0; i < t.size(); ++i)
        if (t[i].key == key) return static_cast<int>(i);
    return static_cast<int>(t.size());
}

}  // namespace

AdapterVerdict judge(const JudgeInput& in) {
    Builder b;
    const GenerationSummary& g = in.generation;

    if (in.loss) {
        const plan::LossVerdict& v = *in.loss;
        const std::string band = fmt::format("held-out alexandria loss {:.3f}: {} ({}){}", v.loss, v.verdict, v.name,
                                             v.note.empty() ? "" : "; " + v.note);
        switch (v.band) {
            case plan::LossBand::Invalid:
            case plan::LossBand::Overfit:
            case plan::LossBand::StartingToOverfit:
            case plan::LossBand::KnifesEdge: b.row(Trouble::Garbled, Severity::Unusable, band); break;
            case plan::LossBand::Undertrained: b.row(Trouble::NoIdentity, Severity::Unusable, band); break;
            case plan::LossBand::AboveTarget:
                b.other("loss-above-target", "Loss above the sweet spot", "A little undertrained",
                        "Optionally train an epoch more (aim for 4.15-4.2)", Severity::Note, band);
                break;
            case plan::LossBand::SweetSpot: break;
        }
    }

    auto base_runaway = [&](bool short_side) -> std::string {
        if (!in.base) return "";
        int n = short_side ? in.base->short_outputs : in.base->long_outputs;
        int k = short_side ? in.base->short_runaway : in.base->long_runaway;
        return fmt::format(" (base model without adapter: {} of {})", k, n);
    };
    if (g.long_outputs > 0 && g.long_runaway_rate > kMaxRunawayRate) {
        b.row(Trouble::NoEos, Severity::Unusable,
              fmt::format("{} of {} sentence/paragraph generations hit the frame cap without EOS ({}){}", g.long_runaway,
                          g.long_outputs, pct(g.long_runaway_rate), base_runaway(false)));
        if (g.short_runaway > 0)
            b.row(Trouble::NoEos, Severity::Unusable,
                  fmt::format("{} of {} short-prompt generations hit the frame cap{}", g.short_runaway, g.short_outputs,
                              base_runaway(true)));
    } else if (g.short_outputs > 0 && g.short_runaway_rate > kMaxRunawayRate) {
        b.row(Trouble::ShortHang, Severity::Unusable,
              fmt::format("{} of {} short-prompt generations hit the frame cap without EOS ({}) while {} of {} longer "
                          "ones did{}",
                          g.short_runaway, g.short_outputs, pct(g.short_runaway_rate), g.long_runaway, g.long_outputs,
                          base_runaway(true)));
    }

    if (std::isfinite(g.rate_ratio) && g.rate_ratio > kRateRatioHigh)
        b.row(Trouble::Rushed, Severity::Warning,
              fmt::format("speaking rate {:.1f} chars/s is {:.2f}× the dataset's (normal: {:.2f}-{:.2f})",
                          g.rate.chars_per_second, g.rate_ratio, kRateRatioLow, kRateRatioHigh));

    if (in.base && std::isfinite(g.similarity_mean) && std::isfinite(in.base->similarity_mean) &&
        g.similarity_mean <= in.base->similarity_mean)
        b.row(Trouble::NoIdentity, Severity::Warning,
              fmt::format("speaker similarity to the reference {:.3f} is not above the base model's {:.3f}: the adapter "
                          "does not move the voice toward the target",
                          g.similarity_mean, in.base->similarity_mean));

    const int measured = g.eos + g.runaway;
    if (g.eos > 0 && double(g.duration_outliers) / g.eos > kMaxOutlierRate)
        b.row(Trouble::Garbled, Severity::Warning,
              fmt::format("{} of {} outputs that ended on EOS are far longer or shorter than their text at the "
                          "dataset's speaking rate (listen to them)",
                          g.duration_outliers, g.eos));

    if (in.reference && in.reference->mismatch) b.row(Trouble::RefMismatch, Severity::Warning, in.reference->reason);

    if (measured > 0 && double(g.silent) / measured > kMaxSilentRate)
        b.other("silent-output", "Silent outputs", "The model produced no audible speech",
                "Treat as garbled: reduce epochs or lr", Severity::Unusable,
                fmt::format("{} of {} outputs are silent (below -50 dBFS)", g.silent, measured));
    else if (g.silent > 0)
        b.other("silent-output", "Silent outputs", "The model produced no audible speech", "Listen to them",
                Severity::Warning, fmt::format("{} of {} outputs are silent (below -50 dBFS)", g.silent, measured));
    if (g.clipped > 0)
        b.other("clipped-output", "Clipped outputs", "Samples at full scale", "Listen to them; lower the volume",
                Severity::Warning,
                fmt::format("{} of {} outputs have more than {:.0f}% of samples at full scale", g.clipped, measured,
                            100 * kMaxClippedFraction));
    if (g.outputs > 0 && g.failed > 0)
        b.other("generation-failed", "Generation failed", "An error during synthesis", "See the errors in eval.json",
                double(g.failed) / g.outputs > kMaxSilentRate ? Severity::Unusable : Severity::Warning,
                fmt::format("{} of {} generations failed", g.failed, g.outputs));
    if (g.outputs > 0 && measured == 0)
        b.other("generation-failed", "Generation failed", "An error during synthesis", "See the errors in eval.json",
                Severity::Unusable, "no generation produced audio");

    AdapterVerdict v;
    v.findings = std::move(b.findings);
    std::stable_sort(v.findings.begin(), v.findings.end(), [](const Finding& a, const Finding& c) {
        if (a.severity != c.severity) return a.severity > c.severity;
        return table_order(a.key) < table_order(c.key);
    });
    v.usable = std::none_of(v.findings.begin(), v.findings.end(),
                            [](const Finding& f) { return f.severity == Severity::Unusable; });
    std::vector<std::string> parts;
    for (const auto& f : v.findings)
        if (f.severity != Severity::Note) parts.push_back(f.problem + " → " + f.fix);
    v.summary = v.usable ? (parts.empty() ? "usable" : "usable, with warnings: " + fmt::format("{}", fmt::join(parts, "; ")))
                         : "not usable: " + fmt::format("{}", fmt::join(parts, "; "));
    return v;
}

std::vector<size_t> rank_adapters(const std::vector<RankInput>& in) {
    std::vector<size_t> idx(in.size());
    std::iota(idx.begin(), idx.end(), size_t{0});
    // Each key as (missing, value) so NaN sorts last whatever the direction.
    auto key = [&](const RankInput& r) {
        auto lo = [](double x) { return std::make_pair(!std::isfinite(x), std::isfinite(x) ? x : 0.0); };
        auto hi = [](double x) { return std::make_pair(!std::isfinite(x), std::isfinite(x) ? -x : 0.0); };
        return std::make_tuple(!r.usable, lo(r.runaway_rate), hi(r.similarity), lo(std::abs(r.rate_ratio - 1.0)),
                               lo(std::abs(r.loss - plan::kTargetLoss)));
    };
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return key(in[a]) < key(in[b]); });
    return idx;
}

std::optional<size_t> pick_adapter(const std::vector<RankInput>& in) {
    auto order = rank_adapters(in);
    if (order.empty() || !in[order.front()].usable) return std::nullopt;
    return order.front();
}

nlohmann::json to_json(const Finding& f) {
    return nlohmann::json{{"key", f.key},         {"problem", f.problem},   {"cause", f.cause},
                          {"fix", f.fix},         {"seed_row", f.seed_row}, {"severity", severity_name(f.severity)},
                          {"evidence", f.evidence}};
}

nlohmann::json to_json(const AdapterVerdict& v) {
    nlohmann::json fs = nlohmann::json::array();
    for (const auto& f : v.findings) fs.push_back(to_json(f));
    return nlohmann::json{{"usable", v.usable}, {"summary", v.summary}, {"findings", fs}};
}

nlohmann::json to_json(const RefCheck& r) {
    return nlohmann::json{{"present", r.present},          {"characters", r.characters},
                          {"speech_seconds", r.speech_seconds}, {"chars_per_second", json_number(r.rate)},
                          {"ratio_to_dataset", json_number(r.ratio)},   {"mismatch", r.mismatch},
                          {"reason", r.reason}};
}

}  // namespace alexandria::eval
