// examples/llm/measure.hpp: what prune-llm measures on one (pruned) model -- held-out perplexity
// and the WordNet probes (prune/data/wordnet_lm.hpp), each asked with its context and without
// it, scored by the model's own likelihood (prune/models/decoder/choices.hpp).
//
// A probe's gain is accuracy with the context minus accuracy without it, per question (+1, 0,
// -1), with a 95% normal interval of the mean of those paired differences: a probe whose full
// model's interval reaches 0 is "at its prior" and left out of the verdicts.
#pragma once

#include "decoder/causal_lm.hpp"

#include <prune/data/wordnet_lm.hpp>
#include <prune/models/decoder/choices.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/text/bpe.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <tuple>
#include <utility>
#include <string>
#include <vector>

namespace llm_experiment {

namespace dec = prune::decoder;

/// "%.*f".
inline std::string fmt(double v, int decimals = 3) {
    char text[64];
    std::snprintf(text, sizeof text, "%.*f", decimals, v);
    return text;
}

/// One probe question, tokenized.
struct probe_item {
    std::string group;            ///< "hypernym", "pos", "copy"
    bool in_context = false;      ///< hypernym: the answer is a word of the definition
    std::size_t answer = 0;       ///< the right choice
    std::size_t choices = 0;      ///< how many
    std::size_t first = 0;        ///< its first continuation in eval_set::items (context ones, then baseline ones)
};

/// The held-out data every model is measured on.
struct eval_set {
    std::vector<std::vector<std::int32_t>> windows;  ///< held-out perplexity windows
    std::vector<dec::continuation> items;            ///< every probe's continuations
    std::vector<probe_item> probes;                  ///< the questions
    std::size_t skipped = 0;                         ///< questions left out (choices too long for the context)
};

/// One probe group's numbers.
struct probe_score {
    std::size_t n = 0;            ///< questions
    double chance = 0.0;          ///< 1 / choices
    double accuracy = 0.0;        ///< with the context
    double baseline = 0.0;        ///< without it
    double gain = 0.0;            ///< accuracy - baseline
    double gain_low = 0.0;        ///< 95% interval of the gain (paired, normal)
    double gain_high = 0.0;
    double over_prior = 0.0;      ///< accuracy of argmax(log p(c | context) - log p(c | no context)): what the context adds
    double over_prior_low = 0.0;  ///< its 95% Wilson interval
    double over_prior_high = 0.0;
};

/// A model's measurements.
struct measurement {
    double perplexity = 0.0;                    ///< held-out windows
    std::map<std::string, probe_score> probes;  ///< by group name
};

/// The probe groups reported: the three kinds and the hypernym split by where the answer is.
inline const std::vector<std::string>& probe_groups() {
    static const std::vector<std::string> groups{"hypernym", "hypernym-in-definition", "hypernym-not-in-definition", "pos", "copy"};
    return groups;
}

/// The probes of `lm` tokenized by `tok`, and held-out windows. A question with a choice of
/// max_positions / 2 tokens or more is left out (counted in `skipped`): a model with a short
/// context could not read enough of its prompt.
inline eval_set make_eval_set(const prune::data::wordnet_lm& lm, const prune::text::bpe_tokenizer& tok,
                              std::vector<std::vector<std::int32_t>> windows, std::size_t max_positions) {
    eval_set s;
    s.windows = std::move(windows);
    for (const auto& p : lm.probes) {
        std::vector<std::vector<std::int32_t>> choices;
        for (const auto& c : p.choices) choices.push_back(tok.encode(c));
        if (std::any_of(choices.begin(), choices.end(), [&](const auto& c) { return 2 * c.size() >= max_positions; })) {
            ++s.skipped;
            continue;
        }
        s.probes.push_back({p.kind, p.in_context, p.answer, p.choices.size(), s.items.size()});
        for (const std::string* prompt : {&p.context, &p.baseline}) {
            const auto ids = tok.encode(*prompt);
            for (const auto& c : choices) s.items.push_back({ids, c});
        }
    }
    return s;
}

/// The mean and 95% normal interval of paired differences.
inline void set_gain(probe_score& s, const std::vector<double>& differences) {
    const auto n = static_cast<double>(differences.size());
    double mean = 0.0, var = 0.0;
    for (double d : differences) mean += d / n;
    for (double d : differences) var += (d - mean) * (d - mean) / std::max(1.0, n - 1.0);
    const double half = 1.96 * std::sqrt(var / std::max(1.0, n));
    s.gain = mean;
    s.gain_low = mean - half;
    s.gain_high = mean + half;
}

/// The 95% Wilson interval of a proportion.
inline std::pair<double, double> wilson(double p, std::size_t n) {
    const double z = 1.96, nn = static_cast<double>(std::max<std::size_t>(1, n));
    const double centre = (p + z * z / (2 * nn)) / (1 + z * z / nn);
    const double half = z / (1 + z * z / nn) * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn));
    return {centre - half, centre + half};
}

