// Any byte string must either parse into a header whose every tensor lies inside the buffer, or raise InputError.
#include <cstdint>
#include <cstdlib>

#include "alexandria/io/error.h"
#include "alexandria/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto f = alexandria::io::SafetensorsFile::from_memory(data, size, "fuzz");
        for (auto& t : f.tensors()) {
            const uint8_t* p = f.data(t);
            if (p < data || p + (t.end - t.begin) > data + size) std::abort();
            [[maybe_unused]] volatile uint8_t sink = 0;  // reads every byte the tensor claims
            for (uint64_t i = 0; i < t.end - t.begin; ++i) sink ^= p[i];
        }
    } catch (const alexandria::InputError&) {
    }
    return 0;
}
