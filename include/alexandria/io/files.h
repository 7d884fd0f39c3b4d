#pragma once
// Filesystem helpers: atomic writes, content hashes, whole-file reads, dataset-relative path resolution.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

namespace alexandria::io {

namespace fs = std::filesystem;

// Reads a whole file; InputError naming the path when it cannot.
std::string read_file(const fs::path& path);

// Writes via a temporary file in the same directory, fsync, rename: readers see the old file or the new one.
void write_file_atomic(const fs::path& path, const std::string& contents);
// Same, for writers that produce the file themselves: `write` receives the temp path to fill.
void write_atomic(const fs::path& path, const std::function<void(const fs::path& tmp)>& write);
// Replaces a directory atomically (build in `<dir>.tmp-XXXX`, then rename over the old one).
void replace_directory_atomic(const fs::path& dir, const std::function<void(const fs::path& tmp)>& fill);

// 64-bit FNV-1a of the file's bytes as 16 hex digits (content hash for caches and splits).
std::string hash_file(const fs::path& path);
std::string hash_string(const std::string& s);

// Resolves `relative` against `root`; InputError (naming `where`) if it is absolute outside root, escapes root
// via `..` or symlinks, or loops.
fs::path resolve_inside(const fs::path& root, const std::string& relative, const std::string& where);

bool is_terminal(int fd);

}  // namespace alexandria::io
