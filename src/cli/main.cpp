// `alexandria`: git-style subcommands over the shared argument layer in cli.h.
//
// This file is built twice (issue 18). In the `alexandria` executable it runs the light commands — those whose
// files are compiled without libtorch — and hands every other command to libalexandria_torch.so, opened only
// then, so `alexandria --help`, `recommend` or `dataset check` never pay for loading libtorch. Inside that
// library (ALEXANDRIA_WITH_TORCH) it is the entry point `alexandria_torch_main`, with every command registered.
#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#ifdef ALEXANDRIA_WITH_TORCH
#include <c10/util/Exception.h>

#include "alexandria/io/device.h"
#endif

#include "alexandria/version.h"
#include "cli.h"

namespace alexandria::cli {
namespace {
struct Registry {
    std::vector<Command> commands;
    std::vector<std::pair<std::string, std::string>> groups;
};
Registry& registry() {
    static Registry r;
    return r;
}

// The commands that compute with libtorch: the light executable lists them in --help and hands them to the
// library. Their flags and full help live in their own files (src/cli/<command>.cpp); the descriptions here are
// checked against those by tests/cli ("light --help matches the library's").
struct TorchCommand {
    const char* parent;
    const char* name;
    const char* description;
};
constexpr TorchCommand kTorchCommands[] = {
    {"dataset", "import", "Convert recordings (folder of audio + .txt, LJSpeech metadata.csv, or JSONL) into a dataset folder"},
    {"dataset", "prepare", "Encode every usable clip and the reference into the codes cache (DIR/.alexandria/)"},
    {"dataset", "build", "Synthesise a dataset from a voice description with a VoiceDesign model (restartable)"},
    {"", "train", "Train a LoRA voice adapter from a dataset folder"},
    {"", "eval", "Judge voice adapters: held-out loss, EOS/runaway, speaking rate, speaker similarity"},
    {"", "synth", "Speak text (or a JSONL script) in a voice"},
    {"adapter", "merge", "Fold an adapter into a standalone model folder"},
    {"model", "info", "Show a model folder's type, languages, speakers and sizes"},
};
// The command groups, here so both builds describe them the same way whichever files they hold.
constexpr std::pair<const char*, const char*> kGroups[] = {
    {"dataset", "Dataset folders: check, import, prepare, split, build"},
    {"adapter", "Inspect and merge LoRA adapters"},
    {"model", "Inspect model folders"},
};
constexpr const char* kTorchLibrary = "libalexandria_torch.so";

#ifndef ALEXANDRIA_WITH_TORCH
// The command path of argv: the first one or two words that are not options ("train", "dataset prepare").
const TorchCommand* torch_command(int argc, char** argv) {
    if (argc < 2 || argv[1][0] == '-') return nullptr;
    for (const auto& c : kTorchCommands) {
        if (c.parent[0] == '\0' && std::strcmp(argv[1], c.name) == 0) return &c;
        if (c.parent[0] != '\0' && argc >= 3 && std::strcmp(argv[1], c.parent) == 0 &&
            std::strcmp(argv[2], c.name) == 0)
            return &c;
    }
    return nullptr;
}

// libalexandria_torch.so beside the executable (the build tree) or in ../lib/alexandria (an installed tree);
// ALEXANDRIA_TORCH_LIBRARY names another.
std::vector<std::string> torch_library_candidates() {
    if (const char* env = std::getenv("ALEXANDRIA_TORCH_LIBRARY"); env && *env) return {env};
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (ec) return {kTorchLibrary};
    auto dir = exe.parent_path();
    return {(dir / kTorchLibrary).string(), (dir.parent_path() / "lib" / "alexandria" / kTorchLibrary).string()};
}

int run_in_torch_library(const TorchCommand& c, int argc, char** argv) {
    std::string errors;
    for (const auto& path : torch_library_candidates()) {
        if (!std::filesystem::exists(path)) {
            errors += "\n  " + path + ": not found";
            continue;
        }
        void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            errors += "\n  " + std::string(dlerror());
            continue;
        }
        using Main = int (*)(int, char**);
        auto entry = reinterpret_cast<Main>(dlsym(lib, "alexandria_torch_main"));
        if (!entry) {
            errors += "\n  " + path + ": no alexandria_torch_main (a library from another build?)";
            continue;
        }
        return entry(argc, argv);
    }
    std::string name = c.parent[0] ? std::string(c.parent) + " " + c.name : c.name;
    std::fprintf(stderr,
                 "alexandria %s: error: this command computes with libtorch, and alexandria's libtorch part could not "
                 "be loaded:%s\nInstall libtorch with tools/install-libtorch.sh (the README's set-up does) and "
                 "rebuild, or point ALEXANDRIA_TORCH_LIBRARY at %s.\n",
                 name.c_str(), errors.c_str(), kTorchLibrary);
    return 1;
}
#endif

}  // namespace

