#pragma once
// The Qwen2 byte-level BPE text tokenizer, identical to Hugging Face's Qwen2Tokenizer / Qwen2TokenizerFast
// (spec/model-talker.md §2). Encoding, in Hugging Face's order:
//   1. added tokens (tokenizer_config.json `added_tokens_decoder`) are found first, leftmost-longest, and are
//      never split; the text between them goes through steps 2-5;
//   2. NFC normalisation (Unicode 15.0 tables);
//   3. the Qwen2 pre-tokenizer regex (PCRE2, JIT) splits it into pieces;
//   4. each piece's UTF-8 bytes are mapped through GPT-2's byte-to-unicode table;
//   5. BPE merges by rank (lowest first, leftmost on ties), with a cache of recent pieces.
// No BOS/EOS is added. Invalid UTF-8 is an InputError naming the byte offset. A Tokenizer is immutable once
// loaded, cheap to copy (shared), and encode/decode may run on several threads at once.
//
// Where Hugging Face's two implementations differ, this follows the fast one (what qwen_tts loads): NFC is
// applied to the text between added tokens, not to the whole string first as the slow tokenizer does (they
// differ only when a combining mark directly follows an added token's closing ">"). `\s` in the split regex is
// the Unicode White_Space property, as in Oniguruma and Python's `regex`.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace alexandria::text {

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool special = false;  // Hugging Face's flag: skipped by decode(..., skip_special=true)
    bool lstrip = false;   // absorbs whitespace to its left when matched
    bool rstrip = false;   // absorbs whitespace to its right when matched
};

class Tokenizer {
public:
    // A model folder (or a tokenizer folder): vocab.json + merges.txt with the added tokens of
    // tokenizer_config.json (`added_tokens_decoder`) or added_tokens.json; when vocab.json/merges.txt are
    // absent, tokenizer.json (the Hugging Face "fast" format). InputError naming the file and field when
    // something is missing or malformed.
    static Tokenizer from_folder(const std::string& dir);
    // The "slow" files directly. `config_json` may be empty (then no added tokens unless added_tokens.json
    // sits beside vocab.json).
    static Tokenizer from_files(const std::string& vocab_json, const std::string& merges_txt,
                                const std::string& config_json);
    // A Hugging Face tokenizer.json. Only the Qwen2 pipeline is accepted (BPE model, ByteLevel, the Qwen2
    // split regex, NFC or no normalizer); anything else is an InputError rather than silently different ids.
    static Tokenizer from_tokenizer_json(const std::string& path);

    std::vector<int32_t> encode(std::string_view utf8) const;
    // Text of the ids: byte-level tokens back to bytes, added tokens as their content; byte sequences that are
    // not valid UTF-8 become U+FFFD (one per maximal invalid subpart, like Python's errors="replace").
    // An id outside the vocabulary is an InputError.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

    // The token string of an id (byte-level form, e.g. "Ġthe"), or the added token's content.
    std::string id_to_token(int32_t id) const;
    // Id of a token string (byte-level form) or added token content.
    std::optional<int32_t> token_to_id(std::string_view token) const;
    // The id of an added token by content, e.g. "<|im_start|>"; InputError when the tokenizer lacks it.
    int32_t added_token_id(std::string_view content) const;

    // Largest id + 1 (vocab plus added tokens).
    int32_t vocab_size() const;
    size_t merge_count() const;
    const std::vector<AddedToken>& added_tokens() const;
    // Whether step 2 (NFC) is applied: always for the slow files; as declared in a tokenizer.json.
    bool normalizes_nfc() const;

    // Steps 2-3 only, for tests and tools: the pieces of a text that holds no added tokens.
    std::vector<std::string> pre_tokenize(std::string_view utf8) const;

    struct Impl;

private:
    explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<const Impl> impl_;  // immutable after loading (the piece cache is internally locked)
};

// NFC of valid UTF-8 (InputError naming the byte offset otherwise).
std::string nfc(std::string_view utf8);
// InputError "<what>: invalid UTF-8 at byte offset N" unless `s` is valid UTF-8 (no overlongs, surrogates or
// code points above U+10FFFF).
void check_utf8(std::string_view s, const std::string& what = "text");
// GPT-2's byte-to-unicode map: the UTF-8 string standing for byte b in byte-level tokens.
const std::string& byte_to_unicode(uint8_t b);

// Writes a small but real byte-level BPE tokenizer (vocab.json, merges.txt, tokenizer_config.json) into `dir`
// for tiny random test models: the 256 byte tokens at ids 0..255, a few hundred merges learned
// deterministically from built-in English text (so "assistant" and "user" are single tokens, as the prompt
// slicing needs), and the real Qwen3-TTS added tokens at their real ids 151643-151675.
void write_tiny_tokenizer(const std::string& dir);

}  // namespace alexandria::text
