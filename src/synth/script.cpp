#include "alexandria/synth/script.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/jsonl.h"
#include "alexandria/io/strings.h"

namespace alexandria::synth {

namespace {

// Byte length of the UTF-8 sequence starting with `c` (1 for stray continuation bytes).
size_t seq_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c >> 5) == 0x6) return 2;
    if ((c >> 4) == 0xE) return 3;
    if ((c >> 3) == 0x1E) return 4;
    return 1;
}

// Code points of `s` as byte substrings.
std::vector<std::string> code_points(const std::string& s) {
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        size_t n = std::min(seq_len(static_cast<unsigned char>(s[i])), s.size() - i);
        out.push_back(s.substr(i, n));
        i += n;
    }
    return out;
}

bool is_space(const std::string& cp) { return cp.size() == 1 && std::isspace(static_cast<unsigned char>(cp[0])); }
bool is_sentence_end(const std::string& cp) {
    return cp == "." || cp == "!" || cp == "?" || cp == "\xE2\x80\xA6" /* … */ || cp == "\xE3\x80\x82" /* 。 */ ||
           cp == "\xEF\xBC\x81" /* ！ */ || cp == "\xEF\xBC\x9F" /* ？ */;
}
bool is_cjk_end(const std::string& cp) { return cp.size() == 3 && is_sentence_end(cp) && cp != "\xE2\x80\xA6"; }
bool is_closer(const std::string& cp) {
    return cp == "\"" || cp == "'" || cp == ")" || cp == "]" || cp == "\xE2\x80\x9D" /* ” */ ||
           cp == "\xE2\x80\x99" /* ’ */ || cp == "\xC2\xBB" /* » */ || cp == "\xE3\x80\x8D" /* 」 */ ||
           cp == "\xE3\x80\x8F" /* 』 */ || cp == "\xEF\xBC\x89" /* ） */;
}
bool is_clause_end(const std::string& cp) {
    return cp == "," || cp == ";" || cp == ":" || cp == "\xEF\xBC\x8C" /* ， */ || cp == "\xE3\x80\x81" /* 、 */ ||
           cp == "\xEF\xBC\x9B" /* ； */ || cp == "\xEF\xBC\x9A" /* ： */ || cp == "\xE2\x80\x94" /* — */;
}

