#pragma once
// The one place where libtorch version differences live: Debian ships 1.13 (CPU), the GPU machine a 2.x CUDA
// build. Everything else calls these wrappers instead of writing #if TORCH_VERSION checks.
#include <torch/torch.h>
#include <torch/version.h>

#define ALEXANDRIA_TORCH_AT_LEAST(major, minor) \
    (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace alexandria::compat {

// Attention over [B, H, T, D] tensors. mask: additive float mask broadcastable to [B, H, T, S], or undefined.
// 2.x uses the fused scaled-dot-product kernel; 1.13 the explicit softmax form (the same maths).
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, double scale) {
#if ALEXANDRIA_TORCH_AT_LEAST(2, 1)
    return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt,
                                            0.0, false, scale);
#else
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
    if (mask.defined()) scores = scores + mask;
    auto probs = torch::softmax(scores.to(torch::kFloat32), -1).to(q.scalar_type());
    return torch::matmul(probs, v);
#endif
}

inline bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace alexandria::compat
