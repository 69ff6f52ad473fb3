// examples/llm/curves.hpp: prune-llm's curves -- the model pruned further and further by each
// method, measured at every point (examples/llm/measure.hpp).
//
//   unstructured  magnitude (per matrix), Wanda (per row), SparseGPT (blocks of 128), layer by
//                 layer on calibration windows (prune/sparsify/calibrate.hpp), at each sparsity
//                 and N:M pattern, each point from the dense model
//   heads         query heads gated off a step at a time; Michel importance and first-order
//                 Taylor scores recomputed under the current gates before every step (the
//                 paper's s-pruning), or a seeded random order
//   channels      MLP channels zeroed a step at a time (gate/up rows and the down column),
//                 Taylor scores recomputed every step, or a seeded random order
//   layers        whole layers skipped (attention and MLP gated off), ranked once by Block
//                 Influence (ShortGPT) or a seeded random order
#pragma once

#include "llm/measure.hpp"

#include <prune/detail/random.hpp>
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/importance.hpp>
#include <prune/models/decoder/unit_scores.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <algorithm>
#include <functional>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace llm_experiment {

/// One measured point of a curve.
struct point {
    std::string family;   ///< "unstructured", "heads", "channels", "layers"
    std::string method;   ///< e.g. "wanda", "michel", "random"
    double x = 0.0;       ///< fraction pruned / removed
    std::string label;    ///< e.g. "50%", "2:4", "3 of 32"
    measurement m;        ///< what the model still does
};

/// What every curve needs.
struct curve_inputs {
    const dec::weights* dense = nullptr;                   ///< the trained model
    const eval_set* eval = nullptr;                        ///< held-out measurements
    std::vector<std::vector<std::int32_t>> calibration;   ///< calibration / importance windows
    int threads = 0;                                       ///< 0 = every core
    std::uint64_t seed = 0;                                ///< random orders
    std::function<void(const point&)> done;               ///< progress (may be empty)
};

/// Records a measured point.
inline void add_point(std::vector<point>& out, const curve_inputs& in, point p) {
    if (in.done) in.done(p);
    out.push_back(std::move(p));
}

/// The dense model pruned by `how` to `target` and measured.
inline measurement sparsified(const curve_inputs& in, prune::sparsify::method how, const prune::sparsify::sparsity_target& target,
                              dec::workspace& ws) {
    dec::weights w = *in.dense;
    std::vector<dec::sequences> batches;
    for (std::size_t i = 0; i < in.calibration.size(); i += 8) {
        batches.emplace_back();
        for (std::size_t k = i; k < std::min(in.calibration.size(), i + 8); ++k) batches.back().add(in.calibration[k]);
    }
    dec::calibration_run run(w, std::move(batches), in.threads);
    prune::sparsify::calibration_options o;
    o.how = how;
    o.target = target;
    o.target.group = how == prune::sparsify::method::magnitude ? prune::sparsify::comparison_group::matrix
                                                                : prune::sparsify::comparison_group::row;
    o.sparsegpt.pool = &run.pool();
    (void)prune::sparsify::prune_layers(run, o);
    return measure(w, *in.eval, ws);
}

/// Unstructured curves: every method at every sparsity, then the N:M patterns.
inline void unstructured_curves(const curve_inputs& in, const std::vector<double>& sparsities,
                                const std::vector<std::pair<int, int>>& patterns, std::vector<point>& out, dec::workspace& ws) {
    namespace sp = prune::sparsify;
    for (sp::method how : {sp::method::magnitude, sp::method::wanda, sp::method::sparsegpt}) {
        for (double s : sparsities) {
            sp::sparsity_target t;
            t.sparsity = s;
            add_point(out, in, {"unstructured", sp::to_string(how), s, std::to_string(static_cast<int>(std::lround(100 * s))) + "%",
                                sparsified(in, how, t, ws)});
        }
        for (const auto& [n, m] : patterns) {
            sp::sparsity_target t;
            t.nm = prune::nm_pattern{static_cast<std::size_t>(n), static_cast<std::size_t>(m)};
            add_point(out, in, {"unstructured", sp::to_string(how), 1.0 - static_cast<double>(n) / m,
                                std::to_string(n) + ":" + std::to_string(m), sparsified(in, how, t, ws)});
        }
    }
}

/// Units (layer, index) still on, ordered from least to most important by `score` (random: a
/// seeded shuffle).
inline std::vector<std::pair<std::size_t, std::size_t>> ranked(const std::vector<std::vector<double>>& score,
                                                               const std::vector<std::vector<float>>& on, bool random,
                                                               prune::detail::splitmix64& rng) {
    std::vector<std::pair<std::size_t, std::size_t>> units;
    for (std::size_t l = 0; l < on.size(); ++l)
        for (std::size_t i = 0; i < on[l].size(); ++i)
            if (on[l][i] != 0.0f) units.emplace_back(l, i);
    if (random) {
        rng.shuffle(units);
        return units;
    }
    std::stable_sort(units.begin(), units.end(), [&](const auto& a, const auto& b) { return score[a.first][a.second] < score[b.first][b.second]; });
    return units;
}

