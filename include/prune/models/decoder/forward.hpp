// prune/models/decoder/forward.hpp: the forward pass of a causal LM (Llama family or GPT-2) on
// packed variable-length sequences, with query-head, KV-group and MLP gates, giving the logits
// and each sequence's negative log-likelihood (Hugging Face's math, float32).
//
//   h = embed[id] (+ wpe[position], gpt2)
//   each layer   x = norm1(h); qkv = x Wqkv^T (+ b); q, k = rope(q, k) (llama)
//                h += o_proj(gate_h * attention_h(q, k, v))              causal, GQA
//                x = norm2(h); h += gate_mlp * down(act(up(x)))          act: SwiGLU or GELU
//   logits = norm_f(h) lm_head^T;  nll(sequence) = sum over positions 0..n-2 of
//            -log softmax(logits[i])[id[i + 1]]   (mean = nll / (n - 1))
//
// The effective gate of query head h is heads[l][h] * kv_groups[l][h / (Hq / Hkv)]: it scales
// that head's context before o_proj. Rows of different sequences never attend to each other;
// positions restart at 0 in every sequence. Every kernel comes from the shared runtime (nn/):
// products on nn::parallel_gemm, attention on nn::attention_forward, norms, RoPE and
// activations from nn/kernels.hpp; the results do not depend on the thread count.
//
// A forward_cache records what the backward pass (models/decoder/backward.hpp) needs; without
// one nothing is recorded and a gated-off head or MLP is skipped. With keep_logits false the
// [tokens, vocab] logits are never held whole (blocks of 64 rows): perplexity of a long text
// at a 128,000-token vocabulary needs no gigabyte buffer.
#pragma once

#include <prune/models/decoder/config.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/nn/attention.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/kernels.hpp>
#include <prune/nn/threads.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numbers>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// Token sequences packed one after another (no padding).
struct sequences {
    std::vector<std::int32_t> tokens;        ///< every token id, sequence after sequence
    std::vector<std::int64_t> offsets{0};    ///< B + 1: sequence b is tokens [offsets[b], offsets[b + 1])

    /// Appends one sequence.
    void add(std::span<const std::int32_t> ids) {
        tokens.insert(tokens.end(), ids.begin(), ids.end());
        offsets.push_back(static_cast<std::int64_t>(tokens.size()));
    }
    /// Sequences.
    [[nodiscard]] int count() const { return static_cast<int>(offsets.size()) - 1; }
    /// Tokens in all.
    [[nodiscard]] std::int64_t total() const { return offsets.back(); }
    /// Length of sequence b.
    [[nodiscard]] int length(int b) const {
        return static_cast<int>(offsets[static_cast<std::size_t>(b) + 1] - offsets[static_cast<std::size_t>(b)]);
    }
    /// Throws value_error naming the sequence when one is empty or longer than
    /// max_position_embeddings or a token is outside [0, vocab_size).
    void validate(const config& cfg, const std::string& where = "sequences") const {
        if (offsets.empty() || offsets.front() != 0 || offsets.back() != static_cast<std::int64_t>(tokens.size()))
            throw value_error(where + ": offsets do not cover the tokens");
        if (count() == 0) throw value_error(where + ": no sequences (expected at least one)");
        if (total() > (std::int64_t{1} << 30)) throw value_error(where + ": more than 2^30 tokens in one batch");
        for (int b = 0; b < count(); ++b) {
            const auto begin = tokens.begin() + offsets[static_cast<std::size_t>(b)];
            check(std::span<const std::int32_t>(begin, begin + length(b)), cfg, where + ": sequence " + std::to_string(b));
        }
    }

    /// Throws value_error prefixed by `where` when `ids` is empty, longer than
    /// max_position_embeddings or holds a token outside [0, vocab_size).
    static void check(std::span<const std::int32_t> ids, const config& cfg, const std::string& where) {
        if (ids.empty()) throw value_error(where + " is empty (expected >= 1 token)");
        if (ids.size() > static_cast<std::size_t>(cfg.max_position_embeddings)) {
            throw value_error(where + " has " + std::to_string(ids.size()) + " tokens, more than max_position_embeddings " +
                              std::to_string(cfg.max_position_embeddings));
        }
        for (const std::int32_t id : ids) {
            if (id < 0 || id >= cfg.vocab_size) {
                throw value_error(where + " has token id " + std::to_string(id) + " (expected 0.." + std::to_string(cfg.vocab_size - 1) +
                                  ", the model's vocabulary)");
            }
        }
    }
};

/// Query-head, KV-group and MLP gates (1 = on, 0 = off; any value allowed). Empty = all 1.
struct gates {
    std::vector<std::vector<float>> heads;      ///< heads[l][h], h over the layer's query heads
    std::vector<std::vector<float>> kv_groups;  ///< kv_groups[l][g], g over its K/V heads
    std::vector<float> mlps;                    ///< mlps[l]

