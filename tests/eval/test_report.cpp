// report.html (issue 16): rendered by headless Chromium (no console error, every audio source present, no
// horizontal overflow on a phone-sized screen), its figures against eval.json's, 1 and 6 adapters, the training
// curves from the metrics log, and the unwritable --out rule.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/eval/report.h"
#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "eval_fixture.h"
#include "support/test_support.h"

using namespace alexandria;
using namespace alexandria::eval;
using alexandria::test::copy_tiny_voice;
using alexandria::test::small_options;
using alexandria::test::TempDir;
using alexandria::test::tiny;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string unescape(std::string s) {
    const std::pair<const char*, const char*> ents[] = {{"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"},
                                                        {"&amp;", "&"}};
    for (const auto& [from, to] : ents)
        for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + 1)) s.replace(p, strlen(from), to);
    return s;
}

std::vector<std::string> all_matches(const std::string& text, const std::regex& re, int group = 1) {
    std::vector<std::string> out;
    for (std::sregex_iterator it(text.begin(), text.end(), re), end; it != end; ++it) out.push_back((*it)[group]);
    return out;
}

std::vector<std::string> audio_sources(const std::string& html) {
    return all_matches(html, std::regex("<audio\\b[^>]*\\bsrc=\"([^\"]*)\""));
}

std::string between(const std::string& s, const std::string& open, const std::string& close, size_t from = 0) {
    size_t a = s.find(open, from);
    if (a == std::string::npos) return "";
    a += open.size();
    size_t b = s.find(close, a);
    return b == std::string::npos ? "" : s.substr(a, b - a);
}

std::string f(const char* spec, const json& x) {
    return x.is_number() ? fmt::format(spec, x.get<double>()) : std::string("-");
}
std::string frac(int k, int n) { return n > 0 ? fmt::format("{}/{}", k, n) : "-"; }

// What a cell of the verdict table must say, from eval.json alone.
std::optional<std::string> expected_cell(const std::string& key, const json& a, bool judged) {
    const json& l = a["held_out_loss"];
    const json& g = a["generation"];
    const int measured = g["eos"].get<int>() + g["runaway"].get<int>();
    if (key == "adapter") return a["label"].get<std::string>();
    if (key == "prompt") return a["prompt"].get<std::string>();
    if (key == "loss") return l.is_null() ? "-" : f("{:.3f}", l["alexandria"]["loss"]);
    if (key == "band") return l.is_null() ? "-" : l["verdict"]["band"].get<std::string>();
    if (key == "aligned") return l.is_null() ? "-" : f("{:.3f}", l["aligned"]["loss"]);
    if (key == "eos") return frac(g["eos"].get<int>(), measured);
    if (key == "runaway") return frac(g["runaway"].get<int>(), measured);
    if (key == "short") return frac(g["short"]["runaway"].get<int>(), g["short"]["outputs"].get<int>());
    if (key == "rate") {
        std::string s = f("{:.1f}", g["speaking_rate"]["chars_per_second"]);
        return g["speaking_rate_ratio"].is_number() ? s + " (" + f("{:.2f}", g["speaking_rate_ratio"]) + ")" : s;
    }
    if (key == "similarity") return f("{:.3f}", g["speaker_similarity"]["mean"]);
    if (key == "verdict") return judged ? (a["verdict"]["usable"].get<bool>() ? "usable" : "NOT USABLE") : "(reference)";
    return std::nullopt;
}

// The verdict table: column keys (from the header) and, per row label, cell key → (text, classes).
struct ParsedTable {
    std::vector<std::string> keys;
    std::map<std::string, std::map<std::string, std::pair<std::string, std::string>>> rows;
    std::vector<std::string> order;
};
ParsedTable parse_summary(const std::string& html) {
    ParsedTable t;
    const std::string table = between(html, "<table id=\"summary\">", "</table>");
    REQUIRE(!table.empty());
    t.keys = all_matches(between(table, "<thead>", "</thead>"), std::regex("<th scope=\"col\" class=\"col-([a-z0-9-]+)"));
    const std::regex row_re("<tr data-label=\"([^\"]*)\">(.*?)</tr>");
    const std::regex cell_re("<t[hd][^>]* class=\"col-([a-z0-9-]+)([^\"]*)\">([^<]*)</t[hd]>");
    for (std::sregex_iterator it(table.begin(), table.end(), row_re), end; it != end; ++it) {
        const std::string label = unescape((*it)[1]), body = (*it)[2];
        t.order.push_back(label);
        for (std::sregex_iterator c(body.begin(), body.end(), cell_re); c != end; ++c)
            t.rows[label][(*c)[1]] = {unescape((*c)[3]), (*c)[2]};
    }
    return t;
}

