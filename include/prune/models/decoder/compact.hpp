// prune/models/decoder/compact.hpp: structured pruning that makes a decoder smaller -- the
// removed query heads, K/V groups, MLPs, MLP channels and layers are cut out of the weights,
// and the config says the new widths.
//
// Units and what removing one takes away (Llama and GPT-2 alike; GPT-2 has one query head per
// K/V "group"):
//   query head  its q rows (and bias) and its o_proj columns; K/V stay
//   K/V group   its k and v rows, every query head that shares it and their o_proj columns
//   MLP         the whole MLP: width 0 (its output bias is zeroed: a removed MLP adds nothing)
//   MLP channel Llama: the gate and up rows (and biases) and the down_proj column; GPT-2: the
//               c_fc row (in memory [F, H]) and bias entry and the mlp.c_proj column
//   layer       the whole layer; the others are renumbered 0..
// Grouped-query attention needs the same number of query heads in every group of a layer (the
// forward pass and Hugging Face's config assume it): a mask that would leave unequal groups is
// refused (value_error naming the layer and the groups). A group whose query heads are all
// removed is removed with them. Removing every channel of an MLP removes the MLP.
//
// The compacted model computes what the masked model computes -- heads and groups gated to 0,
// MLPs gated to 0, channels' down columns zeroed, layers skipped -- up to float rounding
// (tests/decoder/test_compact.cpp: 1e-5 on the logits).
//
// The config: the new widths go into cfg and cfg.source (the config.json save_model writes).
// Llama: num_hidden_layers, head_dim, and num_attention_heads, num_key_value_heads,
// intermediate_size as numbers when every layer agrees (and is not empty), which stock
// Hugging Face loads; else as per-layer lists (prune's extension, read back by load_model).
// GPT-2: n_layer; heads as Hugging Face's own "pruned_heads" ({"layer": [original indices]};
// n_head stays, since GPT-2's head width is n_embd / n_head); n_inner a number or a per-layer list.
#pragma once

#include <prune/models/decoder/config.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/error.hpp>
#include <prune/io/json.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace prune::decoder {

/// A kind of structural unit.
enum class unit_kind {
    query_head,   ///< one query head (L x Hq)
    kv_group,     ///< one K/V head with the query heads sharing it (L x Hkv)
    mlp,          ///< a layer's whole MLP (L)
    mlp_channel,  ///< one MLP channel (L x F)
    layer,        ///< a whole layer (L)
};

/// The rows of a group mask as 0/1 floats (kept 1), one row per layer: unit_masks' form.
[[nodiscard]] inline std::vector<std::vector<float>> flag_rows(const group_mask& mask) {
    std::vector<std::vector<float>> rows(mask.layers());
    for (std::size_t l = 0; l < mask.layers(); ++l)
        for (std::size_t g = 0; g < mask.groups(l); ++g) rows[l].push_back(mask.kept(l, g) ? 1.0f : 0.0f);
    return rows;
}

/// Which units to keep: 1 = keep, 0 = remove (no other value). An empty part, or an empty row
/// of a per-layer part, keeps every unit of it. Rows are indexed by the model's layers.
struct unit_masks {
    std::vector<std::vector<float>> heads;      ///< heads[l][h], L x query heads
    std::vector<std::vector<float>> kv_groups;  ///< kv_groups[l][g], L x K/V heads
    std::vector<float> mlps;                    ///< mlps[l], L
    std::vector<std::vector<float>> channels;   ///< channels[l][j], L x MLP width
    std::vector<float> layers;                  ///< layers[l], L

    /// The heads, K/V groups, MLPs and MLP channels of a structure mask (a mask file of
    /// prune-heads or prune-importance's selections); shape_error as gates::from_mask or
    /// check_channel_mask when it does not fit `w`.
    [[nodiscard]] static unit_masks from_mask(const structure_mask& mask, const weights& w) {
        gates g = gates::from_mask(mask, w);
        check_channel_mask(w.cfg, mask.mlp_channels);
        unit_masks m;
        m.heads = std::move(g.heads);
        m.kv_groups = std::move(g.kv_groups);
        m.mlps = std::move(g.mlps);
        m.channels = flag_rows(mask.mlp_channels);
        return m;
    }
};

/// How many units of each kind a model has, per layer.
struct unit_count {
    std::vector<int> query_heads;   ///< per layer
    std::vector<int> kv_groups;     ///< per layer
    std::vector<int> mlp_channels;  ///< per layer (0: MLP removed)

