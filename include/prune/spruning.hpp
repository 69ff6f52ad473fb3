// prune/spruning.hpp: s-pruning, the structured search of Prasanna et al. over attention
// heads and MLPs, generic over two callbacks:
//   importance(structure_mask) -> importance::michel_scores   scores under the current mask
//   evaluate(structure_mask)   -> double                      the dev metric (higher is better)
//
// baseline = evaluate(start). Three phases, each a prune::search (<prune/search.hpp>) that
// keeps going while metric >= ratio * baseline and reverts to the last passing mask on failure:
//   1. each step masks the floor(heads_fraction * total_heads) (at least 1) lowest-scoring
//      surviving heads, all layers ranked together, and the mlps_per_step lowest surviving MLPs;
//   2. heads only, floor(phase-1 step / 2) (at least 1) per step;
//   3. MLPs only, phase3_mlps_per_step per step.
// Importance is recomputed under the current mask before every step. Ties rank by score, then
// layer, then head (flat index): the lowest flat index goes first. Already-masked components
// are never ranked. A layer may lose all its heads; every MLP may go. A phase ends when a step
// fails or nothing is left to prune (its step would not change the mask). A step whose mask
// equals the one just rejected (a phase opening with the previous phase's failed step) reuses
// its metric: evaluate is called once per distinct mask in a row (spruning_record::reused).
#pragma once

#include <prune/error.hpp>
#include <prune/importance/michel.hpp>
#include <prune/mask.hpp>
#include <prune/search.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prune {

/// Settings of s-pruning (Prasanna et al.'s values by default).
struct spruning_options {
    double ratio = 0.9;                     ///< a mask passes when metric >= ratio * baseline
    double heads_fraction = 0.1;            ///< phase 1 heads per step: floor(fraction * total heads), >= 1
    std::size_t mlps_per_step = 1;          ///< phase 1 MLPs per step
    std::size_t phase2_divisor = 2;         ///< phase 2 heads per step: floor(phase 1 step / divisor), >= 1
    std::size_t phase3_mlps_per_step = 1;   ///< phase 3 MLPs per step
};

/// One evaluated mask of the s-pruning history.
struct spruning_record {
    int phase = 0;                 ///< 0 = the starting mask (baseline), then 1, 2, 3
    std::size_t step = 0;          ///< step within its phase (1, 2, ...)
    std::size_t heads_kept = 0;    ///< heads kept by the evaluated mask
    std::size_t mlps_kept = 0;     ///< MLPs kept by the evaluated mask
    double metric = 0.0;           ///< its metric
    bool passed = false;           ///< metric >= ratio * baseline
    structure_mask mask;           ///< the evaluated mask
    bool reused = false;           ///< the mask equals the one rejected just before: its metric, not evaluated again
};

/// The outcome of s-pruning.
struct spruning_result {
    structure_mask mask;                   ///< the last passing mask
    double baseline = 0.0;                 ///< evaluate(start)
    std::vector<spruning_record> history;  ///< the start, then every evaluated mask in order
};

/// The flat indices (layers in order) of the `count` lowest-scoring kept groups of `mask`, ranked by
/// (score, flat index); fewer when fewer are kept. `scores` holds one row of scores per layer.
/// Throws shape_error when the scores do not match the mask's layout.
[[nodiscard]] inline std::vector<std::size_t> lowest_kept(const group_mask& mask,
                                                          const std::vector<std::vector<double>>& scores,
                                                          std::size_t count, const char* what) {
    if (scores.size() != mask.layers()) {
        throw shape_error(std::string("prune::spruning: ") + what + " scores for " + std::to_string(scores.size()) +
                          " layers, the mask has " + std::to_string(mask.layers()));
    }
    std::vector<std::pair<double, std::size_t>> candidates;
    for (std::size_t l = 0; l < mask.layers(); ++l) {
        if (scores[l].size() != mask.groups(l)) {
            throw shape_error(std::string("prune::spruning: ") + what + " scores of layer " + std::to_string(l) +
                              " have " + std::to_string(scores[l].size()) + " entries, the mask " +
                              std::to_string(mask.groups(l)));
        }
        for (std::size_t g = 0; g < mask.groups(l); ++g) {
            if (mask.kept(l, g)) {
                if (std::isnan(scores[l][g])) {
                    throw value_error(std::string("prune::spruning: ") + what + " score [" + std::to_string(l) +
                                      "][" + std::to_string(g) + "] is NaN");
                }
                candidates.emplace_back(scores[l][g], mask.flat_index(l, g));
            }
        }
    }
    count = std::min(count, candidates.size());
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(count), candidates.end());
    std::vector<std::size_t> flat(count);
    for (std::size_t i = 0; i < count; ++i) flat[i] = candidates[i].second;
    return flat;
}

