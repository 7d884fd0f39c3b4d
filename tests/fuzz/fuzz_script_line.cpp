// Any byte string as a synthesis script (lines.jsonl): read_script never throws for a readable file (bad lines
// become errors naming file:line:field), validate_script turns any bad line into one InputError, and every text
// that parses splits into non-empty chunks of at most max_chars code points.
#include <cstdint>
#include <cstdlib>

#include "alexandria/io/error.h"
#include "alexandria/synth/script.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace alexandria;
    if (size < 1) return 0;
    const int max_chars = 1 + data[0] % 64;
    auto path = fuzz::write_input("lines.jsonl", data + 1, size - 1);
    auto script = synth::read_script(path);
    for (const auto& e : script.errors)
        if (e.message.rfind(path + ":", 0) != 0) std::abort();  // every message names file:line
    try {
        synth::ScriptCheck check;
        check.voice = [](const std::string& v) {
            if (v != "narrator") throw InputError("voice '" + v + "': not a --voice name");
        };
        check.speakers = {"ryan", "vivian"};
        synth::validate_script(script, check);
        if (!script.errors.empty()) std::abort();
    } catch (const InputError& e) {
        if (std::string(e.what()).rfind(path + ":", 0) != 0) std::abort();
    }
    for (const auto& l : script.lines) {
        auto chunks = synth::split_text(l.text, max_chars);
        if (chunks.empty()) std::abort();
        for (const auto& c : chunks)
            if (c.empty() || synth::count_code_points(c) > size_t(max_chars)) std::abort();
    }
    return 0;
}
