// tests/select/test_schedule.cpp: prune/schedule.hpp pinned by property tests against the
// closed forms: endpoints, monotonicity, curvature (the Zhu-Gupta cubic is concave in the
// step: fast early, not its convex mirror), the update grid, and step-of-remaining.
#include <prune/schedule.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

namespace {
prune::gradual_schedule make(prune::schedule_curve curve, double si = 0.0, double sf = 0.9) {
    prune::gradual_schedule s;
    s.initial_sparsity = si;
    s.final_sparsity = sf;
    s.begin = 100;
    s.frequency = 25;
    s.updates = 8;
    s.curve = curve;
    return s;
}
}  // namespace

TEST_CASE("step of remaining: 1 - (1 - a)^k", "[schedule]") {
    CHECK(prune::sparsity_after_steps(0.1, 0) == 0.0);
    CHECK(prune::sparsity_after_steps(0.1, 1) == Approx(0.1));
    CHECK(prune::sparsity_after_steps(0.1, 7) == Approx(1 - std::pow(0.9, 7)));  // 0.5217031
    CHECK(prune::sparsity_after_steps(0.1, 7) == Approx(0.5217031));
    CHECK(prune::sparsity_after_steps(1.0, 3) == 1.0);
    CHECK_THROWS_AS(prune::sparsity_after_steps(1.5, 1), prune::value_error);
    // amount_between inverts it: from s_k to s_{k+1} prunes a of what remains
    for (int k = 0; k < 10; ++k) {
        CHECK(prune::amount_between(prune::sparsity_after_steps(0.1, k), prune::sparsity_after_steps(0.1, k + 1)) ==
              Approx(0.1));
    }
    CHECK_THROWS_AS(prune::amount_between(0.5, 0.4), prune::value_error);
}

TEST_CASE("gradual schedules: endpoints, constant outside, update grid", "[schedule]") {
    for (auto curve : {prune::schedule_curve::cubic, prune::schedule_curve::linear, prune::schedule_curve::exponential}) {
        const auto s = make(curve, 0.05, 0.9);
        CHECK(prune::end_step(s) == 300);
        CHECK(prune::sparsity_at(s, -1000) == 0.05);
        CHECK(prune::sparsity_at(s, 99) == 0.05);
        CHECK(prune::sparsity_at(s, 100) == Approx(0.05));
        CHECK(prune::sparsity_at(s, 300) == Approx(0.9));
        CHECK(prune::sparsity_at(s, 100000) == 0.9);
        double previous = -1;
        for (std::int64_t t = 0; t <= 400; ++t) {
            const double now = prune::sparsity_at(s, t);
            CHECK(now >= previous);  // monotone
            const bool grid = t >= 100 && t <= 300 && (t - 100) % 25 == 0;
            CHECK(prune::is_update_step(s, t) == grid);
            if (t > 0 && now != previous) {
                CHECK(grid);  // changes only on grid points
            }
            if (t > 100 && t < 300 && !grid) {
                CHECK(now == prune::sparsity_at(s, 100 + (t - 100) / 25 * 25));  // holds the last grid value
            }
            previous = now;
        }
    }
}

TEST_CASE("curves equal their closed forms on the grid", "[schedule]") {
    const double si = 0.1;
    const double sf = 0.8;
    for (int j = 0; j <= 8; ++j) {
        const double p = j / 8.0;
        const std::int64_t t = 100 + 25 * j;
        CHECK(prune::sparsity_at(make(prune::schedule_curve::cubic, si, sf), t) ==
              Approx(sf + (si - sf) * std::pow(1 - p, 3)));
        CHECK(prune::sparsity_at(make(prune::schedule_curve::linear, si, sf), t) == Approx(si + (sf - si) * p));
        CHECK(prune::sparsity_at(make(prune::schedule_curve::exponential, si, sf), t) ==
              Approx(1 - (1 - si) * std::pow((1 - sf) / (1 - si), p)));
    }
    // Zhu-Gupta's worked point: s_i = 0, s_f = 0.9, half-way: 0.9 (1 - 1/8) = 0.7875
    CHECK(prune::sparsity_at(make(prune::schedule_curve::cubic), 200) == Approx(0.7875));
}

TEST_CASE("curvature: cubic concave (prunes fast early), linear straight, exponential per-step constant",
          "[schedule]") {
    const auto cubic = make(prune::schedule_curve::cubic);
    const auto linear = make(prune::schedule_curve::linear);
    const auto exponential = make(prune::schedule_curve::exponential);
    for (int j = 1; j < 8; ++j) {
        const std::int64_t t = 100 + 25 * j;
        const double c_prev = prune::sparsity_at(cubic, t - 25);
        const double c_now = prune::sparsity_at(cubic, t);
        const double c_next = prune::sparsity_at(cubic, t + 25);
        CHECK(c_next - c_now < c_now - c_prev);  // increments shrink: concave
        CHECK(c_now > prune::sparsity_at(linear, t));  // above the chord (the convex mirror would be below)
        const double l_prev = prune::sparsity_at(linear, t - 25);
        const double l_now = prune::sparsity_at(linear, t);
        const double l_next = prune::sparsity_at(linear, t + 25);
        CHECK(l_next - l_now == Approx(l_now - l_prev));
        // exponential: the same fraction of what remains is pruned at every update
        CHECK(prune::amount_between(prune::sparsity_at(exponential, t - 25), prune::sparsity_at(exponential, t)) ==
              Approx(prune::amount_between(prune::sparsity_at(exponential, t), prune::sparsity_at(exponential, t + 25))));
    }
}

TEST_CASE("invalid schedules are rejected", "[schedule]") {
    auto s = make(prune::schedule_curve::cubic);
    s.frequency = 0;
    CHECK_THROWS_AS(prune::sparsity_at(s, 0), prune::value_error);
    s = make(prune::schedule_curve::cubic, 0.5, 0.4);
    CHECK_THROWS_AS(prune::sparsity_at(s, 0), prune::value_error);
    s = make(prune::schedule_curve::cubic, 0.0, std::numeric_limits<double>::quiet_NaN());
    CHECK_THROWS_AS(prune::sparsity_at(s, 0), prune::value_error);
    s = make(prune::schedule_curve::exponential, 0.0, 1.0);
    CHECK_THROWS_AS(prune::sparsity_at(s, 0), prune::value_error);
    s = make(prune::schedule_curve::cubic, 0.0, 1.0);
    CHECK(prune::sparsity_at(s, 300) == 1.0);
    s.updates = 0;
    CHECK_THROWS_AS(prune::is_update_step(s, 0), prune::value_error);
}
