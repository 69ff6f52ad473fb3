// tests/nm/test_blocks.cpp: 2-D block scores (closed forms on small matrices), block
// selection global and per tensor, composition with element masks, and bad input.
#include <prune/blocks.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

TEST_CASE("score_of_key inverts score_key", "[blocks]") {
    for (float x : {0.f, 1.f, -1.f, 3.5e-30f, -7e12f, std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::denorm_min()}) {
        CHECK(prune::score_of_key(prune::score_key(x)) == x);
    }
    CHECK(std::isnan(prune::score_of_key(prune::score_key(std::numeric_limits<float>::quiet_NaN()))));
}

TEST_CASE("block_scores: sum, mean, max, l2 with partial edge blocks", "[blocks]") {
    // 3 x 5 matrix, blocks 2 x 3: grid 2 x 2; edge blocks are 2x2, 1x3, 1x2
    const std::vector<float> w = {1, -2, 3, 4, 5,  //
                                  -6, 7, 8, 9, -10,
                                  11, 12, -13, 14, 15};
    const auto s = prune::magnitude(prune::make_view(w.data(), {3, 5}));
    CHECK(prune::block_grid(s.extents(), {2, 3}) == prune::shape{2, 2});
    CHECK(prune::block_scores(s, {2, 3}, prune::block_reduce::sum) == std::vector<float>{27, 28, 36, 29});
    CHECK(prune::block_scores(s, {2, 3}, prune::block_reduce::mean) == std::vector<float>{4.5f, 7, 12, 14.5f});
    CHECK(prune::block_scores(s, {2, 3}, prune::block_reduce::max) == std::vector<float>{8, 10, 13, 15});
    const auto l2 = prune::block_scores(s, {2, 3}, prune::block_reduce::l2);
    CHECK(l2[0] == static_cast<float>(std::sqrt(1.0 + 4 + 9 + 36 + 49 + 64)));
    CHECK(l2[3] == static_cast<float>(std::sqrt(14.0 * 14 + 15 * 15)));
    // a NaN score makes its block NaN (pruned first)
    std::vector<float> with_nan = w;
    with_nan[4] = std::numeric_limits<float>::quiet_NaN();
    const auto n = prune::block_scores(prune::magnitude(prune::make_view(with_nan.data(), {3, 5})), {2, 3},
                                       prune::block_reduce::sum);
    CHECK(std::isnan(n[1]));
    CHECK(n[0] == 27);
    CHECK_THROWS_AS(prune::block_scores(prune::random_scores({3, 5}, 1), {2, 3}, prune::block_reduce::sum),
                    prune::value_error);
    CHECK_THROWS_AS(prune::block_scores(s, {0, 3}, prune::block_reduce::sum), prune::value_error);
}

TEST_CASE("prune_blocks_global and per tensor prune whole blocks, lowest first", "[blocks]") {
    // two 4 x 4 tensors in 2 x 2 blocks; block sums of |w| are the block's value x 4
    std::vector<float> a(16);
    std::vector<float> b(16);
    const float va[4] = {1, 5, 3, 7};  // block values, row-major over the 2 x 2 grid
    const float vb[4] = {2, 8, 4, 6};
    for (std::size_t r = 0; r < 4; ++r) {
        for (std::size_t c = 0; c < 4; ++c) {
            a[r * 4 + c] = va[(r / 2) * 2 + c / 2];
            b[r * 4 + c] = vb[(r / 2) * 2 + c / 2];
        }
    }
    const std::vector<prune::score_source> scores = {prune::magnitude(prune::make_view(a.data(), {4, 4})),
                                                     prune::magnitude(prune::make_view(b.data(), {4, 4}))};
    std::vector<prune::element_mask> masks = {prune::element_mask({4, 4}), prune::element_mask({4, 4})};
    const auto global = prune::prune_blocks_global(scores, masks, {2, 2}, prune::block_reduce::sum, 0.5);
    CHECK(global.candidates == 8);
    CHECK(global.pruned == 4);  // values 1, 2, 3, 4
    CHECK(prune::block_mask_of(masks[0], {2, 2}).to_bytes() == std::vector<std::uint8_t>{0, 1, 0, 1});
    CHECK(prune::block_mask_of(masks[1], {2, 2}).to_bytes() == std::vector<std::uint8_t>{0, 1, 0, 1});
    CHECK(masks[0].count_kept() == 8);

    std::vector<prune::element_mask> per = {prune::element_mask({4, 4}), prune::element_mask({4, 4})};
    const auto results = prune::prune_blocks_per_tensor(scores, per, {2, 2}, prune::block_reduce::max, 0.25);
    CHECK(results.size() == 2);
    CHECK(prune::block_mask_of(per[0], {2, 2}).to_bytes() == std::vector<std::uint8_t>{0, 1, 1, 1});
    CHECK(prune::block_mask_of(per[1], {2, 2}).to_bytes() == std::vector<std::uint8_t>{0, 1, 1, 1});
    // a second step sees only the still-kept blocks as candidates
    const auto again = prune::prune_blocks_per_tensor(scores, per, {2, 2}, prune::block_reduce::max, 0.34);
    CHECK(again[0].candidates == 3);
    CHECK(again[0].pruned == 1);
    CHECK(prune::block_mask_of(per[0], {2, 2}).to_bytes() == std::vector<std::uint8_t>{0, 1, 0, 1});
}

TEST_CASE("block selection: a block with any kept element is a candidate; bad input", "[blocks]") {
    std::vector<float> w(16, 1.f);
    const std::vector<prune::score_source> scores = {prune::magnitude(prune::make_view(w.data(), {4, 4}))};
    std::vector<prune::element_mask> masks = {prune::element_mask({4, 4})};
    masks[0].set(0, false);  // block 0 still has three kept elements
    const auto result = prune::prune_blocks_global(scores, masks, {2, 2}, prune::block_reduce::sum, 0.25);
    CHECK(result.candidates == 4);
    CHECK(result.pruned == 1);
    CHECK(masks[0].count_kept() == 12);  // block 0 (ties by block index) went
    std::vector<prune::element_mask> wrong = {prune::element_mask({2, 8})};
    CHECK_THROWS_AS(prune::prune_blocks_global(scores, wrong, {2, 2}, prune::block_reduce::sum, 0.5),
                    prune::shape_error);
    CHECK_THROWS_AS(prune::prune_blocks_global(scores, masks, {2, 2}, prune::block_reduce::sum, 1.5),
                    prune::value_error);
    prune::element_mask blocks({3, 3});
    CHECK_THROWS_AS(prune::apply_block_mask(blocks, masks[0], {2, 2}), prune::shape_error);
}
