#pragma once
// The chat templates Qwen3-TTS wraps text in, and the id slices each prompt mode takes from them
// (spec/model-talker.md §2, §6.1, §7.1; upstream qwen3_tts_model.py W:263-270).
//
//   target text     "<|im_start|>assistant\n{text}<|im_end|>\n<|im_start|>assistant\n"
//                    ids = [im_start, assistant, \n] + content + [im_end, \n, im_start, assistant, \n]
//                    role    = ids[:3]     (prompt rows 0-2 of every mode)
//                    content = ids[3:-5]   (t_0..t_{M-1}: generation tails, training positions 8..7+M)
//                    training text_ids = ids[:-5] = role + content (§7.1, L = M + 3)
//   reference text  "<|im_start|>assistant\n{ref_text}<|im_end|>\n"
//                    content = ids[3:-2]   (r_0..r_{R-1} of the ICL prompt)
//   instruct        "<|im_start|>user\n{instruct}<|im_end|>\n"
//                    the WHOLE sequence, role and tail included (the instruct block)
//
// The slices are positional, exactly as upstream takes them: the role is assumed to be 3 tokens and the tail
// 5. A text starting with a newline merges with the role's "\n" (e.g. "\n\n" is one token), which shifts
// the slice exactly as it does upstream; these helpers keep upstream's behaviour rather than "fixing" it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "alexandria/text/tokenizer.h"

namespace alexandria::text {

// Ids the prompt layouts name directly (the real Qwen2 vocabulary; the tiny test tokenizer keeps the added
// tokens at the same ids).
namespace token_ids {
constexpr int32_t endoftext = 151643;
constexpr int32_t im_start = 151644;
constexpr int32_t im_end = 151645;
constexpr int32_t tts_pad = 151671;       // PAD of the text channel
constexpr int32_t tts_text_bos = 151672;  // BOS
constexpr int32_t tts_text_eod = 151673;  // EOSt
constexpr int32_t assistant = 77091;      // real vocab only
constexpr int32_t user = 872;             // real vocab only
constexpr int32_t newline = 198;          // real vocab only
}  // namespace token_ids

std::string target_text_template(std::string_view text);
std::string reference_text_template(std::string_view ref_text);
std::string instruct_template(std::string_view instruct);

struct TargetTextIds {
    std::vector<int32_t> ids;      // the whole template
    std::vector<int32_t> role;     // ids[:3]
    std::vector<int32_t> content;  // ids[3:-5]
    // ids[:-5]: the official fine-tuning `text_ids` (role + content).
    std::vector<int32_t> role_and_content() const;
};

// InputError when the text yields no content tokens (an empty text cannot be spoken).
TargetTextIds encode_target_text(const Tokenizer& tok, std::string_view text);
// ids[3:-2] of the reference-text template; InputError when empty.
std::vector<int32_t> encode_reference_text(const Tokenizer& tok, std::string_view ref_text);
// The whole instruct template; InputError when the instruct is empty.
std::vector<int32_t> encode_instruct(const Tokenizer& tok, std::string_view instruct);

}  // namespace alexandria::text
