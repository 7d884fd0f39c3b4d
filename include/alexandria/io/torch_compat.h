#pragma once
// The one place where libtorch version differences live. Every build uses libtorch 2.x (PyPI's wheel, or the GPU
// machine's own torch); anything that differs between 2.x releases goes here as a wrapper instead of
// #if TORCH_VERSION checks scattered through the code.
#include <torch/torch.h>
#include <torch/version.h>

#define ALEXANDRIA_TORCH_AT_LEAST(major, minor) \
    (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace alexandria::compat {

// Attention over [B, H, T, D] tensors. mask: additive float mask broadcastable to [B, H, T, S], or undefined.
// The fused scaled-dot-product kernel (flash/memory-efficient on CUDA, a blocked kernel on the CPU).
inline torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& mask, double scale) {
    static_assert(TORCH_VERSION_MAJOR >= 2, "alexandria needs libtorch 2.x (tools/install-libtorch.sh)");
    // The fused kernel wants a float mask in the query's dtype: with bf16 weights computed in fp32 the mask may be
    // built in the weights' dtype.
    std::optional<at::Tensor> m;
    if (mask.defined())
        m = mask.is_floating_point() && mask.scalar_type() != q.scalar_type() ? mask.to(q.scalar_type()) : mask;
    return at::scaled_dot_product_attention(q, k, v, m, 0.0, false, scale);
}

inline bool cuda_available() { return torch::cuda::is_available(); }

}  // namespace alexandria::compat
