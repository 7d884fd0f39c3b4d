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

static torch::Dtype to_torch(DType d) {
    switch (d) {
        case DType::F64: return torch::kFloat64;
        case DType::F32: return torch::kFloat32;
        case DType::F16: return torch::kFloat16;
        case DType::BF16: return torch::kBFloat16;
        case DType::I64: return torch::kInt64;
        case DType::I32: return torch::kInt32;
        case DType::I16: return torch::kInt16;
        case DType::I8: return torch::kInt8;
        case DType::U8: return torch::kUInt8;
        case DType::BOOL: return torch::kBool;
    }
    return torch::kFloat32;
}

static bool from_torch(torch::Dtype t, DType* out) {
    switch (t) {
        case torch::kFloat64: *out = DType::F64; return true;
        case torch::kFloat32: *out = DType::F32; return true;
        case torch::kFloat16: *out = DType::F16; return true;
        case torch::kBFloat16: *out = DType::BF16; return true;
        case torch::kInt64: *out = DType::I64; return true;
        case torch::kInt32: *out = DType::I32; return true;
        case torch::kInt16: *out = DType::I16; return true;
        case torch::kInt8: *out = DType::I8; return true;
        case torch::kUInt8: *out = DType::U8; return true;
        case torch::kBool: *out = DType::BOOL; return true;
        default: return false;
    }
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
    map_ = ::mmap(nullptr, map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        throw InputError(fmt::format("{}: cannot map: {}", path, std::strerror(errno)));
    }
    try {
        parse(static_cast<const uint8_t*>(map_), map_size_);
    } catch (...) {
        ::munmap(map_, map_size_);
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

SafetensorsFile::~SafetensorsFile() {
    if (map_) ::munmap(map_, map_size_);
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
    if (this != &o) {
        if (map_) ::munmap(map_, map_size_);
        path_ = std::move(o.path_);
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

at::Tensor SafetensorsFile::view(const std::string& name) const {
    const auto& t = info(name);
    auto* ptr = const_cast<uint8_t*>(data(t));
    size_t align = dtype_size(t.dtype);
    auto opts = torch::TensorOptions().dtype(to_torch(t.dtype));
    if (reinterpret_cast<uintptr_t>(ptr) % align != 0) {
        // Misaligned in the file (legal in safetensors): copy instead of viewing.
        auto out = torch::empty(t.shape, opts);
        std::memcpy(out.data_ptr(), ptr, t.end - t.begin);
        return out;
    }
    return torch::from_blob(ptr, t.shape, opts);
}

void save_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    nlohmann::json header = nlohmann::json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::vector<torch::Tensor> cpu;
    cpu.reserve(tensors.size());
    uint64_t offset = 0;
    for (auto& [name, t] : tensors) {
        if (name == "__metadata__" || header.contains(name)) throw Error(fmt::format("{}: duplicate or reserved tensor name '{}'", path, name));
        DType d;
        if (!from_torch(t.scalar_type(), &d)) throw Error(fmt::format("{}: tensor '{}' has an unsupported dtype", path, name));
        auto c = t.detach().to(torch::kCPU).contiguous();
        uint64_t nbytes = uint64_t(c.numel()) * dtype_size(d);
        header[name] = {{"dtype", dtype_name(d)}, {"shape", c.sizes().vec()}, {"data_offsets", {offset, offset + nbytes}}};
        offset += nbytes;
        cpu.push_back(c);
    }
    std::string h = header.dump();
    while ((h.size() + 8) % 8 != 0) h.push_back(' ');  // align the data section to 8 bytes
    write_atomic(path, [&](const fs::path& tmp) {
        std::ofstream out(tmp, std::ios::binary);
        uint64_t n = h.size();
        char len[8];
        for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xff);
        out.write(len, 8);
        out.write(h.data(), std::streamsize(h.size()));
        for (auto& c : cpu) out.write(static_cast<const char*>(c.data_ptr()), std::streamsize(c.numel() * c.element_size()));
        out.flush();
        if (!out) throw Error(fmt::format("{}: write failed", tmp.string()));
    });
}

}  // namespace alexandria::io
