// The summary table: one set of rows, drawn as text here (format_table) and as HTML in report.cpp.
#include <nlohmann/json.hpp>

#include "alexandria/eval/report.h"
#include "format.h"

namespace alexandria::eval {

using json = nlohmann::json;
using namespace fmtx;

namespace {

TableRow table_row(const AdapterEval& a, bool judged) {
    const auto& g = a.generation;
    TableRow row;
    row.label = a.label;
    row.judged = judged;
    row.usable = judged && a.verdict.usable;
    row.band = a.loss ? plan::loss_band_name(a.loss->verdict.band) : "";
    row.cells = {a.label,
                 a.prompt,
                 a.loss ? f3(a.loss->alexandria.total) : "-",
                 a.loss ? a.loss->verdict.name : "-",
                 a.loss ? f3(a.loss->aligned.total) : "-",
                 frac(g.eos, g.eos + g.runaway),
                 frac(g.runaway, g.eos + g.runaway),
                 frac(g.short_runaway, g.short_outputs),
                 std::isfinite(g.rate_ratio) ? fmt::format("{} ({})", f1(g.rate.chars_per_second), f2(g.rate_ratio))
                                             : f1(g.rate.chars_per_second),
                 f3(g.similarity_mean),
                 judged ? (a.verdict.usable ? "usable" : "NOT USABLE") : "(reference)"};
    return row;
}

std::string pad(const std::string& s, const TableColumn& c) {
    if (c.width <= 0) return s;
    return c.left ? fmt::format("{:<{}}", s, c.width) : fmt::format("{:>{}}", s, c.width);
}

std::string text_line(const std::vector<TableColumn>& cols, const std::vector<std::string>& cells) {
    std::string s;
    for (size_t i = 0; i < cols.size(); ++i) s += (i ? cols[i].sep : "") + pad(i < cells.size() ? cells[i] : "", cols[i]);
    return s + "\n";
}


}  // namespace

SummaryTable summary_table(const EvalReport& r) {
    SummaryTable t;
    t.columns = {{"adapter", "adapter", 14, true},   {"prompt", "prompt", 8, true},   {"loss", "loss", 8},          {"band", "band", 20, true},
                 {"aligned", "aligned", 8},          {"eos", "EOS", 7},            {"runaway", "runaway", 8},
                 {"short", "short", 8},              {"rate", "rate (×ds)", 11},   {"similarity", "similarity", 11},
                 {"verdict", "verdict", 0, true, "  "}};
    if (r.base) t.rows.push_back(table_row(*r.base, false));
    for (const auto& a : r.adapters) t.rows.push_back(table_row(a, true));
    return t;
}

std::string format_table(const EvalReport& r) {
    std::string s;
    const json& d = r.json.at("data");
    s += fmt::format("dataset {}: speaking rate {} chars/s over {} clips; loss on {} ({})\n", d.at("dir").get<std::string>(),
                     f1(number_or_nan(d.at("speaking_rate").at("chars_per_second"))),
                     d.at("speaking_rate").at("clips").get<int>(), d.at("held_out").at("split").get<std::string>(),
                     d.at("held_out").at("note").get<std::string>());
    const SummaryTable t = summary_table(r);
    std::vector<std::string> headers;
    for (const auto& c : t.columns) headers.push_back(c.header);
    s += text_line(t.columns, headers);
    for (const auto& row : t.rows) s += text_line(t.columns, row.cells);
    for (const auto& a : r.adapters) {
        s += fmt::format("\n{}: {}\n", a.label, a.verdict.summary);
        if (a.loss && !a.loss->verdict.note.empty()) s += fmt::format("  loss: {}\n", a.loss->verdict.note);
        for (const auto& f : a.verdict.findings) {
            s += fmt::format("  [{}] {}{} — fix: {}\n", severity_name(f.severity), f.problem,
                             f.seed_row ? fmt::format(" (cause: {})", f.cause) : "", f.fix);
            for (const auto& e : f.evidence) s += fmt::format("      {}\n", e);
        }
        const auto& g = a.generation;
        if (g.thirds_outputs > 0)
            s += fmt::format("  speaking rate, last third / first third of {} long output{}: {} (1 = steady)\n",
                             g.thirds_outputs, g.thirds_outputs == 1 ? "" : "s", f2(g.thirds_drift));
        if (g.silent || g.clipped || g.duration_outliers)
            s += fmt::format("  silent {} and clipped {} of {} outputs; duration outliers {} of {} that ended on EOS\n",
                             g.silent, g.clipped, g.eos + g.runaway, g.duration_outliers, g.eos);
    }
    if (r.adapters.size() > 1) {
        s += "\nranking:";
        for (size_t k = 0; k < r.ranking.size(); ++k)
            s += fmt::format(" {}{}", k ? "> " : "", r.adapters[r.ranking[k]].label);
        s += "\n";
    }
    if (r.pick)
        s += fmt::format("recommended: {} ({})\n", r.adapters[*r.pick].label, r.adapters[*r.pick].dir);
    else
        s += r.adapters.size() > 1 ? "recommended: none of these adapters is usable\n" : "";
    s += fmt::format("report: {}\n", r.json_path.string());
    if (!r.report_path.empty()) s += fmt::format("page:   {}\n", r.report_path.string());
    return s;
}

}  // namespace alexandria::eval
