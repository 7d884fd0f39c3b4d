#pragma once
// Helpers shared by the fuzz targets: inputs reach the parsers through real files, as users' files do.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace alexandria::fuzz {

// A per-process scratch folder (several fuzzers may run at once), created on first use.
inline const std::filesystem::path& scratch() {
    static const std::filesystem::path dir = [] {
        auto p = std::filesystem::temp_directory_path() / ("alexandria-fuzz-" + std::to_string(getpid()));
        std::filesystem::create_directories(p);
        return p;
    }();
    return dir;
}

// Writes bytes to scratch()/name and returns the path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
    auto path = (scratch() / name).string();
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    return path;
}

// ../shared next to the source tree (the real tokenizer and configs), or $ALEXANDRIA_SHARED_DIR.
inline std::filesystem::path shared_dir() {
    if (const char* s = std::getenv("ALEXANDRIA_SHARED_DIR")) return s;
    return ALEXANDRIA_FUZZ_SHARED_DIR;
}

}  // namespace alexandria::fuzz
