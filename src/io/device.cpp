#include "alexandria/io/device.h"

#include <malloc.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <stdexcept>

#include <fmt/format.h>

#include "alexandria/io/error.h"
#include "alexandria/io/torch_compat.h"

namespace alexandria::io {

DeviceChoice resolve_device(const std::string& spec) {
    DeviceChoice d;
    if (spec == "cpu" || (spec == "auto" && !compat::cuda_available())) {
        d.name = "cpu";
        return d;
    }
    if (spec != "auto" && spec != "cuda" && spec.rfind("cuda:", 0) != 0)
        throw InputError(fmt::format("--device: '{}' is not a device (auto, cpu, cuda, cuda:N)", spec));
    if (!compat::cuda_available())
        throw InputError(fmt::format("--device {}: CUDA is not available in this build or on this machine", spec));
    int index = 0;
    if (spec.rfind("cuda:", 0) == 0) {
        try {
            size_t used = 0;
            index = std::stoi(spec.substr(5), &used);
            if (used != spec.size() - 5 || index < 0) throw std::invalid_argument("index");
        } catch (const std::exception&) {
            throw InputError(fmt::format("--device {}: expected cuda:N", spec));
        }
        if (index >= static_cast<int>(torch::cuda::device_count()))
            throw InputError(fmt::format("--device {}: only {} CUDA device(s)", spec, torch::cuda::device_count()));
    }
    d.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
    d.dtype = torch::kBFloat16;
    d.name = spec == "auto" ? "cuda" : spec;
    return d;
}

torch::Dtype resolve_dtype(const std::string& spec, const DeviceChoice& device) {
    if (spec == "auto") return device.dtype;
    if (spec == "f32" || spec == "float32") return torch::kFloat32;
    if (spec == "bf16" || spec == "bfloat16") return torch::kBFloat16;
    if (spec == "f16" || spec == "float16") return torch::kFloat16;
    throw InputError(fmt::format("--dtype '{}': expected auto, f32, bf16 or f16", spec));
}

bool cpu_kernels_enabled() {
#if defined(__x86_64__) || defined(_M_X64)
    // ALEXANDRIA_NO_KERNELS=1 falls back to libtorch's operations (for measuring the difference).
    static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           std::getenv("ALEXANDRIA_NO_KERNELS") == nullptr;
    return ok;
#else
    return false;
#endif
}

namespace {
std::atomic<bool> g_avx512_allowed{true};
}

bool cpu_avx512_enabled() {
#if defined(__x86_64__) || defined(_M_X64)
    static const bool ok = cpu_kernels_enabled() && __builtin_cpu_supports("avx512f") &&
                           std::getenv("ALEXANDRIA_NO_AVX512") == nullptr;
    return ok && g_avx512_allowed.load(std::memory_order_relaxed);
#else
    return false;
#endif
}

void allow_avx512(bool on) { g_avx512_allowed.store(on, std::memory_order_relaxed); }

void keep_freed_memory() {
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

void return_freed_memory() {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

}  // namespace alexandria::io
