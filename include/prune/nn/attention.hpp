// prune/nn/attention.hpp: scaled dot-product attention on packed sequences, forward and
// backward, for every model of the library.
//
// Sequence b's query rows [q_offsets[b], q_offsets[b+1]) sit at positions q_positions[b] + i
// (0 + i when no positions are given) and attend to its key / value rows [kv_offsets[b],
// kv_offsets[b+1]) (or [kv_offsets[b], kv_ends[b]) for a KV cache with room to grow), the keys
// at positions 0, 1, ...: all of them (bidirectional) or those at positions <= the query's
// (causal). Query head h uses K/V head h / (q_heads / kv_heads) (GQA; 1 = multi-head
// attention). One layout covers an encoder (BERT: bidirectional, every row a query), a
// decoder's prefill (causal) and its decode step (one query row per sequence at position p
// against a cache of p + 1 keys), and BERT's last layer for classification (one query row per
// sequence, its [CLS], against every key).
//
//   forward   context_h = P_h V_g, P_h = softmax(scale Q_h K_g^T + mask) (dropout on P when set);
//             gated_h = gate_h context_h (the head gate of Michel et al.: it scales the
//             probabilities, i.e. the head's context)
//   backward  from dL/d gated: dQ, dK, dV (dK, dV summed over the query heads of a group) and
//             each sequence's dL/d gate_h = sum over its query rows of <context_h, dL/d gated_h>
//
// Memory: nothing of size [len, len] is stored between the passes unless asked (probs): the
// backward pass recomputes each probability row with the same calls as the forward pass, so
// it gets the same bits. Per thread, the workspace holds at most query_block x keys scores
// (query rows are taken in blocks of 768, a multiple of Eigen's 48-row panels, so a block
// boundary does not change a row's rounding).
//
// Threads and bits: the forward pass runs one task per (sequence, query head), the backward
// pass one per (sequence, K/V head), handed out dynamically; each task owns its outputs and
// runs its products on its thread (nn::gemm: small products in Eigen, large ones in OpenBLAS),
// so the result does not depend on the thread count or on which thread ran a task.
#pragma once

#include <prune/nn/dropout.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/kernels.hpp>
#include <prune/nn/threads.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace prune::nn {

/// Which rows attend to which (see the header comment). Spans are borrowed for the call.
struct attention_layout {
    std::span<const std::int64_t> q_offsets;    ///< B + 1: query (and context) rows of sequence b
    std::span<const std::int64_t> kv_offsets;   ///< B + 1: first key / value row of sequence b (and end, without kv_ends)
    std::span<const std::int64_t> kv_ends;      ///< empty, or B: one past sequence b's last key row
    std::span<const std::int64_t> q_positions;  ///< empty (all 0), or B: position of sequence b's first query row
    int q_heads = 1;                            ///< query heads Hq
    int kv_heads = 1;                           ///< key / value heads Hkv (divides Hq)
    int head_dim = 0;                           ///< width of one head
    bool causal = false;                        ///< a query sees only keys at positions <= its own
    double scale = 0.0;                         ///< score scale (0: 1 / sqrt(head_dim))

    /// Sequences.
    [[nodiscard]] int sequences() const { return static_cast<int>(q_offsets.size()) - 1; }
    /// First key row of sequence b.
    [[nodiscard]] std::int64_t kv_begin(int b) const { return kv_offsets[static_cast<std::size_t>(b)]; }
    /// Keys of sequence b.
    [[nodiscard]] int keys(int b) const {
        const auto i = static_cast<std::size_t>(b);
        return static_cast<int>((kv_ends.empty() ? kv_offsets[i + 1] : kv_ends[i]) - kv_offsets[i]);
    }
    /// Position of sequence b's first query row.
    [[nodiscard]] std::int64_t position(int b) const {
        return q_positions.empty() ? 0 : q_positions[static_cast<std::size_t>(b)];
    }
    /// Keys query position p of sequence b sees (all, or those at positions <= p).
    [[nodiscard]] int visible(int b, std::int64_t p) const {
        const int n = keys(b);
        return causal ? static_cast<int>(std::min<std::int64_t>(n, p + 1)) : n;
    }
};