    /// Layers.
    [[nodiscard]] std::size_t layers() const { return query_heads.size(); }
    /// Units of one kind in the whole model (an MLP counts when its width is > 0).
    [[nodiscard]] std::int64_t total(unit_kind kind) const {
        auto sum = [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), std::int64_t{0}); };
        switch (kind) {
        case unit_kind::query_head: return sum(query_heads);
        case unit_kind::kv_group: return sum(kv_groups);
        case unit_kind::mlp: return std::count_if(mlp_channels.begin(), mlp_channels.end(), [](int f) { return f > 0; });
        case unit_kind::mlp_channel: return sum(mlp_channels);
        case unit_kind::layer: return static_cast<std::int64_t>(layers());
        }
        return 0;
    }
};

/// The units of `w`, per layer.
[[nodiscard]] inline unit_count unit_counts(const weights& w) {
    unit_count c;
    for (const auto& L : w.layers) {
        c.query_heads.push_back(L.q_heads);
        c.kv_groups.push_back(L.kv_heads);
        c.mlp_channels.push_back(L.ffn);
    }
    return c;
}

namespace detail {

/// value_error unless v is 0 or 1.
inline void check_flag(float v, const std::string& at) {
    if (v != 0.0f && v != 1.0f) throw value_error(at + " = " + number_text(v) + " (expected 0 = remove or 1 = keep)");
}

/// shape_error / value_error unless `part` (rows of a unit_masks) has one row per layer, each
/// empty or of count(l) entries, all 0 or 1.
template <class Count>
void check_rows(const std::vector<std::vector<float>>& part, const char* name, const char* unit, std::size_t layers,
                Count count) {
    if (part.empty()) return;
    if (part.size() != layers) {
        throw shape_error(std::string("compact: ") + name + " has " + std::to_string(part.size()) + " rows (expected " +
                          std::to_string(layers) + ", one per layer)");
    }
    for (std::size_t l = 0; l < layers; ++l) {
        const auto n = static_cast<std::size_t>(count(l));
        const std::string at = std::string("compact: ") + name + "[" + std::to_string(l) + "]";
        if (!part[l].empty() && part[l].size() != n) {
            throw shape_error(at + " has " + std::to_string(part[l].size()) + " entries (expected " + std::to_string(n) +
                              ", the " + unit + " of layer " + std::to_string(l) + ")");
        }
        for (std::size_t i = 0; i < part[l].size(); ++i) check_flag(part[l][i], at + "[" + std::to_string(i) + "]");
    }
}

/// The checks of check_rows for a per-layer part (mlps, layers).
inline void check_flat(const std::vector<float>& part, const char* name, std::size_t layers) {
    if (!part.empty() && part.size() != layers) {
        throw shape_error(std::string("compact: ") + name + " has " + std::to_string(part.size()) + " entries (expected " +
                          std::to_string(layers) + ", one per layer)");
    }
    for (std::size_t l = 0; l < part.size(); ++l) check_flag(part[l], std::string("compact: ") + name + "[" + std::to_string(l) + "]");
}

/// Every part of `m` checked against `w` (shape_error naming the part, the layer and the count expected).
inline void check_masks(const unit_masks& m, const weights& w) {
    const std::size_t L = w.layers.size();
    check_rows(m.heads, "heads", "query heads", L, [&](std::size_t l) { return w.layers[l].q_heads; });
    check_rows(m.kv_groups, "kv_groups", "K/V heads", L, [&](std::size_t l) { return w.layers[l].kv_heads; });
    check_rows(m.channels, "channels", "MLP channels", L, [&](std::size_t l) { return w.layers[l].ffn; });
    check_flat(m.mlps, "mlps", L);
    check_flat(m.layers, "layers", L);
    if (!m.layers.empty() && std::none_of(m.layers.begin(), m.layers.end(), [](float v) { return v != 0.0f; }))
        throw value_error("compact: the layers mask removes every layer (expected at least one kept)");
}

/// Whether unit i of layer l is kept by `part`.
inline bool kept(const std::vector<std::vector<float>>& part, std::size_t l, int i) {
    return part.empty() || part[l].empty() || part[l][static_cast<std::size_t>(i)] != 0.0f;
}

/// The units of one layer that survive (old indices, ascending).
struct layer_plan {
    std::vector<int> heads;     ///< query heads
    std::vector<int> groups;    ///< K/V heads
    std::vector<int> channels;  ///< MLP channels
};

/// The query heads and K/V groups layer l keeps; value_error when groups would be unequal.
inline void plan_attention(const layer_weights& L, const unit_masks& m, std::size_t l, layer_plan& plan) {
    if (L.kv_heads == 0) return;
    const int group = L.q_heads / L.kv_heads;
    int first_group = -1, per_group = 0;
    for (int g = 0; g < L.kv_heads; ++g) {
        std::vector<int> heads;
        for (int h = g * group; h < (g + 1) * group; ++h)
            if (kept(m.kv_groups, l, g) && kept(m.heads, l, h)) heads.push_back(h);
        if (heads.empty()) continue;  // the whole group goes
        if (first_group >= 0 && static_cast<int>(heads.size()) != per_group) {
            throw value_error("compact: layer " + std::to_string(l) + " would keep " + std::to_string(per_group) +
                              " query heads in K/V group " + std::to_string(first_group) + " and " +
                              std::to_string(heads.size()) + " in group " + std::to_string(g) +
                              " (every group must keep the same number: the forward pass and config.json assume uniform groups)");
        }
        if (first_group < 0) {
            first_group = g;
            per_group = static_cast<int>(heads.size());
        }
        plan.groups.push_back(g);
        plan.heads.insert(plan.heads.end(), heads.begin(), heads.end());
    }
}

/// The plan of layer l: attention units and the MLP channels kept (none when the MLP goes).
inline layer_plan plan_layer(const layer_weights& L, const unit_masks& m, std::size_t l) {
    layer_plan plan;
    plan_attention(L, m, l, plan);
    if (m.mlps.empty() || m.mlps[l] != 0.0f)
        for (int j = 0; j < L.ffn; ++j)
            if (kept(m.channels, l, j)) plan.channels.push_back(j);
    return plan;
}

/// Row indices base + b * width + i of the blocks `blocks` (each `width` rows), in order.
inline std::vector<int> block_rows(const std::vector<int>& blocks, int width, int base = 0) {
    std::vector<int> rows;
    for (int b : blocks)
        for (int i = 0; i < width; ++i) rows.push_back(base + b * width + i);
    return rows;
}

/// The rows `rows` of the row-major matrix m [*, cols] (a vector when cols = 1); empty stays empty.
inline std::vector<float> take_rows(const std::vector<float>& m, std::size_t cols, const std::vector<int>& rows) {
    std::vector<float> out;
    if (m.empty()) return out;
    out.reserve(rows.size() * cols);
    for (int r : rows) {
        const auto at = m.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * cols);
        out.insert(out.end(), at, at + static_cast<std::ptrdiff_t>(cols));
    }
    return out;
}

