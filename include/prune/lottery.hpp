// prune/lottery.hpp: the "random" and "bad" structure subnetworks of "When BERT Plays the
// Lottery", built from the "good" mask that s-pruning found.
//
// Heads and MLPs are handled separately, each with its own kept / total counts:
//   random_structure(good, seed)                 each component kept independently with
//                                                probability kept/total (size matches on average)
//   random_structure(good, seed, exact_size)     a uniform sample of exactly `kept` components
//   bad_structure(good, seed)                    if more survived than were pruned: every pruned
//                                                component plus a random top-up of good ones;
//                                                else a random sample of `kept` pruned components
// Randomness is a SplitMix64 stream of the seed (its own stream for heads and for MLPs), so
// masks are bit-identical on every platform and standard library.
// Element masks (m-pruning), through the selection engine (<prune/select.hpp>) and its score
// providers (<prune/importance/scores.hpp>), with exactly the good masks' pruned count overall:
//   random_elements(good, seed)          uniform over all prunable weights (random_scores)
//   bad_elements(good, inverted scores)  prune the largest |w| (inverted_magnitude sources)
#pragma once

#include <prune/detail/random.hpp>
#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/select.hpp>

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <utility>
#include <string>
#include <vector>

namespace prune {

/// How random_structure sizes its sample.
enum class sample_size {
    expected,  ///< each component kept independently with probability kept/total (the paper's)
    exact,     ///< exactly as many components as the good mask keeps
};

namespace detail {

/// The random group mask with the layout of `good` (see random_structure).
inline group_mask random_groups(const group_mask& good, splitmix64& rng, sample_size size) {
    group_mask result = good;
    const std::size_t total = good.total();
    const std::size_t kept = good.count_kept();
    if (size == sample_size::expected) {
        const double p = total == 0 ? 0.0 : static_cast<double>(kept) / static_cast<double>(total);
        for (std::size_t i = 0; i < total; ++i) result.set_flat(i, rng.uniform() < p);
        return result;
    }
    std::vector<std::size_t> all(total);
    std::iota(all.begin(), all.end(), std::size_t{0});
    for (std::size_t i = 0; i < total; ++i) result.set_flat(i, false);
    for (std::size_t i : sample_without_replacement(std::move(all), kept, rng)) result.set_flat(i, true);
    return result;
}

/// The bad group mask of `good` (see bad_structure): always exactly good.count_kept() kept.
inline group_mask bad_groups(const group_mask& good, splitmix64& rng) {
    std::vector<std::size_t> survived, pruned;
    for (std::size_t i = 0; i < good.total(); ++i) (good.kept_flat(i) ? survived : pruned).push_back(i);
    group_mask result = good;
    for (std::size_t i = 0; i < good.total(); ++i) result.set_flat(i, false);
    if (survived.size() > pruned.size()) {
        for (std::size_t i : pruned) result.set_flat(i, true);
        const std::size_t top_up = survived.size() - pruned.size();
        for (std::size_t i : sample_without_replacement(std::move(survived), top_up, rng)) result.set_flat(i, true);
    } else {
        const std::size_t k = survived.size();
        for (std::size_t i : sample_without_replacement(std::move(pruned), k, rng)) result.set_flat(i, true);
    }
    return result;
}

}  // namespace detail

/// The random subnetwork of a good structure mask: heads and MLPs sampled separately, with
/// probability kept/total each (sample_size::expected) or exactly the good counts (sample_size::exact).
[[nodiscard]] inline structure_mask random_structure(const structure_mask& good, std::uint64_t seed,
                                                     sample_size size = sample_size::expected) {
    detail::splitmix64 head_rng(seed, 1), mlp_rng(seed, 2);
    return {detail::random_groups(good.heads, head_rng, size), detail::random_groups(good.mlps, mlp_rng, size)};
}

/// The bad subnetwork of a good structure mask (heads and MLPs separately, each of the good size):
/// if more survived than were pruned, all pruned components plus a random top-up of good ones;
/// otherwise a random sample of the pruned components.
[[nodiscard]] inline structure_mask bad_structure(const structure_mask& good, std::uint64_t seed) {
    detail::splitmix64 head_rng(seed, 3), mlp_rng(seed, 4);
    return {detail::bad_groups(good.heads, head_rng), detail::bad_groups(good.mlps, mlp_rng)};
}

namespace detail {
/// Fresh all-kept masks of the good masks' shapes, and the good masks' total pruned count.
inline std::vector<element_mask> fresh_like(std::span<const element_mask> good, std::size_t& pruned) {
    std::vector<element_mask> fresh;
    pruned = 0;
    for (const element_mask& m : good) {
        fresh.emplace_back(m.extents());
        pruned += m.count_pruned();
    }
    return fresh;
}
}  // namespace detail

/// The random m-subnetwork: as many weights pruned in total as the good masks prune, uniformly at
/// random over every element of every tensor (seeded; independent of threads).
[[nodiscard]] inline std::vector<element_mask> random_elements(std::span<const element_mask> good, std::uint64_t seed) {
    std::size_t pruned = 0;
    std::vector<element_mask> masks = detail::fresh_like(good, pruned);
    std::vector<score_source> scores;
    for (const element_mask& m : good) scores.push_back(random_scores(m.extents(), seed));
    prune_smallest(scores, masks, pruned);
    return masks;
}

/// The bad m-subnetwork: as many weights pruned in total as the good masks prune, the largest |w|
/// first. `inverted` holds inverted_magnitude(weight) of each tensor, in the good masks' order.
/// Throws shape_error when the sources do not match the masks.
[[nodiscard]] inline std::vector<element_mask> bad_elements(std::span<const element_mask> good,
                                                            std::span<const score_source> inverted) {
    if (inverted.size() != good.size()) {
        throw shape_error("prune::bad_elements: " + std::to_string(inverted.size()) + " score sources for " +
                          std::to_string(good.size()) + " masks");
    }
    std::size_t pruned = 0;
    std::vector<element_mask> masks = detail::fresh_like(good, pruned);
    prune_smallest(inverted, masks, pruned);
    return masks;
}

}  // namespace prune
