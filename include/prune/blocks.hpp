// prune/blocks.hpp: 2-D block masks. A weight of shape [rows, columns] (a tensor of rank > 2:
// [product of the leading axes, last]) is tiled by blocks of `block_shape{rows, columns}`
// starting at (0, 0); edge blocks may be smaller. A block's score reduces the scores of its
// elements (sum, mean, max or L2 norm; accumulated in double, compared as float); whole
// blocks are then selected by the core's exact selection (<prune/select.hpp>): the lowest
// block scores go first, ties by (tensor position, block row-major index), NaN first.
//
//   prune_blocks_global     round(amount * still-kept blocks of all tensors) blocks, together
//   prune_blocks_per_tensor round(amount * still-kept blocks) in every tensor separately
//
// A block is still kept while any of its elements is kept; pruning it clears all of them.
// Scores are read from all of a block's elements, pruned or not (after prune::apply a pruned
// weight is 0, so magnitude scores see 0). Block scores need values: magnitude,
// inverted_magnitude and given_scores sources; random sources are refused. The block scores
// (one float per block) are the only extra memory besides one bit per block.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/nm.hpp>
#include <prune/select.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

namespace prune {

/// How a block's element scores become the block's score.
enum class block_reduce {
    sum,   ///< the sum of the scores
    mean,  ///< the sum over the block's element count (edge blocks count fewer elements)
    max,   ///< the largest score
    l2,    ///< sqrt of the sum of squared scores
};

/// The extents of a block: rows x columns of the [rows, columns] view of a tensor.
struct block_shape {
    std::size_t rows = 1;     ///< block height (along the output axis of an [out, in] weight)
    std::size_t columns = 1;  ///< block width (along the input axis)
    /// Same extents.
    [[nodiscard]] friend constexpr bool operator==(const block_shape&, const block_shape&) = default;
};

/// The float score a key was made from (the inverse of score_key; key 0, a NaN score, gives NaN).
[[nodiscard]] constexpr float score_of_key(std::uint32_t key) noexcept {
    if (key == 0) {
        return std::numeric_limits<float>::quiet_NaN();
    }
    return std::bit_cast<float>((key & 0x80000000u) ? (key & 0x7FFFFFFFu) : ~key);
}

/// The grid of blocks over a tensor shape: [ceil(rows / block rows), ceil(columns / block columns)].
[[nodiscard]] inline prune::shape block_grid(const prune::shape& extents, const block_shape& block) {
    if (block.rows == 0 || block.columns == 0) {
        throw value_error("prune: block shape [" + std::to_string(block.rows) + ", " + std::to_string(block.columns) +
                          "] (expected both extents >= 1)");
    }
    const auto [rows, columns] = rows_and_width(extents);
    return prune::shape{(rows + block.rows - 1) / block.rows, (columns + block.columns - 1) / block.columns};
}

/// The score of every block of a tensor, row-major over block_grid(extents). value_error for a
/// random score source or an empty block shape.
[[nodiscard]] inline std::vector<float> block_scores(const score_source& scores, const block_shape& block,
                                                     block_reduce reduce) {
    if (scores.kind() == score_kind::random) {
        throw value_error("prune::block_scores: random scores have no values to reduce (expected magnitude, "
                          "inverted_magnitude or given_scores)");
    }
    const prune::shape grid = block_grid(scores.extents(), block);
    const auto [rows, columns] = rows_and_width(scores.extents());
    const std::size_t grid_columns = grid[1];
    std::vector<double> accumulated(grid.numel(), reduce == block_reduce::max ? -HUGE_VAL : 0.0);
    std::vector<std::uint8_t> saw_nan(grid.numel(), 0);
    std::vector<std::uint32_t> keys(columns);
    for (std::size_t r = 0; r < rows; ++r) {
        scores.fill_keys(0, r * columns, keys);
        const std::size_t block_row = r / block.rows;
        for (std::size_t c = 0; c < columns; ++c) {
            const std::size_t b = block_row * grid_columns + c / block.columns;
            const double value = static_cast<double>(score_of_key(keys[c]));
            if (value != value) {
                saw_nan[b] = 1;
            } else if (reduce == block_reduce::max) {
                accumulated[b] = std::max(accumulated[b], value);
            } else {
                accumulated[b] += reduce == block_reduce::l2 ? value * value : value;
            }
        }
    }
    std::vector<float> out(grid.numel());
    for (std::size_t b = 0; b < out.size(); ++b) {
        double value = accumulated[b];
        if (reduce == block_reduce::mean) {
            const std::size_t br = b / grid_columns;
            const std::size_t bc = b % grid_columns;
            const std::size_t h = std::min(block.rows, rows - br * block.rows);
            const std::size_t w = std::min(block.columns, columns - bc * block.columns);
            value /= static_cast<double>(h * w);
        } else if (reduce == block_reduce::l2) {
            value = std::sqrt(value);
        }
        out[b] = saw_nan[b] ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(value);
    }
    return out;
}

/// The block mask of an element mask: a block is kept while any of its elements is kept.
[[nodiscard]] inline element_mask block_mask_of(const element_mask& elements, const block_shape& block) {
    const prune::shape grid = block_grid(elements.extents(), block);
    const auto [rows, columns] = rows_and_width(elements.extents());
    element_mask blocks(grid, false);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < columns; ++c) {
            if (elements.kept(r * columns + c)) {
                blocks.set((r / block.rows) * grid[1] + c / block.columns, true);
            }
        }
    }
    return blocks;
}