/// The columns `keep` of the row-major matrix m [rows, cols].
inline std::vector<float> take_columns(const std::vector<float>& m, std::size_t rows, std::size_t cols,
                                       const std::vector<int>& keep) {
    std::vector<float> out;
    out.reserve(rows * keep.size());
    for (std::size_t r = 0; r < rows; ++r)
        for (int c : keep) out.push_back(m[r * cols + static_cast<std::size_t>(c)]);
    return out;
}

/// Layer L cut down to `plan` (hidden size H).
inline layer_weights compact_layer(const layer_weights& L, const layer_plan& plan, std::size_t H, bool llama) {
    layer_weights c = L;
    const int d = L.head_dim;
    c.q_heads = static_cast<int>(plan.heads.size());
    c.kv_heads = static_cast<int>(plan.groups.size());
    c.ffn = static_cast<int>(plan.channels.size());
    std::vector<int> qkv = block_rows(plan.heads, d);
    for (int base : {L.q_heads * d, (L.q_heads + L.kv_heads) * d}) {
        const std::vector<int> kv = block_rows(plan.groups, d, base);
        qkv.insert(qkv.end(), kv.begin(), kv.end());
    }
    c.qkv = take_rows(L.qkv, H, qkv);
    c.qkv_bias = take_rows(L.qkv_bias, 1, qkv);
    c.out = take_columns(L.out, H, static_cast<std::size_t>(L.attention_width()), block_rows(plan.heads, d));
    std::vector<int> up = plan.channels;
    if (llama)
        for (int j : plan.channels) up.push_back(L.ffn + j);
    c.up = take_rows(L.up, H, up);
    c.up_bias = take_rows(L.up_bias, 1, up);
    c.down = take_columns(L.down, H, static_cast<std::size_t>(L.ffn), plan.channels);
    if (c.ffn == 0) std::fill(c.down_bias.begin(), c.down_bias.end(), 0.0f);
    return c;
}

/// `values` as config.json writes a width: the number when every layer agrees and it is > 0, else the list.
inline io::json width_json(const std::vector<int>& values) {
    const bool uniform = std::all_of(values.begin(), values.end(), [&](int v) { return v == values.front() && v > 0; });
    return uniform ? io::json(values.front()) : io::json(values);
}

/// Sets a width of cfg (scalar, or the per-layer list) and its config.json key.
inline void set_width(config& cfg, const char* key, const std::vector<int>& values, int& scalar, std::vector<int>& list) {
    const io::json j = width_json(values);
    cfg.source[key] = j;
    list.clear();
    if (j.is_array()) list = values;
    scalar = j.is_array() ? *std::max_element(values.begin(), values.end()) : values.front();
}

