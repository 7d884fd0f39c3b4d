#pragma once
// Unicode data for NFC, generated into unicode_tables.cpp (see tools/tokenizer-reference/gen_unicode_tables.py).
#include <cstddef>
#include <cstdint>

namespace alexandria::text::unicode {

struct Decomposition {
    uint32_t cp;
    uint16_t offset;  // into decomposition_data
    uint8_t length;   // full (recursive) canonical decomposition
};
struct Composition {
    uint64_t key;  // (first << 21) | second
    uint32_t composite;
};

extern const uint8_t ccc_index[0x110000 / 256];
extern const uint8_t ccc_blocks[][256];
extern const uint8_t unstable_index[0x110000 / 256];
extern const uint8_t unstable_blocks[][256];
extern const uint32_t decomposition_data[];
extern const Decomposition decompositions[];
extern const size_t decomposition_count;
extern const Composition compositions[];
extern const size_t composition_count;

inline uint8_t combining_class(uint32_t cp) { return ccc_blocks[ccc_index[cp >> 8]][cp & 0xFF]; }
// False when NFC can neither change the code point nor join it to what precedes it.
inline bool nfc_unstable(uint32_t cp) { return unstable_blocks[unstable_index[cp >> 8]][cp & 0xFF] != 0; }

}  // namespace alexandria::text::unicode
