// prune/models/decoder/backward.hpp: the training pass of a causal LM (Llama family or GPT-2):
// a recording forward pass, the next-token loss and the backward pass -- gradients of every
// parameter and of the query-head, KV-group and MLP gates, per sequence.
//
// The backward pass of a layer is the forward pass's list of named calls reversed, each on
// the runtime's kernels (nn/):
//
//   forward                                       backward
//   x1 = norm1(h)                                 dh += norm1'(dx1)
//   qkv = linear(x1); rotate(q, k)                dx1 = linear'(rotate^-1(dqkv))
//   context = attention(q, k, v); gated = g ctx   dq, dk, dv, dL/dg = nn::attention_backward(dgated)
//   h += linear(gated)                            dgated = linear'(dh)
//   x2 = norm2(h)                                 dh += norm2'(dx2)
//   pre = linear(x2); act = activation(pre)       dx2 = linear'(activation'(dact))
//   mlp_out = linear(act); h += g_mlp mlp_out     dact = linear'(g_mlp dh); dL/dg_mlp = <mlp_out, dh>
//
// (linear' = the data gradient, with the weight and bias gradients added beside it.)
//
// The loss (REFERENCE: mean NLL of positions 1..n-1 given their prefixes):
// loss_reduction::token_mean is the mean over every predicted token of the batch (Hugging
// Face's causal-LM loss: training, per-batch importance); loss_reduction::sequence_means is the
// sum over sequences of each sequence's own mean NLL, so that the gate gradients read off row b
// are dL(sequence b)/dxi (sequences in a packed batch never interact): per-example importance
// from one backward pass per batch. A sequence of one token predicts nothing and contributes 0.
//
// Gate gradients: attention gives dL/dg_h for the effective gate g_h = heads[h] kv_groups[h /
// group] of each query head (sum over the sequence's rows of <context_h, dL/dgated_h>); the
// chain rule splits it into dL/dheads[h] = dL/dg_h kv_groups[g] and dL/dkv_groups[g] = sum over
// the group's heads of dL/dg_h heads[h]. The MLP gate: sum over rows of <mlp_out, dL/dh>.
//
// Results do not depend on the thread count (products through nn::split_gemm / gemm_pair,
// column sums split by columns, per-sequence gate sums in row order). The workspaces grow only.
#pragma once

#include <prune/models/decoder/forward.hpp>
#include <prune/nn/attention.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/kernels.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// How the per-token losses of a batch are combined.
enum class loss_reduction {
    token_mean,      ///< mean NLL over every predicted token of the batch (training; Hugging Face's)
    sequence_means,  ///< sum over sequences of each one's mean NLL (per-sequence gate gradients)
};

/// How one training pass runs.
struct training_options {
    loss_reduction reduction = loss_reduction::token_mean;  ///< the loss
    bool parameter_gradients = true;                         ///< false: gate gradients only (importance)
};

/// The gate gradients of the last pass, per sequence (row b = sequence b), flat over layers.
struct gate_gradients {
    std::vector<std::size_t> head_offsets{0};  ///< L + 1: layer l's query heads start at head_offsets[l]
    std::vector<std::size_t> kv_offsets{0};    ///< L + 1: layer l's K/V heads start at kv_offsets[l]
    std::size_t sequences = 0;                 ///< rows
    std::vector<double> heads;                 ///< [sequences x total heads] dL/dheads[l][h]
    std::vector<double> kv_groups;             ///< [sequences x total K/V heads] dL/dkv_groups[l][g]
    std::vector<double> mlps;                  ///< [sequences x layers] dL/dmlps[l]

    /// Layers.
    [[nodiscard]] std::size_t layers() const { return head_offsets.size() - 1; }
    /// Query heads over all layers.
    [[nodiscard]] std::size_t total_heads() const { return head_offsets.back(); }
    /// K/V heads over all layers.
    [[nodiscard]] std::size_t total_kv_groups() const { return kv_offsets.back(); }
    /// Sequence b's head gate gradients (flat).
    [[nodiscard]] std::span<const double> heads_of(std::size_t b) const { return {heads.data() + b * total_heads(), total_heads()}; }
    /// Sequence b's KV-group gate gradients (flat).
    [[nodiscard]] std::span<const double> kv_groups_of(std::size_t b) const {
        return {kv_groups.data() + b * total_kv_groups(), total_kv_groups()};
    }
    /// Sequence b's MLP gate gradients.
    [[nodiscard]] std::span<const double> mlps_of(std::size_t b) const { return {mlps.data() + b * layers(), layers()}; }
    /// Sums the rows into `out` (resized): the batch's gradient of each gate of one kind.
    static void totals(const std::vector<double>& rows, std::size_t width, std::vector<double>& out) {
        out.assign(width, 0.0);
        for (std::size_t i = 0; i < rows.size(); ++i) out[i % width] += rows[i];
    }