/// The tensors of one attention call: row-major operands with leading dimensions; head h of a
/// row starts at column h * head_dim (K / V heads likewise). Set once per layer, passed to
/// attention_forward and, with the gradient fields, to attention_backward.
template <class S>
struct attention_tensors {
    const S* q = nullptr;               ///< [query rows, Hq * d]
    std::ptrdiff_t ldq = 0;             ///< its leading dimension
    const S* k = nullptr;               ///< [key rows, Hkv * d]
    std::ptrdiff_t ldk = 0;             ///< its leading dimension
    const S* v = nullptr;               ///< [key rows, Hkv * d]
    std::ptrdiff_t ldv = 0;             ///< its leading dimension
    S* context = nullptr;               ///< out: [query rows, Hq * d], P V before the gate
    std::ptrdiff_t ldc = 0;             ///< its leading dimension
    S* gated = nullptr;                 ///< out (optional): gate_h * context_h
    std::ptrdiff_t ldg = 0;             ///< its leading dimension
    std::span<const S> gates;           ///< Hq head gates (empty: all 1)
    bool skip_gated_off = false;        ///< inference only: a head whose gate is 0 gets a zero context, not computed
    dropout probs_dropout;              ///< dropout on the probabilities (element index: see probs)
    S* probs = nullptr;                 ///< optional record of P (the backward pass then reads it
                                        ///< instead of recomputing): sequence b's head h, query
                                        ///< position p, key j at square(b) Hq + h n_b^2 + p n_b + j,
                                        ///< n_b its keys, square(b) = sum of n^2 over earlier sequences
    // Backward:
    S* d_gated = nullptr;               ///< in: dL/d(gated context) [query rows, Hq * d]; overwritten
                                        ///< with dL/d(context)
    std::ptrdiff_t ldd = 0;             ///< its leading dimension
    S* dq = nullptr;                    ///< out: dL/dQ (written)
    std::ptrdiff_t lddq = 0;            ///< its leading dimension
    S* dk = nullptr;                    ///< out: dL/dK (written at every key row of every sequence)
    std::ptrdiff_t lddk = 0;            ///< its leading dimension
    S* dv = nullptr;                    ///< out: dL/dV (written likewise)
    std::ptrdiff_t lddv = 0;            ///< its leading dimension
    double* gate_grads = nullptr;       ///< out (optional): gate_grads[b * gate_stride + h] += dL/d gate_h of sequence b
    std::size_t gate_stride = 0;        ///< row stride of gate_grads
};

/// Grow-only scratch memory of attention calls (per pool thread), reusable across calls and
/// layers; nothing is allocated once it has seen the largest call.
template <class S>
struct attention_workspace {
    std::vector<std::vector<S>> scratch;  ///< per thread: 3 x query_block x keys
    std::vector<std::int64_t> squares;    ///< B + 1 prefix sums of keys^2 (probability / dropout layout)
};

/// Query rows per block: a multiple of 48 (Eigen's panel height), large enough that BERT (at
/// most 512 positions) never splits a sequence.
inline constexpr int attention_query_block = 768;

