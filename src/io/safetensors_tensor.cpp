// The torch side of safetensors: tensors viewing a mapped file, and writing tensors. Kept apart from the header
// parser so commands that only read headers (`adapter info`) run without libtorch.
#include <cstring>
#include <fstream>

#include <torch/torch.h>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"
#include "alexandria/io/safetensors.h"

namespace alexandria::io {

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

at::Tensor SafetensorsFile::view_shared(const std::string& name) const {
    const auto& t = info(name);
    auto* ptr = const_cast<uint8_t*>(data(t));
    if (!mapping_ || reinterpret_cast<uintptr_t>(ptr) % dtype_size(t.dtype) != 0) return view(name).clone();
    auto keep = mapping_;
    return torch::from_blob(ptr, t.shape, [keep](void*) mutable { keep.reset(); },
                            torch::TensorOptions().dtype(to_torch(t.dtype)));
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
