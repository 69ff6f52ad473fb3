// The decoder lottery's verdict (prune/experiment/stats.hpp's reach_of and reach_verdict, which
// prune-llm's report applies to its re-trained tickets) on fabricated log perplexities: random
// and bad against good, decided by Welch's t-test and the equivalence test (margin ln 1.05;
// those tests are checked against scipy in tests/lottery_report/test_stats.cpp). The verdict
// flips between within 5%, lower, falls short, undecided and not testable with the same kind
// of numbers. prune-llm's report.md and report.json are checked end to end in test_llm_cli.
#include <prune/experiment/stats.hpp>

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace {

using prune::experiment::reach;

/// log(14 x factor x (1 + jitter (s - 1))) for seeds s = 0 .. seeds - 1.
std::vector<double> log_perplexities(double factor, double jitter, std::size_t seeds) {
    std::vector<double> v;
    for (std::size_t s = 0; s < seeds; ++s) v.push_back(std::log(14.0 * factor * (1.0 + jitter * (static_cast<double>(s) - 1.0))));
    return v;
}

/// random and bad (good's perplexity times `random` and `bad`) against good, as prune-llm asks.
std::vector<reach> reaches(double random, double bad, double jitter, std::size_t seeds = 3) {
    const std::vector<double> good = log_perplexities(1.0, jitter, seeds);
    auto one = [&](const char* kind, double factor) {
        return prune::experiment::reach_of(kind, log_perplexities(factor, jitter, seeds), good, std::log(1.05), "5%", "good");
    };
    return {one("random", random), one("bad", bad)};
}

}  // namespace

TEST_CASE("decoder lottery: the verdict follows the tests on log perplexity") {
    // 1% spread: random 1.01 x good is within 5%, bad 1.3 x falls short
    const auto mixed = reaches(1.01, 1.3, 0.01);
    CHECK(mixed[0].result == "within 5%");
    CHECK(mixed[0].answer == "yes");
    CHECK(mixed[1].result == "falls short (more than 5% above good)");
    CHECK(mixed[1].answer == "no");
    CHECK(std::exp(mixed[1].test.difference) == Approx(1.3));
    CHECK(prune::experiment::reach_verdict(mixed) == "partly holds");
    CHECK(prune::experiment::reach_verdict(reaches(1.0, 0.7, 0.01)) == "holds");  // bad lower
    CHECK(reaches(1.0, 0.7, 0.01)[1].result == "lower than good");
    CHECK(prune::experiment::reach_verdict(reaches(1.3, 1.3, 0.01)) == "does not hold");
    // 20% spread: the same means tell nothing
    const auto noisy = reaches(1.01, 1.3, 0.2);
    CHECK(noisy[0].result == "undecided");
    CHECK(noisy[1].result == "undecided");
    CHECK(prune::experiment::reach_verdict(noisy) == "undecided");
    // one seed (--quick): no test
    const auto single = reaches(1.01, 1.3, 0.01, 1);
    CHECK(single[0].result == "not testable with 1 seed(s)");
    CHECK_FALSE(single[0].test.testable);
    CHECK(prune::experiment::reach_verdict(single) == "not testable with 1 seed(s)");
}
