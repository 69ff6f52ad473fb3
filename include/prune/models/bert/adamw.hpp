// prune/models/bert/adamw.hpp: AdamW for the reference BERT as Hugging Face's transformers.AdamW
// (the optimiser of Prasanna et al.'s fine-tuning), the linear learning-rate schedule with
// optional warm-up, and global-norm gradient clipping.
//
// One step, per element (t = 1, 2, ...):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)     (eps outside the correction)
//   p -= lr * weight_decay * p                                          (decoupled, after the update)
// Weight decay skips every parameter whose name contains "bias" or "LayerNorm.weight" (HF's
// no_decay list). Element masks (by parameter name, 1 = kept) are enforced: pruned gradients are
// zeroed before clipping (as torch.nn.utils.prune's weight = orig * mask makes them) and pruned
// weights are set to exactly 0 after every step.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace prune::bert {

/// Element masks by Hugging Face parameter name (the io::element_masks type).
using named_element_masks = std::map<std::string, element_mask>;

/// AdamW hyper-parameters.
struct adamw_options {
    float beta1 = 0.9f;          ///< first-moment decay
    float beta2 = 0.999f;        ///< second-moment decay
    float eps = 1e-8f;           ///< added to sqrt(v)
    float weight_decay = 0.0f;   ///< decoupled decay (not for biases and LayerNorm weights)
};

/// True when HF's no_decay list excludes the parameter from weight decay.
[[nodiscard]] inline bool excluded_from_decay(const std::string& name) {
    return name.find("bias") != std::string::npos || name.find("LayerNorm.weight") != std::string::npos;
}

/// The linear schedule's multiplier at 0-based step `step` of `total` with `warmup` warm-up steps
/// (HF get_linear_schedule_with_warmup): step / warmup during warm-up, then linear decay to 0.
[[nodiscard]] inline double linear_schedule(std::size_t step, std::size_t total, std::size_t warmup) {
    if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<std::size_t>(1, warmup));
    if (total <= warmup) return 0.0;
    return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(total - warmup));
}

/// Checks element masks against the model: every name must be a parameter with the mask's size.
inline void check_masks(weights& w, const named_element_masks& masks) {
    auto params = parameters(w);
    for (const auto& [mask_name, mask] : masks) {
        const std::string& name = mask_name;  // clang 14 cannot capture a structured binding
        auto it = std::find_if(params.begin(), params.end(), [&](const parameter& p) { return p.name == name; });
        if (it == params.end()) {
            // accept names without the "bert." prefix
            it = std::find_if(params.begin(), params.end(), [&](const parameter& p) { return p.name == "bert." + name; });
        }
        if (it == params.end()) {
            throw format_error("element mask '" + name + "' names no parameter of the model");
        }
        if (it->size() != mask.size()) {
            throw shape_error("element mask '" + name + "' has " + std::to_string(mask.size()) +
                              " elements, the parameter " + std::to_string(it->size()));
        }
    }
}

/// The element mask of a parameter (with or without the "bert." prefix), or null.
[[nodiscard]] inline const element_mask* mask_of(const named_element_masks& masks, const std::string& name) {
    auto it = masks.find(name);
    if (it == masks.end() && name.rfind("bert.", 0) == 0) it = masks.find(name.substr(5));
    return it == masks.end() ? nullptr : &it->second;
}

/// Zeroes every pruned element of the masked parameters of `w` (weights or gradients).
inline void zero_pruned_elements(weights& w, const named_element_masks& masks) {
    if (masks.empty()) return;
    for (const auto& p : parameters(w)) {
        if (const element_mask* m = mask_of(masks, p.name)) {
            const auto v = p.values();
            PRUNE_ASSERT(m->size() == v.size());
            for (std::size_t i = 0; i < v.size(); ++i) {
                if (!m->kept(i)) v[i] = 0.0f;
            }
        }
    }
}

/// Scales the gradients so that their global L2 norm is at most max_norm (torch's
/// clip_grad_norm_: coefficient max_norm / (norm + 1e-6) when below 1). Returns the norm before.
inline double clip_gradient_norm(weights& grads, double max_norm) {
    double squares = 0.0;
    for (const auto& p : parameters(grads))
        for (float g : p.values()) squares += static_cast<double>(g) * static_cast<double>(g);
    const double norm = std::sqrt(squares);
    const double coefficient = max_norm / (norm + 1e-6);
    if (coefficient < 1.0) {
        for (const auto& p : parameters(grads))
            for (float& g : p.values()) g = static_cast<float>(static_cast<double>(g) * coefficient);
    }
    return norm;
}

/// AdamW state for one model (moments in the order of parameters(w)).
class adamw {
public:
    /// State for the parameters of `w` (shapes fixed from now on).
    adamw(weights& w, adamw_options options) : options_(options) {
        for (const auto& p : parameters(w)) {
            names_.push_back(p.name);
            first_.emplace_back(p.size(), 0.0f);
            second_.emplace_back(p.size(), 0.0f);
        }
    }

    /// Steps taken.
    [[nodiscard]] std::size_t steps() const noexcept { return step_; }

    /// One update of `w` with gradients `grads` (same shapes) at learning rate lr.
    /// Throws shape_error when the parameters changed since construction.
    void step(weights& w, weights& grads, double lr) {
        auto params = parameters(w);
        auto gradients = parameters(grads);
        if (params.size() != names_.size() || gradients.size() != names_.size()) {
            throw shape_error("adamw::step: " + std::to_string(params.size()) + " parameters / " +
                              std::to_string(gradients.size()) + " gradients, the optimiser has " +
                              std::to_string(names_.size()));
        }
        ++step_;
        const double b1 = options_.beta1;
        const double b2 = options_.beta2;
        const double correction1 = 1.0 - std::pow(b1, static_cast<double>(step_));
        const double correction2 = 1.0 - std::pow(b2, static_cast<double>(step_));
        const auto step_size = static_cast<float>(lr * std::sqrt(correction2) / correction1);
        const auto fb1 = static_cast<float>(b1);
        const auto fb2 = static_cast<float>(b2);
        for (std::size_t k = 0; k < params.size(); ++k) {
            if (params[k].size() != first_[k].size() || gradients[k].size() != first_[k].size()) {
                throw shape_error("adamw::step: parameter " + params[k].name + " changed shape");
            }
            const float decay = excluded_from_decay(names_[k]) ? 0.0f : static_cast<float>(lr * options_.weight_decay);
            float* p = params[k].data;
            const float* g = gradients[k].data;
            float* m = first_[k].data();
            float* v = second_[k].data();
            const std::size_t n = first_[k].size();
            for (std::size_t i = 0; i < n; ++i) {
                m[i] = fb1 * m[i] + (1.0f - fb1) * g[i];
                v[i] = fb2 * v[i] + (1.0f - fb2) * g[i] * g[i];
                p[i] -= step_size * m[i] / (std::sqrt(v[i]) + options_.eps);
                p[i] -= decay * p[i];
            }
        }
    }

private:
    adamw_options options_;
    std::vector<std::string> names_;
    std::vector<std::vector<float>> first_, second_;
    std::size_t step_ = 0;
};

}  // namespace prune::bert
