#pragma once
// The shared argument layer. Each subcommand is one file in src/cli/ that registers itself:
//
//   static const bool registered = alexandria::cli::add_command({"recommend", "", "Suggest epochs and lr",
//       [](CLI::App& app) -> alexandria::cli::Action {
//           auto o = std::make_shared<Options>();
//           app.add_option("--samples", o->samples, "...")->capture_default_str();
//           return [o] { return run(*o); };
//       }});
//
// The action returns the exit code; throwing alexandria::InputError gives exit 2, alexandria::Error exit 1,
// both with "alexandria <command>: error: <message>" on stderr. Parse errors exit 2, --help exits 0.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <functional>
#include <string>

#include "alexandria/io/error.h"

namespace alexandria::cli {

using Action = std::function<int()>;

struct Command {
    std::string name;         // e.g. "check"
    std::string parent;       // "" for top level, else the group, e.g. "dataset"
    std::string description;  // one line for --help
    std::function<Action(CLI::App&)> setup;
};

bool add_command(Command c);
// Groups such as `dataset` and `adapter` that only hold subcommands.
bool add_group(const std::string& name, const std::string& description);

// Machine output: one JSON document on stdout (pretty-printed, newline-terminated).
void print_json(const nlohmann::json& j);
// Human output goes to stderr so stdout stays clean for pipes; `--json` commands print only JSON on stdout.
template <typename... Args>
void say(const char* fmt_str, Args&&... args);

// The tool's version string, e.g. "0.1.0 (libtorch 1.13.1)".
std::string version_string();

}  // namespace alexandria::cli

#include <fmt/format.h>
#include <cstdio>
template <typename... Args>
void alexandria::cli::say(const char* fmt_str, Args&&... args) {
    std::fputs(fmt::format(fmt::runtime(fmt_str), std::forward<Args>(args)...).c_str(), stderr);
    std::fputc('\n', stderr);
}
