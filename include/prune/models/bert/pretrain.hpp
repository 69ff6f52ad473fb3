// prune/models/bert/pretrain.hpp: masked-language-model pre-training of a small BERT from scratch
// (Hugging Face's BertForMaskedLM: the encoder, no pooler, and the MLM head of
// <prune/models/bert/mlm.hpp> tied to the word embeddings), and its model directory.
//
// Pieces, in order:
//  - the training step: the encoder in training mode is <prune/models/bert/backward.hpp>'s
//    (encode_for_training, then backward_from_hidden from the MLM head's dloss/d(hidden) at every
//    token: the same vectorised, pool-threaded pass that fine-tuning uses, dropout where HF puts
//    it); the MLM head is <prune/models/bert/mlm.hpp>'s, on the same thread pool.
//  - the optimiser: the library's AdamW, global-norm clipping and Hugging Face's linear
//    warm-up schedule (<prune/train/adamw.hpp>, <prune/train/lr_schedule.hpp>) over the
//    encoder and MLM-head parameters (pretraining_parameters).
//  - mlm_corpus: the pre-training text (DIR/pretrain/train.txt of `prune-data wordnet`, one
//    definition or example per line) as token ids; each training sequence is [CLS] A [SEP]
//    or, half of the time, [CLS] A [SEP] B [SEP] with token types 0 / 1 (A, B consecutive
//    lines of the shuffled corpus), truncated longest-first to max_length.
//  - mlm_eval_set / mlm_eval_loss: a held-out MLM loss (DIR/pretrain/dev.txt: the dev
//    synsets' text, never trained on), on sequences, pairs and masks fixed by a constant seed
//    (the same masked positions at every evaluation, in every run), the encoder without dropout.
//  - pretrain(): the loop (seeded shuffles, masks and dropout: same seed, same bytes), with the
//    held-out loss every `dev_every` steps and at the end when given a held-out set.
//  - write_pretrained / read_pretrained: an HF model directory (config.json with
//    "architectures": ["BertForMaskedLM"], model.safetensors with bert.* and cls.predictions.*,
//    vocab.txt), written atomically.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/models/bert/backward.hpp>
#include <prune/models/bert/batch.hpp>
#include <prune/models/bert/config.hpp>
#include <prune/models/bert/kernels.hpp>
#include <prune/models/bert/mlm.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/detail/random.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/train/adamw.hpp>
#include <prune/train/lr_schedule.hpp>


#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <span>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace prune::bert {

// ------------------------------------------------------------------------------------------
// Optimiser.

/// Zero-filled weights of w's shape (with a pooler / classifier only when w has them): gradients.
[[nodiscard]] inline weights zero_gradients_like(const weights& w) {
    weights g = allocate(w.cfg, w.has_head());
    for (const auto& p : parameters(g)) std::fill(p.values().begin(), p.values().end(), 0.0f);
    return g;
}

/// The encoder parameters of w and the MLM head, paired with their gradients (same layout).
[[nodiscard]] inline std::vector<train::trainable> pretraining_parameters(weights& w, mlm_head& head, weights& grads,
                                                                          mlm_head& head_grads) {
    std::vector<train::trainable> out;
    auto a = parameters(w);
    auto b = parameters(grads);
    PRUNE_ASSERT(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].name.find("pooler") != std::string::npos || a[i].name.rfind("classifier", 0) == 0) continue;
        PRUNE_ASSERT(a[i].name == b[i].name && a[i].size() == b[i].size());
        out.push_back({a[i].name, a[i].values(), b[i].values()});
    }
    auto c = mlm_head_parameters(head);
    auto d = mlm_head_parameters(head_grads);
    for (std::size_t i = 0; i < c.size(); ++i) {
        PRUNE_ASSERT(c[i].size() == d[i].size());
        out.push_back({c[i].name, c[i].values(), d[i].values()});
    }
    return out;
}

// ------------------------------------------------------------------------------------------
// Corpus.

/// The pre-training text as token ids (no [CLS]/[SEP]), one entry per non-empty line.
struct mlm_corpus {
    std::vector<std::vector<std::int32_t>> lines;  ///< word-piece ids of each line
    std::size_t tokens = 0;                        ///< total word pieces
};

