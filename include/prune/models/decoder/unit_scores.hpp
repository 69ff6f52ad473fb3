// prune/models/decoder/unit_scores.hpp: two scores of a causal LM's structures beside Michel's
// gate importance (importance.hpp): first-order Taylor scores of query heads, K/V groups, MLPs,
// MLP channels and whole layers, and ShortGPT's Block Influence of each layer.
//
// Taylor: T(unit) = | sum over the unit's parameters theta of theta * dL/dtheta |, L the mean
// NLL over every predicted token of every sequence of the data (one loss for the whole data
// set). The order is fixed: the gradient is summed over the data set first (each batch's
// token-mean gradient weighted by its share of the predicted tokens), then theta * dL/dtheta is
// summed over the unit, then the absolute value is taken -- the first-order estimate of how much
// L changes when the unit is zeroed. Units, in the in-memory layout of weights.hpp (d = head_dim):
//
//   query head h    q rows [h d, (h+1) d) of qkv and their bias entries; o_proj columns [h d, (h+1) d)
//   K/V group g     k rows and v rows [g d, (g+1) d) and their bias entries, plus every query head of
//                   the group (GPT-2: Hkv = Hq, so group g = head g's q, k, v rows and c_proj columns)
//   MLP             Llama: gate and up rows, down, their biases; GPT-2: c_fc, mlp.c_proj, their biases
//   MLP channel j   Llama: gate row j, up row j, their bias entries j, down column j;
//                   GPT-2: c_fc row j (in memory [F, H]), c_fc bias j, mlp.c_proj column j
//   layer           every parameter of the layer, norms and the o_proj / down biases included
//
// o_proj's bias belongs to no head (only to its layer); down's bias belongs to the MLP, not to a
// channel. Gates (optional) are applied as the forward pass applies them: a gated-off head's
// parameters get no gradient, so it scores 0.
//
// Block Influence (Men et al., ShortGPT): BI_l = 1 - mean over tokens t of cos(h_l[t], h_{l+1}[t]),
// h_l the residual stream entering layer l and h_{l+1} the one leaving it (before the final
// norm), over every token (the last of each sequence included) of every sequence, computed layer
// by layer with embed_sequences / run_layer. Where a vector is zero the cosine is undefined; here
// it is 1 when both are zero (the layer left the token where it was) and 0 when only one is (as
// for orthogonal vectors). Sums in double, rows in order: results do not depend on threads.
#pragma once

#include <prune/models/decoder/backward.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/importance.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// First-order Taylor scores |sum theta dL/dtheta| of a decoder's units (see the header comment).
struct taylor_scores {
    std::vector<std::vector<double>> heads;      ///< layers x query heads
    std::vector<std::vector<double>> kv_groups;  ///< layers x K/V heads
    std::vector<double> mlps;                    ///< one per layer (0 for a removed MLP)
    std::vector<std::vector<double>> channels;   ///< layers x MLP width
    std::vector<double> layers;                  ///< one per layer
};

