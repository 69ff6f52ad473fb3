// prune/sparsify/sparsegpt.hpp: SparseGPT (Frantar & Alistarh 2023) on one linear: the
// adaptive block mask and the optimal-brain-surgeon (OBS) reconstruction of the kept weights,
// and the reconstruction alone for a mask chosen by any other method.
//
// Input: the weight W [rows, n] ([out, in]) and the Hessian H [n, n] of the layer's squared
// output error, H proportional to sum over calibration tokens of x x^T (input_statistics::
// gram_upper(), or gram()); only its upper triangle (i <= j) is read. H is used as
// `hessian_scale` x the given matrix. The steps, as the reference `fasterprune`:
//   1. dead columns (H_jj = 0: the input feature is always zero): H_jj := 1 and W[:, j] := 0;
//   2. damping: H += dampening x mean(diag H) x I (after step 1; default 1%);
//   3. U upper with U^T U = H^-1 (prune/sparsify/inverse_cholesky.hpp: one Cholesky);
//   4. columns in blocks of `block_size` (128). At the start of a block, unstructured: the mask
//      of the whole block (all rows x the block's columns) from the scores w^2 / U_jj^2 of the
//      current weights -- exactly floor(s x block elements) lowest, ties by row-major position
//      in the block (threshold_rule::exact_count), or every score <= the value at sorted
//      position floor(s x block elements) (threshold_rule::at_or_below: the reference's `<=`,
//      one more when that value is unique). N:M: at the first column of every group of M, in
//      each row, the M - N lowest scores of the group's current weights, ties by column.
//   5. column by column j in the block: q = 0 where pruned, else w; err = (w - q) / U_jj;
//      W[:, j+1:block end] -= err U[j, j+1:block end]; W[:, j] := q;
//   6. after the block, the later columns: W[:, block end:] -= Err U[block, block end:].
// Only the reference's H scale enters step 2 through the dead columns' 1 (a scale c gives damping
// 0.01 (c sum_live H_jj + dead) / n instead of c 0.01 (sum_live H_jj + dead) / n); without dead
// columns, every scale gives the same weights and mask. The reference's H is 2 / (calibration
// sequences) x sum x x^T: `hessian_scale` = 2 / sequences with the plain sums reproduces it.
//
// Precision: the reference computes in float32; so does this by default (the weights, U, the
// updates and the products), with H summed and damped in double and rounded once. `float64`
// computes everything in double. The products go through nn::split_gemm (OpenBLAS or Eigen),
// split over the pool; the rows of a block are processed in parallel (each row's steps 4-5 are
// independent of the other rows), so the result does not depend on the pool's size.
// The weight is updated in place in its own element type (rounded from the computation's).
#pragma once

#include <prune/error.hpp>
#include <prune/mask.hpp>
#include <prune/nm.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/threads.hpp>
#include <prune/sparsify/inverse_cholesky.hpp>
#include <prune/sparsify/masks.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace prune::sparsify {

/// How SparseGPT runs (the reference's defaults).
struct sparsegpt_options {
    std::size_t block_size = 128;  ///< columns per block (the reference's blocksize)
    double dampening = 0.01;       ///< H += dampening x mean(diag H) x I (the reference's percdamp)
    double hessian_scale = 1.0;    ///< H = hessian_scale x the given matrix (matters only with dead columns)
    threshold_rule rule = threshold_rule::exact_count;  ///< unstructured count per block
    bool float64 = false;          ///< compute in double (default: float, as the reference)
    nn::thread_pool* pool = nullptr;  ///< threads for the products and the rows (null: this thread)
};

/// Steps 1-3 for one Hessian: U (upper, U^T U = the damped H's inverse, row-major [n, n]) in
/// float or double (options.float64) and the dead columns. Every linear that reads the same
/// input has the same Hessian: factor_hessian once, then sparsegpt_prune / reconstruct with the
/// factor on each gives the same bits as the calls with the Hessian (which factor it each time).
struct hessian_factor {
    std::size_t columns = 0;            ///< n
    bool float64 = false;               ///< U in double (else float)
    std::vector<float> u_float;         ///< U when !float64
    std::vector<double> u_double;       ///< U when float64
    std::vector<std::uint8_t> dead;     ///< 1 where H_jj = 0 (the weight's column is zeroed)
};