/// Tokenizes every non-empty line of `text_file` (UTF-8), keeping at most `max_pieces` pieces of a
/// line. Throws io_error when the file cannot be read, value_error when it has no text.
[[nodiscard]] inline mlm_corpus read_mlm_corpus(const std::filesystem::path& text_file, const text::tokenizer& tok,
                                                std::size_t max_pieces = 62) {
    std::ifstream in(text_file, std::ios::binary);
    if (!in) throw io_error("cannot read the pre-training corpus '" + text_file.string() + "'");
    mlm_corpus c;
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        auto ids = tok.token_ids(line);
        if (ids.empty()) continue;
        if (ids.size() > max_pieces) ids.resize(max_pieces);
        c.tokens += ids.size();
        c.lines.push_back(std::move(ids));
    }
    if (c.lines.empty()) throw value_error("the pre-training corpus '" + text_file.string() + "' has no text");
    return c;
}

// ------------------------------------------------------------------------------------------
// The loop.

/// Pre-training hyper-parameters (defaults: docs/pretraining.md has the measurements).
struct pretrain_options {
    std::size_t steps = 0;             ///< optimiser steps (0: from `minutes`)
    double minutes = 0.0;              ///< wall budget when steps == 0: steps are estimated from a timed trial
    std::size_t batch_size = 128;      ///< sequences per step
    std::size_t max_length = 64;       ///< tokens per sequence, [CLS]/[SEP] included
    double pair_probability = 0.5;     ///< share of sequences made of two lines (token types 0 / 1)
    double learning_rate = 2e-3;       ///< peak learning rate (docs/pretraining.md: 2e-3 beat 1e-3 and 3e-3)
    double warmup_fraction = 0.06;     ///< share of the steps warming up linearly
    double weight_decay = 0.01;        ///< decoupled weight decay (not biases / LayerNorm weights)
    double adam_beta1 = 0.9;           ///< AdamW beta1
    double adam_beta2 = 0.999;         ///< AdamW beta2
    double adam_eps = 1e-6;            ///< AdamW epsilon (BERT's)
    double max_grad_norm = 1.0;        ///< global-norm clipping
    float hidden_dropout = 0.0f;       ///< dropout after the embeddings and dense outputs (off: a short run underfits)
    float attention_dropout = 0.0f;    ///< dropout on the attention probabilities (off, likewise)
    masking_options masking;           ///< 15% with 80/10/10
    std::uint64_t seed = 0;            ///< initialisation, order, masks and dropout
    int threads = 2;                   ///< threads of the training pass (0 = every core)
    std::size_t dev_every = 0;         ///< held-out loss every this many steps (0: at the end only)
};

/// Progress of the loop, reported after every step.
struct pretrain_progress {
    std::size_t step = 0;      ///< steps done
    std::size_t total = 0;     ///< steps planned
    double loss = 0.0;         ///< this step's MLM loss
    double accuracy = 0.0;     ///< this step's masked-token accuracy
    double lr = 0.0;           ///< learning rate used
    double seconds = 0.0;      ///< wall time so far
    double dev_loss = std::numeric_limits<double>::quiet_NaN();  ///< held-out loss after this step (NaN: not evaluated)
};

/// What pre-training produced.
struct pretrain_result {
    weights model;                     ///< encoder weights (no pooler / classifier)
    mlm_head head;                     ///< the MLM head
    std::size_t steps = 0;             ///< steps taken
    std::size_t planned_steps = 0;     ///< steps the schedule was made for
    std::vector<double> losses;        ///< MLM loss of every step
    std::vector<std::pair<std::size_t, double>> dev_losses;  ///< (step, held-out loss) of every evaluation; the last is the final model's
};

