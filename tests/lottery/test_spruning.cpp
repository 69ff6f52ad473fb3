// Tests for prune/spruning.hpp on synthetic callbacks: the history is replayed and every
// step is checked against the s-pruning rule of docs/lottery.md.
#include <prune/spruning.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

using prune::importance::michel_scores;
using prune::structure_mask;

namespace {
// A synthetic model: head (l, h) contributes value[l][h] to the metric, MLP l contributes
// mlp_value[l]; importance under a mask depends on the mask (a head's score grows with the
// number of heads pruned in its layer), so recomputation under the current mask matters.
struct synthetic {
    std::vector<std::vector<double>> value;
    std::vector<double> mlp_value;
    std::vector<structure_mask> importance_calls;

    michel_scores importance(const structure_mask& m) {
        importance_calls.push_back(m);
        michel_scores s;
        s.heads = value;
        for (std::size_t l = 0; l < value.size(); ++l) {
            const double pruned_here = static_cast<double>(m.heads.groups(l) - m.heads.count_kept(l));
            for (double& v : s.heads[l]) v *= 1.0 + 0.3 * pruned_here;
        }
        s.mlps = mlp_value;
        return s;
    }
    double evaluate(const structure_mask& m) const {
        double total = 0.0;
        for (std::size_t l = 0; l < value.size(); ++l) {
            for (std::size_t h = 0; h < value[l].size(); ++h) total += m.heads.kept(l, h) ? value[l][h] : 0.0;
            total += m.mlps.kept(l, 0) ? mlp_value[l] : 0.0;
        }
        return total;
    }
};

synthetic make_synthetic(std::size_t layers, std::size_t heads, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    synthetic s;
    s.value.assign(layers, std::vector<double>(heads));
    for (auto& row : s.value) for (double& v : row) v = u(rng) * u(rng);  // skewed: many small heads
    s.mlp_value.resize(layers);
    for (double& v : s.mlp_value) v = 2.0 * u(rng) * u(rng);
    return s;
}

// The expected next mask from `prev` under the rule, ranking by (score, flat index).
structure_mask expected_step(const structure_mask& prev, const michel_scores& scores, std::size_t heads,
                             std::size_t mlps) {
    structure_mask next = prev;
    std::vector<std::pair<double, std::size_t>> hs, ms;
    for (std::size_t l = 0; l < prev.heads.layers(); ++l) {
        for (std::size_t h = 0; h < prev.heads.groups(l); ++h)
            if (prev.heads.kept(l, h)) hs.emplace_back(scores.heads[l][h], prev.heads.flat_index(l, h));
        if (prev.mlps.kept(l, 0)) ms.emplace_back(scores.mlps[l], l);
    }
    std::sort(hs.begin(), hs.end());
    std::sort(ms.begin(), ms.end());
    for (std::size_t i = 0; i < std::min(heads, hs.size()); ++i) next.heads.set_flat(hs[i].second, false);
    for (std::size_t i = 0; i < std::min(mlps, ms.size()); ++i) next.mlps.set_flat(ms[i].second, false);
    return next;
}

void check_history(const prune::spruning_result& r, synthetic& s, const prune::spruning_options& o) {
    const auto& hist = r.history;
    REQUIRE(!hist.empty());
    CHECK(hist[0].phase == 0);
    CHECK(hist[0].metric == r.baseline);
    const std::size_t total_heads = hist[0].mask.heads.total();
    const std::size_t p1 = std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(o.heads_fraction * total_heads)));
    const std::size_t per_phase_heads[4] = {0, p1, std::max<std::size_t>(1, p1 / o.phase2_divisor), 0};
    const std::size_t per_phase_mlps[4] = {0, o.mlps_per_step, 0, o.phase3_mlps_per_step};
    structure_mask current = hist[0].mask;
    int phase = 1;
    for (std::size_t i = 1; i < hist.size(); ++i) {
        const auto& rec = hist[i];
        CHECK(rec.phase >= phase);  // phases never go back
        phase = rec.phase;
        // The importance is recomputed under the current (last passing) mask.
        const michel_scores scores = s.importance(current);
        const structure_mask expect = expected_step(current, scores, per_phase_heads[phase], per_phase_mlps[phase]);
        CHECK(rec.mask == expect);
        CHECK(!(rec.mask == current));
        CHECK(rec.metric == s.evaluate(rec.mask));
        CHECK(rec.passed == (rec.metric >= o.ratio * r.baseline));
        CHECK(rec.heads_kept == rec.mask.heads.count_kept());
        if (rec.passed) {
            current = rec.mask;
        } else if (i + 1 < hist.size()) {
            CHECK(hist[i + 1].phase > rec.phase);  // a failure ends the phase
        }
    }
    CHECK(r.mask == current);  // the returned mask is the last passing one
    CHECK(s.evaluate(r.mask) >= o.ratio * r.baseline);
}
}  // namespace

