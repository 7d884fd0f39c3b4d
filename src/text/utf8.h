#pragma once
// UTF-8 stepping shared by the tokenizer, NFC and decode.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace alexandria::text::utf8 {

struct Step {
    uint32_t cp;     // valid only when ok
    size_t length;   // bytes consumed; when !ok, the maximal invalid subpart (at least 1 byte)
    bool ok;
};

// One code point at s[i] under the Unicode well-formedness table (no overlongs, surrogates, > U+10FFFF).
inline Step step(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
    const uint8_t c = b(i);
    if (c < 0x80) return {c, 1, true};
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2; cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3; cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return {0, 1, false};
    }
    size_t k = 1;
    for (; k <= need; ++k) {
        if (i + k >= s.size()) return {0, k, false};
        const uint8_t t = b(i + k);
        const uint8_t l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
        if (t < l || t > h) return {0, k, false};
        cp = (cp << 6) | (t & 0x3F);
    }
    return {cp, need + 1, true};
}

inline void append(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

// Offset of the first invalid byte, or npos.
inline size_t first_invalid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // ASCII runs dominate real text; skip them eight bytes at a time.
        while (i + 8 <= s.size()) {
            uint64_t w;
            __builtin_memcpy(&w, s.data() + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= s.size()) break;
        Step st = step(s, i);
        if (!st.ok) return i;
        i += st.length;
    }
    return std::string_view::npos;
}

// Bytes → text, each maximal invalid subpart replaced by U+FFFD (Python's errors="replace").
inline void append_lossy(std::string& out, std::string_view bytes) {
    size_t i = 0;
    while (i < bytes.size()) {
        Step st = step(bytes, i);
        if (st.ok) out.append(bytes.data() + i, st.length);
        else out.append("\xEF\xBF\xBD");
        i += st.length;
    }
}

}  // namespace alexandria::text::utf8