namespace pretrain_detail {

/// Appends [CLS] a [SEP] (b [SEP] when `pair`), types 0 / 1, truncated longest-first to `budget`.
inline void add_sequence(std::vector<std::int32_t> a, std::vector<std::int32_t> b, bool pair, std::size_t budget,
                         const text::vocabulary& vocab, std::vector<std::int32_t>& ids, std::vector<std::int32_t>& types,
                         packed_batch& batch) {
    const std::size_t specials = pair ? 3 : 2;
    while (a.size() + b.size() + specials > budget) {
        if (a.size() > b.size()) a.pop_back(); else b.pop_back();
    }
    ids.clear();
    types.clear();
    ids.push_back(vocab.cls_id());
    ids.insert(ids.end(), a.begin(), a.end());
    ids.push_back(vocab.sep_id());
    types.assign(ids.size(), 0);
    if (pair) {
        ids.insert(ids.end(), b.begin(), b.end());
        ids.push_back(vocab.sep_id());
        types.resize(ids.size(), 1);
    }
    batch.add(ids, types);
}

/// Builds the batch of sequences `first .. first + count` of the epoch order (wrapping).
inline void fill_batch(const mlm_corpus& corpus, const std::vector<std::size_t>& order, std::size_t& cursor,
                       std::size_t count, const pretrain_options& o, const text::vocabulary& vocab,
                       prune::detail::splitmix64& rng, packed_batch& batch) {
    batch.clear();
    std::vector<std::int32_t> ids, types;
    auto next_line = [&]() -> const std::vector<std::int32_t>& {
        const auto& l = corpus.lines[order[cursor % order.size()]];
        ++cursor;
        return l;
    };
    for (std::size_t s = 0; s < count; ++s) {
        std::vector<std::int32_t> a = next_line();
        std::vector<std::int32_t> b;
        const bool pair = rng.uniform() < o.pair_probability;
        if (pair) b = next_line();
        add_sequence(std::move(a), std::move(b), pair, o.max_length, vocab, ids, types, batch);
    }
}

}  // namespace pretrain_detail

/// The config of a model pre-trained with these dimensions on a vocabulary of `vocab` tokens.
[[nodiscard]] inline config pretraining_config(int layers, int hidden, int heads, int intermediate, int vocab) {
    config cfg = config::make(layers, hidden, heads, intermediate, vocab, 2);
    cfg.extra["architectures"] = nlohmann::json::array({"BertForMaskedLM"});
    cfg.extra["hidden_dropout_prob"] = 0.1;
    cfg.extra["attention_probs_dropout_prob"] = 0.1;
    cfg.extra["initializer_range"] = 0.02;
    cfg.extra["pad_token_id"] = 0;
    return cfg;
}

/// The weights pre-training starts from, as HF initialises BertForMaskedLM: matrices and
/// embeddings N(0, 0.02), biases 0, LayerNorm 1 / 0; the MLM head likewise (seeded).
[[nodiscard]] inline pretrain_result pretrain_initial(const config& cfg, std::uint64_t seed) {
    pretrain_result r;
    r.model = random_weights(cfg, seed, 0.02f, false);
    for (auto& p : parameters(r.model)) {
        const bool norm = p.name.find("LayerNorm") != std::string::npos;
        const bool bias = p.name.size() >= 4 && p.name.compare(p.name.size() - 4, 4, "bias") == 0;
        if (norm || bias) {
            const float v = norm && !bias ? 1.0f : 0.0f;
            for (float& x : p.values()) x = v;
        }
    }
    r.head = init_mlm_head(cfg.hidden_size, cfg.vocab_size, seed ^ 0x5EEDull);
    return r;
}

// ------------------------------------------------------------------------------------------
// The held-out loss.

/// The seed of the held-out sequences, pairs and masks: a constant, not pretrain_options::seed,
/// so that runs with different seeds (and recipes) are scored on the same masked positions.
inline constexpr std::uint64_t mlm_eval_seed = 0xDE7E7A15ull;

/// Held-out MLM batches, masked once: the same sequences and masked positions at every evaluation.
struct mlm_eval_set {
    std::vector<packed_batch> batches;  ///< masked batches of at most batch_size sequences
    std::vector<mlm_targets> targets;   ///< the masked positions and original tokens of each batch
    std::size_t sequences = 0;          ///< sequences in all
    std::size_t positions = 0;          ///< masked positions in all
    std::size_t lines = 0;              ///< lines of the held-out text used
};

