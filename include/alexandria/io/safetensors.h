#pragma once
// safetensors files: memory-mapped reading with a fully validated header, atomic writing.
// The header is untrusted input: size bounded, JSON valid, every dtype known, dtype × shape = byte length,
// offsets inside the data section and non-overlapping. Any violation is an InputError naming the file.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace at { class Tensor; }

namespace alexandria::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };
const char* dtype_name(DType d);
size_t dtype_size(DType d);

struct TensorInfo {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte offsets inside the data section
    int64_t numel() const;
};

// Largest header accepted (the real 1.7B checkpoint's header is ~60 KB).
constexpr uint64_t kMaxSafetensorsHeader = 100ull << 20;

class SafetensorsFile {
public:
    // Maps the file read-only. Throws InputError on any malformed header.
    explicit SafetensorsFile(const std::string& path);
    // Parses an in-memory buffer (no copy; the buffer must outlive this object). For tests and fuzzing.
    static SafetensorsFile from_memory(const uint8_t* data, size_t size, const std::string& label);
    ~SafetensorsFile();
    SafetensorsFile(SafetensorsFile&&) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept;

    const std::string& path() const { return path_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file order
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    bool contains(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const;  // throws InputError when absent
    const uint8_t* data(const TensorInfo& t) const;          // pointer into the mapping

    // A CPU tensor viewing the mapping (no copy; valid while this object lives). Use .clone()/.to() to keep it.
    at::Tensor view(const std::string& name) const;
    // A CPU tensor viewing the mapping that keeps the mapping alive after this object is gone: only the pages
    // read are ever brought into memory, which suits a large table read a few rows at a time (the talker's
    // 151,936-row text embedding). Writing to it copies the pages written, never changes the file. An in-memory
    // buffer (from_memory) or a misaligned tensor gives a copy instead.
    at::Tensor view_shared(const std::string& name) const;
    // The tensor's bytes were copied out and will not be read again: the whole pages inside it go back to the
    // kernel (clean file pages, re-read if touched), so a loaded model is not counted twice in the RSS, once as
    // the mapped file and once as its copy. No-op for in-memory buffers.
    void release(const std::string& name) const;

private:
    SafetensorsFile() = default;
    void parse(const uint8_t* data, size_t size);
    std::string path_;
    std::shared_ptr<void> mapping_;  // owns map_ (munmap when the last view_shared tensor and this object are gone)
    void* map_ = nullptr;
    size_t map_size_ = 0;
    const uint8_t* base_ = nullptr;  // start of the data section
    std::vector<TensorInfo> tensors_;
    std::map<std::string, size_t> index_;
    std::map<std::string, std::string> metadata_;
};

// Writes tensors (contiguous CPU copies are made as needed) atomically: temp file in the same folder, rename.
void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace alexandria::io
