#include "alexandria/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace alexandria::io {

const char* dtype_name(DType d) {
    switch (d) {
        case DType::F64: return "F64";
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::I64: return "I64";
        case DType::I32: return "I32";
        case DType::I16: return "I16";
        case DType::I8: return "I8";
        case DType::U8: return "U8";
        case DType::BOOL: return "BOOL";
    }
    return "?";
}

size_t dtype_size(DType d) {
    switch (d) {
        case DType::F64: case DType::I64: return 8;
        case DType::F32: case DType::I32: return 4;
        case DType::F16: case DType::BF16: case DType::I16: return 2;
        case DType::I8: case DType::U8: case DType::BOOL: return 1;
    }
    return 0;
}

static bool parse_dtype(const std::string& s, DType* out) {
    static const std::pair<const char*, DType> table[] = {
        {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
        {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
        {"U8", DType::U8},   {"BOOL", DType::BOOL}};
    for (auto& [n, d] : table)
        if (s == n) { *out = d; return true; }
    return false;
}

int64_t TensorInfo::numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

SafetensorsFile::SafetensorsFile(const std::string& path) {
    path_ = path;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw InputError(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw InputError(fmt::format("{}: not a regular file", path));
    }
    map_size_ = size_t(st.st_size);
    if (map_size_ < 8) {
        ::close(fd);
        throw InputError(fmt::format("{}: not a safetensors file ({} bytes, shorter than the 8-byte header size)", path, map_size_));
    }
    // Private and writable: a tensor viewing the mapping (view_shared) may be written to; its pages are then copied,
    // never written back to the file.
    map_ = ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        throw InputError(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
    }
    mapping_ = std::shared_ptr<void>(map_, [size = map_size_](void* p) { ::munmap(p, size); });
    try {
        parse(static_cast<const uint8_t*>(map_), map_size_);
    } catch (...) {
        mapping_.reset();
        map_ = nullptr;
        throw;
    }
}

SafetensorsFile SafetensorsFile::from_memory(const uint8_t* data, size_t size, const std::string& label) {
    SafetensorsFile f;
    f.path_ = label;
    f.parse(data, size);
    return f;
}

void SafetensorsFile::release(const std::string& name) const {
    if (!map_) return;
    const auto& t = info(name);
    const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
    uintptr_t begin = reinterpret_cast<uintptr_t>(data(t)), end = begin + (t.end - t.begin);
    begin = (begin + page - 1) / page * page;  // only pages wholly inside this tensor
    end = end / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

SafetensorsFile::~SafetensorsFile() = default;

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
    if (this != &o) {
        path_ = std::move(o.path_);
        mapping_ = std::move(o.mapping_);
        map_ = o.map_;
        map_size_ = o.map_size_;
        base_ = o.base_;
        tensors_ = std::move(o.tensors_);
        index_ = std::move(o.index_);
        metadata_ = std::move(o.metadata_);
        o.map_ = nullptr;
        o.map_size_ = 0;
        o.base_ = nullptr;
    }
    return *this;
}

void SafetensorsFile::parse(const uint8_t* data, size_t size) {
    auto fail = [&](const std::string& why) { throw InputError(fmt::format("{}: invalid safetensors file: {}", path_, why)); };
    if (size < 8) fail("shorter than the 8-byte header size");
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    if (n > kMaxSafetensorsHeader) fail(fmt::format("header size {} exceeds the limit of {} bytes", n, kMaxSafetensorsHeader));
    if (n > size - 8) fail(fmt::format("header size {} runs past the end of the file ({} bytes)", n, size));
    const uint64_t data_size = size - 8 - n;
    base_ = data + 8 + n;
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(data + 8, data + 8 + n);
    } catch (const nlohmann::json::exception& e) {
        fail(fmt::format("header is not valid JSON ({})", e.what()));
    }
    if (!header.is_object()) fail("header is not a JSON object");
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto& [name, v] : header.items()) {
        if (name == "__metadata__") {
            if (!v.is_object()) fail("__metadata__ is not an object");
            for (auto& [k, mv] : v.items()) {
                if (!mv.is_string()) fail(fmt::format("__metadata__ value '{}' is not a string", k));
                metadata_[k] = mv.get<std::string>();
            }
            continue;
        }
        if (!v.is_object()) fail(fmt::format("entry '{}' is not an object", name));
        TensorInfo t;
        t.name = name;
        auto dt = v.find("dtype");
        if (dt == v.end() || !dt->is_string()) fail(fmt::format("tensor '{}': missing or invalid dtype", name));
        if (!parse_dtype(dt->get<std::string>(), &t.dtype))
            fail(fmt::format("tensor '{}': unsupported dtype '{}'", name, dt->get<std::string>()));
        auto sh = v.find("shape");
        if (sh == v.end() || !sh->is_array()) fail(fmt::format("tensor '{}': missing or invalid shape", name));
        uint64_t numel = 1;
        for (auto& d : *sh) {
            if (!d.is_number_unsigned()) fail(fmt::format("tensor '{}': shape has a non-integer or negative entry", name));
            uint64_t x = d.get<uint64_t>();
            if (x > (1ull << 40) || (x && numel > (1ull << 62) / x)) fail(fmt::format("tensor '{}': shape too large", name));
            numel *= x;
            t.shape.push_back(int64_t(x));
        }
        auto off = v.find("data_offsets");
        if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
            !(*off)[1].is_number_unsigned())
            fail(fmt::format("tensor '{}': data_offsets must be two non-negative integers", name));
        t.begin = (*off)[0].get<uint64_t>();
        t.end = (*off)[1].get<uint64_t>();
        if (t.begin > t.end || t.end > data_size)
            fail(fmt::format("tensor '{}': data_offsets [{}, {}] outside the data section of {} bytes", name, t.begin,
                             t.end, data_size));
        if (numel > (1ull << 62) / 8 || numel * dtype_size(t.dtype) != t.end - t.begin)
            fail(fmt::format("tensor '{}': {} × shape {} needs {} bytes but data_offsets give {}", name,
                             dtype_name(t.dtype), sh->dump(), numel * dtype_size(t.dtype), t.end - t.begin));
        ranges.emplace_back(t.begin, t.end);
        index_[name] = tensors_.size();
        tensors_.push_back(std::move(t));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].first < ranges[i - 1].second) fail("two tensors' data_offsets overlap");
    // keep file order (by offset) for deterministic iteration
    std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.name < b.name;
    });
    index_.clear();
    for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

bool SafetensorsFile::contains(const std::string& name) const { return index_.count(name) != 0; }

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw InputError(fmt::format("{}: no tensor named '{}'", path_, name));
    return tensors_[it->second];
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const { return base_ + t.begin; }

}  // namespace alexandria::io
