// prune/models/bert/backward.hpp: the training pass of the reference BERT -- a forward pass that
// records what it needs (with dropout in training mode) and the backward pass for
// cross-entropy (or MSE when num_labels == 1): gradients of every parameter and of the head
// and MLP gates, per example and per batch.
//
// The forward pass is Hugging Face's BertForSequenceClassification with dropout where HF puts
// it: after the embedding LayerNorm, on the attention probabilities (the head gate multiplies
// them after dropout), after the attention-output dense and the MLP's output dense (before
// the residual add; the MLP gate multiplies the dropped-out output) and on the pooled [CLS]
// before the classifier. Dropout draws are a counter-based hash of (seed, site, element), so
// a pass is reproducible and the backward pass recomputes the masks instead of storing them.
//
// Everything is templated on the weights type: prune::bert::weights (float, the model) or
// basic_weights<double> (for finite-difference tests; `cast_weights<double>(w)`), which have
// the same members. Products go through prune/nn/gemm.hpp: large float products to OpenBLAS when
// the process made it single-threaded and its kernels are fast on this CPU (else Eigen), doubles
// to OpenBLAS's dgemm (or Eigen).
//
// Thread-count independence: a pass gives the same bits on any number of threads, in every
// build. Reductions are ordered by index (lane_sum, column sums split by columns, gate
// gradients per sequence), dropout is drawn by index, OpenBLAS runs single-threaded (the pool
// threads above it), and a product is split over the pool only where the split cannot change
// its rounding: OpenBLAS's AVX-512 kernels (one block per thread, as measured), else fixed
// blocks that depend on the product's shape and the machine's core count alone
// (nn::split_gemm, nn::gemm_tiling).
//
// Speed (docs/bert.md has the profile and the torch ratios): element-wise and row-wise work is
// vectorised with address-independent reduction order and runs on the pool; nothing of dropout
// runs when it is off; large products split along the longer side of the output, and on two
// threads each backward data-gradient product runs beside its equal-sized weight-gradient twin;
// the last layer computes K and V for every token but everything else only for the [CLS] rows,
// the only ones that reach the loss.
//
// Gate gradients: sequences in a packed batch do not interact, so with loss_reduction::sum
// the gradient of each sequence's own loss L(x_b) with respect to every gate is read off the
// same backward pass (per_example rows); loss_reduction::mean divides everything by B.
// Head gate gradients: dL/dxi[l][h] = sum over the sequence's tokens of <ctx_h(t), dL/dctx_h(t)>
// (ctx the ungated context, dctx the gradient of the gated one); MLP gate: the same with the
// dropped-out MLP output and the gradient of the LayerNorm input.
//
// The `training_workspace` grows only: once it has seen the largest batch, a pass allocates
// nothing (the importance pass over a dev set relies on this).
#pragma once

#include <prune/nn/dropout.hpp>
#include <prune/nn/eigen.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/kernels.hpp>
#include <prune/nn/threads.hpp>
#include <prune/models/bert/batch.hpp>
#include <prune/models/bert/config.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace prune::bert {

// ------------------------------------------------------------------------------------------
// A scalar-generic mirror of `weights` (for double-precision gradient checks).

/// A row-major matrix of scalar S.
template <class S>
using basic_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A column vector of scalar S.
template <class S>
using basic_vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

/// A dense layer of scalar S (as prune::bert::linear).
template <class S>
struct basic_linear {
    basic_matrix<S> weight;  ///< [out, in]
    basic_vector<S> bias;    ///< [out]
};
/// LayerNorm parameters of scalar S.
template <class S>
struct basic_layer_norm {
    basic_vector<S> weight;  ///< gamma
    basic_vector<S> bias;    ///< beta
};
/// One encoder layer of scalar S (as prune::bert::layer_weights).
template <class S>
struct basic_layer {
    int heads = 0;                   ///< kept heads
    int head_size = 0;               ///< width of one head
    std::vector<int> head_ids;       ///< original head indices
    basic_linear<S> qkv;             ///< [3A, hidden]
    basic_linear<S> attention_output;  ///< [hidden, A]
    basic_layer_norm<S> attention_norm;  ///< attention LayerNorm
    basic_linear<S> intermediate;    ///< [ffn, hidden]
    basic_linear<S> output;          ///< [hidden, ffn]
    basic_layer_norm<S> output_norm;  ///< output LayerNorm
    /// Kept heads x head size.
    [[nodiscard]] int attention_width() const { return heads * head_size; }
    /// Feed-forward width.
    [[nodiscard]] int ffn() const { return static_cast<int>(intermediate.weight.rows()); }
};
/// Every parameter, scalar S (as prune::bert::weights).
template <class S>
struct basic_weights {
    config cfg;                                ///< shape
    basic_matrix<S> word_embeddings;           ///< [vocab, hidden]
    basic_matrix<S> position_embeddings;       ///< [positions, hidden]
    basic_matrix<S> token_type_embeddings;     ///< [types, hidden]
    basic_layer_norm<S> embedding_norm;        ///< embedding LayerNorm
    std::vector<basic_layer<S>> layers;        ///< encoder layers
    basic_linear<S> pooler;                    ///< [hidden, hidden]
    basic_linear<S> classifier;                ///< [labels, hidden]
};

/// Calls f(tensor) for every parameter matrix / vector of a weights-like object, in a fixed order.
template <class W, class F>
void for_each_tensor(W& w, F&& f) {
    f(w.word_embeddings);
    f(w.position_embeddings);
    f(w.token_type_embeddings);
    f(w.embedding_norm.weight);
    f(w.embedding_norm.bias);
    for (auto& L : w.layers) {
        f(L.qkv.weight);
        f(L.qkv.bias);
        f(L.attention_output.weight);
        f(L.attention_output.bias);
        f(L.attention_norm.weight);
        f(L.attention_norm.bias);
        f(L.intermediate.weight);
        f(L.intermediate.bias);
        f(L.output.weight);
        f(L.output.bias);
        f(L.output_norm.weight);
        f(L.output_norm.bias);
    }
    f(w.pooler.weight);
    f(w.pooler.bias);
    f(w.classifier.weight);
    f(w.classifier.bias);
}

/// A copy of float weights in scalar S.
template <class S>
[[nodiscard]] basic_weights<S> cast_weights(const weights& w) {
    basic_weights<S> out;
    out.cfg = w.cfg;
    out.word_embeddings = w.word_embeddings.cast<S>();
    out.position_embeddings = w.position_embeddings.cast<S>();
    out.token_type_embeddings = w.token_type_embeddings.cast<S>();
    out.embedding_norm = {w.embedding_norm.weight.cast<S>(), w.embedding_norm.bias.cast<S>()};
    for (const auto& L : w.layers) {
        basic_layer<S> b;
        b.heads = L.heads;
        b.head_size = L.head_size;
        b.head_ids = L.head_ids;
        b.qkv = {L.qkv.weight.cast<S>(), L.qkv.bias.cast<S>()};
        b.attention_output = {L.attention_output.weight.cast<S>(), L.attention_output.bias.cast<S>()};
        b.attention_norm = {L.attention_norm.weight.cast<S>(), L.attention_norm.bias.cast<S>()};
        b.intermediate = {L.intermediate.weight.cast<S>(), L.intermediate.bias.cast<S>()};
        b.output = {L.output.weight.cast<S>(), L.output.bias.cast<S>()};
        b.output_norm = {L.output_norm.weight.cast<S>(), L.output_norm.bias.cast<S>()};
        out.layers.push_back(std::move(b));
    }
    out.pooler = {w.pooler.weight.cast<S>(), w.pooler.bias.cast<S>()};
    out.classifier = {w.classifier.weight.cast<S>(), w.classifier.bias.cast<S>()};
    return out;
}

