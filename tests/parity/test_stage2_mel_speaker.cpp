// Stage 2: the mel spectrogram of the real clips (shared/reference/voices) and the speaker embedding the Base
// models compute from them, against the official mel_spectrogram() and extract_speaker_embedding().
#include <catch2/catch.hpp>

#include "alexandria/io/audio.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/mel.h"
#include "alexandria/model/speaker_encoder.h"
#include "parity_util.h"

using namespace alexandria;
using namespace alexandria::parity;

TEST_CASE("stage 2: mel spectrogram of the real clips", "[parity][stage2]") {
    auto want = load_tensors("stage2_mel.safetensors");
    const auto& clips = manifest().at("stages").at("2").at("mel");
    REQUIRE(clips.size() >= 2);
    for (const auto& [name, c] : clips.items()) {
        io::Audio a = io::read_audio((shared_dir() / c.at("clip").get<std::string>()).string());
        REQUIRE(a.sample_rate == 24000);
        REQUIRE(int64_t(a.samples.size()) == c.at("samples").get<int64_t>());
        torch::Tensor wav = torch::from_blob(a.samples.data(), {int64_t(a.samples.size())}, torch::kFloat32).clone();
        torch::Tensor mel = model::mel_spectrogram(wav)[0];  // [frames, 128]
        INFO("clip " << name);
        REQUIRE(mel.size(0) == c.at("frames").get<int64_t>());
        PARITY_CHECK_CLOSE("2 mel", name + " head", mel.slice(0, 0, 400), want.at(name + ".head"));
        PARITY_CHECK_CLOSE("2 mel", name + " tail", mel.slice(0, mel.size(0) - 100), want.at(name + ".tail"));
        PARITY_CHECK_CLOSE("2 mel", name + " frame sums", mel.to(torch::kFloat64).sum(-1),
                           want.at(name + ".frame_sum"));
    }
}

TEST_CASE("stage 2: speaker embedding of the real clips on every Base model", "[parity][stage2]") {
    int checked = 0;
    for (const auto& name : model_names()) {
        const auto& e = model_entry(name);
        if (!e.contains("speaker_clips")) continue;
        auto loaded = model::load_model(model_dir(name).string(), torch::kCPU, torch::kFloat32);
        auto want = load_tensors(fs::path(name) / "stage2_speaker.safetensors");
        for (const auto& clip : e.at("speaker_clips")) {
            const std::string rel = manifest().at("stages").at("2").at("mel").at(clip.get<std::string>()).at("clip");
            io::Audio a = io::read_audio((shared_dir() / rel).string());
            torch::Tensor got = model::speaker_embedding(loaded.model->speaker_encoder, a.samples);
            PARITY_CHECK_CLOSE("2 speaker embedding", name + " " + clip.get<std::string>(), got,
                               want.at(clip.get<std::string>()));
            ++checked;
        }
    }
    CHECK(checked >= 4);
}
