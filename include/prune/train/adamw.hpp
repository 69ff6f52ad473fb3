// prune/train/adamw.hpp: the optimiser and gradient clipping of every training loop, on
// named float tensors (model-agnostic: a model lists its parameters and gradients as
// `trainable`s).
//
// AdamW in Hugging Face's transformers.AdamW form (the optimiser of BERT fine-tuning and
// pre-training recipes). One step, per element (t = 1, 2, ...):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)     (eps outside the correction)
//   p -= lr * weight_decay * p                                          (decoupled, after the update)
// torch.optim.AdamW differs in two places: its eps is added after the correction
// (sqrt(v) / sqrt(1 - b2^t) + eps) and its decay multiplies the weights before the update.
// With eps_t = eps / sqrt(1 - b2^t) and its decay applied after the step the two agree:
// tests/train/test_train.cpp checks several steps against torch.optim.AdamW that way.
// Weight decay skips every tensor whose name contains "bias" or "LayerNorm.weight" (HF's
// no_decay list) or "norm.weight" (Llama's RMSNorm scales: input_layernorm,
// post_attention_layernorm, model.norm; the HF Trainer leaves every norm layer undecayed).
//
// clip_gradient_norm is torch.nn.utils.clip_grad_norm_: the global L2 norm over every
// gradient; when max_norm / (norm + 1e-6) < 1 every gradient is scaled by it.
#pragma once

#include <prune/error.hpp>

#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prune::train {

/// One tensor being trained: its name (decides weight decay), its values and its gradient.
struct trainable {
    std::string name;          ///< e.g. "bert.encoder.layer.3.attention.self.query.weight"
    std::span<float> values;   ///< the parameter, updated in place
    std::span<float> gradient; ///< its gradient (same size), read (and scaled by clipping)
};

/// AdamW hyper-parameters.
struct adamw_options {
    double beta1 = 0.9;          ///< first-moment decay
    double beta2 = 0.999;        ///< second-moment decay
    double eps = 1e-8;           ///< added to sqrt(v)
    double weight_decay = 0.0;   ///< decoupled decay (not for biases and LayerNorm weights)
};

/// True when HF's no_decay list (or, for Llama, its norm scales) excludes the tensor from weight decay.
[[nodiscard]] inline bool excluded_from_decay(std::string_view name) {
    return name.find("bias") != std::string_view::npos || name.find("LayerNorm.weight") != std::string_view::npos ||
           name.find("norm.weight") != std::string_view::npos;
}

/// Scales the gradients so that their global L2 norm (accumulated in double) is at most
/// max_norm, as torch's clip_grad_norm_ (coefficient max_norm / (norm + 1e-6) when below 1;
/// max_norm <= 0: no clipping). Returns the norm before clipping.
inline double clip_gradient_norm(std::span<const std::span<float>> gradients, double max_norm) {
    double squares = 0.0;
    for (const auto& g : gradients)
        for (float x : g) squares += static_cast<double>(x) * static_cast<double>(x);
    const double norm = std::sqrt(squares);
    const double coefficient = max_norm / (norm + 1e-6);
    if (max_norm > 0.0 && coefficient < 1.0) {
        for (const auto& g : gradients)
            for (float& x : g) x = static_cast<float>(static_cast<double>(x) * coefficient);
    }
    return norm;
}

/// clip_gradient_norm over the gradients of `params`.
inline double clip_gradient_norm(std::span<const trainable> params, double max_norm) {
    std::vector<std::span<float>> gradients;
    gradients.reserve(params.size());
    for (const auto& p : params) gradients.push_back(p.gradient);
    return clip_gradient_norm(std::span<const std::span<float>>(gradients), max_norm);
}

/// value_error naming the training step (counted from 1) when its loss is NaN or infinite:
/// a training loop calls it before updating, so a diverged run stops where it diverged.
inline void require_finite_loss(std::size_t step, double loss) {
    if (!std::isfinite(loss)) {
        throw value_error("training step " + std::to_string(step) + ": the loss is " +
                          (std::isnan(loss) ? "NaN" : loss > 0 ? "infinite" : "-infinite") +
                          " (expected a finite loss: training diverged; a lower learning rate may help)");
    }
}

/// AdamW state for a fixed list of tensors (moments in the order given at construction).
class adamw {
public:
    /// Zero moments for each tensor of `params` (their count and sizes are fixed from now on).
    adamw(std::span<const trainable> params, adamw_options options) : options_(options) {
        for (const auto& p : params) {
            decays_.push_back(!excluded_from_decay(p.name));
            first_.emplace_back(p.values.size(), 0.0f);
            second_.emplace_back(p.values.size(), 0.0f);
        }
    }

    /// Steps taken.
    [[nodiscard]] std::size_t steps() const noexcept { return step_; }

    /// One update of every tensor at learning rate lr. shape_error when the tensors are not
    /// those (count, sizes) of the construction; value_error, before anything is updated, when
    /// a gradient holds NaN or an infinity (the step and the first such tensor named), so a
    /// diverged run stops where the non-finite value first appears, never writing it into the weights.
    void step(std::span<const trainable> params, double lr) {
        check(params);
        refuse_non_finite_gradients(params);
        ++step_;
        const double correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
        const double correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
        const auto step_size = static_cast<float>(lr * std::sqrt(correction2) / correction1);
        const auto b1 = static_cast<float>(options_.beta1);
        const auto b2 = static_cast<float>(options_.beta2);
        const auto eps = static_cast<float>(options_.eps);
        for (std::size_t k = 0; k < params.size(); ++k) {
            const float decay = decays_[k] ? static_cast<float>(lr * options_.weight_decay) : 0.0f;
            float* p = params[k].values.data();
            const float* g = params[k].gradient.data();
            float* m = first_[k].data();
            float* v = second_[k].data();
            for (std::size_t i = 0, n = first_[k].size(); i < n; ++i) {
                m[i] = b1 * m[i] + (1.0f - b1) * g[i];
                v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
                p[i] -= step_size * m[i] / (std::sqrt(v[i]) + eps);
                p[i] -= decay * p[i];
            }
        }
    }

private:
    void check(std::span<const trainable> params) const {
        if (params.size() != first_.size()) {
            throw shape_error("adamw::step: " + std::to_string(params.size()) + " tensors, the optimiser has " +
                              std::to_string(first_.size()));
        }
        for (std::size_t k = 0; k < params.size(); ++k) {
            if (params[k].values.size() != first_[k].size() || params[k].gradient.size() != first_[k].size()) {
                throw shape_error("adamw::step: tensor " + params[k].name + " has " +
                                  std::to_string(params[k].values.size()) + " values / " +
                                  std::to_string(params[k].gradient.size()) + " gradients (expected " +
                                  std::to_string(first_[k].size()) + ")");
            }
        }
    }

    void refuse_non_finite_gradients(std::span<const trainable> params) const {
        for (const auto& p : params) {
            for (const float g : p.gradient) {
                if (!std::isfinite(g)) {
                    throw value_error("training step " + std::to_string(step_ + 1) + ": the gradient of '" + p.name +
                                      "' holds " + (std::isnan(g) ? "NaN" : "an infinity") +
                                      " (expected finite values: the loss diverged; a lower learning rate may help)");
                }
            }
        }
    }

    adamw_options options_;
    std::vector<bool> decays_;
    std::vector<std::vector<float>> first_, second_;
    std::size_t step_ = 0;
};

}  // namespace prune::train