namespace detail {

/// What decides the mask: SparseGPT's own choice (unstructured or N:M) or a given mask.
struct obs_plan {
    double sparsity = 0.0;
    std::optional<nm_pattern> nm;
    threshold_rule rule = threshold_rule::exact_count;
    const element_mask* given = nullptr;  ///< reconstruction of this mask (1 = kept)
};

/// "prune::sparsify::<function> 'name'".
inline std::string obs_where(const char* function, const std::string& name) {
    return std::string("prune::sparsify::") + function + (name.empty() ? "" : " '" + name + "'");
}

/// scale x H (upper triangle) in S with dead columns set to 1 and the damping added; marks dead columns.
template <class S>
std::vector<S> damped_hessian(std::span<const double> h, std::size_t n, const sparsegpt_options& options,
                              std::vector<std::uint8_t>& dead, const std::string& where) {
    std::vector<double> diagonal(n);
    for (std::size_t j = 0; j < n; ++j) {
        const double d = options.hessian_scale * h[j * n + j];
        if (!std::isfinite(d) || d < 0) {
            throw value_error(where + ": Hessian diagonal " + std::to_string(d) + " at column " + std::to_string(j) +
                              " (expected finite and >= 0)");
        }
        dead[j] = d == 0 ? 1 : 0;
        diagonal[j] = d == 0 ? 1.0 : d;
    }
    const double damp = options.dampening * std::accumulate(diagonal.begin(), diagonal.end(), 0.0) /
                        static_cast<double>(n == 0 ? 1 : n);
    std::vector<S> a(n * n, S{0});
    for (std::size_t i = 0; i < n; ++i) {
        a[i * n + i] = static_cast<S>(diagonal[i] + damp);
        for (std::size_t j = i + 1; j < n; ++j) a[i * n + j] = static_cast<S>(options.hessian_scale * h[i * n + j]);
    }
    return a;
}

/// SparseGPT's score of a weight in a column whose U diagonal is d: w^2 / d^2 (the reference's order).
template <class S>
S obs_score(S w, S d) {
    return (w * w) / (d * d);
}

/// The unstructured mask of one block (pruned = 1), rows x c row-major, from the current weights.
template <class S>
void choose_block_mask(const std::vector<S>& w, const std::vector<S>& u, std::size_t rows, std::size_t n,
                       std::size_t i1, std::size_t c, const obs_plan& plan, std::vector<std::uint8_t>& pruned) {
    const std::size_t numel = rows * c;
    std::vector<S> scores(numel);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t j = 0; j < c; ++j) {
            const S s = obs_score(w[r * n + i1 + j], u[(i1 + j) * n + i1 + j]);
            scores[r * c + j] = std::isnan(s) ? std::numeric_limits<S>::infinity() : s;
        }
    }
    const std::size_t k = count_floor(plan.sparsity, numel);
    std::fill(pruned.begin(), pruned.begin() + static_cast<std::ptrdiff_t>(numel), std::uint8_t{0});
    if (plan.rule == threshold_rule::at_or_below) {
        std::vector<S> sorted(scores);
        std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(k), sorted.end());
        for (std::size_t i = 0; i < numel; ++i) pruned[i] = scores[i] <= sorted[k] ? 1 : 0;
        return;
    }
    if (k == 0) return;
    std::vector<std::uint32_t> order(numel);
    std::iota(order.begin(), order.end(), 0u);
    std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k - 1), order.end(),
                     [&](std::uint32_t a, std::uint32_t b) {
                         return scores[a] < scores[b] || (scores[a] == scores[b] && a < b);
                     });
    for (std::size_t i = 0; i < k; ++i) pruned[order[i]] = 1;
}

/// N:M in one row at the first column of a group: the group - kept lowest of w^2 / U_jj^2, ties by column.
template <class S>
void choose_group(const S* w, const S* u, std::size_t n, const nm_pattern& nm, std::uint8_t* pruned,
                  std::vector<std::pair<S, std::size_t>>& order) {
    order.resize(nm.group);
    for (std::size_t t = 0; t < nm.group; ++t) {
        const S s = obs_score(w[t], u[t * n + t]);
        order[t] = {std::isnan(s) ? std::numeric_limits<S>::infinity() : s, t};
    }
    std::sort(order.begin(), order.end());
    for (std::size_t t = 0; t < nm.pruned(); ++t) pruned[order[t].second] = 1;
}

/// Steps 4 (N:M) and 5 for one row of a block: w and pruned at the block's first column, u = U at
/// (block start, block start), err receives (w - q) / U_jj.
template <class S>
void obs_row(S* w, std::uint8_t* pruned, S* err, const S* u, std::size_t n, std::size_t c, const obs_plan& plan,
             std::vector<std::pair<S, std::size_t>>& order) {
    for (std::size_t i = 0; i < c; ++i) {
        const S* ui = u + i * n;
        if (plan.nm && i % plan.nm->group == 0) choose_group(w + i, u + i * n + i, n, *plan.nm, pruned + i, order);
        const S q = pruned[i] != 0 ? S{0} : w[i];
        const S e = (w[i] - q) / ui[i];
        err[i] = e;
        if (e != S{0}) {
            for (std::size_t j = i + 1; j < c; ++j) w[j] -= e * ui[j];
        }
        w[i] = q;
    }
}

