#pragma once
// Helpers shared by the tests: temp folders, paths to the source tree and ../shared, and the device under test.
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace alexandria::test {

namespace fs = std::filesystem;

inline fs::path source_dir() {
    const char* s = std::getenv("ALEXANDRIA_SOURCE_DIR");
    return s ? fs::path(s) : fs::path(ALEXANDRIA_TEST_SOURCE_DIR);
}
inline fs::path shared_dir() {
    const char* s = std::getenv("ALEXANDRIA_SHARED_DIR");
    return s ? fs::path(s) : source_dir() / ".." / "shared";
}

// A fresh directory removed when the object dies.
struct TempDir {
    fs::path path;
    TempDir() {
        std::random_device rd;
        path = fs::temp_directory_path() / ("alexandria-test-" + std::to_string(rd()) + std::to_string(rd()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    fs::path operator/(const std::string& p) const { return path / p; }
};

// The device the tests run on: ALEXANDRIA_TEST_DEVICE = cpu (default), cuda or cuda:N. tools/gpu-run.sh runs the
// whole suite with cuda. Asking for a device this build or machine lacks is an error, never a silent CPU run.
inline std::string device_name() {
    static const std::string name = [] {
        const char* s = std::getenv("ALEXANDRIA_TEST_DEVICE");
        std::string v = s && *s ? s : "cpu";
        if (v == "cuda") v = "cuda:0";
        if (v == "cpu") return v;
        bool index_ok = v.rfind("cuda:", 0) == 0 && v.size() > 5 &&
                        v.find_first_not_of("0123456789", 5) == std::string::npos;
        if (!index_ok)
            throw std::runtime_error("ALEXANDRIA_TEST_DEVICE='" + v + "': expected cpu, cuda or cuda:N");
        if (!torch::cuda::is_available())
            throw std::runtime_error("ALEXANDRIA_TEST_DEVICE=" + v + ": this build or machine has no CUDA device");
        if (std::stoll(v.substr(5)) >= static_cast<long long>(torch::cuda::device_count()))
            throw std::runtime_error("ALEXANDRIA_TEST_DEVICE=" + v + ": only " +
                                     std::to_string(torch::cuda::device_count()) + " CUDA device(s)");
        return v;
    }();
    return name;
}
inline torch::Device device() { return torch::Device(device_name()); }
inline bool on_cuda() { return device().is_cuda(); }
// Tensor options on the device under test (fp32 unless asked otherwise).
inline torch::TensorOptions options(torch::Dtype dtype = torch::kFloat32) {
    return torch::TensorOptions().device(device()).dtype(dtype);
}
// The `--device` value for command-line tests.
inline std::string device_flag() { return "--device " + device_name(); }

}  // namespace alexandria::test
