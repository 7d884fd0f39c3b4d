// report.html: the page a person listens with (issue 16). No network, no external files but the WAVs, which are
// linked relatively inside the output folder; the one inline script only reports audio that does not load (to the
// console and on the card), so a page zipped without its WAVs says so.
#include "alexandria/eval/report.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "format.h"

namespace alexandria::eval {

using json = nlohmann::json;
using namespace fmtx;

namespace {

std::string esc(const std::string& s) {
    std::string o;
    o.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '&': o += "&amp;"; break;
            case '"': o += "&quot;"; break;
            case '\'': o += "&#39;"; break;
            default: o += c;
        }
    }
    return o;
}


// "a/b/" → "a/b" (as evaluate.cpp's folder_path).
fs::path folder(const std::string& dir) {
    fs::path p = fs::path(dir).lexically_normal();
    if (p.filename().empty() && p.has_parent_path()) p = p.parent_path();
    return p;
}

// The metrics log an adapter folder's training wrote, and the epoch the folder is (0: the run's chosen adapter).
std::pair<fs::path, int> metrics_log_of(const std::string& adapter_dir) {
    const fs::path d = folder(adapter_dir);
    std::error_code ec;
    if (fs::is_regular_file(d / "metrics.jsonl", ec)) return {d / "metrics.jsonl", 0};
    if (d.parent_path().filename() == "checkpoints") {
        const std::string name = d.filename().string();
        int epoch = 0;
        if (name.rfind("epoch-", 0) == 0) {
            try {
                epoch = std::stoi(name.substr(6));
            } catch (const std::exception&) {
                epoch = 0;
            }
        }
        const fs::path run_log = d.parent_path() / "metrics.jsonl";  // live log while training runs
        if (fs::is_regular_file(d.parent_path().parent_path() / "metrics.jsonl", ec))
            return {d.parent_path().parent_path() / "metrics.jsonl", epoch};
        if (fs::is_regular_file(run_log, ec)) return {run_log, epoch};
    }
    return {{}, 0};
}

}  // namespace

// ---- training curves --------------------------------------------------------------------------------------------

TrainingCurve parse_training_curve(const std::string& text, const std::string& log_name) {
    TrainingCurve c;
    c.log = log_name;
    std::map<int, double> last_step_of_epoch;
    std::vector<std::pair<int, CurvePoint>> epochs;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        json j;
        try {
            j = json::parse(line);
        } catch (const json::exception&) {
            ++c.unreadable_lines;
            continue;
        }
        if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) {
            ++c.unreadable_lines;
            continue;
        }
        const std::string type = j["type"];
        if (type == "step" && j.contains("step") && j["step"].is_number()) {
            CurvePoint p{j["step"].get<double>(), number_or_nan(j.value("alexandria_loss", json())),
                         number_or_nan(j.value("aligned_loss", json()))};
            c.steps.push_back(p);
            if (j.contains("epoch") && j["epoch"].is_number_integer()) last_step_of_epoch[j["epoch"].get<int>()] = p.x;
        } else if (type == "epoch" && j.contains("epoch") && j["epoch"].is_number_integer()) {
            CurvePoint p;
            p.alexandria = j.contains("alexandria") && j["alexandria"].is_object()
                               ? number_or_nan(j["alexandria"].value("loss", json()))
                               : kNaN;
            p.aligned = j.contains("aligned") && j["aligned"].is_object() ? number_or_nan(j["aligned"].value("loss", json()))
                                                                          : kNaN;
            epochs.push_back({j["epoch"].get<int>(), p});
        }
    }
    for (auto& [epoch, p] : epochs) {
        auto it = last_step_of_epoch.find(epoch);
        if (!c.steps.empty() && it == last_step_of_epoch.end()) continue;  // no step of it survived: cannot place it
        p.x = c.steps.empty() ? epoch : it->second;
        c.epochs.push_back(p);
        c.epoch_numbers.push_back(epoch);
    }
    return c;
}