/// A zero-filled object with the shapes of w (for gradients).
template <class W>
[[nodiscard]] W zeros_like(const W& w) {
    W out = w;
    for_each_tensor(out, [](auto& t) { t.setZero(); });
    return out;
}

// ------------------------------------------------------------------------------------------
// Options, gates, labels.

/// How the per-example losses are combined into the batch loss.
enum class loss_reduction {
    mean,  ///< the batch mean (training, per-batch importance)
    sum,   ///< the sum: every per-example gate gradient is that example's own dL(x)/dxi
};

/// How one training pass runs.
struct training_options {
    bool dropout = false;            ///< training mode: apply dropout
    float hidden_dropout = 0.1f;     ///< hidden_dropout_prob (embeddings, dense outputs, pooled)
    float attention_dropout = 0.1f;  ///< attention_probs_dropout_prob
    std::uint64_t seed = 0;          ///< dropout stream (use a new one per step)
    loss_reduction reduction = loss_reduction::mean;  ///< mean or sum of the per-example losses
    bool parameter_gradients = true;  ///< false: only the gate gradients (importance)
};

/// Head and MLP gate values for the training pass (empty = all 1); heads[l][h] over kept heads.
struct gate_values {
    std::vector<std::vector<double>> heads;  ///< heads[l][h]
    std::vector<double> mlps;                ///< mlps[l]
    /// The gate of head h of layer l.
    [[nodiscard]] double head(std::size_t l, std::size_t h) const {
        return heads.empty() || heads[l].empty() ? 1.0 : heads[l][h];
    }
    /// The gate of layer l's MLP.
    [[nodiscard]] double mlp(std::size_t l) const { return mlps.empty() ? 1.0 : mlps[l]; }
};

/// The targets of a batch: class indices (num_labels > 1) or values (num_labels == 1).
struct batch_labels {
    std::span<const int> classes;   ///< class per sequence (classification)
    std::span<const float> values;  ///< target per sequence (regression)
};

/// The gate gradients of the last pass. Row b of the per-example arrays belongs to sequence b.
struct gate_gradients {
    std::size_t total_heads = 0;       ///< heads over all layers (flat: layers in order)
    std::size_t layers = 0;            ///< MLP gates
    std::size_t sequences = 0;         ///< rows
    std::vector<double> heads_by_example;  ///< [sequences x total_heads] (capacity grows only)
    std::vector<double> mlps_by_example;   ///< [sequences x layers]
    /// Example b's head gate gradients (flat).
    [[nodiscard]] std::span<const double> heads(std::size_t b) const {
        return {heads_by_example.data() + b * total_heads, total_heads};
    }
    /// Example b's MLP gate gradients.
    [[nodiscard]] std::span<const double> mlps(std::size_t b) const {
        return {mlps_by_example.data() + b * layers, layers};
    }
    /// The batch's gradient of head flat index i (sum over examples).
    [[nodiscard]] double head_total(std::size_t i) const {
        double s = 0.0;
        for (std::size_t b = 0; b < sequences; ++b) s += heads_by_example[b * total_heads + i];
        return s;
    }
    /// The batch's gradient of MLP l.
    [[nodiscard]] double mlp_total(std::size_t l) const {
        double s = 0.0;
        for (std::size_t b = 0; b < sequences; ++b) s += mlps_by_example[b * layers + l];
        return s;
    }
};

namespace detail {

/// Grow-only buffer of S.
template <class S>
struct grow_buffer {
    std::vector<S> data;  ///< storage
    /// At least n elements (zeroed when `zero`).
    S* get(std::size_t n, bool zero = false) {
        if (data.size() < n) data.resize(n);
        if (zero) std::fill(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n), S{});
        return data.data();
    }
};

/// Dropout sites (per layer l: 4 l + kind; embeddings and pooled have their own).
enum : std::uint64_t { site_embedding = 0, site_pooled = 1, site_layer_base = 2 };
/// The site id of a layer's dropout (kind 0: attention probs, 1: attention output, 2: MLP output).
inline std::uint64_t layer_site(std::size_t l, int kind) { return site_layer_base + 3 * l + static_cast<std::uint64_t>(kind); }

/// The dropout scale (0 or 1 / (1 - p)) of element `index` at `site`; 1 when dropout is off.
template <class S>
S dropout_scale(const training_options& o, float p, std::uint64_t site, std::uint64_t index) noexcept {
    if (!o.dropout || p <= 0.0f) return S{1};
    return nn::dropout_uniform(o.seed, site, index) < static_cast<double>(p) ? S{0} : S{1} / (S{1} - static_cast<S>(p));
}

}  // namespace detail

/// Which rows of the encoder's final hidden states a training pass needs.
enum class encoder_rows {
    all,  ///< every token: [tokens, hidden] (MLM pre-training)
    cls,  ///< the [CLS] row of each sequence: [sequences, hidden]; the last layer computes K and V
          ///< for every token and everything else for the [CLS] rows only (classification)
};

template <class S>
class training_workspace;

/// The scalar of a weights-like type (float for prune::bert::weights).
template <class W>
using weights_scalar = typename decltype(W::word_embeddings)::Scalar;

/// Forward in training mode through the encoder only (no pooler / classifier); records what
/// the backward pass needs in ws and returns the final hidden states: [tokens, hidden]
/// row-major with encoder_rows::all, [sequences, hidden] (row b = sequence b's [CLS]) with
/// encoder_rows::cls. Valid until the next pass on ws. Throws value_error / shape_error on a
/// batch or gates that do not fit the model.
template <class W>
std::span<const weights_scalar<W>> encode_for_training(const W& w, const packed_batch& batch, const gate_values* gate,
                                                       training_workspace<weights_scalar<W>>& ws,
                                                       const training_options& o, encoder_rows rows = encoder_rows::all);

/// Backward pass of the last encode_for_training on ws (same w, batch, gate and o) from
/// d_hidden = dL/d(final hidden states), shaped as encode_for_training returned them. *Adds*
/// every encoder parameter's gradient to grads (when not null and o.parameter_gradients;
/// pooler and classifier untouched) and sets ws.gates() (gate gradients per sequence).
/// Throws shape_error when d_hidden or the batch do not match that pass.
template <class W>
void backward_from_hidden(const W& w, const packed_batch& batch, const gate_values* gate,
                          training_workspace<weights_scalar<W>>& ws, std::span<const weights_scalar<W>> d_hidden,
                          W* grads, const training_options& o);

