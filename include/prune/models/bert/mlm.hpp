// prune/models/bert/mlm.hpp: the masked-language-model head of Hugging Face's BertForMaskedLM
// (forward and backward) and BERT's token masking.
//
// Head, on the final hidden states x of the masked positions only (M rows):
//   z = x W_t^T + b_t;  y = LayerNorm(gelu(z));  logits = y E^T + b      (E: the word embeddings, tied)
//   loss = mean over the M positions of cross-entropy(logits, original token)
// HF names: cls.predictions.transform.dense.{weight,bias}, cls.predictions.transform.LayerNorm.
// {weight,bias}, cls.predictions.bias; the decoder weight is bert.embeddings.word_embeddings.weight
// (tied, so a checkpoint stores it once, as HF's save_pretrained does).
// The backward pass gives the head's gradients, *adds* dloss/dE to the word-embedding gradient
// (which the encoder's backward pass also adds to), and writes dloss/dx scattered into a full
// [tokens x hidden] matrix that is zero at every unmasked row.
//
// Masking (BERT's recipe, Devlin et al. 2019; the count rule of Google's
// create_pretraining_data.py): in each sequence, k = max(1, round(rate * n)) of its n
// maskable tokens (not special: [PAD] [UNK]-free list given by the caller, [CLS], [SEP], ...)
// are chosen uniformly without replacement; each becomes [MASK] with probability 0.8, a
// random non-special token with probability 0.1, and stays unchanged otherwise. The loss is
// taken only at those k positions. Everything comes from a SplitMix64 stream of the seed,
// so the same batch and seed give the same masks on every platform.
//
// The head is templated on the scalar (float for training, double for gradient checks). Its
// products and row loops run on a thread pool when the workspace has one (set_pool; pre-training
// hands it the encoder pass's pool), split by prune/nn/gemm.hpp, with
// vectorised exp and per-row reductions in a fixed order: the result is the same at any pool size.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/nn/gemm.hpp>
#include <prune/nn/kernels.hpp>
#include <prune/nn/threads.hpp>
#include <prune/models/bert/batch.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/detail/random.hpp>
#include <prune/error.hpp>


#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace prune::bert {

/// A row-major matrix of scalar S (the MLM head's storage).
template <class S>
using mlm_matrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// A column vector of scalar S.
template <class S>
using mlm_vector = Eigen::Matrix<S, Eigen::Dynamic, 1>;

/// The parameters of BertForMaskedLM's prediction head (the decoder weight is the word embeddings).
template <class S>
struct basic_mlm_head {
    mlm_matrix<S> transform_weight;  ///< cls.predictions.transform.dense.weight [hidden, hidden]
    mlm_vector<S> transform_bias;    ///< cls.predictions.transform.dense.bias [hidden]
    mlm_vector<S> norm_weight;       ///< cls.predictions.transform.LayerNorm.weight [hidden]
    mlm_vector<S> norm_bias;         ///< cls.predictions.transform.LayerNorm.bias [hidden]
    mlm_vector<S> decoder_bias;      ///< cls.predictions.bias [vocab]

    /// Width of the hidden states.
    [[nodiscard]] int hidden() const { return static_cast<int>(transform_weight.rows()); }
    /// Size of the vocabulary.
    [[nodiscard]] int vocab() const { return static_cast<int>(decoder_bias.size()); }
    /// Sets every parameter to 0 (for gradient accumulators).
    void set_zero() {
        transform_weight.setZero();
        transform_bias.setZero();
        norm_weight.setZero();
        norm_bias.setZero();
        decoder_bias.setZero();
    }
    /// The same head in scalar T.
    template <class T>
    [[nodiscard]] basic_mlm_head<T> cast() const {
        return {transform_weight.template cast<T>(), transform_bias.template cast<T>(), norm_weight.template cast<T>(),
                norm_bias.template cast<T>(), decoder_bias.template cast<T>()};
    }
};
/// The float MLM head.
using mlm_head = basic_mlm_head<float>;

/// A head of zeros shaped for `hidden` x `vocab` (for gradients).
template <class S = float>
[[nodiscard]] basic_mlm_head<S> zero_mlm_head(int hidden, int vocab) {
    if (hidden <= 0 || vocab <= 0) {
        throw value_error("zero_mlm_head: hidden " + std::to_string(hidden) + ", vocab " + std::to_string(vocab) +
                          " (expected > 0)");
    }
    basic_mlm_head<S> h;
    h.transform_weight = mlm_matrix<S>::Zero(hidden, hidden);
    h.transform_bias = mlm_vector<S>::Zero(hidden);
    h.norm_weight = mlm_vector<S>::Zero(hidden);
    h.norm_bias = mlm_vector<S>::Zero(hidden);
    h.decoder_bias = mlm_vector<S>::Zero(vocab);
    return h;
}

