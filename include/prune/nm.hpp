// prune/nm.hpp: N:M masks along the input dimension of a weight, the pattern of sparse
// tensor cores: in every group of M consecutive elements of a row, at most N are kept.
//
// Convention (pinned here, because the field uses both readings): an `nm_pattern{kept,
// group}` KEEPS `kept` of every `group`, as NVIDIA's "2:4" (2 kept of 4) does. The public
// code of Wanda and SparseGPT writes `prune_n:prune_m` and prunes prune_n of every prune_m;
// `nm_pattern::pruning(n, m)` builds that reading (2:4 and 4:8 are the same either way).
//
// The last axis of a tensor is the group axis: a [out, in] weight is grouped along `in`, a
// rank-1 tensor is one row, a tensor of rank > 2 is [product of the leading axes, last].
// Selection (`prune_nm`) runs on any score source (<prune/importance/scores.hpp>): in each
// group it prunes the lowest-scoring still-kept elements until at most `kept` remain, by
// (score key, column): among equal scores the smaller column goes first, the library's
// tie rule (docs/selection.md); NaN scores go first. Already-pruned elements stay pruned.
//
// Packing (`pack_2_4`, `unpack_2_4`) writes the 2:4 compressed form sparse tensor cores
// consume, in its logical row-major layout (docs/nm-blocks.md has the exact bit layout and
// a worked example).
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace prune {

/// An N:M pattern: `kept` elements kept in every `group` consecutive elements of a row.
struct nm_pattern {
    std::size_t kept = 2;   ///< elements kept per group (NVIDIA's N in "N:M")
    std::size_t group = 4;  ///< consecutive elements per group (M)

    /// The reference code's reading (Wanda's and SparseGPT's prune_n:prune_m): prune `pruned` of every
    /// `group`; value_error when pruned > group.
    [[nodiscard]] static nm_pattern pruning(std::size_t pruned, std::size_t group) {
        if (pruned > group) {
            throw value_error("prune::nm_pattern::pruning: " + std::to_string(pruned) + " pruned of every " +
                              std::to_string(group) + " (expected 0 < pruned < group)");
        }
        return {group - pruned, group};
    }
    /// Elements pruned per group when the group was full.
    [[nodiscard]] constexpr std::size_t pruned() const noexcept { return group - kept; }
    /// The fraction pruned, (group - kept) / group.
    [[nodiscard]] constexpr double sparsity() const noexcept {
        return group == 0 ? 0.0 : static_cast<double>(group - kept) / static_cast<double>(group);
    }
    /// "kept 2 of 4".
    [[nodiscard]] std::string to_string() const {
        return "kept " + std::to_string(kept) + " of " + std::to_string(group);
    }
    /// Same kept and group.
    [[nodiscard]] friend constexpr bool operator==(const nm_pattern&, const nm_pattern&) = default;
};

/// 2:4, the pattern of sparse tensor cores for 16-bit types (2 kept of every 4).
inline constexpr nm_pattern two_four{2, 4};
/// 4:8 (4 kept of every 8).
inline constexpr nm_pattern four_eight{4, 8};

/// [rows, width] of a tensor shape for grouping along its last axis (rank 0 or 1: one row).
[[nodiscard]] inline std::pair<std::size_t, std::size_t> rows_and_width(const prune::shape& extents) noexcept {
    if (extents.rank() == 0) {
        return {1, 1};
    }
    const std::size_t width = extents[extents.rank() - 1];
    return {width == 0 ? 0 : extents.numel() / width, width};
}

/// Checks a pattern against a row width: value_error unless 0 < kept < group, shape_error unless the
/// group divides the width. `where` names the caller and the tensor in the message.
inline void check_nm(const nm_pattern& pattern, std::size_t width, const std::string& where) {
    if (pattern.group == 0 || pattern.kept == 0 || pattern.kept >= pattern.group) {
        throw value_error(where + ": N:M pattern " + pattern.to_string() +
                          " (expected 0 < kept < group; in the reference code's prune_n:prune_m reading, "
                          "0 < N < M)");
    }
    if (width % pattern.group != 0) {
        throw shape_error(where + ": groups of " + std::to_string(pattern.group) + " do not divide the width " +
                          std::to_string(width) + " (the last axis; expected a multiple of " +
                          std::to_string(pattern.group) + ")");
    }
}

namespace detail {

/// Sorts a short run ascending (insertion sort: groups are 4 or 8 long).
inline void sort_short(std::uint64_t* first, std::size_t n) noexcept {
    for (std::size_t i = 1; i < n; ++i) {
        const std::uint64_t value = first[i];
        std::size_t j = i;
        for (; j > 0 && first[j - 1] > value; --j) {
            first[j] = first[j - 1];
        }
        first[j] = value;
    }
}

/// Prunes, in one row's groups, the lowest (key, column) still-kept elements beyond `kept` per group.
inline std::size_t prune_nm_row(std::span<const std::uint32_t> keys, std::size_t row_begin, element_mask& mask,
                                const nm_pattern& pattern, std::vector<std::uint64_t>& scratch) {
    std::size_t pruned = 0;
    for (std::size_t c0 = 0; c0 < keys.size(); c0 += pattern.group) {
        std::size_t live = 0;
        for (std::size_t j = 0; j < pattern.group; ++j) {
            if (mask.kept(row_begin + c0 + j)) {
                scratch[live++] = (std::uint64_t{keys[c0 + j]} << 32) | j;
            }
        }
        if (live <= pattern.kept) {
            continue;
        }
        const std::size_t drop = live - pattern.kept;
        if (pattern.group <= 16) {
            sort_short(scratch.data(), live);
        } else {
            std::nth_element(scratch.begin(), scratch.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                             scratch.begin() + static_cast<std::ptrdiff_t>(live));
        }
        for (std::size_t d = 0; d < drop; ++d) {
            mask.set(row_begin + c0 + (scratch[d] & 0xFFFFFFFFu), false);
        }
        pruned += drop;
    }
    return pruned;
}

}  // namespace detail

/// Prunes, in every group of `pattern.group` consecutive elements along the last axis, the
/// lowest-scoring still-kept elements until at most `pattern.kept` remain; ties by column
/// (smaller first). Returns the number pruned. value_error / shape_error as check_nm, shape_error
/// when the mask does not fit the scores.
inline std::size_t prune_nm(const score_source& scores, element_mask& mask, const nm_pattern& pattern) {
    const std::string where = scores.name().empty() ? "prune::prune_nm" : "prune::prune_nm '" + scores.name() + "'";
    const auto [rows, width] = rows_and_width(scores.extents());
    check_nm(pattern, width, where);
    if (!detail::mask_fits(mask.extents(), scores.extents()) || mask.size() != scores.size()) {
        throw shape_error(where + ": a mask of shape " + mask.extents().to_string() + " for scores of shape " +
                          scores.extents().to_string() + " (expected the same shape)");
    }
    std::vector<std::uint32_t> keys(width);
    std::vector<std::uint64_t> scratch(pattern.group);
    std::size_t pruned = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        scores.fill_keys(0, r * width, keys);
        pruned += detail::prune_nm_row(keys, r * width, mask, pattern, scratch);
    }
    return pruned;
}

