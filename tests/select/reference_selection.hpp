// tests/select/reference_selection.hpp: the obviously-correct selection the tests compare
// prune::prune_smallest with: materialise every candidate's (key, tensor, index), sort, and
// prune the first k. Slow and memory-hungry on purpose; test sizes only.
#pragma once

#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <tuple>
#include <vector>

namespace prune_test {

/// Prunes the k smallest candidates by (key, tensor, index), by sorting all of them.
inline void reference_prune(std::span<const prune::score_source> scores, std::span<prune::element_mask> masks,
                            std::size_t k) {
    std::vector<std::tuple<std::uint32_t, std::size_t, std::size_t>> candidates;
    for (std::size_t t = 0; t < scores.size(); ++t) {
        std::vector<std::uint32_t> keys(scores[t].size());
        if (!keys.empty()) {
            scores[t].fill_keys(t, 0, keys);
        }
        for (std::size_t i = 0; i < keys.size(); ++i) {
            if (masks[t].kept(i)) {
                candidates.emplace_back(keys[i], t, i);
            }
        }
    }
    std::sort(candidates.begin(), candidates.end());
    for (std::size_t j = 0; j < k; ++j) {
        masks[std::get<1>(candidates[j])].set(std::get<2>(candidates[j]), false);
    }
}

}  // namespace prune_test
