// JSON of the pieces of an evaluation (eval.json's building blocks). Non-finite figures are written as null.
#include <cmath>

#include <nlohmann/json.hpp>

#include "alexandria/eval/evaluate.h"
#include "format.h"

namespace alexandria::eval {

using json = nlohmann::json;
using fmtx::json_number;

namespace {


json objective_json(const train::ObjectiveLoss& l) {
    return json{{"loss", json_number(l.total)}, {"talker_loss", json_number(l.talker)}, {"sub_loss", json_number(l.sub)}};
}

}  // namespace

json to_json(const HeldOutLoss& l) {
    return json{{"split", l.split},
                {"samples", l.samples},
                {"language", l.language},
                {"alexandria", objective_json(l.alexandria)},
                {"aligned", objective_json(l.aligned)},
                {"verdict", plan::to_json(l.verdict)},
                {"note", l.note},
                {"seconds", l.seconds}};
}

json to_json(const PooledRate& r) {
    return json{{"chars_per_second", json_number(r.chars_per_second)},
                {"characters", r.characters},
                {"speech_seconds", r.speech_seconds},
                {"clips", r.clips}};
}

json to_json(const OutputCheck& o) {
    json j{{"prompt", o.prompt_id}, {"kind", o.kind}, {"seed", o.seed}, {"characters", o.characters},
           {"failed", o.failed}};
    if (o.failed) {
        j["error"] = o.error;
        return j;
    }
    j.update(json{{"frames", o.frames},
                  {"frame_cap", o.frame_cap},
                  {"eos", !o.hit_cap},
                  {"hit_cap", o.hit_cap},
                  {"seconds", o.seconds},
                  {"speech_seconds", o.speech_seconds},
                  {"peak", o.peak},
                  {"rms", o.rms},
                  {"clipped_fraction", o.clipped_fraction},
                  {"silent", o.silent},
                  {"clipped", o.clipped},
                  {"chars_per_second", json_number(o.rate)},
                  {"syllables_per_second_first_third", json_number(o.thirds.first)},
                  {"syllables_per_second_last_third", json_number(o.thirds.last)},
                  {"expected_seconds", json_number(o.duration.expected_seconds)},
                  {"duration_ratio", json_number(o.duration.ratio)},
                  {"duration_outlier", o.duration.outlier},
                  {"speaker_similarity", o.similarity ? json_number(*o.similarity) : json(nullptr)},
                  {"wav", o.wav},
                  {"compute_seconds", o.compute_seconds}});
    return j;
}

json to_json(const GenerationSummary& g) {
    return json{{"outputs", g.outputs},
                {"failed", g.failed},
                {"eos", g.eos},
                {"runaway", g.runaway},
                {"eos_rate", json_number(g.eos_rate)},
                {"runaway_rate", json_number(g.runaway_rate)},
                {"short", {{"outputs", g.short_outputs}, {"runaway", g.short_runaway}, {"runaway_rate", json_number(g.short_runaway_rate)}}},
                {"long", {{"outputs", g.long_outputs}, {"runaway", g.long_runaway}, {"runaway_rate", json_number(g.long_runaway_rate)}}},
                {"speaking_rate", to_json(g.rate)},
                {"speaking_rate_ratio", json_number(g.rate_ratio)},
                {"speaker_similarity",
                 {{"count", g.similarity_count},
                  {"mean", json_number(g.similarity_mean)},
                  {"min", json_number(g.similarity_min)},
                  {"max", json_number(g.similarity_max)}}},
                {"silent", g.silent},
                {"clipped", g.clipped},
                {"duration_outliers", g.duration_outliers},
                {"speaking_rate_thirds", {{"outputs", g.thirds_outputs}, {"drift_last_over_first", json_number(g.thirds_drift)}}},
                {"audio_seconds", g.audio_seconds},
                {"compute_seconds", g.compute_seconds}};
}

json to_json(const AdapterEval& a, bool judged) {
    json outs = json::array();
    for (const auto& o : a.outputs) outs.push_back(to_json(o));
    json j{{"label", a.label},
           {"dir", a.dir},
           {"language", a.language},
           {"prompt", a.prompt},
           {"held_out_loss", a.loss ? to_json(*a.loss) : json(nullptr)},
           {"generation", to_json(a.generation)},
           {"outputs", outs},
           {"training", a.training}};
    if (judged) j["verdict"] = to_json(a.verdict);
    return j;
}

}  // namespace alexandria::eval
