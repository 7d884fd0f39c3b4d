// A small, real byte-level BPE tokenizer for tiny random test models. Its merges are learned here, by the
// textbook BPE procedure over a fixed English text, so the files are deterministic and self-consistent
// (every merge's parts and result are in the vocabulary, ranks in creation order).
#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "alexandria/io/files.h"
#include "alexandria/text/tokenizer.h"

namespace alexandria::text {
namespace {

constexpr int kMerges = 320;

// The real Qwen3-TTS added tokens (tokenizer_config.json `added_tokens_decoder`): id, content, special.
struct AddedFact {
    int id;
    const char* content;
    bool special;
};
constexpr AddedFact kAdded[] = {
    {151643, "<|endoftext|>", true},        {151644, "<|im_start|>", true},
    {151645, "<|im_end|>", true},           {151646, "<|object_ref_start|>", true},
    {151647, "<|object_ref_end|>", true},   {151648, "<|box_start|>", true},
    {151649, "<|box_end|>", true},          {151650, "<|quad_start|>", true},
    {151651, "<|quad_end|>", true},         {151652, "<|vision_start|>", true},
    {151653, "<|vision_end|>", true},       {151654, "<|vision_pad|>", true},
    {151655, "<|image_pad|>", true},        {151656, "<|video_pad|>", true},
    {151657, "<tool_call>", false},         {151658, "</tool_call>", false},
    {151659, "<|fim_prefix|>", false},      {151660, "<|fim_middle|>", false},
    {151661, "<|fim_suffix|>", false},      {151662, "<|fim_pad|>", false},
    {151663, "<|repo_name|>", false},       {151664, "<|file_sep|>", false},
    {151665, "<tool_response>", false},     {151666, "</tool_response>", false},
    {151667, "<think>", false},             {151668, "</think>", false},
    {151669, "<|audio_start|>", true},      {151670, "<|audio_end|>", true},
    {151671, "<tts_pad>", true},            {151672, "<tts_text_bos>", true},
    {151673, "<tts_text_eod>", true},       {151674, "<tts_text_bos_single>", true},
    {151675, "<|audio_pad|>", true},
};

constexpr const char* kTrainingText =
    "The assistant reads the story to the user. The user listens while the assistant speaks, and then the "
    "user asks the assistant for another chapter of the book. It was the best of times, it was the worst of "
    "times, it was the age of wisdom, it was the age of foolishness. There is a voice in the recording that "
    "sounds like the speaker, and the speaker is reading a long book about the sea, the ships and the people "
    "who sail them. She said that they would come in the morning, when the light was on the water and the "
    "birds were singing over the harbour. He thought about the question for a moment and then answered with "
    "a smile: \"I don't know, but we'll find out soon enough.\" Chapter one. Chapter two. Chapter three. "
    "This is a test of the training data, with numbers like 12, 2024 and 3.5, and words that are used "
    "often: the, and, of, to, in, is, that, for, it, with, as, was, on, be, at, by, this, had, not, are, but, "
    "from, or, have, an, they, which, one, you, were, her, all, she, there, would, their, we, him, been, has, "
    "when, who, will, more, no, if, out, so, said, what, up, its, about, into, than, them, can, only, other.";

std::vector<std::string> training_words() {
    // Word starts carry their leading space, the way the Qwen2 split hands pieces to BPE.
    std::vector<std::string> words;
    std::string text(kTrainingText);
    size_t i = 0;
    while (i < text.size()) {
        size_t j = i + 1;
        while (j < text.size() && text[j] != ' ') ++j;
        words.push_back(text.substr(i, j - i));
        i = j;
    }
    return words;
}

// The vocabulary as it grows: byte tokens first, then one token per merge.
struct Vocab {
    nlohmann::ordered_json json = nlohmann::ordered_json::object();  // token → id, in id order
    std::map<std::string, int> ids;
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order

    void add_token(const std::string& t) {
        if (ids.count(t)) return;
        const int id = int(ids.size());
        ids[t] = id;
        json[t] = id;
    }
    void add_merge(const std::string& a, const std::string& b) {
        merges.emplace_back(a, b);
        add_token(a + b);
    }
};

// Byte tokens at ids 0..255 in the order of their byte-level characters, like the real vocabulary.
Vocab byte_vocab() {
    std::vector<uint32_t> order(256);
    for (int b = 0; b < 256; ++b) order[size_t(b)] = uint32_t(b);
    const auto cp_of = [](uint8_t b) {
        const std::string& s = byte_to_unicode(b);
        if (s.size() == 1) return uint32_t(uint8_t(s[0]));
        return (uint32_t(uint8_t(s[0]) & 0x1F) << 6) | (uint8_t(s[1]) & 0x3F);
    };
    std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return cp_of(uint8_t(x)) < cp_of(uint8_t(y)); });
    Vocab v;
    for (int i = 0; i < 256; ++i) v.add_token(byte_to_unicode(uint8_t(order[size_t(i)])));
    return v;
}

