// Any byte string as an audio file (WAV, FLAC, or whatever libsndfile recognises) through our reader: a header or
// an InputError from probe_audio; decoded finite mono samples, exactly as many as the header promises, or an
// InputError from read_audio (truncated files, huge declared sizes, zero channels, NaNs).
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "alexandria/io/audio.h"
#include "alexandria/io/error.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace alexandria;
    auto path = fuzz::write_input("clip.wav", data, size);
    try {
        auto info = io::probe_audio(path);
        auto a = io::read_audio(path);
        if (a.samples.empty() || a.sample_rate != info.sample_rate) std::abort();
        // mp3 headers only estimate their length; every other format must decode exactly what it declares
        if (int64_t(a.samples.size()) != info.frames && info.format.rfind("mp", 0) != 0) std::abort();
        for (float v : a.samples)
            if (!std::isfinite(v)) std::abort();
        io::audio_stats(a);
        // Resampling is part of every reader's path; bounded so a 1 Hz header does not make a fuzz run slow.
        if (double(a.samples.size()) * io::kModelSampleRate / a.sample_rate < 2e6)
            io::resample(a.samples, a.sample_rate, io::kModelSampleRate);
    } catch (const InputError&) {
    }
    return 0;
}