/// Grow-only memory of the training pass for scalar S (one pass at a time).
template <class S>
class training_workspace {
public:
    /// A workspace whose pass runs on `threads` threads (0 = every core). Its products go to
    /// OpenBLAS only when the process made it single-threaded (nn::setup_process: the pool does
    /// the threading), else to Eigen (prune/nn/gemm.hpp).
    explicit training_workspace(int threads = 0) : pool_(threads) {
        scratch_.resize(static_cast<std::size_t>(pool_.size()));
    }
    /// The pool the pass runs on.
    [[nodiscard]] nn::thread_pool& pool() noexcept { return pool_; }
    /// The loss of the last pass (reduced as requested).
    [[nodiscard]] double loss() const noexcept { return loss_; }
    /// Per-example losses of the last pass.
    [[nodiscard]] std::span<const double> example_losses() const noexcept { return {example_loss_.data(), batch_}; }
    /// The logits of the last pass: [B, labels] row-major.
    [[nodiscard]] std::span<const S> logits() const noexcept {
        return {logits_.data.data(), batch_ * static_cast<std::size_t>(labels_)};
    }
    /// The gate gradients of the last pass.
    [[nodiscard]] const gate_gradients& gates() const noexcept { return gates_; }

    /// Per-layer recorded activations (internal).
    struct layer_record {
        detail::grow_buffer<S> input, input_cls, qkv, probs, probs_dropped, context, context_gated, attn_hat, attn_rstd, attn_out,
            inter_pre, inter_act, mlp_out, out_hat, out_rstd;
    };

private:
    template <class W>
    friend std::span<const weights_scalar<W>> encode_for_training(const W&, const packed_batch&, const gate_values*,
                                                                  training_workspace<weights_scalar<W>>&,
                                                                  const training_options&, encoder_rows);
    template <class W>
    friend void backward_from_hidden(const W&, const packed_batch&, const gate_values*,
                                     training_workspace<weights_scalar<W>>&, std::span<const weights_scalar<W>>, W*,
                                     const training_options&);
    template <class W>
    friend double train_pass(const W&, const packed_batch&, const batch_labels&, const gate_values*,
                             training_workspace<typename decltype(W::word_embeddings)::Scalar>&, W*,
                             const training_options&);

    nn::thread_pool pool_;
    std::vector<detail::grow_buffer<S>> scratch_;  // per thread: attention score gradients
    std::vector<layer_record> layers_;
    detail::grow_buffer<S> emb_hat_, emb_rstd_, x_, cls_, pooled_, pooled_dropped_, logits_;
    detail::grow_buffer<S> dx_, dy_, dtmp_, dqkv_, dctx_, dffn_, dpooled_, dlogits_, dcls_;
    std::vector<std::int64_t> prob_offsets_;
    std::vector<double> example_loss_;
    gate_gradients gates_;
    double loss_ = 0.0;
    std::size_t batch_ = 0;
    int labels_ = 0;
    // What the last encode_for_training recorded (checked by backward_from_hidden).
    encoder_rows rows_ = encoder_rows::all;
    std::size_t encoded_tokens_ = 0;
    std::size_t encoded_sequences_ = 0;
    std::size_t encoded_layers_ = 0;
    bool encoded_ = false;
};

namespace detail {

/// Throws shape_error when gate values do not fit the model's layers and heads.
template <class W>
void check_gates(const W& w, const gate_values* gate, const char* where) {
    if (gate == nullptr) return;
    const std::size_t layers = w.layers.size();
    if ((!gate->heads.empty() && gate->heads.size() != layers) || (!gate->mlps.empty() && gate->mlps.size() != layers)) {
        throw shape_error(std::string(where) + ": gates for " + std::to_string(gate->heads.size()) + " / " +
                          std::to_string(gate->mlps.size()) + " layers, the model has " + std::to_string(layers));
    }
    for (std::size_t l = 0; l < gate->heads.size(); ++l) {
        if (!gate->heads[l].empty() && gate->heads[l].size() != static_cast<std::size_t>(w.layers[l].heads)) {
            throw shape_error(std::string(where) + ": layer " + std::to_string(l) + " has " +
                              std::to_string(gate->heads[l].size()) + " head gates for " +
                              std::to_string(w.layers[l].heads) + " heads");
        }
    }
}

/// Whether any head gate of layer l differs from 1 (else the gated context is the context).
template <class W>
bool layer_gated(const W& w, const gate_values* gate, std::size_t l) {
    if (gate == nullptr) return false;
    for (int h = 0; h < w.layers[l].heads; ++h)
        if (gate->head(l, static_cast<std::size_t>(h)) != 1.0) return true;
    return false;
}

}  // namespace detail

