#include "alexandria/io/files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "alexandria/io/error.h"

namespace alexandria::io {

std::string read_file(const fs::path& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) throw InputError(fmt::format("{}: is a directory, expected a file", path.string()));
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

static std::string temp_suffix() {
    static thread_local std::mt19937_64 rng{std::random_device{}() ^ uint64_t(::getpid())};
    return fmt::format(".tmp-{:08x}", uint32_t(rng()));
}

static void fsync_path(const fs::path& p, bool directory) {
    int fd = ::open(p.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

void write_atomic(const fs::path& path, const std::function<void(const fs::path& tmp)>& write) {
    fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
    std::error_code ec;
    fs::create_directories(dir, ec);
    fs::path tmp = dir / (path.filename().string() + temp_suffix());
    try {
        write(tmp);
        fsync_path(tmp, false);
        fs::rename(tmp, path);
        fsync_path(dir, true);
    } catch (const fs::filesystem_error& e) {
        fs::remove(tmp, ec);
        throw Error(fmt::format("{}: cannot write: {}", path.string(), e.code().message()));
    } catch (...) {
        fs::remove(tmp, ec);
        throw;
    }
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
    write_atomic(path, [&](const fs::path& tmp) {
        std::ofstream out(tmp, std::ios::binary);
        out.write(contents.data(), std::streamsize(contents.size()));
        out.flush();
        if (!out) throw Error(fmt::format("{}: write failed: {}", tmp.string(), std::strerror(errno)));
    });
}

void replace_directory_atomic(const fs::path& dir, const std::function<void(const fs::path& tmp)>& fill) {
    fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
    std::error_code ec;
    fs::create_directories(parent, ec);
    fs::path tmp = parent / (dir.filename().string() + temp_suffix());
    fs::path old = parent / (dir.filename().string() + temp_suffix());
    try {
        fs::create_directories(tmp);
        fill(tmp);
        // rename(2) cannot replace a non-empty directory: move the old one aside first, then drop it.
        bool had_old = fs::exists(dir);
        if (had_old) fs::rename(dir, old);
        fs::rename(tmp, dir);
        if (had_old) fs::remove_all(old, ec);
        fsync_path(parent, true);
    } catch (const fs::filesystem_error& e) {
        fs::remove_all(tmp, ec);
        throw Error(fmt::format("{}: cannot write: {}", dir.string(), e.code().message()));
    } catch (...) {
        fs::remove_all(tmp, ec);
        throw;
    }
}

static uint64_t fnv1a(const void* data, size_t n, uint64_t h = 14695981039346656037ull) {
    auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

std::string hash_string(const std::string& s) { return fmt::format("{:016x}", fnv1a(s.data(), s.size())); }

std::string hash_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw InputError(fmt::format("{}: cannot read: {}", path.string(), std::strerror(errno)));
    uint64_t h = 14695981039346656037ull;
    std::vector<char> buf(1 << 16);
    while (in) {
        in.read(buf.data(), std::streamsize(buf.size()));
        h = fnv1a(buf.data(), size_t(in.gcount()), h);
    }
    return fmt::format("{:016x}", h);
}

fs::path resolve_inside(const fs::path& root, const std::string& relative, const std::string& where) {
    if (relative.empty()) throw InputError(fmt::format("{}: empty path", where));
    if (relative.find('\0') != std::string::npos) throw InputError(fmt::format("{}: path contains a NUL byte", where));
    std::error_code ec;
    fs::path base = fs::weakly_canonical(fs::absolute(root), ec);
    if (ec) throw InputError(fmt::format("{}: cannot resolve folder {}: {}", where, root.string(), ec.message()));
    fs::path rel(relative);
    fs::path joined = rel.is_absolute() ? rel : base / rel;
    // weakly_canonical follows symlinks; a loop shows up as ELOOP.
    fs::path resolved = fs::weakly_canonical(joined, ec);
    if (ec) {
        if (ec == std::errc::too_many_symbolic_link_levels)
            throw InputError(fmt::format("{}: '{}' is a symlink loop", where, relative));
        throw InputError(fmt::format("{}: cannot resolve '{}': {}", where, relative, ec.message()));
    }
    auto b = base.lexically_normal().string();
    auto r = resolved.lexically_normal().string();
    if (!b.empty() && b.back() != '/') b.push_back('/');
    if (r.compare(0, b.size(), b) != 0)
        throw InputError(fmt::format("{}: '{}' points outside the dataset folder {}", where, relative, base.string()));
    return resolved;
}

bool is_terminal(int fd) { return ::isatty(fd) != 0; }

}  // namespace alexandria::io
