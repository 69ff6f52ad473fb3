// No path or user string reaches a shell (docs/bad-inputs.md, "Paths are never shell code").
// prune-lottery starts prune-data and prune-pretrain; these tests copy prune-lottery into a
// scratch directory beside fake prune-data / prune-pretrain scripts (it runs the siblings of
// its own executable), then give it a --cache path full of shell metacharacters: a single
// quote, `;`, `$(...)`, backticks, spaces and a newline. The fakes record the argument vector
// they received; the test checks it holds the path as one intact argument and that none of the
// embedded `touch` commands ran. A further test SIGTERMs prune-lottery while its child runs and
// checks that the child is stopped too (it used to keep running and write into the cache).
#include "../support/files.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

using prune_test::read_file;
using prune_test::write_file;

/// Starts `argv` (argv[0] a path) in `cwd` without a shell, stdout to /dev/null, stderr to `err`.
pid_t start(const std::vector<std::string>& argv, const fs::path& cwd, const fs::path& err) {
    std::vector<std::string> storage = argv;
    std::vector<char*> pointers;
    for (auto& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (::chdir(cwd.c_str()) != 0) ::_exit(126);
        const int null = ::open("/dev/null", O_WRONLY);
        const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (null < 0 || e < 0) ::_exit(126);
        ::dup2(null, 1);
        ::dup2(e, 2);
        ::setenv("OPENBLAS_NUM_THREADS", "1", 1);
        ::execv(pointers[0], pointers.data());
        ::_exit(127);
    }
    return pid;
}

/// Waits for `pid`; its exit code, or -signal when a signal ended it.
int finish(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
}

/// True while `pid` exists and is not a zombie.
bool alive(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return false;
    const auto close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

/// A scratch directory with a copy of prune-lottery and fake siblings.
struct scratch {
    prune_test::temp_dir dir{"prune_no_shell"};
    fs::path bin = dir.path() / "bin";
    fs::path work = dir.path() / "work";
    fs::path args = dir.path() / "args.txt";  // where a fake writes its argument vector, one per line

    scratch() {
        fs::create_directories(bin);
        fs::create_directories(work);
        fs::copy_file(fs::path(PRUNE_BINARY_DIR) / "bin" / "prune-lottery", bin / "prune-lottery");
        fs::permissions(bin / "prune-lottery", fs::perms::owner_all, fs::perm_options::add);
    }
    /// Installs the fake `name` running `body` after recording its arguments to args.txt.
    void fake(const std::string& name, const std::string& body) {
        write_file(bin / name, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '" + args.string() +
                                   "'\n" + body + "\n");
        fs::permissions(bin / name, fs::perms::owner_all, fs::perm_options::add);
    }
};

/// Splits text into lines (a trailing newline ends the last line).
std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::string line;
    for (const char c : text) {
        if (c == '\n') {
            out.push_back(line);
            line.clear();
        } else {
            line += c;
        }
    }
    return out;
}

}  // namespace

TEST_CASE("prune-lottery passes a --cache full of shell metacharacters to prune-data as one argument") {
    scratch s;
    const fs::path pwned = s.dir.path() / "PWNED";
    // Every way a shell would run the embedded command; no newline, so that args.txt stays one line per argument.
    const std::string cache = (s.work / "c'; touch PWNED; ' $(touch PWNED) `touch PWNED` \"; touch PWNED\" x").string();
    s.fake("prune-data", "exit 3");
    const pid_t pid = start({(s.bin / "prune-lottery").string(), "--quick", "--cache", cache, "--out", "out"},
                            s.dir.path(), s.dir.path() / "err.txt");
    const int code = finish(pid);
    const std::string err = read_file(s.dir.path() / "err.txt");
    INFO(err);
    CHECK(code == 2);
    CHECK(prune_test::last_line(err).rfind("prune-lottery: prune-data failed (exit 3): ", 0) == 0);
    const auto got = lines(read_file(s.args));
    const std::vector<std::string> expected = {"wordnet", "--out=" + cache + "/wordnet-glue-s1-400x200", "--seed", "1",
                                               "--train-rows", "400", "--dev-rows", "200"};
    CHECK(got == expected);
    CHECK(!fs::exists(pwned));
    CHECK(!fs::exists(s.work / "PWNED"));
    CHECK(!fs::exists(s.dir.path() / "out"));
}