bool add_command(Command c) {
    registry().commands.push_back(std::move(c));
    return true;
}
bool add_group(const std::string& name, const std::string& description) {
    for (auto& g : registry().groups)
        if (g.first == name) return true;
    registry().groups.emplace_back(name, description);
    return true;
}
void print_json(const nlohmann::json& j) {
    std::string s = j.dump(2);
    s.push_back('\n');
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}
std::string version_string() {
    return fmt::format("{} (libtorch {})", alexandria::kVersion, ALEXANDRIA_LIBTORCH_VERSION);
}

namespace {

int report(const std::string& command, const char* what, int code) {
    std::fprintf(stderr, "alexandria %s: error: %s\n", command.c_str(), what);
    return code;
}

int run_cli(int argc, char** argv) {
    CLI::App app{"alexandria: train Qwen3-TTS LoRA voice adapters and speak text in those voices"};
    app.name("alexandria");
    app.set_version_flag("--version", version_string());
    app.require_subcommand(1);
    app.fallthrough(false);
    app.get_formatter()->column_width(36);

    auto& reg = registry();
    std::map<std::string, CLI::App*> groups;
    auto group = [&](const std::string& name) {
        auto it = groups.find(name);
        if (it != groups.end()) return it->second;
        std::string desc;
        for (auto& [n, d] : reg.groups)
            if (n == name) desc = d;
        for (auto& [n, d] : kGroups)
            if (n == name) desc = d;
        auto* g = app.add_subcommand(name, desc);
        g->require_subcommand(1);
        return groups.emplace(name, g).first->second;
    };
    for (auto& g : reg.groups) group(g.first);

    std::vector<std::pair<CLI::App*, std::string>> subs;  // subcommand, display name
    std::vector<std::shared_ptr<Action>> actions;
    for (auto& c : reg.commands) {
        CLI::App* parent = c.parent.empty() ? &app : group(c.parent);
        auto* sub = parent->add_subcommand(c.name, c.description);
        auto action = std::make_shared<Action>(c.setup(*sub));
        sub->callback([] {});
        subs.emplace_back(sub, c.parent.empty() ? c.name : c.parent + " " + c.name);
        actions.push_back(action);
    }
#ifndef ALEXANDRIA_WITH_TORCH
    // Listed for --help only: main() hands these commands to the library before parsing.
    for (const auto& c : kTorchCommands) {
        CLI::App* parent = c.parent[0] ? group(c.parent) : &app;
        parent->add_subcommand(c.name, c.description)->allow_extras();
    }
#endif

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    }
    for (size_t i = 0; i < subs.size(); ++i) {
        if (!subs[i].first->parsed()) continue;
        try {
            return (*actions[i])();
        } catch (const alexandria::Error& e) {
            return report(subs[i].second, e.what(), e.exit_code());
        } catch (const CLI::ParseError& e) {
            return report(subs[i].second, e.what(), 2);
#ifdef ALEXANDRIA_WITH_TORCH
        } catch (const c10::Error& e) {
            return report(subs[i].second, e.what_without_backtrace(), 1);
#endif
        } catch (const std::exception& e) {
            return report(subs[i].second, e.what(), 1);
        }
    }
    return 2;
}

}  // namespace
}  // namespace alexandria::cli

#ifdef ALEXANDRIA_WITH_TORCH
extern "C" __attribute__((visibility("default"))) int alexandria_torch_main(int argc, char** argv) {
    alexandria::io::keep_freed_memory();
    return alexandria::cli::run_cli(argc, argv);
}
#else
int main(int argc, char** argv) {
    using namespace alexandria::cli;
    if (const TorchCommand* c = torch_command(argc, argv)) return run_in_torch_library(*c, argc, argv);
    return run_cli(argc, argv);
}
#endif
