// Any byte string as the lines of an LJSpeech metadata.csv, each parsed as a row (both with and without the
// normalized column): a usable row has a file and a non-empty valid UTF-8 transcript, anything else says why.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "alexandria/dataset/import.h"
#include "alexandria/io/jsonl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace alexandria;
    std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        for (bool normalized : {false, true}) {
            auto row = dataset::parse_ljspeech_row(line, lineno, normalized);
            if (row.skip || !row.error.empty()) continue;
            if (row.file.empty() || row.text.empty() || !io::valid_utf8(row.text)) std::abort();
            if (row.text.front() == ' ' || row.text.back() == ' ' || row.text.find('\n') != std::string::npos)
                std::abort();
        }
    }
    return 0;
}
