// examples/llm/lottery.hpp: the paper's lottery on a decoder. s-pruning (query heads and MLPs
// ranked by Michel importance, layer+global normalised, recomputed every step; a mask is kept
// while perplexity <= full / 0.9) finds the "good" subnetwork; "random" (the same number of
// heads and MLPs drawn at random) and "bad" (the pruned units first) subnetworks of the same size
// are drawn per seed; each is measured pruned and after re-training from the pre-trained weights
// for a fixed number of steps with its gates held (decoder::pretrain_options::gate), and the full
// model is re-trained as long as the control.
#pragma once

#include "decoder/heads.hpp"
#include "llm/measure.hpp"

#include <prune/lottery.hpp>
#include <prune/models/decoder/pretrain.hpp>
#include <prune/spruning.hpp>

#include <functional>
#include <string>
#include <vector>

namespace llm_experiment {

/// One subnetwork of one seed.
struct ticket {
    std::string kind;            ///< "full", "good", "random", "bad"
    std::uint64_t seed = 0;      ///< the draw and the re-training's batch order
    std::size_t heads_kept = 0;  ///< query heads kept
    std::size_t mlps_kept = 0;   ///< MLPs kept
    measurement pruned;          ///< before re-training
    measurement retrained;       ///< after
};

/// The lottery's outcome.
struct lottery_outcome {
    prune::structure_mask good;      ///< the s-pruning mask
    std::size_t evaluations = 0;     ///< masks evaluated by the search
    std::vector<ticket> tickets;     ///< every kind and seed
};

/// What the lottery needs beyond the curves' inputs.
struct lottery_settings {
    std::size_t seeds = 2;            ///< draws (and re-training orders)
    std::size_t retrain_steps = 150;  ///< re-training steps of 16 windows
    std::vector<std::vector<std::int32_t>> train;  ///< re-training windows (training text)
    std::function<void(const std::string&)> note;   ///< progress (may be empty)
};

/// The good mask: s-pruning on the calibration windows, perplexity of the held-out windows.
inline prune::spruning_result good_mask(const curve_inputs& in, dec::workspace& ws) {
    prune_lm::heads_job job;
    job.how = prune::importance::normalization::parse("layer+global");
    job.threads = in.threads;
    dec::importance_workspace iws(in.threads);
    const dec::weights& w = *in.dense;
    auto importance = [&](const prune::structure_mask& m) { return prune_lm::unit_importance(job, w, in.calibration, m, iws); };
    auto evaluate = [&](const prune::structure_mask& m) {
        const auto g = dec::gates::from_mask(m, w);
        return 1.0 / perplexity_of(w, *in.eval, ws, &g);
    };
    return prune::s_prune(prune_lm::start_mask(w, prune_lm::search_unit::heads), importance, evaluate);
}

/// A ticket measured pruned and after re-training under its mask.
inline ticket play(const curve_inputs& in, const lottery_settings& ls, const std::string& kind, std::uint64_t seed,
                   const prune::structure_mask& mask, dec::workspace& ws) {
    const dec::weights& w = *in.dense;
    const auto g = dec::gates::from_mask(mask, w);
    ticket t{kind, seed, mask.heads.count_kept(), mask.mlps.count_kept(), measure(w, *in.eval, ws, &g), {}};
    dec::weights trained = w;
    dec::pretrain_options o;
    o.steps = ls.retrain_steps;
    o.batch_size = 16;
    o.learning_rate = 3e-4;
    o.seed = seed;
    o.threads = in.threads;
    o.gate = &g;
    (void)dec::pretrain(trained, ls.train, o);
    t.retrained = measure(trained, *in.eval, ws, &g);
    if (ls.note)
        ls.note(kind + " (seed " + std::to_string(seed) + "): perplexity " + fmt(t.pruned.perplexity, 2) + " pruned, " +
                fmt(t.retrained.perplexity, 2) + " re-trained");
    return t;
}

/// The whole lottery.
inline lottery_outcome run_lottery(const curve_inputs& in, const lottery_settings& ls, dec::workspace& ws) {
    lottery_outcome out;
    const auto search = good_mask(in, ws);
    out.good = search.mask;
    out.evaluations = search.history.size();
    if (ls.note)
        ls.note("s-pruning kept " + std::to_string(out.good.heads.count_kept()) + " of " + std::to_string(out.good.heads.total()) +
                " heads and " + std::to_string(out.good.mlps.count_kept()) + " of " + std::to_string(out.good.mlps.total()) + " MLPs");
    const prune::structure_mask all = prune_lm::start_mask(*in.dense, prune_lm::search_unit::heads);
    for (std::uint64_t seed = 0; seed < ls.seeds; ++seed) {
        out.tickets.push_back(play(in, ls, "full", seed, all, ws));
        out.tickets.push_back(play(in, ls, "good", seed, out.good, ws));
        out.tickets.push_back(play(in, ls, "random", seed, prune::random_structure(out.good, in.seed * 1000 + seed, prune::sample_size::exact), ws));
        out.tickets.push_back(play(in, ls, "bad", seed, prune::bad_structure(out.good, in.seed * 1000 + seed), ws));
    }
    return out;
}

}  // namespace llm_experiment
