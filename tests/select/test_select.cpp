// tests/select/test_select.cpp: prune/select.hpp: exact counts, the documented tie and NaN
// rules, bit-identical results on any thread count and on both internal paths (collect and
// three-pass), checked against a brute-force sort (reference_selection.hpp).
#include "reference_selection.hpp"
#include "../support/address_limit.hpp"
#include "../support/sanitizer.hpp"

#include <prune/importance/scores.hpp>
#include <prune/select.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace {

using prune::element_mask;
using prune::score_source;

/// Tensors of mixed element types and layouts with many ties (values quantised to 1/8).
struct mixed_model {
    std::vector<float> a;
    std::vector<double> b;
    std::vector<prune::half> c;
    std::vector<prune::bfloat16> d;
    std::vector<float> e;  // viewed column-major 70 x 1000
    std::vector<float> empty;

    explicit mixed_model(unsigned seed) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal(0.0f, 1.0f);
        auto quantised = [&] { return std::round(normal(rng) * 8.0f) / 8.0f; };
        a.resize(40000);
        for (float& x : a) x = quantised();
        b.resize(1234);
        for (double& x : b) x = quantised();
        c.resize(999);
        for (auto& x : c) x = prune::to_half(quantised());
        d.resize(65);
        for (auto& x : d) x = prune::to_bfloat16(quantised());
        e.resize(70000);
        for (float& x : e) x = normal(rng);
    }

    std::vector<score_source> magnitudes() const {
        std::vector<score_source> s;
        s.push_back(prune::magnitude(a));
        s.push_back(prune::magnitude(b));
        s.push_back(prune::magnitude(c));
        s.push_back(prune::magnitude(empty));
        s.push_back(prune::magnitude(d));
        s.push_back(prune::magnitude(prune::make_view(e.data(), {70, 1000}, prune::layout::column_major)));
        return s;
    }

    std::vector<element_mask> full_masks() const {
        return {element_mask({40000}), element_mask({1234}), element_mask({999}), element_mask({0}),
                element_mask({65}), element_mask({70, 1000})};
    }
};

std::size_t total_kept(const std::vector<element_mask>& masks) {
    std::size_t n = 0;
    for (const auto& m : masks) n += m.count_kept();
    return n;
}

}  // namespace

TEST_CASE("count_to_prune rounds half to even like Python's round", "[select]") {
    // Python: round(0.5 * 5) == 2, round(0.5 * 7) == 4, round(0.1 * 25) == 2 (2.5 -> 2), round(0.1 * 35) == 4
    CHECK(prune::count_to_prune(0.5, 5) == 2);
    CHECK(prune::count_to_prune(0.5, 7) == 4);
    CHECK(prune::count_to_prune(0.1, 25) == 2);
    CHECK(prune::count_to_prune(0.1, 35) == 4);
    CHECK(prune::count_to_prune(0.1, 102139) == 10214);  // round(10213.9)
    CHECK(prune::count_to_prune(0.0, 100) == 0);
    CHECK(prune::count_to_prune(1.0, 100) == 100);
    CHECK(prune::count_to_prune(0.3, 0) == 0);
    CHECK_THROWS_AS(prune::count_to_prune(-0.01, 10), prune::value_error);
    CHECK_THROWS_AS(prune::count_to_prune(1.01, 10), prune::value_error);
    // the amount as it reads back (std::to_string would print "1.000000")
    CHECK_THROWS_WITH(prune::count_to_prune(1.0000001, 10), Catch::Contains("amount 1.0000001 is outside [0, 1]"));
    CHECK_THROWS_AS(prune::count_to_prune(std::numeric_limits<double>::quiet_NaN(), 10), prune::value_error);
}

