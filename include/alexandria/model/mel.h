#pragma once
// The speaker encoder's mel front end — spec model-talker.md §5.3 (128 Slaney mel bins, n_fft 1024, hop 256,
// window 1024, reflect padding 384, magnitude with 1e-9 inside the root, natural log clamped at 1e-5).
#include <torch/torch.h>

#include <cstdint>

namespace alexandria::model {

// The reference's call-site constants (M:1941-1955); the front end is not configurable.
constexpr int kMelSampleRate = 24000;
constexpr int kMelFftSize = 1024;
constexpr int kMelWindow = 1024;
constexpr int kMelHop = 256;
constexpr int kMelBins = 128;
constexpr int kMelPad = (kMelFftSize - kMelHop) / 2;  // 384 samples of reflect padding on each side
constexpr double kMelFmin = 0.0;
constexpr double kMelFmax = 12000.0;

// wav: [N] or [B, N] float32 at 24 kHz → [B, frames, 128] float32, frames = floor((N + 768 - 1024) / 256) + 1.
// InputError for a clip of 384 samples or fewer (reflect padding needs more) or with non-finite samples.
// Computed on the waveform's device, in fp32.
torch::Tensor mel_spectrogram(const torch::Tensor& wav);
// The [128, 513] Slaney filterbank (librosa.filters.mel(sr=24000, n_fft=1024, n_mels=128, fmin=0, fmax=12000)).
torch::Tensor mel_filterbank();
// Frames mel_spectrogram gives for a clip of `samples` samples (0 when too short).
int64_t mel_frame_count(int64_t samples);
// librosa's Slaney mel scale (htk=False), exposed for tests and plots.
double slaney_hz_to_mel(double hz);
double slaney_mel_to_hz(double mel);

}  // namespace alexandria::model
