#pragma once
// CPU kernels for decoding: y = x Wᵀ (+ b) for a few rows of x (one per line being decoded), reading the weight
// once for all rows. Decoding is bound by reading the weights, and the BLAS libraries libtorch links treat a
// one-row product as a general one (OpenBLAS packs the whole weight first: ~3x slower than a plain matrix-vector
// product) and have no fast bf16 path on CPUs without AVX-512-BF16. Here the weight may be stored in bf16 (the
// checkpoints' own precision, so lossless) and is widened to fp32 in registers; all arithmetic is fp32.
//
// Every (output, row) dot product is computed in the same order whatever the number of rows or threads, so a
// line decoded in a batch gets bit for bit the values it gets alone.
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace alexandria::model {

// The most rows small_linear() takes (more rows are a general matrix product: libtorch's BLAS does it well).
constexpr int64_t kSmallLinearMaxRows = 16;

// Whether small_linear() can run: an x86 CPU with AVX2 and FMA (checked once at run time), and the environment
// does not set ALEXANDRIA_NO_KERNELS (libtorch's products then, to measure against).
bool small_linear_supported();

// x [..., K] (fp32 or bf16; at most kSmallLinearMaxRows rows), weight [N, K] contiguous (fp32 or bf16), bias [N]
// or undefined → [..., N] in x's dtype. CPU only; no autograd.
at::Tensor small_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace alexandria::model
