// examples/common/cli.hpp: what every example binary shares: the CLI contract of
// ../../docs (docs/bad-inputs.md): exit 0 on success, 2 on bad usage or bad input with a
// one-line reason on stderr, progress on stderr only.
#pragma once

#include <prune/error.hpp>

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <functional>
#include <new>
#include <string>

namespace prune_cli {

/// Exit code for success.
inline constexpr int exit_ok = 0;
/// Exit code for bad usage or bad input (also for an internal failure, which prints "internal error").
inline constexpr int exit_bad_input = 2;

/// Parses the command line with `app`, then runs `body`; maps every failure to the contract:
/// CLI11 usage errors, prune::error and std::exception give one line on stderr and exit 2.
inline int run(CLI::App& app, int argc, char** argv, const std::function<void()>& body) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::fprintf(stderr, "%s: %s (see --help)\n", app.get_name().c_str(), e.what());
        return exit_bad_input;
    }
    try {
        body();
    } catch (const prune::error& e) {
        std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
        return exit_bad_input;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "%s: out of memory\n", app.get_name().c_str());
        return exit_bad_input;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), e.what());
        return exit_bad_input;
    }
    return exit_ok;
}

}  // namespace prune_cli
