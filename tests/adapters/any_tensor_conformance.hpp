// any_tensor_conformance.hpp: every public algorithm that docs/selection.md, docs/nm-blocks.md
// and docs/importance.md say runs on "any adapted tensor", run on one tensor family and
// compared with closed forms computed here from the plain values (so every family is checked
// against the same independent truth, hence all families agree with each other):
//   magnitude + prune_global / prune_per_tensor   the k smallest |w| (sorted directly)
//   inverted_magnitude, given_scores + prune_smallest   the k largest |w|, the k smallest w
//   apply_groups                                  the pruned group's elements zeroed
//   nm_mask (2:4) + is_nm                         the 2 largest |w| of every group of 4
//   block_scores (sum) + prune_blocks_global      sums of |w| over the blocks, smallest blocks pruned
//   apply                                         w where kept, 0 where pruned
//   pack_2_4 / unpack_2_4                         the kept values and nibbles p0 | p1 << 2
//   michel_accumulator::add_unit                  per-example sums of |g|
// A family is a struct with `template <std::size_t R, std::size_t C> using fixture = ...;` whose
// fixture(values) holds an R x C tensor (logical row-major values) and gives it by tensor().
// Rank-1 families (std::vector, std::span) hold R * C elements; the algorithms below are chosen
// so that both readings agree (groups of 4 and blocks of 1 x 8 never cross a row of 16).
#pragma once

#include <prune/blocks.hpp>
#include <prune/importance/michel.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/nm.hpp>
#include <prune/select.hpp>
#include <prune/tensor.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

namespace any_tensor {

inline constexpr std::size_t rows = 4;
inline constexpr std::size_t cols = 16;

/// Distinct, sign-mixed values (an LCG; no two magnitudes are equal, checked below).
inline std::vector<float> values(std::size_t n, std::uint32_t seed) {
    std::vector<float> v(n);
    std::uint32_t state = seed;
    for (float& x : v) {
        state = state * 1664525u + 1013904223u;
        x = (static_cast<float>(state >> 8) / 16777216.0f - 0.5f) * 4.0f;
    }
    return v;
}

/// The keep flags that prune the k smallest scores (no ties: checked in run()).
inline std::vector<std::uint8_t> keep_all_but_smallest(const std::vector<float>& scores, std::size_t k) {
    std::vector<std::size_t> order(scores.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] < scores[b]; });
    std::vector<std::uint8_t> keep(scores.size(), 1);
    for (std::size_t i = 0; i < k; ++i) keep[order[i]] = 0;
    return keep;
}

/// The values mapped by f (|w| for magnitude, -|w| for inverted magnitude).
template <class F>
std::vector<float> mapped(const std::vector<float>& w, F f) {
    std::vector<float> out(w.size());
    std::transform(w.begin(), w.end(), out.begin(), f);
    return out;
}
inline float magnitude_of(float x) { return std::fabs(x); }
inline float inverted_magnitude_of(float x) { return -std::fabs(x); }

/// 2:4 truth: in every group of 4 consecutive values the 2 largest |w| are kept.
inline std::vector<std::uint8_t> two_four_truth(const std::vector<float>& w) {
    std::vector<std::uint8_t> keep(w.size(), 0);
    for (std::size_t g = 0; g < w.size(); g += 4) {
        std::array<std::size_t, 4> idx{g, g + 1, g + 2, g + 3};
        std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return std::fabs(w[a]) > std::fabs(w[b]); });
        keep[idx[0]] = keep[idx[1]] = 1;
    }
    return keep;
}

/// Sum of |w| over blocks of 1 x 8 of rows of 16, row-major over the grid.
inline std::vector<float> block_sum_truth(const std::vector<float>& w) {
    std::vector<float> out;
    for (std::size_t b = 0; b < w.size(); b += 8) {
        double s = 0.0;
        for (std::size_t j = 0; j < 8; ++j) s += std::fabs(static_cast<double>(w[b + j]));
        out.push_back(static_cast<float>(s));
    }
    return out;
}