/// Original (as first loaded) indices of the heads of GPT-2 layer l that `w` still holds.
inline std::vector<int> original_heads(const config& cfg, const layer_weights& L, std::size_t l) {
    std::vector<int> kept;
    for (int h = 0; h < cfg.num_attention_heads; ++h)
        if (cfg.pruned_heads.empty() || !std::binary_search(cfg.pruned_heads[l].begin(), cfg.pruned_heads[l].end(), h))
            kept.push_back(h);
    if (static_cast<int>(kept.size()) != L.q_heads) {
        throw value_error("compact: GPT-2 layer " + std::to_string(l) + " holds " + std::to_string(L.q_heads) +
                          " heads, its config " + std::to_string(kept.size()) + " (n_head minus pruned_heads)");
    }
    return kept;
}

/// GPT-2's pruned_heads after compaction: per kept layer, the original heads not kept.
inline void set_pruned_heads(config& cfg, const weights& w, const std::vector<std::size_t>& layers,
                             const std::vector<layer_plan>& plans) {
    std::vector<std::vector<int>> pruned;
    io::json j = io::json::object();
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const std::vector<int> before = original_heads(w.cfg, w.layers[layers[i]], layers[i]);
        std::vector<int> keep, gone;
        for (int h : plans[i].heads) keep.push_back(before[static_cast<std::size_t>(h)]);
        for (int h = 0; h < cfg.num_attention_heads; ++h)
            if (!std::binary_search(keep.begin(), keep.end(), h)) gone.push_back(h);
        if (!gone.empty()) j[std::to_string(i)] = gone;
        pruned.push_back(std::move(gone));
    }
    const bool any = !j.empty();
    cfg.pruned_heads = any ? pruned : std::vector<std::vector<int>>{};
    if (any) cfg.source["pruned_heads"] = j;
    else cfg.source.erase("pruned_heads");
}

/// cfg of the compacted model `out` (layers = the old indices kept, plans = theirs) and its config.json.
inline void write_config(weights& out, const weights& w, const std::vector<std::size_t>& layers,
                         const std::vector<layer_plan>& plans) {
    config& cfg = out.cfg;
    std::vector<int> q, kv, ffn;
    for (const auto& L : out.layers) {
        q.push_back(L.q_heads);
        kv.push_back(L.kv_heads);
        ffn.push_back(L.ffn);
    }
    cfg.num_hidden_layers = static_cast<int>(out.layers.size());
    const bool llama = cfg.is_llama();
    cfg.source[llama ? "num_hidden_layers" : "n_layer"] = cfg.num_hidden_layers;
    set_width(cfg, llama ? "intermediate_size" : "n_inner", ffn, cfg.intermediate_size, cfg.layer_ffn);
    if (!llama) {
        set_pruned_heads(cfg, w, layers, plans);
        cfg.layer_heads = cfg.pruned_heads.empty() ? std::vector<int>{} : q;
        cfg.layer_kv_heads = cfg.layer_heads;
        return;
    }
    const bool uniform = width_json(q).is_number() && width_json(kv).is_number();
    cfg.source["head_dim"] = cfg.head_dim;
    cfg.source["num_attention_heads"] = uniform ? io::json(q.front()) : io::json(q);
    cfg.source["num_key_value_heads"] = uniform ? io::json(kv.front()) : io::json(kv);
    cfg.num_attention_heads = *std::max_element(q.begin(), q.end());
    cfg.num_key_value_heads = *std::max_element(kv.begin(), kv.end());
    cfg.layer_heads = uniform ? std::vector<int>{} : q;
    cfg.layer_kv_heads = uniform ? std::vector<int>{} : kv;
}

}  // namespace detail

/// A copy of `w` without the units `masks` removes (see the header comment), with its config
/// and config.json updated. shape_error when a part of the masks does not fit the model (naming
/// the part, the layer and the count expected); value_error when a value is not 0 or 1, when a
/// layer would keep unequal query heads per K/V group, or when every layer would be removed.
[[nodiscard]] inline weights compact(const weights& w, const unit_masks& masks) {
    detail::check_masks(masks, w);
    weights out;
    out.cfg = w.cfg;
    out.embed = w.embed;
    out.positions = w.positions;
    out.final_norm = w.final_norm;
    out.final_norm_bias = w.final_norm_bias;
    out.lm_head = w.lm_head;
    std::vector<std::size_t> layers;
    std::vector<detail::layer_plan> plans;
    const auto H = static_cast<std::size_t>(w.cfg.hidden_size);
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        if (!masks.layers.empty() && masks.layers[l] == 0.0f) continue;
        plans.push_back(detail::plan_layer(w.layers[l], masks, l));
        layers.push_back(l);
        out.layers.push_back(detail::compact_layer(w.layers[l], plans.back(), H, w.cfg.is_llama()));
    }
    detail::write_config(out, w, layers, plans);
    out.cfg.validate("compact");
    return out;
}

}  // namespace prune::decoder