namespace attention_detail {

/// The score scale of a layout in scalar S.
template <class S>
S scale_of(const attention_layout& layout) {
    return layout.scale > 0.0 ? static_cast<S>(layout.scale) : S{1} / std::sqrt(static_cast<S>(layout.head_dim));
}

/// Sizes the per-thread scratch and the square offsets for a call.
template <class S>
void prepare(thread_pool& pool, const attention_layout& layout, attention_workspace<S>& ws, int buffers) {
    const int B = layout.sequences();
    ws.squares.resize(static_cast<std::size_t>(B) + 1);
    ws.squares[0] = 0;
    int max_keys = 0;
    std::int64_t max_rows = 0;
    for (int b = 0; b < B; ++b) {
        const std::int64_t n = layout.keys(b);
        ws.squares[static_cast<std::size_t>(b) + 1] = ws.squares[static_cast<std::size_t>(b)] + n * n;
        max_keys = std::max(max_keys, static_cast<int>(n));
        max_rows = std::max(max_rows, layout.q_offsets[static_cast<std::size_t>(b) + 1] - layout.q_offsets[static_cast<std::size_t>(b)]);
    }
    const auto block = static_cast<std::size_t>(std::min<std::int64_t>(max_rows, attention_query_block));
    const std::size_t need = static_cast<std::size_t>(buffers) * block * static_cast<std::size_t>(max_keys);
    if (ws.scratch.size() < static_cast<std::size_t>(pool.size())) ws.scratch.resize(static_cast<std::size_t>(pool.size()));
    for (auto& s : ws.scratch)
        if (s.size() < need) s.resize(need);
}

/// Where the probabilities of (sequence b, head h, position p) start in the square layout.
inline std::size_t square_index(const attention_layout& layout, const std::vector<std::int64_t>& squares, int b, int h,
                                std::int64_t p) {
    const auto n = static_cast<std::size_t>(layout.keys(b));
    return static_cast<std::size_t>(squares[static_cast<std::size_t>(b)]) * static_cast<std::size_t>(layout.q_heads) +
           static_cast<std::size_t>(h) * n * n + static_cast<std::size_t>(p) * n;
}

/// P[rows, n] = softmax(scale q k^T) for query rows [i0, i0 + rows) of sequence b, head h (row
/// r's keys beyond its visible ones are 0): the one definition both passes use.
template <class S>
void probabilities(const attention_layout& layout, const attention_tensors<S>& t, int b, int h, int i0, int rows,
                   S* P) {
    const int d = layout.head_dim;
    const int g = h / (layout.q_heads / layout.kv_heads);
    const int n = layout.keys(b);
    const S* q = t.q + (layout.q_offsets[static_cast<std::size_t>(b)] + i0) * t.ldq + h * d;
    const S* k = t.k + layout.kv_begin(b) * t.ldk + g * d;
    gemm<S>(false, true, rows, n, d, scale_of<S>(layout), q, static_cast<int>(t.ldq), k, static_cast<int>(t.ldk), S{0},
            P, n);
    const std::int64_t p0 = layout.position(b) + i0;
    for (int r = 0; r < rows; ++r) {
        S* row = P + static_cast<std::ptrdiff_t>(r) * n;
        const int visible = layout.visible(b, p0 + r);
        softmax_row(row, visible);
        std::fill(row + visible, row + n, S{0});
    }
}

/// Forward task: sequence b, query head h.
template <class S>
void forward_head(const attention_layout& layout, const attention_tensors<S>& t, const std::vector<std::int64_t>& squares,
                  S* scratch, int b, int h) {
    const int d = layout.head_dim;
    const int g = h / (layout.q_heads / layout.kv_heads);
    const std::int64_t r0 = layout.q_offsets[static_cast<std::size_t>(b)];
    const int rows = static_cast<int>(layout.q_offsets[static_cast<std::size_t>(b) + 1] - r0);
    const int n = layout.keys(b);
    const S gate = t.gates.empty() ? S{1} : t.gates[static_cast<std::size_t>(h)];
    S* c = t.context + r0 * t.ldc + h * d;
    S* cg = t.gated != nullptr ? t.gated + r0 * t.ldg + h * d : nullptr;
    if (n == 0 || (t.skip_gated_off && gate == S{0})) {
        for (int r = 0; r < rows; ++r) {
            std::fill(c + r * t.ldc, c + r * t.ldc + d, S{0});
            if (cg != nullptr) std::fill(cg + r * t.ldg, cg + r * t.ldg + d, S{0});
        }
        return;
    }
    const S* v = t.v + layout.kv_begin(b) * t.ldv + g * d;
    const auto ns = static_cast<std::size_t>(n);
    for (int i0 = 0; i0 < rows; i0 += attention_query_block) {
        const int m = std::min(attention_query_block, rows - i0);
        S* P = scratch;
        probabilities(layout, t, b, h, i0, m, P);
        const std::int64_t p0 = layout.position(b) + i0;
        if (t.probs != nullptr) {
            S* out = t.probs + square_index(layout, squares, b, h, p0);
            std::copy(P, P + static_cast<std::size_t>(m) * ns, out);
        }
        if (t.probs_dropout.active()) {
            const std::size_t base = square_index(layout, squares, b, h, p0);
            for (std::size_t i = 0; i < static_cast<std::size_t>(m) * ns; ++i)
                P[i] *= t.probs_dropout.template scale<S>(base + i);
        }
        S* ci = c + i0 * t.ldc;
        gemm<S>(false, false, m, d, n, S{1}, P, n, v, static_cast<int>(t.ldv), S{0}, ci, static_cast<int>(t.ldc));
        if (cg != nullptr) {
            S* cgi = cg + i0 * t.ldg;
            for (int r = 0; r < m; ++r)
                for (int j = 0; j < d; ++j) cgi[r * t.ldg + j] = gate * ci[r * t.ldc + j];
        } else if (gate != S{1}) {
            for (int r = 0; r < m; ++r)
                for (int j = 0; j < d; ++j) ci[r * t.ldc + j] *= gate;
        }
    }
}

/// Backward of query head h of sequence b (K/V head g's gradients accumulate: `first` = this
/// head writes them, else adds).
template <class S>
void backward_head(const attention_layout& layout, const attention_tensors<S>& t, const std::vector<std::int64_t>& squares,
                   S* scratch, int b, int h, bool first) {
    const int d = layout.head_dim;
    const int g = h / (layout.q_heads / layout.kv_heads);
    const std::int64_t r0 = layout.q_offsets[static_cast<std::size_t>(b)];
    const int rows = static_cast<int>(layout.q_offsets[static_cast<std::size_t>(b) + 1] - r0);
    const int n = layout.keys(b);
    const auto ns = static_cast<std::size_t>(n);
    const S gate = t.gates.empty() ? S{1} : t.gates[static_cast<std::size_t>(h)];
    // Gate gradient: sum over rows of <context, d gated>; then d context = gate * d gated, in place.
    S* dc = t.d_gated + r0 * t.ldd + h * d;
    double gsum = 0.0;
    for (int r = 0; r < rows; ++r) {
        S* dcr = dc + r * t.ldd;
        gsum += static_cast<double>(dot(t.context + (r0 + r) * t.ldc + h * d, dcr, d));
        if (gate != S{1})
            for (int j = 0; j < d; ++j) dcr[j] *= gate;
    }
    if (t.gate_grads != nullptr) t.gate_grads[static_cast<std::size_t>(b) * t.gate_stride + static_cast<std::size_t>(h)] += gsum;
    const std::int64_t k0 = layout.kv_begin(b);
    const S* k = t.k + k0 * t.ldk + g * d;
    const S* v = t.v + k0 * t.ldv + g * d;
    S* dk = t.dk + k0 * t.lddk + g * d;
    S* dv = t.dv + k0 * t.lddv + g * d;
    const S scale = scale_of<S>(layout);
    const std::size_t block = static_cast<std::size_t>(std::min(rows, attention_query_block)) * ns;
    for (int i0 = 0; i0 < rows; i0 += attention_query_block) {
        const int m = std::min(attention_query_block, rows - i0);
        const std::int64_t p0 = layout.position(b) + i0;
        const std::size_t base = square_index(layout, squares, b, h, p0);
        const S* P = scratch;
        if (t.probs != nullptr) P = t.probs + base;
        else probabilities(layout, t, b, h, i0, m, scratch);
        S* dP = scratch + block;
        const S* Pd = P;
        if (t.probs_dropout.active()) {
            S* dropped = scratch + 2 * block;
            for (std::size_t i = 0; i < static_cast<std::size_t>(m) * ns; ++i)
                dropped[i] = P[i] * t.probs_dropout.template scale<S>(base + i);
            Pd = dropped;
        }
        const S beta = first && i0 == 0 ? S{0} : S{1};
        const S* dci = dc + i0 * t.ldd;
        const S* qi = t.q + (r0 + i0) * t.ldq + h * d;
        // dV = Pd^T dC ; dPd = dC V^T
        gemm<S>(true, false, n, d, m, S{1}, Pd, n, dci, static_cast<int>(t.ldd), beta, dv, static_cast<int>(t.lddv));
        gemm<S>(false, true, m, n, d, S{1}, dci, static_cast<int>(t.ldd), v, static_cast<int>(t.ldv), S{0}, dP, n);
        for (int r = 0; r < m; ++r) {
            S* row = dP + static_cast<std::size_t>(r) * ns;
            if (t.probs_dropout.active())
                for (std::size_t j = 0; j < ns; ++j) row[j] *= t.probs_dropout.template scale<S>(base + static_cast<std::size_t>(r) * ns + j);
            const int visible = layout.visible(b, p0 + r);
            softmax_backward_row(P + static_cast<std::size_t>(r) * ns, row, visible);
            std::fill(row + visible, row + n, S{0});
        }
        // dQ = dS K * s (this block's query rows) ; dK (+)= dS^T Q * s
        gemm<S>(false, false, m, d, n, scale, dP, n, k, static_cast<int>(t.ldk), S{0}, t.dq + (r0 + i0) * t.lddq + h * d,
                static_cast<int>(t.lddq));
        gemm<S>(true, false, n, d, m, scale, dP, n, qi, static_cast<int>(t.ldq), beta, dk, static_cast<int>(t.lddk));
    }
}

}  // namespace attention_detail