/// Runs body(r0, r1) over row ranges, on the pool when the block is large enough.
template <class Body>
void over_rows(nn::thread_pool* pool, std::size_t rows, std::size_t c, Body&& body) {
    if (pool == nullptr || pool->size() == 1 || rows * c < 16384) {
        body(std::size_t{0}, rows);
        return;
    }
    pool->parallel_for(static_cast<std::int64_t>(rows), [&](std::int64_t r0, std::int64_t r1) {
        body(static_cast<std::size_t>(r0), static_cast<std::size_t>(r1));
    });
}

/// The block's pruned flags from the plan (given mask or SparseGPT's unstructured choice; N:M
/// starts empty and is chosen in obs_row).
template <class S>
void block_pruned(const std::vector<S>& w, const std::vector<S>& u, std::size_t rows, std::size_t n,
                  std::size_t i1, std::size_t c, const obs_plan& plan, std::vector<std::uint8_t>& pruned) {
    if (plan.given != nullptr) {
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t j = 0; j < c; ++j) pruned[r * c + j] = plan.given->kept(r * n + i1 + j) ? 0 : 1;
        }
    } else if (plan.nm) {
        std::fill(pruned.begin(), pruned.end(), std::uint8_t{0});
    } else {
        choose_block_mask(w, u, rows, n, i1, c, plan, pruned);
    }
}

/// Steps 4-6 over all blocks on W [rows, n] (row-major, in place) with U; returns the mask (1 = kept).
template <class S>
element_mask obs_blocks(std::vector<S>& w, const std::vector<S>& u, std::size_t rows, std::size_t n,
                        const obs_plan& plan, const sparsegpt_options& options) {
    element_mask mask(prune::shape{rows, n});
    const std::size_t block = options.block_size;
    std::vector<std::uint8_t> pruned(rows * std::min(block, n));
    std::vector<S> err(rows * std::min(block, n));
    for (std::size_t i1 = 0; i1 < n; i1 += block) {
        const std::size_t i2 = std::min(n, i1 + block);
        const std::size_t c = i2 - i1;
        block_pruned(w, u, rows, n, i1, c, plan, pruned);
        over_rows(options.pool, rows, c, [&](std::size_t r0, std::size_t r1) {
            std::vector<std::pair<S, std::size_t>> order;
            for (std::size_t r = r0; r < r1; ++r) {
                obs_row(w.data() + r * n + i1, pruned.data() + r * c, err.data() + r * c, u.data() + i1 * n + i1, n,
                        c, plan, order);
            }
        });
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t j = 0; j < c; ++j) {
                if (pruned[r * c + j] != 0) mask.set(r * n + i1 + j, false);
            }
        }
        if (i2 < n) {
            const int ld = static_cast<int>(n);
            nn::split_gemm<S>(options.pool, nn::gemm_call<S>{false, false, static_cast<int>(rows),
                                                             static_cast<int>(n - i2), static_cast<int>(c), S{-1},
                                                             err.data(), static_cast<int>(c), u.data() + i1 * n + i2,
                                                             ld, S{1}, w.data() + i2, ld});
        }
    }
    return mask;
}

/// The element as S, and back (through float for 16-bit types).
template <class S, element T>
S element_to(T value) {
    if constexpr (std::is_same_v<std::remove_const_t<T>, double>) {
        return static_cast<S>(value);
    } else {
        return static_cast<S>(to_float(value));
    }
}

template <element T, class S>
std::remove_const_t<T> element_from(S value) {
    if constexpr (std::is_same_v<std::remove_const_t<T>, double>) {
        return static_cast<double>(value);
    } else {
        return from_float<T>(static_cast<float>(value));
    }
}

/// U of a factor in S.
template <class S>
const std::vector<S>& factor_u(const hessian_factor& f) {
    if constexpr (std::is_same_v<S, double>) {
        return f.u_double;
    } else {
        return f.u_float;
    }
}