    /// Sized (and zeroed) for `w` and B sequences.
    void reset(const weights& w, std::size_t B) {
        head_offsets.assign(1, 0);
        kv_offsets.assign(1, 0);
        for (const auto& L : w.layers) {
            head_offsets.push_back(head_offsets.back() + static_cast<std::size_t>(L.q_heads));
            kv_offsets.push_back(kv_offsets.back() + static_cast<std::size_t>(L.kv_heads));
        }
        sequences = B;
        heads.assign(B * total_heads(), 0.0);
        kv_groups.assign(B * total_kv_groups(), 0.0);
        mlps.assign(B * layers(), 0.0);
    }
};

/// Memory of the training pass beyond the forward workspace (grows only; one pass at a time).
struct training_workspace {
    forward_cache cache;                              ///< what the forward pass recorded
    gate_gradients gates;                             ///< the gate gradients of the last pass
    forward_result result;                            ///< per-sequence NLL of the last pass
    double loss = 0.0;                                ///< the loss of the last pass (reduced as asked)
    std::vector<float> dh, dx, dctx, dqkv, dpre, dact;  ///< gradients of the activations
    std::vector<float> row_scale;                     ///< [T] each row's loss weight (0: predicts nothing)
    std::vector<double> effective;                    ///< [B x Hq] dL/d(effective head gate) of one layer
};

/// Zero gradients shaped like `w` (every parameter present in w, zeroed).
[[nodiscard]] inline weights zero_gradients(const weights& w) {
    weights g = w;
    for (auto& p : parameters(g))
        for (float& v : p.values()) v = 0.0f;
    return g;
}

