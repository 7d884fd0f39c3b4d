// Qwen2 byte-level BPE: loading (slow files or tokenizer.json), encoding, decoding.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/text/tokenizer.h"
#include "utf8.h"

namespace alexandria::text {

namespace detail {
std::string nfc_valid(std::string_view s);  // nfc.cpp
}

namespace {

namespace fs = std::filesystem;

// The Qwen2 split pattern, written for PCRE2. Hugging Face's engines (Oniguruma in `tokenizers`, the `regex`
// module in the slow tokenizer) give `\s` the Unicode White_Space property; PCRE2's \s under UCP also takes
// U+180E, so the class is spelled out instead.
#define QWEN_WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr const char* kSplitPattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
    "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+"
    "|\\p{N}"
    "| ?[^" QWEN_WS "\\p{L}\\p{N}]+[\\r\\n]*"
    "|[" QWEN_WS "]*[\\r\\n]+"
    "|[" QWEN_WS "]+(?![^" QWEN_WS "])"
    "|[" QWEN_WS "]+";
#undef QWEN_WS
// The same pattern as tokenizer.json writes it; a tokenizer.json with any other split is refused.
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

struct ByteMap {
    std::string to_unicode[256];
    int16_t from_unicode[0x144];  // code points U+0000..U+0143 → byte, -1 if unused
    ByteMap() {
        std::fill(std::begin(from_unicode), std::end(from_unicode), int16_t(-1));
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
            utf8::append(to_unicode[b], cp);
            from_unicode[cp] = int16_t(b);
        }
    }
};
const ByteMap& byte_map() {
    static const ByteMap m;
    return m;
}

// string → id, open addressing over one arena of key bytes (the real vocabulary has 151,643 entries; a node
// per entry made loading several times slower).
class TokenTable {
public:
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
        arena_.reserve(n * 8);
    }
    const int32_t* find(std::string_view key) const {
        if (nslots() == 0) return nullptr;
        const uint64_t h = hash(key);
        const Slot* slots = slot_data();
        const char* arena = arena_data();
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots[i];
            if (s.value < 0) return nullptr;
            if (s.hash == uint32_t(h) && s.len == key.size() && std::memcmp(arena + s.off, key.data(), s.len) == 0)
                return &s.value;
        }
    }
    // Inserts or overwrites; returns the key's offset in the arena.
    uint32_t insert(std::string_view key, int32_t value) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
        const uint64_t h = hash(key);
        for (size_t i = size_t(h) & mask_;; i = (i + 1) & mask_) {
            Slot& s = slots_[i];
            if (s.value < 0) {
                s = Slot{uint32_t(arena_.size()), uint32_t(key.size()), value, uint32_t(h)};
                arena_.append(key.data(), key.size());
                ++count_;
                return s.off;
            }
            if (s.hash == uint32_t(h) && s.len == key.size() && std::memcmp(arena_.data() + s.off, key.data(), s.len) == 0) {
                s.value = value;
                return s.off;
            }
        }
    }
    size_t size() const { return count_; }
    std::string_view key_at(uint32_t off, uint32_t len) const { return std::string_view(arena_data() + off, len); }
    // The table as bytes (TableCache), and back; false when the bytes are not a table.
    void save(std::string& out) const {
        const size_t padded = (arena_.size() + 7) / 8 * 8;  // the slots that follow stay 8-byte aligned
        put_u64(out, count_);
        put_u64(out, padded);
        out.append(arena_);
        out.append(padded - arena_.size(), '\0');
        put_u64(out, slots_.size());
        out.append(reinterpret_cast<const char*>(slots_.data()), slots_.size() * sizeof(Slot));
    }
    // Points the table at a saved one in memory that outlives it (a mapped cache file): nothing is copied.
    bool view(std::string_view& in) {
        uint64_t count = 0, arena = 0, slots = 0;
        if (!get_u64(in, count) || !get_u64(in, arena) || in.size() < arena) return false;
        const char* arena_at = in.data();
        in.remove_prefix(arena);
        if (!get_u64(in, slots) || slots == 0 || (slots & (slots - 1)) != 0 || in.size() / sizeof(Slot) < slots) return false;
        if (reinterpret_cast<uintptr_t>(in.data()) % alignof(Slot) != 0) return false;
        const Slot* slots_at = reinterpret_cast<const Slot*>(in.data());
        in.remove_prefix(slots * sizeof(Slot));
        for (size_t i = 0; i < slots; ++i)
            if (slots_at[i].value >= 0 && uint64_t(slots_at[i].off) + slots_at[i].len > arena) return false;
        arena_view_ = arena_at;
        slots_view_ = slots_at;
        nslots_view_ = slots;
        mask_ = slots - 1;
        count_ = count;
        return true;
    }
    static void put_u64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
    static bool get_u64(std::string_view& in, uint64_t& v) {
        if (in.size() < 8) return false;
        std::memcpy(&v, in.data(), 8);
        in.remove_prefix(8);
        return true;
    }
    template <typename F>
    void for_each(F&& f) const {
        const Slot* slots = slot_data();
        for (size_t i = 0; i < nslots(); ++i)
            if (slots[i].value >= 0) f(std::string_view(arena_data() + slots[i].off, slots[i].len), slots[i].value, slots[i].off);
    }

