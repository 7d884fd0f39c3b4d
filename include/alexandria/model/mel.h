#pragma once
// The speaker encoder's mel front end — spec model-talker.md §5.3 (128 Slaney mel bins, n_fft 1024, hop 256,
// window 1024, reflect padding 384, magnitude with 1e-9 inside the root, natural log clamped at 1e-5).
#include <torch/torch.h>

namespace alexandria::model {

// wav: [N] or [B, N] float32 at 24 kHz → [B, frames, 128] float32, frames = floor((N + 768 - 1024) / 256) + 1.
torch::Tensor mel_spectrogram(const torch::Tensor& wav);
// The [128, 513] Slaney filterbank (librosa.filters.mel(sr=24000, n_fft=1024, n_mels=128, fmin=0, fmax=12000)).
torch::Tensor mel_filterbank();

}  // namespace alexandria::model
