// Tests for prune/detail/random.hpp: SplitMix64's outputs against an independent Python
// transliteration of Vigna's splitmix64.c (x += 0x9E3779B97F4A7C15; z = (z ^ z >> 30) *
// 0xBF58476D1CE4E5B9; z = (z ^ z >> 27) * 0x94D049BB133111EB; return z ^ z >> 31; all mod 2^64,
// run with python3 -c), the stream constructor's seeding, and the derived draws (uniform, below,
// shuffle, sampling without replacement).
#include <prune/detail/random.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <set>
#include <vector>

using prune::detail::splitmix64;

TEST_CASE("splitmix64 gives the reference outputs") {
    auto zero = splitmix64::from_state(0);
    CHECK(zero.next() == 0xE220A8397B1DCDAFull);
    CHECK(zero.next() == 0x6E789E6AA1B965F4ull);
    CHECK(zero.next() == 0x06C45D188009454Full);
    auto other = splitmix64::from_state(1234567);
    CHECK(other.next() == 0x599ED017FB08FC85ull);
    CHECK(other.next() == 0x2C73F08458540FA5ull);
    CHECK(other.next() == 0x883EBCE5A3F27C77ull);
    // Stream 3 of seed 42 starts from the state 42 ^ (0xD1B54A32D192ED03 x 4 mod 2^64).
    splitmix64 stream(42, 3);
    CHECK(stream.next() == 0xF296AEF7B1B52AC4ull);
    CHECK(stream.next() == 0x8C2169269FFD58D0ull);
    splitmix64 a(42), b(42, 0), c(42, 1);
    const auto first = a.next();
    CHECK(first == b.next());
    CHECK(first != c.next());
}

TEST_CASE("splitmix64's derived draws stay in range and are permutations / subsets") {
    splitmix64 rng(7);
    double low = 1.0, high = 0.0, sum = 0.0;
    for (int i = 0; i < 10000; ++i) {
        const double u = rng.uniform();
        REQUIRE(u >= 0.0);
        REQUIRE(u < 1.0);
        low = std::min(low, u);
        high = std::max(high, u);
        sum += u;
    }
    CHECK(low < 0.01);
    CHECK(high > 0.99);
    CHECK(sum / 10000 == Approx(0.5).margin(0.02));  // 0.5 +- 7 sigma (sigma = 0.0029)
    std::vector<int> counts(3, 0);
    for (int i = 0; i < 3000; ++i) ++counts[static_cast<std::size_t>(rng.below(3))];
    for (int n : counts) CHECK(std::abs(n - 1000) < 150);  // 1000 +- 5.8 sigma
    std::vector<int> v(50);
    std::iota(v.begin(), v.end(), 0);
    rng.shuffle(v);
    std::vector<int> sorted = v;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> expected(50);
    std::iota(expected.begin(), expected.end(), 0);
    CHECK(sorted == expected);
    CHECK(v != expected);
    std::vector<std::size_t> pool(20);
    std::iota(pool.begin(), pool.end(), std::size_t{100});
    const auto chosen = prune::detail::sample_without_replacement(pool, 8, rng);
    CHECK(chosen.size() == 8);
    CHECK(std::set<std::size_t>(chosen.begin(), chosen.end()).size() == 8);
    for (auto x : chosen) CHECK((x >= 100 && x < 120));
}
