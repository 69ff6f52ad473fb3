// prune/models/bert/forward.hpp: the forward pass of BertForSequenceClassification, exactly as
// Hugging Face computes it, with head and MLP gates, on packed (padding-free) batches.
//
//   embeddings  x = LN(word[id] + position[p] + type[t])
//   each layer  a = LN(x + (gate_h * softmax(Q_h K_h^T / sqrt(d) + padding)) V_h  W_o^T + b_o)
//               y = LN(a + gate_mlp * (gelu(a W_1^T + b_1) W_2^T + b_2))
//   head        logits = classifier(tanh(pooler(y[CLS])))       (num_labels == 1: regression)
//
// Performance choices (docs/bert.md has the measurements): Q, K and V come from one GEMM;
// the residual is the GEMM's C operand (beta = 1), so bias + residual + LayerNorm is one
// pass; the Q/K/V and intermediate products land on their bias (C pre-filled, beta = 1),
// so OpenBLAS skips its zeroing pass and GELU is one in-place pass; every thread of the pool runs its own row block through a
// GEMM and then the row-wise pass, so data stays in cache; attention runs per (sequence,
// head) task; nothing is allocated per call once the workspace has grown; padding is never
// computed (packed batches); for classification the last layer computes K and V for every
// token but everything else only for the [CLS] rows.
//
// Training: pass a `forward_cache` to record every activation the backward pass needs
// (the full last layer is then computed). Without one, nothing is recorded or copied.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/threads.hpp>
#include <prune/models/bert/batch.hpp>
#include <prune/models/bert/kernels.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace prune::bert {

/// Head and MLP gates (1 = on, 0 = off; any value is allowed). Empty vectors mean all 1.
struct gates {
    std::vector<std::vector<float>> heads;  ///< heads[l][h], h over the layer's kept heads
    std::vector<float> mlps;                ///< mlps[l]

    /// The gate of head h of layer l (1 when unset).
    [[nodiscard]] float head(std::size_t l, std::size_t h) const {
        return heads.empty() || heads[l].empty() ? 1.0f : heads[l][h];
    }
    /// The gate of layer l's MLP (1 when unset).
    [[nodiscard]] float mlp(std::size_t l) const { return mlps.empty() ? 1.0f : mlps[l]; }

    /// Throws shape_error when the gates do not fit `w` (layers, kept heads per layer).
    void check(const weights& w) const {
        if (!heads.empty()) {
            if (heads.size() != w.layers.size()) {
                throw shape_error("gates: " + std::to_string(heads.size()) + " head rows for a model of " +
                                  std::to_string(w.layers.size()) + " layers");
            }
            for (std::size_t l = 0; l < heads.size(); ++l) {
                if (!heads[l].empty() && heads[l].size() != static_cast<std::size_t>(w.layers[l].heads)) {
                    throw shape_error("gates: layer " + std::to_string(l) + " has " + std::to_string(heads[l].size()) +
                                      " head gates, the model " + std::to_string(w.layers[l].heads) + " heads");
                }
            }
        }
        if (!mlps.empty() && mlps.size() != w.layers.size()) {
            throw shape_error("gates: " + std::to_string(mlps.size()) + " MLP gates for a model of " +
                              std::to_string(w.layers.size()) + " layers");
        }
    }

