// Small formatting pieces of the trainer: Python-compatible number formats for Alexandria's protocol, and loss.svg.
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "alexandria/plan/loss_bands.h"
#include "alexandria/train/trainer.h"

namespace alexandria::train {

std::string thousands(int64_t n) {
    std::string digits = std::to_string(n < 0 ? -n : n), out;
    int count = 0;
    for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
        if (count && count % 3 == 0) out.push_back(',');
        out.push_back(*it);
        ++count;
    }
    if (n < 0) out.push_back('-');
    std::reverse(out.begin(), out.end());
    return out;
}

std::string py_repr(double x) {
    if (std::isnan(x)) return "nan";
    if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
    // fmt's shortest round-trip form switches to exponent notation where Python's repr does (exp < -4 or >= 16)
    // and writes the exponent with at least two digits, as Python; only the ".0" of integral values differs.
    std::string s = fmt::format("{}", x);
    if (s.find_first_of(".e") == std::string::npos) s += ".0";
    return s;
}

namespace {

std::string esc(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else o += c;
    }
    return o;
}

}  // namespace

std::string loss_svg(const std::vector<EpochRecord>& epochs, Objective chosen, int chosen_epoch) {
    const double W = 720, H = 420, left = 64, right = 170, top = 36, bottom = 52;
    const double pw = W - left - right, ph = H - top - bottom;
    double lo = 3.0, hi = 5.0;
    for (const auto& e : epochs)
        for (double v : {e.alexandria_loss, e.aligned_loss})
            if (std::isfinite(v)) {
                lo = std::min(lo, v);
                hi = std::max(hi, v);
            }
    lo = std::floor(lo * 2) / 2;
    hi = std::ceil(hi * 2) / 2;
    if (hi - lo < 0.5) hi = lo + 0.5;
    const int n = std::max<int>(1, static_cast<int>(epochs.size()));
    auto X = [&](double epoch) { return left + (n == 1 ? pw / 2 : (epoch - 1) / (n - 1) * pw); };
    auto Y = [&](double loss) { return top + (hi - std::clamp(loss, lo, hi)) / (hi - lo) * ph; };

    std::string s = fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
        "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
        W, H);
    s += fmt::format("<text x=\"{}\" y=\"20\" font-size=\"14\">Epoch loss ({} objective chosen)</text>\n", left,
                     objective_name(chosen));
    // The seed's bands (measured with the alexandria loss).
    struct Shade {
        plan::LossBand band;
        const char* colour;
    };
    const Shade shades[] = {{plan::LossBand::Undertrained, "#dde8f7"},
                            {plan::LossBand::SweetSpot, "#cdeccd"},
                            {plan::LossBand::KnifesEdge, "#fbefc4"},
                            {plan::LossBand::StartingToOverfit, "#f9dcc0"},
                            {plan::LossBand::Overfit, "#f4c7c7"}};
    for (const auto& row : plan::loss_table()) {
        const char* colour = nullptr;
        for (const auto& sh : shades)
            if (sh.band == row.band) colour = sh.colour;
        if (!colour) continue;
        double a = std::max(row.low, lo), b = std::min(std::isfinite(row.high) ? row.high : hi, hi);
        if (!(b > a)) continue;
        s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", left,
                         Y(b), pw, Y(a) - Y(b), colour);
        s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555\">{} ({})</text>\n", left + pw + 6,
                         (Y(a) + Y(b)) / 2 + 4, esc(row.loss_label), esc(row.verdict));
    }
    // Axes and ticks.
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", left, top,
                     pw, ph);
    for (double v = lo; v <= hi + 1e-9; v += 0.5)
        s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{:.1f}</text>\n", left - 6, Y(v) + 4, v);
    for (int e = 1; e <= n; ++e)
        s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", X(e), top + ph + 16, e);
    s += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">epoch</text>\n", left + pw / 2,
                     top + ph + 36);
    // Both series.
    struct Series {
        const char* name;
        const char* colour;
        bool alex;
    };
    for (const Series& ser : {Series{"alexandria", "#1f5fbf", true}, Series{"aligned", "#c0392b", false}}) {
        std::string pts;
        for (const auto& e : epochs) {
            double v = ser.alex ? e.alexandria_loss : e.aligned_loss;
            if (!std::isfinite(v)) continue;
            pts += fmt::format("{:.1f},{:.1f} ", X(e.epoch), Y(v));
        }
        if (!pts.empty())
            s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"/>\n", pts,
                             ser.colour);
        for (const auto& e : epochs) {
            double v = ser.alex ? e.alexandria_loss : e.aligned_loss;
            if (std::isfinite(v))
                s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>{} epoch {}: "
                                 "{:.4f}</title></circle>\n",
                                 X(e.epoch), Y(v), ser.colour, ser.name, e.epoch, v);
        }
    }
    if (chosen_epoch >= 1)
        s += fmt::format("<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"#222\" "
                         "stroke-dasharray=\"4 3\"/><text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">kept: "
                         "epoch {4}</text>\n",
                         X(chosen_epoch), top, top + ph, top - 4, chosen_epoch);
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#1f5fbf\">— alexandria loss</text>\n", left + 4, H - 6);
    s += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#c0392b\">— aligned loss</text>\n", left + 160, H - 6);
    s += "</svg>\n";
    return s;
}

}  // namespace alexandria::train
