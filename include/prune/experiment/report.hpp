// prune/experiment/report.hpp: turns the lottery experiment's results into its outputs:
// report.md (the paper's table, surviving structure, sparsity, seed stability, and one
// plain paragraph per finding of the paper saying whether this run reproduces it, with the
// Welch and equivalence tests over seeds behind each verdict: prune/experiment/stats.hpp),
// report.json (every number, the configuration and the seeds) and SVG heatmaps.
// Everything is written into a directory the caller stages (prune::io::output_directory).
#pragma once

#include <prune/experiment/results.hpp>
#include <prune/experiment/stats.hpp>

#include <prune/heatmap.hpp>
#include <prune/stability.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace prune::experiment {

/// The rules of the findings, stated in the report.
struct finding_rules {
    double keep_ratio = 0.9;  ///< pruned good must keep this fraction of the full score
    double close = 0.02;      ///< the margin delta: "alike" within +-delta, "falls short" by more
};

/// One comparison of two subnetworks' scores over seeds behind a verdict.
struct comparison {
    std::string task;       ///< task name
    std::string reference;  ///< the first subnetwork ("full", "good", ...)
    std::string other;      ///< the second
    welch_test test;        ///< of reference - other
    std::string result;     ///< "alike", "<other> falls short", "undecided", "not testable with n seeds", ...
};

/// One finding of the paper and whether this run reproduces it.
struct finding {
    std::string claim;     ///< what the paper found
    std::string verdict;   ///< "holds", "partly holds", "does not hold", "undecided", "not testable with n seed(s)"
    std::string evidence;  ///< the numbers behind the verdict, per task
    std::vector<comparison> comparisons;  ///< the tests behind the verdict (findings 2 and 3)
};

namespace detail {
inline std::string number(double value, int decimals = 3) { return fixed_text(value, decimals); }
inline std::string mean_std(const summary& s) {
    if (s.n == 0) {
        return "n/a";
    }
    return number(s.mean) + " ± " + number(s.std);
}
inline const char* yes_no(bool value) { return value ? "yes" : "no"; }

/// Compares two subnetworks of a task over seeds: Welch's t-test and the equivalence test.
inline comparison compare(const task_result& task, const std::string& reference, const std::string& reference_key,
                          const std::string& other, const std::string& other_key, const finding_rules& rules) {
    comparison c{task.name, reference, other,
                 welch(seed_values(task, reference_key), seed_values(task, other_key), rules.close), {}};
    const std::string what = outcome(c.test);
    if (what == "not testable") {
        c.result = "not testable with " + std::to_string(std::min(c.test.a.n, c.test.b.n)) + " seed(s)";
    } else if (what == "above") {
        c.result = other + " falls short";
    } else if (what == "below") {
        c.result = reference + " falls short";
    } else {
        c.result = what;
    }
    return c;
}

/// One evidence line: the means, n, difference, interval, t, df, p, TOST p and the result.
inline std::string evidence_line(const comparison& c) {
    const welch_test& w = c.test;
    return "  - " + c.other + " " + number(w.b.mean) + " vs " + c.reference + " " + number(w.a.mean) + " (n " +
           std::to_string(w.b.n) + ", " + std::to_string(w.a.n) + "): difference " + c.reference + " − " + c.other +
           " " + number(w.difference) + ", " +
           (w.testable ? "90% interval [" + number(w.low) + ", " + number(w.high) + "], " : std::string()) +
           test_text(w, "±" + number(w.margin)) + ": **" + c.result + "**\n";
}

/// The verdict of the tasks' answers (stats.hpp's verdict_of), or "not testable with n seed(s)"
/// when no comparison had a test.
inline std::string verdict_of(const tally& t, const std::vector<comparison>& comparisons) {
    const bool any_testable = std::any_of(comparisons.begin(), comparisons.end(),
                                          [](const comparison& c) { return c.test.testable; });
    if (!comparisons.empty() && !any_testable) {
        std::size_t n = comparisons.front().test.a.n;
        for (const comparison& c : comparisons) {
            n = std::min({n, c.test.a.n, c.test.b.n});
        }
        return "not testable with " + std::to_string(n) + " seed(s)";
    }
    return prune::experiment::verdict_of(t);
}
}  // namespace detail

