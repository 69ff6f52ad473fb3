// Tests for prune/experiment/report.hpp on hand-made results whose verdicts are known:
// the findings' rules, the table's rows and numbers, the JSON, the heatmaps.
#include <prune/experiment/report.hpp>

#include <catch2/catch.hpp>

#include <cmath>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace lottery = prune::experiment;

namespace {

// One task, three seeds; scores chosen so that each finding's verdict is known by hand.
lottery::task_result make_task(const std::string& name, double m_random_refit, double s_bad_refit) {
    lottery::task_result task;
    task.name = name;
    task.majority = 0.25;
    for (int seed = 0; seed < 3; ++seed) {
        lottery::seed_result r;
        r.seed = seed;
        r.full = 0.80 + 0.01 * seed;  // 0.80, 0.81, 0.82: mean 0.81, std 0.01
        for (const std::string& method : lottery::methods) {
            r.scores[lottery::subnetwork_key(method, "good", "pruned")] = 0.75;    // >= 0.9 * 0.81 = 0.729
            r.scores[lottery::subnetwork_key(method, "random", "pruned")] = 0.40;
            r.scores[lottery::subnetwork_key(method, "bad", "pruned")] = 0.30;
        }
        r.scores["m.good.refit"] = 0.80;            // within 0.02 of full
        r.scores["m.random.refit"] = m_random_refit;
        r.scores["m.bad.refit"] = 0.60;             // falls short
        r.scores["s.good.refit"] = 0.79;
        r.scores["s.random.refit"] = 0.78;
        r.scores["s.bad.refit"] = s_bad_refit;
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

}  // namespace

TEST_CASE("findings: verdicts follow the stated rules") {
    // task a: m-random falls short (0.60 < 0.80 - 0.02), s-bad close (spread 0.01) -> both hold
    // task b: m-random close to good (0.795) -> finding 2 fails; s-bad far (0.70) -> finding 3 fails
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
    CHECK(md.find("| m-pruning, bad, re-fine-tuned | 0.600 ± 0.000 |") != std::string::npos);
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
