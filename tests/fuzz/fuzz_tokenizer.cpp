// Any byte string as text to speak, through the real Qwen2 tokenizer (../shared/reference/text-tokenizer; the tiny
// test tokenizer when that is absent): ids, or an InputError for invalid UTF-8. Valid text must survive the round
// trip: decode(encode(x)) == NFC(x) whenever x holds no added token (those may strip the whitespace beside them).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "alexandria/io/error.h"
#include "alexandria/text/tokenizer.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace alexandria;
    static const text::Tokenizer tok = [] {
        auto real = fuzz::shared_dir() / "reference" / "text-tokenizer";
        if (std::filesystem::exists(real / "vocab.json")) return text::Tokenizer::from_folder(real.string());
        auto tiny = fuzz::scratch() / "tiny-tokenizer";
        text::write_tiny_tokenizer(tiny.string());
        return text::Tokenizer::from_folder(tiny.string());
    }();
    std::string_view s(reinterpret_cast<const char*>(data), size);
    try {
        auto ids = tok.encode(s);
        for (int32_t id : ids)
            if (id < 0 || id >= tok.vocab_size()) std::abort();
        if (s.find('<') == std::string_view::npos && tok.decode(ids) != text::nfc(s)) std::abort();
    } catch (const InputError&) {
    }
    return 0;
}
