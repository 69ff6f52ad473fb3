// prune/io/imatrix.hpp: llama.cpp's importance matrices (`llama-imatrix` output), read and
// written, and the per-column norms Wanda needs from them.
//
// An importance matrix holds, per weight W (named as in GGUF, "blk.0.attn_q.weight"), the
// sum over calibration tokens of x_j^2 for every input column j of W (one row of columns per
// expert for MoE weights), and how many tokens that sum covers. Two layouts exist:
//
// - GGUF (llama-imatrix's default since mid-2025): metadata `general.type` = "imatrix",
//   `imatrix.datasets` (array of strings), `imatrix.chunk_count` and `imatrix.chunk_size`
//   (u32); per weight the F32 tensors `<name>.in_sum2` (ne [columns, experts]: the sums of
//   x_j^2), `<name>.counts` (ne [1, experts]: tokens, as floats) and, from newer versions,
//   `<name>.in_sum` (the sums of x_j). llama-quantize refuses a GGUF imatrix without the
//   three imatrix.* keys, so the writer always writes them.
// - legacy binary (`--output-format dat`, and every version before the GGUF one), all
//   little-endian: i32 entry count; per entry an i32 name length, the name, i32 ncall, i32
//   nval, nval f32 values; then (optional) i32 chunk count and an i32 length + the dataset
//   name. A value is mean(x_j^2) x ncall, where ncall counted mul_mat calls in older versions
//   and chunks (ceil(tokens / chunk_size)) in newer ones; the token count itself is lost.
//
// Wanda's score is |W_ij| x ||X_j||_2 with ||X_j||_2 = sqrt(sum over tokens of x_j^2):
// exactly sqrt(in_sum2_j) for a GGUF imatrix; for a legacy one only sqrt(value_j / ncall) =
// ||X_j||_2 / sqrt(tokens) is known, the same ranking within a weight (and across weights that
// saw the same tokens). Every reader checks sizes against the file before allocating and
// throws `prune::format_error` naming the file, the entry and what was expected.
#pragma once

#include <prune/error.hpp>
#include <prune/io/gguf.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prune::io {

/// One weight's activation statistics.
struct imatrix_entry {
    std::string name;            ///< the weight's GGUF name ("blk.0.attn_q.weight")
    std::size_t columns = 0;     ///< input columns of the weight
    std::size_t matrices = 1;    ///< experts (1 for a dense weight)
    std::vector<float> sum2;     ///< matrices x columns: sum of x_j^2 (legacy: mean x_j^2 x ncall)
    std::vector<float> sum;      ///< matrices x columns: sum of x_j, when the file has it (else empty)
    std::vector<double> counts;  ///< per matrix: tokens (GGUF); legacy: ncall, one value
};

/// The statistics of one importance-matrix file.
struct imatrix {
    std::vector<imatrix_entry> entries;  ///< sorted by name
    std::vector<std::string> datasets;   ///< calibration files named by the producer
    std::uint32_t chunk_count = 0;       ///< chunks processed
    std::uint32_t chunk_size = 0;        ///< tokens per chunk (0: unknown, legacy files)
    bool legacy = false;                 ///< true when read from the legacy binary layout

    /// The entry of a weight, or nullptr.
    [[nodiscard]] const imatrix_entry* find(std::string_view name) const {
        const auto it = std::lower_bound(entries.begin(), entries.end(), name,
                                         [](const imatrix_entry& e, std::string_view n) { return e.name < n; });
        return it != entries.end() && it->name == name ? &*it : nullptr;
    }

    /// Wanda's ||X_j||_2 for each column of a weight's matrix (expert) `matrix`: sqrt(sum of
    /// x_j^2); for a legacy file sqrt(value_j / ncall), i.e. divided by sqrt(tokens) (see the
    /// header comment). format_error when the weight or the matrix is absent.
    [[nodiscard]] std::vector<float> column_norms(std::string_view name, std::size_t matrix = 0) const {
        const imatrix_entry* e = find(name);
        if (e == nullptr) {
            throw format_error("prune::io: the importance matrix has no entry for '" + std::string(name) + "'");
        }
        if (matrix >= e->matrices) {
            throw format_error("prune::io: importance-matrix entry '" + e->name + "' has " +
                               std::to_string(e->matrices) + " matrices (asked for matrix " + std::to_string(matrix) +
                               ")");
        }
        const double scale = legacy ? (e->counts.front() > 0 ? 1.0 / e->counts.front() : 1.0) : 1.0;
        std::vector<float> out(e->columns);
        for (std::size_t j = 0; j < e->columns; ++j) {
            out[j] = static_cast<float>(std::sqrt(static_cast<double>(e->sum2[matrix * e->columns + j]) * scale));
        }
        return out;
    }
};

