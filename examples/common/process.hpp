// examples/common/process.hpp: starting another program without a shell. The program is
// executed directly (fork + execv) with an argument vector, so no path or user string is
// ever parsed by a shell: quotes, `$(...)`, backticks, `;` and spaces in an argument are
// just bytes of that argument. The child is asked to receive SIGTERM when its parent dies
// (Linux PR_SET_PDEATHSIG), so an interrupted parent does not leave it running. Its stderr
// passes through the parent as it comes (progress stays live), and the last line it printed
// becomes part of the parent's error when it fails: the user's last line says why.
#pragma once

#include <prune/error.hpp>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fcntl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/prctl.h>
#endif

namespace prune_cli {

/// The arguments quoted for display only (never passed to a shell): each in single quotes,
/// newlines shown as \n so that an error stays on one line.
inline std::string display_command(const std::filesystem::path& program, const std::vector<std::string>& arguments) {
    std::string out = program.string();
    for (const auto& a : arguments) {
        out += " '";
        for (const char c : a) {
            out += c == '\'' ? std::string("'\\''") : c == '\n' ? std::string("\\n") : std::string(1, c);
        }
        out += "'";
    }
    return out;
}

/// Copies everything readable from `fd` to stderr until end of file; returns the last
/// non-empty line seen (lines end at '\n' or '\r'; at most 1000 characters kept).
inline std::string forward_stderr(int fd) {
    std::string line, last;
    char buffer[4096];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t written = 0; written < n;) {
            const ssize_t w = ::write(STDERR_FILENO, buffer + written, static_cast<std::size_t>(n - written));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;  // our stderr is gone: keep reading so the child does not block
            written += w;
        }
        for (ssize_t i = 0; i < n; ++i) {
            const char c = buffer[i];
            if (c == '\n' || c == '\r') {
                if (!line.empty()) last = line;
                line.clear();
            } else if (line.size() < 1000) {
                line += c;
            }
        }
    }
    return line.empty() ? last : line;
}

/// Runs `program` with `arguments` (argv[1...]; argv[0] is the program's path), waits for it,
/// and returns its exit code. Throws prune::io_error when it cannot be started, is killed by a
/// signal, or (with `require_success`) exits non-zero; the message holds the last line the
/// program wrote to stderr. No shell is involved.
inline int run_program(const std::filesystem::path& program, const std::vector<std::string>& arguments,
                       bool require_success = true) {
    std::vector<std::string> storage;
    storage.reserve(arguments.size() + 1);
    storage.push_back(program.string());
    storage.insert(storage.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    argv.reserve(storage.size() + 1);
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    const std::string shown = display_command(program, arguments);

    std::fflush(nullptr);  // no buffered output duplicated into the child
    int err_pipe[2];
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        const int e = errno;
        throw prune::io_error("cannot start " + program.string() + ": pipe: " +
                              std::error_code(e, std::generic_category()).message());
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        ::close(err_pipe[0]);
        ::close(err_pipe[1]);
        throw prune::io_error("cannot start " + program.string() + ": " +
                              std::error_code(e, std::generic_category()).message());
    }
    if (pid == 0) {  // the child: only async-signal-safe calls until execv
#if defined(__linux__)
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) ::_exit(127);  // the parent already died
#else
        (void)parent;
#endif
        if (::dup2(err_pipe[1], STDERR_FILENO) < 0) ::_exit(127);  // dup2 clears O_CLOEXEC on fd 2
        ::execv(argv[0], argv.data());
        ::_exit(127);
    }
    ::close(err_pipe[1]);
    const std::string said = forward_stderr(err_pipe[0]);
    ::close(err_pipe[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            const int e = errno;
            throw prune::io_error("waiting for " + program.string() + " failed: " +
                                  std::error_code(e, std::generic_category()).message());
        }
    }
    if (WIFSIGNALED(status)) {
        throw prune::io_error(program.filename().string() + " was killed by signal " + std::to_string(WTERMSIG(status)) +
                              ": " + shown);
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (require_success && code != 0) {
        throw prune::io_error(program.filename().string() + " failed (exit " + std::to_string(code) + "): " +
                              (said.empty() ? shown : said + " [command: " + shown + "]"));
    }
    return code;
}

}  // namespace prune_cli
