// Tests for prune/experiment/report.hpp on hand-made results whose verdicts are known:
// the findings' rules, the table's rows and numbers, the JSON, the heatmaps.
#include <prune/experiment/report.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lottery = prune::experiment;

namespace {

// One task, `seeds` seeds; scores chosen so that each finding's verdict is known by hand. Every
// re-fine-tuned score varies over seeds by -jitter, 0, +jitter (sample std = jitter for 3 seeds).
lottery::task_result make_task(const std::string& name, double m_random_refit, double s_bad_refit, double jitter = 0.001,
                               int seeds = 3) {
    lottery::task_result task;
    task.name = name;
    task.majority = 0.25;
    for (int seed = 0; seed < seeds; ++seed) {
        lottery::seed_result r;
        r.seed = seed;
        r.full = 0.80 + 0.01 * seed;  // 0.80, 0.81, 0.82: mean 0.81, std 0.01
        for (const std::string& method : lottery::methods) {
            r.scores[lottery::subnetwork_key(method, "good", "pruned")] = 0.75;    // >= 0.9 * 0.81 = 0.729
            r.scores[lottery::subnetwork_key(method, "random", "pruned")] = 0.40;
            r.scores[lottery::subnetwork_key(method, "bad", "pruned")] = 0.30;
        }
        const double e = jitter * (seed - 1);
        r.scores["m.good.refit"] = 0.80 + e;        // 0.01 below full: not short of it
        r.scores["m.random.refit"] = m_random_refit + e;
        r.scores["m.bad.refit"] = 0.60 + e;         // falls short
        r.scores["s.good.refit"] = 0.79 + e;
        r.scores["s.random.refit"] = 0.78 + e;
        r.scores["s.bad.refit"] = s_bad_refit + e;
        r.heads = prune::group_mask::uniform(2, 4);
        r.heads.set(0, seed % 4, false);
        r.mlps = prune::group_mask::uniform(2, 1);
        r.mlps.set(1, 0, seed == 0);
        r.prunable_weights = 1000;
        r.pruned_weights["good"] = 400;
        r.m_sparsity = {{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {0.6, 0.5, 0.4, 0.3, 0.2, 0.1}};
        task.seeds.push_back(r);
    }
    return task;
}

/// The comparison of a finding on a task between `reference` and `other`.
const lottery::comparison& find(const lottery::finding& f, const std::string& task, const std::string& reference,
                                const std::string& other) {
    const auto it = std::find_if(f.comparisons.begin(), f.comparisons.end(), [&](const lottery::comparison& c) {
        return c.task == task && c.reference == reference && c.other == other;
    });
    INFO(reference << " vs " << other << " on " << task);
    REQUIRE(it != f.comparisons.end());
    return *it;
}

}  // namespace

TEST_CASE("findings: verdicts follow the stated rules") {
    // task a: m-random falls short (0.60 vs 0.80, std 0.001), s-bad alike (0.78 vs 0.79) -> both hold
    // task b: m-random alike with good (0.795) -> finding 2 fails; s-bad short (0.70) -> finding 3 fails
    const std::vector<lottery::task_result> tasks = {make_task("a", 0.60, 0.78), make_task("b", 0.795, 0.70)};
    const auto findings = lottery::evaluate_findings(tasks);
    REQUIRE(findings.size() == 3);
    CHECK(findings[0].verdict == "holds");
    CHECK(findings[1].verdict == "partly holds");
    CHECK(findings[2].verdict == "partly holds");
    const auto only_a = lottery::evaluate_findings({make_task("a", 0.60, 0.78)});
    CHECK(only_a[1].verdict == "holds");
    CHECK(only_a[2].verdict == "holds");
    const auto only_b = lottery::evaluate_findings({make_task("b", 0.795, 0.70)});
    CHECK(only_b[1].verdict == "does not hold");
    CHECK(only_b[2].verdict == "does not hold");
}

TEST_CASE("findings: the same means flip with the seeds' spread between falls short, alike and undecided") {
    // spread 0.001: random (0.75) falls short of good (0.80), s-bad (0.785) alike -> both hold
    auto tight = make_task("t", 0.75, 0.785, 0.001);
    const auto tight_findings = lottery::evaluate_findings({tight});
    CHECK(find(tight_findings[1], "t", "good", "random").result == "random falls short");
    CHECK(find(tight_findings[1], "t", "full", "good").result != "good falls short");
    CHECK(find(tight_findings[2], "t", "random", "bad").result == "alike");
    CHECK(tight_findings[1].verdict == "holds");
    CHECK(tight_findings[2].verdict == "holds");
    // spread 0.05: the same means no longer tell either way
    const auto loose = lottery::evaluate_findings({make_task("l", 0.75, 0.785, 0.05)});
    CHECK(find(loose[1], "l", "good", "random").result == "undecided");
    CHECK(find(loose[2], "l", "good", "bad").result == "undecided");
    CHECK(loose[1].verdict == "undecided");
    CHECK(loose[2].verdict == "undecided");
    CHECK(loose[1].evidence.find("- l: undecided\n") != std::string::npos);
    // a task that says yes and one undecided: partly holds
    CHECK(lottery::evaluate_findings({tight, make_task("l", 0.75, 0.785, 0.05)})[2].verdict == "partly holds");
    // good re-fine-tuned 0.11 below the full model: it falls short, so finding 2 fails
    for (auto& seed : tight.seeds) {
        seed.scores["m.good.refit"] -= 0.11;
        seed.scores["m.random.refit"] -= 0.11;
        seed.scores["m.bad.refit"] -= 0.11;
    }
    const auto short_good = lottery::evaluate_findings({tight});
    CHECK(find(short_good[1], "t", "full", "good").result == "good falls short");
    CHECK(find(short_good[1], "t", "good", "random").result == "random falls short");
    CHECK(short_good[1].verdict == "does not hold");
    // one seed: no test
    const auto single = lottery::evaluate_findings({make_task("s", 0.60, 0.78, 0.001, 1)});
    CHECK(find(single[1], "s", "good", "random").result == "not testable with 1 seed(s)");
    CHECK(single[1].verdict == "not testable with 1 seed(s)");
    CHECK(single[2].verdict == "not testable with 1 seed(s)");
    // no spread at all in the re-fine-tuned scores: no test either (but full vs good: full varies)
    const auto flat = lottery::evaluate_findings({make_task("f", 0.60, 0.78, 0.0)});
    CHECK(flat[2].verdict == "not testable with 3 seed(s)");
    CHECK(find(flat[1], "f", "good", "random").result == "not testable with 3 seed(s)");
    CHECK(flat[1].verdict == "undecided");
}

TEST_CASE("the evidence prints the numbers behind each verdict: means, n, difference, interval, t, df, p") {
    const std::vector<lottery::task_result> tasks = {make_task("a", 0.75, 0.785, 0.01)};
    const auto findings = lottery::evaluate_findings(tasks);
    // the same test by stats.hpp's welch (tested against scipy in test_stats.cpp)
    const lottery::welch_test w =
        lottery::welch(lottery::seed_values(tasks[0], "m.good.refit"), lottery::seed_values(tasks[0], "m.random.refit"), 0.02);
    const lottery::comparison& c = find(findings[1], "a", "good", "random");
    CHECK(c.test.t == w.t);
    CHECK(c.test.p == w.p);
    const std::string line = "  - random 0.750 vs good 0.800 (n 3, 3): difference good − random 0.050, 90% interval [" +
                             lottery::detail::number(w.low) + ", " + lottery::detail::number(w.high) + "], Welch t " +
                             lottery::detail::number(w.t, 2) + ", df " + lottery::detail::number(w.df, 1) + ", p " +
                             lottery::p_text(w.p) + "; equivalence (±0.020) p " +
                             lottery::p_text(w.p_equivalence) + ": **random falls short**\n";
    CHECK(findings[1].evidence.find(line) != std::string::npos);
    const std::string md = lottery::markdown(tasks, {}, findings, 1.0);
    CHECK(md.find(line) != std::string::npos);
    CHECK(md.find("How the verdicts are decided: findings 2 and 3 compare subnetworks over seeds") != std::string::npos);
    const nlohmann::json json = lottery::to_json(tasks, {}, findings, 1.0);
    const nlohmann::json& j = json["findings"][1]["comparisons"][1];
    CHECK(j["reference"] == "good");
    CHECK(j["other"] == "random");
    CHECK(j["n_reference"] == 3);
    CHECK(j["mean_other"].get<double>() == Approx(0.75));
    CHECK(j["difference"].get<double>() == Approx(0.05));
    CHECK(j["t"].get<double>() == w.t);
    CHECK(j["df"].get<double>() == w.df);
    CHECK(j["p"].get<double>() == w.p);
    CHECK(j["interval90"][0].get<double>() == w.low);
    CHECK(j["p_equivalence"].get<double>() == w.p_equivalence);
    CHECK(j["result"] == "random falls short");
    CHECK(json["findings"][2]["comparisons"].size() == 3);
    // without a test the numbers are null, not NaN
    const nlohmann::json single = lottery::to_json({make_task("s", 0.6, 0.78, 0.0, 1)}, {}, lottery::evaluate_findings({make_task("s", 0.6, 0.78, 0.0, 1)}), 1.0);
    CHECK(single["findings"][1]["comparisons"][0]["p"].is_null());
    CHECK(single["findings"][1]["comparisons"][0]["testable"] == false);
    // ... and report.md says why instead of printing placeholders
    const auto one_seed = make_task("s", 0.6, 0.78, 0.0, 1);
    const std::string one_md = lottery::markdown({one_seed}, {}, lottery::evaluate_findings({one_seed}), 1.0);
    CHECK(one_md.find("n/a") == std::string::npos);
    CHECK(one_md.find("  - random 0.600 vs good 0.800 (n 1, 1): difference good − random 0.200, no test (fewer than two "
                      "seeds a side, or no variance on both sides): **not testable with 1 seed(s)**\n") != std::string::npos);
}

TEST_CASE("report.md has every row of the paper's table with the run's numbers") {
    const std::vector<lottery::task_result> tasks = {make_task("a", 0.60, 0.78)};
    const std::string md = lottery::markdown(tasks, {}, lottery::evaluate_findings(tasks), 90.0);
    CHECK(md.find("| majority baseline | 0.250 |") != std::string::npos);
    CHECK(md.find("| full model | 0.810 ± 0.010 |") != std::string::npos);
    for (const std::string& method : lottery::methods) {
        for (const std::string& variant : lottery::variants) {
            CHECK(md.find("| " + method + "-pruning, " + variant + ", pruned |") != std::string::npos);
            CHECK(md.find("| " + method + "-pruning, " + variant + ", re-fine-tuned |") != std::string::npos);
        }
    }
    CHECK(md.find("| m-pruning, bad, re-fine-tuned | 0.600 ± 0.001 |") != std::string::npos);
    CHECK(md.find("7.0 ± 0.0 of 8") != std::string::npos);  // one head pruned per seed
    CHECK(md.find("40.0% ± 0.0") != std::string::npos);
    CHECK(md.find("n/a") == std::string::npos);  // no placeholder where every number exists
    CHECK(md.find("Warning") == std::string::npos);  // the full model beats the majority baseline
}

TEST_CASE("report.md warns when the full model learned nothing") {
    auto task = make_task("flat", 0.60, 0.78);
    task.majority = 0.80;  // the full model's 0.81 is within 0.02 of it
    const std::string md = lottery::markdown({task}, {}, lottery::evaluate_findings({task}), 1.0);
    CHECK(md.find("Warning: on flat the full model") != std::string::npos);
}

TEST_CASE("report.md says when m-pruning stopped at its step limit rather than at the threshold") {
    auto task = make_task("a", 0.60, 0.78);
    CHECK(lottery::markdown({task}, {}, lottery::evaluate_findings({task}), 1.0).find("step limit") == std::string::npos);
    // seed 0: the 2nd step failed (stopped at the threshold); seeds 1 and 2: the 10th step still passed
    task.seeds[0].m_history = {{0, 0.0, 0.81, true}, {1, 0.1, 0.80, true}, {2, 0.19, 0.50, false}};
    for (int s = 1; s < 3; ++s) {
        for (int k = 0; k <= 10; ++k) {
            task.seeds[static_cast<std::size_t>(s)].m_history.push_back({k, 1.0 - std::pow(0.9, k), 0.8, true});
        }
    }
    const std::string md = lottery::markdown({task}, {}, lottery::evaluate_findings({task}), 1.0);
    CHECK(md.find("step limit with the dev score still above the threshold in 2 of 3 runs (at 65.1% sparsity") !=
          std::string::npos);
}

TEST_CASE("heatmaps: head survival per task and overall, MLPs, m-sparsity") {
    const std::vector<lottery::task_result> tasks = {make_task("a", 0.60, 0.78)};
    const auto maps = lottery::heatmaps(tasks);
    REQUIRE(maps.size() == 4);
    CHECK(maps[0].first == "heads-a");
    // seeds prune head 0, 1, 2 of layer 0 once each: head 0 kept by 2 of 3 seeds
    CHECK(maps[0].second.values[0][0] == Approx(2.0 / 3.0));
    CHECK(maps[0].second.values[0][3] == Approx(1.0));
    CHECK(maps[1].first == "heads-all");
    CHECK(maps[2].first == "mlps");
    CHECK(maps[2].second.values[0][1] == Approx(1.0 / 3.0));  // layer 1 MLP kept only by seed 0
    CHECK(maps[3].first == "m-sparsity-a");
    CHECK(maps[3].second.values[1][0] == Approx(0.6));
}

TEST_CASE("write_report writes report.md, report.json and the SVGs") {
    const auto dir = std::filesystem::temp_directory_path() / "prune_test_lottery_report";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    lottery::write_report(dir, {make_task("a", 0.60, 0.78)}, {{"seeds", 3}}, 12.5);
    for (const char* file : {"report.md", "report.json", "heads-a.svg", "heads-all.svg", "mlps.svg", "m-sparsity-a.svg"}) {
        CHECK(std::filesystem::file_size(dir / file) > 0);
    }
    std::ifstream in(dir / "report.json");
    const auto json = nlohmann::json::parse(in);
    CHECK(json["configuration"]["seeds"] == 3);
    CHECK(json["tasks"][0]["seeds"].size() == 3);
    CHECK(json["tasks"][0]["summary"]["full"]["mean"].get<double>() == Approx(0.81));
    CHECK(json["findings"].size() == 3);
    std::filesystem::remove_all(dir);
}
