// prune/search.hpp: the iterative pruning search of Prasanna et al., generic over the
// mask type (element masks for m-pruning, structure masks for s-pruning).
//
// Starting from a mask, repeat: prune one step (step(mask) -> next mask), evaluate the
// next mask (evaluate(mask) -> metric, higher is better); the step passes when
// metric >= ratio * baseline. Keep going while steps pass and fewer than max_steps were
// taken; stop early when a step changes nothing. The result is the last passing mask
// (the start when the first step fails) and the whole history. An optional callback runs
// after each passing step that will be followed by another (e.g. fine-tuning between
// steps: gradual pruning).
#pragma once

#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <cmath>
#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace prune {

/// Settings of the search.
struct search_options {
    double ratio = 0.9;          ///< a step passes when metric >= ratio * baseline
    std::size_t max_steps = 10;  ///< the most pruning steps taken
};

/// One row of the search history.
struct search_record {
    std::size_t step = 0;   ///< 0 = the starting mask (metric = baseline), then 1, 2, ...
    double sparsity = 0.0;  ///< the sparsity of the mask evaluated
    double metric = 0.0;    ///< its metric
    bool passed = false;    ///< metric >= ratio * baseline
};

/// Why the search stopped.
enum class search_stop {
    failed,     ///< the last step fell below ratio * baseline (its mask was discarded)
    max_steps,  ///< max_steps steps all passed
    exhausted,  ///< a step returned the same mask (nothing left to prune)
};

/// The outcome: the last passing mask and the history.
template <class Mask>
struct search_result {
    Mask mask;                           ///< the last passing mask
    std::vector<search_record> history;  ///< step 0 (start) then one row per evaluated step
    std::size_t passed_steps = 0;        ///< steps that passed (the mask is after this many)
    search_stop stop = search_stop::max_steps;  ///< why it stopped
};

/// The pruned fraction of one element mask.
[[nodiscard]] inline double sparsity_of(const element_mask& mask) { return mask.sparsity(); }

/// The pruned fraction over a set of element masks (pruned elements / all elements).
[[nodiscard]] inline double sparsity_of(std::span<const element_mask> masks) {
    std::size_t total = 0;
    std::size_t pruned = 0;
    for (const element_mask& m : masks) {
        total += m.size();
        pruned += m.count_pruned();
    }
    return total == 0 ? 0.0 : static_cast<double>(pruned) / static_cast<double>(total);
}

/// The pruned fraction over a vector of element masks.
[[nodiscard]] inline double sparsity_of(const std::vector<element_mask>& masks) {
    return sparsity_of(std::span<const element_mask>(masks));
}

/// A callback that does nothing between steps.
struct no_callback {
    /// Does nothing.
    template <class Mask>
    void operator()(std::size_t, const Mask&) const noexcept {}
};

namespace detail {
/// Calls f(mask, step) when it takes two arguments, else f(mask).
template <class F, class Mask>
decltype(auto) call_with_step(F& f, const Mask& mask, std::size_t step) {
    if constexpr (std::is_invocable_v<F&, const Mask&, std::size_t>) {
        return f(mask, step);
    } else {
        return f(mask);
    }
}
}  // namespace detail

/// The search with an explicit sparsity function. step(mask[, step]) -> Mask,
/// evaluate(mask[, step]) -> double, sparsity(mask) -> double, between(step, mask) -> void.
/// Throws value_error for a non-finite baseline or a ratio that is negative or NaN.
template <class Mask, class Step, class Evaluate, class Sparsity, class Between = no_callback>
[[nodiscard]] search_result<Mask> search(Mask start, double baseline, Step step, Evaluate evaluate,
                                         Sparsity sparsity, const search_options& options = {},
                                         Between between = {}) {
    if (!std::isfinite(baseline)) {
        throw value_error("prune::search: baseline metric " + number_text(baseline) + " is not finite");
    }
    if (!(options.ratio >= 0.0) || !std::isfinite(options.ratio)) {
        throw value_error("prune::search: ratio " + number_text(options.ratio) + " must be finite and >= 0");
    }
    const double bar = options.ratio * baseline;
    search_result<Mask> result{std::move(start), {}, 0, search_stop::max_steps};
    result.history.push_back({0, static_cast<double>(sparsity(result.mask)), baseline, true});
    for (std::size_t s = 1; s <= options.max_steps; ++s) {
        Mask next = detail::call_with_step(step, result.mask, s);
        if constexpr (std::equality_comparable<Mask>) {
            if (next == result.mask) {
                result.stop = search_stop::exhausted;
                return result;
            }
        }
        const double metric = static_cast<double>(detail::call_with_step(evaluate, next, s));
        const bool passed = metric >= bar;  // NaN fails
        result.history.push_back({s, static_cast<double>(sparsity(next)), metric, passed});
        if (!passed) {
            result.stop = search_stop::failed;
            return result;
        }
        result.mask = std::move(next);
        result.passed_steps = s;
        if (s < options.max_steps) {
            between(s, static_cast<const Mask&>(result.mask));
        }
    }
    result.stop = search_stop::max_steps;
    return result;
}

/// The search for masks that have a prune::sparsity_of overload (element masks and vectors of them).
template <class Mask, class Step, class Evaluate>
    requires requires(const Mask& m) { { sparsity_of(m) } -> std::convertible_to<double>; }
[[nodiscard]] search_result<Mask> search(Mask start, double baseline, Step step, Evaluate evaluate,
                                         const search_options& options = {}) {
    return search(std::move(start), baseline, std::move(step), std::move(evaluate),
                  [](const Mask& m) { return sparsity_of(m); }, options);
}

}  // namespace prune
