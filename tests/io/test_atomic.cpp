// Tests for prune/io/atomic.hpp: atomic files and staged output directories leave the
// previous output or the new one, never a mixture and never debris, including when
// the process is killed by SIGTERM/SIGINT mid-way (a forked child is killed for real).
#include <prune/io/atomic.hpp>

#include "test_support.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace prune;
using namespace prune::io;
using prune_test::read_bytes;
using prune_test::temp_dir;

TEST_CASE("write_file_atomically replaces the file whole") {
    temp_dir dir;
    write_file_atomically(dir / "a.txt", std::string_view("first"));
    CHECK(read_bytes(dir / "a.txt") == "first");
    write_file_atomically(dir / "a.txt", std::string_view("second, longer"));
    CHECK(read_bytes(dir / "a.txt") == "second, longer");
    const std::vector<std::byte> bytes = {std::byte{0}, std::byte{255}};
    write_file_atomically(dir / "b.bin", std::span<const std::byte>(bytes));
    CHECK(read_bytes(dir / "b.bin") == std::string("\0\xff", 2));
    CHECK(dir.listing() == std::vector<std::string>{"a.txt", "b.bin"});
}

TEST_CASE("an uncommitted atomic_file leaves the old file and no temporary") {
    temp_dir dir;
    write_file_atomically(dir / "model.bin", std::string_view("old"));
    {
        atomic_file file(dir / "model.bin");
        file.write(std::string_view("half of the new"));
        CHECK(std::filesystem::exists(file.temporary()));
        CHECK(file.temporary().parent_path() == dir.path());
        CHECK(file.temporary().filename().string().front() == '.');
        // destroyed without commit (as when an exception unwinds)
    }
    CHECK(read_bytes(dir / "model.bin") == "old");
    CHECK(dir.listing() == std::vector<std::string>{"model.bin"});
}

