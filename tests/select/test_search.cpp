// tests/select/test_search.cpp: prune/search.hpp: the loop stops at the first failing step
// and returns the mask before it, honours max_steps, stops when nothing changes, records the
// history, calls the between-steps callback, and works with any mask type.
#include <prune/importance/scores.hpp>
#include <prune/search.hpp>
#include <prune/select.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

TEST_CASE("search keeps the last passing mask and records the history", "[search]") {
    // mask = number of pruned units out of 10; metric = 1 - pruned / 20 (baseline 1):
    // passes while 1 - p/20 >= 0.9, i.e. p <= 2
    const auto step = [](int pruned) { return pruned + 1; };
    const auto evaluate = [](int pruned) { return 1.0 - pruned / 20.0; };
    const auto sparsity = [](int pruned) { return pruned / 10.0; };
    std::vector<std::size_t> between_calls;
    const auto result = prune::search(0, 1.0, step, evaluate, sparsity, {0.9, 10},
                                      [&](std::size_t s, int mask) {
                                          between_calls.push_back(s);
                                          CHECK(mask == static_cast<int>(s));
                                      });
    CHECK(result.mask == 2);
    CHECK(result.passed_steps == 2);
    CHECK(result.stop == prune::search_stop::failed);
    REQUIRE(result.history.size() == 4);  // start, 1, 2, 3 (failed)
    CHECK(result.history[0].step == 0);
    CHECK(result.history[0].metric == 1.0);
    CHECK(result.history[3].step == 3);
    CHECK(result.history[3].sparsity == Approx(0.3));
    CHECK(result.history[3].metric == Approx(0.85));
    CHECK_FALSE(result.history[3].passed);
    CHECK(result.history[2].passed);
    CHECK(between_calls == std::vector<std::size_t>{1, 2});
}

TEST_CASE("search honours max_steps, exhaustion, the step number and bad settings", "[search]") {
    const auto evaluate = [](int) { return 5.0; };
    const auto sparsity = [](int m) { return m / 4.0; };
    auto r = prune::search(0, 5.0, [](int m) { return m + 1; }, evaluate, sparsity, {0.9, 3});
    CHECK(r.mask == 3);
    CHECK(r.stop == prune::search_stop::max_steps);
    CHECK(r.history.size() == 4);
    // the step stops changing the mask at 4: exhausted
    r = prune::search(0, 5.0, [](int m) { return m < 4 ? m + 1 : m; }, evaluate, sparsity, {0.9, 10});
    CHECK(r.mask == 4);
    CHECK(r.stop == prune::search_stop::exhausted);
    // step and evaluate may take the step number
    r = prune::search(0, 5.0, [](int m, std::size_t s) { return m + static_cast<int>(s); },
                      [](int, std::size_t s) { return s < 3 ? 5.0 : 0.0; }, sparsity, {0.9, 10});
    CHECK(r.mask == 3);  // 0 + 1 + 2
    CHECK(r.passed_steps == 2);
    // a NaN metric fails the step
    r = prune::search(0, 5.0, [](int m) { return m + 1; }, [](int) { return std::nan(""); }, sparsity);
    CHECK(r.mask == 0);
    CHECK(r.stop == prune::search_stop::failed);
    // max_steps 0: nothing evaluated
    r = prune::search(0, 5.0, [](int m) { return m + 1; }, evaluate, sparsity, {0.9, 0});
    CHECK(r.history.size() == 1);
    CHECK_THROWS_AS(prune::search(0, std::numeric_limits<double>::infinity(), [](int m) { return m; }, evaluate,
                                  sparsity),
                    prune::value_error);
    CHECK_THROWS_AS(prune::search(0, 1.0, [](int m) { return m; }, evaluate, sparsity, {-0.1, 3}), prune::value_error);
}

TEST_CASE("search over element masks with global magnitude steps (m-pruning)", "[search]") {
    std::vector<float> w(1000);
    for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i) - 500.0f;
    const std::vector<prune::score_source> scores = {prune::magnitude(w)};
    using masks_t = std::vector<prune::element_mask>;
    const auto step = [&](const masks_t& m) {
        masks_t next = m;
        prune::prune_global(scores, next, 0.1);
        return next;
    };
    // metric: the fraction of the total |w| still kept; fails once below 0.9 * 1
    double total = 0;
    for (float x : w) total += std::fabs(x);
    const auto evaluate = [&](const masks_t& m) {
        double kept = 0;
        for (std::size_t i = 0; i < w.size(); ++i) kept += m[0].kept(i) ? std::fabs(w[i]) : 0.0;
        return kept / total;
    };
    const auto result = prune::search(masks_t{prune::element_mask({1000})}, 1.0, step, evaluate);
    // sparsity after k steps is 1 - 0.9^k (counts rounded per step): check each passing row
    for (const auto& row : result.history) {
        if (row.step > 0) {
            CHECK(row.sparsity == Approx(1 - std::pow(0.9, static_cast<double>(row.step))).margin(0.002));
        }
    }
    CHECK(result.stop == prune::search_stop::failed);
    CHECK(evaluate(result.mask) >= 0.9);
    CHECK(prune::sparsity_of(result.mask) == result.history[result.passed_steps].sparsity);
}