namespace detail {

/// The data of v, or null when v is empty (an absent bias or shift).
inline float* data_or_null(std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

/// dx[T, in] = dy[T, out] W[out, in]; dW (+)= dy^T x and db += column sums of dy when not null.
inline void linear_backward(const pass& p, const float* x, int in, const std::vector<float>& W, int out, const float* dy,
                            float* dx, float* dW, float* db) {
    const int T = static_cast<int>(p.T);
    if (in == 0) return;
    if (out == 0) {
        std::fill(dx, dx + static_cast<std::size_t>(p.T) * static_cast<std::size_t>(in), 0.0f);
        return;
    }
    const nn::gemm_call<float> data{false, false, T, in, out, 1.0f, dy, out, W.data(), in, 0.0f, dx, in};
    const nn::gemm_call<float> weight{true, false, out, in, T, 1.0f, dy, out, x, in, 1.0f, dW, in};
    nn::gemm_pair<float>(p.pool, data, dW != nullptr ? &weight : nullptr);
    if (db != nullptr) nn::add_column_sums<float>(p.pool, static_cast<std::size_t>(p.T), out, dy, static_cast<std::size_t>(out), db);
}

/// dh += norm'(dy) row by row (dy is overwritten); the scale / shift gradients added first.
inline void norm_backward(const pass& p, const std::vector<float>& scale, const float* xhat, const float* rstd, float* dy,
                          float* dh, float* dscale, float* dshift) {
    const auto H = static_cast<std::size_t>(p.H);
    if (dscale != nullptr) nn::add_norm_parameter_grads<float>(p.pool, static_cast<std::size_t>(p.T), p.H, dy, xhat, dscale, dshift);
    p.pool.for_rows(static_cast<std::size_t>(p.T), H, [&](std::size_t r) {
        float* d = dy + r * H;
        if (p.cfg.is_llama()) nn::rms_norm_backward(d, xhat + r * H, rstd[r], scale.data(), d, p.H);
        else nn::layer_norm_backward(d, xhat + r * H, rstd[r], scale.data(), d, p.H);
        float* out = dh + r * H;
        for (std::size_t c = 0; c < H; ++c) out[c] += d[c];
    });
}

/// dpre = activation'(pre) dact: SwiGLU (gate | up) for llama, GELU for gpt2.
inline void activation_backward(const pass& p, int F, const float* pre, const float* dact, float* dpre) {
    const auto Fs = static_cast<std::size_t>(F);
    const activation a = p.cfg.act;
    p.pool.for_rows(static_cast<std::size_t>(p.T), Fs, [&](std::size_t r) {
        if (a == activation::silu) {
            const float* g = pre + r * 2 * Fs;
            nn::swiglu_backward(g, g + Fs, dact + r * Fs, dpre + r * 2 * Fs, dpre + r * 2 * Fs + Fs, F);
            return;
        }
        float* d = dpre + r * Fs;
        std::copy(dact + r * Fs, dact + r * Fs + Fs, d);
        if (a == activation::gelu_tanh) nn::gelu_tanh_backward(pre + r * Fs, d, F);
        else nn::gelu_backward(pre + r * Fs, d, F);
    });
}

/// out[b] += sum over sequence b's rows of <a[r], c[r]> (rows of H), in double, in row order.
inline void sequence_dots(const pass& p, const float* a, const float* c, double* out, std::size_t stride) {
    const auto H = static_cast<std::size_t>(p.H);
    p.pool.parallel_tasks(p.seq.count(), [&](std::int64_t b, int) {
        double s = 0.0;
        const auto bs = static_cast<std::size_t>(b);
        for (auto r = static_cast<std::size_t>(p.seq.offsets[bs]); r < static_cast<std::size_t>(p.seq.offsets[bs + 1]); ++r)
            s += static_cast<double>(nn::dot(a + r * H, c + r * H, p.H));
        out[bs * stride] += s;
    });
}

/// Splits the effective head-gate gradients of layer l (tw.effective, [B x Hq]) into the
/// query-head and KV-group gate gradients (chain rule, see the header comment).
inline void split_gate_gradients(const layer_weights& L, std::size_t l, const gates* g, training_workspace& tw) {
    gate_gradients& out = tw.gates;
    const int group = L.q_heads / L.kv_heads;
    for (std::size_t b = 0; b < out.sequences; ++b) {
        const double* e = tw.effective.data() + b * static_cast<std::size_t>(L.q_heads);
        double* heads = out.heads.data() + b * out.total_heads() + out.head_offsets[l];
        double* kv = out.kv_groups.data() + b * out.total_kv_groups() + out.kv_offsets[l];
        for (int h = 0; h < L.q_heads; ++h) {
            const auto hs = static_cast<std::size_t>(h), gs = static_cast<std::size_t>(h / group);
            const double head_gate = g != nullptr ? g->head(l, hs) : 1.0;
            const double kv_gate = g != nullptr ? g->kv_group(l, gs) : 1.0;
            heads[hs] = e[hs] * kv_gate;
            kv[gs] += e[hs] * head_gate;
        }
    }
}

/// Attention backward of layer L: from dgated [T, A] (overwritten) to dqkv [T, rows] (q and k
/// rotated back) and the effective gate gradients per sequence.
inline void attention_backward(const pass& p, const layer_weights& L, std::size_t l, const gates* g, layer_cache& c,
                               float* dgated, float* dqkv, workspace& ws, training_workspace& tw) {
    const std::ptrdiff_t rows = L.qkv_rows(), A = L.attention_width();
    const nn::attention_layout layout = layout_of(p.seq, L);
    nn::attention_tensors<float> t = tensors_of(L, c.qkv.data(), c.context.data(), c.gated.data());
    t.gates = effective_gates(g, L, l, ws);
    t.d_gated = dgated;
    t.ldd = A;
    t.dq = dqkv;
    t.lddq = rows;
    t.dk = dqkv + A;
    t.lddk = rows;
    t.dv = dqkv + A + static_cast<std::ptrdiff_t>(L.kv_heads) * L.head_dim;
    t.lddv = rows;
    tw.effective.assign(static_cast<std::size_t>(p.seq.count()) * static_cast<std::size_t>(L.q_heads), 0.0);
    t.gate_grads = tw.effective.data();
    t.gate_stride = static_cast<std::size_t>(L.q_heads);
    nn::attention_backward(p.pool, layout, t, ws.attention);
    split_gate_gradients(L, l, g, tw);
    if (p.cfg.is_llama()) rotate(p, L, dqkv, ws, true);
}

/// One decoder layer's backward pass: dh [T, H] holds dL/d(layer output) and becomes dL/d(layer
/// input); parameter gradients are added to gl when not null; gate gradients to tw.gates.
inline void layer_backward(const pass& p, const layer_weights& L, std::size_t l, const gates* g, layer_cache& c,
                           float* dh, workspace& ws, training_workspace& tw, layer_weights* gl) {
    const auto T = static_cast<std::size_t>(p.T), H = static_cast<std::size_t>(p.H);
    const int A = L.attention_width(), F = L.ffn, up_rows = p.cfg.is_llama() ? 2 * F : F;
    auto grad = [gl](std::vector<float> layer_weights::*m) { return gl != nullptr ? data_or_null(gl->*m) : nullptr; };
    float* dx = grow(tw.dx, T * H);
    // MLP block: dL/dg_mlp = <mlp_out, dh>; dmlp = g_mlp dh; back through down, the activation, up, norm2.
    if (F > 0) {
        sequence_dots(p, c.mlp_out.data(), dh, tw.gates.mlps.data() + l, tw.gates.layers());
        const float mlp_gate = g != nullptr ? g->mlp(l) : 1.0f;
        for (std::size_t i = 0; i < T * H; ++i) dx[i] = mlp_gate * dh[i];
        float* dact = grow(tw.dact, T * static_cast<std::size_t>(F));
        float* dpre = grow(tw.dpre, T * static_cast<std::size_t>(up_rows));
        linear_backward(p, c.act.data(), F, L.down, p.H, dx, dact, grad(&layer_weights::down), grad(&layer_weights::down_bias));
        activation_backward(p, F, c.pre.data(), dact, dpre);
        linear_backward(p, c.x2.data(), p.H, L.up, up_rows, dpre, dx, grad(&layer_weights::up), grad(&layer_weights::up_bias));
        norm_backward(p, L.norm2, c.xhat2.data(), c.rstd2.data(), dx, dh, grad(&layer_weights::norm2), grad(&layer_weights::norm2_bias));
    }
    // Attention block: back through o_proj, attention (and the gates), rope, qkv, norm1.
    if (A == 0) {
        if (gl != nullptr && !gl->out_bias.empty()) nn::add_column_sums<float>(p.pool, T, p.H, dh, H, gl->out_bias.data());
        return;
    }
    float* dgated = grow(tw.dctx, T * static_cast<std::size_t>(A));
    float* dqkv = grow(tw.dqkv, T * static_cast<std::size_t>(L.qkv_rows()));
    linear_backward(p, c.gated.data(), A, L.out, p.H, dh, dgated, grad(&layer_weights::out), grad(&layer_weights::out_bias));
    attention_backward(p, L, l, g, c, dgated, dqkv, ws, tw);
    linear_backward(p, c.x1.data(), p.H, L.qkv, L.qkv_rows(), dqkv, dx, grad(&layer_weights::qkv), grad(&layer_weights::qkv_bias));
    norm_backward(p, L.norm1, c.xhat1.data(), c.rstd1.data(), dx, dh, grad(&layer_weights::norm1), grad(&layer_weights::norm1_bias));
}

/// The loss of the last forward pass (reduced as asked) and the scale of each row's gradient.
inline double loss_and_row_scales(const pass& p, const forward_result& r, loss_reduction how, std::vector<float>& scale,
                                  const workspace& ws) {
    scale.assign(static_cast<std::size_t>(p.T), 0.0f);
    const std::int64_t predicted = r.total_predicted();
    double loss = 0.0;
    for (int b = 0; b < p.seq.count(); ++b) {
        const auto bs = static_cast<std::size_t>(b);
        const std::int64_t n = r.predicted[bs];
        const std::int64_t per = how == loss_reduction::token_mean ? predicted : n;
        if (n == 0) continue;
        loss += how == loss_reduction::token_mean ? r.nll[bs] / static_cast<double>(predicted) : r.nll[bs] / static_cast<double>(n);
        for (auto row = p.seq.offsets[bs]; row < p.seq.offsets[bs + 1]; ++row)
            if (ws.targets[static_cast<std::size_t>(row)] >= 0) scale[static_cast<std::size_t>(row)] = 1.0f / static_cast<float>(per);
    }
    return loss;
}

/// From the kept logits (replaced by dL/dlogits) to dL/dxf [T, H] in dxf; the output
/// projection's gradient added to `dW` when not null.
inline void logits_backward(const pass& p, const weights& w, const float* xf, const std::vector<float>& scale, workspace& ws,
                            float* dxf, float* dW) {
    const int V = p.cfg.vocab_size, T = static_cast<int>(p.T);
    const auto Vs = static_cast<std::size_t>(V);
    float* z = ws.logits_.data();
    p.pool.for_rows(static_cast<std::size_t>(p.T), Vs, [&](std::size_t r) {
        const int target = ws.targets[r];
        if (target < 0 || scale[r] == 0.0f) std::fill(z + r * Vs, z + r * Vs + Vs, 0.0f);
        else (void)nn::cross_entropy_row(z + r * Vs, V, target, scale[r], z + r * Vs);
    });
    const nn::gemm_call<float> data{false, false, T, p.H, V, 1.0f, z, V, w.output_projection(), p.H, 0.0f, dxf, p.H};
    const nn::gemm_call<float> weight{true, false, V, p.H, T, 1.0f, z, V, xf, p.H, 1.0f, dW, p.H};
    nn::gemm_pair<float>(p.pool, data, dW != nullptr ? &weight : nullptr);
}

/// Scatters dh [T, H] into the token (and, gpt2, position) embedding gradients.
inline void embedding_backward(const pass& p, const workspace& ws, const float* dh, weights& grads) {
    const auto H = static_cast<std::size_t>(p.H);
    float* dE = grads.embed.data();
    float* dP = data_or_null(grads.positions);
    p.pool.for_columns(static_cast<std::size_t>(p.T), p.H, [&](int c0, int c1) {
        for (std::size_t r = 0; r < static_cast<std::size_t>(p.T); ++r) {
            const float* d = dh + r * H;
            float* e = dE + static_cast<std::size_t>(p.seq.tokens[r]) * H;
            for (int c = c0; c < c1; ++c) e[c] += d[c];
            if (dP == nullptr) continue;
            float* q = dP + static_cast<std::size_t>(ws.positions[r]) * H;
            for (int c = c0; c < c1; ++c) q[c] += d[c];
        }
    });
}

/// Throws shape_error when `grads` is not shaped like `w`.
inline void check_gradient_shapes(weights& w, weights& grads) {
    const auto a = parameters(w), b = parameters(grads);
    bool same = a.size() == b.size();
    for (std::size_t i = 0; same && i < a.size(); ++i) same = a[i].name == b[i].name && a[i].shape == b[i].shape;
    if (!same) throw shape_error("decoder::train_pass: the gradients are not shaped like the model (use zero_gradients(w))");
}

}  // namespace detail

/// One forward + backward pass over packed sequences. Returns the loss (options.reduction);
/// fills tw.result (per-sequence NLL), tw.gates (gate gradients per sequence) and, when `grads`
/// is not null and options.parameter_gradients, *adds* every parameter's gradient to it (shaped
/// like w: zero_gradients(w)). Throws value_error / shape_error when the batch, the gates or the
/// gradients do not fit the model.
inline double train_pass(const weights& w, const sequences& seq, workspace& ws, training_workspace& tw,
                         weights* grads = nullptr, const training_options& options = {}, const gates* gate = nullptr) {
    weights* pg = options.parameter_gradients ? grads : nullptr;
    if (pg != nullptr) detail::check_gradient_shapes(const_cast<weights&>(w), *pg);
    forward_options fo;
    fo.gate = gate;
    fo.cache = &tw.cache;
    fo.keep_logits = true;
    tw.result = forward(w, seq, ws, fo);
    const detail::pass p{ws.pool_, w.cfg, seq, seq.total(), w.cfg.hidden_size};
    const auto T = static_cast<std::size_t>(p.T), H = static_cast<std::size_t>(p.H);
    tw.loss = detail::loss_and_row_scales(p, tw.result, options.reduction, tw.row_scale, ws);
    tw.gates.reset(w, static_cast<std::size_t>(seq.count()));
    float* dxf = detail::grow(tw.dx, T * H);
    float* dW = nullptr;
    if (pg != nullptr) dW = pg->lm_head.empty() ? pg->embed.data() : pg->lm_head.data();
    detail::logits_backward(p, w, tw.cache.out.data(), tw.row_scale, ws, dxf, dW);
    float* dh = detail::grow(tw.dh, T * H);
    std::fill(dh, dh + T * H, 0.0f);
    detail::norm_backward(p, w.final_norm, tw.cache.xhat.data(), tw.cache.rstd.data(), dxf, dh,
                          pg != nullptr ? pg->final_norm.data() : nullptr, pg != nullptr ? detail::data_or_null(pg->final_norm_bias) : nullptr);
    for (std::size_t l = w.layers.size(); l-- > 0;) {
        detail::layer_backward(p, w.layers[l], l, gate, tw.cache.layers[l], dh, ws, tw, pg != nullptr ? &pg->layers[l] : nullptr);
    }
    if (pg != nullptr) detail::embedding_backward(p, ws, dh, *pg);
    return tw.loss;
}

}  // namespace prune::decoder
