// Tests of prune/models/bert/metrics.hpp against values worked out by hand (shown in the comments).
#include <prune/models/bert/metrics.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

using namespace prune::bert::metrics;

TEST_CASE("accuracy, MCC and F1 on a hand-counted confusion matrix") {
    // predicted [1,1,0,0] vs truth [1,0,0,0]: TP 1, FP 1, TN 2, FN 0.
    const std::vector<int> pred{1, 1, 0, 0}, truth{1, 0, 0, 0};
    REQUIRE(accuracy(pred, truth) == Approx(0.75));
    // MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 2 / sqrt(2 * 1 * 3 * 2)
    REQUIRE(matthews(pred, truth, 2) == Approx(2.0 / std::sqrt(12.0)));
    // F1 = 2 TP / (2 TP + FP + FN) = 2 / 3
    REQUIRE(f1(pred, truth) == Approx(2.0 / 3.0));
    // Constant predictions: MCC 0 (scikit-learn's convention), not NaN.
    const std::vector<int> zeros{0, 0, 0, 0};
    REQUIRE(matthews(zeros, truth, 2) == 0.0);
    // Multi-class perfect agreement is 1, full disagreement of a 2-cycle is -1.
    const std::vector<int> a{0, 1, 2, 0, 1, 2};
    REQUIRE(matthews(a, a, 3) == Approx(1.0));
    const std::vector<int> b{1, 0}, c{0, 1};
    REQUIRE(matthews(b, c, 2) == Approx(-1.0));
    REQUIRE_THROWS_AS(accuracy(pred, std::vector<int>{1}), prune::value_error);
}

TEST_CASE("Pearson and Spearman (average ranks for ties)") {
    // x = [1,2,3], y = [2,4,7]: sxy = 5, sxx = 2, syy = 114/9 -> r = 5 / sqrt(2 * 114 / 9)
    const std::vector<double> x{1, 2, 3}, y{2, 4, 7};
    REQUIRE(pearson(x, y) == Approx(5.0 / std::sqrt(2.0 * 114.0 / 9.0)));
    REQUIRE(spearman(x, y) == Approx(1.0));
    // ranks of [1,2,2,3] = [1,2.5,2.5,4]; vs [1,3,2,4]: sxy = 4.5, sxx = 4.5, syy = 5
    const std::vector<double> u{1, 2, 2, 3}, v{1, 3, 2, 4};
    REQUIRE(ranks(u) == std::vector<double>{1, 2.5, 2.5, 4});
    REQUIRE(spearman(u, v) == Approx(4.5 / std::sqrt(4.5 * 5.0)));
    const std::vector<double> flat{1, 1, 1};
    REQUIRE(pearson(flat, x) == 0.0);
}

TEST_CASE("metric names: resolve for the model's outputs; score dispatches to the metric") {
    using namespace prune::bert::metrics;
    CHECK(resolve("auto", 3) == "accuracy");
    CHECK(resolve("auto", 1) == "pearson");
    CHECK(resolve("mcc", 3) == "mcc");
    CHECK(resolve("spearman", 1) == "spearman");
    CHECK_THROWS_AS(resolve("f1", 3), prune::value_error);        // F1 of class 1 needs two classes
    CHECK_THROWS_AS(resolve("pearson", 2), prune::value_error);   // correlation of class indices: no
    CHECK_THROWS_AS(resolve("accuracy", 1), prune::value_error);  // accuracy of a regression: no
    CHECK_THROWS_AS(resolve("auc", 2), prune::value_error);
    const std::vector<int> pred = {1, 1, 0, 0, 1}, truth = {1, 0, 0, 1, 1};
    CHECK(score("accuracy", pred, truth, 2) == accuracy(pred, truth));
    CHECK(score("mcc", pred, truth, 2) == matthews(pred, truth, 2));
    CHECK(score("f1", pred, truth, 2) == f1(pred, truth));
    CHECK(score("f1", pred, truth, 2) != score("accuracy", pred, truth, 2));  // 2/3 vs 0.6: the dispatch is seen
    const std::vector<double> x = {1, 2, 3, 4}, y = {1, 3, 2, 10};
    CHECK(score("pearson", x, y) == pearson(x, y));
    CHECK(score("spearman", x, y) == spearman(x, y));
    CHECK(score("pearson", x, y) != score("spearman", x, y));
}
