// tests/pretrain/oracle.hpp: runs tests/pretrain/mlm_oracle.py (PyTorch, float64) on a JSON
// spec written into a fresh temporary directory and returns its answer.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <unistd.h>

namespace pretrain_test {

/// A tensor as the oracle reads it: {"shape": [...], "data": [...]}.
template <class Matrix>
nlohmann::json tensor_json(const Matrix& m, std::vector<std::int64_t> shape) {
    std::vector<double> data(static_cast<std::size_t>(m.size()));
    for (Eigen::Index i = 0; i < m.size(); ++i) data[static_cast<std::size_t>(i)] = static_cast<double>(m.data()[i]);
    return {{"shape", shape}, {"data", data}};
}

/// Writes `spec`, runs the oracle, parses its output. Throws std::runtime_error when it fails.
inline nlohmann::json run_oracle(const nlohmann::json& spec, const std::string& tag) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("prune_pretrain_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto in = dir / "in.json";
    const auto out = dir / "out.json";
    std::ofstream(in) << spec.dump();
    const std::string cmd = std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR +
                            "/tests/pretrain/mlm_oracle.py " + in.string() + " " + out.string();
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("oracle failed: " + cmd);
    nlohmann::json answer;
    std::ifstream(out) >> answer;
    std::filesystem::remove_all(dir);
    return answer;
}

/// max |a - b| / max(max |b|, floor) over a flat list: the relative error of a whole tensor.
/// The floor keeps gradients that are exactly 0 in theory (the key bias: softmax ignores a
/// constant shift) from dividing rounding noise by 0.
template <class Matrix>
double relative_error(const Matrix& got, const nlohmann::json& want, double floor = 1e-6) {
    double diff = 0.0, scale = 0.0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        const double w = want[i].get<double>();
        diff = std::max(diff, std::abs(static_cast<double>(got.data()[i]) - w));
        scale = std::max(scale, std::abs(w));
    }
    return diff / std::max(scale, floor);
}

}  // namespace pretrain_test