TEST_CASE("s-pruning follows the rule at every step (BERT-base-like 12 x 12)", "[spruning]") {
    for (unsigned seed : {1u, 2u, 3u}) {
        synthetic s = make_synthetic(12, 12, seed);
        const structure_mask full{prune::group_mask::uniform(12, 12), prune::group_mask::uniform(12, 1)};
        const prune::spruning_options o;
        auto r = prune::s_prune(
            full, [&](const structure_mask& m) { return s.importance(m); },
            [&](const structure_mask& m) { return s.evaluate(m); }, o);
        // Every step's importance call was made under the mask the step started from.
        const std::size_t calls = s.importance_calls.size();
        CHECK(calls == r.history.size() - 1);
        for (std::size_t i = 1; i < r.history.size(); ++i) {
            // recorded masks differ from the mask given to importance by exactly the step
            CHECK((r.history[i].mask.heads & s.importance_calls[i - 1].heads) == r.history[i].mask.heads);
        }
        CHECK(r.history[1].heads_kept == 144 - 14);  // floor(0.1 * 144) = 14
        CHECK(r.history[1].mlps_kept == 11);
        check_history(r, s, o);
        // The search went through all three phases and each ended on a failure (or ran out).
        CHECK(r.history.back().phase == 3);
        CHECK((!r.history.back().passed || r.mask.mlps.count_kept() == 0));
        CHECK(r.mask.heads.count_kept() < 144);
    }
}

TEST_CASE("s-pruning with configurable steps and ratio; small models step at least 1", "[spruning]") {
    synthetic s = make_synthetic(2, 3, 9);  // 6 heads: floor(0.6) = 0 -> 1 head per step
    const structure_mask full{prune::group_mask::uniform(2, 3), prune::group_mask::uniform(2, 1)};
    prune::spruning_options o;
    o.ratio = 0.5;
    auto r = prune::s_prune(
        full, [&](const structure_mask& m) { return s.importance(m); },
        [&](const structure_mask& m) { return s.evaluate(m); }, o);
    REQUIRE(r.history.size() > 1);
    CHECK(r.history[1].heads_kept == 5);
    check_history(r, s, o);

    o.heads_fraction = 0.5;
    o.phase2_divisor = 3;
    o.ratio = 0.0;  // everything passes: all heads and MLPs go, then the phases run out
    synthetic s2 = make_synthetic(3, 4, 5);
    const structure_mask full2{prune::group_mask::uniform(3, 4), prune::group_mask::uniform(3, 1)};
    auto r2 = prune::s_prune(
        full2, [&](const structure_mask& m) { return s2.importance(m); },
        [&](const structure_mask& m) { return s2.evaluate(m); }, o);
    CHECK(r2.history[1].heads_kept == 6);  // floor(0.5 * 12)
    CHECK(r2.mask.heads.count_kept() == 0);
    CHECK(r2.mask.mlps.count_kept() == 0);
    for (const auto& rec : r2.history) CHECK(rec.passed);
    check_history(r2, s2, o);
}

