// prune/models/bert/importance.hpp: Michel head + MLP importance of the reference BERT over a data
// set, fed into prune::importance::michel_accumulator (<prune/importance/michel.hpp>).
//
// Dropout off, gates at their mask values (1 kept, 0 masked), loss = cross-entropy (MSE when
// num_labels == 1). absolute_value::per_example takes one backward pass per batch with the
// summed loss and reads each example's own gate gradients from it (sequences in a packed
// batch do not interact); per_batch and cumulative use the batch-mean loss, one unit per
// batch, batches taken in data order. The accumulator's layout is the original one:
// cfg.num_attention_heads per layer, a physically removed head keeping score 0.
// Nothing is allocated per example once the buffers have grown to the largest batch.
#pragma once

#include <prune/models/bert/backward.hpp>
#include <prune/models/bert/batch.hpp>
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/labeled_sequence.hpp>
#include <prune/error.hpp>
#include <prune/importance/michel.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace prune::bert {

/// Gate values from a structure mask: gates::from_mask (forward.hpp, which has the rules and the
/// errors) in the training pass's double precision. Throws shape_error when the mask does not fit.
template <class W>
[[nodiscard]] gate_values gates_from_mask(const structure_mask& mask, const W& w) {
    const gates g = gates::from_mask(mask, w);
    gate_values out;
    for (const auto& row : g.heads) out.heads.emplace_back(row.begin(), row.end());
    out.mlps.assign(g.mlps.begin(), g.mlps.end());
    return out;
}

/// Settings of the importance pass.
struct importance_options {
    importance::absolute_value mode = importance::absolute_value::per_example;  ///< where |.| is taken
    std::size_t batch_size = 32;                                                ///< sequences per pass
};

/// Grow-only buffers of the importance pass (reuse across calls: no allocation per example).
template <class S>
struct importance_workspace {
    /// Buffers for a pass on `threads` threads (0 = every core).
    explicit importance_workspace(int threads = 0) : training(threads) {}
    training_workspace<S> training;   ///< the training pass's memory
    packed_batch batch;               ///< the current batch
    std::vector<int> classes;         ///< its labels (classification)
    std::vector<float> values;        ///< its targets (regression)
    std::vector<double> head_flat;    ///< gradients mapped to the original layout
};

/// Adds the importance of every head and MLP over `data` to `acc` (whose layout must be the
/// original one: cfg layers x cfg.num_attention_heads, and whose mode is used). Throws value_error
/// on labels outside [0, num_labels) and shape_error on a mask or accumulator that does not fit.
template <class W>
void accumulate_importance(const W& w, std::span<const labeled_sequence> data, const structure_mask& mask,
                           importance::michel_accumulator& acc,
                           importance_workspace<typename decltype(W::word_embeddings)::Scalar>& ws,
                           std::size_t batch_size = 32) {
    const config& cfg = w.cfg;
    const std::size_t layers = w.layers.size();
    const auto H = static_cast<std::size_t>(cfg.num_attention_heads);
    if (acc.layers() != layers || acc.total_heads() != layers * H) {
        throw shape_error("accumulate_importance: accumulator of " + std::to_string(acc.layers()) + " layers / " +
                          std::to_string(acc.total_heads()) + " heads for a model of " + std::to_string(layers) +
                          " x " + std::to_string(H));
    }
    if (batch_size == 0) throw value_error("accumulate_importance: batch_size must be > 0");
    const gate_values gates = gates_from_mask(mask, w);
    const bool per_example = acc.mode() == importance::absolute_value::per_example;
    training_options o;
    o.dropout = false;
    o.parameter_gradients = false;
    o.reduction = per_example ? loss_reduction::sum : loss_reduction::mean;
    const bool regression = cfg.num_labels == 1;
    ws.head_flat.assign(layers * H, 0.0);
    // flat kept-head index -> original flat index
    std::vector<std::size_t> original;
    for (std::size_t l = 0; l < layers; ++l)
        for (int id : w.layers[l].head_ids) original.push_back(l * H + static_cast<std::size_t>(id));
    std::vector<double> mlp(layers, 0.0);
    for (std::size_t start = 0; start < data.size(); start += batch_size) {
        const std::size_t end = std::min(data.size(), start + batch_size);
        ws.batch.clear();
        ws.classes.clear();
        ws.values.clear();
        for (std::size_t i = start; i < end; ++i) {
            const labeled_sequence& s = data[i];
            ws.batch.add(s.input_ids, s.token_type_ids, s.attention_mask, "example " + std::to_string(i));
            if (regression) {
                ws.values.push_back(static_cast<float>(s.label));
            } else {
                const auto y = static_cast<int>(s.label);
                if (static_cast<double>(y) != s.label || y < 0 || y >= cfg.num_labels) {
                    throw value_error("example " + std::to_string(i) + ": label " + std::to_string(s.label) +
                                      " outside [0, " + std::to_string(cfg.num_labels) + ")");
                }
                ws.classes.push_back(y);
            }
        }
        batch_labels labels;
        if (regression) labels.values = ws.values; else labels.classes = ws.classes;
        (void)train_pass<W>(w, ws.batch, labels, &gates, ws.training, nullptr, o);
        const gate_gradients& g = ws.training.gates();
        if (per_example) {
            for (std::size_t b = 0; b < g.sequences; ++b) {
                const auto heads = g.heads(b);
                for (std::size_t i = 0; i < heads.size(); ++i) ws.head_flat[original[i]] = heads[i];
                acc.add_unit(std::span<const double>(ws.head_flat), g.mlps(b),
                             static_cast<double>(ws.batch.length(static_cast<int>(b))));
            }
        } else {
            for (std::size_t i = 0; i < g.total_heads; ++i) ws.head_flat[original[i]] = g.head_total(i);
            for (std::size_t l = 0; l < layers; ++l) mlp[l] = g.mlp_total(l);
            acc.add_unit(std::span<const double>(ws.head_flat), std::span<const double>(mlp),
                         static_cast<double>(ws.batch.tokens()));
        }
    }
}

/// Importance scores of every head (L x cfg.num_attention_heads) and MLP over `data`, normalised as
/// requested; a convenience over accumulate_importance with a fresh accumulator.
template <class W>
[[nodiscard]] importance::michel_scores head_importance(const W& w, std::span<const labeled_sequence> data,
                                                        const structure_mask& mask, const importance_options& options,
                                                        const importance::normalization& how = {}) {
    const std::vector<std::size_t> counts(w.layers.size(), static_cast<std::size_t>(w.cfg.num_attention_heads));
    importance::michel_accumulator acc(counts, options.mode);
    importance_workspace<typename decltype(W::word_embeddings)::Scalar> ws;
    accumulate_importance(w, data, mask, acc, ws, options.batch_size);
    return acc.scores(how);
}

}  // namespace prune::bert
