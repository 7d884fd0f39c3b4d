#pragma once
// The work of a decoder layer between its products, for a few new positions on the CPU without autograd: the
// talker's decoding step and the code predictor's. Written as libtorch operations a layer is ~50 of them (norms,
// reshapes, rotary halves, cache scatters, two small batched products and a softmax), each costing microseconds
// of dispatch, allocation and thread hand-off however small its tensor; a frame runs 28 talker layers and 75 code
// predictor layers. Here each is one loop over raw fp32 memory (model/layers.cpp run_decoder decides when).
//
// The maths are the reference's (spec §3.1) in fp32; only the order of some sums and the exponential differ, so
// the results agree with the libtorch path to rounding. A row's values never depend on the other rows beside it.
#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace alexandria::model::decode {

// Most new positions per call this path takes (decoding adds 1 per row, the code predictor starts a frame with
// 2); longer prefills keep libtorch's fused attention, whose work grows with the square of the length.
constexpr int64_t kMaxPositions = 4;

// An x86 CPU with AVX2 and FMA, and ALEXANDRIA_NO_KERNELS unset (kernels.h small_linear_supported()).
bool supported();

// x [..., H] fp32 contiguous, weight [H] (fp32 or bf16) → weight · x / sqrt(mean(x²) + eps), per row.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// x += a (in place, both [..., H] fp32 contiguous) and returns rms_norm(x): the residual add and the next norm.
at::Tensor add_rms_norm(at::Tensor& x, const at::Tensor& a, const at::Tensor& weight, double eps);

// gate = silu(gate) · up, in place (both fp32 contiguous, same shape); returns gate.
at::Tensor silu_mul(at::Tensor gate, const at::Tensor& up);

// One attention step over a KV cache, from the projections:
//   q [B, T, heads·D], k and v [B, T, kv_heads·D] (fp32, as q_proj/k_proj/v_proj return them),
//   q_norm / k_norm [D] with their eps, cos / sin [B, T, D] (rotate-half RoPE),
//   cache_k / cache_v [≥B, kv_heads, capacity, D] fp32 storage of this layer, starts[b] = keys row b already holds.
// Normalises and rotates q and k per head, writes row b's new keys (after RoPE) and values at positions
// starts[b]..starts[b]+T-1, and returns softmax(q·kᵀ/√D) v over keys 0..starts[b]+t for new position t (causal,
// query head h reading key/value head h / (heads / kv_heads)): [B, T, heads·D] fp32.
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& q_norm,
                     const at::Tensor& k_norm, double eps, const at::Tensor& cos, const at::Tensor& sin,
                     at::Tensor& cache_k, at::Tensor& cache_v, const std::vector<int64_t>& starts, int64_t heads,
                     int64_t kv_heads);

}  // namespace alexandria::model::decode
