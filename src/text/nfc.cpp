// NFC (Unicode Standard Annex #15): canonical decomposition, canonical ordering, canonical composition,
// with Hangul handled algorithmically. Only the chunks that can change are rebuilt; a code point that NFC
// cannot touch nor join to its left starts a new independent chunk.
#include <algorithm>

#include "alexandria/io/error.h"
#include "alexandria/text/tokenizer.h"
#include "unicode_tables.h"
#include "utf8.h"

namespace alexandria::text {
namespace {

constexpr uint32_t SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
constexpr uint32_t LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp >= SBase && cp < SBase + SCount) {
        const uint32_t s = cp - SBase;
        out.push_back(LBase + s / NCount);
        out.push_back(VBase + (s % NCount) / TCount);
        if (s % TCount) out.push_back(TBase + s % TCount);
        return;
    }
    const auto* begin = unicode::decompositions;
    const auto* end = begin + unicode::decomposition_count;
    const auto* it = std::lower_bound(begin, end, cp,
                                      [](const unicode::Decomposition& d, uint32_t c) { return d.cp < c; });
    if (it != end && it->cp == cp) {
        out.insert(out.end(), unicode::decomposition_data + it->offset,
                   unicode::decomposition_data + it->offset + it->length);
    } else {
        out.push_back(cp);
    }
}

// The primary composite of a + b, or 0.
uint32_t compose(uint32_t a, uint32_t b) {
    if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
        return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
    if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
        return a + (b - TBase);
    const uint64_t key = (uint64_t(a) << 21) | b;
    const auto* begin = unicode::compositions;
    const auto* end = begin + unicode::composition_count;
    const auto* it = std::lower_bound(begin, end, key,
                                      [](const unicode::Composition& c, uint64_t k) { return c.key < k; });
    return (it != end && it->key == key) ? it->composite : 0;
}

// Normalises one chunk of code points and appends it as UTF-8.
void normalize_chunk(const std::vector<uint32_t>& cps, std::vector<uint32_t>& buf, std::string& out) {
    buf.clear();
    for (uint32_t cp : cps) decompose(cp, buf);
    // Canonical ordering: stable sort of each run of non-starters by combining class.
    for (size_t i = 0; i < buf.size();) {
        if (unicode::combining_class(buf[i]) == 0) { ++i; continue; }
        size_t j = i;
        while (j < buf.size() && unicode::combining_class(buf[j]) != 0) ++j;
        std::stable_sort(buf.begin() + i, buf.begin() + j, [](uint32_t x, uint32_t y) {
            return unicode::combining_class(x) < unicode::combining_class(y);
        });
        i = j;
    }
    // Canonical composition.
    size_t n = 0;           // composed length, written in place
    long starter = -1;      // index of the last starter in buf[0..n)
    int last_ccc = -1;      // class of buf[n-1] when n-1 != starter
    for (size_t i = 0; i < buf.size(); ++i) {
        const uint32_t c = buf[i];
        const int cc = unicode::combining_class(c);
        if (starter >= 0) {
            const bool adjacent = (static_cast<long>(n) - 1 == starter);
            const bool blocked = !adjacent && (last_ccc == 0 || last_ccc >= cc);
            if (!blocked) {
                if (uint32_t comp = compose(buf[starter], c)) {
                    buf[starter] = comp;
                    continue;
                }
            }
        }
        if (cc == 0) {
            starter = static_cast<long>(n);
            last_ccc = -1;
        } else {
            last_ccc = cc;
        }
        buf[n++] = c;
    }
    for (size_t i = 0; i < n; ++i) utf8::append(out, buf[i]);
}

}  // namespace

void check_utf8(std::string_view s, const std::string& what) {
    const size_t bad = utf8::first_invalid(s);
    if (bad != std::string_view::npos) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(s[bad])));
        throw InputError(what + ": invalid UTF-8 at byte offset " + std::to_string(bad) + " (byte " + hex + ")");
    }
}

namespace detail {
// NFC of text already known to be valid UTF-8.
std::string nfc_valid(std::string_view s) {
    // Fast path: nothing at or above U+0300 can change (every such byte sequence starts with >= 0xCC).
    size_t i = 0;
    for (; i < s.size(); ++i)
        if (static_cast<uint8_t>(s[i]) >= 0xCC) break;
    if (i == s.size()) return std::string(s);

    std::string out;
    out.reserve(s.size() + 8);
    std::vector<uint32_t> chunk, buf;
    size_t chunk_start = 0;   // byte offset where the current chunk begins
    bool chunk_unstable = false;
    size_t pos = 0;
    const auto flush = [&](size_t end) {
        if (chunk_unstable) normalize_chunk(chunk, buf, out);
        else out.append(s.data() + chunk_start, end - chunk_start);
        chunk.clear();
        chunk_unstable = false;
        chunk_start = end;
    };
    while (pos < s.size()) {
        const utf8::Step st = utf8::step(s, pos);
        const bool unstable = unicode::nfc_unstable(st.cp);
        if (!unstable && pos != chunk_start) flush(pos);
        chunk.push_back(st.cp);
        chunk_unstable = chunk_unstable || unstable;
        pos += st.length;
    }
    flush(pos);
    return out;
}
}  // namespace detail

std::string nfc(std::string_view utf8_text) {
    check_utf8(utf8_text);
    return detail::nfc_valid(utf8_text);
}

}  // namespace alexandria::text