    /// Gates from a structure mask. A mask row may list every original head (mapped through the
    /// layer's head_ids; a head already removed must be 0 there) or just the kept heads; an empty
    /// mask (no layers) means all 1. W: weights, or any type with the same cfg and layers[l].heads /
    /// head_ids (basic_weights<double>). Throws shape_error when the mask does not fit the model (the
    /// message says which part of the mask and what was expected; a caller that knows the mask's
    /// file prefixes it, as prune-eval does).
    template <class W>
    [[nodiscard]] static gates from_mask(const structure_mask& mask, const W& w) {
        gates g;
        const std::size_t layers = w.layers.size();
        if (mask.heads.layers() != 0) {
            if (mask.heads.layers() != layers) {
                throw shape_error("head mask has " + std::to_string(mask.heads.layers()) + " layers (expected " +
                                  std::to_string(layers) + ", the model's layers)");
            }
            g.heads.resize(layers);
            for (std::size_t l = 0; l < layers; ++l) {
                const auto& layer = w.layers[l];
                const std::size_t n = mask.heads.groups(l);
                if (n == static_cast<std::size_t>(layer.heads)) {
                    for (std::size_t h = 0; h < n; ++h) {
                        g.heads[l].push_back(mask.heads.kept(l, h) ? 1.0f : 0.0f);
                    }
                } else if (n == static_cast<std::size_t>(w.cfg.num_attention_heads)) {
                    for (int id : layer.head_ids) {
                        g.heads[l].push_back(mask.heads.kept(l, static_cast<std::size_t>(id)) ? 1.0f : 0.0f);
                    }
                } else {
                    throw shape_error("head mask row " + std::to_string(l) + " has " + std::to_string(n) +
                                      " entries (expected " + std::to_string(w.cfg.num_attention_heads) +
                                      " or the layer's " + std::to_string(layer.heads) + " kept heads)");
                }
            }
        }
        if (mask.mlps.layers() != 0) {
            if (mask.mlps.layers() != layers) {
                throw shape_error("MLP mask has " + std::to_string(mask.mlps.layers()) + " layers (expected " +
                                  std::to_string(layers) + ", the model's layers)");
            }
            for (std::size_t l = 0; l < layers; ++l) {
                if (mask.mlps.groups(l) != 1) {
                    throw shape_error("MLP mask layer " + std::to_string(l) + " has " +
                                      std::to_string(mask.mlps.groups(l)) + " entries (expected 1)");
                }
                g.mlps.push_back(mask.mlps.kept(l, 0) ? 1.0f : 0.0f);
            }
        }
        return g;
    }
};

/// The activations of one encoder layer that the backward pass needs (rows = packed tokens).
struct layer_cache {
    matrix input;             ///< [T, hidden] the layer's input x
    matrix qkv;               ///< [T, 3A] query | key | value, biases added
    std::vector<matrix> probs;  ///< probs[b * heads + h]: [len_b, len_b] softmax, before the gate
    matrix context;           ///< [T, A] per-head context P V, before the gate
    matrix attention_sum;     ///< [T, hidden] x + gated context W_o^T + b_o (LayerNorm input)
    vector attention_rstd;    ///< [T] 1 / sqrt(var + eps) of that LayerNorm
    matrix attention_out;     ///< [T, hidden] a, the attention block's output
    matrix intermediate_pre;  ///< [T, ffn] a W_1^T + b_1
    matrix intermediate_act;  ///< [T, ffn] gelu of it
    matrix mlp_out;           ///< [T, hidden] W_2 gelu(.) + b_2, before the MLP gate
    matrix output_sum;        ///< [T, hidden] a + gate * mlp_out (LayerNorm input)
    vector output_rstd;       ///< [T] 1 / sqrt(var + eps) of that LayerNorm
};

/// Everything a training forward pass records (see forward_options::cache).
struct forward_cache {
    matrix embedding_sum;            ///< [T, hidden] word + position + type (LayerNorm input)
    vector embedding_rstd;           ///< [T]
    std::vector<layer_cache> layers;  ///< per layer
    matrix output;                   ///< [T, hidden] the encoder's output
    matrix cls;                      ///< [B, hidden] the [CLS] rows of the output
    matrix pooled;                   ///< [B, hidden] tanh(pooler(cls)) (when the model has a head)
};

/// How one forward call runs.
struct forward_options {
    const gates* gate = nullptr;     ///< head / MLP gates (null = all 1)
    bool cls_only = true;            ///< last layer only for [CLS] rows (classification); ignored with a cache
    forward_cache* cache = nullptr;  ///< record activations for backward (null = inference)
};