TEST_CASE("unwritable destinations are io_errors and leave nothing") {
    temp_dir dir;
    CHECK_THROWS_SAYS(write_file_atomically(dir / "no" / "such" / "x", std::string_view("x")), io_error,
                      "cannot create a temporary file");
    prune_test::write_bytes(dir / "plain", "file");
    CHECK_THROWS_AS(write_file_atomically(dir / "plain" / "x", std::string_view("x")), io_error);
    CHECK_THROWS_SAYS(output_directory(dir / "missing" / "out"), io_error, "does not exist");
    CHECK_THROWS_SAYS(output_directory(dir / "plain"), io_error, "is not a directory");
    CHECK_THROWS_SAYS(output_directory("/proc/prune-cannot-write-here"), io_error, "is not writable");
    if (::geteuid() != 0) {  // root ignores permission bits
        std::filesystem::create_directory(dir / "ro");
        std::filesystem::permissions(dir / "ro", std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
        CHECK_THROWS_SAYS(output_directory(dir / "ro" / "out"), io_error, "is not writable");
        CHECK_THROWS_AS(write_file_atomically(dir / "ro" / "x", std::string_view("x")), io_error);
    }
    const auto listing = dir.listing();
    CHECK((listing == std::vector<std::string>{"plain"} || listing == std::vector<std::string>{"plain", "ro"}));
}

TEST_CASE("output_directory refuses the root directory instead of looping on it") {
    // parent_path("/") is "/": the trailing-separator loop used to spin forever here.
    CHECK_THROWS_SAYS(output_directory("/"), io_error, "'/' cannot be an output directory (the root directory");
    CHECK_THROWS_SAYS(output_directory("//"), io_error, "cannot be an output directory (the root directory");
    CHECK_THROWS_SAYS(output_directory(std::filesystem::path("/") / ""), io_error, "the root directory");
}

TEST_CASE("atomic_file writes through a symbolic link and refuses a directory") {
    temp_dir dir;
    prune_test::write_bytes(dir / "real.json", "old");
    std::filesystem::create_symlink("real.json", dir / "link");
    write_file_atomically(dir / "link", std::string_view("new"));
    CHECK(std::filesystem::is_symlink(dir / "link"));  // the link itself stays
    CHECK(read_bytes(dir / "real.json") == "new");     // its target was replaced
    std::filesystem::create_symlink("sub/../missing.json", dir / "dangling");
    std::filesystem::create_directory(dir / "sub");
    write_file_atomically(dir / "dangling", std::string_view("made"));  // a dangling link: its target is created
    CHECK(std::filesystem::is_symlink(dir / "dangling"));
    CHECK(read_bytes(dir / "missing.json") == "made");
    CHECK_THROWS_SAYS(write_file_atomically(dir / "sub", std::string_view("x")), io_error, "it is a directory");
    CHECK(dir.listing() == std::vector<std::string>{"dangling", "link", "missing.json", "real.json", "sub"});
}

TEST_CASE("atomic_file writes a FIFO and a character device in place, never replacing them") {
    temp_dir dir;
    const auto fifo = dir / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    const int reader = ::open(fifo.c_str(), O_RDWR | O_NONBLOCK);  // O_RDWR: opening for writing does not block
    REQUIRE(reader >= 0);
    {
        atomic_file file(fifo);
        CHECK(file.temporary().empty());  // no temporary: written in place
        file.write(std::string_view("through the pipe"));
        file.commit();
    }
    char buffer[64] = {};
    CHECK(::read(reader, buffer, sizeof buffer) == 16);
    CHECK(std::string(buffer) == "through the pipe");
    ::close(reader);
    CHECK(std::filesystem::is_fifo(fifo));
    CHECK(dir.listing() == std::vector<std::string>{"fifo"});
    // /dev/null: checked before commit, so that a regression fails here instead of renaming over it.
    atomic_file null("/dev/null");
    REQUIRE(null.temporary().empty());
    null.write(std::string_view("discarded"));
    null.commit();
    CHECK(std::filesystem::is_character_file("/dev/null"));
}

TEST_CASE("output_directory appears whole on commit and replaces the previous one") {
    temp_dir dir;
    const auto target = dir / "out";
    {
        output_directory out(target);
        prune_test::write_bytes(out / "a.txt", "1");
        CHECK_FALSE(std::filesystem::exists(target));
        out.commit();
        CHECK(out.committed());
    }
    CHECK(read_bytes(target / "a.txt") == "1");
    {
        output_directory out(target);
        prune_test::write_bytes(out / "b.txt", "2");
        CHECK(read_bytes(target / "a.txt") == "1");  // the previous output is intact until commit
        out.commit();
    }
    CHECK_FALSE(std::filesystem::exists(target / "a.txt"));  // replaced, not merged
    CHECK(read_bytes(target / "b.txt") == "2");
    CHECK(dir.listing() == std::vector<std::string>{"out"});
    {
        output_directory out(dir / "out/");  // a trailing slash names the same directory
        prune_test::write_bytes(out / "c.txt", "3");
        // not committed: an exception in the middle of writing
    }
    CHECK(read_bytes(target / "b.txt") == "2");
    CHECK(dir.listing() == std::vector<std::string>{"out"});
}

namespace {

/// Forks a child that runs body(ready_fd): it starts writing outputs, then calls
/// signal_ready_and_wait(ready_fd); the parent then sends the signal.
/// Returns the child's wait status after sending `signal_number`.
template <class Body>
int kill_midway(int signal_number, Body body) {
    int pipe_fds[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::close(pipe_fds[0]);
        try {
            remove_staging_on_signal();
            body(pipe_fds[1]);
        } catch (...) {
            ::_exit(3);
        }
        ::_exit(4);  // body returns only on failure
    }
    ::close(pipe_fds[1]);
    char ready = 0;
    const ssize_t n = ::read(pipe_fds[0], &ready, 1);
    ::close(pipe_fds[0]);
    REQUIRE(n == 1);
    ::kill(child, signal_number);
    int status = 0;
    ::waitpid(child, &status, 0);
    return status;
}

/// In the child: tell the parent we are mid-way, then wait for the signal.
void signal_ready_and_wait(int fd) {
    const char c = 'r';
    if (::write(fd, &c, 1) != 1) {
        ::_exit(5);
    }
    for (;;) {
        ::pause();
    }
}

}  // namespace

TEST_CASE("SIGTERM, SIGINT or SIGHUP mid-way leaves the previous output intact and no staging debris") {
    const int signal_number = GENERATE(SIGTERM, SIGINT, SIGHUP);
    temp_dir dir;
    const auto target = dir / "model";
    std::filesystem::create_directory(target);
    prune_test::write_bytes(target / "weights.bin", "previous");
    prune_test::write_bytes(dir / "report.json", "{\"previous\": true}");

    const int status = kill_midway(signal_number, [&](int ready_fd) {
        output_directory out(target);
        prune_test::write_bytes(out / "weights.bin", "half-written new");
        atomic_file report(dir / "report.json");
        report.write(std::string_view("{\"new\":"));
        signal_ready_and_wait(ready_fd);
    });
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == signal_number);  // the process still dies of the signal
    CHECK(read_bytes(target / "weights.bin") == "previous");
    CHECK(read_bytes(dir / "report.json") == "{\"previous\": true}");
    CHECK(dir.listing() == std::vector<std::string>{"model", "report.json"});
}