// Every take card of a listening row: voice → its figures (class → text) and audio source.
struct Take {
    std::map<std::string, std::string> dd;
    std::string src;
};
std::map<std::string, std::map<std::string, Take>> parse_takes(const std::string& html) {
    std::map<std::string, std::map<std::string, Take>> rows;  // "p01-s0" → voice → take
    const std::string marker = "<section class=\"prompt\" id=\"";
    for (size_t p = html.find(marker); p != std::string::npos; p = html.find(marker, p + 1)) {
        const std::string id = between(html, marker, "\"", p);
        const std::string body = between(html, marker + id + "\"", "</section>", p);
        const std::string fig = "<figure class=\"take";
        for (size_t q = body.find(fig); q != std::string::npos; q = body.find(fig, q + 1)) {
            const std::string voice = between(body, "data-voice=\"", "\"", q);
            const std::string card = between(body, ">", "</figure>", q);
            Take t;
            const std::regex dd_re("<dd class=\"([a-z]+)[^\"]*\">([^<]*)</dd>");
            for (std::sregex_iterator it(card.begin(), card.end(), dd_re), end; it != end; ++it)
                t.dd[(*it)[1]] = unescape((*it)[2]);
            auto srcs = audio_sources(card);
            if (!srcs.empty()) t.src = unescape(srcs[0]);
            rows[id][unescape(voice)] = t;
        }
    }
    return rows;
}

// eval.json's adapter entry (or the base model's) by label.
const json* json_voice(const json& j, const std::string& label, bool* judged) {
    if (!j["base"].is_null() && j["base"]["label"] == label) {
        *judged = false;
        return &j["base"];
    }
    for (const auto& a : j["adapters"])
        if (a["label"] == label) {
            *judged = true;
            return &a;
        }
    return nullptr;
}

void check_page_against_json(const fs::path& out) {
    const std::string html = io::read_file(out / "report.html");
    const json j = json::parse(io::read_file(out / "eval.json"));
    REQUIRE(j["report"] == "report.html");

    // The verdict table: every row of eval.json, every figure as eval.json has it.
    ParsedTable t = parse_summary(html);
    std::vector<std::string> labels;
    if (!j["base"].is_null()) labels.push_back(j["base"]["label"]);
    for (const auto& a : j["adapters"]) labels.push_back(a["label"]);
    CHECK(t.order == labels);
    for (const auto& label : labels) {
        bool judged = false;
        const json* a = json_voice(j, label, &judged);
        REQUIRE(a);
        for (const auto& key : t.keys) {
            INFO("row " << label << ", column " << key);
            auto want = expected_cell(key, *a, judged);
            CHECK(want.has_value());  // a new column: say here what eval.json figure it shows
            REQUIRE(t.rows[label].count(key));
            if (want) CHECK(t.rows[label][key].first == *want);
        }
        if (!(*a)["held_out_loss"].is_null())
            CHECK(t.rows[label]["band"].second.find("band-" + (*a)["held_out_loss"]["verdict"]["band"].get<std::string>()) !=
                  std::string::npos);
    }

    // The listening rows: one per prompt × seed, labelled with the prompt's text, a take per voice with eval.json's
    // figures, and the dataset's reference.
    auto takes = parse_takes(html);
    CHECK(takes.size() == j["settings"]["prompts"].size() * j["settings"]["seeds"].size());
    for (const auto& p : j["settings"]["prompts"]) {
        const std::string text = p["text"];
        CHECK(html.find("“" + text + "”</h3>") != std::string::npos);
        for (const auto& seed : j["settings"]["seeds"]) {
            const std::string id = fmt::format("{}-s{}", p["id"].get<std::string>(), seed.get<uint64_t>());
            INFO("row " << id);
            REQUIRE(takes.count(id));
            CHECK(takes[id].size() == labels.size() + 1);
            CHECK(takes[id].count("reference"));
            CHECK(takes[id]["reference"].src.rfind("reference/ref.", 0) == 0);
            for (const auto& label : labels) {
                bool judged = false;
                const json& a = *json_voice(j, label, &judged);
                const json* o = nullptr;
                for (const auto& x : a["outputs"])
                    if (x["prompt"] == p["id"] && x["seed"] == seed) o = &x;
                REQUIRE(o);
                REQUIRE(takes[id].count(label));
                Take& tk = takes[id][label];
                INFO("voice " << label);
                CHECK(tk.dd["duration"] == f("{:.2f}", (*o)["seconds"]) + " s");
                CHECK(tk.dd["end"] == ((*o)["hit_cap"].get<bool>()
                                           ? fmt::format("hit the cap ({}/{} frames)", (*o)["frames"].get<int>(),
                                                         (*o)["frame_cap"].get<int>())
                                           : fmt::format("EOS ({} frames)", (*o)["frames"].get<int>())));
                CHECK(tk.dd["similarity"] == f("{:.3f}", (*o)["speaker_similarity"]));
                CHECK(tk.dd["rate"].rfind(f("{:.1f}", (*o)["chars_per_second"]), 0) == 0);
                if (!(*o)["wav"].get<std::string>().empty())
                    CHECK(fs::equivalent(out / tk.src, fs::path((*o)["wav"].get<std::string>())));
            }
        }
    }
}