TEST_CASE("global selection equals the brute-force sort on mixed types with many ties", "[select]") {
    const mixed_model model(11);
    const auto scores = model.magnitudes();
    for (unsigned threads : {1u, 2u, 3u, 7u}) {
        for (std::size_t buffer : {std::size_t{8} << 20, std::size_t{0}})
        for (int variant = 0; variant < 4; ++variant) {
            const bool sampling = variant < 2;  // variant 3 allows it over fewer elements than there are
            const bool speculate = variant == 0;
            std::size_t elements = 0;
            for (const auto& s : scores) elements += s.size();
            const std::size_t limit = variant == 3 ? elements - 1 : elements;
            INFO("threads " << threads << ", buffer " << buffer << ", sampling " << sampling << ", speculate "
                            << speculate << ", sampling limit " << limit);
            auto ours = model.full_masks();
            auto expected = model.full_masks();
            for (int step = 0; step < 6; ++step) {
                const std::size_t k = prune::count_to_prune(0.2, total_kept(expected));
                prune_test::reference_prune(scores, expected, k);
                const auto r = prune::prune_global(scores, ours, 0.2, {threads, buffer, sampling || variant == 3, speculate, limit});
                CHECK(r.pruned == k);
                // the options reach every internal method: sampled when allowed and the buffer is
                // big; histogram collect with a big buffer; three passes with none
                if (!sampling) {
                    CHECK(r.method == (buffer == 0 ? prune::selection_method::histogram_three_pass
                                                   : prune::selection_method::histogram_collect));
                } else if (buffer > 0) {
                    CHECK(r.method == prune::selection_method::sampled);
                }
                REQUIRE(ours == expected);
            }
        }
    }
}

TEST_CASE("the k smallest of user-given, inverted and random scores equal the brute-force sort", "[select]") {
    const mixed_model model(5);
    std::vector<float> grad(model.a.size());
    for (std::size_t i = 0; i < grad.size(); ++i) grad[i] = std::fabs(model.a[i] * static_cast<float>(i % 17));
    std::vector<score_source> scores;
    scores.push_back(prune::given_scores(grad));
    scores.push_back(prune::inverted_magnitude(model.b));
    scores.push_back(prune::random_scores(prune::shape{5000}, 42));
    for (unsigned threads : {1u, 2u}) {
        for (std::size_t buffer : {std::size_t{8} << 20, std::size_t{0}})
        for (bool sampling : {true, false}) {
            std::vector<element_mask> ours = {element_mask({40000}), element_mask({1234}), element_mask({5000})};
            auto expected = ours;
            for (std::size_t k : {1u, 1000u, 7777u, 20000u}) {
                prune_test::reference_prune(scores, expected, k);
                prune::prune_smallest(scores, ours, k, {threads, buffer, sampling});
                REQUIRE(ours == expected);
            }
        }
    }
}

TEST_CASE("a speculative miss is undone: the fallback sees the masks as they were", "[select]") {
    // 60000 equal scores and a 1-byte buffer: the sampled window overflows after pass A has
    // already pruned below it; the masks must come back and the histogram path decide.
    std::vector<float> w(60000, 1.0f);
    for (std::size_t i = 0; i < 5000; ++i) w[i * 12] = 0.5f;  // 5000 smaller ones spread out
    const std::vector<score_source> scores = {prune::magnitude(w)};
    for (std::size_t k : {std::size_t{4000}, std::size_t{5000}, std::size_t{7000}}) {
        std::vector<element_mask> ours = {element_mask({60000})};
        ours[0].set(7, false);
        auto expected = ours;
        prune_test::reference_prune(scores, expected, k);
        const auto r = prune::prune_smallest(scores, ours, k, {2, 1, true, true});
        CHECK(r.method != prune::selection_method::sampled);
        CHECK(ours == expected);
    }
}