/// Grow-only scratch memory and the thread pool of the forward pass. Not thread-safe: one
/// forward call at a time per workspace. Nothing is allocated once it has grown.
class workspace {
public:
    /// A workspace running on `threads` threads (0 = all cores) with the given GEMM back-ends
    /// (dense layers, and the per-head attention products; see prune/nn/gemm.hpp): `automatic`
    /// is OpenBLAS when the process has it single-threaded (nn::setup_process) with fast kernels.
    explicit workspace(int threads = 0, nn::gemm_backend dense = nn::gemm_backend::automatic,
                       nn::gemm_backend attention = nn::gemm_backend::eigen)
        : pool_(threads), dense_(resolve(dense)), attention_(resolve(attention)) {
        scores_.resize(static_cast<std::size_t>(pool_.size()));
    }

    /// The pool the pass runs on.
    [[nodiscard]] nn::thread_pool& pool() noexcept { return pool_; }
    /// Back-end of the dense layers (blas or eigen).
    [[nodiscard]] nn::gemm_backend dense_backend() const noexcept { return dense_; }
    /// Back-end of the attention products (blas or eigen).
    [[nodiscard]] nn::gemm_backend attention_backend() const noexcept { return attention_; }

    /// The encoder output of the last call: [T, hidden], or [B, hidden] [CLS] rows when cls_only applied.
    [[nodiscard]] Eigen::Map<const matrix> hidden() const {
        return {output_rows_ == 0 ? nullptr : output_ptr_, output_rows_, hidden_size_};
    }
    /// The logits of the last classify call: [B, num_labels].
    [[nodiscard]] Eigen::Map<const matrix> logits() const {
        return {logits_.data.data(), batch_, labels_};
    }

    /// Grow-only float buffer (internal).
    struct buffer {
        std::vector<float> data;  ///< storage
        /// At least n floats.
        float* get(std::size_t n) {
            if (data.size() < n) {
                data.resize(n);
            }
            return data.data();
        }
    };

private:
    friend void encode(const weights&, const packed_batch&, workspace&, const forward_options&);
    friend Eigen::Map<const matrix> classify(const weights&, const packed_batch&, workspace&,
                                             const forward_options&);

    /// blas when the process has OpenBLAS (for automatic: single-threaded, with fast kernels), else eigen.
    static nn::gemm_backend resolve(nn::gemm_backend b) {
        const bool blas = b == nn::gemm_backend::blas ? nn::have_blas()
                          : b == nn::gemm_backend::automatic
                              ? nn::have_blas() && nn::blas_is_fast() && nn::blas_single_threaded_now()
                              : false;
        return blas ? nn::gemm_backend::blas : nn::gemm_backend::eigen;
    }

    nn::thread_pool pool_;
    nn::gemm_backend dense_;
    nn::gemm_backend attention_;
    buffer x_, qkv_, ctx_, ffn_, cls_x_, cls_q_, cls_ctx_, cls_ffn_, pooled_, logits_;
    std::vector<buffer> scores_;
    const float* output_ptr_ = nullptr;
    Eigen::Index output_rows_ = 0;
    Eigen::Index hidden_size_ = 0;
    Eigen::Index batch_ = 0;
    Eigen::Index labels_ = 0;
};