/// A fresh head as HF initialises it: dense weight N(0, stddev), biases 0, LayerNorm 1 and 0.
[[nodiscard]] inline mlm_head init_mlm_head(int hidden, int vocab, std::uint64_t seed, float stddev = 0.02f) {
    mlm_head h = zero_mlm_head<float>(hidden, vocab);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, stddev);
    h.transform_weight = matrix::NullaryExpr(hidden, hidden, [&] { return normal(rng); });
    h.norm_weight.setOnes();
    return h;
}

/// The head's tensors named as BertForMaskedLM names them, in a fixed order.
[[nodiscard]] inline std::vector<parameter> mlm_head_parameters(mlm_head& h) {
    const std::int64_t H = h.hidden();
    return {
        {"cls.predictions.transform.dense.weight", h.transform_weight.data(), {H, H}},
        {"cls.predictions.transform.dense.bias", h.transform_bias.data(), {H}},
        {"cls.predictions.transform.LayerNorm.weight", h.norm_weight.data(), {H}},
        {"cls.predictions.transform.LayerNorm.bias", h.norm_bias.data(), {H}},
        {"cls.predictions.bias", h.decoder_bias.data(), {h.vocab()}},
    };
}

namespace mlm_detail {

/// GELU, erf form, in scalar S (std::erf: exact to the type).
template <class S>
S gelu(S x) noexcept {
    return S{0.5} * x * (S{1} + std::erf(x * static_cast<S>(0.70710678118654752440)));
}
/// d GELU / dx.
template <class S>
S gelu_derivative(S x) noexcept {
    return S{0.5} * (S{1} + std::erf(x * static_cast<S>(0.70710678118654752440))) +
           x * static_cast<S>(0.39894228040143267794) * std::exp(S{-0.5} * x * x);
}

}  // namespace mlm_detail

/// Grow-only scratch memory of the MLM head, and what the last call computed.
template <class S>
class basic_mlm_workspace {
public:
    /// Mean cross-entropy of the last call.
    [[nodiscard]] double loss() const noexcept { return loss_; }
    /// Masked positions of the last call whose arg-max prediction was the original token.
    [[nodiscard]] std::size_t correct() const noexcept { return correct_; }
    /// Masked positions of the last call.
    [[nodiscard]] std::size_t count() const noexcept { return count_; }
    /// The logits of the last call without a backward pass: [count, vocab] row-major (with
    /// one, they are overwritten by dloss/dlogits).
    [[nodiscard]] const mlm_matrix<S>& logits() const noexcept { return logits_; }
    /// Runs the head's products and row loops on `pool` (null: OpenBLAS / Eigen on the caller).
    /// The result does not depend on the pool's size.
    void set_pool(nn::thread_pool* pool) noexcept { pool_ = pool; }

private:
    template <class T>
    friend double mlm_loss(const mlm_matrix<T>&, const basic_mlm_head<T>&, const T*, std::int64_t,
                           std::span<const std::int64_t>, std::span<const std::int32_t>, float, basic_mlm_workspace<T>&,
                           basic_mlm_head<T>*, mlm_matrix<T>*, T*);
    mlm_matrix<S> x_, z_, y_hat_, y_, logits_, exp_, dy_, dz_, dx_;
    mlm_vector<S> rstd_;
    std::vector<double> row_loss_;
    std::vector<unsigned char> row_correct_;
    nn::thread_pool* pool_ = nullptr;
    double loss_ = 0.0;
    std::size_t correct_ = 0;
    std::size_t count_ = 0;
};
/// The float workspace.
using mlm_workspace = basic_mlm_workspace<float>;