std::string chromium_binary() {
    for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
        std::string cmd = fmt::format("command -v {} >/dev/null 2>&1", name);
        if (std::system(cmd.c_str()) == 0) return name;
    }
    return "";
}

struct Browser {
    int code = -1;
    std::string dom, log;
};
// Headless Chromium: loads `page`, lets the page's timers and media loads run (virtual time), dumps the DOM and
// (optionally) a screenshot; the console goes to the log.
Browser render(const std::string& chromium, const fs::path& page, const fs::path& scratch, const std::string& extra) {
    const fs::path dom = scratch / "dom.html", log = scratch / "chromium.log";
    const std::string cmd = fmt::format(
        "{} --headless --disable-gpu --no-sandbox --no-first-run --user-data-dir='{}' --enable-logging=stderr --v=0 "
        "--virtual-time-budget=5000 {} --dump-dom 'file://{}' >'{}' 2>'{}'",
        chromium, (scratch / "profile").string(), extra, fs::absolute(page).string(), dom.string(), log.string());
    int st = std::system(cmd.c_str());
    Browser b;
    b.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    b.dom = io::read_file(dom);
    b.log = io::read_file(log);
    return b;
}

std::vector<std::string> console_lines(const std::string& log) {
    std::vector<std::string> out;
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);)
        if (line.find(":CONSOLE") != std::string::npos) out.push_back(line);
    return out;
}

EvalReport run_report(const fs::path& tmp, const fs::path& data, std::vector<std::string> adapters, int prompts) {
    EvalOptions o = small_options(tmp, data);
    o.adapters = std::move(adapters);
    o.seeds = 1;
    o.max_frames = 3;
    o.html_report = true;
    if (prompts == 1) {
        o.prompts_file = (tmp / "one.txt").string();
        std::ofstream(o.prompts_file) << "Right.\n";
    }
    return evaluate(o);
}

}  // namespace

