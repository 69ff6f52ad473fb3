// examples/llm/report.hpp: prune-llm's outputs -- report.json (settings, the full model's
// measurements, every curve point), report.md (tables and verdicts with the numbers behind
// them) and the SVG line charts (one per family of methods and measure).
#pragma once

#include "llm/curves.hpp"
#include "llm/lottery.hpp"

#include <prune/experiment/stats.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/masks.hpp>
#include <prune/heatmap.hpp>
#include <prune/line_chart.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace llm_experiment {

/// The x axis caption of a family.
inline std::string x_caption(const std::string& family) {
    if (family == "unstructured") return "sparsity of the linears (N:M at 1 - N/M)";
    if (family == "heads") return "fraction of query heads removed";
    if (family == "channels") return "fraction of MLP channels removed";
    return "fraction of layers removed";
}

/// The probe groups the full model answers beyond its prior (interval of the gain above 0).
inline std::vector<std::string> informative_groups(const measurement& full) {
    std::vector<std::string> out;
    for (const auto& g : probe_groups()) {
        const auto it = full.probes.find(g);
        if (it != full.probes.end() && it->second.gain_low > 0.0) out.push_back(g);
    }
    return out;
}

/// One chart: a measure of every method of a family (N:M points left out of the lines).
inline prune::line_chart chart(const std::vector<point>& points, const measurement& full, const std::string& family,
                               const std::string& measure_name) {
    prune::line_chart c;
    const bool ppl = measure_name == "perplexity";
    c.title = family + ": " + (ppl ? "held-out perplexity" : measure_name + " probe accuracy (with context)");
    c.x_label = x_caption(family);
    c.y_label = ppl ? "perplexity" : "accuracy";
    c.log_y = ppl;
    auto value = [&](const measurement& m) { return ppl ? m.perplexity : m.probes.at(measure_name).accuracy; };
    std::map<std::string, prune::line_series> by_method;
    std::vector<std::string> order;
    for (const auto& p : points) {
        if (p.family != family || p.label.find(':') != std::string::npos) continue;
        if (by_method.count(p.method) == 0) {
            order.push_back(p.method);
            by_method[p.method].name = p.method;
            by_method[p.method].points.emplace_back(0.0, value(full));
        }
        by_method[p.method].points.emplace_back(p.x, value(p.m));
    }
    for (const auto& m : order) c.series.push_back(by_method[m]);
    c.references.emplace_back("full model", value(full));
    if (!ppl) {
        c.references.emplace_back("chance", full.probes.at(measure_name).chance);
        c.references.emplace_back("full model without context", full.probes.at(measure_name).baseline);
    }
    return c;
}

/// The re-trained log perplexities of the tickets of one kind, one per seed.
inline std::vector<double> retrained_log_perplexities(const lottery_outcome& lot, const std::string& kind) {
    std::vector<double> v;
    for (const auto& t : lot.tickets)
        if (t.kind == kind) v.push_back(std::log(t.retrained.perplexity));
    return v;
}

using prune::experiment::reach;
using prune::experiment::reach_verdict;

/// The test of one kind against good: Welch's t-test and TOST on log perplexity, margin ln 1.05.
inline reach reaches_good(const lottery_outcome& lot, const std::string& kind) {
    return prune::experiment::reach_of(kind, retrained_log_perplexities(lot, kind), retrained_log_perplexities(lot, "good"),
                                       std::log(1.05), "5%", "good");
}

/// The two kinds' tests.
inline std::vector<reach> reaches(const lottery_outcome& lot) { return {reaches_good(lot, "random"), reaches_good(lot, "bad")}; }

/// The lottery in report.json.
inline nlohmann::ordered_json lottery_json(const lottery_outcome& lot) {
    nlohmann::ordered_json j;
    j["good"] = {{"heads_kept", lot.good.heads.count_kept()}, {"heads", lot.good.heads.total()},
                 {"mlps_kept", lot.good.mlps.count_kept()}, {"mlps", lot.good.mlps.total()}, {"evaluations", lot.evaluations}};
    for (const auto& t : lot.tickets)
        j["tickets"].push_back({{"kind", t.kind}, {"seed", t.seed}, {"heads_kept", t.heads_kept}, {"mlps_kept", t.mlps_kept},
                                {"pruned", to_json(t.pruned)}, {"retrained", to_json(t.retrained)}});
    const auto tests = reaches(lot);
    j["all_tickets_win"]["verdict"] = reach_verdict(tests);
    for (const auto& r : tests) {
        const auto& w = r.test;
        auto number = [](double v) { return std::isnan(v) ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(v); };
        j["all_tickets_win"]["comparisons"].push_back(
            {{"kind", r.kind}, {"n", w.a.n}, {"n_good", w.b.n}, {"log_perplexity_mean", number(w.a.mean)},
             {"good_log_perplexity_mean", number(w.b.mean)}, {"ratio", number(std::exp(w.difference))},
             {"ratio_interval90", {number(std::exp(w.low)), number(std::exp(w.high))}}, {"t", number(w.t)}, {"df", number(w.df)},
             {"p", number(w.p)}, {"margin", w.margin}, {"p_equivalence", number(w.p_equivalence)}, {"result", r.result}});
    }
    return j;
}