/// An entry from prune's own statistics: per input column the sum over `tokens` tokens of
/// x_j^2 (a dense weight). value_error when a sum is negative or not finite.
[[nodiscard]] inline imatrix_entry imatrix_entry_from(std::string name, std::span<const double> sum_of_squares,
                                                      std::uint64_t tokens) {
    imatrix_entry e;
    e.name = std::move(name);
    e.columns = sum_of_squares.size();
    for (std::size_t j = 0; j < sum_of_squares.size(); ++j) {
        if (!(sum_of_squares[j] >= 0.0) || !std::isfinite(sum_of_squares[j])) {
            throw value_error("prune::io: statistics of '" + e.name + "': column " + std::to_string(j) + " has sum " +
                              number_text(sum_of_squares[j]) + " (expected a finite sum of squares >= 0)");
        }
        e.sum2.push_back(static_cast<float>(sum_of_squares[j]));
    }
    e.counts = {static_cast<double>(tokens)};
    return e;
}

namespace detail {

/// Splits "<weight>.<suffix>" for the imatrix tensor suffixes; returns {weight, suffix} or {"", ""}.
inline std::pair<std::string, std::string> imatrix_part(const std::string& tensor) {
    for (const char* suffix : {".in_sum2", ".counts", ".in_sum"}) {
        const std::string s = suffix;
        if (tensor.size() > s.size() && tensor.compare(tensor.size() - s.size(), s.size(), s) == 0) {
            return {tensor.substr(0, tensor.size() - s.size()), s};
        }
    }
    return {};
}

/// Reads one F32 imatrix tensor as floats, checking its type and (when given) its extents.
inline std::vector<float> imatrix_floats(const gguf_file& file, const std::string& tensor) {
    const gguf_tensor_info& t = file.info(tensor);
    if (t.type != ggml_type::F32) {
        throw format_error("prune::io: imatrix gguf '" + file.name() + "': tensor '" + tensor + "' is " +
                           ggml_type_name(t.type) + " (expected F32, as llama-imatrix writes it)");
    }
    return file.to_float(tensor);
}

/// Checks the values of one entry: finite, sums of squares and counts non-negative.
inline void check_imatrix_values(const imatrix_entry& e, const std::string& where) {
    for (std::size_t i = 0; i < e.sum2.size(); ++i) {
        if (!(e.sum2[i] >= 0.0f) || !std::isfinite(e.sum2[i])) {
            throw format_error("prune::io: " + where + ": entry '" + e.name + "' has " + number_text(e.sum2[i]) +
                               " at value " + std::to_string(i) + " (expected a finite sum of squares >= 0)");
        }
    }
    for (std::size_t i = 0; i < e.counts.size(); ++i) {
        if (!(e.counts[i] >= 0.0) || !std::isfinite(e.counts[i])) {
            throw format_error("prune::io: " + where + ": entry '" + e.name + "' has count " + number_text(e.counts[i]) +
                               " (expected a finite count >= 0)");
        }
    }
}

}  // namespace detail