TEST_CASE("remove_staging_now deletes live staging paths") {
    temp_dir dir;
    output_directory out(dir / "out");
    std::filesystem::create_directories(out / "nested" / "deeper");
    prune_test::write_bytes(out / "nested" / "deeper" / "x", "x");
    atomic_file file(dir / "f");
    remove_staging_now();
    CHECK(dir.listing().empty());
}

TEST_CASE("temporary names carry their process and host, and parse back") {
    const auto name = io::detail::hidden_sibling("dir/model", "staging").filename().string();
    const io::detail::temporary_owner owner = io::detail::owner_of_temporary(name);
    CHECK(owner.pid == static_cast<long>(::getpid()));
    CHECK(owner.host == io::detail::host_tag());
    CHECK(name.rfind(".model.staging-" + std::to_string(::getpid()) + "-", 0) == 0);
    // names that only look alike are not temporaries: an unknown tag, a host tag that is not
    // hex, a random part of the wrong length, no leading dot
    CHECK(io::detail::owner_of_temporary(".model.backup-12-0123abcd-abcdefghij").pid == 0);
    CHECK(io::detail::owner_of_temporary(".model.staging-12-0123abcz-abcdefghij").pid == 0);
    CHECK(io::detail::owner_of_temporary(".model.staging-12-0123abcd-abcdefghi").pid == 0);
    CHECK(io::detail::owner_of_temporary("model.staging-12-0123abcd-abcdefghij").pid == 0);
    CHECK(io::detail::owner_of_temporary(".model.staging-12-0123abcd-abcdefghij").pid == 12);
}

TEST_CASE("a killed process's debris is removed by the next output in its directory, nothing else") {
    temp_dir dir;
    std::filesystem::create_directory(dir / "model");
    prune_test::write_bytes(dir / "model" / "weights.bin", "previous");
    pid_t dead = 0;
    const int status = kill_midway(SIGKILL, [&](int ready_fd) {
        output_directory out(dir / "model");
        prune_test::write_bytes(out / "weights.bin", "half-written new");
        atomic_file report(dir / "report.json");
        report.write(std::string_view("{\"new\":"));
        signal_ready_and_wait(ready_fd);
    });
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    const auto before = dir.listing();
    REQUIRE(before.size() == 3);  // model and the dead child's staging directory and temporary
    dead = static_cast<pid_t>(io::detail::owner_of_temporary(before[0]).pid);
    REQUIRE(dead > 0);
    // what must survive the sweep: a live process's staging (ours), a dead process's of another
    // host, a hidden file of the user's
    output_directory live(dir / "live");
    const std::string other_host = ".x.staging-" + std::to_string(dead) + "-" +
                                   (io::detail::host_tag() == "00000000" ? "00000001" : "00000000") + "-abcdefghij";
    std::filesystem::create_directory(dir / other_host);
    prune_test::write_bytes(dir / ".model.staging-notes", "the user's");

    output_directory next(dir / "model");  // the sweep runs here
    prune_test::write_bytes(next / "weights.bin", "new");
    next.commit();
    const auto after = dir.listing();
    CHECK(std::count_if(after.begin(), after.end(), [&](const std::string& n) {
              return io::detail::owner_of_temporary(n).pid == dead && io::detail::owner_of_temporary(n).host == io::detail::host_tag();
          }) == 0);
    CHECK(std::find(after.begin(), after.end(), live.path().filename().string()) != after.end());
    CHECK(std::find(after.begin(), after.end(), other_host) != after.end());
    CHECK(std::find(after.begin(), after.end(), ".model.staging-notes") != after.end());
    CHECK(read_bytes(dir / "model" / "weights.bin") == "new");
}

TEST_CASE("output names up to the file-name limit are written (the temporary's name is shortened)") {
    temp_dir dir;
    const std::string name(250, 'n');
    {
        output_directory out(dir / name);
        prune_test::write_bytes(out / "x", "x");
        out.commit();
    }
    write_file_atomically(dir / (name + ".json"), std::string_view("{}"));  // 255 bytes
    CHECK(dir.listing() == std::vector<std::string>{name, name + ".json"});
    CHECK(read_bytes(dir / name / "x") == "x");
}