namespace detail {

/// Zeroed scores shaped like w's layers.
inline taylor_scores zero_taylor_scores(const weights& w) {
    taylor_scores s;
    for (const auto& L : w.layers) {
        s.heads.emplace_back(static_cast<std::size_t>(L.q_heads), 0.0);
        s.kv_groups.emplace_back(static_cast<std::size_t>(L.kv_heads), 0.0);
        s.channels.emplace_back(static_cast<std::size_t>(L.ffn), 0.0);
    }
    s.mlps.assign(w.layers.size(), 0.0);
    s.layers.assign(w.layers.size(), 0.0);
    return s;
}

/// sum over i < n of a[i] b[i], in double.
inline double dot_double(const float* a, const float* b, std::size_t n) {
    double s = 0.0;
    for (std::size_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * static_cast<double>(b[i]);
    return s;
}

/// out[r] = sum over row r of W * G ([rows, cols]) + bias[r] * dbias[r] (when there is a bias).
inline void row_products(const std::vector<float>& W, const std::vector<float>& G, std::size_t rows, std::size_t cols,
                         const std::vector<float>& bias, const std::vector<float>& dbias, std::vector<double>& out) {
    out.assign(rows, 0.0);
    for (std::size_t r = 0; r < rows; ++r) {
        out[r] = dot_double(W.data() + r * cols, G.data() + r * cols, cols);
        if (!bias.empty()) out[r] += static_cast<double>(bias[r]) * static_cast<double>(dbias[r]);
    }
}

/// out[c] = sum over column c of W * G ([rows, cols]).
inline void column_products(const std::vector<float>& W, const std::vector<float>& G, std::size_t rows, std::size_t cols,
                            std::vector<double>& out) {
    out.assign(cols, 0.0);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t c = 0; c < cols; ++c) out[c] += static_cast<double>(W[r * cols + c]) * static_cast<double>(G[r * cols + c]);
}

/// v[begin] + ... + v[begin + n - 1].
inline double range_sum(const std::vector<double>& v, std::size_t begin, std::size_t n) {
    double s = 0.0;
    for (std::size_t i = begin; i < begin + n; ++i) s += v[i];
    return s;
}

/// Per-row / per-column products of one layer (reused across layers and batches).
struct taylor_buffers {
    std::vector<double> rows, cols, heads;  ///< row sums, column sums, one layer's head sums
};

/// Adds scale x (signed unit sums of layer l's heads and K/V groups) to s, W the layer, G its gradient.
inline void add_attention_terms(const layer_weights& W, const layer_weights& G, int hidden, double scale, std::size_t l,
                                taylor_scores& s, taylor_buffers& b) {
    const auto d = static_cast<std::size_t>(W.head_dim), Hq = static_cast<std::size_t>(W.q_heads);
    const auto Hkv = static_cast<std::size_t>(W.kv_heads), A = Hq * d, H = static_cast<std::size_t>(hidden);
    if (A == 0) return;
    row_products(W.qkv, G.qkv, static_cast<std::size_t>(W.qkv_rows()), H, W.qkv_bias, G.qkv_bias, b.rows);
    column_products(W.out, G.out, H, A, b.cols);
    b.heads.assign(Hq, 0.0);
    for (std::size_t h = 0; h < Hq; ++h) {
        b.heads[h] = range_sum(b.rows, h * d, d) + range_sum(b.cols, h * d, d);
        s.heads[l][h] += scale * b.heads[h];
    }
    const std::size_t group = Hkv == 0 ? 0 : Hq / Hkv;
    for (std::size_t g = 0; g < Hkv; ++g) {
        const double kv = range_sum(b.rows, A + g * d, d) + range_sum(b.rows, A + (Hkv + g) * d, d);
        s.kv_groups[l][g] += scale * (kv + range_sum(b.heads, g * group, group));
    }
}

/// Adds scale x (signed sums of layer l's MLP channels and MLP) to s.
inline void add_mlp_terms(const layer_weights& W, const layer_weights& G, int hidden, bool llama, double scale, std::size_t l,
                          taylor_scores& s, taylor_buffers& b) {
    const auto F = static_cast<std::size_t>(W.ffn), H = static_cast<std::size_t>(hidden);
    if (F == 0) return;
    row_products(W.up, G.up, llama ? 2 * F : F, H, W.up_bias, G.up_bias, b.rows);
    column_products(W.down, G.down, H, F, b.cols);
    double mlp = W.down_bias.empty() ? 0.0 : dot_double(W.down_bias.data(), G.down_bias.data(), H);
    for (std::size_t j = 0; j < F; ++j) {
        const double channel = b.rows[j] + (llama ? b.rows[F + j] : 0.0) + b.cols[j];
        s.channels[l][j] += scale * channel;
        mlp += channel;
    }
    s.mlps[l] += scale * mlp;
}

/// sum over every parameter of the layer of W * G.
inline double layer_product(const layer_weights& W, const layer_weights& G) {
    double s = 0.0;
    for (auto m : {&layer_weights::norm1, &layer_weights::norm1_bias, &layer_weights::qkv, &layer_weights::qkv_bias,
                   &layer_weights::out, &layer_weights::out_bias, &layer_weights::norm2, &layer_weights::norm2_bias,
                   &layer_weights::up, &layer_weights::up_bias, &layer_weights::down, &layer_weights::down_bias})
        s += dot_double((W.*m).data(), (G.*m).data(), (W.*m).size());
    return s;
}

/// Sets every parameter of g to 0.
inline void zero_all(weights& g) {
    for (auto& p : parameters(g)) {
        const std::span<float> v = p.values();
        std::fill(v.begin(), v.end(), 0.0f);
    }
}

/// Checks every sequence of `data` (naming it "example i" as `where` does) and returns the
/// predicted tokens in all; throws value_error when there is no sequence or batch_size is 0.
inline std::int64_t checked_predicted(const config& cfg, std::span<const std::vector<std::int32_t>> data, std::size_t batch_size,
                                      const std::string& where) {
    if (data.empty()) throw value_error(where + ": no sequences (expected at least one)");
    if (batch_size == 0) throw value_error(where + ": batch_size must be > 0");
    std::int64_t predicted = 0;
    for (std::size_t i = 0; i < data.size(); ++i) {
        sequences::check(data[i], cfg, "example " + std::to_string(i));
        predicted += static_cast<std::int64_t>(data[i].size()) - 1;
    }
    return predicted;
}

}  // namespace detail