template <class W>
std::span<const weights_scalar<W>> encode_for_training(const W& w, const packed_batch& batch, const gate_values* gate,
                                                       training_workspace<weights_scalar<W>>& ws,
                                                       const training_options& o, encoder_rows output_rows) {
    using S = weights_scalar<W>;
    const config& cfg = w.cfg;
    batch.validate(cfg);
    const int B = batch.sequences();
    if (B == 0) throw value_error("encode_for_training: empty batch");
    detail::check_gates(w, gate, "encode_for_training");
    const std::size_t layers = w.layers.size();
    const int H = cfg.hidden_size;
    const auto T = static_cast<std::size_t>(batch.tokens());
    const auto hs = static_cast<std::size_t>(H);
    const S eps = static_cast<S>(cfg.layer_norm_eps);
    const float ph = o.hidden_dropout;
    const float pa = o.attention_dropout;
    const bool cls_mode = output_rows == encoder_rows::cls;
    ws.encoded_ = false;

    ws.layers_.resize(std::max(ws.layers_.size(), layers));
    ws.prob_offsets_.resize(static_cast<std::size_t>(B) + 1);
    ws.prob_offsets_[0] = 0;
    for (int b = 0; b < B; ++b) {
        const std::int64_t len = batch.length(b);
        ws.prob_offsets_[static_cast<std::size_t>(b) + 1] = ws.prob_offsets_[static_cast<std::size_t>(b)] + len * len;
    }
    const std::size_t prob_total = static_cast<std::size_t>(ws.prob_offsets_.back());

    const bool drop_hidden = o.dropout && ph > 0.0f;
    const bool drop_attention = o.dropout && pa > 0.0f;
    // Layer l's input lives in its record (the backward pass needs it), written straight there by
    // the embeddings or layer l - 1; the last layer writes the encoder output into x_.
    auto layer_input = [&](std::size_t l) { return l < layers ? ws.layers_[l].input.get(T * hs) : ws.x_.get(T * hs); };
    auto layer_gated = [&](std::size_t l) { return detail::layer_gated(w, gate, l); };
    S* ehat = ws.emb_hat_.get(T * hs);
    S* erstd = ws.emb_rstd_.get(T);
    {
        S* x0 = layer_input(0);
        ws.pool_.for_rows(T, hs, [&](std::size_t t) {
            S* row = x0 + t * hs;
            const S* word = w.word_embeddings.row(batch.token_ids[t]).data();
            const S* pos = w.position_embeddings.row(batch.positions[t]).data();
            const S* typ = w.token_type_embeddings.row(batch.token_types[t]).data();
            for (int c = 0; c < H; ++c) row[c] = word[c] + pos[c] + typ[c];
            nn::layer_norm_forward(row, row, ehat + t * hs, erstd + t, w.embedding_norm.weight.data(),
                                       w.embedding_norm.bias.data(), H, eps);
            if (drop_hidden) {
                for (int c = 0; c < H; ++c)
                    row[c] *= detail::dropout_scale<S>(o, ph, detail::site_embedding, t * hs + static_cast<std::size_t>(c));
            }
        });
    }
    for (std::size_t l = 0; l < layers; ++l) {
        const auto& L = w.layers[l];
        auto& R = ws.layers_[l];
        const int heads = L.heads;
        const int d = L.head_size;
        const int A = L.attention_width();
        const auto As = static_cast<std::size_t>(A);
        const int F = L.ffn();
        const auto Fs = static_cast<std::size_t>(F);
        const S mlp_gate = static_cast<S>(gate ? gate->mlp(l) : 1.0);
        const bool gated = layer_gated(l);
        // Only the [CLS] rows of the last layer's output reach the loss: that layer computes K and
        // V for every token, everything else for its B [CLS] rows only (row b = sequence b).
        const bool cls_layer = cls_mode && l + 1 == layers;
        const std::size_t rows = cls_layer ? static_cast<std::size_t>(B) : T;
        auto token = [&](std::size_t r) {  // the packed token of row r (dropout indices)
            return cls_layer ? static_cast<std::size_t>(batch.offsets[r]) : r;
        };
        S* in = R.input.get(T * hs);
        S* in_rows = in;
        if (cls_layer) {
            in_rows = R.input_cls.get(rows * hs);
            for (std::size_t b = 0; b < rows; ++b) std::copy(in + token(b) * hs, in + token(b) * hs + hs, in_rows + b * hs);
        }
        S* out = layer_input(l + 1);
        S* qkv = R.qkv.get(T * 3 * As);
        S* ctx = R.context.get(rows * As);
        S* ctxg = gated ? R.context_gated.get(rows * As) : ctx;
        S* probs = R.probs.get(prob_total * static_cast<std::size_t>(heads));
        S* probs_d = drop_attention ? R.probs_dropped.get(prob_total * static_cast<std::size_t>(heads)) : probs;
        S* sa = ws.dtmp_.get(T * hs);
        if (A > 0) {
            if (cls_layer) {  // K | V for every token, Q for the [CLS] rows (into their rows of qkv)
                nn::parallel_gemm<S>(ws.pool_, false, true, static_cast<int>(T), 2 * A, H, S{1}, in, H,
                                         L.qkv.weight.data() + As * hs, H, S{0}, qkv + As, 3 * A);
                S* q_cls = ws.dctx_.get(rows * As);
                nn::parallel_gemm<S>(ws.pool_, false, true, B, A, H, S{1}, in_rows, H, L.qkv.weight.data(), H, S{0},
                                         q_cls, A);
                for (std::size_t b = 0; b < rows; ++b) std::copy(q_cls + b * As, q_cls + b * As + As, qkv + token(b) * 3 * As);
                ws.pool_.for_rows(T, 3 * As, [&](std::size_t t) {
                    S* __restrict row = qkv + t * 3 * As;
                    const S* __restrict bias = L.qkv.bias.data();
                    for (int c = A; c < 3 * A; ++c) row[c] += bias[c];
                });
                for (std::size_t b = 0; b < rows; ++b)
                    for (int c = 0; c < A; ++c) qkv[token(b) * 3 * As + static_cast<std::size_t>(c)] += L.qkv.bias(c);
            } else {
                nn::parallel_gemm<S>(ws.pool_, false, true, static_cast<int>(T), 3 * A, H, S{1}, in, H, L.qkv.weight.data(), H, S{0}, qkv,
                                3 * A);
                ws.pool_.for_rows(T, 3 * As, [&](std::size_t t) {
                    S* __restrict row = qkv + t * 3 * As;
                    const S* __restrict bias = L.qkv.bias.data();
                    for (int c = 0; c < 3 * A; ++c) row[c] += bias[c];
                });
            }
            const S scale = S{1} / std::sqrt(static_cast<S>(d));
            auto attend = [&](std::int64_t task, int) {
                const int b = static_cast<int>(task / heads);
                const int h = static_cast<int>(task % heads);
                const std::int64_t r0 = batch.offsets[static_cast<std::size_t>(b)];
                const int len = batch.length(b);
                const int q_rows = cls_layer ? 1 : len;  // queries: the [CLS] row, or every token
                const auto lens = static_cast<std::size_t>(len);
                const std::size_t po = static_cast<std::size_t>(ws.prob_offsets_[static_cast<std::size_t>(b)]) *
                                           static_cast<std::size_t>(heads) + static_cast<std::size_t>(h) * lens * lens;
                S* P = probs + po;
                const S* q = qkv + static_cast<std::size_t>(r0) * 3 * As + static_cast<std::size_t>(h * d);
                const S* k = q + As;
                const S* v = q + 2 * As;
                nn::gemm<S>(false, true, q_rows, len, d, scale, q, 3 * A, k, 3 * A, S{0}, P, len);
                for (int i = 0; i < q_rows; ++i) nn::softmax_row(P + static_cast<std::size_t>(i) * lens, len);
                if (drop_attention) {
                    S* Pd = probs_d + po;
                    for (std::size_t i = 0; i < static_cast<std::size_t>(q_rows) * lens; ++i)
                        Pd[i] = P[i] * detail::dropout_scale<S>(o, pa, detail::layer_site(l, 0), po + i);
                }
                const std::size_t c0 = cls_layer ? static_cast<std::size_t>(b) : static_cast<std::size_t>(r0);
                S* c = ctx + c0 * As + static_cast<std::size_t>(h * d);
                nn::gemm<S>(false, false, q_rows, d, len, S{1}, probs_d + po, len, v, 3 * A, S{0}, c, A);
                if (gated) {
                    const S g = static_cast<S>(gate->head(l, static_cast<std::size_t>(h)));
                    S* cg = ctxg + c0 * As + static_cast<std::size_t>(h * d);
                    for (std::size_t i = 0; i < static_cast<std::size_t>(q_rows); ++i)
                        for (std::size_t j = 0; j < static_cast<std::size_t>(d); ++j) cg[i * As + j] = g * c[i * As + j];
                }
            };
            ws.pool_.parallel_tasks(static_cast<std::int64_t>(B) * heads, attend);
            nn::parallel_gemm<S>(ws.pool_, false, true, static_cast<int>(rows), H, A, S{1}, ctxg, A, L.attention_output.weight.data(), A,
                            S{0}, sa, H);
        } else {
            std::fill(sa, sa + rows * hs, S{0});
        }
        S* ahat = R.attn_hat.get(rows * hs);
        S* arstd = R.attn_rstd.get(rows);
        S* aout = R.attn_out.get(rows * hs);
        ws.pool_.for_rows(rows, hs, [&](std::size_t t) {
            S* row = sa + t * hs;
            const S* bias = L.attention_output.bias.data();
            const S* __restrict x = in_rows + t * hs;
            if (drop_hidden) {
                for (int c = 0; c < H; ++c) {
                    const std::size_t idx = token(t) * hs + static_cast<std::size_t>(c);
                    row[c] = x[c] + (row[c] + bias[c]) * detail::dropout_scale<S>(o, ph, detail::layer_site(l, 1), idx);
                }
            } else {
                for (int c = 0; c < H; ++c) row[c] = x[c] + (row[c] + bias[c]);
            }
            nn::layer_norm_forward(row, aout + t * hs, ahat + t * hs, arstd + t, L.attention_norm.weight.data(),
                                       L.attention_norm.bias.data(), H, eps);
        });
        S* so = sa;  // reuse: the output LayerNorm input
        if (F > 0) {
            S* pre = R.inter_pre.get(rows * Fs);
            S* act = R.inter_act.get(rows * Fs);
            S* m = R.mlp_out.get(rows * hs);
            nn::parallel_gemm<S>(ws.pool_, false, true, static_cast<int>(rows), F, H, S{1}, aout, H, L.intermediate.weight.data(), H, S{0},
                            pre, F);
            ws.pool_.for_rows(rows, Fs, [&](std::size_t t) {
                S* __restrict p = pre + t * Fs;
                S* __restrict a = act + t * Fs;
                const S* __restrict bias = L.intermediate.bias.data();
                for (int c = 0; c < F; ++c) {
                    p[c] += bias[c];
                    a[c] = nn::gelu(p[c]);
                }
            });
            nn::parallel_gemm<S>(ws.pool_, false, true, static_cast<int>(rows), H, F, S{1}, act, F, L.output.weight.data(), F, S{0}, m, H);
            ws.pool_.for_rows(rows, hs, [&](std::size_t t) {
                const S* __restrict bias = L.output.bias.data();
                S* __restrict mr = m + t * hs;
                if (drop_hidden) {
                    for (int c = 0; c < H; ++c)
                        mr[c] = (mr[c] + bias[c]) *
                                detail::dropout_scale<S>(o, ph, detail::layer_site(l, 2), token(t) * hs + static_cast<std::size_t>(c));
                } else {
                    for (int c = 0; c < H; ++c) mr[c] += bias[c];
                }
                const S* __restrict ar = aout + t * hs;
                S* __restrict sr = so + t * hs;
                for (int c = 0; c < H; ++c) sr[c] = ar[c] + mlp_gate * mr[c];
            });
        } else {
            std::copy(aout, aout + rows * hs, so);
        }
        S* ohat = R.out_hat.get(rows * hs);
        S* orstd = R.out_rstd.get(rows);
        ws.pool_.for_rows(rows, hs, [&](std::size_t t) {
            nn::layer_norm_forward(so + t * hs, out + t * hs, ohat + t * hs, orstd + t, L.output_norm.weight.data(),
                                       L.output_norm.bias.data(), H, eps);
        });
    }
    ws.rows_ = output_rows;
    ws.encoded_tokens_ = T;
    ws.encoded_sequences_ = static_cast<std::size_t>(B);
    ws.encoded_layers_ = layers;
    ws.encoded_ = true;
    const S* x = layer_input(layers);
    if (!cls_mode) return {x, T * hs};
    const std::size_t cls_size = static_cast<std::size_t>(B) * hs;
    if (layers > 0) return {x, cls_size};  // the last layer computed the [CLS] rows only
    S* cls = ws.cls_.get(cls_size);  // no layer: gather the embeddings' [CLS] rows
    for (int b = 0; b < B; ++b) {
        const S* row = x + static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]) * hs;
        std::copy(row, row + hs, cls + static_cast<std::size_t>(b) * hs);
    }
    return {cls, cls_size};
}