    /// Gate of query head h of layer l.
    [[nodiscard]] float head(std::size_t l, std::size_t h) const { return heads.empty() || heads[l].empty() ? 1.0f : heads[l][h]; }
    /// Gate of K/V group g of layer l.
    [[nodiscard]] float kv_group(std::size_t l, std::size_t g) const {
        return kv_groups.empty() || kv_groups[l].empty() ? 1.0f : kv_groups[l][g];
    }
    /// Gate of layer l's MLP.
    [[nodiscard]] float mlp(std::size_t l) const { return mlps.empty() ? 1.0f : mlps[l]; }

    /// Gates from a structure mask (kept 1, masked 0): heads (L x query heads), mlps (L) and
    /// kv_groups (L x K/V heads); an empty part leaves those gates at 1. Throws shape_error
    /// naming the part, the layer and the count expected when the mask does not fit `w`.
    [[nodiscard]] static gates from_mask(const structure_mask& mask, const weights& w) {
        gates g;
        g.heads = mask_rows(mask.heads, "head", w, [](const layer_weights& x) { return x.q_heads; });
        g.kv_groups = mask_rows(mask.kv_groups, "KV-group", w, [](const layer_weights& x) { return x.kv_heads; });
        for (auto& row : mask_rows(mask.mlps, "MLP", w, [](const layer_weights&) { return 1; })) g.mlps.push_back(row[0]);
        return g;
    }

    /// Throws shape_error when the gates do not fit `w`.
    void check(const weights& w) const {
        const std::size_t L = w.layers.size();
        auto rows = [&](const std::vector<std::vector<float>>& g, const char* what, auto count) {
            if (g.empty()) return;
            if (g.size() != L)
                throw shape_error(std::string("gates: ") + std::to_string(g.size()) + " rows of " + what + " gates for a model of " +
                                  std::to_string(L) + " layers");
            for (std::size_t l = 0; l < L; ++l) {
                const auto n = static_cast<std::size_t>(count(w.layers[l]));
                if (!g[l].empty() && g[l].size() != n)
                    throw shape_error(std::string("gates: layer ") + std::to_string(l) + " has " + std::to_string(g[l].size()) +
                                      " " + what + " gates, the model " + std::to_string(n));
            }
        };
        rows(heads, "head", [](const layer_weights& x) { return x.q_heads; });
        rows(kv_groups, "KV-group", [](const layer_weights& x) { return x.kv_heads; });
        if (!mlps.empty() && mlps.size() != L)
            throw shape_error("gates: " + std::to_string(mlps.size()) + " MLP gates for a model of " + std::to_string(L) + " layers");
    }

private:
    /// One part of a structure mask as gate rows (empty when the part is).
    template <class Count>
    static std::vector<std::vector<float>> mask_rows(const group_mask& m, const char* what, const weights& w, Count count) {
        std::vector<std::vector<float>> rows;
        if (m.layers() == 0) return rows;
        if (m.layers() != w.layers.size()) {
            throw shape_error(std::string(what) + " mask has " + std::to_string(m.layers()) + " layers (expected " +
                              std::to_string(w.layers.size()) + ", the model's layers)");
        }
        for (std::size_t l = 0; l < m.layers(); ++l) {
            const auto n = static_cast<std::size_t>(count(w.layers[l]));
            if (m.groups(l) != n) {
                throw shape_error(std::string(what) + " mask row " + std::to_string(l) + " has " + std::to_string(m.groups(l)) +
                                  " entries (expected " + std::to_string(n) + ")");
            }
            rows.emplace_back();
            for (std::size_t i = 0; i < n; ++i) rows.back().push_back(m.kept(l, i) ? 1.0f : 0.0f);
        }
        return rows;
    }
};

/// The activations of one layer that the backward pass needs (rows = packed tokens).
struct layer_cache {
    std::vector<float> xhat1, rstd1, x1;  ///< first norm: normalised input, 1/rms (or 1/std), output [T, H]
    std::vector<float> qkv;               ///< [T, (Hq + 2 Hkv) d], q and k rotated
    std::vector<float> context;           ///< [T, Hq d] attention context before the gates
    std::vector<float> gated;             ///< [T, Hq d] after the gates (o_proj's input)
    std::vector<float> xhat2, rstd2, x2;  ///< second norm
    std::vector<float> pre;               ///< [T, 2F] (llama: gate | up) or [T, F] before the activation
    std::vector<float> act;               ///< [T, F] after it
    std::vector<float> mlp_out;           ///< [T, H] down(act) + bias, before the MLP gate
};

/// What a layer hands a caller that only reads the inputs of its linears (calibration, see
/// calibration.hpp) instead of recording a layer_cache: `visit(member, rows, width)` is called
/// with each input as soon as it is computed -- member names it (&layer_cache::x1, ::gated, ::x2,
/// ::act), rows are [T, width] and valid during the call only. Without `output` the layer stops
/// after the last input: the MLP's down projection is not run and h is left partial.
struct layer_taps {
    std::function<void(std::vector<float> layer_cache::*member, const float* rows, std::size_t width)> visit;
    bool output = true;  ///< complete h (false: the caller drops it)
};

/// Everything a training forward pass records.
struct forward_cache {
    std::vector<layer_cache> layers;      ///< per layer
    std::vector<float> xhat, rstd, out;   ///< final norm: normalised, 1/rms, output [T, H]
};

