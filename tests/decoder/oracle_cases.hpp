// The checkpoints and expectations tests/decoder/oracle.py writes (once per test process, in a
// temporary directory removed at exit), and readers for them shared by the decoder tests.
#pragma once

#include <prune/models/decoder/forward.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace oracle {

namespace fs = std::filesystem;

/// The temporary directory of this process.
inline fs::path directory_name() {
    return fs::temp_directory_path() / ("prune_decoder_oracle_" + std::to_string(::getpid()));
}

/// Removes the directory when the process ends.
struct cleanup {
    ~cleanup() {
        std::error_code ec;
        fs::remove_all(directory_name(), ec);
    }
};

/// The oracle's output directory, written on first use.
inline const fs::path& dir() {
    static const cleanup remove_at_exit;
    static const fs::path d = [] {
        const fs::path out = directory_name();
        fs::remove_all(out);
        const std::string command = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/decoder/oracle.py " + out.string();
        REQUIRE(std::system(command.c_str()) == 0);
        return out;
    }();
    return d;
}

/// A JSON file of one case ("case.json", "grads.json").
inline nlohmann::json load(const std::string& name, const char* file = "case.json") {
    std::ifstream in(dir() / name / file);
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
}

/// The case's token sequences, packed.
inline prune::decoder::sequences sequences_of(const nlohmann::json& c) {
    prune::decoder::sequences s;
    for (const auto& row : c["sequences"]) s.add(row.get<std::vector<std::int32_t>>());
    return s;
}

/// The case's gates (empty = all 1 when the case is not gated).
inline prune::decoder::gates gates_of(const nlohmann::json& c) {
    prune::decoder::gates g;
    if (!c["gated"].get<bool>()) return g;
    g.heads = c["gates"]["heads"].get<std::vector<std::vector<float>>>();
    g.kv_groups = c["gates"]["kv_groups"].get<std::vector<std::vector<float>>>();
    g.mlps = c["gates"]["mlps"].get<std::vector<float>>();
    return g;
}

/// The six cases.
inline const std::vector<std::string>& cases() {
    static const std::vector<std::string> names{"llama_mha",         "llama_gqa2_tied_bias_f16", "llama_gqa4_bf16_shards",
                                                "llama_linear_rope", "gpt2_prefix",              "gpt2_noprefix_f16"};
    return names;
}

}  // namespace oracle