/// One forward + backward pass over a packed batch. Returns the loss (mean or sum over the
/// sequences, per options.reduction), fills ws.gates() and ws.logits(), and, when `grads` is
/// not null and options.parameter_gradients, *adds* the parameter gradients to it (shapes of w).
/// Throws value_error / shape_error on labels, gates or batches that do not fit the model.
template <class W>
double train_pass(const W& w, const packed_batch& batch, const batch_labels& labels, const gate_values* gate,
                  training_workspace<typename decltype(W::word_embeddings)::Scalar>& ws, W* grads,
                  const training_options& o) {
    using S = typename decltype(W::word_embeddings)::Scalar;
    const config& cfg = w.cfg;
    batch.validate(cfg);
    const int B = batch.sequences();
    if (B == 0) throw value_error("train_pass: empty batch");
    if (w.pooler.weight.size() == 0 || w.classifier.weight.size() == 0) {
        throw format_error("train_pass: the model has no pooler / classifier weights");
    }
    const int C = static_cast<int>(w.classifier.weight.rows());
    const bool regression = C == 1;
    if (regression ? labels.values.size() != static_cast<std::size_t>(B)
                   : labels.classes.size() != static_cast<std::size_t>(B)) {
        throw shape_error("train_pass: " + std::to_string(regression ? labels.values.size() : labels.classes.size()) +
                          " labels for " + std::to_string(B) + " sequences");
    }
    if (!regression) {
        for (int b = 0; b < B; ++b) {
            const int y = labels.classes[static_cast<std::size_t>(b)];
            if (y < 0 || y >= C) {
                throw value_error("train_pass: label " + std::to_string(y) + " of sequence " + std::to_string(b) +
                                  " outside [0, " + std::to_string(C) + ")");
            }
        }
    }
    detail::check_gates(w, gate, "train_pass");
    const bool want_grads = grads != nullptr && o.parameter_gradients;
    const int H = cfg.hidden_size;
    const auto hs = static_cast<std::size_t>(H);
    const float ph = o.hidden_dropout;

    // The encoder, its last layer for the [CLS] rows only: cls is [B, H].
    const S* cls = encode_for_training(w, batch, gate, ws, o, encoder_rows::cls).data();
    S* pooled = ws.pooled_.get(static_cast<std::size_t>(B) * hs);
    S* pooled_d = ws.pooled_dropped_.get(static_cast<std::size_t>(B) * hs);
    nn::gemm<S>(false, true, B, H, H, S{1}, cls, H, w.pooler.weight.data(), H, S{0}, pooled, H);
    for (int b = 0; b < B; ++b)
        for (int c = 0; c < H; ++c) {
            const std::size_t idx = static_cast<std::size_t>(b) * hs + static_cast<std::size_t>(c);
            pooled[idx] = std::tanh(pooled[idx] + w.pooler.bias(c));
            pooled_d[idx] = pooled[idx] * detail::dropout_scale<S>(o, ph, detail::site_pooled, idx);
        }
    S* logits = ws.logits_.get(static_cast<std::size_t>(B) * static_cast<std::size_t>(C));
    nn::gemm<S>(false, true, B, C, H, S{1}, pooled_d, H, w.classifier.weight.data(), H, S{0}, logits, C);
    for (int b = 0; b < B; ++b)
        for (int c = 0; c < C; ++c) logits[b * C + c] += w.classifier.bias(c);

    // Loss and dlogits.
    const S scale = o.reduction == loss_reduction::mean ? S{1} / static_cast<S>(B) : S{1};
    S* dlogits = ws.dlogits_.get(static_cast<std::size_t>(B) * static_cast<std::size_t>(C));
    if (ws.example_loss_.size() < static_cast<std::size_t>(B)) ws.example_loss_.resize(static_cast<std::size_t>(B));
    double total = 0.0;
    for (int b = 0; b < B; ++b) {
        const S* z = logits + b * C;
        S* dz = dlogits + b * C;
        double lb = 0.0;
        if (regression) {
            const S diff = z[0] - static_cast<S>(labels.values[static_cast<std::size_t>(b)]);
            lb = static_cast<double>(diff * diff);
            dz[0] = S{2} * diff * scale;
        } else {
            S mx = z[0];
            for (int c = 1; c < C; ++c) mx = std::max(mx, z[c]);
            S sum = 0;
            for (int c = 0; c < C; ++c) sum += std::exp(z[c] - mx);
            const int y = labels.classes[static_cast<std::size_t>(b)];
            lb = static_cast<double>(std::log(sum) + mx - z[y]);
            for (int c = 0; c < C; ++c) dz[c] = (std::exp(z[c] - mx) / sum - (c == y ? S{1} : S{0})) * scale;
        }
        ws.example_loss_[static_cast<std::size_t>(b)] = lb;
        total += lb;
    }
    ws.loss_ = o.reduction == loss_reduction::mean ? total / B : total;
    ws.batch_ = static_cast<std::size_t>(B);
    ws.labels_ = C;

    // Backward through the head to d(cls), then through the encoder.
    S* dpool = ws.dpooled_.get(static_cast<std::size_t>(B) * hs);
    nn::gemm<S>(false, false, B, H, C, S{1}, dlogits, C, w.classifier.weight.data(), H, S{0}, dpool, H);
    if (want_grads) {
        nn::gemm<S>(true, false, C, H, B, S{1}, dlogits, C, pooled_d, H, S{1}, grads->classifier.weight.data(), H);
        for (int b = 0; b < B; ++b)
            for (int c = 0; c < C; ++c) grads->classifier.bias(c) += dlogits[b * C + c];
    }
    for (int b = 0; b < B; ++b)
        for (int c = 0; c < H; ++c) {
            const std::size_t idx = static_cast<std::size_t>(b) * hs + static_cast<std::size_t>(c);
            dpool[idx] *= detail::dropout_scale<S>(o, ph, detail::site_pooled, idx) * (S{1} - pooled[idx] * pooled[idx]);
        }
    S* dcls = ws.dcls_.get(static_cast<std::size_t>(B) * hs);
    nn::gemm<S>(false, false, B, H, H, S{1}, dpool, H, w.pooler.weight.data(), H, S{0}, dcls, H);
    if (want_grads) {
        nn::parallel_gemm<S>(ws.pool_, true, false, H, H, B, S{1}, dpool, H, cls, H, S{1}, grads->pooler.weight.data(), H);
        for (int b = 0; b < B; ++b)
            for (int c = 0; c < H; ++c) grads->pooler.bias(c) += dpool[static_cast<std::size_t>(b) * hs + static_cast<std::size_t>(c)];
    }
    backward_from_hidden(w, batch, gate, ws, std::span<const S>(dcls, static_cast<std::size_t>(B) * hs), grads, o);
    return ws.loss_;
}

