// prune/models/decoder/importance.hpp: Michel et al.'s importance on a causal LM -- query heads
// (L x Hq), MLPs (L) and K/V groups (L x Hkv) -- over a set of token sequences, fed into
// prune::importance::michel_accumulator (<prune/importance/michel.hpp>) as BERT's is.
//
// I[l][h] = E_x |dL(x)/dxi[l][h]|, L(x) the sequence's mean NLL (positions 1..n-1), the gates at
// the given values (a structure mask's 0/1, or any). absolute_value::per_example (default) takes
// one backward pass per batch with loss_reduction::sequence_means and reads each sequence's own
// gate gradients off it (sequences in a packed batch never interact): one unit per sequence.
// per_batch and cumulative use the batch's token-mean loss (Hugging Face's), one unit per batch,
// batches in data order. A unit's token count is its predicted tokens (n - 1 per sequence), what
// normalization::by_tokens divides by.
//
// K/V groups have their own accumulator (same mode), so that their normalisations (per layer
// over the layer's K/V heads, global min-max) never mix with the query heads'; its MLP sums are
// unused. No allocation per sequence once the buffers have grown to the largest batch.
#pragma once

#include <prune/models/decoder/backward.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/error.hpp>
#include <prune/importance/michel.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// The accumulators of one importance run over a model's actual layout.
struct importance_accumulators {
    importance::michel_accumulator heads;      ///< layers x query heads, one MLP per layer
    importance::michel_accumulator kv_groups;  ///< layers x K/V heads (MLP sums unused)

    /// Empty accumulators for w's layers (query heads and K/V heads per layer) in `mode`.
    importance_accumulators(const weights& w, importance::absolute_value mode)
        : heads(counts(w, &layer_weights::q_heads), mode), kv_groups(counts(w, &layer_weights::kv_heads), mode) {}

private:
    static std::vector<std::size_t> counts(const weights& w, int layer_weights::*member) {
        std::vector<std::size_t> out;
        for (const auto& L : w.layers) out.push_back(static_cast<std::size_t>(L.*member));
        return out;
    }
};

/// Importance scores of a decoder.
struct importance_scores {
    std::vector<std::vector<double>> heads;      ///< layers x query heads
    std::vector<double> mlps;                    ///< one per layer
    std::vector<std::vector<double>> kv_groups;  ///< layers x K/V heads
};

/// Grow-only buffers of the importance pass (reuse across calls).
struct importance_workspace {
    /// Buffers for passes on `threads` threads (0 = every core).
    explicit importance_workspace(int threads = 0) : forward(threads) {}
    workspace forward;             ///< the forward pass's memory and pool
    training_workspace training;   ///< the backward pass's memory
    sequences batch;               ///< the current batch
    std::vector<double> heads, kv_groups, mlps, zeros;  ///< one unit's gradients
};

namespace detail {

/// Packs data[begin, end) into ws.batch, each sequence checked with its index in `data`.
inline void pack_batch(const config& cfg, std::span<const std::vector<std::int32_t>> data, std::size_t begin, std::size_t end,
                       importance_workspace& ws) {
    ws.batch.tokens.clear();
    ws.batch.offsets.assign(1, 0);
    for (std::size_t i = begin; i < end; ++i) {
        sequences::check(data[i], cfg, "example " + std::to_string(i));
        ws.batch.add(data[i]);
    }
}

/// Feeds one unit (flat head, K/V-group and MLP gradients) to both accumulators.
inline void add_unit(importance_accumulators& acc, importance_workspace& ws, double tokens) {
    acc.heads.add_unit(std::span<const double>(ws.heads), std::span<const double>(ws.mlps), tokens);
    acc.kv_groups.add_unit(std::span<const double>(ws.kv_groups), std::span<const double>(ws.zeros), tokens);
}

}  // namespace detail

