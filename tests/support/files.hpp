// tests/support/files.hpp: file and process helpers shared by the tests that run the built
// binaries (tests/badinput, tests/determinism, tests/finetune): read and write whole files,
// a per-process temporary directory, and running PRUNE_BINARY_DIR/bin/<binary> with its
// stderr kept. Standard library and POSIX only.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace prune_test {

/// The bytes of `path` ("" when it cannot be read).
inline std::string read_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

/// Writes `bytes` to `path` (parent directories created); throws when the write fails.
inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
    if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.good()) throw std::runtime_error("cannot write " + path.string());
}

/// The last line of `text`, trailing newlines ignored (the binaries' error line comes last).
inline std::string last_line(std::string text) {
    while (!text.empty() && text.back() == '\n') text.pop_back();
    const auto pos = text.rfind('\n');
    return pos == std::string::npos ? text : text.substr(pos + 1);
}

/// A fresh directory <tmp>/<name>_<pid>, removed with everything in it on destruction
/// (kept when the environment sets PRUNE_KEEP_TEST_DIR, to look at what a test wrote).
class temp_dir {
public:
    /// Makes the directory, removing a stale one of the same name first.
    explicit temp_dir(const std::string& name)
        : path_(std::filesystem::temp_directory_path() / (name + "_" + std::to_string(::getpid()))) {
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    ~temp_dir() {
        if (std::getenv("PRUNE_KEEP_TEST_DIR") == nullptr) std::filesystem::remove_all(path_);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    /// The directory.
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

/// What a run of a binary gave: its exit code (-1 when it did not exit normally) and its stderr.
struct outcome {
    int code;
    std::string err;
};

/// Runs `command` (a binary of PRUNE_BINARY_DIR/bin and its arguments) through the shell in the
/// directory `cwd`, with `env` (e.g. "OPENBLAS_NUM_THREADS=1", may be empty) before it; stdout
/// is discarded, stderr goes to the file `stderr_file` and is returned.
inline outcome run_binary(const std::string& command, const std::filesystem::path& cwd,
                          const std::filesystem::path& stderr_file, const std::string& env = "") {
    const std::string line = "cd '" + cwd.string() + "' && " + (env.empty() ? "" : env + " ") +
                             std::string(PRUNE_BINARY_DIR) + "/bin/" + command + " > /dev/null 2> '" +
                             stderr_file.string() + "'";
    const int status = std::system(line.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(stderr_file)};
}

}  // namespace prune_test
