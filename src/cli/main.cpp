// `alexandria`: git-style subcommands over the shared argument layer in cli.h.
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include <torch/version.h>

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
    return fmt::format("{} (libtorch {})", alexandria::kVersion, TORCH_VERSION);
}
}  // namespace alexandria::cli

int main(int argc, char** argv) {
    using namespace alexandria::cli;
    CLI::App app{"alexandria: train Qwen3-TTS LoRA voice adapters and speak text in those voices"};
    app.name("alexandria");
    app.set_version_flag("--version", version_string());
    app.require_subcommand(1);
    app.fallthrough(false);
    app.get_formatter()->column_width(36);

    auto& reg = registry();
    std::map<std::string, CLI::App*> groups;
    for (auto& [name, desc] : reg.groups) {
        auto* g = app.add_subcommand(name, desc);
        g->require_subcommand(1);
        groups[name] = g;
    }
    std::vector<std::pair<CLI::App*, std::string>> subs;  // subcommand, display name
    std::vector<std::shared_ptr<Action>> actions;
    for (auto& c : reg.commands) {
        CLI::App* parent = &app;
        if (!c.parent.empty()) {
            auto it = groups.find(c.parent);
            if (it == groups.end()) {
                auto* g = app.add_subcommand(c.parent, "");
                g->require_subcommand(1);
                it = groups.emplace(c.parent, g).first;
            }
            parent = it->second;
        }
        auto* sub = parent->add_subcommand(c.name, c.description);
        auto action = std::make_shared<Action>(c.setup(*sub));
        sub->callback([] {});
        subs.emplace_back(sub, c.parent.empty() ? c.name : c.parent + " " + c.name);
        actions.push_back(action);
    }

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
            std::fprintf(stderr, "alexandria %s: error: %s\n", subs[i].second.c_str(), e.what());
            return e.exit_code();
        } catch (const CLI::ParseError& e) {
            std::fprintf(stderr, "alexandria %s: error: %s\n", subs[i].second.c_str(), e.what());
            return 2;
        } catch (const c10::Error& e) {
            std::fprintf(stderr, "alexandria %s: error: %s\n", subs[i].second.c_str(), e.what_without_backtrace());
            return 1;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "alexandria %s: error: %s\n", subs[i].second.c_str(), e.what());
            return 1;
        }
    }
    return 2;
}
