#include "alexandria/io/model_location.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "alexandria/io/error.h"
#include "alexandria/io/files.h"

namespace alexandria::io {

static std::vector<fs::path> hub_caches() {
    std::vector<fs::path> out;
    auto env = [](const char* k) -> std::string { const char* v = std::getenv(k); return v ? v : ""; };
    if (!env("HF_HUB_CACHE").empty()) out.emplace_back(env("HF_HUB_CACHE"));
    if (!env("HUGGINGFACE_HUB_CACHE").empty()) out.emplace_back(env("HUGGINGFACE_HUB_CACHE"));
    if (!env("HF_HOME").empty()) out.emplace_back(fs::path(env("HF_HOME")) / "hub");
    if (!env("XDG_CACHE_HOME").empty()) out.emplace_back(fs::path(env("XDG_CACHE_HOME")) / "huggingface" / "hub");
    if (!env("HOME").empty()) out.emplace_back(fs::path(env("HOME")) / ".cache" / "huggingface" / "hub");
    return out;
}

std::string locate_model(const std::string& spec) {
    std::error_code ec;
    if (spec.empty()) throw InputError("--model: empty model path");
    if (fs::is_directory(spec, ec)) {
        if (!fs::exists(fs::path(spec) / "config.json", ec))
            throw InputError(fmt::format("{}: not a model folder (no config.json)", spec));
        return spec;
    }
    std::vector<std::string> looked{spec + " (as a folder)"};
    // A repo id looks like Org/Name with exactly one slash and no leading ./ or /
    auto slash = spec.find('/');
    bool repo_id = slash != std::string::npos && spec.find('/', slash + 1) == std::string::npos && spec[0] != '.' &&
                   spec[0] != '/' && slash > 0 && slash + 1 < spec.size();
    if (repo_id) {
        std::string folder = "models--" + spec.substr(0, slash) + "--" + spec.substr(slash + 1);
        for (auto& cache : hub_caches()) {
            fs::path repo = cache / folder;
            looked.push_back((repo / "snapshots").string());
            if (!fs::is_directory(repo / "snapshots", ec)) continue;
            fs::path ref = repo / "refs" / "main";
            if (fs::exists(ref, ec)) {
                std::string rev = read_file(ref);
                while (!rev.empty() && (rev.back() == '\n' || rev.back() == '\r' || rev.back() == ' ')) rev.pop_back();
                fs::path snap = repo / "snapshots" / rev;
                if (fs::exists(snap / "config.json", ec)) return snap.string();
            }
            fs::path newest;
            fs::file_time_type newest_t{};
            for (auto& e : fs::directory_iterator(repo / "snapshots", ec)) {
                if (!fs::exists(e.path() / "config.json", ec)) continue;
                auto t = fs::last_write_time(e.path(), ec);
                if (newest.empty() || t > newest_t) { newest = e.path(); newest_t = t; }
            }
            if (!newest.empty()) return newest.string();
        }
    }
    std::string msg = fmt::format("model '{}' not found; looked in:", spec);
    for (auto& l : looked) msg += "\n  " + l;
    msg += "\n(alexandria never downloads; pass a model folder or pre-fetch it into the Hugging Face cache)";
    throw InputError(msg);
}

}  // namespace alexandria::io