/// The MLM loss (mean cross-entropy over the masked positions) of the head on `hidden`
/// ([tokens, hidden] row-major: the encoder output), predicting labels[i] at row positions[i].
/// When `head_grads` is not null, the backward pass runs: head_grads and `embedding_grads`
/// ([vocab, hidden], the tied decoder) are *added to*, and `hidden_grads` ([tokens, hidden],
/// required then) is overwritten: dloss/dhidden at the masked rows, 0 elsewhere.
/// Throws shape_error / value_error on mismatched sizes, positions or labels.
template <class S>
double mlm_loss(const mlm_matrix<S>& word_embeddings, const basic_mlm_head<S>& head, const S* hidden,
                std::int64_t tokens, std::span<const std::int64_t> positions, std::span<const std::int32_t> labels,
                float layer_norm_eps, basic_mlm_workspace<S>& ws, basic_mlm_head<S>* head_grads = nullptr,
                mlm_matrix<S>* embedding_grads = nullptr, S* hidden_grads = nullptr) {
    const int H = head.hidden();
    const int V = head.vocab();
    if (word_embeddings.rows() != V || word_embeddings.cols() != H || head.transform_weight.cols() != H ||
        head.transform_bias.size() != H || head.norm_weight.size() != H || head.norm_bias.size() != H) {
        throw shape_error("mlm_loss: head of hidden " + std::to_string(H) + " / vocab " + std::to_string(V) +
                          " does not fit word embeddings [" + std::to_string(word_embeddings.rows()) + ", " +
                          std::to_string(word_embeddings.cols()) + "]");
    }
    if (positions.size() != labels.size()) {
        throw shape_error("mlm_loss: " + std::to_string(positions.size()) + " positions but " +
                          std::to_string(labels.size()) + " labels");
    }
    if (positions.empty()) throw value_error("mlm_loss: no masked positions");
    const bool backward = head_grads != nullptr;
    if (backward && (embedding_grads == nullptr || hidden_grads == nullptr)) {
        throw value_error("mlm_loss: the backward pass needs embedding_grads and hidden_grads");
    }
    if (backward && (embedding_grads->rows() != V || embedding_grads->cols() != H || head_grads->hidden() != H ||
                     head_grads->vocab() != V)) {
        throw shape_error("mlm_loss: gradient shapes do not match the head");
    }
    const auto M = static_cast<int>(positions.size());
    const auto hs = static_cast<std::size_t>(H);
    for (int i = 0; i < M; ++i) {
        if (positions[static_cast<std::size_t>(i)] < 0 || positions[static_cast<std::size_t>(i)] >= tokens) {
            throw value_error("mlm_loss: masked position " + std::to_string(positions[static_cast<std::size_t>(i)]) +
                              " outside [0, " + std::to_string(tokens) + ")");
        }
        if (labels[static_cast<std::size_t>(i)] < 0 || labels[static_cast<std::size_t>(i)] >= V) {
            throw value_error("mlm_loss: label " + std::to_string(labels[static_cast<std::size_t>(i)]) +
                              " outside the vocabulary [0, " + std::to_string(V) + ")");
        }
    }
    // Products split over the pool (or on the caller), so the result is the same at any pool size.
    nn::thread_pool serial(1);
    nn::thread_pool& pool = ws.pool_ != nullptr ? *ws.pool_ : serial;
    auto product = [&pool](bool ta, bool tb, int m, int n, int k, S alpha, const S* a, int lda, const S* b, int ldb,
                           S beta, S* c, int ldc) {
        nn::parallel_gemm<S>(pool, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    };
    const auto Ms = static_cast<std::size_t>(M);
    const auto Vs = static_cast<std::size_t>(V);
    // Forward.
    ws.x_.resize(M, H);
    for (int i = 0; i < M; ++i) {
        std::copy(hidden + static_cast<std::size_t>(positions[static_cast<std::size_t>(i)]) * hs,
                  hidden + static_cast<std::size_t>(positions[static_cast<std::size_t>(i)]) * hs + hs, ws.x_.row(i).data());
    }
    ws.z_.resize(M, H);
    product(false, true, M, H, H, S{1}, ws.x_.data(), H, head.transform_weight.data(), H, S{0}, ws.z_.data(), H);
    ws.y_hat_.resize(M, H);
    ws.y_.resize(M, H);
    ws.rstd_.resize(M);
    const S eps = static_cast<S>(layer_norm_eps);
    pool.for_rows(Ms, hs, [&](std::size_t r) {  // z += b_t; y = LN(gelu(z))
        const auto i = static_cast<Eigen::Index>(r);
        S* z = ws.z_.row(i).data();
        S* g = ws.y_.row(i).data();  // gelu(z), then y in place
        for (int c = 0; c < H; ++c) {
            z[c] += head.transform_bias(c);
            g[c] = mlm_detail::gelu(z[c]);
        }
        nn::layer_norm_forward(g, g, ws.y_hat_.row(i).data(), &ws.rstd_(i), head.norm_weight.data(),
                                   head.norm_bias.data(), H, eps);
    });
    ws.logits_.resize(M, V);
    product(false, true, M, V, H, S{1}, ws.y_.data(), H, word_embeddings.data(), H, S{0}, ws.logits_.data(), V);
    // Cross-entropy row by row; with the backward pass the logits become dloss/dlogits =
    // (softmax - onehot) / M in place, else exp() goes to a scratch matrix (same values either way).
    if (!backward) ws.exp_.resize(M, V);
    ws.row_loss_.resize(Ms);
    ws.row_correct_.resize(Ms);
    const S inv_m = S{1} / static_cast<S>(M);
    pool.for_rows(Ms, Vs, [&](std::size_t r) {
        const auto i = static_cast<Eigen::Index>(r);
        S* row = ws.logits_.row(i).data();
        const S* bias = head.decoder_bias.data();
        for (int v = 0; v < V; ++v) row[v] += bias[v];
        int best = 0;
        for (int v = 1; v < V; ++v)
            if (row[v] > row[best]) best = v;
        const S mx = row[best];
        const int y = labels[r];
        const S target = row[y];
        S* e = backward ? row : ws.exp_.row(i).data();
        for (int v = 0; v < V; ++v) e[v] = row[v] - mx;
        nn::exp_array(e, e, V);
        const S sum = nn::lane_sum<S>(V, [e](int v) { return e[v]; });
        ws.row_loss_[r] = static_cast<double>(std::log(sum) + mx - target);
        ws.row_correct_[r] = best == y ? 1 : 0;
        if (backward) {
            const S scale = inv_m / sum;
            for (int v = 0; v < V; ++v) e[v] *= scale;
            e[y] -= inv_m;
        }
    });
    double total = 0.0;
    std::size_t correct = 0;
    for (std::size_t r = 0; r < Ms; ++r) {
        total += ws.row_loss_[r];
        correct += ws.row_correct_[r];
    }
    ws.loss_ = total / M;
    ws.correct_ = correct;
    ws.count_ = Ms;
    if (!backward) return ws.loss_;

    // Backward. dlogits is in ws.logits_.
    const mlm_matrix<S>& dlogits = ws.logits_;
    nn::add_column_sums(pool, Ms, V, dlogits.data(), Vs, head_grads->decoder_bias.data());
    // dy = dlogits E [M, H] beside dE += dlogits^T y [V, H] (the tied decoder's gradient)
    ws.dy_.resize(M, H);
    const nn::gemm_call<S> dy_call{false, false, M, H, V, S{1}, dlogits.data(), V, word_embeddings.data(), H,
                                       S{0}, ws.dy_.data(), H};
    const nn::gemm_call<S> de_call{true, false, V, H, M, S{1}, dlogits.data(), V, ws.y_.data(), H, S{1},
                                       embedding_grads->data(), H};
    nn::gemm_pair(pool, dy_call, &de_call);
    // LayerNorm backward, then GELU.
    nn::add_norm_parameter_grads(pool, Ms, H, ws.dy_.data(), ws.y_hat_.data(), head_grads->norm_weight.data(),
                                           head_grads->norm_bias.data());
    ws.dz_.resize(M, H);
    pool.for_rows(Ms, hs, [&](std::size_t r) {
        const auto i = static_cast<Eigen::Index>(r);
        S* dz = ws.dz_.row(i).data();
        const S* z = ws.z_.row(i).data();
        nn::layer_norm_backward(ws.dy_.row(i).data(), ws.y_hat_.row(i).data(), ws.rstd_(i),
                                    head.norm_weight.data(), dz, H);
        for (int c = 0; c < H; ++c) dz[c] *= mlm_detail::gelu_derivative(z[c]);
    });
    nn::add_column_sums(pool, Ms, H, ws.dz_.data(), hs, head_grads->transform_bias.data());
    // dx = dz W_t beside dW_t += dz^T x
    ws.dx_.resize(M, H);
    const nn::gemm_call<S> dx_call{false, false, M, H, H, S{1}, ws.dz_.data(), H, head.transform_weight.data(), H,
                                       S{0}, ws.dx_.data(), H};
    const nn::gemm_call<S> dw_call{true, false, H, H, M, S{1}, ws.dz_.data(), H, ws.x_.data(), H, S{1},
                                       head_grads->transform_weight.data(), H};
    nn::gemm_pair(pool, dx_call, &dw_call);
    std::fill(hidden_grads, hidden_grads + static_cast<std::size_t>(tokens) * hs, S{0});
    for (int i = 0; i < M; ++i) {
        S* row = hidden_grads + static_cast<std::size_t>(positions[static_cast<std::size_t>(i)]) * hs;
        for (int c = 0; c < H; ++c) row[c] += ws.dx_(i, c);  // += : a position may be listed twice
    }
    return ws.loss_;
}

// ------------------------------------------------------------------------------------------
// Masking.

/// BERT's masking rates.
struct masking_options {
    double rate = 0.15;           ///< share of each sequence's maskable tokens that are predicted
    double mask_fraction = 0.8;   ///< of those, replaced by [MASK]
    double random_fraction = 0.1;  ///< of those, replaced by a random non-special token (the rest stay)
};

/// The positions (rows of the packed batch) to predict and their original tokens.
struct mlm_targets {
    std::vector<std::int64_t> positions;  ///< ascending packed rows
    std::vector<std::int32_t> labels;     ///< the original token at each position
};

/// Chooses and corrupts the tokens to predict, deterministically from a seed.
class token_masker {
public:
    /// A masker for a vocabulary of `vocab_size` ids whose special ids ([PAD], [UNK], [CLS],
    /// [SEP], [MASK], ...) are never chosen nor drawn as random replacements.
    /// Throws value_error on bad rates, ids outside the vocabulary, or no non-special id.
    token_masker(int vocab_size, std::span<const std::int32_t> special_ids, std::int32_t mask_id,
                 masking_options options = {})
        : options_(options), mask_id_(mask_id), special_(static_cast<std::size_t>(std::max(vocab_size, 0)), false) {
        if (vocab_size <= 0) throw value_error("token_masker: vocab_size " + std::to_string(vocab_size));
        if (!(options.rate > 0.0 && options.rate <= 1.0) || !(options.mask_fraction >= 0.0) ||
            !(options.random_fraction >= 0.0) || options.mask_fraction + options.random_fraction > 1.0) {
            throw value_error("token_masker: rates must satisfy 0 < rate <= 1, fractions >= 0 summing to <= 1");
        }
        auto check = [&](std::int32_t id, const char* what) {
            if (id < 0 || id >= vocab_size) {
                throw value_error(std::string("token_masker: ") + what + " id " + std::to_string(id) +
                                  " outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
            }
        };
        check(mask_id, "[MASK]");
        for (auto id : special_ids) {
            check(id, "special");
            special_[static_cast<std::size_t>(id)] = true;
        }
        special_[static_cast<std::size_t>(mask_id)] = true;
        for (int id = 0; id < vocab_size; ++id) {
            if (!special_[static_cast<std::size_t>(id)]) ordinary_.push_back(id);
        }
        if (ordinary_.empty()) throw value_error("token_masker: every id of the vocabulary is special");
    }

    /// True when `id` is never masked.
    [[nodiscard]] bool is_special(std::int32_t id) const {
        return id < 0 || static_cast<std::size_t>(id) >= special_.size() || special_[static_cast<std::size_t>(id)];
    }
    /// The masking rates.
    [[nodiscard]] const masking_options& options() const noexcept { return options_; }

    /// Masks batch.token_ids in place and returns what to predict. A sequence with no maskable
    /// token contributes nothing; every other contributes max(1, round(rate * n)) positions.
    [[nodiscard]] mlm_targets mask(packed_batch& batch, std::uint64_t seed) const {
        mlm_targets out;
        prune::detail::splitmix64 rng(seed, 0x4D4C4D);  // "MLM"
        std::vector<std::size_t> candidates;
        for (int b = 0; b < batch.sequences(); ++b) {
            const auto r0 = static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b)]);
            const auto r1 = static_cast<std::size_t>(batch.offsets[static_cast<std::size_t>(b) + 1]);
            candidates.clear();
            for (std::size_t r = r0; r < r1; ++r) {
                if (!is_special(batch.token_ids[r])) candidates.push_back(r);
            }
            if (candidates.empty()) continue;
            const auto n = candidates.size();
            const auto k = std::min(n, std::max<std::size_t>(1, static_cast<std::size_t>(std::llround(options_.rate * static_cast<double>(n)))));
            auto chosen = prune::detail::sample_without_replacement(candidates, k, rng);
            std::sort(chosen.begin(), chosen.end());
            for (std::size_t r : chosen) {
                out.positions.push_back(static_cast<std::int64_t>(r));
                out.labels.push_back(batch.token_ids[r]);
                const double u = rng.uniform();
                if (u < options_.mask_fraction) {
                    batch.token_ids[r] = mask_id_;
                } else if (u < options_.mask_fraction + options_.random_fraction) {
                    batch.token_ids[r] = ordinary_[static_cast<std::size_t>(rng.below(ordinary_.size()))];
                }
            }
        }
        return out;
    }

private:
    masking_options options_;
    std::int32_t mask_id_;
    std::vector<bool> special_;
    std::vector<std::int32_t> ordinary_;
};

}  // namespace prune::bert
