#include "alexandria/eval/prompts.h"

#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "alexandria/eval/metrics.h"
#include "alexandria/io/error.h"

namespace alexandria::eval {

std::string prompt_kind_name(PromptKind k) {
    switch (k) {
        case PromptKind::Short: return "short";
        case PromptKind::Sentence: return "sentence";
        case PromptKind::Paragraph: return "paragraph";
    }
    return "?";
}

PromptKind parse_prompt_kind(const std::string& s) {
    if (s == "short") return PromptKind::Short;
    if (s == "sentence") return PromptKind::Sentence;
    if (s == "paragraph") return PromptKind::Paragraph;
    throw InputError(fmt::format("prompt kind '{}': expected short, sentence or paragraph", s));
}

PromptKind classify_prompt(const std::string& text) {
    int words = 0;
    bool in_word = false;
    for (char c : text) {
        bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
        if (!space && !in_word) ++words;
        in_word = !space;
    }
    const int64_t chars = spoken_characters(text);
    if (words <= 2 && chars <= 12) return PromptKind::Short;
    if (chars >= 200) return PromptKind::Paragraph;
    return PromptKind::Sentence;
}

std::vector<Prompt> default_prompts() {
    const std::vector<std::pair<std::string, PromptKind>> texts = {
        {"Oh!", PromptKind::Short},
        {"Hmm.", PromptKind::Short},
        {"Right.", PromptKind::Short},
        {"The rain had stopped by the time we reached the station.", PromptKind::Sentence},
        {"She opened the letter slowly, afraid of what it might say.", PromptKind::Sentence},
        {"Nobody in the village remembered the old lighthouse keeper's name.", PromptKind::Sentence},
        {"The road wound up through the hills for most of the afternoon, past orchards and low stone walls, "
         "until the town finally appeared below us. Its roofs were still wet from the morning storm, and thin "
         "smoke rose from a dozen chimneys. We stopped at the last bend to rest the horses, and for a long while "
         "none of us said a word.",
         PromptKind::Paragraph},
    };
    std::vector<Prompt> out;
    for (size_t i = 0; i < texts.size(); ++i) out.push_back({fmt::format("p{:02d}", i + 1), texts[i].first, texts[i].second});
    return out;
}

namespace {
bool safe_id(const std::string& id) {
    if (id.empty() || id == "." || id == "..") return false;
    for (char c : id)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    return true;
}
bool blank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }
}  // namespace

std::vector<Prompt> read_prompts(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("--prompts {}: cannot be read", path));
    std::vector<Prompt> out;
    std::set<std::string> ids;
    std::string raw;
    int lineno = 0;
    while (std::getline(in, raw)) {
        ++lineno;
        if (!raw.empty() && raw.back() == '\r') raw.pop_back();
        auto first = raw.find_first_not_of(" \t");
        if (first == std::string::npos || raw[first] == '#') continue;
        const std::string where = fmt::format("{}:{}", path, lineno);
        Prompt p;
        if (raw[first] == '{') {
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(raw);
            } catch (const nlohmann::json::exception&) {
                throw InputError(where + ": invalid JSON");
            }
            if (!j.is_object()) throw InputError(where + ": expected a JSON object");
            auto t = j.find("text");
            if (t == j.end() || !t->is_string()) throw InputError(where + ": field 'text': missing or not a string");
            p.text = t->get<std::string>();
            if (auto k = j.find("kind"); k != j.end()) {
                if (!k->is_string()) throw InputError(where + ": field 'kind': not a string");
                try {
                    p.kind = parse_prompt_kind(k->get<std::string>());
                } catch (const InputError& e) {
                    throw InputError(where + ": field 'kind': " + e.what());
                }
            } else {
                p.kind = classify_prompt(p.text);
            }
            if (auto i = j.find("id"); i != j.end()) {
                if (!i->is_string()) throw InputError(where + ": field 'id': not a string");
                p.id = i->get<std::string>();
                if (!safe_id(p.id))
                    throw InputError(where + ": field 'id': '" + p.id +
                                     "' must be letters, digits, '-', '_' or '.' (it names the WAV files)");
            }
        } else {
            p.text = raw.substr(first);
            p.kind = classify_prompt(p.text);
        }
        if (blank(p.text) || spoken_characters(p.text) == 0)
            throw InputError(where + ": field 'text': nothing to speak");
        if (p.id.empty()) p.id = fmt::format("p{:02d}", out.size() + 1);
        if (!ids.insert(p.id).second) throw InputError(where + ": field 'id': '" + p.id + "' used twice");
        out.push_back(std::move(p));
    }
    if (out.empty()) throw InputError(fmt::format("--prompts {}: no prompt in the file", path));
    return out;
}

}  // namespace alexandria::eval