/// A fresh N:M mask of the scores' shape: in every group the `pattern.kept` highest scores are kept.
[[nodiscard]] inline element_mask nm_mask(const score_source& scores, const nm_pattern& pattern) {
    element_mask mask(scores.extents());
    prune_nm(scores, mask, pattern);
    return mask;
}

/// Where a mask first breaks an N:M pattern.
struct nm_violation {
    std::size_t row = 0;     ///< row (product of the leading axes)
    std::size_t column = 0;  ///< first column of the group
    std::size_t kept = 0;    ///< elements the group keeps
};

/// The first group (in row-major order) that keeps more than `pattern.kept`, or none. value_error /
/// shape_error as check_nm.
[[nodiscard]] inline std::optional<nm_violation> first_nm_violation(const element_mask& mask, const nm_pattern& pattern) {
    const auto [rows, width] = rows_and_width(mask.extents());
    check_nm(pattern, width, "prune::is_nm");
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c0 = 0; c0 < width; c0 += pattern.group) {
            std::size_t kept = 0;
            for (std::size_t j = 0; j < pattern.group; ++j) {
                kept += mask.kept(r * width + c0 + j) ? std::size_t{1} : std::size_t{0};
            }
            if (kept > pattern.kept) {
                return nm_violation{r, c0, kept};
            }
        }
    }
    return std::nullopt;
}