/// Builds the held-out set from `text` as training builds its sequences (o.pair_probability,
/// o.max_length, o.masking, batches of o.batch_size), in an order, pairing and masking drawn from
/// `seed` only: the lines in a seeded shuffled order, each line used at most once, at most
/// `max_sequences` sequences (0: all the lines). value_error when there is nothing to evaluate.
[[nodiscard]] inline mlm_eval_set make_mlm_eval_set(const mlm_corpus& text, const text::vocabulary& vocab,
                                                    const pretrain_options& o, std::size_t max_sequences,
                                                    std::uint64_t seed = mlm_eval_seed) {
    if (o.batch_size == 0 || o.max_length < 4) throw value_error("make_mlm_eval_set: batch_size 0 or max_length < 4");
    const int vocab_size = static_cast<int>(vocab.size());
    for (const auto& line : text.lines)
        for (auto id : line)
            if (id < 0 || id >= vocab_size) throw value_error("make_mlm_eval_set: token id " + std::to_string(id) + " outside the vocabulary");
    const std::vector<std::int32_t> specials = {vocab.pad_id(), vocab.unk_id(), vocab.cls_id(), vocab.sep_id(),
                                                vocab.mask_id()};
    const token_masker masker(vocab_size, specials, vocab.mask_id(), o.masking);
    std::vector<std::size_t> order(text.lines.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    prune::detail::splitmix64 shuffle(seed, 0x0DE7);
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle.below(i)]);
    prune::detail::splitmix64 pair_rng(seed, 0x0DE8);
    mlm_eval_set set;
    std::vector<std::int32_t> ids, types;
    std::size_t cursor = 0;
    packed_batch batch;
    auto flush = [&] {
        if (batch.sequences() == 0) return;
        set.targets.push_back(masker.mask(batch, seed ^ (0x9E3779B97F4A7C15ull * (set.batches.size() + 1))));
        set.positions += set.targets.back().positions.size();
        set.batches.push_back(std::move(batch));
        batch = packed_batch();
    };
    while (cursor < order.size() && (max_sequences == 0 || set.sequences < max_sequences)) {
        const bool pair = pair_rng.uniform() < o.pair_probability && cursor + 1 < order.size();
        const auto& a = text.lines[order[cursor++]];
        const auto& b = pair ? text.lines[order[cursor++]] : std::vector<std::int32_t>{};
        pretrain_detail::add_sequence(a, b, pair, o.max_length, vocab, ids, types, batch);
        ++set.sequences;
        if (static_cast<std::size_t>(batch.sequences()) == o.batch_size) flush();
    }
    flush();
    set.lines = cursor;
    if (set.positions == 0) throw value_error("make_mlm_eval_set: the held-out text has no maskable token");
    return set;
}

/// A held-out evaluation: mean cross-entropy over every masked position of the set.
struct mlm_eval_result {
    double loss = 0.0;          ///< mean MLM cross-entropy (nats) over all masked positions
    double accuracy = 0.0;      ///< share of masked positions whose arg-max is the original token
    std::size_t positions = 0;  ///< masked positions scored
};

/// The MLM loss of (model, head) on `set`, the encoder in inference mode (no dropout): per batch,
/// encode_for_training without dropout then the head's forward pass, both in the given grow-only
/// workspaces (those of the training loop: no memory beyond what training uses, once they have
/// seen a batch as long). Each batch's mean is weighted by its number of masked positions.
template <class W>
[[nodiscard]] mlm_eval_result mlm_eval_loss(const W& model, const mlm_head& head, const mlm_eval_set& set,
                                            training_workspace<float>& encoder, mlm_workspace& head_ws) {
    training_options inference;  // dropout off
    inference.dropout = false;
    double sum = 0.0;
    std::size_t correct = 0, count = 0;
    for (std::size_t k = 0; k < set.batches.size(); ++k) {
        const auto& batch = set.batches[k];
        const auto& t = set.targets[k];
        if (t.positions.empty()) continue;
        const std::span<const float> hidden = encode_for_training(model, batch, nullptr, encoder, inference);
        const double loss = mlm_loss<float>(model.word_embeddings, head, hidden.data(), batch.tokens(), t.positions,
                                            t.labels, model.cfg.layer_norm_eps, head_ws);
        sum += loss * static_cast<double>(t.positions.size());
        correct += head_ws.correct();
        count += t.positions.size();
    }
    PRUNE_ASSERT(count > 0);
    return {sum / static_cast<double>(count), static_cast<double>(correct) / static_cast<double>(count), count};
}