/// The good subnetwork as a heatmap: layers x query heads (1 kept, 0 removed), then its MLP.
inline prune::heatmap good_heatmap(const prune::structure_mask& good) {
    prune::heatmap map;
    map.title = "The good subnetwork: query heads and MLPs kept by s-pruning";
    map.legend = "kept";
    map.decimals = 0;
    std::size_t widest = 0;
    for (std::size_t l = 0; l < good.heads.layers(); ++l) widest = std::max(widest, good.heads.groups(l));
    for (std::size_t h = 0; h < widest; ++h) map.column_labels.push_back("head " + std::to_string(h));
    map.column_labels.push_back("MLP");
    for (std::size_t l = 0; l < good.heads.layers(); ++l) {
        map.row_labels.push_back("layer " + std::to_string(l));
        std::vector<double> row(widest, std::numeric_limits<double>::quiet_NaN());
        for (std::size_t h = 0; h < good.heads.groups(l); ++h) row[h] = good.heads.kept(l, h) ? 1.0 : 0.0;
        row.push_back(good.mlps.kept(l, 0) ? 1.0 : 0.0);
        map.values.push_back(std::move(row));
    }
    return map;
}

/// report.json.
inline nlohmann::ordered_json report_json(const nlohmann::ordered_json& settings, const measurement& full,
                                          const std::vector<point>& points, const lottery_outcome& lot) {
    nlohmann::ordered_json j;
    j["settings"] = settings;
    j["full"] = to_json(full);
    j["informative_probes"] = informative_groups(full);
    for (const auto& p : points) {
        auto row = to_json(p.m);
        row["family"] = p.family;
        row["method"] = p.method;
        row["x"] = p.x;
        row["label"] = p.label;
        j["points"].push_back(row);
    }
    j["lottery"] = lottery_json(lot);
    return j;
}

/// The full model's probe table.
inline std::string probe_table(const measurement& full) {
    std::string md = "| probe | questions | chance | with context | without (baseline) | gain [95% interval] | context over prior [95%] | verdict |\n";
    md += "|---|---|---|---|---|---|---|---|\n";
    for (const auto& g : probe_groups()) {
        const auto it = full.probes.find(g);
        if (it == full.probes.end()) continue;
        const probe_score& s = it->second;
        md += "| " + g + " | " + std::to_string(s.n) + " | " + fmt(s.chance, 2) + " | " + fmt(s.accuracy) + " | " + fmt(s.baseline) +
              " | " + fmt(s.gain, 3) + " [" + fmt(s.gain_low, 3) + ", " + fmt(s.gain_high, 3) + "] | " + fmt(s.over_prior) + " [" + fmt(s.over_prior_low) + ", " +
              fmt(s.over_prior_high) + "] | " +
              (s.gain_low > 0.0 ? "beyond its prior" : "at its prior (left out of the verdicts)") + " |\n";
    }
    return md;
}

/// A family's table: perplexity and each informative probe's accuracy and gain per point.
inline std::string family_table(const std::vector<point>& points, const std::string& family, const std::vector<std::string>& groups) {
    std::string md = "| method | pruned | perplexity |";
    std::string rule = "|---|---|---|";
    for (const auto& g : groups) {
        md += " " + g + " acc (gain) |";
        rule += "---|";
    }
    md += "\n" + rule + "\n";
    for (const auto& p : points) {
        if (p.family != family) continue;
        md += "| " + p.method + " | " + p.label + " | " + fmt(p.m.perplexity, 2) + " |";
        for (const auto& g : groups) md += " " + fmt(p.m.probes.at(g).accuracy) + " (" + fmt(p.m.probes.at(g).gain, 3) + ") |";
        md += "\n";
    }
    return md;
}

/// The first fraction of a method's curve (N:M left out) at which `fails` holds, as text ("> x"
/// when it never does).
inline std::string first_failure(const std::vector<point>& points, const std::string& family, const std::string& method,
                                 const std::function<bool(const measurement&)>& fails) {
    double last = 0.0;
    for (const auto& p : points) {
        if (p.family != family || p.method != method || p.label.find(':') != std::string::npos) continue;
        if (fails(p.m)) return fmt(p.x, 2);
        last = p.x;
    }
    return "> " + fmt(last, 2);
}