/// First-order Taylor scores of every query head, K/V group, MLP, MLP channel and layer of `w`
/// over `data` (token sequences), the gates at `gate` (null: all 1), batch_size sequences per
/// training pass on `threads` threads (0: every core). Throws value_error naming the example on an
/// empty or too long sequence or a token outside the vocabulary, and when the data predict no
/// token (every sequence of one token); shape_error when the gates do not fit.
[[nodiscard]] inline taylor_scores taylor_importance(const weights& w, std::span<const std::vector<std::int32_t>> data,
                                                     const gates* gate = nullptr, std::size_t batch_size = 8, int threads = 0) {
    const std::int64_t predicted = detail::checked_predicted(w.cfg, data, batch_size, "decoder::taylor_importance");
    if (predicted == 0)
        throw value_error("decoder::taylor_importance: the data predict no token (every sequence has 1 token; expected one of >= 2)");
    if (gate != nullptr) gate->check(w);
    taylor_scores s = detail::zero_taylor_scores(w);
    importance_workspace ws(threads);
    detail::taylor_buffers buffers;
    weights grads = zero_gradients(w);
    const int hidden = w.cfg.hidden_size;
    for (std::size_t start = 0; start < data.size(); start += batch_size) {
        detail::pack_batch(w.cfg, data, start, std::min(data.size(), start + batch_size), ws);
        detail::zero_all(grads);
        (void)train_pass(w, ws.batch, ws.forward, ws.training, &grads, training_options{}, gate);
        // The batch's token-mean gradient times its share of the data set's predicted tokens.
        const double scale = static_cast<double>(ws.training.result.total_predicted()) / static_cast<double>(predicted);
        for (std::size_t l = 0; l < w.layers.size(); ++l) {
            const layer_weights &W = w.layers[l], &G = grads.layers[l];
            detail::add_attention_terms(W, G, hidden, scale, l, s, buffers);
            detail::add_mlp_terms(W, G, hidden, w.cfg.is_llama(), scale, l, s, buffers);
            s.layers[l] += scale * detail::layer_product(W, G);
        }
    }
    auto absolute = [](std::vector<double>& v) {
        for (double& x : v) x = std::abs(x);
    };
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        absolute(s.heads[l]);
        absolute(s.kv_groups[l]);
        absolute(s.channels[l]);
    }
    absolute(s.mlps);
    absolute(s.layers);
    return s;
}

namespace detail {

/// cos(a, b) over n values in double; 1 when both are zero, 0 when only one is.
inline double cosine_or_convention(const float* a, const float* b, std::size_t n) {
    const double ab = dot_double(a, b, n), aa = dot_double(a, a, n), bb = dot_double(b, b, n);
    if (aa == 0.0 && bb == 0.0) return 1.0;
    if (aa == 0.0 || bb == 0.0) return 0.0;
    return ab / std::sqrt(aa * bb);
}

}  // namespace detail

/// Block Influence of every layer of `w` over `data` (token sequences): BI_l = 1 - mean over
/// every token of cos(h_l, h_{l+1}), zero vectors as the header comment says; gates at `gate`
/// (null: all 1), batch_size sequences per pass on `threads` threads (0: every core). Throws
/// value_error naming the example on an empty or too long sequence or a token outside the
/// vocabulary; shape_error when the gates do not fit.
[[nodiscard]] inline std::vector<double> block_influence(const weights& w, std::span<const std::vector<std::int32_t>> data,
                                                         const gates* gate = nullptr, std::size_t batch_size = 8, int threads = 0) {
    (void)detail::checked_predicted(w.cfg, data, batch_size, "decoder::block_influence");
    if (gate != nullptr) gate->check(w);
    const std::size_t L = w.layers.size(), H = static_cast<std::size_t>(w.cfg.hidden_size);
    std::vector<double> sums(L, 0.0), cosines;
    std::vector<float> h, before;
    double tokens = 0.0;
    importance_workspace ws(threads);
    for (std::size_t start = 0; start < data.size(); start += batch_size) {
        detail::pack_batch(w.cfg, data, start, std::min(data.size(), start + batch_size), ws);
        const auto T = static_cast<std::size_t>(ws.batch.total());
        h.resize(T * H);
        embed_sequences(w, ws.batch, ws.forward, h);
        for (std::size_t l = 0; l < L; ++l) {
            before = h;
            run_layer(w, l, ws.batch, ws.forward, h, gate);
            cosines.assign(T, 0.0);
            ws.forward.pool().for_rows(T, H, [&](std::size_t r) {
                cosines[r] = detail::cosine_or_convention(before.data() + r * H, h.data() + r * H, H);
            });
            for (double c : cosines) sums[l] += c;
        }
        tokens += static_cast<double>(T);
    }
    for (double& s : sums) s = 1.0 - s / tokens;
    return sums;
}

}  // namespace prune::decoder
