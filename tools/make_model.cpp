// Writes a random-weight Qwen3-TTS model folder in the released layout: config.json, generation_config.json,
// model.safetensors, the text tokenizer files and speech_tokenizer/. `tiny` is for tests and the demo (CPU,
// seconds); `0.6b` and `1.7b` have the real shapes, for GPU benchmarks.
//
//   make_model --preset tiny|tiny-1.7b|tiny-0.6b|0.6b|1.7b --type base|custom_voice|voice_design --out DIR
//              [--seed N] [--dtype bf16|f32] [--tokenizer REAL_TOKENIZER_DIR] [--no-codec]
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "alexandria/codec/codec.h"
#include "alexandria/io/error.h"
#include "alexandria/model/random_model.h"
#include "alexandria/text/tokenizer.h"

namespace fs = std::filesystem;
using namespace alexandria;

int main(int argc, char** argv) {
    CLI::App app{"Write a random-weight Qwen3-TTS model folder in the released file layout"};
    model::RandomModelSpec spec;
    std::string out, tokenizer_dir;
    bool no_codec = false;
    app.add_option("--preset", spec.size,
                   "model size: tiny (tests), tiny-1.7b / tiny-0.6b (the two real shapes at tiny widths, parity "
                   "suite), 0.6b or 1.7b (real shapes)")
        ->capture_default_str()
        ->check(CLI::IsMember({"tiny", "tiny-1.7b", "tiny-0.6b", "0.6b", "1.7b"}));
    app.add_option("--type", spec.type, "checkpoint type")
        ->capture_default_str()
        ->check(CLI::IsMember({"base", "custom_voice", "voice_design"}));
    app.add_option("--out", out, "output folder (created; existing files of the same names are replaced)")->required();
    app.add_option("--seed", spec.seed, "random seed (same seed, same files)")->capture_default_str();
    app.add_option("--dtype", spec.dtype, "weight dtype of model.safetensors")
        ->capture_default_str()
        ->check(CLI::IsMember({"bf16", "f32"}));
    app.add_option("--tokenizer", tokenizer_dir,
                   "copy vocab.json, merges.txt and tokenizer_config.json from this folder instead of writing the "
                   "small test tokenizer (use the real one for full-size presets)")
        ->check(CLI::ExistingDirectory);
    app.add_flag("--no-codec", no_codec, "do not write speech_tokenizer/");
    CLI11_PARSE(app, argc, argv);

    try {
        auto t0 = std::chrono::steady_clock::now();
        model::write_random_model(out, spec);  // validates the preset before creating anything
        if (tokenizer_dir.empty()) {
            text::write_tiny_tokenizer(out);
        } else {
            for (const char* f : {"vocab.json", "merges.txt", "tokenizer_config.json"}) {
                fs::path src = fs::path(tokenizer_dir) / f;
                if (!fs::exists(src)) throw InputError(src.string() + ": not found (--tokenizer needs " + f + ")");
                fs::copy_file(src, fs::path(out) / f, fs::copy_options::overwrite_existing);
            }
        }
        if (!no_codec)
            codec::write_random_codec((fs::path(out) / "speech_tokenizer").string(), model::is_tiny_size(spec.size) ? "tiny" : "full",
                                      spec.seed);
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "make_model: wrote %s %s (%s, seed %llu) to %s in %.1f s\n", spec.size.c_str(),
                     spec.type.c_str(), spec.dtype.c_str(), static_cast<unsigned long long>(spec.seed), out.c_str(),
                     secs);
        return 0;
    } catch (const Error& e) {
        std::fprintf(stderr, "make_model: %s\n", e.what());
        return e.exit_code();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_model: %s\n", e.what());
        return 1;
    }
}
