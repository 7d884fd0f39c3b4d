// Where a command computes: the one parser of --device and --dtype, shared by train, synth, eval and dataset build.
#pragma once

#include <string>

#include <torch/types.h>

namespace alexandria::io {

struct DeviceChoice {
    torch::Device device = torch::kCPU;
    torch::Dtype dtype = torch::kFloat32;  // the base weights' dtype for --dtype auto on this device
    std::string name;                      // "cpu", "cuda", "cuda:1"
};

// "auto" (the first CUDA device when this build and machine have one, else the CPU), "cpu", "cuda" or "cuda:N".
// A CUDA device gets bf16 base weights by default (LoRA, optimiser state and losses stay fp32), the CPU fp32.
// Throws InputError naming the option for anything else, or for a CUDA device this build or machine lacks.
DeviceChoice resolve_device(const std::string& spec);

// --dtype: "auto" (the device's default above), "f32"/"float32", "bf16"/"bfloat16", "f16"/"float16".
torch::Dtype resolve_dtype(const std::string& spec, const DeviceChoice& device);

// Our own CPU kernels may run: an x86 CPU with AVX2 and FMA, and ALEXANDRIA_NO_KERNELS unset (set, everything
// runs through libtorch's operations, to measure against).
bool cpu_kernels_enabled();
// ... and the CPU has AVX-512F, for the kernels that have a 512-bit form (the same sums in the same order, so the
// same bits as their AVX2 form), and ALEXANDRIA_NO_AVX512 is unset (and allow_avx512(false) was not called).
bool cpu_avx512_enabled();
// For tests that compare the two forms: false keeps every kernel on its AVX2 form until allow_avx512(true).
void allow_avx512(bool on);

// Called once at start-up by programs that compute on the CPU: glibc keeps freed blocks of any size for reuse
// instead of mapping blocks over 32 MB afresh each time (a 1.7B prefill widens 50 MB weights per layer; fresh
// mappings cost a page fault and a zeroed page per 4 KB: 30% of a 1.7B decode's time was the kernel's).
void keep_freed_memory();
// Hands the freed blocks' whole pages back to the system now (after replacing large tensors once, at start-up).
void return_freed_memory();

}  // namespace alexandria::io