/// Runs every algorithm on Family's tensors and checks it against the closed forms.
template <class Family>
void run() {
    using weights = typename Family::template fixture<rows, cols>;
    const std::vector<float> wa = values(rows * cols, 1u);
    const std::vector<float> wb = values(rows * cols, 2u);
    std::vector<float> both = wa;
    both.insert(both.end(), wb.begin(), wb.end());
    {
        std::vector<float> m = mapped(both, magnitude_of);
        std::sort(m.begin(), m.end());
        REQUIRE(std::adjacent_find(m.begin(), m.end()) == m.end());  // no ties: the truth is unique
    }
    weights a(wa);
    weights b(wb);

    SECTION("magnitude + prune_global (half of both tensors)") {
        const std::vector<prune::score_source> scores = {prune::magnitude(a.tensor()), prune::magnitude(b.tensor())};
        std::vector<prune::element_mask> masks = {prune::element_mask(scores[0].extents()),
                                                  prune::element_mask(scores[1].extents())};
        CHECK(prune::prune_global(scores, masks, 0.5).pruned == rows * cols);
        std::vector<std::uint8_t> got = masks[0].to_bytes();
        const std::vector<std::uint8_t> got_b = masks[1].to_bytes();
        got.insert(got.end(), got_b.begin(), got_b.end());
        CHECK(got == keep_all_but_smallest(mapped(both, magnitude_of), rows * cols));
    }
    SECTION("magnitude + prune_per_tensor (a quarter of each)") {
        const std::vector<prune::score_source> scores = {prune::magnitude(a.tensor()), prune::magnitude(b.tensor())};
        std::vector<prune::element_mask> masks = {prune::element_mask(scores[0].extents()),
                                                  prune::element_mask(scores[1].extents())};
        prune::prune_per_tensor(scores, masks, 0.25);
        CHECK(masks[0].to_bytes() == keep_all_but_smallest(mapped(wa, magnitude_of), rows * cols / 4));
        CHECK(masks[1].to_bytes() == keep_all_but_smallest(mapped(wb, magnitude_of), rows * cols / 4));
    }
    SECTION("inverted_magnitude, given_scores + prune_smallest") {
        const std::size_t k = 8;
        std::vector<prune::element_mask> masks = {prune::element_mask(prune::magnitude(a.tensor()).extents())};
        const std::vector<prune::score_source> inverted = {prune::inverted_magnitude(a.tensor())};
        CHECK(prune::prune_smallest(inverted, masks, k).pruned == k);
        CHECK(masks[0].to_bytes() == keep_all_but_smallest(mapped(wa, inverted_magnitude_of), k));

        masks = {prune::element_mask(masks[0].extents())};
        const std::vector<prune::score_source> given = {prune::given_scores(a.tensor())};
        prune::prune_smallest(given, masks, k);
        CHECK(masks[0].to_bytes() == keep_all_but_smallest(wa, k));
    }
    SECTION("apply_groups: group 2 of 4 along axis 0 (row 2 of [4, 16]; elements 32..47 of [64])") {
        const prune::group_mask groups = prune::group_mask::from_rows({{1, 1, 0, 1}});
        prune::apply_groups(groups, 0, a.tensor(), 0);
        std::vector<float> expected = wa;
        std::fill(expected.begin() + 2 * cols, expected.begin() + 3 * cols, 0.0f);
        CHECK(a.logical() == expected);
    }
    SECTION("nm_mask 2:4, is_nm, apply, pack_2_4 and unpack_2_4") {
        const prune::element_mask m = prune::nm_mask(prune::magnitude(a.tensor()), prune::two_four);
        const std::vector<std::uint8_t> truth = two_four_truth(wa);
        CHECK(m.to_bytes() == truth);
        CHECK(prune::is_nm(m, prune::two_four));

        std::vector<float> pruned_truth(wa.size());
        std::vector<float> kept_values;
        std::vector<std::uint16_t> metadata((rows * cols) / 16, 0);
        for (std::size_t i = 0; i < wa.size(); ++i) {
            pruned_truth[i] = truth[i] ? wa[i] : 0.0f;
            if (truth[i]) kept_values.push_back(wa[i]);
        }
        for (std::size_t g = 0; g < wa.size() / 4; ++g) {  // nibble p0 | p1 << 2, 4 groups per word
            unsigned p[2];
            unsigned n = 0;
            for (unsigned j = 0; j < 4; ++j) {
                if (truth[4 * g + j]) p[n++] = j;
            }
            metadata[g / 4] = static_cast<std::uint16_t>(metadata[g / 4] | ((p[0] | (p[1] << 2)) << (4 * (g % 4))));
        }
        const auto packed = Family::pack(a, m);
        CHECK(std::vector<float>(packed.values.begin(), packed.values.end()) == kept_values);
        CHECK(packed.metadata == metadata);
        const auto [dense, unpacked_mask] = prune::unpack_2_4(packed);
        CHECK(std::vector<float>(dense.begin(), dense.end()) == pruned_truth);
        CHECK(unpacked_mask.to_bytes() == truth);

        prune::apply(m, a.tensor());
        CHECK(a.logical() == pruned_truth);
    }
    SECTION("block_scores (sum over 1 x 8) and prune_blocks_global") {
        const prune::score_source s = prune::magnitude(a.tensor());
        const prune::block_shape block{1, 8};
        const std::vector<float> sums = prune::block_scores(s, block, prune::block_reduce::sum);
        const std::vector<float> truth = block_sum_truth(wa);
        REQUIRE(sums.size() == truth.size());
        for (std::size_t i = 0; i < sums.size(); ++i) {
            CHECK(sums[i] == Approx(truth[i]).epsilon(1e-6));
        }
        std::vector<prune::element_mask> masks = {prune::element_mask(s.extents())};
        const std::vector<prune::score_source> scores = {s};
        CHECK(prune::prune_blocks_global(scores, masks, block, prune::block_reduce::sum, 0.25).pruned == 2);
        std::vector<std::size_t> order(truth.size());
        std::iota(order.begin(), order.end(), std::size_t{0});
        std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return truth[x] < truth[y]; });
        std::vector<std::uint8_t> expected(wa.size(), 1);
        for (std::size_t k = 0; k < 2; ++k) {
            std::fill_n(expected.begin() + static_cast<std::ptrdiff_t>(8 * order[k]), 8, std::uint8_t{0});
        }
        CHECK(masks[0].to_bytes() == expected);
    }
    SECTION("michel_accumulator::add_unit ([2, 3] head and [1, 2] MLP gradients)") {
        const std::vector<float> g1 = values(6, 3u);
        const std::vector<float> g2 = values(6, 4u);
        const std::vector<float> m1 = values(2, 5u);
        const std::vector<float> m2 = values(2, 6u);
        typename Family::template fixture<2, 3> h1(g1);
        typename Family::template fixture<2, 3> h2(g2);
        typename Family::template fixture<1, 2> l1(m1);
        typename Family::template fixture<1, 2> l2(m2);
        const std::array<std::size_t, 2> heads{3, 3};
        prune::importance::michel_accumulator acc(heads);
        acc.add_unit(h1.tensor(), l1.tensor(), 7);
        acc.add_unit(h2.tensor(), l2.tensor(), 5);
        CHECK(acc.units() == 2);
        for (std::size_t i = 0; i < 6; ++i) {  // per example: the sum of |g| over the units
            CHECK(acc.head_sums()[i] == std::fabs(static_cast<double>(g1[i])) + std::fabs(static_cast<double>(g2[i])));
        }
        for (std::size_t i = 0; i < 2; ++i) {
            CHECK(acc.mlp_sums()[i] == std::fabs(static_cast<double>(m1[i])) + std::fabs(static_cast<double>(m2[i])));
        }
    }
}

/// 2-D blocks (2 x 4, partial edges impossible here) for the rank-2 families: sums of |w| over
/// the block, row-major over the [2, 4] grid.
template <class Family>
void run_2d_blocks() {
    const std::vector<float> w = values(rows * cols, 7u);
    typename Family::template fixture<rows, cols> a(w);
    const prune::score_source s = prune::magnitude(a.tensor());
    REQUIRE(s.extents() == prune::shape{rows, cols});
    const std::vector<float> sums = prune::block_scores(s, prune::block_shape{2, 4}, prune::block_reduce::sum);
    REQUIRE(sums.size() == 8);
    for (std::size_t br = 0; br < 2; ++br) {
        for (std::size_t bc = 0; bc < 4; ++bc) {
            double truth = 0.0;
            for (std::size_t r = 2 * br; r < 2 * br + 2; ++r) {
                for (std::size_t c = 4 * bc; c < 4 * bc + 4; ++c) truth += std::fabs(static_cast<double>(w[r * cols + c]));
            }
            CHECK(sums[br * 4 + bc] == Approx(truth).epsilon(1e-6));
        }
    }
}

}  // namespace any_tensor