namespace detail {

/// C[M, N] = alpha * A[M, K] B[N, K]^T + beta C on `backend` (blas or eigen), single-threaded.
inline void gemm_nt(nn::gemm_backend backend, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                    int ldb, float beta, float* c, int ldc) {
    nn::gemm_on<float>(backend == nn::gemm_backend::blas, false, true, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// C[M, N] = alpha * A[M, K] B[K, N] + beta C on `backend` (blas or eigen), single-threaded.
inline void gemm_nn(nn::gemm_backend backend, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                    int ldb, float beta, float* c, int ldc) {
    nn::gemm_on<float>(backend == nn::gemm_backend::blas, false, false, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/// Copies `rows` x `cols` floats (leading dimension ld) into an Eigen matrix.
inline void store(matrix& out, const float* src, Eigen::Index rows, Eigen::Index cols, Eigen::Index ld) {
    out.resize(rows, cols);
    for (Eigen::Index r = 0; r < rows; ++r) {
        std::memcpy(out.row(r).data(), src + r * ld, static_cast<std::size_t>(cols) * sizeof(float));
    }
}

/// Y[m, N] = alpha * X[m, K] W^T + beta * Y, split over output columns (for few rows).
inline void gemm_columns(nn::thread_pool& pool, nn::gemm_backend backend, int m, int n, int k, float alpha, const float* x,
                         int ldx, const float* w, int ldw, float beta, float* y, int ldy) {
    if (m <= 0 || n <= 0) {
        return;
    }
    const std::int64_t blocks = (n + 15) / 16;
    pool.parallel_for(blocks, [&](std::int64_t b0, std::int64_t b1) {
        const int n0 = static_cast<int>(b0 * 16);
        const int n1 = static_cast<int>(std::min<std::int64_t>(n, b1 * 16));
        gemm_nt(backend, m, n1 - n0, k, alpha, x, ldx, w + static_cast<std::ptrdiff_t>(n0) * ldw, ldw, beta, y + n0,
                ldy);
    });
}

/// Attention of the queries `q` (rows q_rows, ld ldq) of one (sequence, head) against its keys and
/// values; writes the ungated context P V (rows x d, ld ldc) and optionally the probabilities.
inline void attend(nn::gemm_backend backend, int q_rows, int len, int d, const float* q, int ldq, const float* k,
                   const float* v, int ldkv, float* scores, float* ctx, int ldc, float gate, matrix* probs_out) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    gemm_nt(backend, q_rows, len, d, scale, q, ldq, k, ldkv, 0.0f, scores, len);
    for (int r = 0; r < q_rows; ++r) {
        kernels::softmax(scores + static_cast<std::ptrdiff_t>(r) * len, len, probs_out != nullptr ? 1.0f : gate);
    }
    if (probs_out != nullptr) {
        store(*probs_out, scores, q_rows, len, len);
    }
    gemm_nn(backend, q_rows, d, len, 1.0f, scores, len, v, ldkv, 0.0f, ctx, ldc);
}

}  // namespace detail

/// Runs the embeddings and every encoder layer; the result is workspace.hidden(). With
/// options.cls_only (and no cache) the last layer computes only the [CLS] rows.
/// Throws value_error / shape_error on a batch or gates that do not fit the model.
inline void encode(const weights& w, const packed_batch& batch, workspace& ws, const forward_options& options) {
    const config& cfg = w.cfg;
    batch.validate(cfg);
    if (options.gate != nullptr) {
        options.gate->check(w);
    }
    const int hidden = cfg.hidden_size;
    const std::int64_t tokens = batch.tokens();
    const int sequences = batch.sequences();
    if (sequences == 0) {
        throw value_error("encode: empty batch");
    }
    const float eps = cfg.layer_norm_eps;
    nn::thread_pool& pool = ws.pool_;
    const nn::gemm_backend dense = ws.dense_;
    const nn::gemm_backend attn_backend = ws.attention_;
    forward_cache* cache = options.cache;
    const bool cls_only = options.cls_only && cache == nullptr;
    const int max_len = batch.max_length();
    const auto hsz = static_cast<std::size_t>(hidden);

    float* x = ws.x_.get(static_cast<std::size_t>(tokens) * hsz);
    for (auto& s : ws.scores_) {
        s.get(static_cast<std::size_t>(max_len) * static_cast<std::size_t>(max_len));
    }
    if (cache != nullptr) {
        cache->embedding_sum.resize(tokens, hidden);
        cache->embedding_rstd.resize(tokens);
        cache->layers.assign(w.layers.size(), layer_cache{});
    }

    // Embeddings + LayerNorm.
    pool.parallel_for(tokens, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t) {
            const auto i = static_cast<std::size_t>(t);
            float* row = x + i * hsz;
            const float* word = w.word_embeddings.row(batch.token_ids[i]).data();
            const float* pos = w.position_embeddings.row(batch.positions[i]).data();
            const float* type = w.token_type_embeddings.row(batch.token_types[i]).data();
            for (int c = 0; c < hidden; ++c) {
                row[c] = word[c] + pos[c] + type[c];
            }
            kernels::bias_layer_norm(row, nullptr, 0.0f, w.embedding_norm.weight.data(), w.embedding_norm.bias.data(),
                                     hidden, eps, cache ? cache->embedding_sum.row(t).data() : nullptr,
                                     cache ? &cache->embedding_rstd[t] : nullptr);
        }
    });

    const std::size_t layers = w.layers.size();
    for (std::size_t l = 0; l < layers; ++l) {
        const layer_weights& L = w.layers[l];
        const int heads = L.heads;
        const int d = L.head_size;
        const int A = L.attention_width();
        const int A3 = 3 * A;
        const int ffn = L.ffn();
        const float mlp_gate = options.gate ? options.gate->mlp(l) : 1.0f;
        const bool run_mlp = ffn > 0 && (mlp_gate != 0.0f || cache != nullptr);
        const bool last = l + 1 == layers;
        layer_cache* lc = cache ? &cache->layers[l] : nullptr;
        if (lc != nullptr) {
            detail::store(lc->input, x, tokens, hidden, hidden);
        }
        auto head_gate = [&](int h) {
            return options.gate ? options.gate->head(l, static_cast<std::size_t>(h)) : 1.0f;
        };

        if (last && cls_only) {
            // ---- Last layer, [CLS] rows only ----
            const int B = sequences;
            float* cx = ws.cls_x_.get(static_cast<std::size_t>(B) * hsz);
            for (int b = 0; b < B; ++b) {
                std::memcpy(cx + static_cast<std::size_t>(b) * hsz, x + static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]) * hsz,
                            hsz * sizeof(float));
            }
            if (A > 0) {
                float* qkv = ws.qkv_.get(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(A3));
                float* q = ws.cls_q_.get(static_cast<std::size_t>(B) * static_cast<std::size_t>(A));
                float* cctx = ws.cls_ctx_.get(static_cast<std::size_t>(B) * static_cast<std::size_t>(A));
                // K and V for every token (row blocks), Q for the [CLS] rows.
                pool.parallel_for(tokens, [&](std::int64_t r0, std::int64_t r1) {
                    const int m = static_cast<int>(r1 - r0);
                    float* out = qkv + r0 * A3 + A;
                    detail::gemm_nt(dense, m, 2 * A, hidden, 1.0f, x + r0 * hidden, hidden,
                            L.qkv.weight.data() + static_cast<std::ptrdiff_t>(A) * hidden, hidden, 0.0f, out, A3);
                    for (int r = 0; r < m; ++r) {
                        kernels::add_bias(out + static_cast<std::ptrdiff_t>(r) * A3, L.qkv.bias.data() + A, 2 * A);
                    }
                });
                detail::gemm_columns(pool, dense, B, A, hidden, 1.0f, cx, hidden, L.qkv.weight.data(), hidden, 0.0f, q,
                                     A);
                for (int b = 0; b < B; ++b) {
                    kernels::add_bias(q + static_cast<std::ptrdiff_t>(b) * A, L.qkv.bias.data(), A);
                }
                pool.parallel_tasks(static_cast<std::int64_t>(B) * heads, [&](std::int64_t task, int t) {
                    const int b = static_cast<int>(task / heads);
                    const int h = static_cast<int>(task % heads);
                    const float g = head_gate(h);
                    float* c = cctx + static_cast<std::ptrdiff_t>(b) * A + h * d;
                    if (g == 0.0f) {
                        std::fill(c, c + d, 0.0f);
                        return;
                    }
                    const float* base = qkv + batch.offsets[static_cast<std::size_t>(b)] * A3;
                    detail::attend(attn_backend, 1, batch.length(b), d, q + static_cast<std::ptrdiff_t>(b) * A + h * d, A,
                                   base + A + h * d, base + 2 * A + h * d, A3,
                                   ws.scores_[static_cast<std::size_t>(t)].data.data(), c, A, g, nullptr);
                });
                detail::gemm_columns(pool, dense, B, hidden, A, 1.0f, cctx, A, L.attention_output.weight.data(), A, 1.0f,
                                     cx, hidden);
            }
            for (int b = 0; b < B; ++b) {
                kernels::bias_layer_norm(cx + static_cast<std::size_t>(b) * hsz, L.attention_output.bias.data(), 1.0f,
                                         L.attention_norm.weight.data(), L.attention_norm.bias.data(), hidden, eps,
                                         nullptr, nullptr);
            }
            if (run_mlp) {
                float* h1 = ws.cls_ffn_.get(static_cast<std::size_t>(B) * static_cast<std::size_t>(ffn));
                detail::gemm_columns(pool, dense, B, ffn, hidden, 1.0f, cx, hidden, L.intermediate.weight.data(), hidden,
                                     0.0f, h1, ffn);
                for (int b = 0; b < B; ++b) {
                    kernels::bias_gelu(h1 + static_cast<std::ptrdiff_t>(b) * ffn, L.intermediate.bias.data(), ffn,
                                       nullptr);
                }
                detail::gemm_columns(pool, dense, B, hidden, ffn, mlp_gate, h1, ffn, L.output.weight.data(), ffn, 1.0f,
                                     cx, hidden);
            }
            for (int b = 0; b < B; ++b) {
                kernels::bias_layer_norm(cx + static_cast<std::size_t>(b) * hsz, run_mlp ? L.output.bias.data() : nullptr,
                                         mlp_gate, L.output_norm.weight.data(), L.output_norm.bias.data(), hidden, eps,
                                         nullptr, nullptr);
            }
            ws.output_ptr_ = cx;
            ws.output_rows_ = B;
            ws.hidden_size_ = hidden;
            return;
        }

