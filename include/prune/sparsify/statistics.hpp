// prune/sparsify/statistics.hpp: streaming calibration statistics of one linear's input.
//
// A linear y = x W^T sees calibration tokens x (rows of width `columns`, its input width).
// `input_statistics` keeps, with memory that does not grow with the tokens:
//   sum_squares[j] = sum over tokens of x_j^2        (Wanda's ||X_j||_2^2; llama.cpp's in_sum2)
//   gram[i][j]     = sum over tokens of x_i x_j      (optional: SparseGPT's H, up to scale)
//   tokens         = how many rows were added
// All sums are plain sums (never running means), so two accumulators over disjoint tokens merge
// by adding them: across batches, threads, processes and runs (`merge`), and the result does
// not depend on how the tokens were split, up to the rounding of the sums.
//
// Precision: sums of squares are accumulated in double, element by element. The gram matrix is
// accumulated in double; each add() computes its batch's product x^T x either in float (the
// default: one float GEMM over the batch's rows, as fast as the reference code's float32 H,
// then summed into the double total) or in double (`statistics_options::double_products`).
// Only the upper triangle (i <= j) is computed and stored; `gram()` returns the full
// symmetric matrix. Rows of half / bfloat16 / double views are converted to the product's type
// first.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/threads.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace prune::sparsify {

/// What an input_statistics accumulator keeps and how it computes the gram products.
struct statistics_options {
    bool gram = false;             ///< also keep sum x x^T (needed by SparseGPT and reconstruction)
    bool double_products = false;  ///< compute each batch's x^T x in double (default: float, summed in double)
};

/// Streaming statistics of the inputs of one linear: sums of x_j^2, optionally sum x x^T, token count.
class input_statistics {
public:
    /// Columns per gram block: the upper triangle is computed one block column at a time.
    static constexpr std::size_t gram_block = 256;

    /// An empty accumulator of width 0.
    input_statistics() = default;

    /// An empty accumulator for inputs of `columns` features.
    explicit input_statistics(std::size_t columns, statistics_options options = {})
        : columns_(columns), options_(options), sum_squares_(columns, 0.0) {
        if (options_.gram) {
            gram_.assign(columns * columns, 0.0);
        }
    }

    /// The input width.
    [[nodiscard]] std::size_t columns() const noexcept { return columns_; }
    /// The rows (tokens) added so far.
    [[nodiscard]] std::uint64_t tokens() const noexcept { return tokens_; }
    /// True when sum x x^T is kept.
    [[nodiscard]] bool has_gram() const noexcept { return options_.gram; }
    /// The options it was made with.
    [[nodiscard]] const statistics_options& options() const noexcept { return options_; }
    /// Per column, the sum over tokens of x_j^2.
    [[nodiscard]] std::span<const double> sum_squares() const noexcept { return sum_squares_; }
    /// The stored gram sums, [columns, columns] row-major: only i <= j (the upper triangle) is valid.
    [[nodiscard]] std::span<const double> gram_upper() const noexcept { return gram_; }
    /// The same, writable in place (e.g. to be summed or broadcast across processes).
    [[nodiscard]] std::span<double> gram_upper() noexcept { return gram_; }

    /// sum x x^T as a full symmetric [columns, columns] row-major matrix; value_error without a gram.
    [[nodiscard]] std::vector<double> gram() const {
        require_gram("gram");
        std::vector<double> full(gram_);
        for (std::size_t i = 0; i < columns_; ++i) {
            for (std::size_t j = 0; j < i; ++j) {
                full[i * columns_ + j] = gram_[j * columns_ + i];
            }
        }
        return full;
    }

    /// Wanda's per-column input norm ||X_j||_2 = sqrt(sum x_j^2), rounded to float.
    [[nodiscard]] std::vector<float> column_norms() const {
        std::vector<float> norms(columns_);
        for (std::size_t j = 0; j < columns_; ++j) {
            norms[j] = static_cast<float>(std::sqrt(sum_squares_[j]));
        }
        return norms;
    }

    /// Adds the rows of a view whose last axis is the input width (any rank; the leading axes
    /// are tokens). Runs the gram product on `pool` when given (the sums do not depend on its
    /// size). shape_error when the last axis is not `columns()`.
    template <element T>
    void add(tensor_view<T> rows, nn::thread_pool* pool = nullptr) {
        const prune::shape& extents = rows.extents();
        const std::size_t width = extents.rank() == 0 ? 1 : extents[extents.rank() - 1];
        if (width != columns_) {
            throw shape_error("prune::sparsify::input_statistics::add: rows of shape " + extents.to_string() +
                              " (expected the last axis to be the input width " + std::to_string(columns_) + ")");
        }
        const std::size_t count = columns_ == 0 ? 0 : rows.size() / columns_;
        if (count == 0) {
            return;
        }
        if (options_.gram && options_.double_products) {
            add_rows<double>(rows, count, pool);
        } else {
            add_rows<float>(rows, count, pool);
        }
    }

