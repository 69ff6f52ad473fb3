// tests/sparsify/support.hpp: helpers of the sparsify tests: raw little-endian files written by
// the PyTorch oracles, the message of a refused call, random normal values and SPD matrices,
// causal-LM calibration rows as JSON Lines.
#pragma once

#include <prune/error.hpp>

#include <catch2/catch.hpp>

#include "../support/files.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace sparsify_test {

/// Calibration rows: `count` sequences of lengths 3, 5, 7, ... (at most 16), token ids mod vocab.
inline std::vector<std::vector<std::int32_t>> rows_of(int count, int vocab) {
    std::vector<std::vector<std::int32_t>> rows;
    for (int i = 0; i < count; ++i) {
        rows.emplace_back();
        for (int t = 0; t < std::min(16, 3 + 2 * i); ++t) rows.back().push_back((11 * i + 7 * t + 1) % vocab);
    }
    return rows;
}

/// The rows as JSON Lines of input_ids.
inline void write_jsonl(const std::filesystem::path& path, const std::vector<std::vector<std::int32_t>>& rows) {
    std::ofstream f(path);
    for (const auto& r : rows) f << nlohmann::json{{"input_ids", r}}.dump() << "\n";
}

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

/// count standard normal values of type T (std::mt19937 seeded with seed).
template <class T = double>
std::vector<T> random_values(std::size_t count, unsigned seed) {
    std::mt19937 gen(seed);
    std::normal_distribution<T> normal(T{0}, T{1});
    std::vector<T> x(count);
    for (T& v : x) v = normal(gen);
    return x;
}

/// B B^T / k + I for a random B [n, k]: symmetric positive definite.
inline std::vector<double> random_spd(std::size_t n, std::size_t k, unsigned seed) {
    const std::vector<double> b = random_values(n * k, seed);
    std::vector<double> a(n * n);
    for (std::size_t i = 0; i < n; ++i) {
        for (std::size_t j = 0; j < n; ++j) {
            double s = i == j ? 1.0 : 0.0;
            for (std::size_t t = 0; t < k; ++t) s += b[i * k + t] * b[j * k + t] / static_cast<double>(k);
            a[i * n + j] = s;
        }
    }
    return a;
}

}  // namespace sparsify_test
