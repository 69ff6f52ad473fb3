// Runs code in a forked child whose address space is limited (RLIMIT_AS) to what it already uses
// plus a margin: how the tests make thread stacks or allocations run out without touching the
// test process itself.
#pragma once

#include <fstream>
#include <string>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace prune_test {

/// What became of the child: its exit code, or the signal that ended it.
struct child_status {
    int exit_code = -1;  ///< -1 when a signal ended it
    int signal = 0;
};

/// Forks; the child limits its address space to its current size + `margin_mib` MiB and exits
/// with body()'s return value (3 when the limit cannot be set). Returns how the child ended.
template <class Body>
child_status run_with_address_limit(unsigned long long margin_mib, Body&& body) {
    const pid_t pid = ::fork();
    if (pid == 0) {
        std::ifstream status("/proc/self/status");
        std::string line;
        unsigned long long kib = 0;
        while (std::getline(status, line)) {
            if (line.rfind("VmSize:", 0) == 0) kib = std::stoull(line.substr(7));
        }
        const rlim_t limit = (kib + margin_mib * 1024) * 1024;
        const rlimit lim{limit, limit};
        if (kib == 0 || ::setrlimit(RLIMIT_AS, &lim) != 0) ::_exit(3);
        ::_exit(body());
    }
    child_status out;
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return out;
    if (WIFEXITED(status)) out.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) out.signal = WTERMSIG(status);
    return out;
}

}  // namespace prune_test