/// True when every group of the last axis keeps at most `pattern.kept` elements.
[[nodiscard]] inline bool is_nm(const element_mask& mask, const nm_pattern& pattern) {
    return !first_nm_violation(mask, pattern).has_value();
}

/// Throws value_error naming the first group (row, columns) that keeps more than `pattern.kept`.
inline void require_nm(const element_mask& mask, const nm_pattern& pattern, const std::string& what = "mask") {
    const std::optional<nm_violation> found = first_nm_violation(mask, pattern);
    if (found.has_value()) {
        const nm_violation& v = *found;
        throw value_error("prune: " + what + " of shape " + mask.extents().to_string() + " is not N:M " +
                          pattern.to_string() + ": row " + std::to_string(v.row) + ", columns [" +
                          std::to_string(v.column) + ", " + std::to_string(v.column + pattern.group) + ") keep " +
                          std::to_string(v.kept) + " (expected at most " + std::to_string(pattern.kept) + ")");
    }
}

/// A 2:4 matrix in compressed form: the two kept values of every group of 4 and their positions.
template <element T>
struct packed_2_4 {
    std::size_t rows = 0;                  ///< rows of the dense matrix
    std::size_t columns = 0;               ///< columns of the dense matrix (a multiple of 16)
    std::vector<T> values;                 ///< [rows, columns / 2] row-major: per group, 2 values, column order
    std::vector<std::uint16_t> metadata;   ///< [rows, columns / 16] row-major: 4 bits per group, see pack_2_4
};

namespace detail {

/// The metadata nibble of a group from its kept positions (at most 2, ascending): idx0 | idx1 << 2,
/// idx0 < idx1; a group with fewer than two kept elements is padded with the smallest free positions.
[[nodiscard]] constexpr std::uint16_t nibble_2_4(unsigned kept_bits, std::array<unsigned, 2>& positions) noexcept {
    unsigned n = 0;
    for (unsigned j = 0; j < 4 && n < 2; ++j) {
        if ((kept_bits >> j) & 1u) {
            positions[n++] = j;
        }
    }
    for (unsigned j = 0; n < 2; ++j) {  // pad with free positions, then restore ascending order
        if (!((kept_bits >> j) & 1u) && (n == 0 || positions[0] != j)) {
            positions[n++] = j;
        }
    }
    if (positions[0] > positions[1]) {
        std::swap(positions[0], positions[1]);
    }
    return static_cast<std::uint16_t>(positions[0] | (positions[1] << 2));
}

/// Element (r, c) of a rank-2 view, whatever its storage order.
template <element T>
[[nodiscard]] T& at_2d(const tensor_view<T>& v, std::size_t r, std::size_t c, std::size_t columns) {
    return v.data()[v.storage_index(r * columns + c)];
}

}  // namespace detail