/// The choice whose likelihood the context raises most (log p with it minus log p without).
inline std::size_t over_prior_choice(const std::vector<double>& ll, std::size_t at, std::size_t k) {
    std::vector<double> lift(k);
    for (std::size_t c = 0; c < k; ++c) lift[c] = ll[at + c] - ll[at + k + c];
    return dec::argmax(lift);
}

/// Group scores from per-item log-likelihoods.
inline std::map<std::string, probe_score> score_probes(const eval_set& s, const std::vector<double>& ll) {
    std::map<std::string, std::vector<double>> differences;
    std::map<std::string, probe_score> out;
    for (const auto& p : s.probes) {
        const auto at = static_cast<std::ptrdiff_t>(p.first), k = static_cast<std::ptrdiff_t>(p.choices);
        const bool with = dec::argmax(std::span<const double>(ll.begin() + at, ll.begin() + at + k)) == p.answer;
        const bool without = dec::argmax(std::span<const double>(ll.begin() + at + k, ll.begin() + at + 2 * k)) == p.answer;
        std::vector<std::string> groups{p.group};
        if (p.group == "hypernym") groups.push_back(p.in_context ? "hypernym-in-definition" : "hypernym-not-in-definition");
        for (const auto& g : groups) {
            probe_score& sc = out[g];
            ++sc.n;
            sc.chance = 1.0 / static_cast<double>(p.choices);
            sc.accuracy += with ? 1.0 : 0.0;
            sc.baseline += without ? 1.0 : 0.0;
            sc.over_prior += over_prior_choice(ll, p.first, p.choices) == p.answer ? 1.0 : 0.0;
            differences[g].push_back((with ? 1.0 : 0.0) - (without ? 1.0 : 0.0));
        }
    }
    for (auto& [g, sc] : out) {
        sc.accuracy /= static_cast<double>(sc.n);
        sc.baseline /= static_cast<double>(sc.n);
        sc.over_prior /= static_cast<double>(sc.n);
        std::tie(sc.over_prior_low, sc.over_prior_high) = wilson(sc.over_prior, sc.n);
        set_gain(sc, differences[g]);
    }
    return out;
}

/// Perplexity of the held-out windows under gates `g` (null: none), 16 windows a batch
/// (value_error at a non-finite NLL).
inline double perplexity_of(const dec::weights& w, const eval_set& s, dec::workspace& ws, const dec::gates* g = nullptr) {
    const auto [nll, tokens] = prune_lm::total_nll(w, s.windows, g, 16, ws, "the held-out windows");
    return std::exp(nll / static_cast<double>(std::max<std::int64_t>(1, tokens)));
}

/// Perplexity and probes of `w` under gates `g` (null: none).
inline measurement measure(const dec::weights& w, const eval_set& s, dec::workspace& ws, const dec::gates* g = nullptr) {
    measurement m;
    m.perplexity = perplexity_of(w, s, ws, g);
    m.probes = score_probes(s, dec::log_likelihoods(w, s.items, ws, g));
    return m;
}

/// JSON of a measurement.
inline nlohmann::ordered_json to_json(const measurement& m) {
    nlohmann::ordered_json j;
    j["perplexity"] = m.perplexity;
    for (const auto& [g, s] : m.probes) {
        j["probes"][g] = {{"n", s.n},         {"chance", s.chance},     {"accuracy", s.accuracy}, {"baseline", s.baseline},
                          {"gain", s.gain},   {"gain_low", s.gain_low}, {"gain_high", s.gain_high},
                          {"over_prior", s.over_prior}, {"over_prior_low", s.over_prior_low}, {"over_prior_high", s.over_prior_high}};
    }
    return j;
}

}  // namespace llm_experiment
