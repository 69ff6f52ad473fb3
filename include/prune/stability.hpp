// prune/stability.hpp: how much pruning runs agree with each other.
//
// Krippendorff's alpha for nominal data (Krippendorff 2011, "Computing Krippendorff's
// Alpha-Reliability"): units are the pruned components (e.g. every head of the model),
// coders are the runs (e.g. seeds), values are the run's decision (kept / pruned).
// alpha = 1 - (n - 1) * D_o / D_e over the coincidence matrix; 1 is perfect agreement,
// 0 is chance. Prasanna et al. report it over the seeds' head masks.
#pragma once

#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cstddef>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace prune {

/// Krippendorff's alpha for nominal values. `ratings[c][u]` is coder c's value for unit u,
/// or std::nullopt when missing; all coders rate the same units. Units with fewer than two
/// values are not pairable and are ignored. Returns NaN when alpha is undefined (fewer
/// than two pairable values, or every pairable value the same: no expected disagreement).
[[nodiscard]] inline double krippendorff_alpha_nominal(const std::vector<std::vector<std::optional<int>>>& ratings) {
    if (ratings.empty()) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    const std::size_t units = ratings.front().size();
    for (std::size_t c = 0; c < ratings.size(); ++c) {
        if (ratings[c].size() != units) {
            throw shape_error("prune::krippendorff_alpha_nominal: coder " + std::to_string(c) + " rates " +
                              std::to_string(ratings[c].size()) + " units (expected " + std::to_string(units) + ")");
        }
    }
    // coincidence matrix o[(c,k)] and marginals n_c
    std::map<std::pair<int, int>, double> coincidence;
    std::map<int, double> marginal;
    std::vector<int> values;
    for (std::size_t u = 0; u < units; ++u) {
        values.clear();
        for (const auto& coder : ratings) {
            if (coder[u]) {
                values.push_back(*coder[u]);
            }
        }
        const std::size_t m = values.size();
        if (m < 2) {
            continue;
        }
        for (std::size_t i = 0; i < m; ++i) {
            for (std::size_t j = 0; j < m; ++j) {
                if (i != j) {
                    coincidence[{values[i], values[j]}] += 1.0 / static_cast<double>(m - 1);
                }
            }
        }
    }
    double n = 0;
    for (const auto& [pair, count] : coincidence) {
        marginal[pair.first] += count;
        n += count;
    }
    if (n < 2) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    double observed = 0;  // sum over c != k of o_ck
    for (const auto& [pair, count] : coincidence) {
        if (pair.first != pair.second) {
            observed += count;
        }
    }
    double expected = 0;  // sum over c != k of n_c n_k
    for (const auto& [c, nc] : marginal) {
        for (const auto& [k, nk] : marginal) {
            if (c != k) {
                expected += nc * nk;
            }
        }
    }
    if (expected == 0) {
        return std::numeric_limits<double>::quiet_NaN();
    }
    return 1.0 - (n - 1.0) * observed / expected;
}

/// Krippendorff's alpha over runs' group masks (e.g. the head masks of several seeds):
/// units are the groups, values kept (1) / pruned (0). Throws shape_error when the masks'
/// layouts differ. NaN when undefined (e.g. every run kept every head).
[[nodiscard]] inline double mask_agreement(std::span<const group_mask> runs) {
    std::vector<std::vector<std::optional<int>>> ratings;
    for (const group_mask& run : runs) {
        if (!run.same_layout(runs.front())) {
            throw shape_error("prune::mask_agreement: the runs' masks differ in layers or groups per layer");
        }
        std::vector<std::optional<int>> row(run.total());
        for (std::size_t i = 0; i < run.total(); ++i) {
            row[i] = run.kept_flat(i) ? 1 : 0;
        }
        ratings.push_back(std::move(row));
    }
    return krippendorff_alpha_nominal(ratings);
}

}  // namespace prune