/// Clears, in an element mask, every element of the blocks a block mask prunes. shape_error when
/// the block mask is not of shape block_grid(elements' shape, block).
inline void apply_block_mask(const element_mask& blocks, element_mask& elements, const block_shape& block) {
    const prune::shape grid = block_grid(elements.extents(), block);
    if (!(blocks.extents() == grid)) {
        throw shape_error("prune::apply_block_mask: a block mask of shape " + blocks.extents().to_string() +
                          " for elements of shape " + elements.extents().to_string() + " in blocks of [" +
                          std::to_string(block.rows) + ", " + std::to_string(block.columns) + "] (expected " +
                          grid.to_string() + ")");
    }
    const auto [rows, columns] = rows_and_width(elements.extents());
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < columns; ++c) {
            if (!blocks.kept((r / block.rows) * grid[1] + c / block.columns)) {
                elements.set(r * columns + c, false);
            }
        }
    }
}

namespace detail {

/// The block scores, block masks and their score sources of a set of tensors.
struct block_problem {
    std::vector<std::vector<float>> values;  ///< block scores per tensor
    std::vector<element_mask> masks;         ///< block masks per tensor
    std::vector<score_source> sources;       ///< given_scores over values

    block_problem(std::span<const score_source> scores, std::span<element_mask> elements, const block_shape& block,
                  block_reduce reduce, const char* where) {
        if (scores.size() != elements.size()) {
            throw shape_error(std::string(where) + ": " + std::to_string(scores.size()) + " score sources for " +
                              std::to_string(elements.size()) + " masks (expected one mask per tensor)");
        }
        values.reserve(scores.size());
        for (std::size_t t = 0; t < scores.size(); ++t) {
            if (!(scores[t].extents() == elements[t].extents())) {
                throw shape_error(std::string(where) + ": tensor #" + std::to_string(t) + " has scores of shape " +
                                  scores[t].extents().to_string() + " but a mask of shape " +
                                  elements[t].extents().to_string());
            }
            values.push_back(block_scores(scores[t], block, reduce));
            masks.push_back(block_mask_of(elements[t], block));
        }
        for (std::size_t t = 0; t < scores.size(); ++t) {
            sources.push_back(given_scores(make_view(values[t].data(), masks[t].extents())));
        }
    }

    /// Clears the pruned blocks' elements.
    void write_back(std::span<element_mask> elements, const block_shape& block) const {
        for (std::size_t t = 0; t < elements.size(); ++t) {
            apply_block_mask(masks[t], elements[t], block);
        }
    }
};

}  // namespace detail

/// Prunes round(amount * still-kept blocks of all tensors) whole blocks, the lowest-scoring first
/// (ties by tensor position, then block row-major index). The result counts blocks.
inline selection_result prune_blocks_global(std::span<const score_source> scores, std::span<element_mask> masks,
                                            const block_shape& block, block_reduce reduce, double amount,
                                            const select_options& options = {}) {
    detail::block_problem problem(scores, masks, block, reduce, "prune::prune_blocks_global");
    const selection_result result = prune_global(problem.sources, problem.masks, amount, options);
    problem.write_back(masks, block);
    return result;
}

/// Prunes round(amount * still-kept blocks) whole blocks in every tensor separately. The results count blocks.
inline std::vector<selection_result> prune_blocks_per_tensor(std::span<const score_source> scores,
                                                             std::span<element_mask> masks, const block_shape& block,
                                                             block_reduce reduce, double amount,
                                                             const select_options& options = {}) {
    detail::block_problem problem(scores, masks, block, reduce, "prune::prune_blocks_per_tensor");
    std::vector<selection_result> results = prune_per_tensor(problem.sources, problem.masks, amount, options);
    problem.write_back(masks, block);
    return results;
}

}  // namespace prune