/// The rule of the verdicts, as report.md states it.
inline std::string rules_text(const finding_rules& rules) {
    const std::string delta = detail::number(rules.close);
    return "How the verdicts are decided: findings 2 and 3 compare subnetworks over seeds, each pair with "
           "Welch's t-test (unequal variances, Welch-Satterthwaite degrees of freedom, two-sided p) and the "
           "equivalence test TOST (two one-sided Welch tests against a margin of ±" + delta + " absolute, about "
           "one seed's sampling noise on a 500-row dev set), both at the 5% level. A pair is **alike** when TOST "
           "p < 0.05 (the 90% interval of the difference lies within ±" + delta + "); one **falls short** when it "
           "is below the other by more than " + delta + " with Welch p < 0.05; anything else is **undecided** "
           "(too few seeds or too much spread to tell); with fewer than two seeds a side, or no variance on both "
           "sides, there is no test (\"not testable\"). Finding 2 is yes on a task when random and bad both fall "
           "short of good and good does not fall short of the full model; no when good falls short of full, or "
           "random or bad is alike with good or above it. Finding 3 is yes when each pair of good, random and bad "
           "is alike; no when one falls short of another. Otherwise a task is undecided. A finding holds when "
           "every task says yes, partly holds when some do, does not hold when none do and some say no, and is "
           "undecided when every task is.\n";
}

/// Evaluates the paper's three findings on the results.
inline std::vector<finding> evaluate_findings(const std::vector<task_result>& tasks, const finding_rules& rules = {}) {
    std::vector<finding> findings;
    {
        finding f;
        f.claim = "Pruned \"good\" subnetworks keep at least " + detail::number(rules.keep_ratio * 100, 0) +
                  "% of the full model's dev score without retraining (by construction of the search).";
        tally answers;
        for (const task_result& task : tasks) {
            const summary full = summarise(seed_values(task, "full"));
            for (const std::string& method : methods) {
                const summary good = summarise(seed_values(task, subnetwork_key(method, "good", "pruned")));
                const bool ok = good.mean >= rules.keep_ratio * full.mean - 1e-12;
                answers.add(ok ? "yes" : "no");
                f.evidence += "- " + task.name + ", " + method + "-pruning: pruned good " + detail::number(good.mean) +
                              " vs " + detail::number(rules.keep_ratio) + " x full " + detail::number(full.mean) +
                              " = " + detail::number(rules.keep_ratio * full.mean) + ": " + detail::yes_no(ok) + "\n";
            }
        }
        f.verdict = detail::verdict_of(answers, {});
        findings.push_back(f);
    }
    {
        finding f;
        f.claim = "Re-fine-tuned m-pruning \"good\" subnetworks reach the full model's score, while the random and "
                  "\"bad\" ones of the same size fall clearly short.";
        tally answers;
        for (const task_result& task : tasks) {
            const comparison full = detail::compare(task, "full", "full", "good", "m.good.refit", rules);
            const comparison random = detail::compare(task, "good", "m.good.refit", "random", "m.random.refit", rules);
            const comparison bad = detail::compare(task, "good", "m.good.refit", "bad", "m.bad.refit", rules);
            // against: good short of full, or random or bad alike with good or above it
            auto against = [](const comparison& c) { return c.result == "alike" || c.result == "good falls short"; };
            const bool shown = full.test.testable && random.result == "random falls short" && bad.result == "bad falls short";
            const std::string answer = full.result == "good falls short" || against(random) || against(bad) ? "no"
                                       : shown                                                          ? "yes"
                                                                                                        : "undecided";
            f.evidence += "- " + task.name + ": " + answers.add(answer) + "\n" + detail::evidence_line(full) +
                          detail::evidence_line(random) + detail::evidence_line(bad);
            f.comparisons.insert(f.comparisons.end(), {full, random, bad});
        }
        f.verdict = detail::verdict_of(answers, f.comparisons);
        findings.push_back(f);
    }
    {
        finding f;
        f.claim = "Re-fine-tuned s-pruning subnetworks score alike whether they are \"good\", random or \"bad\" "
                  "(all tickets are winning).";
        tally answers;
        for (const task_result& task : tasks) {
            const comparison pairs[] = {
                detail::compare(task, "good", "s.good.refit", "random", "s.random.refit", rules),
                detail::compare(task, "good", "s.good.refit", "bad", "s.bad.refit", rules),
                detail::compare(task, "random", "s.random.refit", "bad", "s.bad.refit", rules)};
            const auto alike = std::count_if(std::begin(pairs), std::end(pairs),
                                             [](const comparison& c) { return c.result == "alike"; });
            const bool short_of = std::any_of(std::begin(pairs), std::end(pairs), [](const comparison& c) {
                return outcome(c.test) == "above" || outcome(c.test) == "below";
            });
            const std::string answer = alike == 3 ? "yes" : short_of ? "no" : "undecided";
            f.evidence += "- " + task.name + ": " + answers.add(answer) + "\n";
            for (const comparison& c : pairs) {
                f.evidence += detail::evidence_line(c);
                f.comparisons.push_back(c);
            }
        }
        f.verdict = detail::verdict_of(answers, f.comparisons);
        findings.push_back(f);
    }
    return findings;
}