/// The phase-1 number of heads per step: floor(fraction * total heads), at least 1.
[[nodiscard]] inline std::size_t heads_per_step(std::size_t total_heads, double fraction) {
    const auto n = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(total_heads)));
    return std::max<std::size_t>(1, n);
}

/// s-pruning from `start` (usually everything kept). See the header comment for the rule.
/// Throws value_error for bad options and shape_error when the mask's heads and MLPs disagree in layers.
template <class Importance, class Evaluate>
[[nodiscard]] spruning_result s_prune(const structure_mask& start, Importance importance, Evaluate evaluate,
                                      const spruning_options& options = {}) {
    if (!(options.heads_fraction >= 0.0 && options.heads_fraction <= 1.0) || options.phase2_divisor == 0) {
        throw value_error("prune::s_prune: heads_fraction " + number_text(options.heads_fraction) +
                          " (expected in [0, 1]) / phase2_divisor " + std::to_string(options.phase2_divisor) +
                          " (expected > 0)");
    }
    if (start.heads.layers() != start.mlps.layers()) {
        throw shape_error("prune::s_prune: " + std::to_string(start.heads.layers()) + " layers of heads but " +
                          std::to_string(start.mlps.layers()) + " of MLPs");
    }
    for (std::size_t l = 0; l < start.mlps.layers(); ++l) {
        if (start.mlps.groups(l) != 1) {
            throw shape_error("prune::s_prune: layer " + std::to_string(l) + " has " +
                              std::to_string(start.mlps.groups(l)) + " MLP groups (expected 1)");
        }
    }
    spruning_result result;
    result.baseline = static_cast<double>(evaluate(static_cast<const structure_mask&>(start)));
    result.history.push_back({0, 0, start.heads.count_kept(), start.mlps.count_kept(), result.baseline, true, start});
    const std::size_t phase1_heads = heads_per_step(start.heads.total(), options.heads_fraction);
    const std::size_t phase2_heads = std::max<std::size_t>(1, phase1_heads / options.phase2_divisor);
    const struct {
        std::size_t heads, mlps;
    } phases[3] = {{phase1_heads, options.mlps_per_step}, {phase2_heads, 0}, {0, options.phase3_mlps_per_step}};

    search_options search_settings;
    search_settings.ratio = options.ratio;
    search_settings.max_steps = start.heads.total() + start.mlps.total() + 1;  // each step removes >= 1 or stops
    structure_mask current = start;
    std::optional<spruning_record> rejected;  // the last mask that failed, with its metric
    for (int phase = 1; phase <= 3; ++phase) {
        const auto& sizes = phases[phase - 1];
        auto step = [&](const structure_mask& mask) {
            structure_mask next = mask;
            if (sizes.heads == 0 && sizes.mlps == 0) return next;
            const importance::michel_scores scores = importance(static_cast<const structure_mask&>(mask));
            if (sizes.heads > 0) {
                for (std::size_t i : lowest_kept(mask.heads, scores.heads, sizes.heads, "head")) {
                    next.heads.set_flat(i, false);
                }
            }
            if (sizes.mlps > 0) {
                std::vector<std::vector<double>> mlp_rows(scores.mlps.size());
                for (std::size_t l = 0; l < scores.mlps.size(); ++l) mlp_rows[l] = {scores.mlps[l]};
                for (std::size_t i : lowest_kept(mask.mlps, mlp_rows, sizes.mlps, "MLP")) {
                    next.mlps.set_flat(i, false);
                }
            }
            return next;
        };
        auto evaluate_and_record = [&](const structure_mask& mask, std::size_t s) {
            // A phase can open with the mask the previous phase just rejected (e.g. one head per
            // step in phases 1 and 2 once no MLP is left, or with mlps_per_step 0): its metric
            // is reused instead of paying for the same evaluation again.
            const bool reused = rejected.has_value() && rejected->mask == mask;
            const double metric = reused ? rejected->metric : static_cast<double>(evaluate(mask));
            const bool passed = metric >= options.ratio * result.baseline;
            result.history.push_back({phase, s, mask.heads.count_kept(), mask.mlps.count_kept(), metric, passed,
                                      mask, reused});
            if (!passed) rejected = result.history.back();
            return metric;
        };
        auto sparsity = [](const structure_mask& mask) {
            const std::size_t total = mask.heads.total() + mask.mlps.total();
            return total == 0 ? 0.0
                              : static_cast<double>(mask.heads.count_pruned() + mask.mlps.count_pruned()) /
                                    static_cast<double>(total);
        };
        auto outcome = search(std::move(current), result.baseline, step, evaluate_and_record, sparsity,
                              search_settings);
        current = std::move(outcome.mask);
    }
    result.mask = std::move(current);
    return result;
}

}  // namespace prune