/// The importance matrix of an opened GGUF file (llama-imatrix's layout). format_error when
/// an entry lacks in_sum2 or counts, a tensor is not F32, the extents disagree, or a value is
/// negative or not finite.
[[nodiscard]] inline imatrix read_imatrix(const gguf_file& file) {
    const std::string where = "imatrix gguf '" + file.name() + "'";
    imatrix m;
    if (const gguf_value* v = file.find("imatrix.datasets")) {
        m.datasets = v->as_strings(where + ": imatrix.datasets");
    }
    if (const gguf_value* v = file.find("imatrix.chunk_count")) {
        m.chunk_count = v->as<std::uint32_t>(where + ": imatrix.chunk_count");
    }
    if (const gguf_value* v = file.find("imatrix.chunk_size")) {
        m.chunk_size = v->as<std::uint32_t>(where + ": imatrix.chunk_size");
    }
    std::map<std::string, std::map<std::string, const gguf_tensor_info*>> parts;
    for (const gguf_tensor_info& t : file.tensors()) {
        auto [weight, suffix] = detail::imatrix_part(t.name);
        if (!weight.empty()) {
            parts[weight][suffix] = &t;
        }
    }
    for (const auto& [weight, p] : parts) {
        if (!p.contains(".in_sum2") || !p.contains(".counts")) {
            throw format_error("prune::io: " + where + ": '" + weight + "' has " +
                               (p.contains(".in_sum2") ? "in_sum2 but no counts" : "no in_sum2") +
                               " (expected both <name>.in_sum2 and <name>.counts)");
        }
        const gguf_tensor_info& s2 = *p.at(".in_sum2");
        imatrix_entry e;
        e.name = weight;
        e.matrices = s2.ne.size() >= 2 ? static_cast<std::size_t>(s2.numel() / std::max<std::uint64_t>(s2.ne[0], 1)) : 1;
        e.columns = s2.ne.empty() ? 1 : static_cast<std::size_t>(s2.ne[0]);
        e.sum2 = detail::imatrix_floats(file, s2.name);
        const std::vector<float> counts = detail::imatrix_floats(file, p.at(".counts")->name);
        if (counts.size() != e.matrices) {
            throw format_error("prune::io: " + where + ": '" + weight + "' has " + std::to_string(counts.size()) +
                               " counts for in_sum2 of ne " + detail::shape_text<std::uint64_t>(s2.ne) +
                               " (expected one per matrix, " + std::to_string(e.matrices) + ")");
        }
        e.counts.assign(counts.begin(), counts.end());
        if (const auto it = p.find(".in_sum"); it != p.end()) {
            e.sum = detail::imatrix_floats(file, it->second->name);
            if (e.sum.size() != e.sum2.size()) {
                throw format_error("prune::io: " + where + ": '" + weight + "' has " + std::to_string(e.sum.size()) +
                                   " in_sum values (expected " + std::to_string(e.sum2.size()) + ", as in_sum2)");
            }
        }
        detail::check_imatrix_values(e, where);
        m.entries.push_back(std::move(e));
    }
    return m;
}

namespace detail {

/// Reads a little-endian i32 that must be >= `minimum`.
inline std::int32_t legacy_i32(gguf_cursor& in, const std::string& what, std::int32_t minimum) {
    const std::size_t at = in.position();
    const auto v = in.read<std::int32_t>(what);
    if (v < minimum) {
        throw format_error("prune::io: " + in.where() + ": " + what + " at byte " + std::to_string(at) + " is " +
                           std::to_string(v) + " (expected at least " + std::to_string(minimum) + ")");
    }
    return v;
}

/// One legacy entry: name, ncall, nval, values.
inline imatrix_entry read_legacy_entry(gguf_cursor& in, std::int32_t i) {
    const std::string n = "entry " + std::to_string(i);
    const auto length = static_cast<std::size_t>(legacy_i32(in, n + ": the name length", 0));
    if (length > in.left()) {
        throw format_error("prune::io: " + in.where() + ": " + n + ": a name of " + std::to_string(length) +
                           " bytes, longer than the " + std::to_string(in.left()) + " bytes left");
    }
    const auto name = in.take(length, n + ": the name");
    imatrix_entry e;
    e.name.assign(reinterpret_cast<const char*>(name.data()), name.size());
    const std::string what = "entry '" + e.name + "'";
    e.counts = {static_cast<double>(legacy_i32(in, what + ": ncall", 0))};
    const auto nval = static_cast<std::size_t>(legacy_i32(in, what + ": nval", 1));
    in.check_count(nval, 4, what + ": nval");
    const auto values = in.take(nval * 4, what + ": the values");
    e.sum2.resize(nval);
    std::memcpy(e.sum2.data(), values.data(), nval * 4);
    e.columns = nval;
    return e;
}

}  // namespace detail