    /// Adds the sums and counts of another accumulator over other tokens. value_error when the
    /// widths differ or this one keeps a gram and the other does not.
    void merge(const input_statistics& other) {
        if (other.columns_ != columns_ || (options_.gram && !other.options_.gram)) {
            throw value_error("prune::sparsify::input_statistics::merge: width " + std::to_string(other.columns_) +
                              (other.options_.gram ? " with" : " without") + " a gram into width " +
                              std::to_string(columns_) + (options_.gram ? " with" : " without") +
                              " one (expected the same width, and a gram wherever this one keeps one)");
        }
        for (std::size_t j = 0; j < columns_; ++j) {
            sum_squares_[j] += other.sum_squares_[j];
        }
        if (options_.gram) {
            for (std::size_t i = 0; i < columns_; ++i) {
                for (std::size_t j = i; j < columns_; ++j) {
                    gram_[i * columns_ + j] += other.gram_[i * columns_ + j];
                }
            }
        }
        tokens_ += other.tokens_;
    }

    /// This accumulator's gram with the sums of squares and token count of `sums` instead of its
    /// own (a gram summed across processes one way, the sums of squares another). value_error
    /// when the widths differ.
    [[nodiscard]] input_statistics with_sums_of(const input_statistics& sums) && {
        if (sums.columns_ != columns_) {
            throw value_error("prune::sparsify::input_statistics::with_sums_of: sums of width " +
                              std::to_string(sums.columns_) + " for width " + std::to_string(columns_) +
                              " (expected the same width)");
        }
        sum_squares_ = sums.sum_squares_;
        tokens_ = sums.tokens_;
        return std::move(*this);
    }

    /// An accumulator from stored sums (a statistics file): `gram` empty, or [columns, columns]
    /// row-major of which the upper triangle is used. value_error when the sizes disagree or a
    /// sum of squares is negative or not finite.
    [[nodiscard]] static input_statistics from_sums(std::vector<double> sum_squares, std::vector<double> gram,
                                                    std::uint64_t tokens, statistics_options options = {}) {
        const std::size_t n = sum_squares.size();
        if (!gram.empty() && gram.size() != n * n) {
            throw value_error("prune::sparsify::input_statistics::from_sums: a gram of " +
                              std::to_string(gram.size()) + " values for " + std::to_string(n) +
                              " columns (expected " + std::to_string(n * n) + ")");
        }
        for (std::size_t j = 0; j < n; ++j) {
            if (!(sum_squares[j] >= 0.0) || !std::isfinite(sum_squares[j])) {
                throw value_error("prune::sparsify::input_statistics::from_sums: sum of squares " +
                                  std::to_string(sum_squares[j]) + " at column " + std::to_string(j) +
                                  " (expected finite and >= 0)");
            }
        }
        options.gram = !gram.empty();
        input_statistics s;
        s.columns_ = n;
        s.options_ = options;
        s.sum_squares_ = std::move(sum_squares);
        s.gram_ = std::move(gram);
        s.tokens_ = tokens;
        return s;
    }

private:
    void require_gram(const char* what) const {
        if (!options_.gram) {
            throw value_error(std::string("prune::sparsify::input_statistics::") + what +
                              ": the accumulator keeps no gram (make it with statistics_options{.gram = true})");
        }
    }

    /// Converts the rows to S (row-major), adds their squares, and their products when kept.
    template <class S, element T>
    void add_rows(tensor_view<T> rows, std::size_t count, nn::thread_pool* pool) {
        const std::size_t n = columns_;
        std::vector<S> x(options_.gram ? count * n : 0);
        for (std::size_t t = 0; t < count; ++t) {
            for (std::size_t j = 0; j < n; ++j) {
                const double v = static_cast<double>(to_float_or_double(rows.data()[rows.storage_index(t * n + j)]));
                sum_squares_[j] += v * v;
                if (options_.gram) {
                    x[t * n + j] = static_cast<S>(v);
                }
            }
        }
        if (options_.gram) {
            add_gram<S>(x, count, pool);
        }
        tokens_ += count;
    }

    /// The element as float, or as double for double views (no rounding of doubles).
    template <element T>
    static auto to_float_or_double(T value) {
        if constexpr (std::is_same_v<std::remove_const_t<T>, double>) {
            return value;
        } else {
            return to_float(value);
        }
    }

    /// gram[0:c1, c0:c1] += x[:, 0:c1]^T x[:, c0:c1] for every block column [c0, c1).
    template <class S>
    void add_gram(const std::vector<S>& x, std::size_t count, nn::thread_pool* pool) {
        const std::size_t n = columns_;
        std::vector<S> block(n * std::min(n, gram_block));
        for (std::size_t c0 = 0; c0 < n; c0 += gram_block) {
            const std::size_t c1 = std::min(n, c0 + gram_block);
            const int m = static_cast<int>(c1);
            const int w = static_cast<int>(c1 - c0);
            const nn::gemm_call<S> call{true, false, m, w, static_cast<int>(count), S{1}, x.data(), static_cast<int>(n),
                                        x.data() + c0, static_cast<int>(n), S{0}, block.data(), w};
            nn::split_gemm<S>(pool, call);
            for (std::size_t i = 0; i < c1; ++i) {
                const std::size_t j0 = std::max(i, c0);
                const S* src = block.data() + i * static_cast<std::size_t>(w);
                double* dst = gram_.data() + i * n;
                for (std::size_t j = j0; j < c1; ++j) {
                    dst[j] += static_cast<double>(src[j - c0]);
                }
            }
        }
    }

    std::size_t columns_ = 0;
    statistics_options options_;
    std::vector<double> sum_squares_;
    std::vector<double> gram_;
    std::uint64_t tokens_ = 0;
};

}  // namespace prune::sparsify