// A '.' that ends a title or an initial ("Dr.", "Mrs.", "J.") rather than a sentence.
bool abbreviation(const std::vector<std::string>& cps, size_t i) {
    if (cps[i] != ".") return false;
    std::string word;
    for (size_t j = i; j-- > 0;) {
        if (is_space(cps[j]) || cps[j] == "\"" || cps[j] == "(") break;
        word.insert(0, cps[j]);
    }
    if (word.size() == 1 && std::isupper(static_cast<unsigned char>(word[0]))) return true;
    static const char* titles[] = {"Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "Prof", "Mt", "vs", "etc", "e.g", "i.e"};
    for (const char* t : titles)
        if (word == t) return true;
    return false;
}

// Splits after boundary code points: `boundary(cps, i)` says a piece may end after cps[i] (plus any closers).
template <typename F>
std::vector<std::vector<std::string>> pieces(const std::vector<std::string>& cps, F boundary) {
    std::vector<std::vector<std::string>> out;
    std::vector<std::string> cur;
    for (size_t i = 0; i < cps.size(); ++i) {
        cur.push_back(cps[i]);
        if (!boundary(cps, i) || abbreviation(cps, i)) continue;
        bool cjk = is_cjk_end(cps[i]);
        while (i + 1 < cps.size() && (is_closer(cps[i + 1]) || is_sentence_end(cps[i + 1]))) {
            cur.push_back(cps[++i]);
            cjk |= is_cjk_end(cps[i]);
        }
        // A piece ends at punctuation followed by whitespace or the end (so "3.5" and "e.g.x" stay whole);
        // CJK full stops need no space.
        if (i + 1 == cps.size() || is_space(cps[i + 1]) || cjk) {
            out.push_back(std::move(cur));
            cur.clear();
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

std::string concat(const std::vector<std::string>& cps, size_t a, size_t b) {
    std::string s;
    for (size_t i = a; i < b; ++i) s += cps[i];
    return s;
}

// Greedy packing of pieces into chunks of ≤ max code points (after trimming); pieces longer than max are
// returned alone for the caller to split further.
std::vector<std::string> pack(const std::vector<std::vector<std::string>>& ps, size_t max) {
    std::vector<std::string> out;
    std::string cur;
    for (const auto& p : ps) {
        std::string piece = concat(p, 0, p.size());
        std::string joined = cur + piece;
        if (!io::trim(cur).empty() && count_code_points(io::trim(joined)) > max) {
            out.push_back(io::trim(cur));
            cur = piece;
        } else {
            cur = joined;
        }
    }
    if (!io::trim(cur).empty()) out.push_back(io::trim(cur));
    return out;
}

}  // namespace

size_t count_code_points(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

std::vector<std::string> split_text(const std::string& text, int max_chars) {
    std::string t = io::trim(text);
    if (t.empty()) return {};
    if (max_chars <= 0 || count_code_points(t) <= static_cast<size_t>(max_chars)) return {t};
    const size_t max = static_cast<size_t>(max_chars);
    auto cps = code_points(t);
    auto sentences = pieces(cps, [](const std::vector<std::string>& c, size_t i) { return is_sentence_end(c[i]); });
    std::vector<std::string> out;
    for (const auto& chunk : pack(sentences, max)) {
        if (count_code_points(chunk) <= max) {
            out.push_back(chunk);
            continue;
        }
        auto ccps = code_points(chunk);
        auto clauses = pieces(ccps, [](const std::vector<std::string>& c, size_t i) {
            return is_sentence_end(c[i]) || is_clause_end(c[i]);
        });
        for (const auto& part : pack(clauses, max)) {
            if (count_code_points(part) <= max) {
                out.push_back(part);
                continue;
            }
            // Words, then a hard cut of an over-long word.
            auto pcps = code_points(part);
            std::vector<std::vector<std::string>> words;
            std::vector<std::string> cur;
            for (size_t i = 0; i < pcps.size(); ++i) {
                cur.push_back(pcps[i]);
                if (is_space(pcps[i]) || cur.size() >= max) {
                    words.push_back(std::move(cur));
                    cur.clear();
                }
            }
            if (!cur.empty()) words.push_back(std::move(cur));
            for (auto& w : pack(words, max)) out.push_back(w);
        }
    }
    return out;
}

Script read_script(const std::string& path) {
    Script s;
    s.path = path;
    int index = 0;
    io::read_jsonl(
        path,
        [&](int lineno, const nlohmann::json& obj) {
            std::string where = fmt::format("{}:{}", path, lineno);
            ScriptLine l;
            l.line = lineno;
            l.index = index++;
            try {
                auto it = obj.find("text");
                if (it == obj.end()) throw InputError(fmt::format("{}: field 'text': missing", where));
                if (!it->is_string())
                    throw InputError(fmt::format("{}: field 'text': expected a string, got {}", where,
                                                 it->type_name()));
                l.text = io::trim(it->get<std::string>());
                if (l.text.empty()) throw InputError(fmt::format("{}: field 'text': empty", where));
                const std::pair<const char*, std::string*> fields[] = {{"out", &l.out},
                                                                        {"speaker", &l.speaker},
                                                                        {"voice", &l.voice},
                                                                        {"instruct", &l.instruct},
                                                                        {"language", &l.language}};
                for (const auto& [field, dst] : fields) {
                    auto f = obj.find(field);
                    if (f == obj.end() || f->is_null()) continue;
                    if (!f->is_string())
                        throw InputError(fmt::format("{}: field '{}': expected a string, got {}", where, field,
                                                     f->type_name()));
                    *dst = f->get<std::string>();
                }
                if (auto f = obj.find("seed"); f != obj.end() && !f->is_null()) {
                    if (!f->is_number_integer() || (!f->is_number_unsigned() && f->get<int64_t>() < 0))
                        throw InputError(fmt::format("{}: field 'seed': expected a non-negative integer", where));
                    l.seed = f->get<uint64_t>();
                }
                if (auto f = obj.find("pause_after"); f != obj.end() && !f->is_null()) {
                    if (!f->is_number() || !std::isfinite(f->get<double>()) || f->get<double>() < 0 ||
                        f->get<double>() > 600)
                        throw InputError(
                            fmt::format("{}: field 'pause_after': expected seconds between 0 and 600", where));
                    l.pause_after = f->get<double>();
                }
                s.lines.push_back(std::move(l));
            } catch (const InputError& e) {
                s.errors.push_back({lineno, l.index, e.what()});
            }
        },
        [&](int lineno, const std::string& message) { s.errors.push_back({lineno, index++, message}); });
    return s;
}

void validate_script(const Script& script, const ScriptCheck& check) {
    std::vector<ScriptError> bad = script.errors;
    for (const auto& l : script.lines) {
        const std::string where = fmt::format("{}:{}", script.path, l.line);
        if (!l.voice.empty() && check.voice) {
            try {
                check.voice(l.voice);
            } catch (const std::exception& e) {  // incl. filesystem errors on the path it names (too long, no access)
                bad.push_back({l.line, l.index, fmt::format("{}: field 'voice': {}", where, e.what())});
                continue;
            }
        }
        // speaker names match case-insensitively, as the prompt builder looks them up
        if (!l.speaker.empty() && !check.speakers.empty() &&
            std::none_of(check.speakers.begin(), check.speakers.end(),
                         [&](const std::string& sp) { return io::ascii_lower(sp) == io::ascii_lower(l.speaker); }))
            bad.push_back({l.line, l.index,
                           fmt::format("{}: field 'speaker': unknown speaker '{}' (this model has: {})", where,
                                       l.speaker, fmt::join(check.speakers, ", "))});
    }
    if (bad.empty()) return;
    std::sort(bad.begin(), bad.end(), [](const ScriptError& a, const ScriptError& b) { return a.line < b.line; });
    std::string msg = bad.front().message;
    if (bad.size() > 1) {
        msg += fmt::format("\n{} bad lines in all; nothing was rendered:", bad.size());
        for (size_t i = 1; i < bad.size() && i < 20; ++i) msg += "\n  " + bad[i].message;
        if (bad.size() > 20) msg += fmt::format("\n  ... and {} more", bad.size() - 20);
    }
    throw InputError(msg);
}

Shard parse_shard(const std::string& s) {
    static const std::regex re(R"(^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$)");
    std::smatch m;
    if (std::regex_match(s, m, re)) {
        Shard sh{std::stoi(m[1]), std::stoi(m[2])};
        if (sh.n >= 1 && sh.k >= 1 && sh.k <= sh.n) return sh;
    }
    throw InputError(fmt::format("--shard '{}': expected K/N with 1 <= K <= N (e.g. 2/8)", s));
}

std::string line_output_name(const ScriptLine& line, const std::string& extension) {
    if (!line.out.empty()) return line.out;
    return fmt::format("line-{:05d}.{}", line.line, extension);
}

double pause_between(const ScriptLine& prev, const ScriptLine& next, const PauseRule& rule) {
    if (prev.pause_after) return *prev.pause_after;
    return prev.identity() == next.identity() ? rule.same_speaker : rule.between_speakers;
}

int64_t pause_samples(double seconds, int sample_rate) {
    return static_cast<int64_t>(std::llround(seconds * sample_rate));
}

std::vector<float> join_audio(const std::vector<std::vector<float>>& parts, const std::vector<int64_t>& gaps) {
    size_t total = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
        total += parts[i].size();
        if (i + 1 < parts.size()) total += static_cast<size_t>(std::max<int64_t>(0, i < gaps.size() ? gaps[i] : 0));
    }
    std::vector<float> out;
    out.reserve(total);
    for (size_t i = 0; i < parts.size(); ++i) {
        out.insert(out.end(), parts[i].begin(), parts[i].end());
        if (i + 1 < parts.size()) out.resize(out.size() + std::max<int64_t>(0, i < gaps.size() ? gaps[i] : 0), 0.f);
    }
    return out;
}

}  // namespace alexandria::synth
