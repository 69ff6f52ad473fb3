// Tests for prune/lottery.hpp: sizes and definitions of the random and bad structure masks.
#include <prune/lottery.hpp>

#include <catch2/catch.hpp>

#include <cmath>

namespace {
// A BERT-base-like good mask: 12 x 12 heads, `heads_kept` of them kept (first ones in flat
// order pruned), `mlps_kept` of 12 MLPs kept.
prune::structure_mask make_good(std::size_t heads_kept, std::size_t mlps_kept) {
    prune::structure_mask m{prune::group_mask::uniform(12, 12), prune::group_mask::uniform(12, 1)};
    for (std::size_t i = 0; i < 144 - heads_kept; ++i) m.heads.set_flat((i * 7) % 144, false);  // 7 coprime to 144
    for (std::size_t i = 0; i < 12 - mlps_kept; ++i) m.mlps.set_flat(i, false);
    return m;
}
}  // namespace

TEST_CASE("exact-size random keeps exactly the good counts, uniformly", "[lottery]") {
    const auto good = make_good(60, 9);
    std::vector<int> hits(144, 0);
    for (std::uint64_t seed = 0; seed < 400; ++seed) {
        const auto r = prune::random_structure(good, seed, prune::sample_size::exact);
        REQUIRE(r.heads.count_kept() == 60);
        REQUIRE(r.mlps.count_kept() == 9);
        REQUIRE(r.heads.same_layout(good.heads));
        for (std::size_t i = 0; i < 144; ++i) hits[i] += r.heads.kept_flat(i);
    }
    // Each head kept with probability 60/144: over 400 draws mean 166.7, sd ~9.9; 6 sd bounds.
    for (int h : hits) {
        CHECK(h > 107);
        CHECK(h < 226);
    }
}

TEST_CASE("expected-size random keeps each component with probability kept/total", "[lottery]") {
    const auto good = make_good(36, 3);
    double heads = 0, mlps = 0;
    const int draws = 2000;
    bool sizes_vary = false;
    for (std::uint64_t seed = 0; seed < draws; ++seed) {
        const auto r = prune::random_structure(good, seed);
        heads += static_cast<double>(r.heads.count_kept());
        mlps += static_cast<double>(r.mlps.count_kept());
        sizes_vary |= r.heads.count_kept() != 36;
    }
    CHECK(sizes_vary);  // the size matches only on average
    // Mean of Binomial(144, 1/4) = 36, sd of the mean = sqrt(144 * 3/16 / 2000) = 0.116.
    CHECK(std::abs(heads / draws - 36.0) < 0.7);
    // Mean of Binomial(12, 1/4) = 3, sd of the mean = 0.034.
    CHECK(std::abs(mlps / draws - 3.0) < 0.2);
}

TEST_CASE("bad: more survived than pruned -> all pruned plus a top-up of good ones", "[lottery]") {
    const auto good = make_good(100, 10);  // 44 heads and 2 MLPs pruned
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        const auto bad = prune::bad_structure(good, seed);
        CHECK(bad.heads.count_kept() == 100);
        CHECK(bad.mlps.count_kept() == 10);
        // every pruned component is in the bad network
        CHECK((bad.heads & ~good.heads) == ~good.heads);
        CHECK((bad.mlps & ~good.mlps) == ~good.mlps);
        // the top-up: 100 - 44 = 56 good heads
        CHECK((bad.heads & good.heads).count_kept() == 56);
    }
    CHECK(!(prune::bad_structure(good, 1) == prune::bad_structure(good, 2)));
}

TEST_CASE("bad: fewer survived than pruned -> a sample of pruned components of the good size", "[lottery]") {
    const auto good = make_good(50, 4);  // 94 heads and 8 MLPs pruned
    for (std::uint64_t seed = 0; seed < 20; ++seed) {
        const auto bad = prune::bad_structure(good, seed);
        CHECK(bad.heads.count_kept() == 50);
        CHECK(bad.mlps.count_kept() == 4);
        CHECK((bad.heads & good.heads).count_kept() == 0);  // only pruned ones
        CHECK((bad.mlps & good.mlps).count_kept() == 0);
    }
    // equal counts (72 / 72): the else branch, the pruned half exactly
    const auto half = make_good(72, 6);
    CHECK(prune::bad_structure(half, 3).heads == ~half.heads);
    CHECK(prune::bad_structure(half, 3).mlps == ~half.mlps);
}

TEST_CASE("subnetworks are seeded and deterministic; edge cases", "[lottery]") {
    const auto good = make_good(70, 8);
    CHECK(prune::random_structure(good, 42) == prune::random_structure(good, 42));
    CHECK(prune::bad_structure(good, 42) == prune::bad_structure(good, 42));
    CHECK(!(prune::random_structure(good, 42) == prune::random_structure(good, 43)));
    const auto all = make_good(144, 12);
    CHECK(prune::random_structure(all, 1) == all);  // p = 1
    CHECK(prune::bad_structure(all, 1) == all);      // 0 pruned: top-up with every good one
    const auto none = make_good(0, 0);
    CHECK(prune::random_structure(none, 1).heads.count_kept() == 0);
    CHECK(prune::bad_structure(none, 1).heads.count_kept() == 0);
    // Ragged layouts (after physical removal) are kept.
    const std::vector<std::size_t> counts{3, 0, 2};
    prune::structure_mask ragged{prune::group_mask(counts), prune::group_mask::uniform(3, 1)};
    ragged.heads.set(0, 1, false);
    CHECK(prune::bad_structure(ragged, 5).heads.same_layout(ragged.heads));
    CHECK(prune::random_structure(ragged, 5, prune::sample_size::exact).heads.count_kept() == 4);
}

TEST_CASE("m-subnetworks: random and bad prune the good count; bad prunes the largest |w|", "[lottery]") {
    // Two tensors, 3 x 4 and 5; the good masks prune 2 + 1 = 3 elements.
    std::vector<float> a{0.1f, -0.9f, 0.3f, 0.05f, 2.0f, -0.2f, 0.7f, 0.0f, -1.5f, 0.4f, 0.6f, 0.8f};
    std::vector<float> b{1.0f, -3.0f, 0.2f, 0.1f, 0.5f};
    std::vector<prune::element_mask> good{prune::element_mask(prune::shape{3, 4}), prune::element_mask(prune::shape{5})};
    good[0].set(0, false);
    good[0].set(3, false);
    good[1].set(3, false);
    const auto r1 = prune::random_elements(good, 9);
    CHECK(r1[0].count_pruned() + r1[1].count_pruned() == 3);
    CHECK(r1 == prune::random_elements(good, 9));
    std::size_t differ = 0;
    for (std::uint64_t seed = 0; seed < 20; ++seed) differ += !(prune::random_elements(good, seed) == r1);
    CHECK(differ > 10);
    const std::vector<prune::score_source> inverted{prune::inverted_magnitude(std::span<const float>(a)),
                                                    prune::inverted_magnitude(std::span<const float>(b))};
    const auto bad = prune::bad_elements(good, inverted);
    // The three largest |w| over both tensors: -3.0 (b[1]), 2.0 (a[4]), -1.5 (a[8]).
    CHECK(!bad[1].kept(1));
    CHECK(!bad[0].kept(4));
    CHECK(!bad[0].kept(8));
    CHECK(bad[0].count_pruned() + bad[1].count_pruned() == 3);
    CHECK_THROWS_AS(prune::bad_elements(good, std::span<const prune::score_source>(inverted.data(), 1)), prune::shape_error);
}