/// Adds the importance of every query head, K/V group and MLP over `data` (token sequences) to
/// `acc` (made for w; its mode is used), the gates at `gate` (null: all 1), batch_size sequences
/// per pass. Throws value_error naming the example on an empty or too long sequence or a token
/// out of the vocabulary, shape_error on gates or accumulators that do not fit.
inline void accumulate_importance(const weights& w, std::span<const std::vector<std::int32_t>> data, const gates* gate,
                                  importance_accumulators& acc, importance_workspace& ws, std::size_t batch_size = 8) {
    const importance_accumulators fresh(w, acc.heads.mode());
    if (acc.heads.layers() != w.layers.size() || acc.heads.total_heads() != fresh.heads.total_heads() ||
        acc.kv_groups.total_heads() != fresh.kv_groups.total_heads()) {
        throw shape_error("decoder::accumulate_importance: accumulators of " + std::to_string(acc.heads.total_heads()) +
                          " heads / " + std::to_string(acc.kv_groups.total_heads()) + " K/V groups for a model of " +
                          std::to_string(fresh.heads.total_heads()) + " / " + std::to_string(fresh.kv_groups.total_heads()));
    }
    if (batch_size == 0) throw value_error("decoder::accumulate_importance: batch_size must be > 0");
    const bool per_example = acc.heads.mode() == importance::absolute_value::per_example;
    training_options o;
    o.parameter_gradients = false;
    o.reduction = per_example ? loss_reduction::sequence_means : loss_reduction::token_mean;
    ws.zeros.assign(w.layers.size(), 0.0);
    for (std::size_t start = 0; start < data.size(); start += batch_size) {
        const std::size_t end = std::min(data.size(), start + batch_size);
        detail::pack_batch(w.cfg, data, start, end, ws);
        (void)train_pass(w, ws.batch, ws.forward, ws.training, nullptr, o, gate);
        const gate_gradients& g = ws.training.gates;
        if (!per_example) {
            gate_gradients::totals(g.heads, g.total_heads(), ws.heads);
            gate_gradients::totals(g.kv_groups, g.total_kv_groups(), ws.kv_groups);
            gate_gradients::totals(g.mlps, g.layers(), ws.mlps);
            detail::add_unit(acc, ws, static_cast<double>(ws.training.result.total_predicted()));
            continue;
        }
        for (std::size_t b = 0; b < g.sequences; ++b) {
            ws.heads.assign(g.heads_of(b).begin(), g.heads_of(b).end());
            ws.kv_groups.assign(g.kv_groups_of(b).begin(), g.kv_groups_of(b).end());
            ws.mlps.assign(g.mlps_of(b).begin(), g.mlps_of(b).end());
            detail::add_unit(acc, ws, static_cast<double>(ws.training.result.predicted[b]));
        }
    }
}

/// The scores of `acc` with the normalisations `how` (K/V groups normalised like heads, among
/// themselves). Throws value_error when nothing was accumulated.
[[nodiscard]] inline importance_scores scores_of(const importance_accumulators& acc, const importance::normalization& how = {}) {
    importance::michel_scores hm = acc.heads.scores(how);
    importance::michel_scores kv = acc.kv_groups.scores(how);
    return {std::move(hm.heads), std::move(hm.mlps), std::move(kv.heads)};
}

/// Importance of every query head, K/V group and MLP over `data`: accumulate_importance with
/// fresh accumulators in `mode`, then scores_of(how).
[[nodiscard]] inline importance_scores head_importance(const weights& w, std::span<const std::vector<std::int32_t>> data,
                                                       const gates* gate,
                                                       importance::absolute_value mode = importance::absolute_value::per_example,
                                                       const importance::normalization& how = {}, std::size_t batch_size = 8,
                                                       int threads = 0) {
    importance_accumulators acc(w, mode);
    importance_workspace ws(threads);
    accumulate_importance(w, data, gate, acc, ws, batch_size);
    return scores_of(acc, how);
}

}  // namespace prune::decoder