/// Pre-trains a fresh model of shape `cfg` on `corpus` (ids from `vocab`). Everything is a
/// function of options.seed, except that options.minutes picks the number of steps from a
/// timed trial (the progress reports it; pass it as options.steps to reproduce bit-for-bit).
/// `progress`, when set, is called after every step; returning false stops early.
/// With `held_out`, the held-out loss (mlm_eval_loss, on the loop's own workspaces) is computed
/// every o.dev_every steps and after the last step (result.dev_losses, progress.dev_loss); it
/// does not change the weights. With o.minutes the plan leaves time for those evaluations.
/// Throws value_error on bad options, a corpus or config that do not fit.
inline pretrain_result pretrain(const config& cfg, const mlm_corpus& corpus, const text::vocabulary& vocab,
                                const pretrain_options& o,
                                const std::function<bool(const pretrain_progress&)>& progress = {},
                                const mlm_eval_set* held_out = nullptr) {
    cfg.validate("pretrain config");
    if (cfg.vocab_size != static_cast<int>(vocab.size())) {
        throw value_error("pretrain: config vocab_size " + std::to_string(cfg.vocab_size) + " but the vocabulary has " +
                          std::to_string(vocab.size()) + " tokens");
    }
    if (o.steps == 0 && !(o.minutes > 0.0)) throw value_error("pretrain: give steps or a positive minutes budget");
    if (o.batch_size == 0) throw value_error("pretrain: batch_size must be > 0");
    if (o.max_length < 4 || static_cast<int>(o.max_length) > cfg.max_position_embeddings) {
        throw value_error("pretrain: max_length " + std::to_string(o.max_length) + " (expected 4.." +
                          std::to_string(cfg.max_position_embeddings) + ")");
    }
    if (!(o.learning_rate > 0.0)) throw value_error("pretrain: learning rate must be > 0");
    if (corpus.lines.empty()) throw value_error("pretrain: empty corpus");
    for (const auto& line : corpus.lines)
        for (auto id : line)
            if (id < 0 || id >= cfg.vocab_size) throw value_error("pretrain: corpus token id " + std::to_string(id) + " outside the vocabulary");

    const std::vector<std::int32_t> specials = {vocab.pad_id(), vocab.unk_id(), vocab.cls_id(), vocab.sep_id(),
                                                vocab.mask_id()};
    const token_masker masker(cfg.vocab_size, specials, vocab.mask_id(), o.masking);
    const auto start = std::chrono::steady_clock::now();
    auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

    // The run itself, for `total` planned steps (stopping after `limit`).
    using callback = std::function<bool(const pretrain_progress&)>;
    auto run = [&](std::size_t total, std::size_t limit, const callback& report, const mlm_eval_set* dev) {
        pretrain_result r = pretrain_initial(cfg, o.seed);
        r.planned_steps = total;
        weights grads = allocate(cfg, false);
        mlm_head head_grads = zero_mlm_head<float>(cfg.hidden_size, cfg.vocab_size);
        const auto params = pretraining_parameters(r.model, r.head, grads, head_grads);
        train::adamw optimizer(params, {o.adam_beta1, o.adam_beta2, o.adam_eps, o.weight_decay});
        const auto warmup = static_cast<std::size_t>(std::ceil(o.warmup_fraction * static_cast<double>(total)));
        training_workspace<float> encoder(o.threads);
        mlm_workspace head_ws;
        head_ws.set_pool(&encoder.pool());
        std::vector<float> d_hidden;
        training_options drop;
        drop.dropout = o.hidden_dropout > 0.0f || o.attention_dropout > 0.0f;
        drop.hidden_dropout = o.hidden_dropout;
        drop.attention_dropout = o.attention_dropout;
        packed_batch batch;
        std::vector<std::size_t> order(corpus.lines.size());
        std::size_t cursor = order.size();  // reshuffle at once
        std::size_t epoch = 0;
        prune::detail::splitmix64 pair_rng(o.seed, 0x5041);
        for (std::size_t step = 0; step < limit; ++step) {
            if (cursor + 2 * o.batch_size > order.size()) {  // new epoch: reshuffle
                for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
                prune::detail::splitmix64 shuffle(o.seed, 0xE90C0000ull + epoch++);
                for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle.below(i)]);
                cursor = 0;
            }
            pretrain_detail::fill_batch(corpus, order, cursor, o.batch_size, o, vocab, pair_rng, batch);
            const std::uint64_t step_seed = o.seed * 0x9E3779B97F4A7C15ull + step + 1;
            const mlm_targets targets = masker.mask(batch, step_seed);
            for (const auto& p : params) std::fill(p.gradient.begin(), p.gradient.end(), 0.0f);
            drop.seed = step_seed ^ 0xD50Bull;
            const std::span<const float> hidden = encode_for_training(r.model, batch, nullptr, encoder, drop);
            d_hidden.resize(hidden.size());
            const double loss = mlm_loss<float>(r.model.word_embeddings, r.head, hidden.data(), batch.tokens(),
                                                targets.positions, targets.labels, cfg.layer_norm_eps, head_ws,
                                                &head_grads, &grads.word_embeddings, d_hidden.data());
            backward_from_hidden(r.model, batch, nullptr, encoder, std::span<const float>(d_hidden), &grads, drop);
            train::require_finite_loss(step + 1, loss);
            train::clip_gradient_norm(params, o.max_grad_norm);
            const double lr = o.learning_rate * train::linear_warmup_schedule(step, total, warmup);
            optimizer.step(params, lr);
            r.losses.push_back(loss);
            r.steps = step + 1;
            const double accuracy = static_cast<double>(head_ws.correct()) / static_cast<double>(head_ws.count());
            double dev_loss = std::numeric_limits<double>::quiet_NaN();
            if (dev != nullptr && ((o.dev_every > 0 && r.steps % o.dev_every == 0) || r.steps == limit)) {
                dev_loss = mlm_eval_loss(r.model, r.head, *dev, encoder, head_ws).loss;
                r.dev_losses.emplace_back(r.steps, dev_loss);
            }
            if (report) {
                const pretrain_progress p{step + 1, total, loss, accuracy, lr, seconds(), dev_loss};
                if (!report(p)) break;
            }
        }
        if (dev != nullptr && (r.dev_losses.empty() || r.dev_losses.back().first != r.steps)) {  // stopped early
            r.dev_losses.emplace_back(r.steps, mlm_eval_loss(r.model, r.head, *dev, encoder, head_ws).loss);
        }
        return r;
    };

    std::size_t total = o.steps;
    if (total == 0) {
        // Timed trial on a throw-away copy of the same work: a few untimed steps first (the thread
        // pool, OpenBLAS's buffers and the workspace warm up: the first steps are ~2x slower than
        // the rest), then `timed` steps give the steady step time; as many steps as fit follow.
        const std::size_t warmup = 3, timed = 10;
        double t_warm = 0.0, t_end = 0.0;
        const pretrain_result trial = run(1000, warmup + timed, [&](const pretrain_progress& p) {
            if (p.step == warmup) t_warm = p.seconds;
            t_end = p.seconds;
            return true;
        }, nullptr);
        const double per_step = (t_end - t_warm) / static_cast<double>(timed);
        // The held-out evaluations come out of the budget: one is timed (after an untimed one).
        double per_eval = 0.0;
        if (held_out != nullptr) {
            training_workspace<float> encoder(o.threads);
            mlm_workspace head_ws;
            head_ws.set_pool(&encoder.pool());
            (void)mlm_eval_loss(trial.model, trial.head, *held_out, encoder, head_ws);
            const double t0 = seconds();
            (void)mlm_eval_loss(trial.model, trial.head, *held_out, encoder, head_ws);
            per_eval = seconds() - t0;
        }
        const double left = o.minutes * 60.0 - seconds() - per_eval;  // the final evaluation
        const double per_planned_step =
            per_step * 1.03 + (o.dev_every > 0 ? per_eval / static_cast<double>(o.dev_every) : 0.0);
        total = static_cast<std::size_t>(std::max(1.0, std::floor(left / per_planned_step)));
        // Stop early if the machine slows down by more than 10% against the trial.
        const double limit = o.minutes * 60.0 * 1.1;
        return run(total, total, [&](const pretrain_progress& p) { return (!progress || progress(p)) && p.seconds < limit; },
                   held_out);
    }
    return run(total, total, progress ? progress : callback([](const pretrain_progress&) { return true; }), held_out);
}