/// How one forward call runs.
struct forward_options {
    const gates* gate = nullptr;     ///< gates (null: all 1)
    forward_cache* cache = nullptr;  ///< record activations for backward (null: inference)
    bool keep_logits = true;         ///< keep the [T, vocab] logits (workspace::logits)
};

/// What one forward call gives besides the logits.
struct forward_result {
    std::vector<double> nll;               ///< per sequence: summed negative log-likelihood of positions 1..n-1
    std::vector<std::int64_t> predicted;   ///< per sequence: n - 1
    /// Sum over sequences.
    [[nodiscard]] double total_nll() const {
        double s = 0.0;
        for (double v : nll) s += v;
        return s;
    }
    /// Predicted tokens over sequences.
    [[nodiscard]] std::int64_t total_predicted() const {
        std::int64_t s = 0;
        for (auto v : predicted) s += v;
        return s;
    }
};

/// Hugging Face's rotary inverse frequencies for `cfg` (rope_theta, head_dim, rope_scaling),
/// in float as HF computes them.
[[nodiscard]] inline std::vector<float> rope_frequencies(const config& cfg) {
    std::vector<float> inv = nn::rope_inverse_frequencies(cfg.head_dim, cfg.rope_theta);
    const auto factor = static_cast<float>(cfg.rope.factor);
    if (cfg.rope.type == rope_scaling_type::linear) {
        for (float& f : inv) f /= factor;
    } else if (cfg.rope.type == rope_scaling_type::llama3) {
        const auto old_len = static_cast<float>(cfg.rope.original_max_position_embeddings);
        const auto low = static_cast<float>(cfg.rope.low_freq_factor), high = static_cast<float>(cfg.rope.high_freq_factor);
        const float low_wavelen = old_len / low, high_wavelen = old_len / high;
        for (float& f : inv) {
            const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
            const float scaled = wavelen > low_wavelen ? f / factor : f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                const float smooth = (old_len / wavelen - low) / (high - low);
                f = (1.0f - smooth) * scaled / factor + smooth * scaled;
            } else {
                f = scaled;
            }
        }
    }
    return inv;
}

/// Grow-only scratch memory and the thread pool of the passes; one call at a time.
class workspace {
public:
    /// A workspace on `threads` threads (0 = all cores).
    explicit workspace(int threads = 0) : pool_(threads) {}
    /// The pool.
    [[nodiscard]] nn::thread_pool& pool() noexcept { return pool_; }
    /// The logits of the last forward call with keep_logits: [tokens, vocab], row-major.
    [[nodiscard]] std::span<const float> logits() const { return {logits_.data(), logits_size_}; }

    nn::thread_pool pool_;                         ///< the threads
    std::vector<float> h, x, xhat, rstd, qkv, ctx, gated, pre, act, mlp_out;  ///< activations
    std::vector<float> logits_;                    ///< [T, V] or a block of it
    std::size_t logits_size_ = 0;                  ///< elements of logits_ in use
    std::vector<std::int32_t> positions;           ///< [T] position of each row
    std::vector<std::int32_t> targets;             ///< [T] next token, or -1 (last of a sequence)
    std::vector<double> row_loss;                  ///< [T]
    std::vector<float> effective_gates;            ///< [Hq] of the current layer
    std::vector<float> inv_freq;                   ///< rope frequencies the table was made for
    nn::rope_table<float> rope;                    ///< cos / sin table
    nn::attention_workspace<float> attention;      ///< attention scratch
};