std::optional<TrainingCurve> read_training_curve(const std::string& adapter_dir) {
    const fs::path log = metrics_log_of(adapter_dir).first;
    if (log.empty()) return std::nullopt;
    std::string text;
    try {
        text = io::read_file(log);
    } catch (const Error&) {
        return std::nullopt;
    }
    TrainingCurve c = parse_training_curve(text, log.string());
    if (c.steps.empty() && c.epochs.empty()) return std::nullopt;
    return c;
}

namespace {

const char* band_colour(plan::LossBand b) {
    switch (b) {
        case plan::LossBand::Undertrained: return "#dde8f7";
        case plan::LossBand::AboveTarget: return "#e4f3dc";
        case plan::LossBand::SweetSpot: return "#cdeccd";
        case plan::LossBand::KnifesEdge: return "#fbefc4";
        case plan::LossBand::StartingToOverfit: return "#f9dcc0";
        case plan::LossBand::Overfit: return "#f4c7c7";
        case plan::LossBand::Invalid: return "#e0e0e0";
    }
    return "#e0e0e0";
}

struct Frame {
    double W = 640, H = 300, left = 46, right = 12, top = 14, bottom = 44;
    double x0 = 0, x1 = 1, lo = 3.0, hi = 5.0;
    double pw() const { return W - left - right; }
    double ph() const { return H - top - bottom; }
    double X(double x) const { return left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * pw(); }
    double Y(double v) const { return top + (hi - std::clamp(v, lo, hi)) / (hi - lo) * ph(); }
};

Frame frame_for(const TrainingCurve& c) {
    Frame f;
    double lo = kNaN, hi = kNaN, x1 = 1;
    auto take = [&](const CurvePoint& p) {
        for (double v : {p.alexandria, p.aligned})
            if (std::isfinite(v)) {
                lo = std::isfinite(lo) ? std::min(lo, v) : v;
                hi = std::isfinite(hi) ? std::max(hi, v) : v;
            }
        x1 = std::max(x1, p.x);
    };
    for (const auto& p : c.steps) take(p);
    for (const auto& p : c.epochs) take(p);
    // Always show the seed's bands around the target, and the data however far it strays.
    f.lo = std::floor(std::min(std::isfinite(lo) ? lo : 3.5, 3.5) * 2) / 2;
    f.hi = std::ceil(std::max(std::isfinite(hi) ? hi : 4.5, 4.5) * 2) / 2;
    f.x0 = c.steps.empty() ? 1 : 0;
    f.x1 = x1;
    return f;
}

std::string polyline(const Frame& f, const std::vector<CurvePoint>& pts, bool alexandria, const char* colour,
                     double width, double opacity) {
    std::string s;
    for (const auto& p : pts) {
        const double v = alexandria ? p.alexandria : p.aligned;
        if (std::isfinite(v)) s += fmt::format("{:.1f},{:.1f} ", f.X(p.x), f.Y(v));
    }
    if (s.empty()) return "";
    return fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\" opacity=\"{}\"/>\n", s,
                       colour, width, opacity);
}

std::string svg_bands_and_axes(const Frame& f) {
    std::string s;
    for (const auto& row : plan::loss_table()) {
        const double a = std::max(row.low, f.lo), b = std::min(std::isfinite(row.high) ? row.high : f.hi, f.hi);
        if (!(b > a)) continue;
        s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", f.left,
                         f.Y(b), f.pw(), f.Y(a) - f.Y(b), band_colour(row.band));
        if (f.Y(a) - f.Y(b) >= 11)
            s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555\" font-size=\"10\">{} {}</text>\n",
                             f.left + 4, (f.Y(a) + f.Y(b)) / 2 + 3.5, esc(row.loss_label), esc(row.verdict));
    }
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", f.left,
                     f.top, f.pw(), f.ph());
    const double tick = f.hi - f.lo > 8 ? 2.0 : f.hi - f.lo > 3 ? 1.0 : 0.5;
    for (double v = std::ceil(f.lo / tick - 1e-9) * tick; v <= f.hi + 1e-9; v += tick)
        s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.1f}</text>\n", f.left - 5, f.Y(v) + 4, v);
    return s;
}

}  // namespace

