// Mel front end of the speaker encoder — spec model-talker.md §5.3.
#include "alexandria/model/mel.h"

#include "alexandria/io/error.h"

#include <cmath>
#include <vector>

namespace alexandria::model {

namespace {

// Slaney mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
constexpr double kMelLinearHzPerMel = 200.0 / 3.0;
constexpr double kMelLogStartHz = 1000.0;
constexpr double kMelLogStartMel = kMelLogStartHz / kMelLinearHzPerMel;  // 15
const double kMelLogStep = std::log(6.4) / 27.0;

double hz_to_mel(double hz) {
    if (hz >= kMelLogStartHz) return kMelLogStartMel + std::log(hz / kMelLogStartHz) / kMelLogStep;
    return hz / kMelLinearHzPerMel;
}

double mel_to_hz(double mel) {
    if (mel >= kMelLogStartMel) return kMelLogStartHz * std::exp(kMelLogStep * (mel - kMelLogStartMel));
    return kMelLinearHzPerMel * mel;
}

torch::Tensor build_filterbank() {
    const int n_bins = kMelFftSize / 2 + 1;
    // Bin centre frequencies as numpy's rfftfreq computes them (k · 1/(n·d), d = 1/sr).
    const double bin_hz = 1.0 / (kMelFftSize * (1.0 / kMelSampleRate));
    // n_mels + 2 band edges, equally spaced in mel (numpy.linspace: start + i·step, last one exactly the stop).
    const int n_edges = kMelBins + 2;
    const double mel_lo = hz_to_mel(kMelFmin), mel_hi = hz_to_mel(kMelFmax);
    const double step = (mel_hi - mel_lo) / (n_edges - 1);
    std::vector<double> edge(n_edges);
    for (int i = 0; i < n_edges; ++i) edge[i] = mel_to_hz(i == n_edges - 1 ? mel_hi : mel_lo + i * step);

    auto fb = torch::zeros({kMelBins, n_bins}, torch::kFloat32);
    auto acc = fb.accessor<float, 2>();
    for (int i = 0; i < kMelBins; ++i) {
        const double rise = edge[i + 1] - edge[i], fall = edge[i + 2] - edge[i + 1];
        const double area_norm = 2.0 / (edge[i + 2] - edge[i]);
        for (int k = 0; k < n_bins; ++k) {
            const double f = k * bin_hz;
            const double w = std::max(0.0, std::min((f - edge[i]) / rise, (edge[i + 2] - f) / fall));
            // librosa stores the triangle in float32 first and then scales it in place, so round twice as it does.
            acc[i][k] = static_cast<float>(static_cast<double>(static_cast<float>(w)) * area_norm);
        }
    }
    return fb;
}

}  // namespace

double slaney_hz_to_mel(double hz) { return hz_to_mel(hz); }
double slaney_mel_to_hz(double mel) { return mel_to_hz(mel); }

namespace {
// Built once; callers of the public accessor get a copy so nobody can alter the shared bank in place.
const torch::Tensor& shared_filterbank() {
    static const torch::Tensor fb = build_filterbank();
    return fb;
}
}  // namespace

torch::Tensor mel_filterbank() { return shared_filterbank().clone(); }

int64_t mel_frame_count(int64_t samples) {
    if (samples <= kMelPad) return 0;  // mel_spectrogram rejects these
    const int64_t padded = samples + 2 * kMelPad;
    return (padded - kMelFftSize) / kMelHop + 1;
}

torch::Tensor mel_spectrogram(const torch::Tensor& wav) {
    if (!wav.defined() || (wav.dim() != 1 && wav.dim() != 2))
        throw InputError("mel_spectrogram: expected a waveform of shape [N] or [B, N]");
    auto y = (wav.dim() == 1 ? wav.unsqueeze(0) : wav).to(torch::kFloat32);
    const int64_t n = y.size(1);
    // Reflect padding needs more samples than the pad on each side.
    if (n <= kMelPad)
        throw InputError(fmt::format("audio too short for the mel front end: {} samples at 24 kHz (need at least {})",
                                     n, kMelPad + 1));
    if (!torch::isfinite(y).all().item<bool>()) throw InputError("mel_spectrogram: waveform has non-finite samples");

    // Reflect-pad by (n_fft - hop)/2 so frames are centred on hop multiples, then a plain (center=False) STFT.
    y = torch::nn::functional::pad(y.unsqueeze(1), torch::nn::functional::PadFuncOptions({kMelPad, kMelPad})
                                                       .mode(torch::kReflect))
            .squeeze(1);
    const auto window = torch::hann_window(kMelWindow, /*periodic=*/true,
                                           torch::TensorOptions().dtype(torch::kFloat32).device(y.device()));
    auto spec = torch::stft(y, kMelFftSize, kMelHop, kMelWindow, window, /*center=*/false, "reflect",
                            /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
    // The 1e-9 sits inside the root, as in the reference (it keeps the gradient of silent bins finite).
    auto magnitude = torch::sqrt(torch::view_as_real(spec).pow(2).sum(-1) + 1e-9);  // [B, 513, frames]
    auto mel = torch::matmul(shared_filterbank().to(y.device()), magnitude);  // [B, 128, frames]
    return torch::log(torch::clamp_min(mel, 1e-5)).transpose(1, 2).contiguous();
}

}  // namespace alexandria::model
