// tests/support/run_ok.hpp: running a built binary that must succeed, inside a Catch2 test, and
// reading the JSON it wrote.
#pragma once

#include "files.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

namespace prune_test {

/// Runs `command` (a binary of PRUNE_BINARY_DIR/bin and its arguments) in `dir` with
/// single-threaded OpenBLAS, stderr to dir/err.txt; requires exit 0 (reporting the command and
/// its stderr otherwise) and returns stderr.
inline std::string run_in(const std::filesystem::path& dir, const std::string& command) {
    const outcome o = run_binary(command, dir, dir / "err.txt", "OPENBLAS_NUM_THREADS=1");
    INFO(command << "\n" << o.err);
    REQUIRE(o.code == 0);
    return o.err;
}

/// The JSON file at `path` (required to exist).
inline nlohmann::json read_json(const std::filesystem::path& path) {
    std::ifstream in(path);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

}  // namespace prune_test