TEST_CASE("report.html in headless Chromium: loads without console errors, every audio source exists, fits a phone",
          "[report][browser]") {
    const std::string chromium = chromium_binary();
    if (chromium.empty()) {
        WARN("SKIPPED: chromium is not installed and could not be; tools/install-deps.sh installs Debian's "
             "`chromium` package");
        return;
    }
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto r = run_report(t.path, data, {tiny().adapter_a, tiny().adapter_b}, 2);
    const fs::path out = fs::path(t / "eval-out");
    REQUIRE(r.report_path == out / "report.html");
    REQUIRE(fs::exists(r.report_path));
    const std::string html = io::read_file(r.report_path);
    // Self-contained: no fetch leaves the folder.
    for (const auto& re : {std::regex("\\b(?:src|href)=\"([^\"]*)\"")})
        for (const auto& link : all_matches(html, re)) {
            INFO(link);
            CHECK(link.find("://") == std::string::npos);
            CHECK(link.rfind("/", 0) != 0);
            CHECK(link.find("..") == std::string::npos);
        }
    CHECK(html.find("<link") == std::string::npos);
    CHECK(html.find("@import") == std::string::npos);

    const fs::path scratch = t / "browser";
    fs::create_directories(scratch);
    Browser b = render(chromium, r.report_path, scratch,
                       fmt::format("--window-size=1200,900 --screenshot='{}'", (scratch / "wide.png").string()));
    INFO(b.log);
    REQUIRE(b.code == 0);
    CHECK(console_lines(b.log).empty());
    CHECK(b.dom.find("id=\"summary\"") != std::string::npos);
    CHECK(b.dom.find("class=\"take missing") == std::string::npos);
    // Every player's file exists (base + 2 adapters per prompt, plus the reference, on 2 rows).
    const auto srcs = audio_sources(b.dom);
    CHECK(srcs.size() == 2 * 4);
    for (const auto& s : srcs) {
        INFO(s);
        CHECK(fs::is_regular_file(out / unescape(s)));
    }
    // Each player is labelled with its line and reachable by Tab (native controls, nothing hides them).
    for (const auto& label : all_matches(b.dom, std::regex("<audio\\b[^>]*aria-label=\"([^\"]*)\"")))
        CHECK((label.find("Oh!") != std::string::npos || label.find("The rain stopped at noon.") != std::string::npos));
    CHECK(b.dom.find("tabindex=\"-1\"") == std::string::npos);
    CHECK(all_matches(b.dom, std::regex("<audio\\b[^>]*\\bcontrols")).size() == srcs.size());

    // A missing WAV is caught by the page itself (the console, and the card says so).
    fs::rename(out / "epoch-2" / "p01-s0.wav", t / "moved.wav");
    Browser m = render(chromium, r.report_path, scratch, "");
    auto lines = console_lines(m.log);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].find("epoch-2/p01-s0.wav") != std::string::npos);
    fs::rename(t / "moved.wav", out / "epoch-2" / "p01-s0.wav");

    // A phone-sized screen: the page never scrolls sideways (wide tables scroll inside their own box).
    std::ofstream(scratch / "phone.html")
        << "<!DOCTYPE html><html><body style=\"margin:0\"><iframe id=\"f\" src=\"" << fs::absolute(r.report_path).string()
        << "\" style=\"width:360px;height:640px;border:0\"></iframe><script>f.onload=()=>{const d=f.contentDocument;"
           "const w=d.documentElement.scrollWidth,c=d.documentElement.clientWidth;console.log('widths '+w+' '+c);"
           "if(w>c)console.error('horizontal overflow: '+w+' > '+c);};</script></body></html>";
    Browser p = render(chromium, scratch / "phone.html", scratch, "--allow-file-access-from-files");
    auto plines = console_lines(p.log);
    INFO(p.log);
    REQUIRE(plines.size() == 1);  // the widths, and no overflow error
    CHECK(plines[0].find("widths ") != std::string::npos);
}

TEST_CASE("report.html's figures are eval.json's; one adapter and six", "[report]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    SECTION("one adapter") {
        auto r = run_report(t.path, data, {tiny().zero_adapter}, 2);
        check_page_against_json(t / "eval-out");
        const std::string html = io::read_file(r.report_path);
        // No metrics log beside this adapter: said so instead of a plot.
        CHECK(html.find("<svg") == std::string::npos);
        CHECK(html.find("no metrics log (metrics.jsonl)") != std::string::npos);
        CHECK(html.find("This adapter is not usable") != std::string::npos);
        CHECK(html.find("Ranking") == std::string::npos);
    }
    SECTION("six adapters, two runs' checkpoints among them") {
        auto r = run_report(t.path, data,
                            {tiny().adapter_a, tiny().adapter_b, tiny().zero_adapter, tiny().adapter_a + "/",
                             tiny().adapter_b, tiny().zero_adapter},
                            1);
        REQUIRE(r.adapters.size() == 6);
        check_page_against_json(t / "eval-out");
        const std::string html = unescape(io::read_file(r.report_path));
        // The two checkpoints of one run share its metrics log: one plot with both epochs marked.
        CHECK(all_matches(html, std::regex("<svg\\b")).size() == 1);
        CHECK(html.find(">epoch-1</text>") != std::string::npos);
        CHECK(html.find(">epoch-2</text>") != std::string::npos);
        CHECK(html.find("Ranking, best first") != std::string::npos);
        // Each adapter's troubleshooting lines with their fixes.
        for (const auto& a : r.adapters) {
            CHECK(html.find("<h3>" + a.label + " — ") != std::string::npos);
            for (const auto& fnd : a.verdict.findings) CHECK(html.find(fnd.fix) != std::string::npos);
        }
    }
}

