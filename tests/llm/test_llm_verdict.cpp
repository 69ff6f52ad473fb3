// The decoder lottery's verdict (examples/llm/report.hpp) on fabricated tickets: re-trained random
// and bad perplexities against good's, decided by prune/experiment/stats.hpp's Welch and
// equivalence tests on log perplexity (margin ln 1.05; those tests are checked against scipy in
// tests/lottery_report/test_stats.cpp). The verdict flips between within 5%, falls short,
// undecided and not testable with the same kind of numbers; report.md and report.json print them.
#include "llm/report.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace {

/// Tickets whose re-trained perplexities are good's times `random` and `bad`, over `seeds`
/// seeds, each seed's perplexity scaled by (1 + jitter (s - 1)).
llm_experiment::lottery_outcome tickets(double random, double bad, double jitter, std::size_t seeds = 3) {
    llm_experiment::lottery_outcome lot;
    lot.good = prune::structure_mask{prune::group_mask::uniform(1, 2), prune::group_mask::uniform(1, 1)};
    for (std::size_t s = 0; s < seeds; ++s) {
        const double e = 1.0 + jitter * (static_cast<double>(s) - 1.0);
        for (const auto& [kind, factor] : {std::pair<std::string, double>{"full", 0.98}, {"good", 1.0}, {"random", random}, {"bad", bad}}) {
            llm_experiment::ticket t;
            t.kind = kind;
            t.seed = s;
            t.pruned.perplexity = 20.0;
            t.retrained.perplexity = 14.0 * factor * e;
            lot.tickets.push_back(t);
        }
    }
    return lot;
}

}  // namespace

TEST_CASE("decoder lottery: the verdict follows the tests on log perplexity") {
    // 1% spread: random 1.01 x good is within 5%, bad 1.3 x falls short
    const auto mixed = llm_experiment::reaches(tickets(1.01, 1.3, 0.01));
    CHECK(mixed[0].result == "within 5%");
    CHECK(mixed[1].result == "falls short (more than 5% above good)");
    CHECK(llm_experiment::reach_verdict(mixed) == "partly holds");
    CHECK(llm_experiment::reach_verdict(llm_experiment::reaches(tickets(1.0, 0.7, 0.01))) == "holds");  // bad lower
    CHECK(llm_experiment::reaches(tickets(1.0, 0.7, 0.01))[1].result == "lower than good");
    CHECK(llm_experiment::reach_verdict(llm_experiment::reaches(tickets(1.3, 1.3, 0.01))) == "does not hold");
    // 20% spread: the same means tell nothing
    const auto noisy = llm_experiment::reaches(tickets(1.01, 1.3, 0.2));
    CHECK(noisy[0].result == "undecided");
    CHECK(noisy[1].result == "undecided");
    CHECK(llm_experiment::reach_verdict(noisy) == "undecided");
    // one seed (--quick): no test
    const auto single = llm_experiment::reaches(tickets(1.01, 1.3, 0.01, 1));
    CHECK(single[0].result == "not testable with 1 seed(s)");
    CHECK(llm_experiment::reach_verdict(single) == "not testable with 1 seed(s)");
}

TEST_CASE("decoder lottery: report.md and report.json print the numbers behind the verdict") {
    const auto lot = tickets(1.01, 1.3, 0.01);
    std::vector<double> good, bad;
    for (const auto& t : lot.tickets) {
        if (t.kind == "good") good.push_back(std::log(t.retrained.perplexity));
        if (t.kind == "bad") bad.push_back(std::log(t.retrained.perplexity));
    }
    const auto w = prune::experiment::welch(bad, good, std::log(1.05));
    CHECK(std::exp(w.difference) == Approx(1.3));
    const std::string md = llm_experiment::lottery_markdown(lot, llm_experiment::measurement{14.0, {}}, {}, 10);
    const std::string line = "  - bad " + llm_experiment::fmt(14.0 * 1.3, 2) + " vs good 14.00 (n 3, 3): ratio of geometric means 1.300, "
                             "90% interval [" + prune::experiment::fixed_text(std::exp(w.low)) + ", " +
                             prune::experiment::fixed_text(std::exp(w.high)) + "], " + prune::experiment::test_text(w, "ratio within 1.05") +
                             ": **falls short (more than 5% above good)**\n";
    CHECK(md.find(line) != std::string::npos);
    CHECK(md.find("reach the good one's perplexity within 5%: **partly holds**") != std::string::npos);
    CHECK(md.find("How this verdict is decided: on log perplexity over seeds") != std::string::npos);
    const auto j = llm_experiment::lottery_json(lot)["all_tickets_win"];
    CHECK(j["verdict"] == "partly holds");
    CHECK(j["comparisons"][1]["kind"] == "bad");
    CHECK(j["comparisons"][1]["ratio"].get<double>() == Approx(1.3));
    CHECK(j["comparisons"][1]["t"].get<double>() == w.t);
    CHECK(j["comparisons"][1]["df"].get<double>() == w.df);
    CHECK(j["comparisons"][1]["p"].get<double>() == w.p);
    CHECK(j["comparisons"][1]["p_equivalence"].get<double>() == w.p_equivalence);
    CHECK(llm_experiment::lottery_json(tickets(1.01, 1.3, 0.01, 1))["all_tickets_win"]["comparisons"][0]["p"].is_null());
    const std::string one = llm_experiment::lottery_markdown(tickets(1.01, 1.3, 0.01, 1), llm_experiment::measurement{14.0, {}}, {}, 10);
    CHECK(one.find("n/a") == std::string::npos);
    CHECK(one.find("ratio of geometric means 1.300, no test (fewer than two seeds a side, or no variance on both sides): "
                   "**not testable with 1 seed(s)**") != std::string::npos);
}
