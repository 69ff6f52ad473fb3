// prune/models/bert/metrics.hpp: the GLUE task metrics a classifier or regressor is judged by:
// accuracy, Matthews correlation (CoLA; multi-class by Gorodkin's R_K, as scikit-learn),
// binary F1 of class 1 (MRPC, QQP), Pearson and Spearman correlation (STS-B; Spearman with
// average ranks for ties). Degenerate inputs (a constant vector) give 0, as scikit-learn's
// MCC does, rather than NaN.
#pragma once

#include <prune/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace prune::bert::metrics {

/// Fraction of equal entries; value_error on different lengths or empty input.
[[nodiscard]] inline double accuracy(std::span<const int> predicted, std::span<const int> truth) {
    if (predicted.size() != truth.size() || predicted.empty()) {
        throw value_error("accuracy: " + std::to_string(predicted.size()) + " predictions for " +
                          std::to_string(truth.size()) + " labels");
    }
    std::size_t right = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        right += predicted[i] == truth[i] ? 1u : 0u;
    }
    return static_cast<double>(right) / static_cast<double>(truth.size());
}

/// Matthews correlation coefficient over `classes` classes (binary MCC when classes == 2).
[[nodiscard]] inline double matthews(std::span<const int> predicted, std::span<const int> truth, int classes) {
    if (predicted.size() != truth.size() || predicted.empty() || classes < 2) {
        throw value_error("matthews: bad input sizes or class count");
    }
    std::vector<double> t(static_cast<std::size_t>(classes)), p(static_cast<std::size_t>(classes));
    double correct = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        t[static_cast<std::size_t>(truth[i])] += 1;
        p[static_cast<std::size_t>(predicted[i])] += 1;
        correct += predicted[i] == truth[i] ? 1 : 0;
    }
    const double s = static_cast<double>(truth.size());
    const double tp = std::inner_product(t.begin(), t.end(), p.begin(), 0.0);
    const double num = correct * s - tp;
    const double den = std::sqrt(s * s - std::inner_product(p.begin(), p.end(), p.begin(), 0.0)) *
                       std::sqrt(s * s - std::inner_product(t.begin(), t.end(), t.begin(), 0.0));
    return den == 0.0 ? 0.0 : num / den;
}

/// F1 score of class `positive` (binary tasks); 0 when it is never predicted nor true.
[[nodiscard]] inline double f1(std::span<const int> predicted, std::span<const int> truth, int positive = 1) {
    if (predicted.size() != truth.size() || predicted.empty()) {
        throw value_error("f1: bad input sizes");
    }
    double tp = 0, fp = 0, fn = 0;
    for (std::size_t i = 0; i < truth.size(); ++i) {
        const bool p = predicted[i] == positive, t = truth[i] == positive;
        tp += p && t ? 1 : 0;
        fp += p && !t ? 1 : 0;
        fn += !p && t ? 1 : 0;
    }
    return tp == 0 ? 0.0 : 2 * tp / (2 * tp + fp + fn);
}

/// Pearson correlation; 0 when either side is constant.
[[nodiscard]] inline double pearson(std::span<const double> x, std::span<const double> y) {
    if (x.size() != y.size() || x.empty()) {
        throw value_error("pearson: bad input sizes");
    }
    const double n = static_cast<double>(x.size());
    const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
    const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
    double sxy = 0, sxx = 0, syy = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    return sxx == 0 || syy == 0 ? 0.0 : sxy / std::sqrt(sxx * syy);
}

/// Ranks 1..n, ties sharing their average rank.
[[nodiscard]] inline std::vector<double> ranks(std::span<const double> x) {
    std::vector<std::size_t> order(x.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return x[a] < x[b]; });
    std::vector<double> r(x.size());
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) {
            ++j;
        }
        const double avg = (static_cast<double>(i) + static_cast<double>(j)) / 2.0 + 1.0;
        for (std::size_t k = i; k <= j; ++k) {
            r[order[k]] = avg;
        }
        i = j + 1;
    }
    return r;
}

/// Spearman rank correlation (Pearson of average ranks).
[[nodiscard]] inline double spearman(std::span<const double> x, std::span<const double> y) {
    const auto rx = ranks(x);
    const auto ry = ranks(y);
    return pearson(rx, ry);
}

/// The metric a name asks for, for a model with `labels` outputs (1 = regression): "auto" is
/// accuracy for classification and pearson for regression; value_error naming what applies
/// when the metric does not fit (f1 needs 2 classes; pearson / spearman need regression).
[[nodiscard]] inline std::string resolve(const std::string& name, int labels) {
    const bool regression = labels == 1;
    if (name == "auto") return regression ? "pearson" : "accuracy";
    const bool for_regression = name == "pearson" || name == "spearman";
    const bool for_classes = name == "accuracy" || name == "mcc" || name == "f1";
    if (!for_regression && !for_classes)
        throw value_error("unknown metric '" + name + "' (expected auto, accuracy, mcc, f1, pearson or spearman)");
    if (regression != for_regression)
        throw value_error("metric " + name + " does not apply to a " +
                          (regression ? std::string("regression model (use pearson or spearman)")
                                      : std::string("classification model (use accuracy, mcc or f1)")));
    if (name == "f1" && labels != 2)
        throw value_error("metric f1 needs a binary model (num_labels = 2), this one has " + std::to_string(labels));
    return name;
}

/// Class predictions scored by a resolved metric name (accuracy, mcc, f1).
[[nodiscard]] inline double score(const std::string& name, std::span<const int> predicted, std::span<const int> truth,
                                  int classes) {
    if (name == "mcc") return matthews(predicted, truth, classes);
    if (name == "f1") return f1(predicted, truth);
    return accuracy(predicted, truth);
}

/// Regression predictions scored by a resolved metric name (pearson, spearman).
[[nodiscard]] inline double score(const std::string& name, std::span<const double> predicted,
                                  std::span<const double> truth) {
    return name == "spearman" ? spearman(predicted, truth) : pearson(predicted, truth);
}

}  // namespace prune::bert::metrics