/// What goes first: per method, the fraction at which perplexity exceeds full / 0.9 and at which
/// each informative probe keeps less than half the full model's gain.
inline std::string what_goes_first(const std::vector<point>& points, const measurement& full, const std::vector<std::string>& groups) {
    std::string md = "| family | method | perplexity > full / 0.9 |";
    std::string rule = "|---|---|---|";
    for (const auto& g : groups) {
        md += " " + g + " gain < half |";
        rule += "---|";
    }
    md += "\n" + rule + "\n";
    std::vector<std::pair<std::string, std::string>> methods;
    for (const auto& p : points)
        if (std::find(methods.begin(), methods.end(), std::make_pair(p.family, p.method)) == methods.end())
            methods.emplace_back(p.family, p.method);
    for (const auto& [family, method] : methods) {
        md += "| " + family + " | " + method + " | " +
              first_failure(points, family, method, [&](const measurement& m) { return m.perplexity > full.perplexity / 0.9; }) + " |";
        for (const auto& g : groups) {
            const double half = 0.5 * full.probes.at(g).gain;
            md += " " + first_failure(points, family, method, [&](const measurement& m) { return m.probes.at(g).gain < half; }) + " |";
        }
        md += "\n";
    }
    return md;
}

/// Mean and sample standard deviation of `values`.
inline std::pair<double, double> mean_sd(const std::vector<double>& values) {
    const auto s = prune::experiment::summarise(values);
    return {s.mean, s.std};
}

/// Mean and sd over the tickets of one kind of a measure of them.
inline std::pair<double, double> over_kind(const lottery_outcome& lot, const std::string& kind,
                                           const std::function<double(const ticket&)>& value) {
    std::vector<double> v;
    for (const auto& t : lot.tickets)
        if (t.kind == kind) v.push_back(value(t));
    return mean_sd(v);
}

/// The same as "mean ± sd".
inline std::string over_seeds(const lottery_outcome& lot, const std::string& kind, const std::function<double(const ticket&)>& value,
                              int decimals = 2) {
    const auto [mean, sd] = over_kind(lot, kind, value);
    return fmt(mean, decimals) + " ± " + fmt(sd, decimals);
}

/// The mean re-trained perplexity of a kind.
inline double retrained_perplexity(const lottery_outcome& lot, const std::string& kind) {
    return over_kind(lot, kind, [](const ticket& t) { return t.retrained.perplexity; }).first;
}

/// The lottery's section of report.md: the paper's table for a decoder and its verdicts.
inline std::string lottery_markdown(const lottery_outcome& lot, const measurement& full, const std::vector<std::string>& groups,
                                    std::size_t retrain_steps) {
    std::string md = "## The lottery on a decoder\n\ns-pruning (Michel importance of query heads and MLPs, recomputed every "
                     "step; keep while perplexity <= full / 0.9) kept **" + std::to_string(lot.good.heads.count_kept()) + " of " +
                     std::to_string(lot.good.heads.total()) + " heads and " + std::to_string(lot.good.mlps.count_kept()) + " of " +
                     std::to_string(lot.good.mlps.total()) + " MLPs** (" + std::to_string(lot.evaluations) +
                     " masks evaluated). Random and bad subnetworks keep as many; each is re-trained from the pre-trained "
                     "weights for " + std::to_string(retrain_steps) + " steps with its mask held, and so is the full model "
                     "(the control). Mean ± sd over seeds.\n\n![The good subnetwork](heads-good.svg)\n\n| subnetwork | perplexity pruned | perplexity re-trained |";
    std::string rule = "|---|---|---|";
    for (const auto& g : groups) {
        md += " " + g + " gain pruned | re-trained |";
        rule += "---|---|";
    }
    md += "\n" + rule + "\n";
    for (const std::string kind : {"full", "good", "random", "bad"}) {
        md += "| " + kind + " | " + over_seeds(lot, kind, [](const ticket& t) { return t.pruned.perplexity; }) + " | " +
              over_seeds(lot, kind, [](const ticket& t) { return t.retrained.perplexity; }) + " |";
        for (const auto& g : groups)
            md += " " + over_seeds(lot, kind, [&](const ticket& t) { return t.pruned.probes.at(g).gain; }, 3) + " | " +
                  over_seeds(lot, kind, [&](const ticket& t) { return t.retrained.probes.at(g).gain; }, 3) + " |";
        md += "\n";
    }
    double good_pruned = 0.0;  // every good ticket has the same mask
    for (const auto& t : lot.tickets)
        if (t.kind == "good") good_pruned = t.pruned.perplexity;
    md += "\nVerdicts:\n\n- The good subnetwork keeps perplexity <= full / 0.9 (" + fmt(full.perplexity / 0.9, 2) +
          ") without re-training: " + fmt(good_pruned, 2) + ", **" + (good_pruned <= full.perplexity / 0.9 ? "holds" : "does not hold") +
          "** (by construction of the search).\n";
    const auto tests = reaches(lot);
    md += "- Re-trained, the random and bad subnetworks reach the good one's perplexity within 5%: **" + reach_verdict(tests) +
          "**.\n";
    for (const auto& r : tests) {
        const auto& w = r.test;
        md += "  - " + r.kind + " " + fmt(retrained_perplexity(lot, r.kind), 2) + " vs good " + fmt(retrained_perplexity(lot, "good"), 2) +
              " (n " + std::to_string(w.a.n) + ", " + std::to_string(w.b.n) + "): ratio of geometric means " +
              prune::experiment::fixed_text(std::exp(w.difference)) + ", " +
              (w.testable ? "90% interval [" + prune::experiment::fixed_text(std::exp(w.low)) + ", " +
                                prune::experiment::fixed_text(std::exp(w.high)) + "], "
                          : std::string()) +
              prune::experiment::test_text(w, "ratio within 1.05") + ": **" + r.result + "**\n";
    }
    md += "\nHow this verdict is decided: on log perplexity over seeds, with Welch's t-test and the equivalence test TOST "
          "(two one-sided Welch tests, margin ln 1.05), both at the 5% level. A kind reaches the good one when TOST p < 0.05 "
          "(its 90% interval of the ratio lies within 1/1.05 to 1.05) or it is lower; it falls short when above by more than "
          "5% with Welch p < 0.05; otherwise undecided; with fewer than two seeds a side, or no variance on both, not "
          "testable. The verdict holds when both reach, partly holds when one does, does not hold when neither does and one "
          "falls short.\n\n";
    return md;
}