/// The fraction of the given runs that keep each group (NaN-free; ragged layouts allowed).
inline std::vector<std::vector<double>> survival(const std::vector<const prune::group_mask*>& runs) {
    std::vector<std::vector<double>> fraction;
    if (runs.empty()) {
        return fraction;
    }
    const prune::group_mask& first = *runs.front();
    fraction.resize(first.layers());
    for (std::size_t l = 0; l < first.layers(); ++l) {
        fraction[l].assign(first.groups(l), 0.0);
        for (const prune::group_mask* run : runs) {
            for (std::size_t g = 0; g < first.groups(l); ++g) {
                fraction[l][g] += run->kept(l, g) ? 1.0 / static_cast<double>(runs.size()) : 0.0;
            }
        }
    }
    return fraction;
}

/// Seed stability of the s-good head masks of a task: Krippendorff's alpha (NaN if undefined).
inline double head_alpha(const task_result& task) {
    std::vector<prune::group_mask> masks;
    for (const seed_result& seed : task.seeds) {
        masks.push_back(seed.heads);
    }
    return masks.size() < 2 ? std::nan("") : prune::mask_agreement(masks);
}

namespace detail {
inline std::vector<std::string> numbered(const std::string& prefix, std::size_t n) {
    std::vector<std::string> labels;
    for (std::size_t i = 0; i < n; ++i) {
        labels.push_back(prefix + std::to_string(i));
    }
    return labels;
}
inline std::size_t widest(const std::vector<std::vector<double>>& rows) {
    std::size_t width = 0;
    for (const auto& row : rows) {
        width = std::max(width, row.size());
    }
    return width;
}
inline void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    if (!out) {
        throw prune::io_error("cannot write " + path.string());
    }
}
inline nlohmann::json history_json(const std::vector<history_step>& history) {
    nlohmann::json rows = nlohmann::json::array();
    for (const history_step& h : history) {
        rows.push_back({{"step", h.step}, {"sparsity", h.sparsity}, {"metric", h.metric}, {"passed", h.passed}});
    }
    return rows;
}
/// A number, or null when it does not exist (NaN).
inline nlohmann::json number_or_null(double value) {
    return std::isnan(value) ? nlohmann::json(nullptr) : nlohmann::json(value);
}
inline nlohmann::json comparison_json(const comparison& c) {
    const welch_test& w = c.test;
    return {{"task", c.task}, {"reference", c.reference}, {"other", c.other},
            {"n_reference", w.a.n}, {"n_other", w.b.n},
            {"mean_reference", number_or_null(w.a.mean)}, {"mean_other", number_or_null(w.b.mean)},
            {"std_reference", w.a.std}, {"std_other", w.b.std},
            {"difference", number_or_null(w.difference)}, {"testable", w.testable},
            {"t", number_or_null(w.t)}, {"df", number_or_null(w.df)}, {"p", number_or_null(w.p)},
            {"interval90", {number_or_null(w.low), number_or_null(w.high)}},
            {"margin", w.margin}, {"p_equivalence", number_or_null(w.p_equivalence)}, {"result", c.result}};
}
}  // namespace detail

