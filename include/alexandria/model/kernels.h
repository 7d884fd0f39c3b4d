#pragma once
// CPU kernels for inference: y = x Wᵀ (+ b) for a few rows of x (one per line being decoded) and for a prompt's
// prefill alike, reading the weight once for many rows. Decoding is bound by reading the weights, and the BLAS
// libraries libtorch links treat a one-row product as a general one and have no fast bf16 path on CPUs without
// AVX-512-BF16. Here the weight may be stored in bf16 (the checkpoints' own precision, so lossless) or int8 and is
// widened to fp32 in registers; all arithmetic is fp32. Two forms: small_linear() reads the weight as stored
// ([N, K]); packed_linear() and int8_linear() read it in the inference layout (pack_weight), which synthesis on
// the CPU uses (model/layers.h use_inference_layout): ~2x faster for one row.
//
// Every (output, row) sum is computed in the same order whatever the number of rows or threads, so a line decoded
// in a batch gets bit for bit the values it gets alone.
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace alexandria::model {

// Rows of x per pass over the weight: more rows are done in several passes (x's pass stays within L2). Prefills
// run here too: on the 2-core AVX2 build machine this kernel reads bf16 weights at 45-50 GMAC/s for 34-128
// rows, where libtorch's sgemm (MKL) runs at ~31 GMAC/s on fp32 weights it must first widen.
constexpr int64_t kSmallLinearRowsPerPass = 128;

// Whether small_linear() can run: io::cpu_kernels_enabled() (an x86 CPU with AVX2 and FMA, checked once at run
// time, and ALEXANDRIA_NO_KERNELS unset: libtorch's products then, to measure against).
bool small_linear_supported();

// x [..., K] (fp32 or bf16; any number of rows), weight [N, K] contiguous (fp32 or bf16), bias [N]
// or undefined → [..., N] in x's dtype. CPU only; no autograd.
at::Tensor small_linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// The inference layout: the same values as a [N, K] weight, reordered so that the kernel reads 16 output rows'
// weights for one k at a time (see kernels.cpp). Same shape, dtype and size as the weight it was made from; only
// packed_linear() reads it. N must be a multiple of 16 (packable() says whether a weight can be packed).
bool packable(const at::Tensor& weight);
at::Tensor pack_weight(const at::Tensor& weight);
at::Tensor unpack_weight(const at::Tensor& packed);

// x [..., K] (fp32 or bf16) · W ᵀ (+ bias) from the packed weight → [..., N] in x's dtype. Each output sums its K
// products in index order whatever the number of rows or threads (as small_linear, though in another order:
// the two differ by rounding). CPU only; no autograd.
at::Tensor packed_linear(const at::Tensor& x, const at::Tensor& packed, const at::Tensor& bias);

// Weight-only int8 (`synth --dtype int8`): each output row n quantized symmetrically, w ≈ q · scale[n] with
// scale[n] = max |w[n, :]| / 127, stored in the inference layout (rows in order within a block). Products are
// fp32: each output sums x · q in index order, then multiplies by its scale. Half the bytes of bf16 per step.
struct Int8Weight {
    at::Tensor q;      // [N, K] int8, inference layout
    at::Tensor scale;  // [N] fp32
};
Int8Weight quantize_weight(const at::Tensor& weight);  // weight: natural layout, packable()
at::Tensor int8_linear(const at::Tensor& x, const Int8Weight& w, const at::Tensor& bias);

}  // namespace alexandria::model