private:
    struct Slot {
        uint32_t off, len;
        int32_t value;  // -1: empty
        uint32_t hash;
    };
    static uint64_t hash(std::string_view k) {
        uint64_t h = 1469598103934665603ull;  // FNV-1a, then a final mix for the low bits
        for (unsigned char c : k) h = (h ^ c) * 1099511628211ull;
        return h ^ (h >> 29);
    }
    void rehash(size_t cap) {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(cap, Slot{0, 0, -1, 0});
        mask_ = cap - 1;
        for (const Slot& s : old) {
            if (s.value < 0) continue;
            const uint64_t h = hash(std::string_view(arena_.data() + s.off, s.len));
            size_t i = size_t(h) & mask_;
            while (slots_[i].value >= 0) i = (i + 1) & mask_;
            slots_[i] = s;
        }
    }
    const char* arena_data() const { return arena_view_ ? arena_view_ : arena_.data(); }
    const Slot* slot_data() const { return slots_view_ ? slots_view_ : slots_.data(); }
    size_t nslots() const { return slots_view_ ? nslots_view_ : slots_.size(); }
    std::string arena_;
    std::vector<Slot> slots_;
    const char* arena_view_ = nullptr;  // set by view(): the table lives in a mapped cache file
    const Slot* slots_view_ = nullptr;
    size_t nslots_view_ = 0;
    size_t mask_ = 0, count_ = 0;
};

// A flat JSON object of string → non-negative integer, parsed directly (vocab.json is 2.7 MB).
void parse_vocab_json(const std::string& text, const std::string& path, TokenTable& out) {
    size_t i = 0;
    const size_t n = text.size();
    const auto fail = [&](const std::string& why) -> void {
        throw InputError(path + ": " + why + " at byte " + std::to_string(i));
    };
    const auto ws = [&] {
        while (i < n && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t')) ++i;
    };
    const auto hex4 = [&](size_t at) -> uint32_t {
        if (at + 4 > n) fail("truncated \\u escape");
        uint32_t v = 0;
        for (size_t k = at; k < at + 4; ++k) {
            const char c = text[k];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
            else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
            else fail("bad \\u escape");
        }
        return v;
    };
    if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;
    ws();
    if (i >= n || text[i] != '{') fail("expected a JSON object of token → id");
    ++i;
    ws();
    if (i < n && text[i] == '}') { ++i; ws(); if (i != n) fail("unexpected text after the object"); return; }
    std::string key;
    for (;;) {
        ws();
        if (i >= n || text[i] != '"') fail("expected a quoted token");
        ++i;
        key.clear();
        for (;;) {
            if (i >= n) fail("unterminated string");
            const char c = text[i];
            if (c == '"') { ++i; break; }
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') { key.push_back(c); ++i; continue; }
            if (i + 1 >= n) fail("unterminated escape");
            const char e = text[i + 1];
            i += 2;
            switch (e) {
                case '"': key.push_back('"'); break;
                case '\\': key.push_back('\\'); break;
                case '/': key.push_back('/'); break;
                case 'b': key.push_back('\b'); break;
                case 'f': key.push_back('\f'); break;
                case 'n': key.push_back('\n'); break;
                case 'r': key.push_back('\r'); break;
                case 't': key.push_back('\t'); break;
                case 'u': {
                    uint32_t cp = hex4(i);
                    i += 4;
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (i + 6 > n || text[i] != '\\' || text[i + 1] != 'u') fail("unpaired surrogate escape");
                        const uint32_t lo = hex4(i + 2);
                        if (lo < 0xDC00 || lo > 0xDFFF) fail("unpaired surrogate escape");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                        fail("unpaired surrogate escape");
                    }
                    utf8::append(key, cp);
                    break;
                }
                default: fail("bad escape");
            }
        }
        ws();
        if (i >= n || text[i] != ':') fail("expected ':'");
        ++i;
        ws();
        if (i >= n || text[i] < '0' || text[i] > '9') fail("the id of \"" + key + "\" is not a non-negative integer");
        int64_t v = 0;
        while (i < n && text[i] >= '0' && text[i] <= '9') {
            v = v * 10 + (text[i++] - '0');
            if (v > 0x7FFFFFF) fail("the id of \"" + key + "\" is out of range");
        }
        if (i < n && (text[i] == '.' || text[i] == 'e' || text[i] == 'E')) fail("the id of \"" + key + "\" is not an integer");
        out.insert(key, int32_t(v));
        ws();
        if (i < n && text[i] == ',') { ++i; continue; }
        if (i < n && text[i] == '}') { ++i; break; }
        fail("expected ',' or '}'");
    }
    ws();
    if (i != n) fail("unexpected text after the object");
}

// (left id, right id) → rank and merged id, open addressing.
class MergeTable {
public:
    struct Entry {
        uint64_t key;  // kEmpty when unused
        int32_t rank;
        int32_t id;
    };
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    void reserve(size_t n) {
        size_t cap = 16;
        while (cap < n * 2) cap <<= 1;
        if (cap > slots_.size()) rehash(cap);
    }
    const Entry* find(int32_t a, int32_t b) const {
        const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
        const Entry* slots = entries();
        for (size_t i = slot(key);; i = (i + 1) & mask_) {
            const Entry& e = slots[i];
            if (e.key == key) return &e;
            if (e.key == kEmpty) return nullptr;
        }
    }
    void insert(int32_t a, int32_t b, int32_t rank, int32_t id) {
        if ((count_ + 1) * 2 > slots_.size()) rehash(std::max<size_t>(16, slots_.size() * 2));
        const uint64_t key = (uint64_t(uint32_t(a)) << 32) | uint32_t(b);
        for (size_t i = slot(key);; i = (i + 1) & mask_) {
            Entry& e = slots_[i];
            if (e.key == key) { e.rank = rank; e.id = id; return; }
            if (e.key == kEmpty) { e = Entry{key, rank, id}; ++count_; return; }
        }
    }