/// Parses a legacy binary importance matrix (see the header comment); `where` names it.
[[nodiscard]] inline imatrix parse_imatrix_dat(std::span<const std::byte> bytes, const std::string& where) {
    const std::string in_where = "imatrix '" + where + "'";
    detail::gguf_cursor in(bytes, in_where);
    imatrix m;
    m.legacy = true;
    const std::int32_t n = detail::legacy_i32(in, "the entry count", 1);
    in.check_count(static_cast<std::uint64_t>(n), 12, "entry count");  // name length, ncall, nval (+ >= 1 value)
    for (std::int32_t i = 0; i < n; ++i) {
        imatrix_entry e = detail::read_legacy_entry(in, i);
        detail::check_imatrix_values(e, in_where);
        m.entries.push_back(std::move(e));
    }
    if (in.left() > 0) {
        m.chunk_count = static_cast<std::uint32_t>(detail::legacy_i32(in, "the chunk count", 0));
    }
    if (in.left() > 0) {
        const auto length = static_cast<std::size_t>(detail::legacy_i32(in, "the dataset name length", 0));
        if (length > in.left()) {
            throw format_error("prune::io: " + in_where + ": the dataset name of " + std::to_string(length) +
                               " bytes is longer than the " + std::to_string(in.left()) + " bytes left");
        }
        const auto name = in.take(length, "the dataset name");
        m.datasets.emplace_back(reinterpret_cast<const char*>(name.data()), name.size());
    }
    if (in.left() > 0) {
        throw format_error("prune::io: " + in_where + ": " + std::to_string(in.left()) +
                           " bytes after the dataset name (expected the end of the file)");
    }
    std::sort(m.entries.begin(), m.entries.end(),
              [](const imatrix_entry& a, const imatrix_entry& b) { return a.name < b.name; });
    for (std::size_t i = 1; i < m.entries.size(); ++i) {
        if (m.entries[i].name == m.entries[i - 1].name) {
            throw format_error("prune::io: " + in_where + ": entry '" + m.entries[i].name +
                               "' appears twice (expected one entry per weight)");
        }
    }
    return m;
}

/// Reads an importance matrix file: GGUF when it starts with "GGUF", the legacy layout otherwise.
[[nodiscard]] inline imatrix read_imatrix(const std::filesystem::path& path) {
    const detail::file_bytes bytes = detail::file_bytes::map(path);
    const auto all = bytes.bytes();
    if (all.size() >= 4 && std::memcmp(all.data(), "GGUF", 4) == 0) {
        return read_imatrix(gguf_file::open(path));
    }
    return parse_imatrix_dat(all, path.string());
}

/// The GGUF file of an importance matrix, in llama-imatrix's layout (entries sorted by name;
/// in_sum2 and counts F32, in_sum when present). value_error on inconsistent entries.
[[nodiscard]] inline gguf_writer imatrix_writer(const imatrix& m) {
    gguf_writer w;
    w.set("general.type", gguf_value::string("imatrix"));
    w.set("imatrix.datasets", gguf_value::strings(m.datasets));
    w.set("imatrix.chunk_count", gguf_value::scalar(m.chunk_count));
    w.set("imatrix.chunk_size", gguf_value::scalar(m.chunk_size));
    std::vector<const imatrix_entry*> order;
    for (const imatrix_entry& e : m.entries) {
        if (e.columns == 0 || e.matrices == 0 || e.sum2.size() != e.columns * e.matrices ||
            e.counts.size() != e.matrices || (!e.sum.empty() && e.sum.size() != e.sum2.size())) {
            throw value_error("prune::io::imatrix_writer: entry '" + e.name + "' has " + std::to_string(e.sum2.size()) +
                              " sums and " + std::to_string(e.counts.size()) + " counts (expected columns x matrices = " +
                              std::to_string(e.columns) + " x " + std::to_string(e.matrices) + " sums, one count per matrix)");
        }
        order.push_back(&e);
    }
    std::sort(order.begin(), order.end(), [](const imatrix_entry* a, const imatrix_entry* b) { return a->name < b->name; });
    for (const imatrix_entry* e : order) {
        const std::vector<float> counts(e->counts.begin(), e->counts.end());
        w.add(e->name + ".in_sum2", ggml_type::F32, {e->matrices, e->columns}, std::as_bytes(std::span(e->sum2)));
        w.add(e->name + ".counts", ggml_type::F32, {e->matrices, 1}, std::as_bytes(std::span(counts)));
        if (!e->sum.empty()) {
            w.add(e->name + ".in_sum", ggml_type::F32, {e->matrices, e->columns}, std::as_bytes(std::span(e->sum)));
        }
    }
    return w;
}

/// Writes an importance matrix as GGUF (llama-imatrix's layout), atomically. Legacy
/// statistics cannot be written (their token counts are lost): value_error.
inline void write_imatrix(const std::filesystem::path& path, const imatrix& m) {
    if (m.legacy) {
        throw value_error("prune::io::write_imatrix: a legacy importance matrix has no token counts "
                          "(convert it with llama-imatrix --in-file, or recollect)");
    }
    imatrix_writer(m).write(path);
}

}  // namespace prune::io
