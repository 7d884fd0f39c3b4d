#pragma once
// The vocoder's own CPU loops (fp32, AVX2+FMA): what libtorch runs as several passes over the decoder's largest
// tensors (up to 96 channels × 1,920 samples per frame) done in one. Callers check io::cpu_kernels_enabled().
#include <cstdint>

namespace alexandria::codec::cpu {

// SnakeBeta over `rows` rows of `len` samples, row r being channel r % channels:
//   out[r][t] = x[r][t] + sin²(x[r][t]·a[c]) · inv_b[c]
// with libtorch's operations in libtorch's order (product, sine, square, product, sum; no fused multiply-adds),
// the sine to within 1-2 ulp of libtorch's. Rows start every x_stride / out_stride floats, so `out` may be a
// window of a wider buffer (a convolution's input after its left context). Runs on libtorch's threads.
void snake_beta(const float* x, int64_t x_stride, float* out, int64_t out_stride, int64_t rows, int64_t len,
                const float* a, const float* inv_b, int64_t channels);

}  // namespace alexandria::codec::cpu
