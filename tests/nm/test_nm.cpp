// tests/nm/test_nm.cpp: N:M selection (convention, tie rule, composition with an existing
// mask), validation, and the 2:4 packing: a hand-worked example from the documented layout,
// round trips, and bad input.
#include <prune/nm.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

std::vector<float> random_weights(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    std::vector<float> w(n);
    for (float& x : w) x = normal(rng);
    return w;
}

}  // namespace

TEST_CASE("nm_pattern pins the convention: kept of group; pruning() is the reference code's reading", "[nm]") {
    CHECK(prune::two_four.kept == 2);
    CHECK(prune::two_four.group == 4);
    CHECK(prune::nm_pattern::pruning(2, 4) == prune::two_four);
    CHECK(prune::nm_pattern::pruning(4, 8) == prune::four_eight);
    CHECK(prune::nm_pattern::pruning(1, 4) == prune::nm_pattern{3, 4});
    CHECK(prune::nm_pattern{1, 4}.pruned() == 3);
    CHECK(prune::nm_pattern{1, 4}.sparsity() == 0.75);
    CHECK_THROWS_AS(prune::nm_pattern::pruning(5, 4), prune::value_error);
}

TEST_CASE("prune_nm keeps the largest scores of every group, ties by column", "[nm]") {
    // one row, two groups of 4; group 1 is all ties: columns 4 and 5 (the smaller) go
    const std::vector<float> w = {0.5f, -3.f, 0.1f, 2.f, 1.f, -1.f, 1.f, 1.f};
    const prune::element_mask mask = prune::nm_mask(prune::magnitude(prune::make_view(w.data(), {1, 8})), prune::two_four);
    CHECK(mask.to_bytes() == std::vector<std::uint8_t>{0, 1, 0, 1, 0, 0, 1, 1});
    // 1:4 in the papers' sense ("prune 1 of 4") keeps 3
    const prune::element_mask three = prune::nm_mask(prune::magnitude(prune::make_view(w.data(), {1, 8})),
                                                     prune::nm_pattern::pruning(1, 4));
    CHECK(three.to_bytes() == std::vector<std::uint8_t>{1, 1, 0, 1, 0, 1, 1, 1});
}

TEST_CASE("prune_nm: NaN scores go first, and an existing mask is respected", "[nm]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> w = {nan, 5.f, 4.f, 3.f, 1.f, 2.f, 3.f, 4.f};
    const auto scores = prune::magnitude(prune::make_view(w.data(), {2, 4}));
    CHECK(prune::nm_mask(scores, prune::two_four).to_bytes() == std::vector<std::uint8_t>{0, 1, 1, 0, 0, 0, 1, 1});
    // row 0 already lost columns 1 and 2: two are left (NaN, 3), nothing more goes; row 1 lost
    // column 3: of 1, 2, 3 the 1 goes
    prune::element_mask existing(prune::shape{2, 4});
    existing.set(7, false);
    existing.set(1, false);
    existing.set(2, false);
    const std::size_t pruned = prune::prune_nm(scores, existing, prune::two_four);
    CHECK(existing.to_bytes() == std::vector<std::uint8_t>{1, 0, 0, 1, 0, 1, 1, 0});
    CHECK(pruned == 1);
}

TEST_CASE("prune_nm on random weights: every group keeps exactly `kept`, the largest", "[nm]") {
    const std::size_t rows = 33;
    const std::size_t cols = 64;
    const std::vector<float> w = random_weights(rows * cols, 3);
    for (const prune::nm_pattern p : {prune::two_four, prune::four_eight, prune::nm_pattern{1, 4}, prune::nm_pattern{7, 32}}) {
        const prune::element_mask m = prune::nm_mask(prune::magnitude(prune::make_view(w.data(), {rows, cols})), p);
        CHECK(prune::is_nm(m, p));
        CHECK(m.count_kept() == rows * cols / p.group * p.kept);
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t c0 = 0; c0 < cols; c0 += p.group) {
                float smallest_kept = 1e30f;
                float largest_pruned = -1.f;
                for (std::size_t j = 0; j < p.group; ++j) {
                    const float a = std::abs(w[r * cols + c0 + j]);
                    if (m.kept(r * cols + c0 + j)) smallest_kept = std::min(smallest_kept, a);
                    else largest_pruned = std::max(largest_pruned, a);
                }
                CHECK(largest_pruned <= smallest_kept);
            }
        }
    }
}

TEST_CASE("N:M validation: pattern, width and masks", "[nm]") {
    const std::vector<float> w(24, 1.f);
    const auto scores = prune::magnitude(prune::make_view(w.data(), {2, 12}));
    CHECK_THROWS_AS(prune::nm_mask(scores, prune::nm_pattern{4, 4}), prune::value_error);
    CHECK_THROWS_AS(prune::nm_mask(scores, prune::nm_pattern{0, 4}), prune::value_error);
    CHECK_THROWS_AS(prune::nm_mask(scores, prune::nm_pattern{5, 4}), prune::value_error);
    CHECK_THROWS_WITH(prune::nm_mask(scores, prune::four_eight),
                      Catch::Contains("groups of 8 do not divide the width 12"));
    prune::element_mask wrong(prune::shape{3, 8});
    CHECK_THROWS_AS(prune::prune_nm(scores, wrong, prune::two_four), prune::shape_error);

    prune::element_mask m(prune::shape{2, 8});
    CHECK(!prune::is_nm(m, prune::two_four));
    m = prune::element_mask(prune::shape{2, 8}, false);
    m.set(9, true);
    m.set(10, true);
    CHECK(prune::is_nm(m, prune::two_four));
    m.set(11, true);
    CHECK_THROWS_WITH(prune::require_nm(m, prune::two_four),
                      Catch::Contains("row 1, columns [0, 4) keep 3 (expected at most 2)"));
}