/// Steps 4-6 in S on a [rows, n] view with its Hessian's factor; returns the mask (1 = kept).
template <class S, element T>
element_mask run_obs(tensor_view<T> weight, const hessian_factor& factor, const obs_plan& plan,
                     const sparsegpt_options& options) {
    const std::size_t rows = weight.extents()[0];
    const std::size_t n = weight.extents()[1];
    const std::vector<std::uint8_t>& dead = factor.dead;
    std::vector<S> w(rows * n);
    const bool contiguous = weight.is_logically_contiguous();
    for (std::size_t i = 0; i < rows * n; ++i) {
        w[i] = dead[i % n] != 0 ? S{0} : element_to<S>(weight.data()[contiguous ? i : weight.storage_index(i)]);
    }
    element_mask mask = obs_blocks(w, factor_u<S>(factor), rows, n, plan, options);
    for (std::size_t i = 0; i < rows * n; ++i) {
        weight.data()[contiguous ? i : weight.storage_index(i)] = element_from<T>(w[i]);
    }
    return mask;
}

/// Steps 1-3 in S into f.
template <class S>
void factor_into(hessian_factor& f, std::span<const double> hessian, const sparsegpt_options& options,
                 const std::string& where) {
    std::vector<S> u = damped_hessian<S>(hessian, f.columns, options, f.dead, where);
    inverse_cholesky_upper(u, f.columns, where, options.pool);
    if constexpr (std::is_same_v<S, double>) {
        f.u_double = std::move(u);
    } else {
        f.u_float = std::move(u);
    }
}

/// value_error for options SparseGPT does not run.
inline void check_options(const sparsegpt_options& options, const std::string& where) {
    if (options.block_size == 0 || !(options.dampening >= 0) || !(options.hessian_scale > 0) ||
        !std::isfinite(options.hessian_scale)) {
        throw value_error(where + ": block size " + std::to_string(options.block_size) + ", dampening " +
                          std::to_string(options.dampening) + ", Hessian scale " +
                          std::to_string(options.hessian_scale) +
                          " (expected a block size > 0, dampening >= 0, a finite scale > 0)");
    }
}

/// Checks the weight's shape against the Hessian's, and the options.
template <element T>
void check_weight(const tensor_view<T>& v, std::span<const double> hessian, const sparsegpt_options& options,
                  const std::string& where) {
    const prune::shape& extents = v.extents();
    if (extents.rank() != 2 || hessian.size() != extents[1] * extents[1]) {
        throw shape_error(where + ": a weight of shape " + extents.to_string() + " with a Hessian of " +
                          std::to_string(hessian.size()) + " values (expected [out, in] and in x in values)");
    }
    check_options(options, where);
}

/// Steps 1-3 (errors prefixed by where).
inline hessian_factor factor(std::span<const double> hessian, std::size_t n, const sparsegpt_options& options,
                             const std::string& where) {
    check_options(options, where);
    hessian_factor f;
    f.columns = n;
    f.float64 = options.float64;
    f.dead.assign(n, 0);
    if (f.float64) {
        factor_into<double>(f, hessian, options, where);
    } else {
        factor_into<float>(f, hessian, options, where);
    }
    return f;
}

/// shape_error when a factor does not fit the weight's input width.
template <element T>
void check_factor(const tensor_view<T>& v, const hessian_factor& factor, const std::string& where) {
    const prune::shape& extents = v.extents();
    if (extents.rank() != 2 || factor.columns != extents[1] || factor.dead.size() != factor.columns) {
        throw shape_error(where + ": a weight of shape " + extents.to_string() + " with the factor of a Hessian of " +
                          std::to_string(factor.columns) + " columns (expected [out, in] with in = " +
                          std::to_string(factor.columns) + ")");
    }
}

template <element T>
element_mask run_obs_in(tensor_view<T> v, const hessian_factor& factor, const obs_plan& plan,
                        const sparsegpt_options& options) {
    return factor.float64 ? run_obs<double>(v, factor, plan, options) : run_obs<float>(v, factor, plan, options);
}

/// check_target's part for sparsegpt_prune: the target fits the width and the block size.
inline void check_obs_target(const sparsity_target& target, std::size_t width, const sparsegpt_options& options,
                             const std::string& where) {
    if (target.nm) {
        check_nm(*target.nm, width, where);
        if (options.block_size % target.nm->group != 0) {
            throw value_error(where + ": N:M groups of " + std::to_string(target.nm->group) + " in blocks of " +
                              std::to_string(options.block_size) +
                              " columns (expected the group to divide the block size)");
        }
    } else {
        check_sparsity(target.sparsity, where);
    }
}

/// shape_error for a mask of another shape than the weight.
template <element T>
void check_mask(const tensor_view<T>& v, const element_mask& mask, const std::string& where) {
    if (!(mask.extents() == v.extents())) {
        throw shape_error(where + ": a mask of shape " + mask.extents().to_string() + " for a weight of shape " +
                          v.extents().to_string() + " (expected the same shape)");
    }
}

}  // namespace detail