    bool ids_below(int32_t n) const {
        const Entry* slots = entries();
        for (size_t i = 0; i < nentries(); ++i)
            if (const Entry& e = slots[i]; e.key != kEmpty && (e.id < 0 || e.id >= n || int32_t(e.key >> 32) >= n || int32_t(uint32_t(e.key)) >= n))
                return false;
        return true;
    }
    void save(std::string& out) const {
        TokenTable::put_u64(out, count_);
        TokenTable::put_u64(out, slots_.size());
        out.append(reinterpret_cast<const char*>(slots_.data()), slots_.size() * sizeof(Entry));
    }
    bool view(std::string_view& in) {
        uint64_t count = 0, slots = 0;
        if (!TokenTable::get_u64(in, count) || !TokenTable::get_u64(in, slots)) return false;
        if (slots == 0 || (slots & (slots - 1)) != 0 || in.size() / sizeof(Entry) < slots) return false;
        if (reinterpret_cast<uintptr_t>(in.data()) % alignof(Entry) != 0) return false;
        view_ = reinterpret_cast<const Entry*>(in.data());
        nview_ = slots;
        in.remove_prefix(slots * sizeof(Entry));
        mask_ = slots - 1;
        count_ = count;
        return true;
    }

private:
    size_t slot(uint64_t key) const { return size_t((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }
    void rehash(size_t cap) {
        std::vector<Entry> old = std::move(slots_);
        slots_.assign(cap, Entry{kEmpty, 0, 0});
        mask_ = cap - 1;
        for (const Entry& e : old) {
            if (e.key == kEmpty) continue;
            size_t i = slot(e.key);
            while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
            slots_[i] = e;
        }
    }
    const Entry* entries() const { return view_ ? view_ : slots_.data(); }
    size_t nentries() const { return view_ ? nview_ : slots_.size(); }
    std::vector<Entry> slots_ = std::vector<Entry>(16, Entry{kEmpty, 0, 0});
    const Entry* view_ = nullptr;  // set by view(): the table lives in a mapped cache file
    size_t nview_ = 0;
    size_t mask_ = 15, count_ = 0;
};

bool is_whitespace_cp(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

struct Tokenizer::Impl {
    std::shared_ptr<const void> table_file;              // the mapped table cache vocab and merges point into
    TokenTable vocab;                                    // byte-level token → id
    int32_t size = 0;                                    // largest id + 1
    std::vector<uint8_t> is_added;                       // id → 1 for added tokens
    // id → token string ("" for gaps) and id → the bytes it stands for: only decoding needs them, so they are
    // built on first use (300,000 small strings are a fifth of the loading time).
    struct Strings {
        std::vector<std::string> tokens, bytes;
    };
    mutable std::once_flag strings_once;
    mutable Strings strings_;
    const Strings& strings() const;
    MergeTable merges;                                   // (left id, right id) → rank, merged id
    size_t merge_count = 0;
    int32_t byte_ids[256];
    std::vector<AddedToken> added;
    std::unordered_map<std::string, int32_t> added_by_content;
    // Added tokens grouped by first byte, longest first, for leftmost-longest matching.
    std::vector<std::vector<const AddedToken*>> added_by_first = std::vector<std::vector<const AddedToken*>>(256);
    bool nfc = true;

    pcre2_code* regex = nullptr;

    mutable std::mutex cache_mutex;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
    static constexpr size_t kCacheCapacity = 1 << 16;
    static constexpr size_t kCacheMaxPiece = 256;

    ~Impl() {
        if (regex) pcre2_code_free(regex);
    }

    void finish(const std::string& source);
    // Adds the next merge; "" when fine, else what is wrong (the caller adds where).
    std::string add_merge(std::string_view left, std::string_view right);
    std::string merge_buf;
    void encode_segment(std::string_view text, std::vector<int32_t>& out) const;
    void bpe(std::string_view piece, std::vector<int32_t>& out) const;
    void bpe_uncached(std::string_view piece, std::vector<int32_t>& out) const;
    template <typename F>
    void split(std::string_view normalized, F&& on_piece) const;
};

const Tokenizer::Impl::Strings& Tokenizer::Impl::strings() const {
    std::call_once(strings_once, [&] {
        const ByteMap& bm = byte_map();
        strings_.tokens.assign(size_t(size), std::string());
        strings_.bytes.assign(size_t(size), std::string());
        vocab.for_each([&](std::string_view tok, int32_t id, uint32_t) {
            strings_.tokens[size_t(id)] = tok;
            std::string& bytes = strings_.bytes[size_t(id)];
            for (size_t i = 0; i < tok.size();) {
                utf8::Step st = utf8::step(tok, i);
                if (st.ok && st.cp < 0x144 && bm.from_unicode[st.cp] >= 0) {
                    bytes.push_back(static_cast<char>(bm.from_unicode[st.cp]));
                } else {
                    bytes.append(tok, i, st.length);  // not a byte-level character: kept as its own text
                }
                i += st.length;
            }
        });
        for (const auto& a : added) {
            strings_.tokens[size_t(a.id)] = a.content;
            strings_.bytes[size_t(a.id)] = a.content;
        }
    });
    return strings_;
}

std::string Tokenizer::Impl::add_merge(std::string_view left, std::string_view right) {
    merge_buf.assign(left);
    merge_buf.append(right);
    const int32_t *a = vocab.find(left), *b = vocab.find(right), *c = vocab.find(merge_buf);
    if (!a) return "token \"" + std::string(left) + "\" is not in the vocabulary";
    if (!b) return "token \"" + std::string(right) + "\" is not in the vocabulary";
    if (!c) return "merged token \"" + merge_buf + "\" is not in the vocabulary";
    // A repeated pair keeps its last rank, as Hugging Face's rank table (a dict built in order) does.
    merges.insert(*a, *b, static_cast<int32_t>(merge_count), *c);
    ++merge_count;
    return std::string();
}

void Tokenizer::Impl::finish(const std::string& source) {
    const ByteMap& bm = byte_map();
    for (int b = 0; b < 256; ++b) {
        const int32_t* it = vocab.find(bm.to_unicode[b]);
        if (!it) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "0x%02X", b);
            throw InputError(source + ": the vocabulary lacks the byte-level token for byte " + hex);
        }
        byte_ids[b] = *it;
    }
    int32_t max_id = -1;
    vocab.for_each([&](std::string_view, int32_t id, uint32_t) { max_id = std::max(max_id, id); });
    for (auto& a : added) max_id = std::max(max_id, a.id);
    size = max_id + 1;
    is_added.assign(size_t(size), 0);
    std::sort(added.begin(), added.end(), [](const AddedToken& x, const AddedToken& y) { return x.id < y.id; });
    for (auto& a : added) {
        if (a.content.empty()) throw InputError(source + ": added token " + std::to_string(a.id) + " is empty");
        check_utf8(a.content, source + ": added token " + std::to_string(a.id));
        is_added[size_t(a.id)] = 1;
        added_by_content[a.content] = a.id;
    }
    for (auto& a : added) added_by_first[static_cast<uint8_t>(a.content[0])].push_back(&a);
    for (auto& v : added_by_first)
        std::stable_sort(v.begin(), v.end(), [](const AddedToken* x, const AddedToken* y) {
            return x->content.size() > y->content.size();
        });

    int err = 0;
    PCRE2_SIZE erroff = 0;
    regex = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kSplitPattern), PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &erroff, nullptr);
    if (!regex) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw Error(std::string("pre-tokenizer regex failed to compile: ") + reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(regex, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if JIT is unavailable
}

namespace {
struct MatchState {
    pcre2_match_data* md = nullptr;
    pcre2_match_context* mctx = nullptr;
    pcre2_jit_stack* stack = nullptr;
    MatchState() {
        md = pcre2_match_data_create(1, nullptr);
        mctx = pcre2_match_context_create(nullptr);
        stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
        pcre2_jit_stack_assign(mctx, nullptr, stack);
    }
    ~MatchState() {
        pcre2_jit_stack_free(stack);
        pcre2_match_context_free(mctx);
        pcre2_match_data_free(md);
    }
};
MatchState& match_state() {
    thread_local MatchState s;
    return s;
}
}  // namespace

template <typename F>
void Tokenizer::Impl::split(std::string_view text, F&& on_piece) const {
    MatchState& ms = match_state();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0;
    while (pos < text.size()) {
        int rc = pcre2_match(regex, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, ms.md, ms.mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            on_piece(text.substr(pos));  // unreachable for this pattern (every character matches), kept as a gap
            return;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw Error(std::string("pre-tokenizer regex failed: ") + reinterpret_cast<char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(ms.md);
        const size_t start = ov[0], end = ov[1];
        if (start > pos) on_piece(text.substr(pos, start - pos));
        if (end > start) {
            on_piece(text.substr(start, end - start));
            pos = end;
        } else {
            // An empty match cannot happen with this pattern; step one character so the loop always advances.
            const size_t len = utf8::step(text, start).length;
            on_piece(text.substr(start, len));
            pos = start + len;
        }
    }
}

void Tokenizer::Impl::bpe_uncached(std::string_view piece, std::vector<int32_t>& out) const {
    struct Symbol {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    struct Candidate {
        int32_t rank;
        int32_t pos;
        int32_t left, right;  // the pair this candidate was made for, to detect stale entries
        int32_t merged;
    };
    const size_t n = piece.size();
    std::vector<Symbol> sym(n);
    for (size_t i = 0; i < n; ++i)
        sym[i] = Symbol{byte_ids[static_cast<uint8_t>(piece[i])], int32_t(i) - 1,
                        i + 1 < n ? int32_t(i + 1) : -1, true};
    // Min-heap on (rank, position): the lowest-ranked pair first, the leftmost among equals.
    const auto later = [](const Candidate& x, const Candidate& y) {
        return x.rank != y.rank ? x.rank > y.rank : x.pos > y.pos;
    };
    std::vector<Candidate> heap;
    heap.reserve(n);
    const auto consider = [&](int32_t i) {
        if (i < 0) return;
        const int32_t j = sym[size_t(i)].next;
        if (j < 0) return;
        const MergeTable::Entry* m = merges.find(sym[size_t(i)].id, sym[size_t(j)].id);
        if (!m) return;
        heap.push_back(Candidate{m->rank, i, sym[size_t(i)].id, sym[size_t(j)].id, m->id});
        std::push_heap(heap.begin(), heap.end(), later);
    };
    for (size_t i = 0; i + 1 < n; ++i) consider(int32_t(i));
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), later);
        const Candidate c = heap.back();
        heap.pop_back();
        Symbol& s = sym[size_t(c.pos)];
        if (!s.alive || s.next < 0 || s.id != c.left || sym[size_t(s.next)].id != c.right) continue;
        Symbol& t = sym[size_t(s.next)];
        s.id = c.merged;
        t.alive = false;
        s.next = t.next;
        if (s.next >= 0) sym[size_t(s.next)].prev = c.pos;
        consider(s.prev);
        consider(c.pos);
    }
    for (int32_t i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(sym[size_t(i)].id);
}

void Tokenizer::Impl::bpe(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.size() == 1) {
        out.push_back(byte_ids[static_cast<uint8_t>(piece[0])]);
        return;
    }
    if (piece.size() > kCacheMaxPiece) {
        bpe_uncached(piece, out);
        return;
    }
    std::string key(piece);
    {
        std::lock_guard<std::mutex> lock(cache_mutex);
        auto it = cache.find(key);
        if (it != cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = out.size();
    bpe_uncached(piece, out);
    std::vector<int32_t> ids(out.begin() + std::ptrdiff_t(first), out.end());
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kCacheCapacity) cache.clear();
    cache.emplace(std::move(key), std::move(ids));
}

void Tokenizer::Impl::encode_segment(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    const std::string normalized = nfc ? detail::nfc_valid(text) : std::string(text);
    split(normalized, [&](std::string_view piece) { bpe(piece, out); });
}

// ---------------------------------------------------------------------------------------------------------
// Loading

namespace {

std::string read_or_throw(const fs::path& p) { return io::read_file(p); }

nlohmann::json parse_json(const std::string& text, const std::string& path) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {  // syntax, and numbers out of range (8e458)
        throw InputError(path + ": not valid JSON (" + e.what() + ")");
    }
}

AddedToken added_from_json(const nlohmann::json& j, int64_t id, const std::string& where) {
    if (!j.is_object()) throw InputError(where + ": expected an object");
    auto content = j.find("content");
    if (content == j.end() || !content->is_string()) throw InputError(where + ".content: missing or not a string");
    if (id < 0 || id > 0x7FFFFFF) throw InputError(where + ": id " + std::to_string(id) + " out of range");
    const auto flag = [&](const char* name) {
        auto it = j.find(name);
        if (it == j.end() || it->is_null()) return false;
        if (!it->is_boolean()) throw InputError(where + "." + name + ": expected true or false");
        return it->get<bool>();
    };
    if (flag("single_word"))
        throw InputError(where + ".single_word: true is not supported (no Qwen tokenizer uses it)");
    AddedToken t;
    t.id = static_cast<int32_t>(id);
    t.content = content->get<std::string>();
    t.special = flag("special");
    t.lstrip = flag("lstrip");
    t.rstrip = flag("rstrip");
    return t;
}

void add_added(Tokenizer::Impl& impl, AddedToken t, const std::string& where) {
    for (auto& a : impl.added) {
        if (a.id == t.id) {
            if (a.content != t.content)
                throw InputError(where + ": id " + std::to_string(t.id) + " is both \"" + a.content + "\" and \"" +
                                 t.content + "\"");
            return;
        }
    }
    // Hugging Face lets an added token reuse a vocabulary id (same string); a different string there would
    // make decode ambiguous.
    if (const int32_t* v = impl.vocab.find(t.content); v && *v != t.id)
        throw InputError(where + ": \"" + t.content + "\" is already vocabulary id " + std::to_string(*v));
    impl.added.push_back(std::move(t));
}

void load_added_from_config(Tokenizer::Impl& impl, const std::string& path) {
    const nlohmann::json cfg = parse_json(read_or_throw(path), path);
    if (!cfg.is_object()) throw InputError(path + ": expected a JSON object");
    auto dec = cfg.find("added_tokens_decoder");
    if (dec == cfg.end()) return;
    if (!dec->is_object()) throw InputError(path + ": added_tokens_decoder: expected an object");
    for (auto it = dec->begin(); it != dec->end(); ++it) {
        const std::string where = path + ": added_tokens_decoder." + it.key();
        int64_t id;
        try {
            size_t used = 0;
            id = std::stoll(it.key(), &used);
            if (used != it.key().size()) throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            throw InputError(where + ": the key must be an integer id");
        }
        add_added(impl, added_from_json(it.value(), id, where), where);
    }
}

void load_added_tokens_json(Tokenizer::Impl& impl, const std::string& path) {
    const nlohmann::json j = parse_json(read_or_throw(path), path);
    if (!j.is_object()) throw InputError(path + ": expected an object of token → id");
    for (auto it = j.begin(); it != j.end(); ++it) {
        if (!it->is_number_integer()) throw InputError(path + ": \"" + it.key() + "\": expected an integer id");
        AddedToken t;
        t.id = it->get<int32_t>();
        t.content = it.key();
        t.special = true;
        add_added(impl, std::move(t), path + ": \"" + it.key() + "\"");
    }
}

}  // namespace

namespace {

// Parsing the real vocab.json and merges.txt (4.3 MB; 151,643 tokens, 151,387 merges) and hashing them into the
// tables takes ~150 ms, which every `tokenize` and every synthesis start would pay. The finished tables are kept
// in a binary file under the user's cache folder, named by the two files' paths, sizes and modification times,
// and read back in a few milliseconds. A missing, stale or damaged cache file is rebuilt; one that cannot be
// written (read-only home) is simply not kept.
constexpr char kTableCacheMagic[8] = {'A', 'L', 'X', 'T', 'O', 'K', '0', '1'};

// A checksum over the cache's payload, 8 bytes at a time (a damaged file must be rebuilt, not half-trusted).
uint64_t payload_checksum(std::string_view b) {
    uint64_t h = 0x9E3779B97F4A7C15ull;
    size_t i = 0;
    for (; i + 8 <= b.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, b.data() + i, 8);
        h = (h ^ w) * 0x100000001B3ull;
        h ^= h >> 32;
    }
    for (; i < b.size(); ++i) h = (h ^ uint8_t(b[i])) * 0x100000001B3ull;
    return h;
}

fs::path table_cache_path(const std::string& vocab_json, const std::string& merges_txt) {
    std::string dir;
    if (const char* c = std::getenv("ALEXANDRIA_CACHE"); c && *c) dir = c;
    else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) dir = std::string(x) + "/alexandria";
    else if (const char* h = std::getenv("HOME"); h && *h) dir = std::string(h) + "/.cache/alexandria";
    else return {};
    std::error_code size_ec;
    if (fs::file_size(vocab_json, size_ec) < (256u << 10) || size_ec) return {};  // small ones parse at once
    std::string id = "v1";
    for (const std::string& f : {vocab_json, merges_txt}) {
        std::error_code ec;
        const auto canon = fs::weakly_canonical(f, ec);
        const auto size = fs::file_size(f, ec);
        if (ec) return {};
        const auto mtime = fs::last_write_time(f, ec);
        if (ec) return {};
        id += "|" + canon.string() + "|" + std::to_string(size) + "|" +
              std::to_string(mtime.time_since_epoch().count());
    }
    return fs::path(dir) / "tokenizer" / (io::hash_string(id) + ".bin");
}

