// prune/models/bert/adamw.hpp: fine-tuning's optimiser pieces on the reference BERT's weights:
// the library's AdamW, schedule and clipping (<prune/train/adamw.hpp>,
// <prune/train/lr_schedule.hpp>) applied to `weights` + gradients of the same shape, and
// element masks by parameter name.
//
// Element masks (by parameter name, 1 = kept) are enforced by the fine-tuning loop: pruned
// gradients are zeroed before clipping (as torch.nn.utils.prune's weight = orig * mask makes
// them) and pruned weights are set to exactly 0 after every step.
#pragma once

#include <prune/nn/eigen.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>
#include <prune/train/adamw.hpp>
#include <prune/train/lr_schedule.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace prune::bert {

/// Element masks by Hugging Face parameter name (the io::element_masks type).
using named_element_masks = std::map<std::string, element_mask>;

using train::adamw_options;
using train::excluded_from_decay;

/// Hugging Face's linear warm-up schedule (<prune/train/lr_schedule.hpp>).
[[nodiscard]] inline double linear_schedule(std::size_t step, std::size_t total, std::size_t warmup) {
    return train::linear_warmup_schedule(step, total, warmup);
}

/// The parameters of `w` paired with the gradients in `grads` (same names, same sizes, in
/// parameters() order). shape_error when the two do not have the same parameters.
[[nodiscard]] inline std::vector<train::trainable> trainables(weights& w, weights& grads) {
    auto values = parameters(w);
    auto gradients = parameters(grads);
    if (values.size() != gradients.size()) {
        throw shape_error("bert::trainables: " + std::to_string(values.size()) + " parameters but " +
                          std::to_string(gradients.size()) + " gradients");
    }
    std::vector<train::trainable> out;
    out.reserve(values.size());
    for (std::size_t k = 0; k < values.size(); ++k) {
        if (values[k].name != gradients[k].name || values[k].size() != gradients[k].size()) {
            throw shape_error("bert::trainables: parameter " + values[k].name + " (" + std::to_string(values[k].size()) +
                              " elements) against gradient " + gradients[k].name + " (" +
                              std::to_string(gradients[k].size()) + ")");
        }
        out.push_back({values[k].name, values[k].values(), gradients[k].values()});
    }
    return out;
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

/// Scales the gradients so that their global L2 norm is at most max_norm (train::
/// clip_gradient_norm, torch's clip_grad_norm_). Returns the norm before.
inline double clip_gradient_norm(weights& grads, double max_norm) {
    std::vector<std::span<float>> gradients;
    for (const auto& p : parameters(grads)) gradients.push_back(p.values());
    return train::clip_gradient_norm(std::span<const std::span<float>>(gradients), max_norm);
}

/// train::adamw over the parameters of one model.
class adamw {
public:
    /// State for the parameters of `w` (shapes fixed from now on).
    adamw(weights& w, adamw_options options) : optimizer_(trainables(w, w), options) {}

    /// Steps taken.
    [[nodiscard]] std::size_t steps() const noexcept { return optimizer_.steps(); }

    /// One update of `w` with gradients `grads` (same shapes) at learning rate lr.
    /// Throws shape_error when the parameters changed since construction.
    void step(weights& w, weights& grads, double lr) { optimizer_.step(trainables(w, grads), lr); }

private:
    train::adamw optimizer_;
};

}  // namespace prune::bert
