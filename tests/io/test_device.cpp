#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "alexandria/io/device.h"
#include "alexandria/io/error.h"

using namespace alexandria;

namespace {
std::string device_error(const std::string& spec) {
    try {
        io::resolve_device(spec);
    } catch (const InputError& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("--device: cpu and auto, and what is not a device") {
    auto cpu = io::resolve_device("cpu");
    CHECK(cpu.device.is_cpu());
    CHECK(cpu.dtype == torch::kFloat32);
    CHECK(cpu.name == "cpu");
    auto a = io::resolve_device("auto");
    CHECK(a.device.is_cuda() == torch::cuda::is_available());
    CHECK(a.dtype == (a.device.is_cuda() ? torch::kBFloat16 : torch::kFloat32));
    for (std::string bad : {"gpu", "CPU", "", "cuda0", "mps"})
        CHECK_THAT(device_error(bad), Catch::Contains("is not a device (auto, cpu, cuda, cuda:N)"));
    if (!torch::cuda::is_available()) {
        CHECK_THAT(device_error("cuda"), Catch::Contains("CUDA is not available"));
        CHECK_THAT(device_error("cuda:1"), Catch::Contains("CUDA is not available"));
    } else {
        CHECK_THAT(device_error("cuda:x"), Catch::Contains("expected cuda:N"));
        CHECK_THAT(device_error("cuda:-1"), Catch::Contains("expected cuda:N"));
        CHECK_THAT(device_error("cuda:999"), Catch::Contains("CUDA device(s)"));
        CHECK(io::resolve_device("cuda:0").name == "cuda:0");
    }
}

TEST_CASE("--dtype: auto follows the device, names and aliases, errors") {
    io::DeviceChoice cpu;
    io::DeviceChoice gpu;
    gpu.dtype = torch::kBFloat16;
    CHECK(io::resolve_dtype("auto", cpu) == torch::kFloat32);
    CHECK(io::resolve_dtype("auto", gpu) == torch::kBFloat16);
    CHECK(io::resolve_dtype("f32", gpu) == torch::kFloat32);
    CHECK(io::resolve_dtype("float32", gpu) == torch::kFloat32);
    CHECK(io::resolve_dtype("bf16", cpu) == torch::kBFloat16);
    CHECK(io::resolve_dtype("bfloat16", cpu) == torch::kBFloat16);
    CHECK(io::resolve_dtype("f16", cpu) == torch::kFloat16);
    CHECK_THROWS_AS(io::resolve_dtype("fp8", cpu), InputError);
}