std::string loss_curve_svg(const TrainingCurve& c, const std::vector<std::pair<int, std::string>>& marks,
                           const std::string& title) {
    const Frame f = frame_for(c);
    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\" "
        "font-family=\"sans-serif\" font-size=\"11\">\n<title>{}</title>\n",
        f.W, f.H, esc(title), esc(title));
    s += svg_bands_and_axes(f);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"start\">{}</text>\n", f.left, f.H - 21,
                     c.steps.empty() ? "epoch 1" : "step 0");
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{} {:.0f}</text>\n", f.left + f.pw(), f.H - 21,
                     c.steps.empty() ? "epoch" : "step", f.x1);
    s += polyline(f, c.steps, true, "#1f5fbf", 1, 0.35);
    s += polyline(f, c.steps, false, "#c0392b", 1, 0.35);
    s += polyline(f, c.epochs, true, "#1f5fbf", 2.5, 1);
    s += polyline(f, c.epochs, false, "#c0392b", 2.5, 1);
    for (size_t i = 0; i < c.epochs.size(); ++i)
        if (std::isfinite(c.epochs[i].alexandria))
            s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3.5\" fill=\"#1f5fbf\"><title>epoch {}: "
                             "alexandria {:.4f}, aligned {}</title></circle>\n",
                             f.X(c.epochs[i].x), f.Y(c.epochs[i].alexandria), c.epoch_numbers[i],
                             c.epochs[i].alexandria, f3(c.epochs[i].aligned));
    for (const auto& [epoch, label] : marks)
        for (size_t i = 0; i < c.epochs.size(); ++i)
            if (c.epoch_numbers[i] == epoch) {
                // Labels near either edge are anchored inwards so they stay inside the picture.
                const double x = f.X(c.epochs[i].x);
                const char* anchor = x > f.left + 0.85 * f.pw() ? "end" : x < f.left + 0.15 * f.pw() ? "start" : "middle";
                s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#222\" "
                                 "stroke-dasharray=\"4 3\"/><text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"{5}\" "
                                 "font-size=\"10\">{4}</text>\n",
                                 x, f.top, f.top + f.ph(), f.top + f.ph() + 11, esc(label), anchor);
            }
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#1f5fbf\">— alexandria loss</text>", f.left, f.H - 6);
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#c0392b\">— aligned loss</text>", f.left + 130, f.H - 6);
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#555\">thin: steps, thick: epoch means</text>\n", f.left + 250,
                     f.H - 6);
    return s + "</svg>\n";
}

// ---- report.html ------------------------------------------------------------------------------------------------

