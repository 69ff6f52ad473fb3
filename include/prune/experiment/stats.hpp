// prune/experiment/stats.hpp: the statistics the experiments' verdicts stand on, over seeds.
//
//   summarise        mean and sample standard deviation
//   welch            Welch's t-test of two samples' means (unequal variances): t, the
//                    Welch-Satterthwaite degrees of freedom, the two-sided p-value; the 90%
//                    confidence interval of the difference; and the equivalence test (TOST,
//                    two one-sided Welch tests) against a margin +-delta
//   outcome          classifies a difference a - b: "alike" (TOST p < 0.05: the 90% interval
//                    lies within +-delta), "above" / "below" (Welch p < 0.05 and the
//                    difference beyond delta), otherwise "undecided"; "not testable" when a
//                    side has fewer than two values or both have zero variance
//   tally            yes / no / undecided answers of the tasks (or cases) to a claim, and the
//                    verdict: holds, partly holds, does not hold, undecided
//   test_text        a test's t, df, p and equivalence p as report text
//
// The Student t distribution comes from the regularized incomplete beta function (Lentz's
// continued fraction, as Numerical Recipes section 6.4). Everything is deterministic.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace prune::experiment {

/// Mean and sample standard deviation.
struct summary {
    double mean = std::nan("");  ///< NaN for no values
    double std = 0.0;            ///< 0 for fewer than two values
    std::size_t n = 0;           ///< number of values
};

/// Mean and sample standard deviation of values.
inline summary summarise(const std::vector<double>& values) {
    summary s;
    s.n = values.size();
    if (values.empty()) {
        return s;
    }
    double sum = 0.0;
    for (double v : values) {
        sum += v;
    }
    s.mean = sum / static_cast<double>(values.size());
    if (std::all_of(values.begin(), values.end(), [&](double v) { return v == values.front(); })) {
        s.mean = values.front();  // exactly, and no variance (the sum's rounding would make some)
        return s;
    }
    if (values.size() > 1) {
        double squares = 0.0;
        for (double v : values) {
            squares += (v - s.mean) * (v - s.mean);
        }
        s.std = std::sqrt(squares / static_cast<double>(values.size() - 1));
    }
    return s;
}

namespace detail {
/// One step of the modified Lentz method: d and c updated by the coefficient aa; returns d c.
inline double lentz_step(double aa, double& d, double& c) {
    constexpr double tiny = 1e-300;
    d = 1.0 + aa * d;
    d = 1.0 / (std::fabs(d) < tiny ? tiny : d);
    c = 1.0 + aa / c;
    c = std::fabs(c) < tiny ? tiny : c;
    return d * c;
}

/// The continued fraction of the incomplete beta function (Numerical Recipes' betacf).
inline double beta_fraction(double a, double b, double x) {
    const double qab = a + b, qap = a + 1.0, qam = a - 1.0;
    double c = 1.0, d = 1.0 - qab * x / qap;
    d = 1.0 / (std::fabs(d) < 1e-300 ? 1e-300 : d);
    double h = d;
    for (int m = 1; m <= 1000; ++m) {
        const double m2 = 2.0 * m;
        h *= lentz_step(m * (b - m) * x / ((qam + m2) * (a + m2)), d, c);
        const double last = lentz_step(-(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)), d, c);
        h *= last;
        if (std::fabs(last - 1.0) < 1e-15) {
            break;
        }
    }
    return h;
}
}  // namespace detail

/// The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1.
inline double incomplete_beta(double a, double b, double x) {
    if (x <= 0.0) {
        return 0.0;
    }
    if (x >= 1.0) {
        return 1.0;
    }
    const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
    if (x < (a + 1.0) / (a + b + 2.0)) {
        return front * detail::beta_fraction(a, b, x) / a;
    }
    return 1.0 - front * detail::beta_fraction(b, a, 1.0 - x) / b;
}