// Maps the cache file and points the tables into it (they are used in place: a lookup touches a few pages, not
// 18 MB). Returns the mapping, which must outlive the tables, or null when there is no valid cache.
std::shared_ptr<const void> load_table_cache(const fs::path& path, TokenTable& vocab, MergeTable& merges,
                                             size_t& merge_count) {
    if (path.empty()) return nullptr;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 16) {
        ::close(fd);
        return nullptr;
    }
    const size_t size = size_t(st.st_size);
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    ::close(fd);
    if (map == MAP_FAILED) return nullptr;
    std::shared_ptr<const void> mapping(map, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
    std::string_view in(static_cast<const char*>(map), size);
    uint64_t count = 0, sum = 0;
    if (std::memcmp(in.data(), kTableCacheMagic, 8) != 0) return nullptr;
    std::memcpy(&sum, in.data() + in.size() - 8, 8);
    in = in.substr(8, in.size() - 16);
    if (payload_checksum(in) != sum) return nullptr;
    TokenTable v;
    MergeTable m;
    if (!TokenTable::get_u64(in, count) || !v.view(in) || !m.view(in) || !in.empty() || v.size() == 0) return nullptr;
    vocab = std::move(v);
    merges = std::move(m);
    merge_count = size_t(count);
    return mapping;
}