        // ---- Self-attention over every packed token ----
        if (A > 0) {
            float* qkv = ws.qkv_.get(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(A3));
            float* ctx = ws.ctx_.get(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(A));
            pool.parallel_for(tokens, [&](std::int64_t r0, std::int64_t r1) {
                const int m = static_cast<int>(r1 - r0);
                kernels::fill_rows(qkv + r0 * A3, A3, m, L.qkv.bias.data(), A3);  // C = bias, then beta = 1
                detail::gemm_nt(dense, m, A3, hidden, 1.0f, x + r0 * hidden, hidden, L.qkv.weight.data(), hidden, 1.0f,
                        qkv + r0 * A3, A3);
            });
            if (lc != nullptr) {
                detail::store(lc->qkv, qkv, tokens, A3, A3);
                lc->probs.assign(static_cast<std::size_t>(sequences) * static_cast<std::size_t>(heads), matrix{});
            }
            pool.parallel_tasks(static_cast<std::int64_t>(sequences) * heads, [&](std::int64_t task, int t) {
                const int b = static_cast<int>(task / heads);
                const int h = static_cast<int>(task % heads);
                const float g = head_gate(h);
                const std::int64_t row0 = batch.offsets[static_cast<std::size_t>(b)];
                const int len = batch.length(b);
                float* c = ctx + row0 * A + h * d;
                if (g == 0.0f && lc == nullptr) {
                    for (int r = 0; r < len; ++r) {
                        std::fill(c + static_cast<std::ptrdiff_t>(r) * A, c + static_cast<std::ptrdiff_t>(r) * A + d, 0.0f);
                    }
                    return;
                }
                const float* base = qkv + row0 * A3;
                detail::attend(attn_backend, len, len, d, base + h * d, A3, base + A + h * d, base + 2 * A + h * d, A3,
                               ws.scores_[static_cast<std::size_t>(t)].data.data(), c, A, g,
                               lc ? &lc->probs[static_cast<std::size_t>(task)] : nullptr);
            });
            if (lc != nullptr) {  // record the ungated context, then apply the gates
                detail::store(lc->context, ctx, tokens, A, A);
                for (int h = 0; h < heads; ++h) {
                    const float g = head_gate(h);
                    if (g != 1.0f) {
                        for (std::int64_t r = 0; r < tokens; ++r) {
                            for (int c = 0; c < d; ++c) {
                                ctx[r * A + h * d + c] *= g;
                            }
                        }
                    }
                }
            }
        } else if (lc != nullptr) {
            lc->qkv.resize(tokens, 0);
            lc->context.resize(tokens, 0);
            lc->probs.clear();
        }
        if (lc != nullptr) {
            lc->attention_sum.resize(tokens, hidden);
            lc->attention_rstd.resize(tokens);
        }
        // Attention output: x += ctx W_o^T, then bias + LayerNorm, per row block.
        const float* ctx = ws.ctx_.data.data();
        pool.parallel_for(tokens, [&](std::int64_t r0, std::int64_t r1) {
            const int m = static_cast<int>(r1 - r0);
            if (A > 0) {
                detail::gemm_nt(dense, m, hidden, A, 1.0f, ctx + r0 * A, A, L.attention_output.weight.data(), A, 1.0f,
                        x + r0 * hidden, hidden);
            }
            for (std::int64_t r = r0; r < r1; ++r) {
                kernels::bias_layer_norm(x + r * hidden, L.attention_output.bias.data(), 1.0f,
                                         L.attention_norm.weight.data(), L.attention_norm.bias.data(), hidden, eps,
                                         lc ? lc->attention_sum.row(r).data() : nullptr,
                                         lc ? &lc->attention_rstd[r] : nullptr);
            }
        });
        if (lc != nullptr) {
            detail::store(lc->attention_out, x, tokens, hidden, hidden);
            lc->intermediate_pre.resize(tokens, ffn);
            lc->intermediate_act.resize(tokens, ffn);
            lc->mlp_out.resize(tokens, ffn > 0 ? hidden : 0);
            lc->output_sum.resize(tokens, hidden);
            lc->output_rstd.resize(tokens);
        }
        // Feed-forward: h = gelu(a W_1^T + b_1); x = LN(a + gate (h W_2^T + b_2)), per row block.
        float* h1 = run_mlp ? ws.ffn_.get(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(ffn)) : nullptr;
        pool.parallel_for(tokens, [&](std::int64_t r0, std::int64_t r1) {
            const int m = static_cast<int>(r1 - r0);
            if (run_mlp) {
                float* hb = h1 + r0 * ffn;
                kernels::fill_rows(hb, ffn, m, L.intermediate.bias.data(), ffn);  // C = bias, then beta = 1
                detail::gemm_nt(dense, m, ffn, hidden, 1.0f, x + r0 * hidden, hidden, L.intermediate.weight.data(), hidden, 1.0f,
                        hb, ffn);
                for (int r = 0; r < m; ++r) {
                    kernels::gelu_in_place(hb + static_cast<std::ptrdiff_t>(r) * ffn, ffn,
                                           lc ? lc->intermediate_pre.row(r0 + r).data() : nullptr);
                }
                if (lc != nullptr) {
                    for (int r = 0; r < m; ++r) {
                        std::memcpy(lc->intermediate_act.row(r0 + r).data(), hb + static_cast<std::ptrdiff_t>(r) * ffn,
                                    static_cast<std::size_t>(ffn) * sizeof(float));
                    }
                    detail::gemm_nt(dense, m, hidden, ffn, 1.0f, hb, ffn, L.output.weight.data(), ffn, 0.0f,
                            lc->mlp_out.row(r0).data(), hidden);
                    for (std::int64_t r = r0; r < r1; ++r) {
                        float* out = lc->mlp_out.row(r).data();
                        kernels::add_bias(out, L.output.bias.data(), hidden);
                        float* xr = x + r * hidden;
                        for (int c = 0; c < hidden; ++c) {
                            xr[c] += mlp_gate * out[c];
                        }
                    }
                } else {
                    detail::gemm_nt(dense, m, hidden, ffn, mlp_gate, hb, ffn, L.output.weight.data(), ffn, 1.0f, x + r0 * hidden,
                            hidden);
                }
            }
            const bool add_bias = run_mlp && lc == nullptr;
            for (std::int64_t r = r0; r < r1; ++r) {
                kernels::bias_layer_norm(x + r * hidden, add_bias ? L.output.bias.data() : nullptr, mlp_gate,
                                         L.output_norm.weight.data(), L.output_norm.bias.data(), hidden, eps,
                                         lc ? lc->output_sum.row(r).data() : nullptr,
                                         lc ? &lc->output_rstd[r] : nullptr);
            }
        });
    }
    ws.output_ptr_ = x;
    ws.output_rows_ = tokens;
    ws.hidden_size_ = hidden;
    if (cache != nullptr) {
        detail::store(cache->output, x, tokens, hidden, hidden);
    }
}