/// Compresses a dense [rows, columns] tensor under a 2:4 mask (each group of 4 keeps at most 2;
/// pruned elements are read as 0). Metadata: per group one 4-bit nibble idx0 | idx1 << 2 (positions
/// 0..3 within the group, idx0 < idx1; a group keeping fewer than 2 is padded with its lowest free
/// positions, whose values are 0), four groups per 16-bit word, the first group in the lowest
/// nibble. value_error when the mask is not 2:4, shape_error when the shapes differ or the columns
/// are not a multiple of 16.
/// A runtime-typed tensor (torch::Tensor) is packed through a typed view: the element type decides
/// the packed type, so `pack_2_4(prune::torch_view<float>(t), mask)`.
template <class Tensor>
[[nodiscard]] auto pack_2_4(const Tensor& dense, const element_mask& mask) {
    static_assert(!runtime_typed_tensor<Tensor>,
                  "prune::pack_2_4: this tensor's element type is known only at run time (torch::Tensor) and "
                  "decides the type of the packed values; pass a typed view: "
                  "prune::pack_2_4(prune::torch_view<float>(t), mask)");
    const auto v = prune::view(dense);  // const elements: read only
    using T = typename decltype(v)::value_type;
    const auto [rows, columns] = rows_and_width(v.extents());
    if (columns % 16 != 0 || !(mask.extents() == v.extents())) {
        throw shape_error("prune::pack_2_4: a tensor of shape " + v.extents().to_string() + " with a mask of shape " +
                          mask.extents().to_string() + " (expected equal shapes and columns a multiple of 16)");
    }
    require_nm(mask, two_four, "the mask given to pack_2_4");
    packed_2_4<T> out{rows, columns, std::vector<T>(rows * columns / 2), std::vector<std::uint16_t>(rows * columns / 16)};
    const tensor_view<const T> source(v);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t g = 0; g < columns / 4; ++g) {
            unsigned kept_bits = 0;
            for (unsigned j = 0; j < 4; ++j) {
                kept_bits |= (mask.kept(r * columns + 4 * g + j) ? 1u : 0u) << j;
            }
            std::array<unsigned, 2> positions{};
            const std::uint16_t nibble = detail::nibble_2_4(kept_bits, positions);
            out.metadata[r * (columns / 16) + g / 4] |= static_cast<std::uint16_t>(nibble << (4 * (g % 4)));
            for (std::size_t s = 0; s < 2; ++s) {
                const bool real = (kept_bits >> positions[s]) & 1u;
                out.values[r * (columns / 2) + 2 * g + s] =
                    real ? detail::at_2d(source, r, 4 * g + positions[s], columns) : T{};
            }
        }
    }
    return out;
}

/// Expands a compressed 2:4 matrix into a dense row-major [rows, columns] tensor (zeros elsewhere)
/// and the mask of the positions its metadata names (padded positions count as kept). format_error
/// when the sizes disagree or a nibble names positions out of order.
template <element T>
[[nodiscard]] std::pair<std::vector<T>, element_mask> unpack_2_4(const packed_2_4<T>& packed) {
    const std::size_t rows = packed.rows;
    const std::size_t columns = packed.columns;
    if (columns % 16 != 0 || packed.values.size() != rows * columns / 2 ||
        packed.metadata.size() != rows * columns / 16) {
        throw format_error("prune::unpack_2_4: " + std::to_string(packed.values.size()) + " values and " +
                           std::to_string(packed.metadata.size()) + " metadata words for a [" + std::to_string(rows) +
                           ", " + std::to_string(columns) + "] matrix (expected rows x columns / 2 and / 16, "
                           "columns a multiple of 16)");
    }
    std::vector<T> dense(rows * columns, T{});
    element_mask mask(prune::shape{rows, columns}, false);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t g = 0; g < columns / 4; ++g) {
            const unsigned nibble = (packed.metadata[r * (columns / 16) + g / 4] >> (4 * (g % 4))) & 0xFu;
            const std::size_t p0 = nibble & 3u;
            const std::size_t p1 = nibble >> 2;
            if (p0 >= p1) {
                throw format_error("prune::unpack_2_4: row " + std::to_string(r) + ", group " + std::to_string(g) +
                                   ": metadata nibble " + std::to_string(nibble) +
                                   " (expected idx0 < idx1: one of 4, 8, 9, 12, 13, 14)");
            }
            for (std::size_t s = 0; s < 2; ++s) {
                const std::size_t c = 4 * g + (s == 0 ? p0 : p1);
                dense[r * columns + c] = packed.values[r * (columns / 2) + 2 * g + s];
                mask.set(r * columns + c, true);
            }
        }
    }
    return {std::move(dense), std::move(mask)};
}

}  // namespace prune
