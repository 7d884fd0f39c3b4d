// `alexandria tokenize`: text → ids (or ids → text with --decode) with a model's text tokenizer, so ids can be
// compared with other implementations.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <sstream>

#include "alexandria/io/model_location.h"
#include "alexandria/text/prompt.h"
#include "alexandria/text/tokenizer.h"
#include "cli.h"

namespace alexandria::cli {
namespace tokenize_command {  // named, not anonymous: the command files compile together in unity builds

struct Options {
    std::string model;
    std::string text;
    bool decode = false;
    bool skip_special = false;
    bool tokens = false;
    bool json = false;
    std::string wrap = "none";
};

std::string read_input(const std::string& text) {
    if (text != "-") return text;
    std::ios::sync_with_stdio(false);
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

// "[1, 2, 3]", "1,2,3" or "1 2 3".
std::vector<int32_t> parse_ids(std::string s) {
    for (char& c : s)
        if (c == '[' || c == ']' || c == ',') c = ' ';
    std::istringstream in(s);
    std::vector<int32_t> ids;
    std::string word;
    while (in >> word) {
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(word, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used != word.size() || v < INT32_MIN || v > INT32_MAX)
            throw InputError("--decode: \"" + word + "\" is not a token id");
        ids.push_back(static_cast<int32_t>(v));
    }
    return ids;
}

int run(const Options& o) {
    // A bare tokenizer folder (no config.json) is accepted too, for comparing tokenizers on their own.
    namespace fs = std::filesystem;
    const bool tokenizer_only = fs::is_directory(o.model) && !fs::exists(fs::path(o.model) / "config.json") &&
                                (fs::exists(fs::path(o.model) / "vocab.json") || fs::exists(fs::path(o.model) / "tokenizer.json"));
    const text::Tokenizer tok = text::Tokenizer::from_folder(tokenizer_only ? o.model : io::locate_model(o.model));
    const std::string input = read_input(o.text);
    if (o.decode) {
        const std::string out = tok.decode(parse_ids(input), o.skip_special);
        if (o.json) {
            print_json({{"text", out}});
        } else {
            std::fwrite(out.data(), 1, out.size(), stdout);
        }
        return 0;
    }
    std::string text = input;
    if (o.wrap == "target") text = text::target_text_template(input);
    else if (o.wrap == "reference") text = text::reference_text_template(input);
    else if (o.wrap == "instruct") text = text::instruct_template(input);
    const std::vector<int32_t> ids = tok.encode(text);
    std::string line;
    if (o.tokens) {
        nlohmann::json toks = nlohmann::json::array();
        for (int32_t id : ids) toks.push_back(tok.id_to_token(id));
        line = nlohmann::json{{"ids", ids}, {"tokens", toks}}.dump();
    } else {
        line = nlohmann::json(ids).dump();
    }
    line.push_back('\n');
    std::fwrite(line.data(), 1, line.size(), stdout);
    return 0;
}

const bool registered = add_command({"tokenize", "", "Text to token ids with a model's text tokenizer (or back)",
    [](CLI::App& app) -> Action {
        auto o = std::make_shared<Options>();
        app.add_option("--model", o->model, "Model folder (or Hugging Face id in the local cache) holding the tokenizer")
            ->required();
        app.add_option("text", o->text, "The text, or ids with --decode; - reads stdin")->required();
        app.add_flag("--decode", o->decode, "Turn ids (JSON array or space/comma separated) back into text");
        app.add_flag("--skip-special", o->skip_special, "With --decode: leave out special added tokens");
        app.add_flag("--tokens", o->tokens, "Also print each id's token string: {\"ids\": [...], \"tokens\": [...]}");
        app.add_option("--template", o->wrap, "Wrap the text first: none | target | reference | instruct (spec §2)")
            ->capture_default_str()
            ->check(CLI::IsMember({"none", "target", "reference", "instruct"}));
        app.add_flag("--json", o->json, "With --decode: print {\"text\": ...} instead of the raw text (encode output is always JSON)");
        return [o] { return run(*o); };
    }});

}  // namespace tokenize_command
}  // namespace alexandria::cli