// ------------------------------------------------------------------------------------------
// The model directory.

/// Writes an HF BertForMaskedLM directory atomically: config.json, model.safetensors (bert.*
/// encoder tensors and cls.predictions.*; the tied decoder weight is stored once, as the word
/// embeddings), and a copy of `vocab_txt`. Replaces `out` when it exists. io_error on failure.
inline void write_pretrained(const std::filesystem::path& out, weights& w, mlm_head& head,
                             const std::filesystem::path& vocab_txt,
                             const std::map<std::string, std::string>& metadata = {}) {
    io::output_directory staging(out);
    io::safetensors_writer writer;
    auto add = [&](const parameter& p) {
        std::vector<std::size_t> shape(p.shape.begin(), p.shape.end());
        writer.add_borrowed(p.name, io::dtype::F32, shape,
                            std::as_bytes(std::span<const float>(p.data, p.size())));
    };
    for (const auto& p : parameters(w)) {
        if (p.name.find("pooler") != std::string::npos || p.name.rfind("classifier", 0) == 0) continue;
        add(p);
    }
    for (const auto& p : mlm_head_parameters(head)) add(p);
    writer.set_metadata("format", "pt");
    for (const auto& [k, v] : metadata) writer.set_metadata(k, v);
    writer.write(staging / "model.safetensors");
    {
        std::ofstream cfg(staging / "config.json", std::ios::binary);
        cfg << w.cfg.to_json().dump(2) << "\n";
        if (!cfg) throw io_error("cannot write config.json into '" + staging.path().string() + "'");
    }
    std::error_code ec;
    std::filesystem::copy_file(vocab_txt, staging / "vocab.txt", ec);
    if (ec) throw io_error("cannot copy '" + vocab_txt.string() + "' into the model directory: " + ec.message());
    staging.commit();
}

