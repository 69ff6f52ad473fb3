// prune/schedule.hpp: pruning schedules as pure functions of the step number.
//
// - Constant step of what remains (Prasanna et al.; torch's amount semantics): each step
//   prunes a fraction a of the still-unpruned weights, so after k steps the sparsity is
//   1 - (1 - a)^k (`sparsity_after_steps`).
// - Gradual schedules (Zhu & Gupta 2017) on the update grid t0, t0 + dt, ..., t0 + n dt:
//   the sparsity is s_i before t0, s_f from t0 + n dt on, and between grid points it holds
//   the value of the last grid point passed. With progress p = j / n at grid point j:
//     cubic        s = s_f + (s_i - s_f) (1 - p)^3     (Zhu-Gupta: concave, prunes fast early)
//     linear       s = s_i + (s_f - s_i) p
//     exponential  1 - s = (1 - s_i) ((1 - s_f) / (1 - s_i))^p   (a constant fraction of what
//                  remains per update; needs s_f < 1)
//   Note: the cubic is the concave curve of the paper; the convex mirror image
//   s_i + (s_f - s_i) p^3, which some libraries call "cube", prunes slowly early and is not it.
#pragma once

#include <prune/error.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

namespace prune {

/// The sparsity after `steps` steps that each prune `amount` of what remains: 1 - (1 - amount)^steps.
/// Throws value_error for amount outside [0, 1] or NaN.
[[nodiscard]] inline double sparsity_after_steps(double amount, std::size_t steps) {
    if (!(amount >= 0.0 && amount <= 1.0)) {
        throw value_error("prune::sparsity_after_steps: amount " + number_text(amount) +
                          " is outside [0, 1] (or NaN)");
    }
    return 1.0 - std::pow(1.0 - amount, static_cast<double>(steps));
}

/// The fraction of what remains that must be pruned to go from sparsity `from` to sparsity `to`
/// (0 when from == 1). Throws value_error unless 0 <= from <= to <= 1.
[[nodiscard]] inline double amount_between(double from, double to) {
    if (!(from >= 0.0 && from <= to && to <= 1.0)) {
        throw value_error("prune::amount_between: need 0 <= from <= to <= 1, got from " + number_text(from) +
                          " and to " + number_text(to));
    }
    return from == 1.0 ? 0.0 : (to - from) / (1.0 - from);
}

/// The curve of a gradual schedule.
enum class schedule_curve {
    cubic,        ///< Zhu-Gupta: s_f + (s_i - s_f)(1 - p)^3
    linear,       ///< s_i + (s_f - s_i) p
    exponential,  ///< 1 - s = (1 - s_i) ((1 - s_f) / (1 - s_i))^p
};

/// A gradual pruning schedule on the grid begin, begin + frequency, ..., begin + updates * frequency.
struct gradual_schedule {
    double initial_sparsity = 0.0;           ///< s_i, held before `begin`
    double final_sparsity = 0.9;             ///< s_f, reached at the last grid point
    std::int64_t begin = 0;                  ///< t0, the first grid point
    std::int64_t frequency = 1;              ///< dt >= 1, steps between updates
    std::int64_t updates = 10;               ///< n >= 1, the number of grid intervals
    schedule_curve curve = schedule_curve::cubic;  ///< the shape between the endpoints
};

/// Throws value_error unless 0 <= s_i <= s_f <= 1, frequency >= 1, updates >= 1 (and s_f < 1 for exponential).
inline void validate(const gradual_schedule& schedule) {
    const double si = schedule.initial_sparsity;
    const double sf = schedule.final_sparsity;
    if (!(si >= 0.0 && si <= sf && sf <= 1.0)) {
        throw value_error("prune::gradual_schedule: need 0 <= initial_sparsity <= final_sparsity <= 1, got " +
                          number_text(si) + " and " + number_text(sf));
    }
    if (schedule.frequency < 1 || schedule.updates < 1) {
        throw value_error("prune::gradual_schedule: frequency (" + std::to_string(schedule.frequency) +
                          ") and updates (" + std::to_string(schedule.updates) + ") must be >= 1");
    }
    if (schedule.curve == schedule_curve::exponential && sf >= 1.0) {
        throw value_error("prune::gradual_schedule: the exponential curve needs final_sparsity < 1, got " +
                          number_text(sf));
    }
}

/// The last grid point, begin + updates * frequency.
[[nodiscard]] inline std::int64_t end_step(const gradual_schedule& schedule) {
    return schedule.begin + schedule.updates * schedule.frequency;
}

/// True when t is a grid point (begin + j * frequency, 0 <= j <= updates): where the sparsity may change.
[[nodiscard]] inline bool is_update_step(const gradual_schedule& schedule, std::int64_t t) {
    validate(schedule);
    return t >= schedule.begin && t <= end_step(schedule) && (t - schedule.begin) % schedule.frequency == 0;
}

/// The target sparsity at step t (validates the schedule).
[[nodiscard]] inline double sparsity_at(const gradual_schedule& schedule, std::int64_t t) {
    validate(schedule);
    const double si = schedule.initial_sparsity;
    const double sf = schedule.final_sparsity;
    if (t < schedule.begin) {
        return si;
    }
    if (t >= end_step(schedule)) {
        return sf;
    }
    const std::int64_t j = (t - schedule.begin) / schedule.frequency;  // the last grid point passed
    const double p = static_cast<double>(j) / static_cast<double>(schedule.updates);
    switch (schedule.curve) {
        case schedule_curve::cubic: {
            const double q = 1.0 - p;
            return sf + (si - sf) * q * q * q;
        }
        case schedule_curve::linear:
            return si + (sf - si) * p;
        case schedule_curve::exponential:
            return 1.0 - (1.0 - si) * std::pow((1.0 - sf) / (1.0 - si), p);
    }
    return sf;
}

}  // namespace prune