/// P(|T| >= |t|) for Student's t with df > 0 degrees of freedom (df need not be an integer).
inline double student_t_two_sided(double t, double df) {
    const double t2 = t * t;
    if (t2 < df) {  // near 0: from t^2 / (df + t^2), which keeps its digits
        return 1.0 - incomplete_beta(0.5, 0.5 * df, t2 / (df + t2));
    }
    return incomplete_beta(0.5 * df, 0.5, df / (df + t2));
}

/// P(T <= t) for Student's t with df > 0 degrees of freedom.
inline double student_t_cdf(double t, double df) {
    const double tail = 0.5 * student_t_two_sided(t, df);
    return t > 0.0 ? 1.0 - tail : tail;
}

/// The t with P(T <= t) = probability, 0 < probability < 1 (bisection on the CDF).
inline double student_t_quantile(double probability, double df) {
    double low = -1.0, high = 1.0;
    while (student_t_cdf(low, df) > probability) {
        low *= 2.0;
    }
    while (student_t_cdf(high, df) < probability) {
        high *= 2.0;
    }
    for (int i = 0; i < 200 && high - low > 1e-14 * std::max(1.0, std::fabs(low)); ++i) {
        const double mid = 0.5 * (low + high);
        (student_t_cdf(mid, df) < probability ? low : high) = mid;
    }
    return 0.5 * (low + high);
}

/// Welch's t-test of mean(a) - mean(b), its 90% interval and the equivalence test against +-margin.
struct welch_test {
    summary a, b;                      ///< the two samples
    double difference = std::nan("");  ///< mean(a) - mean(b)
    bool testable = false;             ///< both n >= 2 and not both variances 0
    double t = std::nan("");           ///< difference / standard error
    double df = std::nan("");          ///< Welch-Satterthwaite degrees of freedom
    double p = std::nan("");           ///< two-sided p-value of "the means are equal"
    double margin = 0.0;               ///< the equivalence margin delta
    double low = std::nan(""), high = std::nan("");  ///< 90% confidence interval of the difference
    double p_equivalence = std::nan("");  ///< TOST: the larger p of the one-sided tests of d <= -delta and d >= delta
};

/// Welch's t-test of a against b with the equivalence margin `margin`.
inline welch_test welch(const std::vector<double>& a, const std::vector<double>& b, double margin) {
    welch_test w;
    w.a = summarise(a);
    w.b = summarise(b);
    w.margin = margin;
    w.difference = w.a.mean - w.b.mean;
    if (w.a.n < 2 || w.b.n < 2 || (w.a.std == 0.0 && w.b.std == 0.0)) {
        return w;
    }
    w.testable = true;
    const double va = w.a.std * w.a.std / static_cast<double>(w.a.n);
    const double vb = w.b.std * w.b.std / static_cast<double>(w.b.n);
    const double se = std::sqrt(va + vb);
    w.t = w.difference / se;
    w.df = (va + vb) * (va + vb) / (va * va / static_cast<double>(w.a.n - 1) + vb * vb / static_cast<double>(w.b.n - 1));
    w.p = student_t_two_sided(w.t, w.df);
    const double half = student_t_quantile(0.95, w.df) * se;
    w.low = w.difference - half;
    w.high = w.difference + half;
    const double p_above = 1.0 - student_t_cdf((w.difference + margin) / se, w.df);  // H0: d <= -delta
    const double p_below = student_t_cdf((w.difference - margin) / se, w.df);        // H0: d >= +delta
    w.p_equivalence = std::max(p_above, p_below);
    return w;
}

/// The significance level of every test.
inline constexpr double significance = 0.05;

/// What a Welch test says of a - b: "alike", "above", "below", "undecided" or "not testable".
inline std::string outcome(const welch_test& w) {
    if (!w.testable) {
        return "not testable";
    }
    if (w.p_equivalence < significance) {
        return "alike";
    }
    if (w.p < significance && std::fabs(w.difference) > w.margin) {
        return w.difference > 0.0 ? "above" : "below";
    }
    return "undecided";
}