// Every adjacent (a, b) in syms joined into one symbol, left to right.
void apply_merge(std::vector<std::string>& syms, const std::string& a, const std::string& b) {
    std::vector<std::string> out;
    for (size_t i = 0; i < syms.size(); ++i) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
            out.push_back(a + b);
            ++i;
        } else {
            out.push_back(syms[i]);
        }
    }
    syms = std::move(out);
}

// BPE training on the built-in text: kMerges times, the most frequent adjacent pair, ties to the smallest
// (left, right) strings.
void learn_merges(Vocab& v) {
    std::map<std::vector<std::string>, int> words;
    for (const std::string& w : training_words()) {
        std::vector<std::string> syms;
        for (unsigned char c : w) syms.push_back(byte_to_unicode(c));
        ++words[syms];
    }
    while (int(v.merges.size()) < kMerges) {
        std::map<std::pair<std::string, std::string>, int> counts;
        for (auto& [syms, n] : words)
            for (size_t i = 0; i + 1 < syms.size(); ++i) counts[{syms[i], syms[i + 1]}] += n;
        const std::pair<std::string, std::string>* best = nullptr;
        int best_n = 0;
        for (auto& [pair, n] : counts)
            if (n > best_n) { best = &pair; best_n = n; }
        if (!best) break;
        const auto pick = *best;
        v.add_merge(pick.first, pick.second);
        std::map<std::vector<std::string>, int> next;
        for (auto& [syms, n] : words) {
            std::vector<std::string> s = syms;
            apply_merge(s, pick.first, pick.second);
            next[s] += n;
        }
        words = std::move(next);
    }
}

// The prompt slicing needs "assistant" and "user" to be single tokens (as in the real vocabulary): finish them
// with extra merges, appended after the learned ones so earlier ranks are unchanged.
void finish_prompt_words(Vocab& v) {
    for (const char* word : {"assistant", "user"}) {
        std::vector<std::string> syms;
        for (const char* p = word; *p; ++p) syms.push_back(byte_to_unicode(uint8_t(*p)));
        for (auto& [a, b] : v.merges) apply_merge(syms, a, b);
        while (syms.size() > 1) {
            v.add_merge(syms[0], syms[1]);
            syms[0] += syms[1];
            syms.erase(syms.begin() + 1);
        }
    }
}

// tokenizer_config.json: the released checkpoints' settings and added tokens.
nlohmann::ordered_json tokenizer_config() {
    nlohmann::ordered_json decoder = nlohmann::ordered_json::object();
    for (const AddedFact& a : kAdded) {
        decoder[std::to_string(a.id)] = {{"content", a.content}, {"lstrip", false}, {"normalized", false},
                                         {"rstrip", false}, {"single_word", false}, {"special", a.special}};
    }
    return {
        {"add_bos_token", false},
        {"add_prefix_space", false},
        {"added_tokens_decoder", decoder},
        {"bos_token", nullptr},
        {"clean_up_tokenization_spaces", false},
        {"eos_token", "<|im_end|>"},
        {"errors", "replace"},
        {"model_max_length", 131072},
        {"pad_token", "<|endoftext|>"},
        {"split_special_tokens", false},
        {"tokenizer_class", "Qwen2Tokenizer"},
        {"unk_token", nullptr},
    };
}

}  // namespace

void write_tiny_tokenizer(const std::string& dir) {
    namespace fs = std::filesystem;
    fs::create_directories(dir);
    Vocab v = byte_vocab();
    learn_merges(v);
    finish_prompt_words(v);
    std::string merges_txt = "#version: 0.2\n";
    for (auto& [a, b] : v.merges) merges_txt += a + " " + b + "\n";
    const fs::path d(dir);
    io::write_file_atomic(d / "vocab.json", v.json.dump() + "\n");
    io::write_file_atomic(d / "merges.txt", merges_txt);
    io::write_file_atomic(d / "tokenizer_config.json", tokenizer_config().dump(2) + "\n");
}

}  // namespace alexandria::text