TEST_CASE("training curves come from the metrics log", "[report]") {
    const std::string log =
        "{\"type\":\"step\",\"epoch\":1,\"step\":1,\"alexandria_loss\":4.8,\"aligned_loss\":5.1}\n"
        "not json\n"
        "{\"type\":\"step\",\"epoch\":1,\"step\":2,\"alexandria_loss\":4.6,\"aligned_loss\":null}\n"
        "{\"type\":\"epoch\",\"epoch\":1,\"loss\":4.7,\"alexandria\":{\"loss\":4.7},\"aligned\":{\"loss\":5.0}}\n"
        "\n"
        "{\"type\":\"step\",\"epoch\":2,\"step\":3,\"alexandria_loss\":4.3,\"aligned_loss\":4.9}\n"
        "{\"type\":\"epoch\",\"epoch\":2,\"loss\":4.3,\"alexandria\":{\"loss\":4.3},\"aligned\":{\"loss\":4.9}}\n";
    auto c = parse_training_curve(log, "m.jsonl");
    CHECK(c.unreadable_lines == 1);
    REQUIRE(c.steps.size() == 3);
    CHECK(std::isnan(c.steps[1].aligned));
    REQUIRE(c.epochs.size() == 2);
    CHECK(c.epoch_numbers == std::vector<int>{1, 2});
    CHECK(c.epochs[0].x == 2);  // placed at the epoch's last step
    CHECK(c.epochs[1].x == 3);
    CHECK(c.epochs[1].alexandria == Approx(4.3));
    const std::string svg = loss_curve_svg(c, {{2, "epoch-2"}}, "a <title>");
    CHECK(svg.find("viewBox=") != std::string::npos);
    CHECK(between(svg, "<svg", ">").find("width=") == std::string::npos);  // no fixed size: it scales
    CHECK(svg.find("a &lt;title&gt;") != std::string::npos);
    CHECK(svg.find(">epoch-2</text>") != std::string::npos);
    CHECK(all_matches(svg, std::regex("<polyline")).size() == 4);

    // A checkpoint folder reads its run's log; a folder without one has none.
    auto a = read_training_curve(tiny().adapter_a);
    REQUIRE(a);
    CHECK(a->log == (fs::path(tiny().adapter_a).parent_path().parent_path() / "metrics.jsonl").string());
    CHECK(a->epochs.size() == 2);
    CHECK_FALSE(read_training_curve(tiny().zero_adapter));
}

TEST_CASE("an unwritable --out is an InputError before any generation; nothing is written", "[report]") {
    TempDir t;
    auto data = copy_tiny_voice(t.path);
    auto o = small_options(t.path, data);
    o.html_report = true;
    std::vector<std::string> log;
    o.log = [&](const std::string& s) { log.push_back(s); };
    std::ofstream(t / "a-file") << "x";
    o.out = (t / "a-file" / "eval").string();  // under a regular file: caught on the path, before the model loads
    CHECK_THROWS_AS(evaluate(o), InputError);
    CHECK(log.empty());
    o.out = (t / "a-file").string();
    CHECK_THROWS_WITH(evaluate(o), Catch::Contains("not a folder"));
#ifdef __linux__
    // /proc takes no folder, whoever we are (root passes every permission check): caught by the real probe.
    o.out = "/proc/alexandria-eval-test";
    CHECK_THROWS_AS(evaluate(o), InputError);
    for (const auto& l : log) CHECK(l.find("[EVAL] base") == std::string::npos);
#endif
    if (::geteuid() != 0) {
        fs::create_directories(t / "ro");
        fs::permissions(t / "ro", fs::perms::owner_read | fs::perms::owner_exec);
        o.out = (t / "ro" / "eval").string();
        CHECK_THROWS_AS(evaluate(o), InputError);
        fs::permissions(t / "ro", fs::perms::owner_all);
    }
    CHECK(fs::is_regular_file(t / "a-file"));
}