namespace detail {

/// Grows `v` to at least n elements and returns its data.
inline float* grow(std::vector<float>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

/// The shape of one pass: pool, rows, offsets.
struct pass {
    nn::thread_pool& pool;                 ///< threads
    const config& cfg;                     ///< model shape
    const sequences& seq;                  ///< the batch
    std::int64_t T;                        ///< rows (tokens)
    int H;                                 ///< hidden size
};

/// y[m, n] = alpha x[m, k] W[n, k]^T + beta y (beta = 0: y not read), on the pool. One row
/// (a decode step) is n dot products over W's rows, split by rows: it reads W once, where a
/// GEMM would pack it first -- the step is bound by reading the weights.
inline void product(const pass& p, int m, const float* x, int k, const float* W, int n, float alpha, float beta, float* y) {
    if (m != 1) {
        nn::parallel_gemm<float>(p.pool, false, true, m, n, k, alpha, x, k, W, k, beta, y, n);
        return;
    }
    const auto ks = static_cast<std::size_t>(k);
    p.pool.for_rows(static_cast<std::size_t>(n), ks, [&](std::size_t c) {
        const float d = alpha * nn::dot(x, W + c * ks, k);
        y[c] = beta == 0.0f ? d : beta * y[c] + d;
    });
}

/// y[T, out] (+)= alpha (x[T, in] W[out, in]^T + b): b empty means no bias; accumulate adds to y.
inline void linear(const pass& p, const float* x, int in, const std::vector<float>& W, int out, const std::vector<float>& b,
                   float* y, float alpha = 1.0f, bool accumulate = false) {
    if (out == 0) return;
    const auto os = static_cast<std::size_t>(out);
    float beta = accumulate ? 1.0f : 0.0f;
    if (!b.empty()) {
        p.pool.for_rows(static_cast<std::size_t>(p.T), os, [&](std::size_t r) {
            float* row = y + r * os;
            for (std::size_t c = 0; c < os; ++c) row[c] = (accumulate ? row[c] : 0.0f) + alpha * b[c];
        });
        beta = 1.0f;
    } else if (in == 0 && !accumulate) {
        std::fill(y, y + static_cast<std::size_t>(p.T) * os, 0.0f);
    }
    if (in == 0) return;
    product(p, static_cast<int>(p.T), x, in, W.data(), out, alpha, beta, y);
}

/// x = norm(h) row by row (RMSNorm for llama, LayerNorm with bias for gpt2), recording xhat and rstd.
inline void norm(const pass& p, const std::vector<float>& scale, const std::vector<float>& shift, const float* h, float* x,
                 float* xhat, float* rstd) {
    const auto H = static_cast<std::size_t>(p.H);
    const float eps = p.cfg.norm_eps;
    p.pool.for_rows(static_cast<std::size_t>(p.T), H, [&](std::size_t r) {
        if (p.cfg.is_llama()) nn::rms_norm_forward(h + r * H, x + r * H, xhat + r * H, rstd + r, scale.data(), p.H, eps);
        else nn::layer_norm_forward(h + r * H, x + r * H, xhat + r * H, rstd + r, scale.data(), shift.data(), p.H, eps);
    });
}

/// Rotates the query and key heads of every row of qkv to its position (inverse: back).
inline void rotate(const pass& p, const layer_weights& L, float* qkv, const workspace& ws, bool inverse = false) {
    const auto rows = static_cast<std::size_t>(L.qkv_rows());
    const auto A = static_cast<std::size_t>(L.attention_width());
    p.pool.for_rows(static_cast<std::size_t>(p.T), rows, [&](std::size_t r) {
        const int pos = ws.positions[r];
        nn::rope_row(qkv + r * rows, L.q_heads, ws.rope, pos, inverse);
        nn::rope_row(qkv + r * rows + A, L.kv_heads, ws.rope, pos, inverse);
    });
}

/// The per-query-head gates of layer l (empty span when all are 1).
inline std::span<const float> effective_gates(const gates* g, const layer_weights& L, std::size_t l, workspace& ws) {
    if (g == nullptr) return {};
    ws.effective_gates.resize(static_cast<std::size_t>(L.q_heads));
    bool trivial = true;
    const int group = L.q_heads / L.kv_heads;
    for (int h = 0; h < L.q_heads; ++h) {
        const float v = g->head(l, static_cast<std::size_t>(h)) * g->kv_group(l, static_cast<std::size_t>(h / group));
        ws.effective_gates[static_cast<std::size_t>(h)] = v;
        trivial = trivial && v == 1.0f;
    }
    if (trivial) return {};
    return ws.effective_gates;
}

/// The attention layout of a prefill pass over `seq` for layer L.
inline nn::attention_layout layout_of(const sequences& seq, const layer_weights& L) {
    nn::attention_layout layout;
    layout.q_offsets = seq.offsets;
    layout.kv_offsets = seq.offsets;
    layout.q_heads = L.q_heads;
    layout.kv_heads = L.kv_heads;
    layout.head_dim = L.head_dim;
    layout.causal = true;
    return layout;
}

/// The attention tensors over a stacked qkv buffer for layer L.
inline nn::attention_tensors<float> tensors_of(const layer_weights& L, const float* qkv, float* context, float* gated) {
    const std::ptrdiff_t rows = L.qkv_rows(), A = L.attention_width();
    nn::attention_tensors<float> t;
    t.q = qkv;
    t.ldq = rows;
    t.k = qkv + A;
    t.ldk = rows;
    t.v = qkv + A + static_cast<std::ptrdiff_t>(L.kv_heads) * L.head_dim;
    t.ldv = rows;
    t.context = context;
    t.ldc = A;
    t.gated = gated;
    t.ldg = A;
    return t;
}

/// act[T, F] = activation(pre): SwiGLU on (gate | up) for llama, GELU for gpt2.
inline void activate(const pass& p, int F, const float* pre, float* act) {
    const auto Fs = static_cast<std::size_t>(F);
    const activation a = p.cfg.act;
    p.pool.for_rows(static_cast<std::size_t>(p.T), Fs, [&](std::size_t r) {
        if (a == activation::silu) {
            nn::swiglu(pre + r * 2 * Fs, pre + r * 2 * Fs + Fs, act + r * Fs, F);
            return;
        }
        const float* in = pre + r * Fs;
        float* out = act + r * Fs;
        if (a == activation::gelu_tanh) for (std::size_t i = 0; i < Fs; ++i) out[i] = nn::gelu_tanh(in[i]);
        else for (std::size_t i = 0; i < Fs; ++i) out[i] = nn::gelu(in[i]);
    });
}

/// The rope table of ws made for cfg's frequencies and grown to at least `positions` (llama only).
inline void ensure_rope(const config& cfg, workspace& ws, int positions) {
    if (!cfg.is_llama()) return;
    std::vector<float> inv = rope_frequencies(cfg);
    if (inv != ws.inv_freq || ws.rope.positions() < positions) {
        ws.rope = nn::rope_table<float>::make(inv, std::max(positions, ws.rope.positions()));
        ws.inv_freq = std::move(inv);
    }
}

/// Positions and next-token targets of every row; the rope table grown to the longest sequence.
inline void prepare_rows(const pass& p, workspace& ws) {
    const auto T = static_cast<std::size_t>(p.T);
    ws.positions.resize(T);
    ws.targets.resize(T);
    int longest = 0;
    for (int b = 0; b < p.seq.count(); ++b) {
        const auto o = static_cast<std::size_t>(p.seq.offsets[static_cast<std::size_t>(b)]);
        const int n = p.seq.length(b);
        longest = std::max(longest, n);
        for (int i = 0; i < n; ++i) {
            ws.positions[o + static_cast<std::size_t>(i)] = i;
            ws.targets[o + static_cast<std::size_t>(i)] = i + 1 < n ? p.seq.tokens[o + static_cast<std::size_t>(i) + 1] : -1;
        }
    }
    ensure_rope(p.cfg, ws, longest);
}

/// h = embed[id] (+ wpe[position]).
inline void embed(const pass& p, const weights& w, const workspace& ws, float* h) {
    const auto H = static_cast<std::size_t>(p.H);
    p.pool.for_rows(static_cast<std::size_t>(p.T), H, [&](std::size_t r) {
        const float* e = w.embed.data() + static_cast<std::size_t>(p.seq.tokens[r]) * H;
        float* out = h + r * H;
        std::copy(e, e + H, out);
        if (!w.positions.empty()) {
            const float* pe = w.positions.data() + static_cast<std::size_t>(ws.positions[r]) * H;
            for (std::size_t c = 0; c < H; ++c) out[c] += pe[c];
        }
    });
}

}  // namespace detail

namespace detail {

/// Where one layer's activations go: the cache's vectors when training, else the workspace's
/// (shared by every layer; the two norms share xhat / rstd / x).
struct layer_buffers {
    float *xhat1, *rstd1, *x1, *qkv, *context, *gated, *xhat2, *rstd2, *x2, *pre, *act, *mlp_out;
};

/// The buffers of layer L for this pass (cache vectors resized when training).
inline layer_buffers buffers_for(const pass& p, const layer_weights& L, workspace& ws, layer_cache* c) {
    const auto T = static_cast<std::size_t>(p.T), H = static_cast<std::size_t>(p.H);
    const auto rows = static_cast<std::size_t>(L.qkv_rows()), A = static_cast<std::size_t>(L.attention_width());
    const auto F = static_cast<std::size_t>(L.ffn);
    const std::size_t pre = p.cfg.is_llama() ? 2 * F : F;
    if (c == nullptr) {
        float* x = grow(ws.x, T * H);
        float* xhat = grow(ws.xhat, T * H);
        float* rstd = grow(ws.rstd, T);
        float* ctx = grow(ws.ctx, T * A);
        return {xhat, rstd, x, grow(ws.qkv, T * rows), ctx, ctx, xhat, rstd, x, grow(ws.pre, T * pre),
                grow(ws.act, T * F), nullptr};
    }
    auto sized = [](std::vector<float>& v, std::size_t n) {
        v.resize(n);
        return v.data();
    };
    return {sized(c->xhat1, T * H), sized(c->rstd1, T),     sized(c->x1, T * H),     sized(c->qkv, T * rows),
            sized(c->context, T * A), sized(c->gated, T * A), sized(c->xhat2, T * H), sized(c->rstd2, T),
            sized(c->x2, T * H),      sized(c->pre, T * pre), sized(c->act, T * F),   sized(c->mlp_out, T * H)};
}

/// Causal attention of layer L over the batch: context (and, training, gated = gate * context;
/// inference gates the context in place and skips gated-off heads).
inline void attend(const pass& p, const layer_weights& L, std::span<const float> head_gates, const layer_buffers& b,
                   workspace& ws, bool training) {
    const nn::attention_layout layout = layout_of(p.seq, L);
    nn::attention_tensors<float> t = tensors_of(L, b.qkv, b.context, training ? b.gated : nullptr);
    t.gates = head_gates;
    t.skip_gated_off = !training;
    nn::attention_forward(p.pool, layout, t, ws.attention);
}

}  // namespace detail

/// The rotated keys and the values of every layer for one sequence being decoded
/// (models/decoder/generate.hpp), row p = position p.
struct kv_cache {
    std::vector<std::vector<float>> keys;    ///< per layer [capacity, Hkv d]
    std::vector<std::vector<float>> values;  ///< per layer [capacity, Hkv d]
    int capacity = 0;                        ///< positions it holds
    int length = 0;                          ///< positions filled
};

namespace detail {

/// A decode pass: its cache and the position of its first row (= cache->length).
struct cached_step {
    kv_cache* cache = nullptr;  ///< the sequence's cache
    int position = 0;           ///< position of the pass's first row
};

/// The decode step's attention of layer l: the pass's keys and values appended to the cache
/// at rows position.., then the pass's query rows (positions position..) attend causally to
/// every cached row up to theirs (inference: gates applied to the context in place).
inline void attend_cached(const pass& p, const layer_weights& L, std::size_t l, std::span<const float> head_gates,
                          const layer_buffers& b, workspace& ws, const cached_step& step) {
    const auto rows = static_cast<std::size_t>(L.qkv_rows()), A = static_cast<std::size_t>(L.attention_width());
    const auto KV = static_cast<std::size_t>(L.kv_heads) * static_cast<std::size_t>(L.head_dim);
    float* K = step.cache->keys[l].data();
    float* V = step.cache->values[l].data();
    for (std::size_t r = 0; r < static_cast<std::size_t>(p.T); ++r) {
        const float* k = b.qkv + r * rows + A;
        const std::size_t at = (static_cast<std::size_t>(step.position) + r) * KV;
        std::copy(k, k + KV, K + at);
        std::copy(k + KV, k + 2 * KV, V + at);
    }
    const std::int64_t q_offsets[2] = {0, p.T}, kv_offsets[2] = {0, step.position + p.T}, q_positions[1] = {step.position};
    nn::attention_layout layout = layout_of(p.seq, L);
    layout.q_offsets = q_offsets;
    layout.kv_offsets = kv_offsets;
    layout.q_positions = q_positions;
    nn::attention_tensors<float> t = tensors_of(L, b.qkv, b.context, nullptr);
    t.k = K;
    t.ldk = static_cast<std::ptrdiff_t>(KV);
    t.v = V;
    t.ldv = static_cast<std::ptrdiff_t>(KV);
    t.gates = head_gates;
    t.skip_gated_off = true;
    nn::attention_forward(p.pool, layout, t, ws.attention);
}

/// h += scale * y, both [T, H].
inline void add_scaled(const pass& p, const float* y, float scale, float* h) {
    const auto H = static_cast<std::size_t>(p.H);
    p.pool.for_rows(static_cast<std::size_t>(p.T), H, [&](std::size_t r) {
        for (std::size_t c = 0; c < H; ++c) h[r * H + c] += scale * y[r * H + c];
    });
}

/// One decoder layer on the residual stream h [T, H], as a list of named calls (a decode step
/// when `step` is given: attention against the KV cache, no training cache).
/// Hands taps (when given) the input `member` of T rows of width columns.
inline void tap(const layer_taps* taps, std::vector<float> layer_cache::*member, const float* rows, int width) {
    if (taps != nullptr && taps->visit && width > 0) taps->visit(member, rows, static_cast<std::size_t>(width));
}

inline void layer_forward(const pass& p, const layer_weights& L, std::size_t l, const gates* g, float* h, workspace& ws,
                          layer_cache* c, const cached_step* step = nullptr, const layer_taps* taps = nullptr) {
    const layer_buffers b = buffers_for(p, L, ws, c);
    const int A = L.attention_width(), F = L.ffn, up_rows = p.cfg.is_llama() ? 2 * F : F;
    // Attention block: h += o_proj(gates * attention(rope(qkv(norm1(h)))))
    norm(p, L.norm1, L.norm1_bias, h, b.x1, b.xhat1, b.rstd1);
    tap(taps, &layer_cache::x1, b.x1, p.H);
    if (A > 0) {
        linear(p, b.x1, p.H, L.qkv, L.qkv_rows(), L.qkv_bias, b.qkv);
        if (p.cfg.is_llama()) rotate(p, L, b.qkv, ws);
        if (step != nullptr) attend_cached(p, L, l, effective_gates(g, L, l, ws), b, ws, *step);
        else attend(p, L, effective_gates(g, L, l, ws), b, ws, c != nullptr);
    }
    tap(taps, &layer_cache::gated, b.gated, A);
    linear(p, b.gated, A, L.out, p.H, L.out_bias, h, 1.0f, true);
    // MLP block: h += gate * down(act(up(norm2(h))))
    const float mlp_gate = g != nullptr ? g->mlp(l) : 1.0f;
    if (F == 0 || (mlp_gate == 0.0f && c == nullptr && taps == nullptr)) return;
    norm(p, L.norm2, L.norm2_bias, h, b.x2, b.xhat2, b.rstd2);
    tap(taps, &layer_cache::x2, b.x2, p.H);
    linear(p, b.x2, p.H, L.up, up_rows, L.up_bias, b.pre);
    activate(p, F, b.pre, b.act);
    tap(taps, &layer_cache::act, b.act, F);
    if (taps != nullptr && !taps->output) return;
    if (c == nullptr) {
        linear(p, b.act, F, L.down, p.H, L.down_bias, h, mlp_gate, true);
        return;
    }
    linear(p, b.act, F, L.down, p.H, L.down_bias, b.mlp_out);
    add_scaled(p, b.mlp_out, mlp_gate, h);
}

/// Logits of the final hidden states xf [T, H] and each row's next-token loss (ws.row_loss; 0
/// for a sequence's last row); whole when `keep`, else in blocks of 64 rows.
inline void logits_and_loss(const pass& p, const weights& w, const float* xf, workspace& ws, bool keep) {
    const int V = p.cfg.vocab_size;
    const auto Vs = static_cast<std::size_t>(V), H = static_cast<std::size_t>(p.H);
    const std::int64_t block = keep ? p.T : std::min<std::int64_t>(p.T, 64);
    float* z = grow(ws.logits_, static_cast<std::size_t>(block) * Vs);
    ws.logits_size_ = keep ? static_cast<std::size_t>(p.T) * Vs : 0;
    ws.row_loss.assign(static_cast<std::size_t>(p.T), 0.0);
    for (std::int64_t r0 = 0; r0 < p.T; r0 += block) {
        const int m = static_cast<int>(std::min(block, p.T - r0));
        product(p, m, xf + static_cast<std::size_t>(r0) * H, p.H, w.output_projection(), V, 1.0f, 0.0f, z);
        p.pool.for_rows(static_cast<std::size_t>(m), Vs, [&](std::size_t r) {
            const auto row = static_cast<std::size_t>(r0) + r;
            const int target = ws.targets[row];
            if (target >= 0) ws.row_loss[row] = nn::cross_entropy_row(z + r * Vs, V, target, 1.0f, static_cast<float*>(nullptr));
        });
    }
}

}  // namespace detail

/// The workspace set up for running the layers of `seq` one at a time on a residual stream
/// made elsewhere (embed_sequences makes one too): positions, next-token targets and the RoPE
/// table, no embedding. Throws value_error when the batch does not fit the model `cfg`.
inline void prepare_sequences(const config& cfg, const sequences& seq, workspace& ws) {
    seq.validate(cfg);
    detail::prepare_rows(detail::pass{ws.pool_, cfg, seq, seq.total(), cfg.hidden_size}, ws);
}

/// The start of a forward pass, for running layers one at a time (calibration): positions,
/// targets and the RoPE table of `seq` in ws, and h [T, H] = embed[id] (+ wpe[position]).
/// Throws value_error when the batch does not fit the model.
inline void embed_sequences(const weights& w, const sequences& seq, workspace& ws, std::span<float> h) {
    seq.validate(w.cfg);
    const detail::pass p{ws.pool_, w.cfg, seq, seq.total(), w.cfg.hidden_size};
    if (h.size() != static_cast<std::size_t>(p.T) * static_cast<std::size_t>(p.H))
        throw shape_error("embed_sequences: h has " + std::to_string(h.size()) + " values (expected tokens x hidden_size)");
    detail::prepare_rows(p, ws);
    detail::embed(p, w, ws, h.data());
}

namespace detail {

/// run_layer's checks, then the layer.
inline void run_checked(const weights& w, std::size_t l, const sequences& seq, workspace& ws, std::span<float> h,
                        const gates* g, layer_cache* cache, const layer_taps* taps) {
    if (l >= w.layers.size()) throw shape_error("run_layer: layer " + std::to_string(l) + " of " + std::to_string(w.layers.size()));
    if (g != nullptr) g->check(w);
    const pass p{ws.pool_, w.cfg, seq, seq.total(), w.cfg.hidden_size};
    if (h.size() != static_cast<std::size_t>(p.T) * static_cast<std::size_t>(p.H) || ws.positions.size() != static_cast<std::size_t>(p.T))
        throw shape_error("run_layer: h or the workspace do not hold this batch (call embed_sequences first)");
    layer_forward(p, w.layers[l], l, g, h.data(), ws, cache, nullptr, taps);
}

}  // namespace detail

/// Runs layer l alone on the residual stream h [T, H] of `seq`, in place, after embed_sequences
/// (same seq and ws): what forward does for that layer, the same bits. With a cache, records the
/// layer's activations, among them the input of every linear (layer_linears says which).
inline void run_layer(const weights& w, std::size_t l, const sequences& seq, workspace& ws, std::span<float> h,
                      const gates* g = nullptr, layer_cache* cache = nullptr) {
    detail::run_checked(w, l, seq, ws, h, g, cache, nullptr);
}

/// Runs layer l on h as run_layer does (no gates, no cache) and hands `taps` the input of each
/// of its linears as it is computed (see layer_taps); h is the layer's output unless taps.output
/// is false. Holds one batch's inference buffers only, no layer_cache.
inline void run_layer(const weights& w, std::size_t l, const sequences& seq, workspace& ws, std::span<float> h,
                      const layer_taps& taps) {
    detail::run_checked(w, l, seq, ws, h, nullptr, nullptr, &taps);
}

/// One prunable linear of a layer (REFERENCE: q/k/v/o/gate/up/down, GPT-2's c_attn/c_proj/c_fc):
/// its Hugging Face name, its weight as a view [rows, cols] = [out, in] into the model (Q/K/V and
/// gate/up are row blocks of the stacked storage), and which layer_cache member holds its input
/// ([tokens, cols] after run_layer or forward with a cache).
struct layer_linear {
    std::string name;                         ///< e.g. "model.layers.3.mlp.down_proj.weight"
    float* weight = nullptr;                  ///< row-major [rows, cols] inside the model
    int rows = 0;                             ///< output features
    int cols = 0;                             ///< input features
    std::vector<float> layer_cache::*input;   ///< x1 (q/k/v, c_attn), gated (o_proj), x2 (gate/up, c_fc), act (down)
    bool transposed = false;                  ///< GPT-2 Conv1D: stored [in, out] in the checkpoint
};

/// The prunable linears of layer l of `w`, in checkpoint order.
[[nodiscard]] inline std::vector<layer_linear> layer_linears(weights& w, std::size_t l) {
    const std::vector<parameter> ps = layer_parameters(w, l);
    auto ends = [](const std::string& s, const char* tail) {
        const std::string t(tail);
        return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
    };
    std::vector<layer_linear> out;
    for (const parameter& p : ps) {
        if (p.shape.size() != 2) continue;
        std::vector<float> layer_cache::*input = &layer_cache::x1;
        if (ends(p.name, "o_proj.weight") || ends(p.name, "attn.c_proj.weight")) input = &layer_cache::gated;
        else if (ends(p.name, "gate_proj.weight") || ends(p.name, "up_proj.weight") || ends(p.name, "c_fc.weight")) input = &layer_cache::x2;
        else if (ends(p.name, "down_proj.weight") || ends(p.name, "mlp.c_proj.weight")) input = &layer_cache::act;
        out.push_back({p.name, p.data, static_cast<int>(p.shape[0]), static_cast<int>(p.shape[1]), input, p.transposed});
    }
    return out;
}

namespace detail {

/// The end of a pass on the last layer's output h [T, H]: the final norm (recorded in `cache`
/// when given), the logits (kept when `keep`) and each sequence's NLL.
inline forward_result finish_pass(const pass& p, const weights& w, const float* h, workspace& ws, forward_cache* cache, bool keep) {
    const auto T = static_cast<std::size_t>(p.T), H = static_cast<std::size_t>(p.H);
    float* xf = grow(ws.x, T * H);
    float* xhat = grow(ws.xhat, T * H);
    float* rstd = grow(ws.rstd, T);
    if (cache != nullptr) {
        cache->out.resize(T * H);
        cache->xhat.resize(T * H);
        cache->rstd.resize(T);
        xf = cache->out.data();
        xhat = cache->xhat.data();
        rstd = cache->rstd.data();
    }
    norm(p, w.final_norm, w.final_norm_bias, h, xf, xhat, rstd);
    logits_and_loss(p, w, xf, ws, keep);
    forward_result result;
    for (int b = 0; b < p.seq.count(); ++b) {
        double s = 0.0;
        for (auto r = p.seq.offsets[static_cast<std::size_t>(b)]; r < p.seq.offsets[static_cast<std::size_t>(b) + 1]; ++r)
            s += ws.row_loss[static_cast<std::size_t>(r)];
        result.nll.push_back(s);
        result.predicted.push_back(p.seq.length(b) - 1);
    }
    return result;
}

}  // namespace detail

/// The end of a pass run layer by layer (embed_sequences or prepare_sequences, then run_layer on
/// every layer): the final norm, the logits (not kept) and each sequence's NLL of the last
/// layer's output h [T, H] -- what forward gives, the same bits. Reads only w's final norm and
/// output projection (and cfg). shape_error when h or ws do not hold this batch.
inline forward_result finish_sequences(const weights& w, const sequences& seq, workspace& ws, std::span<const float> h) {
    const detail::pass p{ws.pool_, w.cfg, seq, seq.total(), w.cfg.hidden_size};
    if (h.size() != static_cast<std::size_t>(p.T) * static_cast<std::size_t>(p.H) || ws.positions.size() != static_cast<std::size_t>(p.T))
        throw shape_error("finish_sequences: h or the workspace do not hold this batch (call prepare_sequences first)");
    return detail::finish_pass(p, w, h.data(), ws, nullptr, false);
}

/// Runs the model on packed sequences: per-sequence NLL (and, with keep_logits, the logits in
/// ws.logits()). Throws value_error / shape_error when the batch or the gates do not fit.
inline forward_result forward(const weights& w, const sequences& seq, workspace& ws, const forward_options& options = {}) {
    const config& cfg = w.cfg;
    seq.validate(cfg);
    if (options.gate != nullptr) options.gate->check(w);
    const detail::pass p{ws.pool_, cfg, seq, seq.total(), cfg.hidden_size};
    const auto T = static_cast<std::size_t>(p.T), H = static_cast<std::size_t>(p.H);
    detail::prepare_rows(p, ws);
    float* h = detail::grow(ws.h, T * H);
    detail::embed(p, w, ws, h);
    forward_cache* cache = options.cache;
    if (cache != nullptr) cache->layers.resize(w.layers.size());
    for (std::size_t l = 0; l < w.layers.size(); ++l)
        detail::layer_forward(p, w.layers[l], l, options.gate, h, ws, cache != nullptr ? &cache->layers[l] : nullptr);
    return detail::finish_pass(p, w, h, ws, cache, options.keep_logits);
}

}  // namespace prune::decoder