/// All-ones gates shaped as the model's query heads and MLPs.
inline dec::gates full_gates(const dec::weights& w) {
    dec::gates g;
    for (const auto& L : w.layers) g.heads.emplace_back(static_cast<std::size_t>(L.q_heads), 1.0f);
    g.mlps.assign(w.layers.size(), 1.0f);
    return g;
}

/// Head curves: `step` more query heads gated off per point, ranked under the current gates.
inline void head_curve(const curve_inputs& in, const std::string& method, std::size_t steps, std::vector<point>& out, dec::workspace& ws) {
    const dec::weights& w = *in.dense;
    dec::gates g = full_gates(w);
    std::size_t total = 0, removed = 0;
    for (const auto& row : g.heads) total += row.size();
    prune::detail::splitmix64 rng(in.seed, 21);
    for (std::size_t k = 1; k <= steps; ++k) {
        const std::size_t target = total * k / (steps + 1);
        std::vector<std::vector<double>> score;
        if (method == "michel") score = dec::head_importance(w, in.calibration, &g, prune::importance::absolute_value::per_example,
                                                             prune::importance::normalization::parse("layer"), 8, in.threads).heads;
        else if (method == "taylor") score = dec::taylor_importance(w, in.calibration, &g, 8, in.threads).heads;
        const auto order = ranked(score, g.heads, method == "random", rng);
        for (std::size_t i = 0; removed < target && i < order.size(); ++i, ++removed) g.heads[order[i].first][order[i].second] = 0.0f;
        add_point(out, in, {"heads", method, static_cast<double>(removed) / static_cast<double>(total),
                            std::to_string(removed) + " of " + std::to_string(total), measure(w, *in.eval, ws, &g)});
    }
}

/// Zeroes MLP channel c of layer L (gate and up rows, the down column; their biases).
inline void zero_channel(dec::layer_weights& L, int hidden, bool llama, std::size_t c) {
    const auto H = static_cast<std::size_t>(hidden), F = static_cast<std::size_t>(L.ffn);
    for (std::size_t part = 0; part < (llama ? 2u : 1u); ++part) {
        std::fill_n(L.up.begin() + static_cast<std::ptrdiff_t>((part * F + c) * H), H, 0.0f);
        if (!L.up_bias.empty()) L.up_bias[part * F + c] = 0.0f;
    }
    for (std::size_t r = 0; r < H; ++r) L.down[r * F + c] = 0.0f;
}

/// Channel curves: `steps` points, MLP channels zeroed a step at a time.
inline void channel_curve(const curve_inputs& in, const std::string& method, std::size_t steps, std::vector<point>& out,
                          dec::workspace& ws) {
    dec::weights w = *in.dense;
    const bool llama = w.cfg.is_llama();
    std::vector<std::vector<float>> on;
    std::size_t total = 0, removed = 0;
    for (const auto& L : w.layers) {
        on.emplace_back(static_cast<std::size_t>(L.ffn), 1.0f);
        total += static_cast<std::size_t>(L.ffn);
    }
    prune::detail::splitmix64 rng(in.seed, 22);
    for (std::size_t k = 1; k <= steps; ++k) {
        const std::size_t target = total * k / (steps + 1);
        std::vector<std::vector<double>> score;
        if (method == "taylor") score = dec::taylor_importance(w, in.calibration, nullptr, 8, in.threads).channels;
        const auto order = ranked(score, on, method == "random", rng);
        for (std::size_t i = 0; removed < target && i < order.size(); ++i, ++removed) {
            on[order[i].first][order[i].second] = 0.0f;
            zero_channel(w.layers[order[i].first], w.cfg.hidden_size, llama, order[i].second);
        }
        add_point(out, in, {"channels", method, static_cast<double>(removed) / static_cast<double>(total),
                            std::to_string(removed) + " of " + std::to_string(total), measure(w, *in.eval, ws)});
    }
}

/// Layer curves: 1, 2, ... layers skipped, in Block Influence order (least first) or at random.
inline void layer_curve(const curve_inputs& in, const std::string& method, std::vector<point>& out, dec::workspace& ws) {
    const dec::weights& w = *in.dense;
    const std::size_t L = w.layers.size();
    std::vector<std::size_t> order(L);
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (method == "random") {
        prune::detail::splitmix64 rng(in.seed, 23);
        rng.shuffle(order);
    } else {
        const auto bi = dec::block_influence(w, in.calibration, nullptr, 8, in.threads);
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bi[a] < bi[b]; });
    }
    dec::gates g = full_gates(w);
    for (std::size_t k = 1; k < L; ++k) {
        std::fill(g.heads[order[k - 1]].begin(), g.heads[order[k - 1]].end(), 0.0f);
        g.mlps[order[k - 1]] = 0.0f;
        add_point(out, in, {"layers", method, static_cast<double>(k) / static_cast<double>(L),
                            std::to_string(k) + " of " + std::to_string(L), measure(w, *in.eval, ws, &g)});
    }
}

}  // namespace llm_experiment
