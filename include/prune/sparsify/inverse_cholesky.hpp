// prune/sparsify/inverse_cholesky.hpp: the upper Cholesky factor of the inverse of a symmetric
// positive definite matrix, U upper with U^T U = A^-1, with one factorisation.
//
// SparseGPT's reference code computes U with three LAPACK calls (cholesky of A, cholesky_inverse,
// cholesky of the inverse, upper): 4/3 n^3 operations. Here: with P the reversal permutation,
// P A P = L L^T (lower Cholesky of the reversed matrix), so A^-1 = P L^-T L^-1 P = U^T U with
// U = P L^-1 P upper -- one Cholesky (n^3 / 3) and one triangular inverse (n^3 / 3). Reversing a
// row-major n x n matrix is reversing its n^2 values, so both reversals are std::reverse.
// Both steps are blocked (128 columns): the diagonal blocks by Eigen, the panels by Eigen's
// triangular solves split over rows, and the bulk (the trailing update of the Cholesky, the
// triangular product of the inverse) as matrix products through nn::split_gemm, handed out over
// the thread pool in fixed pieces, so the bits do not depend on the pool's size.
#pragma once

#include <prune/error.hpp>
#include <prune/nn/eigen.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/threads.hpp>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Cholesky>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace prune::sparsify::detail {

/// Columns per block of the blocked factorisations.
inline constexpr std::size_t factor_block = 128;
/// Rows (or columns) per piece of a product handed to one thread.
inline constexpr std::size_t product_piece = 256;

/// A block of a row-major n x n matrix as an Eigen map.
template <class S>
using block_map = Eigen::Map<nn::row_matrix<S>, 0, Eigen::OuterStride<>>;

template <class S>
block_map<S> block_at(S* a, std::size_t n, std::size_t row, std::size_t col, std::size_t rows, std::size_t cols) {
    return block_map<S>(a + row * n + col, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols),
                        Eigen::OuterStride<>(static_cast<Eigen::Index>(n)));
}

/// Runs task(i) for i in [0, count) on the pool (or here); each task's work is fixed.
template <class Task>
void run_tasks(nn::thread_pool* pool, std::size_t count, Task&& task) {
    if (pool == nullptr || pool->size() == 1 || count < 2) {
        for (std::size_t i = 0; i < count; ++i) task(i);
        return;
    }
    pool->parallel_tasks(static_cast<std::int64_t>(count),
                         [&task](std::int64_t i, int) { task(static_cast<std::size_t>(i)); });
}

/// Zeroes the strict upper triangle of a row-major n x n matrix.
template <class S>
void zero_upper(S* a, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) std::fill(a + i * n + i + 1, a + (i + 1) * n, S{0});
}

/// Factors the diagonal block [k0, k1) in place (lower); returns false when it is not positive definite.
template <class S>
bool factor_diagonal(S* a, std::size_t n, std::size_t k0, std::size_t k1) {
    auto a11 = block_at(a, n, k0, k0, k1 - k0, k1 - k0);
    const Eigen::LLT<Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>> llt(a11);
    if (llt.info() != Eigen::Success) return false;
    a11.template triangularView<Eigen::Lower>() = llt.matrixL();
    return true;
}

/// The Cholesky panel: A[k1:n, k0:k1] := A[k1:n, k0:k1] L11^-T, split over rows.
template <class S>
void cholesky_panel(S* a, std::size_t n, std::size_t k0, std::size_t k1, nn::thread_pool* pool) {
    const std::size_t b = k1 - k0;
    const nn::row_matrix<S> l11 = block_at(a, n, k0, k0, b, b).template triangularView<Eigen::Lower>();
    const std::size_t pieces = (n - k1 + product_piece - 1) / product_piece;
    run_tasks(pool, pieces, [&](std::size_t p) {
        const std::size_t r0 = k1 + p * product_piece;
        auto panel = block_at(a, n, r0, k0, std::min(n, r0 + product_piece) - r0, b);
        l11.template triangularView<Eigen::Lower>().transpose().template solveInPlace<Eigen::OnTheRight>(panel);
    });
}

/// The trailing update A[k1:n, k1:n] -= A[k1:n, k0:k1] A[k1:n, k0:k1]^T on and below the diagonal,
/// one product per column piece.
template <class S>
void cholesky_trailing(S* a, std::size_t n, std::size_t k0, std::size_t k1, nn::thread_pool* pool) {
    const std::size_t pieces = (n - k1 + product_piece - 1) / product_piece;
    const int ld = static_cast<int>(n);
    run_tasks(pool, pieces, [&](std::size_t p) {
        const std::size_t j0 = k1 + p * product_piece;
        const std::size_t j1 = std::min(n, j0 + product_piece);
        const nn::gemm_call<S> call{false, true, static_cast<int>(n - j0), static_cast<int>(j1 - j0),
                                    static_cast<int>(k1 - k0), S{-1}, a + j0 * n + k0, ld, a + j0 * n + k0, ld,
                                    S{1}, a + j0 * n + j0, ld};
        nn::split_gemm<S>(nullptr, call);
    });
}

