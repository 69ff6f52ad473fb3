// prune/models/bert/finetune.hpp: fine-tuning of the reference BERT as Prasanna et al. (Hugging
// Face's run_glue): AdamW (<prune/models/bert/adamw.hpp>), linear decay with optional warm-up,
// gradient clipping at a global norm, mini-batches drawn in a seeded random order each epoch,
// dropout in training mode.
//
// Structure masks are enforced by gates at 0 (heads on their attention probabilities, MLPs on
// their output): this computes exactly what the physically removed model computes, and the
// gated-off parameters receive zero gradients. Element masks keep pruned weights at exactly 0
// through every step. Everything is a function of the seed: two runs with the same inputs give
// bit-identical weights for a fixed thread count (products are split into row blocks by thread).
// Also: evaluation (the task metric: accuracy, or Pearson for regression, unless asked for another)
// and the rewinding helper.
#pragma once

#include <prune/models/bert/adamw.hpp>
#include <prune/models/bert/backward.hpp>
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/importance.hpp>
#include <prune/models/bert/metrics.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/detail/random.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <span>
#include <string>
#include <vector>

namespace prune::bert {

/// Fine-tuning hyper-parameters (Prasanna et al.'s defaults).
struct finetune_options {
    int epochs = 3;                  ///< passes over the training set
    double learning_rate = 2e-5;     ///< peak learning rate (> 0)
    double warmup_fraction = 0.0;    ///< fraction of the steps spent warming up linearly
    double max_grad_norm = 1.0;      ///< global-norm clipping (<= 0: off)
    std::size_t batch_size = 32;     ///< sequences per step
    /// AdamW settings: betas 0.9 / 0.999, eps 1e-8, no weight decay, as the float constants
    /// fine-tuning has always used (0.9f is not the double 0.9: the same bits as before the
    /// optimiser moved to prune/train/adamw.hpp).
    adamw_options optimizer{0.9f, 0.999f, 1e-8f, 0.0f};
    bool dropout = true;             ///< dropout in training mode
    float hidden_dropout = 0.1f;     ///< hidden_dropout_prob
    float attention_dropout = 0.1f;  ///< attention_probs_dropout_prob
    std::uint64_t seed = 42;         ///< order of the examples and dropout
    int threads = 0;                 ///< threads of the training pass (0 = every core)
};

/// What fine-tuning did.
struct finetune_report {
    std::size_t steps = 0;                 ///< optimiser steps taken
    std::vector<double> epoch_loss;        ///< mean training loss per epoch
    std::vector<double> epoch_metric;      ///< the callback's metric after each epoch (if any)
};

/// Checks that every label is a class in [0, num_labels) (or any finite value for regression);
/// throws value_error naming the first bad example.
inline void check_labels(std::span<const labeled_sequence> data, int num_labels, const std::string& where) {
    for (std::size_t i = 0; i < data.size(); ++i) {
        const double y = data[i].label;
        if (num_labels == 1 ? !std::isfinite(y)
                            : (y != std::floor(y) || y < 0 || y >= static_cast<double>(num_labels))) {
            throw value_error(where + ": example " + std::to_string(i) + " has label " + std::to_string(y) +
                              (num_labels == 1 ? " (expected a finite value)"
                                               : " outside [0, " + std::to_string(num_labels) + ")"));
        }
    }
}

namespace detail {
/// Fills a packed batch and its labels from data[order[begin..end)].
inline void fill_batch(std::span<const labeled_sequence> data, std::span<const std::size_t> order, std::size_t begin,
                       std::size_t end, bool regression, packed_batch& batch, std::vector<int>& classes,
                       std::vector<float>& values) {
    batch.clear();
    classes.clear();
    values.clear();
    for (std::size_t i = begin; i < end; ++i) {
        const labeled_sequence& s = data[order[i]];
        batch.add(s.input_ids, s.token_type_ids, s.attention_mask);
        if (regression) values.push_back(static_cast<float>(s.label));
        else classes.push_back(static_cast<int>(s.label));
    }
}
}  // namespace detail

/// The model's score on `data` under a structure mask, by the inference path (prune/models/bert/
/// forward.hpp's classify: packed batches, the last layer for the [CLS] rows only, no dropout),
/// on `threads` threads (0 = every core). `metric`: a prune/models/bert/metrics.hpp name resolved
/// by metrics::resolve ("auto": accuracy for classification, Pearson for regression; accuracy,
/// mcc, f1, pearson, spearman), value_error when it does not fit the model. Higher is better.
[[nodiscard]] inline double evaluate(const weights& w, std::span<const labeled_sequence> data, const structure_mask& mask,
                                     std::size_t batch_size = 64, int threads = 0, const std::string& metric = "auto") {
    if (data.empty()) throw value_error("evaluate: empty data set");
    if (batch_size == 0) throw value_error("evaluate: batch size 0 (expected > 0)");
    check_labels(data, w.cfg.num_labels, "evaluate");
    const std::string name = metrics::resolve(metric, w.cfg.num_labels);
    const gates gate = gates::from_mask(mask, w);
    forward_options fo;
    fo.gate = &gate;
    const bool regression = w.cfg.num_labels == 1;
    workspace ws(threads);
    packed_batch batch;
    std::vector<int> classes, predicted_classes, true_classes;
    std::vector<float> values;
    std::vector<double> predicted_values, true_values;
    for (const labeled_sequence& s : data) {  // the truth, in data order
        if (regression) true_values.push_back(static_cast<float>(s.label));  // the model trains on float targets
        else true_classes.push_back(static_cast<int>(s.label));
    }
    std::vector<std::size_t> order(data.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    for (std::size_t start = 0; start < data.size(); start += batch_size) {
        const std::size_t end = std::min(data.size(), start + batch_size);
        detail::fill_batch(data, order, start, end, regression, batch, classes, values);
        const auto logits = classify(w, batch, ws, fo);
        for (Eigen::Index b = 0; b < logits.rows(); ++b) {
            if (regression) {
                predicted_values.push_back(static_cast<double>(logits(b, 0)));
            } else {
                Eigen::Index best = 0;
                logits.row(b).maxCoeff(&best);
                predicted_classes.push_back(static_cast<int>(best));
            }
        }
    }
    return regression ? metrics::score(name, predicted_values, true_values)
                      : metrics::score(name, predicted_classes, true_classes, w.cfg.num_labels);
}

/// Fine-tunes `w` in place on `train` under a structure mask (gates) and element masks.
/// `after_epoch(epoch, w)`, when set, returns a metric recorded in the report.
/// Throws value_error for lr <= 0, a zero batch size, bad labels; shape_error / format_error for masks.
inline finetune_report finetune(weights& w, std::span<const labeled_sequence> train, const structure_mask& mask,
                                const named_element_masks& element_masks, const finetune_options& options,
                                const std::function<double(int, const weights&)>& after_epoch = {}) {
    if (!(options.learning_rate > 0.0) || !std::isfinite(options.learning_rate)) {
        throw value_error("finetune: learning rate " + number_text(options.learning_rate) + " (expected > 0)");
    }
    if (options.batch_size == 0 || options.epochs < 0) {
        throw value_error("finetune: batch size " + std::to_string(options.batch_size) + " / epochs " +
                          std::to_string(options.epochs) + " (expected > 0 / >= 0)");
    }
    if (!(options.warmup_fraction >= 0.0 && options.warmup_fraction <= 1.0)) {
        throw value_error("finetune: warm-up fraction " + number_text(options.warmup_fraction) + " (expected [0, 1])");
    }
    if (train.empty()) throw value_error("finetune: empty training set");
    check_labels(train, w.cfg.num_labels, "finetune");
    check_masks(w, element_masks);
    const gate_values gates = gates_from_mask(mask, w);
    zero_pruned_elements(w, element_masks);

    const bool regression = w.cfg.num_labels == 1;
    const std::size_t per_epoch = (train.size() + options.batch_size - 1) / options.batch_size;
    const std::size_t total = per_epoch * static_cast<std::size_t>(options.epochs);
    const auto warmup = static_cast<std::size_t>(std::floor(options.warmup_fraction * static_cast<double>(total)));
    adamw optimizer(w, options.optimizer);
    weights grads = zeros_like(w);
    training_workspace<float> ws(options.threads);
    packed_batch batch;
    std::vector<int> classes;
    std::vector<float> values;
    std::vector<std::size_t> order(train.size());
    prune::detail::splitmix64 order_rng(options.seed, 11);
    finetune_report report;
    for (int epoch = 0; epoch < options.epochs; ++epoch) {
        std::iota(order.begin(), order.end(), std::size_t{0});
        for (std::size_t i = order.size(); i > 1; --i) {
            std::swap(order[i - 1], order[static_cast<std::size_t>(order_rng.below(i))]);
        }
        double loss_sum = 0.0;
        for (std::size_t start = 0; start < train.size(); start += options.batch_size) {
            const std::size_t end = std::min(train.size(), start + options.batch_size);
            detail::fill_batch(train, order, start, end, regression, batch, classes, values);
            batch_labels labels;
            if (regression) labels.values = values; else labels.classes = classes;
            for_each_tensor(grads, [](auto& t) { t.setZero(); });
            training_options o;
            o.dropout = options.dropout;
            o.hidden_dropout = options.hidden_dropout;
            o.attention_dropout = options.attention_dropout;
            o.seed = options.seed * 0x9E3779B97F4A7C15ull + report.steps + 1;
            const double loss = train_pass(w, batch, labels, &gates, ws, &grads, o);
            train::require_finite_loss(report.steps + 1, loss);
            loss_sum += loss;
            zero_pruned_elements(grads, element_masks);
            if (options.max_grad_norm > 0.0) clip_gradient_norm(grads, options.max_grad_norm);
            const double lr = options.learning_rate * train::linear_warmup_schedule(report.steps, total, warmup);
            optimizer.step(w, grads, lr);
            zero_pruned_elements(w, element_masks);
            ++report.steps;
        }
        report.epoch_loss.push_back(loss_sum / static_cast<double>(per_epoch));
        if (after_epoch) report.epoch_metric.push_back(after_epoch(epoch, w));
    }
    return report;
}

/// Rewinding: the pre-trained weights with a fresh classifier head (pooler kept when present,
/// classifier N(0, 0.02), bias 0, `num_labels` outputs) and the element masks applied, ready to be
/// re-fine-tuned under the same masks. Structure masks are applied when fine-tuning (gates).
[[nodiscard]] inline weights rewind(const weights& pretrained, int num_labels, const named_element_masks& element_masks,
                                    std::uint64_t seed) {
    weights w = pretrained;
    reset_classifier(w, num_labels, seed);
    check_masks(w, element_masks);
    zero_pruned_elements(w, element_masks);
    return w;
}

}  // namespace prune::bert
