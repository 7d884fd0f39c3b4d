// Replays every committed corpus through its fuzz target without libFuzzer (ctest: fuzz_corpora), so inputs that
// once crashed stay fixed in any build. usage: fuzz_replay CORPUS_DIR [TARGET...]
// CORPUS_DIR holds one folder per target (corpus/<target>/...). An escaping exception fails the run; a sanitizer
// or an abort() in a target's own checks ends it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <vector>

#define FUZZ_ENTRY(name) extern "C" int fuzz_entry_##name(const uint8_t*, size_t);
FUZZ_ENTRY(jsonl)
FUZZ_ENTRY(safetensors)
FUZZ_ENTRY(model_config)
FUZZ_ENTRY(adapter)
FUZZ_ENTRY(audio)
FUZZ_ENTRY(tokenizer)
FUZZ_ENTRY(script_line)
FUZZ_ENTRY(ljspeech_row)

namespace fs = std::filesystem;

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR [TARGET...]\n", argv[0]);
        return 2;
    }
    const std::map<std::string, int (*)(const uint8_t*, size_t)> targets = {
        {"jsonl", fuzz_entry_jsonl},       {"safetensors", fuzz_entry_safetensors},
        {"model_config", fuzz_entry_model_config}, {"adapter", fuzz_entry_adapter},
        {"audio", fuzz_entry_audio},       {"tokenizer", fuzz_entry_tokenizer},
        {"script_line", fuzz_entry_script_line},   {"ljspeech_row", fuzz_entry_ljspeech_row}};
    const fs::path root = argv[1];
    std::set<std::string> only(argv + 2, argv + argc);
    int failures = 0;
    for (const auto& [name, fn] : targets) {
        if (!only.empty() && !only.count(name)) continue;
        const fs::path dir = root / name;
        if (!fs::is_directory(dir)) {
            std::fprintf(stderr, "%s: no corpus folder for target %s\n", dir.c_str(), name.c_str());
            ++failures;
            continue;
        }
        std::vector<fs::path> files;
        for (const auto& de : fs::directory_iterator(dir))
            if (de.is_regular_file()) files.push_back(de.path());
        std::sort(files.begin(), files.end());
        for (const auto& f : files) {
            std::ifstream in(f, std::ios::binary);
            std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            try {
                fn(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
            } catch (const std::exception& e) {
                std::fprintf(stderr, "%s: escaped: %s\n", f.c_str(), e.what());
                ++failures;
            }
        }
        std::fprintf(stderr, "%-13s %zu inputs\n", name.c_str(), files.size());
    }
    for (const auto& de : fs::directory_iterator(root))
        if (de.is_directory() && !targets.count(de.path().filename().string())) {
            std::fprintf(stderr, "%s: a corpus folder without a target\n", de.path().c_str());
            ++failures;
        }
    if (failures) std::fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
