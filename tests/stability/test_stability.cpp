// Tests for prune/stability.hpp: Krippendorff's alpha against published values and
// closed forms.
#include <prune/stability.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <optional>
#include <vector>

namespace {
constexpr std::optional<int> na = std::nullopt;
}

TEST_CASE("krippendorff_alpha_nominal reproduces Krippendorff's worked example") {
    // Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C:
    // 4 observers x 12 units with missing values; published nominal alpha = 0.743.
    const std::vector<std::vector<std::optional<int>>> ratings = {
        {1, 2, 3, 3, 2, 1, 4, 1, 2, na, na, na},
        {1, 2, 3, 3, 2, 2, 4, 1, 2, 5, na, 3},
        {na, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, na},
        {1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, na},
    };
    CHECK(prune::krippendorff_alpha_nominal(ratings) == Approx(0.743).margin(0.0005));
}

TEST_CASE("krippendorff_alpha_nominal: perfect agreement is 1, undefined cases are NaN") {
    const std::vector<std::vector<std::optional<int>>> same = {{0, 1, 1, 0}, {0, 1, 1, 0}, {0, 1, 1, 0}};
    CHECK(prune::krippendorff_alpha_nominal(same) == Approx(1.0));
    const std::vector<std::vector<std::optional<int>>> constant = {{1, 1, 1}, {1, 1, 1}};
    CHECK(std::isnan(prune::krippendorff_alpha_nominal(constant)));
    CHECK(std::isnan(prune::krippendorff_alpha_nominal({})));
    const std::vector<std::vector<std::optional<int>>> ragged = {{1, 0}, {1}};
    CHECK_THROWS_AS(prune::krippendorff_alpha_nominal(ragged), prune::shape_error);
}

TEST_CASE("krippendorff_alpha_nominal: two coders, two values, closed form") {
    // Two coders always disagreeing on a balanced binary variable, by hand: each of the 4
    // units adds 1/(m-1) = 1 to o_01 and to o_10, so sum_{c!=k} o_ck = 8; n_0 = n_1 = 4, n = 8;
    // sum_{c!=k} n_c n_k = 2 * 16 = 32; alpha = 1 - (n - 1) * 8 / 32 = -0.75.
    const std::vector<std::vector<std::optional<int>>> ratings = {{0, 0, 1, 1}, {1, 1, 0, 0}};
    CHECK(prune::krippendorff_alpha_nominal(ratings) == Approx(1.0 - 7.0 * 8.0 / 32.0));
}

TEST_CASE("mask_agreement over seeds' head masks") {
    prune::group_mask a = prune::group_mask::uniform(2, 3);
    a.set(0, 1, false);
    a.set(1, 2, false);
    const std::vector<prune::group_mask> identical = {a, a, a};
    CHECK(prune::mask_agreement(identical) == Approx(1.0));
    const std::vector<prune::group_mask> opposite = {a, ~a};
    CHECK(prune::mask_agreement(opposite) < 0.0);
    const std::vector<prune::group_mask> mismatched = {a, prune::group_mask::uniform(3, 3)};
    CHECK_THROWS_AS(prune::mask_agreement(mismatched), prune::shape_error);
}
