// prune/sparsify/statistics_file.hpp: calibration statistics saved to and loaded from a
// safetensors file, so that they can be merged across processes and runs and reused.
//
// Layout (all little-endian, as safetensors is): for every input named N (a linear's name, or
// the name of an input several linears share),
//   N.in_sum2  F64 [columns]           sum over tokens of x_j^2 (llama.cpp's imatrix name)
//   N.gram     F64 [columns, columns]  sum over tokens of x x^T, full and symmetric (optional)
//   N.tokens   I64 [1]                 the number of tokens summed
// and __metadata__ {"format": "prune-sparsify-statistics", "version": "1", "model": <the
// model's identity as the caller states it, e.g. a hash of its config and weight names>,
// "gram_products": "float" | "double"}. The file is written atomically.
//
// Loading checks the file against what the caller expects -- the model identity and, per
// input, its width and whether a gram is needed -- and throws format_error naming the file, the
// input and the mismatch ("a statistics file for another model") before anything is returned.
#pragma once

#include <prune/error.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/sparsify/statistics.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prune::sparsify {

/// The value of the "format" metadata entry of a statistics file.
inline constexpr const char* statistics_format = "prune-sparsify-statistics";

/// Statistics of a model's inputs by name.
using statistics_map = std::map<std::string, input_statistics>;

/// What a caller expects to find in a statistics file for one input.
struct expected_input {
    std::string name;       ///< the input's name
    std::size_t columns;    ///< its width
    bool gram = false;      ///< whether sum x x^T is needed
};

/// Writes the statistics to `path` atomically; `model` identifies the model they belong to.
/// io_error when the file cannot be written (nothing is left behind).
inline void save_statistics(const std::filesystem::path& path, const statistics_map& statistics,
                            const std::string& model) {
    io::safetensors_writer writer;
    writer.set_metadata("format", statistics_format);
    writer.set_metadata("version", "1");
    writer.set_metadata("model", model);
    bool double_products = false;
    for (const auto& [name, s] : statistics) {
        const std::size_t n = s.columns();
        writer.add(name + ".in_sum2", io::dtype::F64, {n}, std::as_bytes(s.sum_squares()));
        if (s.has_gram()) {
            const std::vector<double> full = s.gram();
            writer.add(name + ".gram", io::dtype::F64, {n, n}, std::as_bytes(std::span<const double>(full)));
            double_products = double_products || s.options().double_products;
        }
        const auto tokens = static_cast<std::int64_t>(s.tokens());
        writer.add(name + ".tokens", io::dtype::I64, {1}, std::as_bytes(std::span<const std::int64_t>(&tokens, 1)));
    }
    writer.set_metadata("gram_products", double_products ? "double" : "float");
    writer.write(path);
}

namespace detail {

/// The doubles of an F64 tensor of the expected shape, or format_error.
inline std::vector<double> read_doubles(const io::safetensors_file& file, const std::string& tensor,
                                        const std::vector<std::size_t>& shape) {
    const io::tensor_info& info = file.info(tensor);
    if (info.type != io::dtype::F64 || info.shape != shape) {
        std::string expected = "[";
        for (std::size_t i = 0; i < shape.size(); ++i) {
            expected += (i ? ", " : "") + std::to_string(shape[i]);
        }
        throw format_error("prune::sparsify: tensor '" + tensor + "' in statistics file '" + file.name() + "' is " +
                           io::dtype_name(info.type) + " " + info.extents().to_string() + " (expected F64 " +
                           expected + "])");
    }
    std::vector<double> values(info.numel());
    const std::span<const std::byte> bytes = file.bytes(tensor);
    if (!values.empty()) {
        std::memcpy(values.data(), bytes.data(), bytes.size());
    }
    return values;
}

/// The token count of an input, or format_error.
inline std::uint64_t read_tokens(const io::safetensors_file& file, const std::string& tensor) {
    const io::tensor_info& info = file.info(tensor);
    std::int64_t tokens = -1;
    if (info.type == io::dtype::I64 && info.numel() == 1) {
        std::memcpy(&tokens, file.bytes(tensor).data(), sizeof tokens);
    }
    if (tokens < 0) {
        throw format_error("prune::sparsify: tensor '" + tensor + "' in statistics file '" + file.name() +
                           "' (expected one non-negative I64 token count)");
    }
    return static_cast<std::uint64_t>(tokens);
}

}  // namespace detail

/// Reads the statistics of the expected inputs from a file written by save_statistics, checking
/// that it was made for `model` (skipped when `model` is empty) and that every expected input is
/// there with its width (and a gram when needed). io_error when unreadable, format_error on any
/// mismatch, naming the file and the input.
[[nodiscard]] inline statistics_map load_statistics(const std::filesystem::path& path,
                                                    std::span<const expected_input> expected,
                                                    const std::string& model = {}) {
    const io::safetensors_file file = io::safetensors_file::open(path);
    const auto& meta = file.metadata();
    const auto format = meta.find("format");
    if (format == meta.end() || format->second != statistics_format) {
        throw format_error("prune::sparsify: '" + file.name() + "' is not a statistics file (expected metadata "
                           "format = " + statistics_format + ")");
    }
    const auto stored_model = meta.find("model");
    if (!model.empty() && (stored_model == meta.end() || stored_model->second != model)) {
        throw format_error("prune::sparsify: statistics file '" + file.name() + "' was made for model '" +
                           (stored_model == meta.end() ? std::string("?") : stored_model->second) + "' (expected '" +
                           model + "')");
    }
    const auto products = meta.find("gram_products");
    statistics_options options;
    options.double_products = products != meta.end() && products->second == "double";
    statistics_map out;
    for (const expected_input& e : expected) {
        if (!file.contains(e.name + ".in_sum2")) {
            throw format_error("prune::sparsify: statistics file '" + file.name() + "' has no input '" + e.name +
                               "' (expected " + e.name + ".in_sum2; a file for another model?)");
        }
        std::vector<double> sums = detail::read_doubles(file, e.name + ".in_sum2", {e.columns});
        std::vector<double> gram;
        if (e.gram) {
            if (!file.contains(e.name + ".gram")) {
                throw format_error("prune::sparsify: statistics file '" + file.name() + "' has no gram for input '" +
                                   e.name + "' (SparseGPT and reconstruction need sum x x^T: collect it with a gram)");
            }
            gram = detail::read_doubles(file, e.name + ".gram", {e.columns, e.columns});
        }
        const std::uint64_t tokens = detail::read_tokens(file, e.name + ".tokens");
        try {
            out.emplace(e.name, input_statistics::from_sums(std::move(sums), std::move(gram), tokens, options));
        } catch (const value_error& bad) {
            throw format_error("prune::sparsify: statistics file '" + file.name() + "', input '" + e.name +
                               "': " + bad.what());
        }
    }
    return out;
}

}  // namespace prune::sparsify
