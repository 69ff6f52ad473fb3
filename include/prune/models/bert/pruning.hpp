// prune/models/bert/pruning.hpp: physical removal of attention heads and feed-forward blocks
// (MLPs), so that a pruned model is smaller and faster and computes exactly what the gated
// full model computes.
//
// Removing heads slices the query, key and value rows and the attention-output columns of
// those heads and records their original indices in config.pruned_heads (as Hugging Face's
// prune_heads does). A layer may lose every head: the attention-output bias stays, so the
// block gives LN(x + b_o), as the gated model does (docs/bert.md, "Forward pass"); the option
// `drop_empty_attention_bias` zeroes that bias instead, reproducing Prasanna et al.'s code
// (LN(x)). Removing an MLP drops the intermediate and output dense layers, biases included
// (a gated-off MLP gives LN(a)), and records the layer in config.pruned_mlps.
#pragma once

#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace prune::bert {

/// Choices for physical pruning.
struct pruning_options {
    /// Zero the attention-output bias of a layer that loses every head (Prasanna et al.'s
    /// behaviour: LN(x)); default false keeps it, matching the gated model (LN(x + b_o)).
    bool drop_empty_attention_bias = false;
};

/// Removes from layer l the heads whose *current* (kept-head) indices are listed.
inline void remove_heads(weights& w, std::size_t l, std::vector<int> heads, const pruning_options& options = {}) {
    if (l >= w.layers.size()) {
        throw value_error("remove_heads: layer " + std::to_string(l) + " out of range (model has " +
                          std::to_string(w.layers.size()) + ")");
    }
    layer_weights& L = w.layers[l];
    std::sort(heads.begin(), heads.end());
    heads.erase(std::unique(heads.begin(), heads.end()), heads.end());
    for (int h : heads) {
        if (h < 0 || h >= L.heads) {
            throw value_error("remove_heads: head " + std::to_string(h) + " out of range for layer " + std::to_string(l) +
                              " with " + std::to_string(L.heads) + " heads");
        }
    }
    if (heads.empty()) {
        return;
    }
    std::vector<int> kept;
    for (int h = 0; h < L.heads; ++h) {
        if (!std::binary_search(heads.begin(), heads.end(), h)) {
            kept.push_back(h);
        }
    }
    const int d = L.head_size;
    const int A = L.attention_width();
    const int newA = static_cast<int>(kept.size()) * d;
    const Eigen::Index hidden = L.qkv.weight.cols();
    matrix qkv(3 * newA, hidden);
    vector qkv_bias(3 * newA);
    matrix out(L.attention_output.weight.rows(), newA);
    for (int part = 0; part < 3; ++part) {
        for (std::size_t i = 0; i < kept.size(); ++i) {
            const int from = part * A + kept[i] * d;
            const int to = part * newA + static_cast<int>(i) * d;
            qkv.middleRows(to, d) = L.qkv.weight.middleRows(from, d);
            qkv_bias.segment(to, d) = L.qkv.bias.segment(from, d);
        }
    }
    for (std::size_t i = 0; i < kept.size(); ++i) {
        out.middleCols(static_cast<Eigen::Index>(i) * d, d) = L.attention_output.weight.middleCols(kept[i] * d, d);
    }
    std::vector<int> ids;
    auto& pruned = w.cfg.pruned_heads;
    if (pruned.empty()) {
        pruned.assign(w.layers.size(), {});
    }
    for (int h : heads) {
        pruned[l].push_back(L.head_ids[static_cast<std::size_t>(h)]);
    }
    std::sort(pruned[l].begin(), pruned[l].end());
    for (int h : kept) {
        ids.push_back(L.head_ids[static_cast<std::size_t>(h)]);
    }
    L.qkv.weight = std::move(qkv);
    L.qkv.bias = std::move(qkv_bias);
    L.attention_output.weight = std::move(out);
    L.head_ids = std::move(ids);
    L.heads = static_cast<int>(kept.size());
    if (L.heads == 0 && options.drop_empty_attention_bias) {
        L.attention_output.bias.setZero();
    }
}

/// Removes layer l's feed-forward block (intermediate and output dense layers, biases included).
inline void remove_mlp(weights& w, std::size_t l) {
    if (l >= w.layers.size()) {
        throw value_error("remove_mlp: layer " + std::to_string(l) + " out of range (model has " +
                          std::to_string(w.layers.size()) + ")");
    }
    layer_weights& L = w.layers[l];
    L.intermediate.weight.resize(0, L.qkv.weight.cols());
    L.intermediate.bias.resize(0);
    L.output.weight.resize(0, 0);
    L.output.bias.resize(0);
    if (w.cfg.pruned_mlps.empty()) {
        w.cfg.pruned_mlps.assign(w.layers.size(), false);
    }
    w.cfg.pruned_mlps[l] = true;
}

/// Removes every head and MLP the structure mask prunes (mask rows over original heads or over
/// the kept ones, as gates::from_mask accepts). Returns the number of heads and MLPs removed.
inline std::size_t prune_structure(weights& w, const structure_mask& mask, const pruning_options& options = {}) {
    const gates g = gates::from_mask(mask, w);
    std::size_t removed = 0;
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        std::vector<int> heads;
        for (int h = 0; h < w.layers[l].heads; ++h) {
            if (g.head(l, static_cast<std::size_t>(h)) == 0.0f) {
                heads.push_back(h);
            }
        }
        removed += heads.size();
        remove_heads(w, l, heads, options);
        if (g.mlp(l) == 0.0f && w.layers[l].has_mlp()) {
            remove_mlp(w, l);
            ++removed;
        }
    }
    return removed;
}

/// The structure mask of a (possibly pruned) model over original heads: 1 = still present.
[[nodiscard]] inline structure_mask present_structure(const weights& w) {
    const std::size_t layers = w.layers.size();
    structure_mask mask{group_mask::uniform(layers, static_cast<std::size_t>(w.cfg.num_attention_heads), false),
                        group_mask::uniform(layers, 1, false)};
    for (std::size_t l = 0; l < layers; ++l) {
        for (int id : w.layers[l].head_ids) {
            mask.heads.set(l, static_cast<std::size_t>(id), true);
        }
        mask.mlps.set(l, 0, w.layers[l].has_mlp());
    }
    return mask;
}

}  // namespace prune::bert