/// report.md.
inline std::string report_markdown(const nlohmann::ordered_json& settings, const measurement& full, const std::vector<point>& points,
                                   const lottery_outcome& lot) {
    const auto groups = informative_groups(full);
    std::string md = "# prune-llm: what a pruned decoder still knows\n\n";
    md += "Model: `" + settings.value("model", std::string()) + "`. Held-out perplexity of the full model: **" + fmt(full.perplexity, 2) +
          "** (" + std::to_string(settings.value("eval_windows", 0)) + " windows of " + std::to_string(settings.value("context", 0)) +
          " tokens).\n\n";
    md += "## What the full model knows\n\nEach question is asked with its context and without it (the baseline: the model's "
          "prior). The gain is the paired difference, with a 95% normal interval; a probe whose interval reaches 0 is at its "
          "prior and is left out of the verdicts.\n\n" + probe_table(full) + "\n";
    md += "## What goes first\n\nThe fraction pruned (unstructured) or removed (heads, channels, layers) at which perplexity "
          "first exceeds full / 0.9 (" + fmt(full.perplexity / 0.9, 2) + "), and at which each probe the full model answers "
          "beyond its prior first keeps less than half its gain over the baseline (\"> x\": not within the curve).\n\n" +
          what_goes_first(points, full, groups) + "\n";
    for (const std::string family : {"unstructured", "heads", "channels", "layers"}) {
        md += "## " + family + "\n\n![perplexity](" + family + "-perplexity.svg)\n\n";
        md += family_table(points, family, groups) + "\n";
    }
    return md + lottery_markdown(lot, full, groups, settings.value("retrain_steps", std::size_t{0}));
}

/// Writes report.json, report.md and the charts into `dir` (being staged).
inline void write_report(const std::filesystem::path& dir, const nlohmann::ordered_json& settings, const measurement& full,
                         const std::vector<point>& points, const lottery_outcome& lot) {
    auto write = [&](const std::string& name, const std::string& text) { prune::io::write_file_atomically(dir / name, text); };
    write("report.json", report_json(settings, full, points, lot).dump(2) + "\n");
    write("report.md", report_markdown(settings, full, points, lot));
    write("good-mask.json", prune::io::structure_mask_json(lot.good));
    write("heads-good.svg", prune::to_svg(good_heatmap(lot.good)));
    std::set<std::string> families;
    for (const auto& p : points) families.insert(p.family);
    for (const auto& family : families) {
        write(family + "-perplexity.svg", prune::to_svg(chart(points, full, family, "perplexity")));
        for (const auto& g : probe_groups())
            if (full.probes.count(g) > 0) write(family + "-" + g + ".svg", prune::to_svg(chart(points, full, family, g)));
    }
}

}  // namespace llm_experiment