/// A pre-trained model read back: encoder weights (pooler / classifier empty) and its MLM head.
struct pretrained_model {
    weights model;  ///< encoder
    mlm_head head;  ///< MLM head
};

/// Reads a directory written by write_pretrained (or any BertForMaskedLM checkpoint with the same
/// names). format_error naming the tensor when one is missing or misshapen.
[[nodiscard]] inline pretrained_model read_pretrained(const std::filesystem::path& dir) {
    pretrained_model m;
    m.model = allocate(read_config((dir / "config.json").string()), false);
    m.head = zero_mlm_head<float>(m.model.cfg.hidden_size, m.model.cfg.vocab_size);
    const auto ckpt = io::checkpoint::open(dir);
    auto load = [&](const parameter& p) {
        if (!ckpt.contains(p.name)) throw format_error(dir.string() + ": missing tensor " + p.name);
        const auto values = ckpt.to_float(p.name);
        if (values.size() != p.size()) {
            throw format_error(dir.string() + ": tensor " + p.name + " has " + std::to_string(values.size()) +
                               " elements (expected " + std::to_string(p.size()) + ")");
        }
        std::copy(values.begin(), values.end(), p.data);
    };
    for (const auto& p : parameters(m.model)) load(p);
    for (const auto& p : mlm_head_parameters(m.head)) load(p);
    return m;
}

}  // namespace prune::bert