/// In place: the lower Cholesky factor of the row-major n x n matrix (lower triangle read; the
/// strict upper triangle is zeroed). Returns the first block that is not positive definite, or
/// nothing on success.
template <class S>
std::optional<std::size_t> cholesky_lower(S* a, std::size_t n, nn::thread_pool* pool) {
    for (std::size_t k0 = 0; k0 < n; k0 += factor_block) {
        const std::size_t k1 = std::min(n, k0 + factor_block);
        if (!factor_diagonal(a, n, k0, k1)) return k0;
        if (k1 < n) {
            cholesky_panel(a, n, k0, k1, pool);
            cholesky_trailing(a, n, k0, k1, pool);
        }
    }
    zero_upper(a, n);
    return std::nullopt;
}

/// A[k1:n, k0:k1] := X22 A[k1:n, k0:k1] with X22 = A[k1:n, k1:n] lower (its upper triangle zero),
/// one product per row piece (the columns right of a piece's last row are zero and skipped).
template <class S>
void multiply_by_trailing_inverse(S* a, std::size_t n, std::size_t k0, std::size_t k1, nn::thread_pool* pool) {
    const std::size_t m = n - k1;
    const std::size_t b = k1 - k0;
    std::vector<S> panel(m * b);
    for (std::size_t r = 0; r < m; ++r) std::copy_n(a + (k1 + r) * n + k0, b, panel.data() + r * b);
    const std::size_t pieces = (m + product_piece - 1) / product_piece;
    run_tasks(pool, pieces, [&](std::size_t p) {
        const std::size_t r0 = p * product_piece;
        const std::size_t r1 = std::min(m, r0 + product_piece);
        const nn::gemm_call<S> call{false, false, static_cast<int>(r1 - r0), static_cast<int>(b), static_cast<int>(r1),
                                    S{1}, a + (k1 + r0) * n + k1, static_cast<int>(n), panel.data(),
                                    static_cast<int>(b), S{0}, a + (k1 + r0) * n + k0, static_cast<int>(n)};
        nn::split_gemm<S>(nullptr, call);
    });
}

/// A[k1:n, k0:k1] := -A[k1:n, k0:k1] L11^-1, split over rows.
template <class S>
void solve_by_diagonal(S* a, std::size_t n, std::size_t k0, std::size_t k1, nn::thread_pool* pool) {
    const std::size_t b = k1 - k0;
    const nn::row_matrix<S> l11 = block_at(a, n, k0, k0, b, b);
    const std::size_t pieces = (n - k1 + product_piece - 1) / product_piece;
    run_tasks(pool, pieces, [&](std::size_t p) {
        const std::size_t r0 = k1 + p * product_piece;
        auto panel = block_at(a, n, r0, k0, std::min(n, r0 + product_piece) - r0, b);
        l11.template triangularView<Eigen::Lower>().template solveInPlace<Eigen::OnTheRight>(panel);
        panel = -panel;
    });
}

/// In place: the inverse of a lower triangular row-major n x n matrix whose strict upper triangle
/// is zero (LAPACK trtri's blocked order: the last block first).
template <class S>
void invert_lower(S* a, std::size_t n, nn::thread_pool* pool) {
    const std::size_t blocks = (n + factor_block - 1) / factor_block;
    for (std::size_t q = blocks; q-- > 0;) {
        const std::size_t k0 = q * factor_block;
        const std::size_t k1 = std::min(n, k0 + factor_block);
        if (k1 < n) {
            multiply_by_trailing_inverse(a, n, k0, k1, pool);
            solve_by_diagonal(a, n, k0, k1, pool);
        }
        auto a11 = block_at(a, n, k0, k0, k1 - k0, k1 - k0);
        const nn::row_matrix<S> l11 = a11;
        a11.setIdentity();
        l11.template triangularView<Eigen::Lower>().solveInPlace(a11);
    }
}

}  // namespace prune::sparsify::detail

namespace prune::sparsify {

/// U upper with U^T U = A^-1 for a symmetric positive definite row-major n x n matrix `a` (only its
/// upper triangle, i <= j, is read; replaced by U, whose strict lower triangle is zero). value_error naming
/// `what` when A is not positive definite.
template <class S>
void inverse_cholesky_upper(std::vector<S>& a, std::size_t n, const std::string& what,
                            nn::thread_pool* pool = nullptr) {
    if (a.size() != n * n) {
        throw shape_error(what + ": a matrix of " + std::to_string(a.size()) + " values for " + std::to_string(n) +
                          " columns (expected " + std::to_string(n * n) + ")");
    }
    // P A P's lower triangle is A's upper triangle, reversed.
    std::reverse(a.begin(), a.end());
    if (const auto failed = detail::cholesky_lower(a.data(), n, pool)) {
        throw value_error(what + ": the matrix is not positive definite (Cholesky failed in columns " +
                          std::to_string(n - std::min(n, *failed + detail::factor_block)) + ".." +
                          std::to_string(n - 1 - *failed) + "; expected a positive definite damped Hessian)");
    }
    detail::invert_lower(a.data(), n, pool);
    std::reverse(a.begin(), a.end());
}

}  // namespace prune::sparsify