/// The heatmaps of a run: name (file stem) -> heatmap.
inline std::vector<std::pair<std::string, prune::heatmap>> heatmaps(const std::vector<task_result>& tasks) {
    std::vector<std::pair<std::string, prune::heatmap>> maps;
    std::vector<const prune::group_mask*> all_heads;
    for (const task_result& task : tasks) {
        std::vector<const prune::group_mask*> heads;
        for (const seed_result& seed : task.seeds) {
            heads.push_back(&seed.heads);
            all_heads.push_back(&seed.heads);
        }
        prune::heatmap map;
        map.title = "Heads kept by s-pruning, " + task.name + " (" + std::to_string(task.seeds.size()) + " seeds)";
        map.values = survival(heads);
        map.row_labels = detail::numbered("layer ", map.values.size());
        map.column_labels = detail::numbered("head ", detail::widest(map.values));
        map.legend = "fraction of seeds";
        maps.emplace_back("heads-" + task.name, map);
    }
    if (!all_heads.empty()) {
        prune::heatmap map;
        map.title = "Heads kept by s-pruning, all tasks and seeds (" + std::to_string(all_heads.size()) + " runs)";
        map.values = survival(all_heads);
        map.row_labels = detail::numbered("layer ", map.values.size());
        map.column_labels = detail::numbered("head ", detail::widest(map.values));
        map.legend = "fraction of runs";
        maps.emplace_back("heads-all", map);
    }
    {
        prune::heatmap map;
        map.title = "MLPs kept by s-pruning (fraction of seeds)";
        map.legend = "fraction of seeds";
        for (const task_result& task : tasks) {
            std::vector<const prune::group_mask*> mlps;
            for (const seed_result& seed : task.seeds) {
                mlps.push_back(&seed.mlps);
            }
            std::vector<double> row;
            for (const auto& layer : survival(mlps)) {
                row.push_back(layer.empty() ? std::nan("") : layer.front());
            }
            map.row_labels.push_back(task.name);
            map.values.push_back(row);
        }
        map.column_labels = detail::numbered("layer ", detail::widest(map.values));
        maps.emplace_back("mlps", map);
    }
    for (const task_result& task : tasks) {
        prune::heatmap map;
        map.title = "Weights pruned by m-pruning, " + task.name + " (mean over seeds)";
        map.legend = "fraction pruned";
        map.column_labels = layer_matrices;
        std::size_t layers = 0;
        for (const seed_result& seed : task.seeds) {
            layers = std::max(layers, seed.m_sparsity.size());
        }
        map.values.assign(layers, std::vector<double>(layer_matrices.size(), 0.0));
        for (std::size_t l = 0; l < layers; ++l) {
            for (std::size_t m = 0; m < layer_matrices.size(); ++m) {
                std::vector<double> values;
                for (const seed_result& seed : task.seeds) {
                    if (l < seed.m_sparsity.size() && m < seed.m_sparsity[l].size()) {
                        values.push_back(seed.m_sparsity[l][m]);
                    }
                }
                map.values[l][m] = summarise(values).mean;
            }
        }
        map.row_labels = detail::numbered("layer ", layers);
        maps.emplace_back("m-sparsity-" + task.name, map);
    }
    return maps;
}

/// The configuration's m-pruning step limit as text ("10" when it does not say).
inline std::string max_steps_text(const nlohmann::json& configuration) {
    const auto it = configuration.find("m_max_steps");
    return it != configuration.end() && it->is_number_unsigned() ? std::to_string(it->get<std::size_t>()) : std::string("10");
}

