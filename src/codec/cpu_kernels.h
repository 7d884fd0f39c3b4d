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

// A causal convolution with 7 taps and dilation d as Winograd F(2,7): each pair of outputs d apart costs 8
// products per input channel instead of 14 (points 0, ±1, ±2, ±1/2, ∞; in fp32 its rounding error is ~3× the
// direct sum's). For out_channels a multiple of kWinogradRows.
constexpr int64_t kWinogradRows = 6;
// The weights transformed once: w [co][ci][7] → u, winograd7_weights_size(co, ci) floats (8/7 of w).
int64_t winograd7_weights_size(int64_t co, int64_t ci);
void winograd7_transform_weights(const float* w, int64_t co, int64_t ci, float* u);
// xin [ci][6d + len] (the left context, then the new samples) → y [co][len] (+ bias [co]). Runs on libtorch's
// threads.
void winograd7_conv(const float* xin, int64_t ci, int64_t len, int64_t dilation, const float* u, const float* bias,
                    int64_t co, float* y);

// A transposed convolution with kernel 2s and stride s, as the vocoder's upsampling uses it, as one product: output
// sample t·s + j of channel o is row j·co + o of [rows = s·co] × [2·ci] weights times the column (x[t+1]; x[t]).
// For s·co a multiple of kWinogradRows.
// w [ci][co][2s] → u, transposed_weights_size(co, ci, s) floats (as many as w).
int64_t transposed_weights_size(int64_t co, int64_t ci, int64_t stride);
void transform_transposed_weights(const float* w, int64_t co, int64_t ci, int64_t stride, float* u);
// xin [ci][1 + len] (the previous call's last sample, then the new ones) → y [co][len·s] (+ bias [co]): the
// reference's output with its last s samples dropped. Runs on libtorch's threads.
void transposed_conv(const float* xin, int64_t ci, int64_t len, int64_t stride, const float* u, const float* bias,
                     int64_t co, float* y);

// A linear layer, y [rows][n] = x [rows][k] · wᵀ + bias: the decoder's transformer and ConvNeXt layers, where a
// dozen to a few dozen rows meet weights of 2-16 MB.
// w [n][k] → u, linear_weights_size(n, k) floats (w's, n rounded up to a multiple of kWinogradRows).
int64_t linear_weights_size(int64_t n, int64_t k);
void transform_linear_weights(const float* w, int64_t n, int64_t k, float* u);
void linear(const float* x, int64_t rows, int64_t k, const float* u, const float* bias, int64_t n, float* y);

// For tests that compare the forms (each must give the same bits; io::allow_avx512 switches the 512-bit products):
// the Winograd convolution's loop order, chosen by the weights' size unless set.
enum class WinogradLayout { by_size, groups, rows };
void use_winograd_layout(WinogradLayout layout);

}  // namespace alexandria::codec::cpu