/// Runs encode() and the classification head; returns the logits [B, num_labels] (valid until
/// the next call on this workspace). Throws format_error when the model has no pooler/classifier.
inline Eigen::Map<const matrix> classify(const weights& w, const packed_batch& batch, workspace& ws,
                                         const forward_options& options = {}) {
    if (!w.has_head()) {
        throw format_error("classify: the model has no pooler / classifier weights");
    }
    encode(w, batch, ws, options);
    const int B = batch.sequences();
    const int hidden = w.cfg.hidden_size;
    const auto hsz = static_cast<std::size_t>(hidden);
    const float* cls = ws.output_ptr_;
    if (ws.output_rows_ != B) {  // full output: gather the [CLS] rows
        float* cx = ws.cls_x_.get(static_cast<std::size_t>(B) * hsz);
        for (int b = 0; b < B; ++b) {
            std::memcpy(cx + static_cast<std::size_t>(b) * hsz,
                        ws.output_ptr_ + static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]) * hsz,
                        hsz * sizeof(float));
        }
        cls = cx;
    }
    const int labels = static_cast<int>(w.classifier.weight.rows());
    float* pooled = ws.pooled_.get(static_cast<std::size_t>(B) * hsz);
    float* logits = ws.logits_.get(static_cast<std::size_t>(B) * static_cast<std::size_t>(labels));
    detail::gemm_columns(ws.pool_, ws.dense_, B, hidden, hidden, 1.0f, cls, hidden, w.pooler.weight.data(), hidden, 0.0f,
                         pooled, hidden);
    for (int b = 0; b < B; ++b) {
        Eigen::Map<Eigen::ArrayXf> row(pooled + static_cast<std::size_t>(b) * hsz, hidden);
        row = (row + w.pooler.bias.array()).tanh();
    }
    detail::gemm_nt(ws.dense_, B, labels, hidden, 1.0f, pooled, hidden, w.classifier.weight.data(), hidden, 0.0f, logits,
            labels);
    for (int b = 0; b < B; ++b) {
        kernels::add_bias(logits + static_cast<std::size_t>(b) * static_cast<std::size_t>(labels),
                          w.classifier.bias.data(), labels);
    }
    if (options.cache != nullptr) {
        detail::store(options.cache->cls, cls, B, hidden, hidden);
        detail::store(options.cache->pooled, pooled, B, hidden, hidden);
    }
    ws.batch_ = B;
    ws.labels_ = labels;
    return ws.logits();
}

}  // namespace prune::bert