/// report.md: the table, structure and sparsity, stability, findings.
inline std::string markdown(const std::vector<task_result>& tasks, const nlohmann::json& configuration,
                            const std::vector<finding>& findings, double wall_seconds) {
    using detail::mean_std;
    std::string md = "# When BERT plays the lottery: this run\n\n";
    md += "Tasks: " + std::to_string(tasks.size()) + "; seeds per task: " +
          std::to_string(tasks.empty() ? 0 : tasks.front().seeds.size()) + "; wall time " +
          detail::number(wall_seconds / 60.0, 1) + " min. Scores are dev-set " +
          "metrics, mean ± sample std over seeds. Configuration: `report.json`.\n\n";
    md += "## Dev scores\n\n| subnetwork |";
    for (const task_result& task : tasks) {
        md += " " + task.name + " (" + task.metric + ") |";
    }
    md += "\n|---|";
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        md += "---|";
    }
    md += "\n| majority baseline |";
    for (const task_result& task : tasks) {
        md += " " + detail::number(task.majority) + " |";
    }
    md += "\n| full model |";
    for (const task_result& task : tasks) {
        md += " " + mean_std(summarise(seed_values(task, "full"))) + " |";
    }
    md += "\n";
    for (const std::string& method : methods) {
        for (const std::string& variant : variants) {
            for (const std::string& stage : stages) {
                md += "| " + method + "-pruning, " + variant + ", " +
                      (stage == "pruned" ? "pruned" : "re-fine-tuned") + " |";
                for (const task_result& task : tasks) {
                    md += " " + mean_std(summarise(seed_values(task, subnetwork_key(method, variant, stage)))) + " |";
                }
                md += "\n";
            }
        }
    }
    md += "\n## What survives\n\n| task | heads kept (s-good) | MLPs kept (s-good) | weights pruned (m-good) | "
          "head-mask agreement over seeds (Krippendorff's alpha) |\n|---|---|---|---|---|\n";
    for (const task_result& task : tasks) {
        std::vector<double> heads, mlps, sparsity;
        std::size_t total_heads = 0, total_mlps = 0;
        for (const seed_result& seed : task.seeds) {
            heads.push_back(static_cast<double>(seed.heads.count_kept()));
            mlps.push_back(static_cast<double>(seed.mlps.count_kept()));
            total_heads = seed.heads.total();
            total_mlps = seed.mlps.total();
            if (seed.prunable_weights > 0 && seed.pruned_weights.count("good")) {
                sparsity.push_back(static_cast<double>(seed.pruned_weights.at("good")) /
                                   static_cast<double>(seed.prunable_weights));
            }
        }
        const summary h = summarise(heads), m = summarise(mlps), s = summarise(sparsity);
        md += "| " + task.name + " | " + detail::number(h.mean, 1) + " ± " + detail::number(h.std, 1) + " of " +
              std::to_string(total_heads) + " | " + detail::number(m.mean, 1) + " ± " + detail::number(m.std, 1) +
              " of " + std::to_string(total_mlps) + " | " + detail::number(100 * s.mean, 1) + "% ± " +
              detail::number(100 * s.std, 1) + " | " +
              (std::isnan(head_alpha(task)) ? std::string("undefined (every seed made the same choice for every head)")
                                            : detail::number(head_alpha(task))) +
              " |\n";
    }
    // m-pruning runs whose last step still passed stopped at the step limit, not at the threshold
    std::size_t capped = 0, runs = 0;
    double capped_sparsity = 0.0;
    for (const task_result& task : tasks) {
        for (const seed_result& seed : task.seeds) {
            ++runs;
            if (!seed.m_history.empty() && seed.m_history.back().passed) {
                ++capped;
                capped_sparsity = std::max(capped_sparsity, seed.m_history.back().sparsity);
            }
        }
    }
    if (capped > 0) {
        md += "\nm-pruning stopped at its step limit with the dev score still above the threshold in " +
              std::to_string(capped) + " of " + std::to_string(runs) + " runs (at " +
              detail::number(100 * capped_sparsity, 1) +
              "% sparsity; the limit: at most " + max_steps_text(configuration) +
              " steps, the paper's 10; `--max-steps` raises it): those good m-subnetworks might be sparser still.\n";
    }
    md += "\nHeatmaps: `heads-<task>.svg`, `heads-all.svg`, `mlps.svg`, `m-sparsity-<task>.svg`.\n\n";
    md += "## Findings of the paper, checked on this run\n\n";
    for (const task_result& task : tasks) {
        const summary full = summarise(seed_values(task, "full"));
        if (!(full.mean > task.majority + finding_rules{}.close)) {
            md += "**Warning: on " + task.name + " the full model (" + detail::number(full.mean) +
                  ") does not beat the majority baseline (" + detail::number(task.majority) +
                  ") by more than " + detail::number(finding_rules{}.close) +
                  ": it learned nothing, so pruning it says nothing, and the findings below are not evidence "
                  "for this task.** Train longer or on more data (see --help).\n\n";
        }
    }
    for (const finding& f : findings) {
        md += "**" + f.claim + "** This run: **" + f.verdict + "**.\n\n" + f.evidence + "\n";
    }
    md += rules_text(finding_rules{});
    return md;
}

