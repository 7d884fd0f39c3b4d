#pragma once
// A tiny random Base model folder in the real layout (config, weights, tokenizer, speech_tokenizer/), a reference
// clip and a random LoRA adapter with a stored speaker vector, made once per test process.
#include <cmath>
#include <filesystem>

#include "alexandria/codec/codec.h"
#include "alexandria/io/audio.h"
#include "alexandria/io/safetensors.h"
#include "alexandria/model/checkpoint.h"
#include "alexandria/model/lora.h"
#include "alexandria/model/random_model.h"
#include "alexandria/synth/synthesizer.h"
#include "alexandria/text/tokenizer.h"
#include "support/test_support.h"

namespace alexandria::test {

struct TinySetup {
    TempDir tmp;
    std::string model, ref_wav, adapter;
    int64_t hidden = 0;

    TinySetup() {
        model = (tmp / "model").string();
        model::RandomModelSpec spec;
        spec.size = "tiny";
        spec.type = "base";
        spec.seed = 11;
        spec.dtype = "f32";  // so a merged f32 folder equals base + adapter bit for bit
        model::write_random_model(model, spec);
        text::write_tiny_tokenizer(model);
        codec::write_random_codec((fs::path(model) / "speech_tokenizer").string(), "tiny", 5);

        // 1.5 s of a voiced-ish signal as the reference clip.
        io::Audio a;
        for (int i = 0; i < 36000; ++i)
            a.samples.push_back(static_cast<float>(0.3 * std::sin(2 * M_PI * 140 * i / 24000.0) +
                                                   0.1 * std::sin(2 * M_PI * 1310 * i / 24000.0)));
        ref_wav = (tmp / "ref.wav").string();
        io::write_audio(ref_wav, a);

        // A random adapter (B non-zero so it changes the output) plus a stored speaker vector.
        adapter = (tmp / "adapter").string();
        auto lm = model::load_model(model);
        hidden = lm.config.talker.hidden_size;
        model::LoraConfig lc;
        lc.r = 4;
        lc.alpha = 8;
        model::attach_lora(lm.model->talker, lc);
        torch::manual_seed(3);
        {
            torch::NoGradGuard ng;
            for (auto& [name, t] : model::lora_state(lm.model->talker)) t.normal_(0.0, 0.2);
        }
        model::save_adapter(lm.model->talker, lc, adapter);
        torch::manual_seed(4);
        io::save_safetensors((fs::path(adapter) / synth::kSpeakerEmbeddingFile).string(),
                             {{"speaker_embedding", torch::randn({hidden})}});
    }
};

inline TinySetup& tiny() {
    static TinySetup s;
    return s;
}

}  // namespace alexandria::test
