// Stage 6: the speech codec against the official Qwen3TTSTokenizer (12 Hz): codes of the real 24 kHz clips and of
// clips at 44.1, 22.05 and 32 kHz (resampled to 24 kHz on the way, as librosa does), identical but for near-ties; the decoder's
// waveform one-shot, chunked (the official chunked_decode with small chunks) and through decode(), within tolerance.
#include <catch2/catch.hpp>

#include "alexandria/codec/codec.h"
#include "alexandria/io/audio.h"
#include "parity_util.h"

using namespace alexandria;
using namespace alexandria::parity;

namespace {

const codec::Codec& the_codec() {
    static const codec::Codec c = codec::Codec::load(
        (model_dir(manifest().at("stages").at("6").at("model").get<std::string>()) / "speech_tokenizer").string(), torch::kCPU,
        torch::kFloat32);
    return c;
}

// Identical, or different only at near-ties of our encoder (code_differences).
void check_codes(const std::string& what, const std::vector<float>& wav24k, const torch::Tensor& want) {
    auto got = the_codec().encode(wav24k);
    INFO(what << ": ours " << got.sizes() << ", official " << want.sizes());
    bool same = got.sizes() == want.sizes() && torch::equal(got.to(torch::kInt64), want);
    record_ids("6 codec encode", what, same, want.numel());
    if (!same) CHECK(code_differences(the_codec(), wav24k, got, want) == "");
}

}  // namespace

TEST_CASE("stage 6: codec codes of the real 24 kHz clips", "[parity][stage6]") {
    auto want = load_tensors("stage6_codec.safetensors");
    for (const auto& [name, rel] : manifest().at("stages").at("6").at("clips").items())
        check_codes(name, io::read_audio_resampled((shared_dir() / rel.get<std::string>()).string(), 24000).samples,
                    want.at(name + ".codes"));
}

TEST_CASE("stage 6: codec codes of 44.1, 22.05 and 32 kHz clips", "[parity][stage6]") {
    auto want = load_tensors("stage6_codec.safetensors");
    for (const auto& [rate, rel] : manifest().at("stages").at("6").at("resampled").items()) {
        const std::string path = (fixture_dir() / rel.get<std::string>()).string();
        // the resampled waveform itself: librosa.resample (soxr_hq, fix=True) of the file's samples
        io::Audio a = io::read_audio_resampled(path, 24000);
        torch::Tensor w = torch::from_blob(a.samples.data(), {int64_t(a.samples.size())}, torch::kFloat32).clone();
        INFO(rate << " Hz: " << a.samples.size() << " samples, official " << want.at("resampled" + rate + ".wav24k").numel());
        REQUIRE(w.numel() == want.at("resampled" + rate + ".wav24k").numel());
        PARITY_CHECK_CLOSE("6 resample to 24 kHz", rate, w, want.at("resampled" + rate + ".wav24k"));
        check_codes(rate + " Hz", a.samples, want.at("resampled" + rate + ".codes"));
    }
}

TEST_CASE("stage 6: codec decode one-shot, chunked and through decode()", "[parity][stage6]") {
    auto want = load_tensors("stage6_codec.safetensors");
    const auto& d = manifest().at("stages").at("6").at("decode");
    torch::Tensor codes = want.at("decode.codes");  // [T, 16]
    torch::NoGradGuard ng;
    torch::Tensor c = codes.t().unsqueeze(0);  // [1, 16, T]
    PARITY_CHECK_CLOSE_FLOOR("6 codec decode", "one-shot", the_codec().decode_unchunked(c).view(-1),
                             want.at("decode.oneshot"), 1e-2);
    PARITY_CHECK_CLOSE_FLOOR("6 codec decode", "chunked",
                       the_codec().decode_chunked(c, d.at("chunk_size").get<int64_t>(), d.at("left_context").get<int64_t>()).view(-1),
                       want.at("decode.chunked"), 1e-2);
    std::vector<float> wav = the_codec().decode(codes);
    torch::Tensor w = torch::from_blob(wav.data(), {int64_t(wav.size())}, torch::kFloat32).clone();
    REQUIRE(w.numel() == want.at("decode.wrapper").numel());
    PARITY_CHECK_CLOSE_FLOOR("6 codec decode", "decode()", w, want.at("decode.wrapper"), 1e-2);
}
