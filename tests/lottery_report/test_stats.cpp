// Tests for prune/experiment/stats.hpp: Welch's t-test, its 90% interval and the equivalence
// test against scipy (tests/lottery_report/welch_reference.py: scipy.stats.ttest_ind with
// equal_var=False, scipy.stats.t, scipy.special.betainc; skipped, exit 77, without scipy); the
// Student t CDF against closed forms for 1 and 2 degrees of freedom; the cases without a test.
#include <prune/experiment/stats.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

namespace lottery = prune::experiment;

namespace {

/// The oracle's JSON (exits 77, skipping the test, when scipy is absent).
const nlohmann::json& scipy_reference() {
    static const nlohmann::json reference = [] {
        const std::string command =
            std::string(PRUNE_TEST_PYTHON) + " " + PRUNE_SOURCE_DIR + "/tests/lottery_report/welch_reference.py";
        std::FILE* pipe = ::popen(command.c_str(), "r");
        REQUIRE(pipe != nullptr);
        std::string text;
        char buffer[4096];
        for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) {
            text.append(buffer, n);
        }
        const int status = ::pclose(pipe);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
            std::cout << text;
            std::exit(77);
        }
        INFO(command << "\n" << text);
        REQUIRE(status == 0);
        return nlohmann::json::parse(text);
    }();
    return reference;
}

double relative(double expected) { return std::max(1e-12, 1e-9 * std::fabs(expected)); }

}  // namespace

TEST_CASE("the Student t CDF matches its closed forms for 1 and 2 degrees of freedom") {
    for (double t : {-50.0, -3.0, -0.5, 0.0, 0.25, 1.0, 7.0}) {
        CHECK(lottery::student_t_cdf(t, 1.0) == Approx(0.5 + std::atan(t) / M_PI).margin(1e-13));  // Cauchy
        CHECK(lottery::student_t_cdf(t, 2.0) == Approx(0.5 + t / (2.0 * std::sqrt(2.0 + t * t))).margin(1e-13));
    }
    CHECK(lottery::student_t_quantile(0.975, 1.0) == Approx(std::tan(M_PI * 0.475)).epsilon(1e-10));
}

TEST_CASE("incomplete beta, t CDF and t quantile match scipy") {
    const nlohmann::json& reference = scipy_reference();
    for (const auto& r : reference["beta"]) {
        INFO(r.dump());
        const double expected = r["value"].get<double>();
        CHECK(lottery::incomplete_beta(r["a"], r["b"], r["x"]) == Approx(expected).margin(relative(expected)));
    }
    for (const auto& r : reference["cdf"]) {
        INFO(r.dump());
        const double cdf = r["cdf"].get<double>(), quantile = r["quantile"].get<double>();
        CHECK(lottery::student_t_cdf(r["t"], r["df"]) == Approx(cdf).margin(relative(cdf)));
        CHECK(lottery::student_t_quantile(r["quantile_of"], r["df"]) == Approx(quantile).margin(relative(quantile)));
    }
}

TEST_CASE("Welch's t, df, p, 90% interval and equivalence p match scipy") {
    const nlohmann::json& reference = scipy_reference();
    REQUIRE(reference["welch"].size() == 7);
    for (const auto& r : reference["welch"]) {
        INFO(r.dump());
        const auto a = r["a"].get<std::vector<double>>(), b = r["b"].get<std::vector<double>>();
        const lottery::welch_test w = lottery::welch(a, b, r["margin"]);
        REQUIRE(w.testable);
        CHECK(w.difference == Approx(w.a.mean - w.b.mean));
        for (const auto& [name, value] : {std::pair{"t", w.t}, {"df", w.df}, {"p", w.p}, {"low", w.low}, {"high", w.high},
                                          {"p_equivalence", w.p_equivalence}}) {
            INFO(name);
            const double expected = r[name].get<double>();
            CHECK(value == Approx(expected).margin(std::max(1e-11, 1e-8 * std::fabs(expected))));
        }
    }
}

TEST_CASE("no test with one value a side or no variance on either side") {
    const lottery::welch_test one = lottery::welch({0.8}, {0.6, 0.7}, 0.02);
    CHECK_FALSE(one.testable);
    CHECK(std::isnan(one.t));
    CHECK(std::isnan(one.p));
    CHECK(one.difference == Approx(0.15));
    CHECK(lottery::outcome(one) == "not testable");
    const lottery::welch_test flat = lottery::welch({0.8, 0.8, 0.8}, {0.6, 0.6, 0.6}, 0.02);
    CHECK_FALSE(flat.testable);
    CHECK(lottery::outcome(flat) == "not testable");
    // one side without variance is testable: the other's variance carries the test
    CHECK(lottery::welch({0.8, 0.8, 0.8}, {0.6, 0.61, 0.62}, 0.02).testable);
}

TEST_CASE("outcomes: alike, above, below, undecided") {
    // 0.80 +- 0.001 against 0.605 +- 0.001 (n 3): far beyond the margin, p tiny
    CHECK(lottery::outcome(lottery::welch({0.799, 0.800, 0.801}, {0.604, 0.605, 0.606}, 0.02)) == "above");
    CHECK(lottery::outcome(lottery::welch({0.604, 0.605, 0.606}, {0.799, 0.800, 0.801}, 0.02)) == "below");
    // a difference of 0.001 with sd 0.001: the 90% interval within +-0.02
    CHECK(lottery::outcome(lottery::welch({0.799, 0.800, 0.801}, {0.798, 0.799, 0.800}, 0.02)) == "alike");
    // significant (p < 0.05) but within the margin: alike, not short
    const lottery::welch_test small = lottery::welch({0.809, 0.810, 0.811}, {0.799, 0.800, 0.801}, 0.02);
    CHECK(small.p < 0.05);
    CHECK(lottery::outcome(small) == "alike");
    // two noisy seeds: neither shown alike nor different
    CHECK(lottery::outcome(lottery::welch({0.80, 0.74}, {0.77, 0.71}, 0.02)) == "undecided");
}

TEST_CASE("verdicts of yes / no / undecided answers; p-values as text") {
    auto verdict = [](std::size_t yes, std::size_t no, std::size_t undecided) {
        return lottery::verdict_of(lottery::tally{yes, no, undecided});
    };
    CHECK(verdict(3, 0, 0) == "holds");
    CHECK(verdict(1, 1, 0) == "partly holds");
    CHECK(verdict(2, 0, 1) == "partly holds");
    CHECK(verdict(0, 2, 0) == "does not hold");
    CHECK(verdict(0, 1, 2) == "does not hold");
    CHECK(verdict(0, 0, 3) == "undecided");
    lottery::tally t;
    CHECK(t.add("yes") == "yes");
    t.add("no");
    t.add("not testable");
    CHECK((t.yes == 1 && t.no == 1 && t.undecided == 1));
    CHECK(lottery::p_text(0.0412) == "0.041");
    CHECK(lottery::p_text(0.00012) == "1.2e-04");
    CHECK(lottery::p_text(std::nan("")) == "n/a");
}