TEST_CASE("pack_2_4: the hand-worked example of docs/nm-blocks.md", "[nm][pack]") {
    // one row of 16: w = 1..16; group 0 keeps columns 1, 3; group 1 keeps 4, 5; group 2 keeps only
    // 10; group 3 keeps none. Nibbles (idx0 | idx1 << 2): (1,3) = 13, (0,1) = 4, (0,2) padded = 8,
    // (0,1) padded = 4; word = 13 | 4 << 4 | 8 << 8 | 4 << 12 = 0x484D. Values, two per group in
    // column order, padded slots 0: 2 4 | 5 6 | 0 11 | 0 0.
    std::vector<float> w(16);
    for (std::size_t i = 0; i < 16; ++i) w[i] = static_cast<float>(i + 1);
    prune::element_mask mask(prune::shape{1, 16}, false);
    for (std::size_t c : {1, 3, 4, 5, 10}) mask.set(c, true);
    const auto packed = prune::pack_2_4(prune::make_view(w.data(), {1, 16}), mask);
    CHECK(packed.metadata == std::vector<std::uint16_t>{0x484D});
    CHECK(packed.values == std::vector<float>{2, 4, 5, 6, 0, 11, 0, 0});
    const auto [dense, unpacked_mask] = prune::unpack_2_4(packed);
    CHECK(dense == std::vector<float>{0, 2, 0, 4, 5, 6, 0, 0, 0, 0, 11, 0, 0, 0, 0, 0});
    // the padded positions (8 and 12, 13) come back as kept zeros
    CHECK(unpacked_mask.to_bytes() == std::vector<std::uint8_t>{0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 0, 0});
}

TEST_CASE("pack_2_4 / unpack_2_4 round trip on a 2:4 mask of random weights (float, half, column-major)", "[nm][pack]") {
    const std::size_t rows = 9;
    const std::size_t cols = 48;
    std::vector<float> w = random_weights(rows * cols, 5);
    const prune::element_mask mask = prune::nm_mask(prune::magnitude(prune::make_view(w.data(), {rows, cols})), prune::two_four);
    const auto packed = prune::pack_2_4(prune::make_view(w.data(), {rows, cols}), mask);
    const auto [dense, back] = prune::unpack_2_4(packed);
    CHECK(back == mask);  // every group keeps exactly two: no padding
    std::vector<float> expected = w;
    prune::apply(mask, prune::make_view(expected.data(), {rows, cols}));
    CHECK(dense == expected);
    // nibbles are valid patterns only
    for (std::uint16_t word : packed.metadata) {
        for (int g = 0; g < 4; ++g) {
            const unsigned nibble = (word >> (4 * g)) & 0xFu;
            CHECK((nibble == 4 || nibble == 8 || nibble == 9 || nibble == 12 || nibble == 13 || nibble == 14));
        }
    }
    // half elements, and the same matrix stored column-major
    std::vector<prune::half> h(rows * cols);
    std::vector<prune::half> h_col(rows * cols);
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            h[r * cols + c] = prune::to_half(w[r * cols + c]);
            h_col[c * rows + r] = h[r * cols + c];
        }
    }
    const auto ph = prune::pack_2_4(prune::make_view(h.data(), {rows, cols}), mask);
    const auto pc = prune::pack_2_4(prune::make_view(h_col.data(), {rows, cols}, prune::layout::column_major), mask);
    CHECK(ph.metadata == packed.metadata);
    CHECK(pc.metadata == packed.metadata);
    for (std::size_t i = 0; i < ph.values.size(); ++i) {
        CHECK(ph.values[i].bits == pc.values[i].bits);
        CHECK(prune::to_float(ph.values[i]) == prune::to_float(prune::to_half(packed.values[i])));
    }
}

TEST_CASE("pack_2_4 refuses masks that are not 2:4, bad widths and corrupt metadata", "[nm][pack]") {
    std::vector<float> w(32, 1.f);
    prune::element_mask full(prune::shape{2, 16});
    CHECK_THROWS_WITH(prune::pack_2_4(prune::make_view(w.data(), {2, 16}), full),
                      Catch::Contains("row 0, columns [0, 4) keep 4"));
    prune::element_mask narrow(prune::shape{4, 8}, false);
    CHECK_THROWS_AS(prune::pack_2_4(prune::make_view(w.data(), {4, 8}), narrow), prune::shape_error);
    prune::packed_2_4<float> bad{1, 16, std::vector<float>(8), std::vector<std::uint16_t>{0x4440}};
    CHECK_THROWS_WITH(prune::unpack_2_4(bad), Catch::Contains("group 0: metadata nibble 0"));
    bad.metadata.clear();
    CHECK_THROWS_AS(prune::unpack_2_4(bad), prune::format_error);
}