TEST_CASE("prune-lottery passes --cache and --data-seed to prune-pretrain as arguments, never to a shell") {
    scratch s;
    // Relative and starting with '-': passed on as --data=VALUE / --out=VALUE, never read as a flag.
    const std::string cache = "-c $(touch PWNED);'`touch PWNED`'";
    // The fake prune-data makes a suite with the quick run's tasks (what the lottery checks before pre-training).
    s.fake("prune-data",
           "out=${2#--out=}\nfor t in supersense pos concrete hypernym same_supersense cohyponym example_match same_pos; "
           "do mkdir -p -- \"$out/$t\" && : > \"$out/$t/train.jsonl\" && : > \"$out/$t/dev.jsonl\"; done\n"
           ": > \"$out/stats.json\"\nexit 0");
    const fs::path pretrain_args = s.dir.path() / "pretrain-args.txt";
    write_file(s.bin / "prune-pretrain", "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '" +
                                             pretrain_args.string() + "'\nexit 4\n");
    fs::permissions(s.bin / "prune-pretrain", fs::perms::owner_all, fs::perm_options::add);
    const pid_t pid = start({(s.bin / "prune-lottery").string(), "--quick", "--cache=" + cache, "--out", "out"},
                            s.dir.path(), s.dir.path() / "err.txt");
    const int code = finish(pid);
    const std::string err = read_file(s.dir.path() / "err.txt");
    INFO(err);
    CHECK(code == 2);
    CHECK(prune_test::last_line(err).rfind("prune-lottery: prune-pretrain failed (exit 4): ", 0) == 0);
    const std::vector<std::string> expected = {"--data=" + cache + "/wordnet-glue-s1-400x200",
                                               "--out=" + cache + "/tiny-bert-quick-s1",
                                               "--seed",
                                               "1",
                                               "--minutes",
                                               "0.5"};
    CHECK(lines(read_file(pretrain_args)) == expected);
    CHECK(fs::exists(s.dir.path() / cache / "wordnet-glue-s1-400x200" / "stats.json"));  // the fake ran with that path
    CHECK(!fs::exists(s.work / "PWNED"));
    CHECK(!fs::exists(s.dir.path() / "PWNED"));
    CHECK(!fs::exists(s.dir.path() / "out"));
}

TEST_CASE("a SIGTERM to prune-lottery stops the prune-data it started") {
    scratch s;
    const fs::path pid_file = s.dir.path() / "child.pid";
    // exec keeps the pid: the recorded pid is the sleeping process itself.
    s.fake("prune-data", "echo $$ > '" + pid_file.string() + ".tmp' && mv '" + pid_file.string() + ".tmp' '" +
                             pid_file.string() + "'\nexec sleep 60");
    const pid_t pid = start({(s.bin / "prune-lottery").string(), "--quick", "--cache", (s.work / "cache").string(),
                             "--out", "out"},
                            s.dir.path(), s.dir.path() / "err.txt");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!fs::exists(pid_file) && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    REQUIRE(fs::exists(pid_file));
    const pid_t child = static_cast<pid_t>(std::stol(read_file(pid_file)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let the shell exec sleep
    REQUIRE(alive(child));
    ::kill(pid, SIGTERM);
    CHECK(finish(pid) == -SIGTERM);
    bool stopped = false;
    for (int i = 0; i < 250 && !stopped; ++i) {  // up to 5 s
        stopped = !alive(child);
        if (!stopped) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!stopped) ::kill(child, SIGKILL);
    CHECK(stopped);
}
