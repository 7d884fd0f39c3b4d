#pragma once
// The decode loop in static form, for CUDA graphs (issue 20): every frame runs the same two pieces with the same
// shapes and tensor addresses —
//   1. the code predictor's 15-step loop (its sampler included): past hidden + code 0 → the frame's 16 codes;
//   2. the talker step: the frame's embedding + the next text row → hidden state and code-0 logits, attending over
//      the whole static KV cache with the positions beyond the current one masked (positions live on the device);
// so on CUDA each piece is captured once (at::cuda::CUDAGraph) and replayed every frame, and the host only runs the
// code-0 processing and the one EOS check per frame. On the CPU, or with capture off, the same pieces run eagerly:
// that is how the CPU tests check this path against generate_codes().
//
// Capture needs a build against CUDA libtorch (ALEXANDRIA_CUDA); everything else compiles everywhere.
#include "alexandria/synth/generate.h"

namespace alexandria::synth {

// Whether this build can capture CUDA graphs.
bool cuda_graphs_compiled();

// generate_codes() through the static pieces; `capture`: record and replay CUDA graphs (ignored off CUDA or
// without ALEXANDRIA_CUDA). The codes equal generate_codes() up to the rounding of attending over the whole cache.
GenerateResult generate_codes_static(model::Talker& talker, const PromptTensors& prompt, const GenerateOptions& opts,
                                     const FrameCallback& on_frame = {}, bool capture = true);

}  // namespace alexandria::synth