template <class W>
void backward_from_hidden(const W& w, const packed_batch& batch, const gate_values* gate,
                          training_workspace<weights_scalar<W>>& ws, std::span<const weights_scalar<W>> d_hidden,
                          W* grads, const training_options& o) {
    using S = weights_scalar<W>;
    const config& cfg = w.cfg;
    const int B = batch.sequences();
    const std::size_t layers = w.layers.size();
    const int H = cfg.hidden_size;
    const auto T = static_cast<std::size_t>(batch.tokens());
    const auto hs = static_cast<std::size_t>(H);
    const bool cls_mode = ws.rows_ == encoder_rows::cls;
    if (!ws.encoded_ || ws.encoded_tokens_ != T || ws.encoded_sequences_ != static_cast<std::size_t>(B) ||
        ws.encoded_layers_ != layers) {
        throw shape_error("backward_from_hidden: the batch (" + std::to_string(B) + " sequences, " + std::to_string(T) +
                          " tokens) is not the one of the last encode_for_training on this workspace");
    }
    const std::size_t want = (cls_mode ? static_cast<std::size_t>(B) : T) * hs;
    if (d_hidden.size() != want) {
        throw shape_error("backward_from_hidden: d_hidden has " + std::to_string(d_hidden.size()) + " values, expected " +
                          std::to_string(want) + (cls_mode ? " ([sequences, hidden])" : " ([tokens, hidden])"));
    }
    detail::check_gates(w, gate, "backward_from_hidden");
    const bool want_grads = grads != nullptr && o.parameter_gradients;
    const float ph = o.hidden_dropout;
    const float pa = o.attention_dropout;
    const bool drop_hidden = o.dropout && ph > 0.0f;
    const bool drop_attention = o.dropout && pa > 0.0f;
    auto layer_gated = [&](std::size_t l) { return detail::layer_gated(w, gate, l); };
    const S* ehat = ws.emb_hat_.data.data();
    const S* erstd = ws.emb_rstd_.data.data();

    gate_gradients& gg = ws.gates_;
    gg.layers = layers;
    gg.total_heads = 0;
    for (const auto& L : w.layers) gg.total_heads += static_cast<std::size_t>(L.heads);
    gg.sequences = static_cast<std::size_t>(B);
    if (gg.heads_by_example.size() < gg.sequences * gg.total_heads) gg.heads_by_example.resize(gg.sequences * gg.total_heads);
    if (gg.mlps_by_example.size() < gg.sequences * layers) gg.mlps_by_example.resize(gg.sequences * layers);
    std::fill(gg.heads_by_example.begin(), gg.heads_by_example.end(), 0.0);
    std::fill(gg.mlps_by_example.begin(), gg.mlps_by_example.end(), 0.0);

    // Gradient of the current layer's output: [T, H], or with encoder_rows::cls the last layer's
    // [B, H] ([CLS] rows); with no layer, the embeddings' [T, H] (zero but at the [CLS] rows).
    S* dy = ws.dy_.get(T * hs, cls_mode && layers == 0);
    if (!cls_mode || layers > 0) {
        std::copy(d_hidden.begin(), d_hidden.end(), dy);
    } else {
        for (int b = 0; b < B; ++b) {
            const S* row = d_hidden.data() + static_cast<std::size_t>(b) * hs;
            std::copy(row, row + hs, dy + static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]) * hs);
        }
    }
    S* dx = ws.dx_.get(T * hs);
    std::size_t head_base = gg.total_heads;
    for (std::size_t li = layers; li-- > 0;) {
        const auto& L = w.layers[li];
        auto& R = ws.layers_[li];
        auto* G = want_grads ? &grads->layers[li] : nullptr;
        const int heads = L.heads;
        const int d = L.head_size;
        const int A = L.attention_width();
        const auto As = static_cast<std::size_t>(A);
        const int F = L.ffn();
        const auto Fs = static_cast<std::size_t>(F);
        head_base -= static_cast<std::size_t>(heads);
        const S mlp_gate = static_cast<S>(gate ? gate->mlp(li) : 1.0);
        const bool gated = layer_gated(li);
        const bool cls_layer = cls_mode && li + 1 == layers;  // rows after attention: the B [CLS] rows (see the forward pass)
        const std::size_t rows = cls_layer ? static_cast<std::size_t>(B) : T;
        auto token = [&](std::size_t r) { return cls_layer ? static_cast<std::size_t>(batch.offsets[r]) : r; };
        const S* in_rows = cls_layer ? R.input_cls.data.data() : R.input.data.data();
        // Output LayerNorm: dso (into dx); da = dso + the MLP path goes into dy (free once read);
        // dm = gate * dso * dropout, the gradient of the MLP output before the gate.
        S* dso = dx;
        S* da = dy;
        S* dm = F > 0 && (mlp_gate != S{1} || drop_hidden) ? ws.dtmp_.get(rows * hs) : dso;
        if (G) {
            nn::add_norm_parameter_grads(ws.pool_, rows, H, dy, R.out_hat.data.data(), G->output_norm.weight.data(),
                                                   G->output_norm.bias.data());
        }
        {
            const S* ohat = R.out_hat.data.data();
            const S* orstd = R.out_rstd.data.data();
            const S* gamma = L.output_norm.weight.data();
            const S* m = F > 0 ? R.mlp_out.data.data() : nullptr;
            auto output_norm = [&](std::int64_t b, int) {  // one sequence: its MLP gate gradient is its own
                const auto t0 = cls_layer ? static_cast<std::size_t>(b) : static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]);
                const auto t1 = cls_layer ? t0 + 1 : static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b) + 1]);
                double s = 0.0;
                for (std::size_t t = t0; t < t1; ++t) {
                    S* r = dso + t * hs;
                    nn::layer_norm_backward(dy + t * hs, ohat + t * hs, orstd[t], gamma, r, H);
                    std::copy(r, r + hs, da + t * hs);
                    if (m != nullptr) {
                        s += static_cast<double>(nn::dot(m + t * hs, r, H));
                        if (dm != dso) {
                            for (int c = 0; c < H; ++c) {
                                dm[t * hs + static_cast<std::size_t>(c)] =
                                    mlp_gate * r[c] *
                                    detail::dropout_scale<S>(o, ph, detail::layer_site(li, 2), token(t) * hs + static_cast<std::size_t>(c));
                            }
                        }
                    }
                }
                if (m != nullptr) gg.mlps_by_example[static_cast<std::size_t>(b) * layers + li] += s;
            };
            ws.pool_.parallel_tasks(B, output_norm);
        }
        const int Ri = static_cast<int>(rows);
        if (F > 0) {
            S* dact = ws.dffn_.get(rows * Fs);
            const nn::gemm_call<S> dact_call{false, false, Ri, F, H, S{1}, dm, H, L.output.weight.data(), F, S{0}, dact, F};
            const nn::gemm_call<S> dw2_call{true, false, H, F, Ri, S{1}, dm, H, R.inter_act.data.data(), F, S{1},
                                                G ? G->output.weight.data() : nullptr, F};
            nn::gemm_pair(ws.pool_, dact_call, G ? &dw2_call : nullptr);
            if (G) nn::add_column_sums(ws.pool_, rows, H, dm, hs, G->output.bias.data());
            const S* pre = R.inter_pre.data.data();
            ws.pool_.for_rows(rows, Fs, [&](std::size_t t) { nn::gelu_backward(pre + t * Fs, dact + t * Fs, F); });
            const nn::gemm_call<S> da_call{false, false, Ri, H, F, S{1}, dact, F, L.intermediate.weight.data(), H, S{1}, da, H};
            const nn::gemm_call<S> dw1_call{true, false, F, H, Ri, S{1}, dact, F, R.attn_out.data.data(), H, S{1},
                                                G ? G->intermediate.weight.data() : nullptr, H};
            nn::gemm_pair(ws.pool_, da_call, G ? &dw1_call : nullptr);
            if (G) nn::add_column_sums(ws.pool_, rows, F, dact, Fs, G->intermediate.bias.data());
        }
        // Attention LayerNorm: dsa (into dx); the layer input's gradient starts as dsa (residual) in dy.
        if (G) {
            nn::add_norm_parameter_grads(ws.pool_, rows, H, da, R.attn_hat.data.data(),
                                                   G->attention_norm.weight.data(), G->attention_norm.bias.data());
        }
        S* dsa = dx;
        S* dinput = dy;
        S* dd = drop_hidden ? ws.dtmp_.get(rows * hs) : dsa;  // dsa through the attention output's dropout
        {
            const S* ahat = R.attn_hat.data.data();
            const S* arstd = R.attn_rstd.data.data();
            const S* gamma = L.attention_norm.weight.data();
            ws.pool_.for_rows(rows, hs, [&](std::size_t t) {
                S* r = dsa + t * hs;
                nn::layer_norm_backward(da + t * hs, ahat + t * hs, arstd[t], gamma, r, H);
                if (!cls_layer) std::copy(r, r + hs, dinput + t * hs);
                if (drop_hidden) {
                    for (int c = 0; c < H; ++c) {
                        dd[t * hs + static_cast<std::size_t>(c)] =
                            r[c] * detail::dropout_scale<S>(o, ph, detail::layer_site(li, 1), token(t) * hs + static_cast<std::size_t>(c));
                    }
                }
            });
            if (cls_layer) {  // the input's gradient: dsa at the [CLS] rows, 0 elsewhere (+ the attention path)
                std::fill(dinput, dinput + T * hs, S{0});
                for (std::size_t b = 0; b < rows; ++b) std::copy(dsa + b * hs, dsa + b * hs + hs, dinput + token(b) * hs);
            }
        }
        if (G) nn::add_column_sums(ws.pool_, rows, H, dd, hs, G->attention_output.bias.data());
        if (A > 0) {
            S* dctx = ws.dctx_.get(rows * As);
            const nn::gemm_call<S> dctx_call{false, false, Ri, A, H, S{1}, dd, H, L.attention_output.weight.data(), A,
                                                 S{0}, dctx, A};
            const nn::gemm_call<S> dwo_call{true, false, H, A, Ri, S{1}, dd, H,
                                                gated ? R.context_gated.data.data() : R.context.data.data(), A, S{1},
                                                G ? G->attention_output.weight.data() : nullptr, A};
            nn::gemm_pair(ws.pool_, dctx_call, G ? &dwo_call : nullptr);
            S* dqkv = ws.dqkv_.get(T * 3 * As);
            const S* qkv = R.qkv.data.data();
            const S* ctx = R.context.data.data();
            const S scale_qk = S{1} / std::sqrt(static_cast<S>(d));
            for (auto& buffer : ws.scratch_) buffer.get(static_cast<std::size_t>(batch.max_length()) * static_cast<std::size_t>(batch.max_length()));
            auto attend_backward = [&](std::int64_t task, int thread) {
                const int b = static_cast<int>(task / heads);
                const int h = static_cast<int>(task % heads);
                const auto r0 = static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]);
                const int len = batch.length(b);
                const int q_rows = cls_layer ? 1 : len;
                const auto lens = static_cast<std::size_t>(len);
                const auto qs = static_cast<std::size_t>(q_rows);
                const std::size_t c0 = cls_layer ? static_cast<std::size_t>(b) : r0;  // first context row
                S* dP = ws.scratch_[static_cast<std::size_t>(thread)].data.data();
                const S g = static_cast<S>(gate ? gate->head(li, static_cast<std::size_t>(h)) : 1.0);
                const std::size_t hd = static_cast<std::size_t>(h * d);
                // gate gradient: sum_t <ctx, dctx_gated>; then dC (ungated) = g * dctx_gated, in place
                S* dc = dctx + c0 * As + hd;
                double gsum = 0.0;
                for (std::size_t i = 0; i < qs; ++i) {
                    S* dci = dc + i * As;
                    gsum += static_cast<double>(nn::dot(ctx + (c0 + i) * As + hd, dci, d));
                    if (g != S{1})
                        for (int j = 0; j < d; ++j) dci[j] *= g;
                }
                gg.heads_by_example[static_cast<std::size_t>(b) * gg.total_heads + head_base + static_cast<std::size_t>(h)] += gsum;
                const std::size_t po = static_cast<std::size_t>(ws.prob_offsets_[static_cast<std::size_t>(b)]) *
                                           static_cast<std::size_t>(heads) + static_cast<std::size_t>(h) * lens * lens;
                const S* P = R.probs.data.data() + po;
                const S* Pd = drop_attention ? R.probs_dropped.data.data() + po : P;
                const S* q = qkv + r0 * 3 * As + hd;
                const S* k = q + As;
                const S* v = q + 2 * As;
                S* dq = dqkv + r0 * 3 * As + hd;
                S* dk = dq + As;
                S* dv = dq + 2 * As;
                // dV = Pd^T dC ; dPd = dC V^T
                nn::gemm<S>(true, false, len, d, q_rows, S{1}, Pd, len, dc, A, S{0}, dv, 3 * A);
                nn::gemm<S>(false, true, q_rows, len, d, S{1}, dc, A, v, 3 * A, S{0}, dP, len);
                for (std::size_t i = 0; i < qs; ++i) {
                    S* row = dP + i * lens;
                    if (drop_attention) {
                        for (std::size_t j = 0; j < lens; ++j)
                            row[j] *= detail::dropout_scale<S>(o, pa, detail::layer_site(li, 0), po + i * lens + j);
                    }
                    const S* p = P + i * lens;
                    const S dot = nn::dot(row, p, len);
                    for (std::size_t j = 0; j < lens; ++j) row[j] = p[j] * (row[j] - dot);
                }
                // dQ = dS K * s (the query rows only) ; dK = dS^T Q * s
                nn::gemm<S>(false, false, q_rows, d, len, scale_qk, dP, len, k, 3 * A, S{0}, dq, 3 * A);
                nn::gemm<S>(true, false, len, d, q_rows, scale_qk, dP, len, q, 3 * A, S{0}, dk, 3 * A);
            };
            ws.pool_.parallel_tasks(static_cast<std::int64_t>(B) * heads, attend_backward);
            if (!cls_layer) {
                const nn::gemm_call<S> din_call{false, false, static_cast<int>(T), H, 3 * A, S{1}, dqkv, 3 * A, L.qkv.weight.data(), H, S{1},
                                                    dinput, H};
                const nn::gemm_call<S> dwqkv_call{true, false, 3 * A, H, static_cast<int>(T), S{1}, dqkv, 3 * A, R.input.data.data(), H, S{1},
                                                      G ? G->qkv.weight.data() : nullptr, H};
                nn::gemm_pair(ws.pool_, din_call, G ? &dwqkv_call : nullptr);
                if (G) nn::add_column_sums(ws.pool_, T, 3 * A, dqkv, 3 * As, G->qkv.bias.data());
            } else {
                // K | V gradients for every token; Q gradients for the [CLS] rows only (gathered).
                const nn::gemm_call<S> din_call{false, false, static_cast<int>(T), H, 2 * A, S{1}, dqkv + As, 3 * A,
                                                    L.qkv.weight.data() + As * hs, H, S{1}, dinput, H};
                const nn::gemm_call<S> dwkv_call{true, false, 2 * A, H, static_cast<int>(T), S{1}, dqkv + As, 3 * A, R.input.data.data(), H,
                                                     S{1}, G ? G->qkv.weight.data() + As * hs : nullptr, H};
                nn::gemm_pair(ws.pool_, din_call, G ? &dwkv_call : nullptr);
                S* dq_cls = ws.dctx_.get(rows * As + rows * hs);  // [B, A] then [B, H]
                S* dq_in = dq_cls + rows * As;
                for (std::size_t b = 0; b < rows; ++b)
                    std::copy(dqkv + token(b) * 3 * As, dqkv + token(b) * 3 * As + As, dq_cls + b * As);
                nn::gemm<S>(false, false, B, H, A, S{1}, dq_cls, A, L.qkv.weight.data(), H, S{0}, dq_in, H);
                for (std::size_t b = 0; b < rows; ++b)
                    for (std::size_t c = 0; c < hs; ++c) dinput[token(b) * hs + c] += dq_in[b * hs + c];
                if (G) {
                    nn::parallel_gemm<S>(ws.pool_, true, false, A, H, B, S{1}, dq_cls, A, in_rows, H, S{1}, G->qkv.weight.data(), H);
                    nn::add_column_sums(ws.pool_, rows, A, dq_cls, As, G->qkv.bias.data());
                    nn::add_column_sums(ws.pool_, T, 2 * A, dqkv + As, 3 * As, G->qkv.bias.data() + As);
                }
            }
        }
        // dy now holds the gradient of this layer's input = the previous layer's output.
    }
    // Embeddings: dropout, LayerNorm, scatter.
    if (want_grads) {
        if (drop_hidden) {
            ws.pool_.for_rows(T, hs, [&](std::size_t t) {
                for (int c = 0; c < H; ++c) {
                    const std::size_t idx = t * hs + static_cast<std::size_t>(c);
                    dy[idx] *= detail::dropout_scale<S>(o, ph, detail::site_embedding, idx);
                }
            });
        }
        nn::add_norm_parameter_grads(ws.pool_, T, H, dy, ehat, grads->embedding_norm.weight.data(),
                                               grads->embedding_norm.bias.data());
        S* de = ws.dtmp_.get(T * hs);
        ws.pool_.for_rows(T, hs, [&](std::size_t t) {
            nn::layer_norm_backward(dy + t * hs, ehat + t * hs, erstd[t], w.embedding_norm.weight.data(), de + t * hs, H);
        });
        for (std::size_t t = 0; t < T; ++t) {  // serial: tokens may share rows
            const S* r = de + t * hs;
            S* word = grads->word_embeddings.row(batch.token_ids[t]).data();
            S* pos = grads->position_embeddings.row(batch.positions[t]).data();
            S* typ = grads->token_type_embeddings.row(batch.token_types[t]).data();
            for (int c = 0; c < H; ++c) {
                word[c] += r[c];
                pos[c] += r[c];
                typ[c] += r[c];
            }
        }
    }
}

}  // namespace prune::bert
