#pragma once
// The texts `alexandria eval` speaks. The default set mixes what the seed's troubleshooting table needs: short
// vocalisations ("Oh!", "Hmm.", "Right.": the "short texts hang" row), ordinary sentences, and one long paragraph
// (runaways and rushed pacing show over long text). `--prompts FILE` replaces it.
#include <string>
#include <vector>

namespace alexandria::eval {

enum class PromptKind { Short, Sentence, Paragraph };
std::string prompt_kind_name(PromptKind k);  // "short" | "sentence" | "paragraph"
PromptKind parse_prompt_kind(const std::string& s);  // InputError otherwise

// short: at most 2 words and 12 spoken characters; paragraph: at least 200 spoken characters; else sentence.
PromptKind classify_prompt(const std::string& text);

struct Prompt {
    std::string id;    // "p01", ... (also the WAV file name stem)
    std::string text;
    PromptKind kind = PromptKind::Sentence;
};

std::vector<Prompt> default_prompts();

// A prompts file: one prompt per line, either plain text or a JSON object {"text": ..., "kind": ..., "id": ...}
// (kind and id optional). Blank lines and lines starting with '#' are skipped. InputError naming file and line for
// bad JSON, a missing or blank text, an unknown kind, a duplicate or unsafe id (ids become file names: letters,
// digits, '-', '_' and '.' only), or a file without any prompt.
std::vector<Prompt> read_prompts(const std::string& path);

}  // namespace alexandria::eval