namespace {

const char* kStyle = R"css(
:root{--fg:#1b1b1b;--muted:#595959;--line:#d4d4d4;--bg:#f7f7f5;--card:#fff;--bad:#a40e0e;--good:#17621d}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{overflow-wrap:anywhere;max-width:78rem;margin:0 auto;padding:1rem 1.25rem 3rem}
h1{font-size:1.5rem;margin:.5rem 0}
h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:2px solid var(--line);padding-bottom:.2rem}
h3{font-size:1.05rem;margin:1.2rem 0 .3rem}
.muted{color:var(--muted)}
a{color:#174ea6}
a:focus-visible,audio:focus-visible,summary:focus-visible,[tabindex]:focus-visible{outline:3px solid #e08a00;outline-offset:2px}
.skip{position:absolute;left:-100vw}
.skip:focus{left:1rem;top:.5rem;background:#fff;padding:.4rem .6rem;z-index:1}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem 1.25rem;list-style:none;padding:0;margin:.5rem 0}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;background:var(--card)}
th,td{padding:.3rem .55rem;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
thead th{background:#ececea;font-weight:600}
.left,th[scope=row]{text-align:left}
.wrap{white-space:normal;min-width:12rem}
.band-undertrained{background:#dde8f7}.band-above-target{background:#e4f3dc}.band-sweet-spot{background:#cdeccd}
.band-knifes-edge{background:#fbefc4}.band-starting-to-overfit{background:#f9dcc0}.band-overfit{background:#f4c7c7}
.band-invalid{background:#e0e0e0}
.usable{color:var(--good);font-weight:600}.not-usable{color:var(--bad);font-weight:600}
.verdict-line{font-size:1.05rem;padding:.6rem .8rem;border-radius:6px;background:var(--card);border:1px solid var(--line)}
.curves{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,28rem),1fr));gap:1rem}
.curves figure{margin:0;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.5rem}
.curves svg{display:block;width:100%;height:auto}
figcaption{font-size:.9rem}
.prompt{margin:1.2rem 0;padding-top:.2rem;border-top:1px solid var(--line)}
.prompt h3{font-weight:600}
.takes{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,15.5rem),1fr));gap:.6rem}
.take{margin:0;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.5rem .6rem}
.take figcaption{display:flex;justify-content:space-between;gap:.5rem;flex-wrap:wrap}
.take audio{display:block;width:100%;margin:.35rem 0}
.take dl{display:grid;grid-template-columns:auto 1fr;gap:.05rem .6rem;margin:0;font-size:.88rem}
.take dt{color:var(--muted)}.take dd{margin:0;font-variant-numeric:tabular-nums}
.take.reference{background:#f2f6fc}
.cap,.flag,.error{color:var(--bad);font-weight:600}
.take.missing::after{content:"audio file missing";color:var(--bad);font-weight:600}
.findings li{margin:.3rem 0}
.sev{display:inline-block;font-size:.8rem;padding:0 .35rem;border-radius:4px;border:1px solid currentColor}
.sev-unusable{color:var(--bad)}.sev-warning{color:#8a5a00}.sev-note{color:var(--muted)}
footer{margin-top:2.5rem;font-size:.85rem;color:var(--muted)}
@media (max-width:40rem){body{font-size:14px}main{padding:.6rem .7rem 2rem}th,td{padding:.25rem .35rem}}
)css";

// Reports audio that does not load: on the console (the browser test fails on it) and on the card.
const char* kScript = R"js(
for (const a of document.querySelectorAll('audio')) {
  const missing = () => { console.error('audio not found: ' + a.getAttribute('src')); a.closest('.take').classList.add('missing'); };
  if (a.error) missing(); else a.addEventListener('error', missing);
}
)js";

std::string rel_wav(const std::string& wav, const fs::path& out) {
    if (wav.empty()) return "";
    fs::path p = fs::path(wav).lexically_relative(out);
    if (p.empty() || *p.begin() == "..") p = fs::path(wav).filename();
    return p.generic_string();
}

std::string head_html(const EvalReport& r) {
    const json& d = r.json.at("data");
    return fmt::format(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; media-src 'self'; img-src data:\">\n"
        "<title>alexandria eval: {}</title>\n<style>{}</style>\n</head>\n<body>\n"
        "<a class=\"skip\" href=\"#listen\">Skip to the audio</a>\n<main>\n",
        esc(d.at("dir").get<std::string>()), kStyle);
}

std::string summary_html(const EvalReport& r) {
    const json& j = r.json;
    const json& d = j.at("data");
    std::string s = "<header>\n<h1>Voice adapter evaluation</h1>\n";
    std::string verdict;
    if (r.pick)
        verdict = fmt::format("<span class=\"usable\">Recommended: {}</span> <span class=\"muted\">({})</span>",
                              esc(r.adapters[*r.pick].label), esc(r.adapters[*r.pick].dir));
    else
        verdict = fmt::format("<span class=\"not-usable\">{}</span>", r.adapters.size() > 1
                                                                          ? "None of these adapters is usable"
                                                                          : "This adapter is not usable");
    s += fmt::format("<p class=\"verdict-line\">{}</p>\n", verdict);
    const json& set = j.at("settings");
    s += fmt::format(
        "<p class=\"muted\">Dataset <code>{}</code>: {} chars/s over {} clips; loss on <strong>{}</strong> ({}). "
        "Model <code>{}</code> on {} ({}). {} prompts × {} seeds, frame cap {}.</p>\n",
        esc(d.at("dir").get<std::string>()), f1(number_or_nan(d.at("speaking_rate").at("chars_per_second"))),
        d.at("speaking_rate").at("clips").get<int>(), esc(d.at("held_out").at("split").get<std::string>()),
        esc(d.at("held_out").at("note").get<std::string>()), esc(j.at("model").at("name").get<std::string>()),
        esc(j.at("model").at("device").get<std::string>()), esc(j.at("model").at("dtype").get<std::string>()),
        set.at("prompts").size(), set.at("seeds").size(), set.at("max_frames").dump());
    s += "<nav aria-label=\"Sections\"><ul><li><a href=\"#verdict\">Verdict</a></li><li><a href=\"#curves\">Training "
         "curves</a></li><li><a href=\"#listen\">Listen</a></li><li><a href=\"#troubleshooting\">Troubleshooting"
         "</a></li><li><a href=\"eval.json\">eval.json</a></li></ul></nav>\n</header>\n";
    return s;
}

std::string verdict_table_html(const EvalReport& r) {
    const SummaryTable t = summary_table(r);
    std::string s = "<section id=\"verdict\" aria-labelledby=\"verdict-h\">\n<h2 id=\"verdict-h\">Verdict</h2>\n";
    s += "<p class=\"muted\">Held-out loss (the seed's band coloured), EOS and runaways, speaking rate (× the "
         "dataset's), speaker similarity to the reference.</p>\n";
    s += "<div class=\"scroll\" tabindex=\"0\" role=\"region\" aria-label=\"Verdict table\">\n<table id=\"summary\">\n";
    s += "<caption class=\"left\">Verdict per adapter</caption>\n<thead><tr>";
    for (const auto& c : t.columns)
        s += fmt::format("<th scope=\"col\" class=\"col-{}{}\">{}</th>", c.key, c.left ? " left" : "", esc(c.header));
    s += "</tr></thead>\n<tbody>\n";
    for (const auto& row : t.rows) {
        s += fmt::format("<tr data-label=\"{}\">", esc(row.label));
        for (size_t i = 0; i < t.columns.size() && i < row.cells.size(); ++i) {
            const auto& c = t.columns[i];
            std::string cls = "col-" + c.key + (c.left ? " left" : "");
            if (c.key == "band" && !row.band.empty()) cls += " band-" + row.band;
            if (c.key == "verdict" && row.judged) cls += row.usable ? " usable" : " not-usable";
            const char* tag = i == 0 ? "th scope=\"row\"" : "td";
            s += fmt::format("<{} class=\"{}\">{}</{}>", tag, cls, esc(row.cells[i]), i == 0 ? "th" : "td");
        }
        s += "</tr>\n";
    }
    s += "</tbody>\n</table>\n</div>\n";
    if (r.adapters.size() > 1) {
        s += "<div>Ranking, best first: <ol class=\"ranking\">";
        for (size_t k : r.ranking) s += fmt::format("<li>{}</li>", esc(r.adapters[k].label));
        s += "</ol><p class=\"muted\">" + esc(r.json.at("comparison").at("order").get<std::string>()) + "</p></div>\n";
    }
    return s + "</section>\n";
}

// The epoch an adapter is: its checkpoint folder's number, or the epoch its training run kept; 0 when unknown.
int evaluated_epoch(const AdapterEval& a) {
    const int from_folder = metrics_log_of(a.dir).second;
    if (from_folder > 0) return from_folder;
    if (a.training.is_object() && a.training.contains("chosen_epoch") && a.training["chosen_epoch"].is_number_integer())
        return a.training["chosen_epoch"].get<int>();
    return 0;
}

std::string curves_html(const EvalReport& r, const ReportAssets& assets) {
    std::string s = "<section id=\"curves\" aria-labelledby=\"curves-h\">\n<h2 id=\"curves-h\">Training curves</h2>\n"
                    "<div class=\"curves\">\n";
    // Checkpoints of one run share its metrics log: one plot, every evaluated epoch marked.
    std::vector<std::string> logs;
    std::map<std::string, std::vector<size_t>> by_log;
    std::string missing;
    for (size_t i = 0; i < r.adapters.size(); ++i) {
        if (i >= assets.curves.size() || !assets.curves[i]) {
            missing += fmt::format("<li><strong>{}</strong>: no metrics log (metrics.jsonl) beside <code>{}</code> or "
                                   "its training run</li>",
                                   esc(r.adapters[i].label), esc(r.adapters[i].dir));
            continue;
        }
        const std::string& log = assets.curves[i]->log;
        if (!by_log.count(log)) logs.push_back(log);
        by_log[log].push_back(i);
    }
    for (const auto& log : logs) {
        const auto& idx = by_log[log];
        const TrainingCurve& c = *assets.curves[idx.front()];
        std::vector<std::pair<int, std::string>> marks;
        std::vector<std::string> names;
        for (size_t i : idx) {
            names.push_back(r.adapters[i].label);
            const int epoch = evaluated_epoch(r.adapters[i]);
            if (epoch > 0) marks.push_back({epoch, r.adapters[i].label});
        }
        const std::string title = fmt::format("Training loss of {}", fmt::join(names, ", "));
        s += fmt::format("<figure>\n{}<figcaption><strong>{}</strong> — <code>{}</code>{}</figcaption>\n</figure>\n",
                         loss_curve_svg(c, marks, title), esc(fmt::format("{}", fmt::join(names, ", "))), esc(log),
                         c.unreadable_lines ? fmt::format("; {} unreadable lines skipped", c.unreadable_lines) : "");
    }
    s += "</div>\n";
    if (!missing.empty()) s += "<ul class=\"muted\">" + missing + "</ul>\n";
    return s + "</section>\n";
}

std::string figure_row(const char* name, const std::string& cls, const std::string& value) {
    return fmt::format("<dt>{}</dt><dd class=\"{}\">{}</dd>", name, cls, value);
}

std::string take_html(const AdapterEval& a, bool judged, const OutputCheck& c, const std::string& prompt_text,
                      double dataset_rate, const fs::path& out) {
    std::string s = fmt::format("<figure class=\"take\" data-voice=\"{}\">\n<figcaption><strong>{}</strong>{}"
                                "</figcaption>\n",
                                esc(a.label), esc(a.label),
                                judged ? (a.verdict.usable ? " <span class=\"usable\">usable</span>"
                                                           : " <span class=\"not-usable\">not usable</span>")
                                       : " <span class=\"muted\">no adapter</span>");
    if (c.failed) return s + fmt::format("<p class=\"error\">generation failed: {}</p>\n</figure>\n", esc(c.error));
    const std::string src = rel_wav(c.wav, out);
    if (src.empty())
        s += "<p class=\"error\">no audio (the model produced an empty output)</p>\n";
    else
        s += fmt::format("<audio controls preload=\"metadata\" src=\"{}\" aria-label=\"{}, seed {}: {}\"></audio>\n",
                         esc(src), esc(a.label), c.seed, esc(prompt_text));
    s += "<dl>";
    s += figure_row("duration", "duration", fmt::format("{} s", f2(c.seconds)));
    s += figure_row("end", c.hit_cap ? "end cap" : "end",
                    c.hit_cap ? fmt::format("hit the cap ({}/{} frames)", c.frames, c.frame_cap)
                              : fmt::format("EOS ({} frames)", c.frames));
    const double ratio = dataset_rate > 0 ? c.rate / dataset_rate : kNaN;
    s += figure_row("rate", "rate",
                    std::isfinite(c.rate) ? fmt::format("{} chars/s{}", f1(c.rate),
                                                        std::isfinite(ratio) ? fmt::format(" ({}×)", f2(ratio)) : "")
                                          : "-");
    s += figure_row("similarity", "similarity", c.similarity ? f3(*c.similarity) : "-");
    std::vector<std::string> flags;
    if (c.silent) flags.push_back("silent");
    if (c.clipped) flags.push_back("clipped");
    if (c.duration.outlier) flags.push_back(fmt::format("duration {}× expected", f2(c.duration.ratio)));
    if (!flags.empty()) s += figure_row("flags", "flag", esc(fmt::format("{}", fmt::join(flags, ", "))));
    return s + "</dl>\n</figure>\n";
}

std::string reference_take_html(const EvalReport& r, const ReportAssets& assets, const std::string& prompt_text) {
    const json& d = r.json.at("data");
    const json& rc = d.at("reference_check");
    std::string s = "<figure class=\"take reference\" data-voice=\"reference\">\n<figcaption><strong>dataset "
                    "reference</strong> <span class=\"muted\">the voice to match</span></figcaption>\n";
    if (assets.reference_audio.empty()) return s + "<p class=\"muted\">not copied</p>\n</figure>\n";
    s += fmt::format("<audio controls preload=\"metadata\" src=\"{}\" aria-label=\"dataset reference clip (for: {})\">"
                     "</audio>\n<dl>",
                     esc(assets.reference_audio), esc(prompt_text));
    s += figure_row("duration", "duration",
                    std::isfinite(assets.reference_seconds) ? fmt::format("{} s", f2(assets.reference_seconds)) : "-");
    s += figure_row("text", "end", rc.is_object() && rc.value("present", false) ? "ref_text.txt" : "no transcript");
    s += figure_row("rate", "rate",
                    rc.is_object() ? fmt::format("{} chars/s", f1(number_or_nan(rc.at("chars_per_second")))) : "-");
    s += figure_row("similarity", "similarity", "1 (the reference)");
    return s + "</dl>\n</figure>\n";
}

// One row per prompt × seed: the base model, each adapter, the dataset's reference.
std::string listen_html(const EvalReport& r, const ReportAssets& assets) {
    const double dataset_rate = number_or_nan(r.json.at("data").at("speaking_rate").at("chars_per_second"));
    std::string s = "<section id=\"listen\" aria-labelledby=\"listen-h\">\n<h2 id=\"listen-h\">Listen</h2>\n"
                    "<p class=\"muted\">The same line from every voice, side by side. Tab moves between players; "
                    "Space plays and pauses.</p>\n";
    std::vector<std::pair<const AdapterEval*, bool>> voices;
    if (r.base) voices.push_back({&*r.base, false});
    for (const auto& a : r.adapters) voices.push_back({&a, true});
    const json& settings = r.json.at("settings");
    for (const json& p : settings.at("prompts")) {
        const std::string id = p.at("id"), text = p.at("text");
        for (const json& seed_j : settings.at("seeds")) {
            const uint64_t seed = seed_j.get<uint64_t>();
            const std::string anchor = fmt::format("{}-s{}", id, seed);
            s += fmt::format("<section class=\"prompt\" id=\"{0}\" aria-labelledby=\"{0}-h\">\n<h3 id=\"{0}-h\">“{1}”"
                             "</h3>\n<p class=\"muted\">{2} · {3} · seed {4}</p>\n<div class=\"takes\">\n",
                             esc(anchor), esc(text), esc(id), esc(p.at("kind").get<std::string>()), seed);
            for (const auto& [a, judged] : voices)
                for (const auto& c : a->outputs)
                    if (c.prompt_id == id && c.seed == seed) s += take_html(*a, judged, c, text, dataset_rate, assets.out);
            s += reference_take_html(r, assets, text);
            s += "</div>\n</section>\n";
        }
    }
    return s + "</section>\n";
}

std::string findings_html(const AdapterEval& a) {
    std::string s = fmt::format("<h3>{} — <span class=\"{}\">{}</span></h3>\n<p>{}</p>\n", esc(a.label),
                                a.verdict.usable ? "usable" : "not-usable", a.verdict.usable ? "usable" : "not usable",
                                esc(a.verdict.summary));
    if (a.loss && !a.loss->verdict.note.empty()) s += fmt::format("<p class=\"muted\">loss: {}</p>\n", esc(a.loss->verdict.note));
    if (a.verdict.findings.empty()) return s;
    s += "<ul class=\"findings\">\n";
    for (const auto& f : a.verdict.findings) {
        const std::string sev = severity_name(f.severity);
        s += fmt::format("<li><span class=\"sev sev-{0}\">{0}</span> <strong>{1}</strong>{2} — <strong>fix:</strong> "
                         "{3}",
                         sev, esc(f.problem), f.seed_row ? " (cause: " + esc(f.cause) + ")" : "", esc(f.fix));
        if (!f.evidence.empty()) {
            s += "<ul>";
            for (const auto& e : f.evidence) s += "<li class=\"muted\">" + esc(e) + "</li>";
            s += "</ul>";
        }
        s += "</li>\n";
    }
    return s + "</ul>\n";
}

std::string troubleshooting_html(const EvalReport& r) {
    std::string s = "<section id=\"troubleshooting\" aria-labelledby=\"trouble-h\">\n<h2 id=\"trouble-h\">"
                    "Troubleshooting</h2>\n";
    for (const auto& a : r.adapters) s += findings_html(a);
    s += "<details>\n<summary>The seed guide's troubleshooting table</summary>\n<div class=\"scroll\">"
         "<table>\n<thead><tr><th scope=\"col\" class=\"left\">problem</th><th scope=\"col\" class=\"left\">cause</th>"
         "<th scope=\"col\" class=\"left\">fix</th></tr></thead>\n<tbody>\n";
    for (const auto& row : troubleshooting_table())
        s += fmt::format("<tr><th scope=\"row\" class=\"wrap\">{}</th><td class=\"left wrap\">{}</td><td class=\"left "
                         "wrap\">{}</td></tr>\n",
                         esc(row.problem), esc(row.cause), esc(row.fix));
    s += "</tbody>\n</table></div>\n</details>\n<p class=\"muted\">Not measured: ";
    std::vector<std::string> nm;
    for (const auto& x : r.json.at("not_measured")) nm.push_back(esc(x.get<std::string>()));
    return s + fmt::format("{}.</p>\n</section>\n", fmt::join(nm, "; "));
}

std::string footer_html(const EvalReport& r) {
    const json& v = r.json.at("versions");
    return fmt::format("<footer>alexandria {} · libtorch {} · {:.0f} s · figures from <a href=\"eval.json\">eval.json"
                       "</a></footer>\n</main>\n<script>{}</script>\n</body>\n</html>\n",
                       esc(v.at("alexandria").get<std::string>()), esc(v.at("libtorch").get<std::string>()), r.seconds,
                       kScript);
}

}  // namespace

std::string report_html(const EvalReport& r, const ReportAssets& assets) {
    return head_html(r) + summary_html(r) + verdict_table_html(r) + curves_html(r, assets) + listen_html(r, assets) +
           troubleshooting_html(r) + footer_html(r);
}

fs::path write_report(const EvalReport& r, const fs::path& out, const std::string& reference_audio) {
    ReportAssets assets;
    assets.out = out;
    for (const auto& a : r.adapters) assets.curves.push_back(read_training_curve(a.dir));
    if (!reference_audio.empty()) {
        const fs::path src(reference_audio);
        const fs::path rel = fs::path(kReferenceDir) / ("ref" + src.extension().string());
        fs::create_directories(out / kReferenceDir);
        io::write_file_atomic(out / rel, io::read_file(src));
        assets.reference_audio = rel.generic_string();
        try {
            assets.reference_seconds = io::audio_stats(io::read_audio(src.string())).seconds;
        } catch (const Error&) {
        }
    }
    const fs::path page = out / kReportFile;
    io::write_file_atomic(page, report_html(r, assets));
    return page;
}

}  // namespace alexandria::eval
