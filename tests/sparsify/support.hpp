// tests/sparsify/support.hpp: helpers of the sparsify tests: raw little-endian files written by
// the PyTorch oracles, and the message of a refused call.
#pragma once

#include <prune/error.hpp>

#include <catch2/catch.hpp>

#include "../support/files.hpp"

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace sparsify_test {

/// The values of a raw file of T (fails the test when it is missing or empty).
template <class T>
std::vector<T> read_raw(const std::filesystem::path& path) {
    const std::string bytes = prune_test::read_file(path);
    REQUIRE(!bytes.empty());
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(T));
    return values;
}

/// The message of the prune::error f throws ("" when it does not throw).
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const prune::error& e) {
        return e.what();
    }
    return "";
}

}  // namespace sparsify_test