/// Steps 1-3 of SparseGPT on the Hessian [n, n] (upper triangle read) under options' damping,
/// scale and precision: the factor every linear reading that input can share. value_error for
/// bad options or a damped Hessian that is not positive definite.
[[nodiscard]] inline hessian_factor factor_hessian(std::span<const double> hessian, std::size_t n,
                                                   const sparsegpt_options& options = {},
                                                   const std::string& name = {}) {
    const std::string where = detail::obs_where("factor_hessian", name);
    if (hessian.size() != n * n) {
        throw shape_error(where + ": a Hessian of " + std::to_string(hessian.size()) + " values for " +
                          std::to_string(n) + " columns (expected n x n values)");
    }
    return detail::factor(hessian, n, options, where);
}

/// SparseGPT on one linear with its Hessian's factor (factor_hessian; its precision is used):
/// chooses the mask (unstructured: target.sparsity per block of options.block_size columns
/// under options.rule; or target.nm) and reconstructs the kept weights, in place. Returns the
/// mask (1 = kept). target.group is not used (the group is the block). shape_error /
/// value_error for a bad shape, target or options.
template <class Tensor>
element_mask sparsegpt_prune(Tensor& weight, const hessian_factor& factor, const sparsity_target& target,
                             const sparsegpt_options& options = {}, const std::string& name = {}) {
    const std::string where = detail::obs_where("sparsegpt_prune", name);
    return prune::visit_view(weight, [&](const auto& v) {
        detail::check_factor(v, factor, where);
        detail::check_options(options, where);
        detail::check_obs_target(target, v.extents()[1], options, where);
        const detail::obs_plan plan{target.sparsity, target.nm, options.rule, nullptr};
        return detail::run_obs_in(v, factor, plan, options);
    });
}

/// SparseGPT on one linear from its Hessian [in, in] (upper triangle read), e.g.
/// input_statistics::gram_upper(): factor_hessian, then sparsegpt_prune with the factor.
/// shape_error / value_error for a bad shape, target or options, or a damped Hessian that is
/// not positive definite.
template <class Tensor>
element_mask sparsegpt_prune(Tensor& weight, std::span<const double> hessian, const sparsity_target& target,
                             const sparsegpt_options& options = {}, const std::string& name = {}) {
    const std::string where = detail::obs_where("sparsegpt_prune", name);
    return prune::visit_view(weight, [&](const auto& v) {  // one visit: a torch tensor's version moves once
        detail::check_weight(v, hessian, options, where);
        detail::check_obs_target(target, v.extents()[1], options, where);
        const detail::obs_plan plan{target.sparsity, target.nm, options.rule, nullptr};
        return detail::run_obs_in(v, detail::factor(hessian, v.extents()[1], options, where), plan, options);
    });
}

/// SparseGPT's reconstruction alone (the Wanda paper's ablation) with the Hessian's factor:
/// prunes the weights `mask` prunes (1 = kept) and updates the kept ones as SparseGPT does, in
/// place. Dead input columns are zeroed as in SparseGPT. shape_error for a factor or a mask of
/// another shape.
template <class Tensor>
void reconstruct(Tensor& weight, const element_mask& mask, const hessian_factor& factor,
                 const sparsegpt_options& options = {}, const std::string& name = {}) {
    const std::string where = detail::obs_where("reconstruct", name);
    prune::visit_view(weight, [&](const auto& v) {
        detail::check_factor(v, factor, where);
        detail::check_options(options, where);
        detail::check_mask(v, mask, where);
        detail::obs_plan plan;
        plan.given = &mask;
        static_cast<void>(detail::run_obs_in(v, factor, plan, options));
    });
}

/// reconstruct from the Hessian [in, in] (factored here). Errors as sparsegpt_prune, and
/// shape_error for a mask of another shape.
template <class Tensor>
void reconstruct(Tensor& weight, const element_mask& mask, std::span<const double> hessian,
                 const sparsegpt_options& options = {}, const std::string& name = {}) {
    const std::string where = detail::obs_where("reconstruct", name);
    prune::visit_view(weight, [&](const auto& v) {
        detail::check_weight(v, hessian, options, where);
        detail::check_mask(v, mask, where);
        detail::obs_plan plan;
        plan.given = &mask;
        static_cast<void>(detail::run_obs_in(v, detail::factor(hessian, v.extents()[1], options, where), plan, options));
    });
}

}  // namespace prune::sparsify