/// The answers of the tasks (or cases) to a claim: yes, no (shown otherwise) or undecided.
struct tally {
    std::size_t yes = 0, no = 0, undecided = 0;  ///< how many said each
    /// Counts one answer ("yes", "no", anything else: undecided) and returns it.
    std::string add(const std::string& answer) {
        (answer == "yes" ? yes : answer == "no" ? no : undecided) += 1;
        return answer;
    }
};

/// The verdict: "holds" (every answer yes), "partly holds" (some yes), "does not hold" (no yes,
/// some no), "undecided" (every answer undecided).
inline std::string verdict_of(const tally& t) {
    if (t.yes > 0) {
        return t.no == 0 && t.undecided == 0 ? "holds" : "partly holds";
    }
    return t.no > 0 ? "does not hold" : "undecided";
}

/// A sample against a reference where lower is better (e.g. log perplexity over seeds): it
/// reaches the reference when alike within the margin, or below it.
struct reach {
    std::string kind;    ///< the sample's name
    welch_test test;     ///< of sample - reference
    std::string answer;  ///< "yes" (alike or below), "no" (above), "undecided"
    std::string result;  ///< the answer in a report's words
};

/// Whether `sample` reaches `reference` (welch with `margin`; `margin_text`, e.g. "5%", and
/// `reference_name` word the result: "within 5%", "lower than good", "falls short (more than 5%
/// above good)", "undecided" or "not testable with n seed(s)").
inline reach reach_of(std::string kind, const std::vector<double>& sample, const std::vector<double>& reference, double margin,
                      const std::string& margin_text, const std::string& reference_name) {
    reach r{std::move(kind), welch(sample, reference, margin), {}, {}};
    const std::string what = outcome(r.test);
    r.answer = what == "alike" || what == "below" ? "yes" : what == "above" ? "no" : "undecided";
    r.result = what == "alike"       ? "within " + margin_text
               : what == "below"     ? "lower than " + reference_name
               : what == "above"     ? "falls short (more than " + margin_text + " above " + reference_name + ")"
               : what == "undecided" ? std::string("undecided")
                                     : "not testable with " + std::to_string(std::min(r.test.a.n, r.test.b.n)) + " seed(s)";
    return r;
}

/// The verdict of "every sample reaches the reference": verdict_of their answers, or the first
/// one's "not testable with n seed(s)" when none has a test.
inline std::string reach_verdict(const std::vector<reach>& reaches) {
    tally answers;
    bool testable = false;
    for (const reach& r : reaches) {
        answers.add(r.answer);
        testable = testable || r.test.testable;
    }
    if (!testable && !reaches.empty()) {
        return reaches.front().result;
    }
    return verdict_of(answers);
}

/// value with `decimals` decimals ("%.*f"); "n/a" for NaN.
inline std::string fixed_text(double value, int decimals = 3) {
    if (std::isnan(value)) {
        return "n/a";
    }
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.*f", decimals, value);
    return buffer;
}

/// A p-value: 3 decimals, or "1.2e-05" below 0.001; "n/a" for NaN.
inline std::string p_text(double p) {
    if (p >= 0.001 || std::isnan(p)) {
        return fixed_text(p);
    }
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.1e", p);
    return buffer;
}

/// "Welch t T, df F, p P; equivalence (margin) p Q" (margin: how the caller names +-delta), or
/// why there is no test.
inline std::string test_text(const welch_test& w, const std::string& margin) {
    if (!w.testable) {
        return "no test (fewer than two seeds a side, or no variance on both sides)";
    }
    return "Welch t " + fixed_text(w.t, 2) + ", df " + fixed_text(w.df, 1) + ", p " + p_text(w.p) + "; equivalence (" +
           margin + ") p " + p_text(w.p_equivalence);
}

}  // namespace prune::experiment
