// Chat templates and their id slices (spec/model-talker.md §2, §6.1, §7.1).
#include "alexandria/text/prompt.h"

#include "alexandria/io/error.h"

namespace alexandria::text {
namespace {
constexpr size_t kRole = 3;         // <|im_start|> assistant \n
constexpr size_t kTargetTail = 5;   // <|im_end|> \n <|im_start|> assistant \n
constexpr size_t kRefTail = 2;      // <|im_end|> \n
}  // namespace

std::string target_text_template(std::string_view text) {
    return "<|im_start|>assistant\n" + std::string(text) + "<|im_end|>\n<|im_start|>assistant\n";
}
std::string reference_text_template(std::string_view ref_text) {
    return "<|im_start|>assistant\n" + std::string(ref_text) + "<|im_end|>\n";
}
std::string instruct_template(std::string_view instruct) {
    return "<|im_start|>user\n" + std::string(instruct) + "<|im_end|>\n";
}

std::vector<int32_t> TargetTextIds::role_and_content() const {
    std::vector<int32_t> v(role);
    v.insert(v.end(), content.begin(), content.end());
    return v;
}

TargetTextIds encode_target_text(const Tokenizer& tok, std::string_view text) {
    TargetTextIds r;
    r.ids = tok.encode(target_text_template(text));
    if (r.ids.size() <= kRole + kTargetTail)
        throw InputError("the text to speak is empty (it gives no tokens)");
    r.role.assign(r.ids.begin(), r.ids.begin() + kRole);
    r.content.assign(r.ids.begin() + kRole, r.ids.end() - kTargetTail);
    return r;
}

std::vector<int32_t> encode_reference_text(const Tokenizer& tok, std::string_view ref_text) {
    const std::vector<int32_t> ids = tok.encode(reference_text_template(ref_text));
    if (ids.size() <= kRole + kRefTail)
        throw InputError("the reference text is empty (it gives no tokens)");
    return std::vector<int32_t>(ids.begin() + kRole, ids.end() - kRefTail);
}

std::vector<int32_t> encode_instruct(const Tokenizer& tok, std::string_view instruct) {
    if (instruct.empty()) throw InputError("the instruct text is empty");
    return tok.encode(instruct_template(instruct));
}

}  // namespace alexandria::text
