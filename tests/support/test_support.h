#pragma once
// Helpers shared by the tests: temp folders and paths to the source tree and ../shared.
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>

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

}  // namespace alexandria::test