void save_table_cache(const fs::path& path, const TokenTable& vocab, const MergeTable& merges, size_t merge_count) {
    if (path.empty()) return;
    try {
        std::string out(kTableCacheMagic, 8);
        TokenTable::put_u64(out, merge_count);
        vocab.save(out);
        merges.save(out);
        TokenTable::put_u64(out, payload_checksum(std::string_view(out).substr(8)));
        fs::create_directories(path.parent_path());
        io::write_atomic(path, [&](const fs::path& tmp) {
            std::FILE* f = std::fopen(tmp.c_str(), "wb");
            if (!f) throw Error("cannot write " + tmp.string());
            const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
            if (std::fclose(f) != 0 || !ok) throw Error("cannot write " + tmp.string());
        });
    } catch (const std::exception&) {
        // A cache that cannot be written only costs the next load its parsing time.
    }
}

// vocab.json and merges.txt into the tables (defined below).
void parse_slow_files(Tokenizer::Impl& impl, const std::string& vocab_json, const std::string& merges_txt);

}  // namespace

Tokenizer Tokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt,
                                const std::string& config_json) {
    auto impl = std::make_shared<Impl>();
    const fs::path cache = table_cache_path(vocab_json, merges_txt);
    if ((impl->table_file = load_table_cache(cache, impl->vocab, impl->merges, impl->merge_count))) {
        int32_t max_id = -1;
        impl->vocab.for_each([&](std::string_view, int32_t id, uint32_t) { max_id = std::max(max_id, id); });
        if (!impl->merges.ids_below(max_id + 1)) impl = std::make_shared<Impl>();  // damaged: parse instead
    }
    if (impl->vocab.size() == 0) {
        parse_slow_files(*impl, vocab_json, merges_txt);
        save_table_cache(cache, impl->vocab, impl->merges, impl->merge_count);
    }
    if (!config_json.empty()) {
        load_added_from_config(*impl, config_json);
    } else {
        const fs::path beside = fs::path(vocab_json).parent_path() / "added_tokens.json";
        if (fs::exists(beside)) load_added_tokens_json(*impl, beside.string());
    }
    impl->finish(vocab_json);
    return Tokenizer(impl);
}

