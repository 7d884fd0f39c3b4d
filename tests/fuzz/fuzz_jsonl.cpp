// Any byte string as metadata.jsonl: every line is delivered or reported, nothing else escapes.
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/jsonl.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto path = alexandria::fuzz::write_input("metadata.jsonl", data, size);
    alexandria::io::read_jsonl(
        path,
        [](int, const nlohmann::json& o) {
            try {
                alexandria::io::require_string(o, "text", "fuzz");
                alexandria::io::optional_string(o, "audio_filepath", "fuzz");
            } catch (const alexandria::InputError&) {
            }
        },
        [](int, const std::string&) {});
    return 0;
}