TEST_CASE("a first failing step keeps the start; ties rank by flat index", "[spruning]") {
    synthetic s;
    s.value = {{1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}};  // all tied
    s.mlp_value = {1.0, 1.0};
    const structure_mask full{prune::group_mask::uniform(2, 3), prune::group_mask::uniform(2, 1)};
    prune::spruning_options o;
    o.ratio = 0.99;  // any loss fails
    auto r = prune::s_prune(
        full, [&](const structure_mask& m) { return s.importance(m); },
        [&](const structure_mask& m) { return s.evaluate(m); }, o);
    CHECK(r.mask == full);
    REQUIRE(r.history.size() == 4);  // start + one failing step per phase
    CHECK(!r.history[1].mask.heads.kept(0, 0));
    CHECK(r.history[1].mask.heads.count_kept() == 5);
    CHECK(!r.history[1].mask.mlps.kept(0, 0));  // lowest flat index among tied MLPs
    CHECK(r.history[2].phase == 2);
    CHECK(r.history[3].phase == 3);
    for (std::size_t i = 1; i < 4; ++i) CHECK(!r.history[i].passed);
}

TEST_CASE("a phase opening with the mask just rejected reuses its metric, not evaluate", "[spruning]") {
    // 6 heads: phase 1 and phase 2 both remove 1 head per step (floor(0.6) -> 1, 1 / 2 -> 1).
    // With every MLP already pruned, phase 1's failing step (1 head, no MLP left) is exactly
    // phase 2's first step: before, evaluate ran on it twice.
    synthetic s;
    s.value = {{1.0, 1.0, 1.0}, {1.0, 1.0, 1.0}};
    s.mlp_value = {1.0, 1.0};
    structure_mask start{prune::group_mask::uniform(2, 3), prune::group_mask::uniform(2, 1)};
    start.mlps.set_flat(0, false);
    start.mlps.set_flat(1, false);
    prune::spruning_options o;
    o.ratio = 0.99;  // any loss fails
    std::vector<structure_mask> evaluated;
    auto r = prune::s_prune(
        start, [&](const structure_mask& m) { return s.importance(m); },
        [&](const structure_mask& m) {
            evaluated.push_back(m);
            return s.evaluate(m);
        },
        o);
    CHECK(r.mask == start);
    REQUIRE(r.history.size() == 3);  // start, phase 1's failing step, phase 2's (the same mask); phase 3 has no MLP
    CHECK(r.history[2].phase == 2);
    CHECK(r.history[2].mask == r.history[1].mask);
    CHECK(r.history[2].reused);
    CHECK(!r.history[1].reused);
    CHECK(r.history[2].metric == r.history[1].metric);
    CHECK(!r.history[2].passed);
    REQUIRE(evaluated.size() == 2);  // the start and one head removed: each distinct mask once
    CHECK(evaluated[1] == r.history[1].mask);
    check_history(r, s, o);
}

TEST_CASE("s-pruning rejects bad inputs", "[spruning]") {
    synthetic s = make_synthetic(2, 2, 1);
    auto imp = [&](const structure_mask& m) { return s.importance(m); };
    auto ev = [&](const structure_mask& m) { return s.evaluate(m); };
    const structure_mask bad_layers{prune::group_mask::uniform(2, 2), prune::group_mask::uniform(3, 1)};
    CHECK_THROWS_AS(prune::s_prune(bad_layers, imp, ev), prune::shape_error);
    const structure_mask full{prune::group_mask::uniform(2, 2), prune::group_mask::uniform(2, 1)};
    prune::spruning_options o;
    o.heads_fraction = 1.5;
    CHECK_THROWS_AS(prune::s_prune(full, imp, ev, o), prune::value_error);
    auto wrong_scores = [&](const structure_mask&) { return michel_scores{{{1.0}}, {1.0}}; };
    CHECK_THROWS_AS(prune::s_prune(full, wrong_scores, ev), prune::shape_error);
}