namespace {

void parse_slow_files(Tokenizer::Impl& tables, const std::string& vocab_json, const std::string& merges_txt) {
    Tokenizer::Impl* impl = &tables;
    {
        const std::string text = read_or_throw(vocab_json);
        check_utf8(text, vocab_json);
        impl->vocab.reserve(text.size() / 16);
        parse_vocab_json(text, vocab_json, impl->vocab);
        if (impl->vocab.size() == 0) throw InputError(vocab_json + ": the vocabulary is empty");
    }
    {
        const std::string text = read_or_throw(merges_txt);
        impl->merges.reserve(text.size() / 10);
        size_t line_no = 0, pos = 0;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            if (end == std::string::npos) end = text.size();
            std::string_view line(text.data() + pos, end - pos);
            pos = end + 1;
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            // Hugging Face strips each line and skips blank ones and a leading "#version" header.
            while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
            while (!line.empty() && (line.back() == ' ' || line.back() == '\t')) line.remove_suffix(1);
            if (line.empty() || (line_no == 1 && line.substr(0, 9) == "#version:")) continue;
            const size_t sp = line.find(' ');
            if (sp == std::string_view::npos || line.find(' ', sp + 1) != std::string_view::npos)
                throw InputError(merges_txt + ":" + std::to_string(line_no) + ": expected two tokens separated by one space");
            const std::string bad = impl->add_merge(line.substr(0, sp), line.substr(sp + 1));
            if (!bad.empty()) throw InputError(merges_txt + ":" + std::to_string(line_no) + ": " + bad);
        }
    }
}

}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
    const nlohmann::json j = parse_json(read_or_throw(path), path);
    if (!j.is_object()) throw InputError(path + ": expected a JSON object");
    auto impl = std::make_shared<Impl>();
    auto model = j.find("model");
    if (model == j.end() || !model->is_object()) throw InputError(path + ": model: missing");
    if (model->value("type", std::string("BPE")) != "BPE")
        throw InputError(path + ": model.type: only BPE is supported");
    for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        auto it = model->find(k);
        if (it != model->end() && it->is_string() && !it->get<std::string>().empty())
            throw InputError(path + ": model." + k + ": not supported by a Qwen2 tokenizer");
    }
    if (model->value("byte_fallback", false)) throw InputError(path + ": model.byte_fallback: not supported");
    if (model->contains("dropout") && !(*model)["dropout"].is_null())
        throw InputError(path + ": model.dropout: not supported");

    // Normalizer: NFC or none.
    auto norm = j.find("normalizer");
    if (norm == j.end() || norm->is_null()) {
        impl->nfc = false;
    } else if (norm->is_object() && norm->value("type", std::string()) == "NFC") {
        impl->nfc = true;
    } else {
        throw InputError(path + ": normalizer: only NFC (or none) is supported");
    }
    // Pre-tokenizer: the Qwen2 split followed by ByteLevel without its own regex.
    {
        auto pre = j.find("pre_tokenizer");
        bool ok = false;
        if (pre != j.end() && pre->is_object() && pre->value("type", std::string()) == "Sequence") {
            const auto& list = (*pre)["pretokenizers"];
            if (list.is_array() && list.size() == 2) {
                const auto& s = list[0];
                const auto& b = list[1];
                ok = s.value("type", std::string()) == "Split" && s.contains("pattern") &&
                     s["pattern"].is_object() && s["pattern"].value("Regex", std::string()) == kQwen2Regex &&
                     s.value("behavior", std::string()) == "Isolated" && !s.value("invert", false) &&
                     b.value("type", std::string()) == "ByteLevel" && !b.value("add_prefix_space", false) &&
                     !b.value("use_regex", true);
            }
        }
        if (!ok)
            throw InputError(path + ": pre_tokenizer: not the Qwen2 pre-tokenizer (Split on the Qwen2 regex, then "
                                    "ByteLevel without prefix space or regex)");
    }
    auto vocab = model->find("vocab");
    if (vocab == model->end() || !vocab->is_object()) throw InputError(path + ": model.vocab: missing");
    impl->vocab.reserve(vocab->size() + 16);
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
        if (!it->is_number_integer() || it->get<int64_t>() < 0)
            throw InputError(path + ": model.vocab.\"" + it.key() + "\": expected a non-negative integer id");
        impl->vocab.insert(it.key(), it->get<int32_t>());
    }
    auto merges = model->find("merges");
    if (merges == model->end() || !merges->is_array()) throw InputError(path + ": model.merges: missing");
    impl->merges.reserve(merges->size() + 16);
    size_t index = 0;
    for (const auto& m : *merges) {
        const auto where_of = [&, at = index++] { return path + ": model.merges[" + std::to_string(at) + "]"; };
        if (m.is_string()) {
            const std::string s = m.get<std::string>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                throw InputError(where_of() + ": expected \"left right\"");
            const std::string bad = impl->add_merge(std::string_view(s).substr(0, sp), std::string_view(s).substr(sp + 1));
            if (!bad.empty()) throw InputError(where_of() + ": " + bad);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            const std::string bad = impl->add_merge(m[0].get<std::string>(), m[1].get<std::string>());
            if (!bad.empty()) throw InputError(where_of() + ": " + bad);
        } else {
            throw InputError(where_of() + ": expected \"left right\" or [left, right]");
        }
    }
    auto added = j.find("added_tokens");
    if (added != j.end() && !added->is_null()) {
        if (!added->is_array()) throw InputError(path + ": added_tokens: expected an array");
        size_t i = 0;
        for (const auto& a : *added) {
            const std::string where = path + ": added_tokens[" + std::to_string(i++) + "]";
            if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer())
                throw InputError(where + ".id: missing or not an integer");
            add_added(*impl, added_from_json(a, a["id"].get<int64_t>(), where), where);
        }
    }
    impl->finish(path);
    return Tokenizer(impl);
}

