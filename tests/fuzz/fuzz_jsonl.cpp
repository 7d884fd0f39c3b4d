// Any byte string as metadata.jsonl: every line is delivered or reported, nothing else escapes.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "alexandria/io/error.h"
#include "alexandria/io/jsonl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static std::string path = "/tmp/alexandria-fuzz-" + std::to_string(getpid()) + ".jsonl";
    FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(data, 1, size, f);
    std::fclose(f);
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