/// report.json: every number, the configuration and the seeds.
inline nlohmann::json to_json(const std::vector<task_result>& tasks, const nlohmann::json& configuration,
                              const std::vector<finding>& findings, double wall_seconds) {
    nlohmann::json root;
    root["configuration"] = configuration;
    root["wall_seconds"] = wall_seconds;
    root["tasks"] = nlohmann::json::array();
    for (const task_result& task : tasks) {
        nlohmann::json t;
        t["name"] = task.name;
        t["metric"] = task.metric;
        t["majority"] = task.majority;
        t["train_size"] = task.train_size;
        t["dev_size"] = task.dev_size;
        t["head_alpha"] = detail::number_or_null(head_alpha(task));
        t["seeds"] = nlohmann::json::array();
        for (const seed_result& seed : task.seeds) {
            nlohmann::json s;
            s["seed"] = seed.seed;
            s["full"] = seed.full;
            s["scores"] = seed.scores;
            s["heads"] = seed.heads.to_rows();
            std::vector<int> mlps;
            for (const auto& row : seed.mlps.to_rows()) {
                mlps.push_back(row.empty() ? 0 : row.front());
            }
            s["mlps"] = mlps;
            s["kept_heads"] = seed.kept_heads;
            s["kept_mlps"] = seed.kept_mlps;
            s["pruned_weights"] = seed.pruned_weights;
            s["prunable_weights"] = seed.prunable_weights;
            s["m_sparsity"] = seed.m_sparsity;
            s["s_history"] = detail::history_json(seed.s_history);
            s["m_history"] = detail::history_json(seed.m_history);
            s["refit_m_zeros_held"] = seed.refit_m_zeros_held;
            s["seconds"] = seed.seconds;
            t["seeds"].push_back(s);
        }
        nlohmann::json summary_json;
        for (const std::string key : {"full"}) {
            const summary x = summarise(seed_values(task, key));
            summary_json[key] = {{"mean", x.mean}, {"std", x.std}, {"n", x.n}};
        }
        for (const std::string& method : methods) {
            for (const std::string& variant : variants) {
                for (const std::string& stage : stages) {
                    const std::string key = subnetwork_key(method, variant, stage);
                    const summary x = summarise(seed_values(task, key));
                    summary_json[key] = {{"mean", x.mean}, {"std", x.std}, {"n", x.n}};
                }
            }
        }
        t["summary"] = summary_json;
        root["tasks"].push_back(t);
    }
    root["findings"] = nlohmann::json::array();
    for (const finding& f : findings) {
        nlohmann::json tests = nlohmann::json::array();
        for (const comparison& c : f.comparisons) {
            tests.push_back(detail::comparison_json(c));
        }
        root["findings"].push_back(
            {{"claim", f.claim}, {"verdict", f.verdict}, {"evidence", f.evidence}, {"comparisons", tests}});
    }
    return root;
}

/// Writes report.md, report.json and every heatmap SVG into `directory`.
inline void write_report(const std::filesystem::path& directory, const std::vector<task_result>& tasks,
                         const nlohmann::json& configuration, double wall_seconds) {
    const std::vector<finding> findings = evaluate_findings(tasks);
    detail::write_text(directory / "report.md", markdown(tasks, configuration, findings, wall_seconds));
    detail::write_text(directory / "report.json", to_json(tasks, configuration, findings, wall_seconds).dump(2) + "\n");
    for (const auto& [name, map] : heatmaps(tasks)) {
        detail::write_text(directory / (name + ".svg"), prune::to_svg(map));
    }
}

}  // namespace prune::experiment