Tokenizer Tokenizer::from_folder(const std::string& dir) {
    const fs::path d(dir);
    if (!fs::is_directory(d)) throw InputError(dir + ": not a directory");
    const fs::path vocab = d / "vocab.json", merges = d / "merges.txt", config = d / "tokenizer_config.json",
                   fast = d / "tokenizer.json";
    // The released Qwen3-TTS folders carry the "slow" files; tokenizer.json is the fallback.
    if (fs::exists(vocab) && fs::exists(merges))
        return from_files(vocab.string(), merges.string(), fs::exists(config) ? config.string() : std::string());
    if (fs::exists(fast)) return from_tokenizer_json(fast.string());
    throw InputError(dir + ": no tokenizer found (expected vocab.json + merges.txt, or tokenizer.json)");
}

// ---------------------------------------------------------------------------------------------------------
// Encoding and decoding

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
    check_utf8(text);
    const Impl& im = *impl_;
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 8);
    size_t seg = 0;  // start of the text not yet encoded
    size_t i = 0;
    while (i < text.size()) {
        const auto& cands = im.added_by_first[static_cast<uint8_t>(text[i])];
        const AddedToken* hit = nullptr;
        for (const AddedToken* a : cands)
            if (text.compare(i, a->content.size(), a->content) == 0) { hit = a; break; }
        if (!hit) { ++i; continue; }
        size_t start = i, end = i + hit->content.size();
        // lstrip/rstrip: the token swallows the whitespace beside it.
        if (hit->lstrip) {
            while (start > seg) {
                size_t k = start - 1;
                while (k > seg && (static_cast<uint8_t>(text[k]) & 0xC0) == 0x80) --k;
                if (!is_whitespace_cp(utf8::step(text, k).cp)) break;
                start = k;
            }
        }
        if (hit->rstrip) {
            while (end < text.size()) {
                utf8::Step st = utf8::step(text, end);
                if (!is_whitespace_cp(st.cp)) break;
                end += st.length;
            }
        }
        im.encode_segment(text.substr(seg, start - seg), out);
        out.push_back(hit->id);
        seg = i = end;
    }
    im.encode_segment(text.substr(seg), out);
    return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
    check_utf8(text);
    std::vector<std::string> pieces;
    const std::string normalized = impl_->nfc ? detail::nfc_valid(text) : std::string(text);
    impl_->split(normalized, [&](std::string_view p) { pieces.emplace_back(p); });
    return pieces;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
    const Impl& im = *impl_;
    const Impl::Strings& str = im.strings();
    std::string out, run;
    for (int32_t id : ids) {
        if (id < 0 || size_t(id) >= str.tokens.size() || str.tokens[size_t(id)].empty())
            throw InputError("token id " + std::to_string(id) + " is not in the tokenizer's vocabulary");
        if (im.is_added[size_t(id)]) {
            // Like Hugging Face's slow decode: byte runs are decoded separately from added tokens.
            utf8::append_lossy(out, run);
            run.clear();
            if (skip_special) {
                auto it = std::find_if(im.added.begin(), im.added.end(), [&](const AddedToken& a) { return a.id == id; });
                if (it != im.added.end() && it->special) continue;
            }
            out += str.tokens[size_t(id)];
        } else {
            run += str.bytes[size_t(id)];
        }
    }
    utf8::append_lossy(out, run);
    return out;
}

std::string Tokenizer::id_to_token(int32_t id) const {
    const Impl::Strings& str = impl_->strings();
    if (id < 0 || size_t(id) >= str.tokens.size() || str.tokens[size_t(id)].empty())
        throw InputError("token id " + std::to_string(id) + " is not in the tokenizer's vocabulary");
    return str.tokens[size_t(id)];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
    const std::string key(token);
    if (auto it = impl_->added_by_content.find(key); it != impl_->added_by_content.end()) return it->second;
    if (const int32_t* v = impl_->vocab.find(key)) return *v;
    return std::nullopt;
}

int32_t Tokenizer::added_token_id(std::string_view content) const {
    auto it = impl_->added_by_content.find(std::string(content));
    if (it == impl_->added_by_content.end())
        throw InputError("the tokenizer has no added token \"" + std::string(content) + "\"");
    return it->second;
}

int32_t Tokenizer::vocab_size() const { return impl_->size; }
size_t Tokenizer::merge_count() const { return impl_->merge_count; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return impl_->added; }
bool Tokenizer::normalizes_nfc() const { return impl_->nfc; }

const std::string& byte_to_unicode(uint8_t b) { return byte_map().to_unicode[b]; }

}  // namespace alexandria::text