TEST_CASE("tie rule: smallest score first, then earlier tensor, then smaller flat index", "[select][ties]") {
    // Hand-worked: scores A = [1, 1, 1, 1], B = [1, 0, 1]. Order of pruning:
    // B[1] (score 0), then the 1s by tensor then index: A[0], A[1], A[2], A[3], B[0], B[2].
    const std::vector<float> a = {1, 1, 1, 1};
    const std::vector<float> b = {1, 0, 1};
    const std::vector<score_source> scores = {prune::given_scores(a), prune::given_scores(b)};
    const std::vector<std::vector<std::uint8_t>> expected_a = {
        {1, 1, 1, 1}, {0, 1, 1, 1}, {0, 0, 1, 1}, {0, 0, 0, 1}, {0, 0, 0, 0}, {0, 0, 0, 0}, {0, 0, 0, 0}};
    const std::vector<std::vector<std::uint8_t>> expected_b = {
        {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {1, 0, 1}, {0, 0, 1}, {0, 0, 0}};
    for (unsigned threads : {1u, 2u}) {
        for (std::size_t buffer : {std::size_t{1} << 20, std::size_t{0}})
        for (bool sampling : {true, false}) {
            for (std::size_t k = 1; k <= 7; ++k) {
                std::vector<element_mask> masks = {element_mask({4}), element_mask({3})};
                prune::prune_smallest(scores, masks, k, {threads, buffer, sampling});
                INFO("k = " << k);
                CHECK(masks[0].to_bytes() == expected_a[k - 1]);
                CHECK(masks[1].to_bytes() == expected_b[k - 1]);
            }
        }
    }
    SECTION("-0 and +0 tie; magnitude ties across signs") {
        const std::vector<float> w = {0.5f, -0.0f, -0.5f, 0.0f};
        std::vector<element_mask> masks = {element_mask({4})};
        const std::vector<score_source> s = {prune::given_scores(w)};
        prune::prune_smallest(s, masks, 3);
        // given scores: -0.5 first, then -0 and +0 tie (index 1 before 3): prune indices 2 and 1 and 3
        CHECK(masks[0].to_bytes() == std::vector<std::uint8_t>{1, 0, 0, 0});
        std::vector<element_mask> m2 = {element_mask({4})};
        const std::vector<score_source> s2 = {prune::magnitude(w)};
        prune::prune_smallest(s2, m2, 3);
        // magnitudes 0.5, 0, 0.5, 0: the zeros (1, 3) then the first 0.5 (index 0)
        CHECK(m2[0].to_bytes() == std::vector<std::uint8_t>{0, 0, 1, 0});
    }
}

TEST_CASE("NaN scores are pruned first, in (tensor, index) order", "[select][nan]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> w = {0.0f, nan, -inf, 3.0f, -nan};
    const std::vector<score_source> magnitudes = {prune::magnitude(w)};
    std::vector<element_mask> masks = {element_mask({5})};
    prune::prune_smallest(magnitudes, masks, 2);
    CHECK(masks[0].to_bytes() == std::vector<std::uint8_t>{1, 0, 1, 1, 0});
    prune::prune_smallest(magnitudes, masks, 1);  // then the zero
    CHECK(masks[0].to_bytes() == std::vector<std::uint8_t>{0, 0, 1, 1, 0});
    // given scores: NaN below -inf too
    const std::vector<score_source> given = {prune::given_scores(w)};
    std::vector<element_mask> m2 = {element_mask({5})};
    prune::prune_smallest(given, m2, 3);
    CHECK(m2[0].to_bytes() == std::vector<std::uint8_t>{1, 0, 0, 1, 0});
    // inverted magnitude: NaN first, then the largest |w| (inf)
    const std::vector<score_source> inverted = {prune::inverted_magnitude(w)};
    std::vector<element_mask> m3 = {element_mask({5})};
    prune::prune_smallest(inverted, m3, 3);
    CHECK(m3[0].to_bytes() == std::vector<std::uint8_t>{1, 0, 0, 1, 0});
}

TEST_CASE("awkward sizes give exact counts", "[select][edge]") {
    const std::vector<float> none;
    const std::vector<float> one = {0.25f};
    const std::vector<float> many = {5, 4, 3, 2, 1, 0, -1, -2, -3, -4, -5};
    const std::vector<score_source> scores = {prune::magnitude(none), prune::magnitude(one), prune::magnitude(many)};
    auto fresh = [] { return std::vector<element_mask>{element_mask({0}), element_mask({1}), element_mask({11})}; };

    SECTION("only empty tensors") {
        const std::vector<score_source> empties = {prune::magnitude(none), prune::magnitude(none)};
        std::vector<element_mask> masks = {element_mask({0}), element_mask({0})};
        CHECK(prune::prune_global(empties, masks, 0.5).pruned == 0);
        CHECK(prune::prune_global(empties, masks, 1.0).pruned == 0);
        CHECK_THROWS_AS(prune::prune_smallest(empties, masks, 1), prune::value_error);
    }
    SECTION("a single weight") {
        const std::vector<score_source> s = {prune::magnitude(one)};
        std::vector<element_mask> masks = {element_mask({1})};
        CHECK(prune::prune_global(s, masks, 0.4).pruned == 0);  // round(0.4) = 0
        CHECK(masks[0].count_kept() == 1);
        CHECK(prune::prune_global(s, masks, 0.5).pruned == 0);  // round(0.5) = 0 (half to even)
        CHECK(prune::prune_global(s, masks, 0.6).pruned == 1);
        CHECK(masks[0].count_kept() == 0);
    }
    SECTION("amount 0 and 1") {
        auto masks = fresh();
        CHECK(prune::prune_global(scores, masks, 0.0).pruned == 0);
        CHECK(total_kept(masks) == 12);
        CHECK(prune::prune_global(scores, masks, 1.0, {2, 0}).pruned == 12);
        CHECK(total_kept(masks) == 0);
    }
    SECTION("everything already pruned") {
        std::vector<element_mask> masks = {element_mask({0}, false), element_mask({1}, false),
                                           element_mask({11}, false)};
        CHECK(prune::prune_global(scores, masks, 0.5).candidates == 0);
        CHECK(prune::prune_global(scores, masks, 1.0).pruned == 0);
        CHECK(total_kept(masks) == 0);
    }
    SECTION("already-pruned elements are never candidates and amount is relative to what remains") {
        auto masks = fresh();
        masks[2].set(5, false);  // the 0 in `many`
        masks[2].set(4, false);  // the 1
        const auto r = prune::prune_global(scores, masks, 0.3);  // 10 remain: k = 3
        CHECK(r.candidates == 10);
        CHECK(r.pruned == 3);
        // remaining |w| sorted: 0.25 (one), then -1 (many[6]) then 2 (many[3]) ...
        CHECK(masks[1].count_kept() == 0);
        CHECK(masks[2].to_bytes() == std::vector<std::uint8_t>{1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1});
    }
}

TEST_CASE("bad input is rejected with the documented errors", "[select][errors]") {
    const std::vector<float> w(10, 1.0f);
    const std::vector<score_source> scores = {prune::magnitude(w).named("layer.0.weight")};
    std::vector<element_mask> masks = {element_mask({10})};
    CHECK_THROWS_AS(prune::prune_global(scores, masks, 1.5), prune::value_error);
    CHECK_THROWS_AS(prune::prune_global(scores, masks, -0.5), prune::value_error);
    CHECK_THROWS_AS(prune::prune_global(scores, masks, std::nan("")), prune::value_error);
    CHECK_THROWS_AS(prune::prune_smallest(scores, masks, 11), prune::value_error);
    CHECK_THROWS_AS(prune::prune_per_tensor(scores, masks, 2.0), prune::value_error);
    CHECK_THROWS_WITH(prune::prune_per_tensor(scores, masks, -1e-9),
                      Catch::Contains("prune_per_tensor: amount -1e-09 is outside [0, 1]"));
    std::vector<element_mask> wrong = {element_mask({11})};
    CHECK_THROWS_WITH(prune::prune_global(scores, wrong, 0.1), Catch::Contains("layer.0.weight"));
    CHECK_THROWS_AS(prune::prune_global(scores, wrong, 0.1), prune::shape_error);
    std::vector<element_mask> two = {element_mask({10}), element_mask({10})};
    CHECK_THROWS_AS(prune::prune_global(scores, two, 0.1), prune::shape_error);
    const std::vector<float> matrix(12, 1.0f);
    const std::vector<score_source> m = {prune::magnitude(prune::make_view(matrix.data(), {3, 4}))};
    std::vector<element_mask> transposed = {element_mask({4, 3})};
    CHECK_THROWS_AS(prune::prune_global(m, transposed, 0.1), prune::shape_error);
    CHECK(masks[0].count_kept() == 10);  // nothing changed by the failures
}

TEST_CASE("target sparsity and per-tensor selection give exact counts", "[select]") {
    const mixed_model model(3);
    const auto scores = model.magnitudes();
    std::size_t total = 0;
    for (const auto& s : scores) total += s.size();
    auto masks = model.full_masks();
    prune::prune_global_to_sparsity(scores, masks, 0.25, {2});
    CHECK(total - total_kept(masks) == prune::count_to_prune(0.25, total));
    prune::prune_global_to_sparsity(scores, masks, 0.6);
    CHECK(total - total_kept(masks) == prune::count_to_prune(0.6, total));
    CHECK_THROWS_AS(prune::prune_global_to_sparsity(scores, masks, 0.5), prune::value_error);

    auto layer = model.full_masks();
    auto expected = model.full_masks();
    const auto results = prune::prune_per_tensor(scores, layer, 0.3, {2, 0});
    REQUIRE(results.size() == scores.size());
    for (std::size_t t = 0; t < scores.size(); ++t) {
        CHECK(results[t].pruned == prune::count_to_prune(0.3, scores[t].size()));
        // each tensor alone equals the brute-force sort of that tensor alone
        std::vector<score_source> one = {scores[t]};
        std::vector<element_mask> mine = {expected[t]};
        prune_test::reference_prune(one, mine, results[t].pruned);
        CHECK(layer[t] == mine[0]);
    }
}

TEST_CASE("masks are bit-identical on any thread count (many blocks, random and magnitude)", "[select][threads]") {
    std::vector<float> w(300000);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (float& x : w) x = normal(rng);
    std::vector<float> zeros(50000, 0.0f);  // a big tie block
    for (int kind = 0; kind < 2; ++kind) {
        std::vector<score_source> scores;
        if (kind == 0) {
            scores = {prune::magnitude(w), prune::magnitude(zeros)};
        } else {
            scores = {prune::random_scores(prune::shape{300000}, 9), prune::random_scores(prune::shape{50000}, 9)};
        }
        std::vector<element_mask> first;
        for (unsigned threads : {1u, 2u, 3u, 4u, 8u, 13u}) {
            for (std::size_t buffer : {std::size_t{8} << 20, std::size_t{0}})
            for (int variant = 0; variant < 3; ++variant) {
                const bool sampling = variant < 2;
                const bool speculate = variant == 0;
                std::vector<element_mask> masks = {element_mask({300000}), element_mask({50000})};
                for (int step = 0; step < 4; ++step) {
                    prune::prune_global(scores, masks, 0.15, {threads, buffer, sampling, speculate});
                }
                if (first.empty()) {
                    first = masks;
                    auto expected = std::vector<element_mask>{element_mask({300000}), element_mask({50000})};
                    for (int step = 0; step < 4; ++step) {
                        prune_test::reference_prune(scores, expected, prune::count_to_prune(0.15, total_kept(expected)));
                    }
                    REQUIRE(masks == expected);
                } else {
                    INFO("threads " << threads << " buffer " << buffer << " variant " << variant);
                    REQUIRE(masks == first);
                }
            }
        }
    }
}

// A thread that cannot be started (here: a forked child limits its address space to what it uses
// plus 64 MiB, so 8 MiB thread stacks run out after a few) leaves its slices to the calling
// thread: the masks equal the single-threaded ones. Before, the joinable std::threads destroyed
// during the unwinding aborted the process (SIGABRT).
TEST_CASE("a selection whose threads cannot all be started gives the same masks", "[select][threads]") {
#if PRUNE_TEST_ASAN
    WARN("skipped under AddressSanitizer: its shadow memory does not survive an address-space limit");
    return;
#endif
    std::vector<float> w(400000);
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    for (float& x : w) x = normal(rng);
    const std::vector<score_source> scores = {prune::magnitude(w)};
    std::vector<element_mask> one = {element_mask({400000})};
    prune::prune_global(scores, one, 0.3, {1u, std::size_t{8} << 20, true, true});
    const prune_test::child_status child = prune_test::run_with_address_limit(64, [&] {
        std::vector<element_mask> many = {element_mask({400000})};
        try {
            prune::prune_global(scores, many, 0.3, {64u, std::size_t{8} << 20, true, true});
        } catch (...) {
            return 4;
        }
        return many == one ? 0 : 1;
    });
    INFO("exit " << child.exit_code << ", signal " << child.signal);
    CHECK(child.exit_code == 0);
}
