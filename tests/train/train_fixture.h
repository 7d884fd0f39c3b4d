#pragma once
// A tiny random Base model folder (weights, tokenizer, speech_tokenizer/) made once per test process, and fresh
// copies of the bundled tiny dataset (prepare writes its cache inside the dataset folder, so tests never use the
// repository's copy directly).
#include <filesystem>
#include <string>

#include "alexandria/codec/codec.h"
#include "alexandria/model/random_model.h"
#include "alexandria/text/tokenizer.h"
#include "support/test_support.h"

namespace alexandria::test {

inline const fs::path& tiny_model_dir() {
    static TempDir dir;
    static bool made = [] {
        model::RandomModelSpec spec;
        spec.size = "tiny";
        spec.type = "base";
        spec.seed = 7;
        spec.dtype = "f32";
        model::write_random_model(dir.path.string(), spec);
        text::write_tiny_tokenizer(dir.path.string());
        codec::write_random_codec((dir.path / "speech_tokenizer").string(), "tiny", 11);
        return true;
    }();
    (void)made;
    return dir.path;
}

inline fs::path copy_tiny_voice(const fs::path& into) {
    fs::path src = source_dir() / "examples" / "tiny-voice";
    fs::path dst = into / "tiny-voice";
    fs::create_directories(dst);
    for (auto& e : fs::directory_iterator(src))
        if (e.is_regular_file()) fs::copy_file(e.path(), dst / e.path().filename());
    return dst;
}

}  // namespace alexandria::test
