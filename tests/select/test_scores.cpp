// tests/select/test_scores.cpp: prune/importance/scores.hpp: keys order like the scores
// (checked against std::sort of the floats themselves), NaN below everything, -0 == +0,
// every element type and layout gives the keys of its float value, random keys are a pure
// function of (seed, tensor, index).
#include <prune/importance/scores.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>
#include <vector>

namespace {
constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float nan_value = std::numeric_limits<float>::quiet_NaN();
}  // namespace

TEST_CASE("score_key orders as the floats do", "[scores]") {
    std::vector<float> values = {-inf, -3e38f, -1.5f, -1e-40f, -0.0f, 0.0f, 1e-45f, 1e-40f, 1.0f, 2.5f, 3e38f, inf};
    std::mt19937 rng(2);
    std::normal_distribution<float> normal(0.0f, 100.0f);
    for (int i = 0; i < 2000; ++i) values.push_back(normal(rng));
    std::sort(values.begin(), values.end());
    for (std::size_t i = 1; i < values.size(); ++i) {
        INFO(values[i - 1] << " vs " << values[i]);
        if (values[i - 1] < values[i]) {
            CHECK(prune::score_key(values[i - 1]) < prune::score_key(values[i]));
        } else {
            CHECK(prune::score_key(values[i - 1]) == prune::score_key(values[i]));  // equal floats (-0 == +0)
        }
        CHECK(prune::score_key(values[i]) > prune::score_key(nan_value));
    }
    CHECK(prune::score_key(nan_value) == 0);
    CHECK(prune::score_key(-nan_value) == 0);
    CHECK(prune::score_key(-0.0f) == prune::score_key(0.0f));
    for (float v : values) {
        CHECK(prune::magnitude_key(v) == prune::score_key(std::fabs(v)));
        // inverted magnitude orders as -|v|
        for (float u : {0.0f, 1.0f, -2.0f, inf}) {
            CHECK((prune::inverted_magnitude_key(v) < prune::inverted_magnitude_key(u)) == (-std::fabs(v) < -std::fabs(u)));
        }
    }
    CHECK(prune::magnitude_key(nan_value) == 0);
    CHECK(prune::inverted_magnitude_key(nan_value) == 0);
    CHECK(prune::inverted_magnitude_key(inf) > 0);
}

TEST_CASE("sources of every element type and layout give the keys of the float values", "[scores]") {
    const std::vector<float> f = {1.5f, -2.0f, 0.0f, 3.25f, -0.5f, 7.0f};
    std::vector<double> d(f.begin(), f.end());
    std::vector<prune::half> h;
    std::vector<prune::bfloat16> b;
    for (float x : f) {
        h.push_back(prune::to_half(x));
        b.push_back(prune::to_bfloat16(x));
    }
    std::vector<std::uint32_t> expected(f.size());
    for (std::size_t i = 0; i < f.size(); ++i) expected[i] = prune::magnitude_key(f[i]);
    for (const prune::score_source& s : {prune::magnitude(f), prune::magnitude(d), prune::magnitude(h), prune::magnitude(b)}) {
        std::vector<std::uint32_t> keys(6);
        s.fill_keys(0, 0, keys);
        CHECK(keys == expected);
        std::vector<std::uint32_t> tail(3);
        s.fill_keys(0, 3, tail);
        CHECK(tail == std::vector<std::uint32_t>(expected.begin() + 3, expected.end()));
    }
    // column-major 2 x 3: storage [a00 a10 a01 a11 a02 a12]; logical order is row-major
    const auto col = prune::given_scores(prune::make_view(f.data(), {2, 3}, prune::layout::column_major));
    std::vector<std::uint32_t> keys(6);
    col.fill_keys(0, 0, keys);
    const std::vector<float> row_major = {f[0], f[2], f[4], f[1], f[3], f[5]};
    for (std::size_t i = 0; i < 6; ++i) CHECK(keys[i] == prune::score_key(row_major[i]));
    std::vector<std::uint32_t> part(2);
    col.fill_keys(0, 2, part);  // logical 2, 3 = a02, a10
    CHECK(part[0] == prune::score_key(f[4]));
    CHECK(part[1] == prune::score_key(f[1]));
    // rank 3 column-major goes through the generic path
    std::vector<float> cube(24);
    for (std::size_t i = 0; i < 24; ++i) cube[i] = static_cast<float>(i);
    const auto c3 = prune::given_scores(prune::make_view(cube.data(), {2, 3, 4}, prune::layout::column_major));
    std::vector<std::uint32_t> k3(24);
    c3.fill_keys(0, 0, k3);
    // logical (i, j, l) = i*12 + j*4 + l lives at storage i + 2 j + 6 l
    for (std::size_t i = 0; i < 2; ++i)
        for (std::size_t j = 0; j < 3; ++j)
            for (std::size_t l = 0; l < 4; ++l)
                CHECK(k3[i * 12 + j * 4 + l] == prune::score_key(static_cast<float>(i + 2 * j + 6 * l)));
    CHECK(prune::magnitude(f).named("x").name() == "x");
}

template <class T>
concept can_make_magnitude = requires(T&& t) { prune::magnitude(std::forward<T>(t)); };
template <class T>
concept can_make_given = requires(T&& t) { prune::given_scores(std::forward<T>(t)); };

TEST_CASE("owning temporaries cannot become score sources", "[scores]") {
    STATIC_REQUIRE(!can_make_magnitude<std::vector<float>>);
    STATIC_REQUIRE(!can_make_given<std::vector<float>>);
    STATIC_REQUIRE(can_make_magnitude<std::vector<float>&>);
    STATIC_REQUIRE(can_make_magnitude<const std::vector<float>&>);
    STATIC_REQUIRE(can_make_magnitude<prune::tensor_view<float>>);  // a view temporary is fine
}

TEST_CASE("random keys are a pure function of (seed, tensor, index) and look uniform", "[scores]") {
    const auto s = prune::random_scores(prune::shape{4, 5000}, 77);
    std::vector<std::uint32_t> all(20000);
    s.fill_keys(3, 0, all);
    std::vector<std::uint32_t> piece(100);
    s.fill_keys(3, 1234, piece);
    CHECK(std::equal(piece.begin(), piece.end(), all.begin() + 1234));
    for (std::size_t i = 0; i < 100; ++i) CHECK(all[i] == prune::random_key(77, 3, i));
    std::vector<std::uint32_t> other(20000);
    s.fill_keys(4, 0, other);
    CHECK(other != all);  // another tensor, another stream
    prune::random_scores(prune::shape{20000}, 78).fill_keys(3, 0, other);
    CHECK(other != all);  // another seed
    // uniformity: each of 16 buckets of the top 4 bits holds 1/16 +- 5 sigma
    std::vector<int> buckets(16, 0);
    for (auto k : all) ++buckets[k >> 28];
    for (int b : buckets) CHECK(std::abs(b - 1250) < 5 * 34);
}