/// The forward pass (see the header comment): writes t.context (and t.gated, t.probs when set)
/// for every query row. Preconditions (checked by the model, PRUNE_ASSERT-level): offsets
/// non-decreasing, kv_heads divides q_heads, operands large enough.
template <class S>
void attention_forward(thread_pool& pool, const attention_layout& layout, const attention_tensors<S>& t,
                       attention_workspace<S>& ws) {
    const int B = layout.sequences();
    if (B <= 0) return;
    attention_detail::prepare(pool, layout, ws, 1);
    const int Hq = layout.q_heads;
    pool.parallel_tasks(static_cast<std::int64_t>(B) * Hq, [&](std::int64_t task, int thread) {
        attention_detail::forward_head(layout, t, ws.squares, ws.scratch[static_cast<std::size_t>(thread)].data(),
                                       static_cast<int>(task / Hq), static_cast<int>(task % Hq));
    });
}

/// The backward pass of the last attention_forward with the same layout and tensors: from
/// t.d_gated (overwritten with dL/d context) writes t.dq, t.dk, t.dv and adds the gate
/// gradients of each sequence to t.gate_grads. The probabilities are read from t.probs when the
/// forward pass recorded them, else recomputed (the same bits).
template <class S>
void attention_backward(thread_pool& pool, const attention_layout& layout, const attention_tensors<S>& t,
                        attention_workspace<S>& ws) {
    const int B = layout.sequences();
    if (B <= 0) return;
    attention_detail::prepare(pool, layout, ws, t.probs_dropout.active() ? 3 : 2);
    const int Hkv = layout.kv_heads;
    const int group = layout.q_heads / Hkv;
    pool.parallel_tasks(static_cast<std::int64_t>(B) * Hkv, [&](std::int64_t task, int thread) {
        const int b = static_cast<int>(task / Hkv);
        const int g = static_cast<int>(task % Hkv);
        for (int j = 0; j < group; ++j) {
            attention_detail::backward_head(layout, t, ws.squares, ws.scratch[static_cast<std::size_t>(thread)].data(), b,
                                            g * group + j, j == 0);
        }
    });
}

}  // namespace prune::nn
