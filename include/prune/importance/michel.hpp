// prune/importance/michel.hpp: Michel et al.'s head importance, extended to MLPs, as an
// accumulator that any trainer can feed.
//
// I[l][h] = E_x |dL(x) / dxi[l][h]|, xi the head gate (it multiplies the head's attention
// probabilities; equivalently its context vector) and, likewise, one gate per MLP.
// A trainer feeds one *unit* at a time: an example (`absolute_value::per_example`, Michel's
// definition, the default) or a batch with its batch-mean loss (`per_batch`, as Hugging
// Face and Prasanna et al.). Inside a unit it hands either the gate gradients directly
// (`add_head_gradient`, `add_mlp_gradient`, or `add_unit` with whole vectors) or, for a
// head, its context output with the gradient of the loss with respect to it
// (`add_head_context`: dL/dxi = sum over tokens of <ctx_h(t), dL/dctx_h(t)>, where ctx is
// the head's context with the gate at 1 -- for a gated-off head pass the ungated P V), then
// `commit_unit(tokens)` takes the absolute values and adds them to the sums.
//
// `absolute_value::cumulative` reproduces the original code's quirk: the gate gradient is
// never zeroed between batches, so each batch adds |running total of gradients|.
//
// The state is (sum, units, tokens): `merge` adds another worker's state (or `merge_state` its
// state() as doubles, sent between processes), so data-parallel workers reduce exactly (except for the cumulative quirk, whose running totals are per
// worker and which `merge` refuses). `scores(normalization)` applies, each optional and in
// this order: division by the number of non-padding tokens (otherwise by the number of
// units: the raw expectation), per-layer L2 over heads, global min-max to [0, 1] (heads and
// MLPs separately; MLPs have no per-layer step). No allocation happens per unit.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace prune::importance {

/// Where the absolute value of the gate gradient is taken.
enum class absolute_value {
    per_example,  ///< |dL(x)/dxi| per example, L(x) the example's own loss (Michel et al.; default)
    per_batch,    ///< |dL(batch)/dxi| per batch, batch-mean loss (Hugging Face, Prasanna et al.)
    cumulative,   ///< the original code's quirk: |running sum of batch gradients|, added every batch
};

/// The name of an absolute-value mode ("per-example", "per-batch", "cumulative").
[[nodiscard]] inline const char* to_string(absolute_value mode) noexcept {
    switch (mode) {
        case absolute_value::per_example: return "per-example";
        case absolute_value::per_batch: return "per-batch";
        case absolute_value::cumulative: return "cumulative";
    }
    return "?";
}

/// Parses "per-example", "per-batch" or "cumulative"; throws value_error otherwise.
[[nodiscard]] inline absolute_value parse_absolute_value(const std::string& name) {
    if (name == "per-example") return absolute_value::per_example;
    if (name == "per-batch") return absolute_value::per_batch;
    if (name == "cumulative") return absolute_value::cumulative;
    throw value_error("prune::importance: absolute-value mode '" + name +
                      "' (expected per-example, per-batch or cumulative)");
}

/// Which normalisations `scores` applies (each optional, applied in the declared order).
struct normalization {
    bool by_tokens = false;  ///< divide the sums by the number of non-padding tokens (else by the unit count)
    bool per_layer = false;  ///< heads: I / ((sum_h I^2)^(1/2) + 1e-20) within each layer
    bool global = false;     ///< min-max to [0, 1] over all heads, and separately over all MLPs

    /// Parses "none", "layer", "global" or "layer+global" (optionally prefixed "tokens+"); throws value_error.
    [[nodiscard]] static normalization parse(const std::string& name) {
        normalization result;
        std::string rest = name;
        if (rest.rfind("tokens+", 0) == 0) {
            result.by_tokens = true;
            rest = rest.substr(7);
        } else if (rest == "tokens") {
            result.by_tokens = true;
            return result;
        }
        if (rest == "none") return result;
        if (rest == "layer") { result.per_layer = true; return result; }
        if (rest == "global") { result.global = true; return result; }
        if (rest == "layer+global") { result.per_layer = result.global = true; return result; }
        throw value_error("prune::importance: normalisation '" + name +
                          "' (expected none, layer, global or layer+global, optionally prefixed tokens+)");
    }
};

/// The epsilon added to each layer's L2 norm before dividing (as Hugging Face's bertology code).
inline constexpr double layer_norm_epsilon = 1e-20;

/// Importance scores: heads[l][h] and mlps[l].
struct michel_scores {
    std::vector<std::vector<double>> heads;  ///< layers x heads (ragged when heads were removed)
    std::vector<double> mlps;                ///< one per layer
};

namespace detail {
/// value_error when a score to normalise is NaN: min-max and L2 scaling would turn it, or the
/// whole set, into plausible numbers (NaN compares false, so it used to become 0).
inline void refuse_nan_scores(std::span<const double> values, const char* what) {
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (std::isnan(values[i])) {
            throw value_error(std::string("prune::importance: ") + what + " score " + std::to_string(i) +
                              " is NaN (expected numbers: a NaN gradient or activation reached the importance)");
        }
    }
}
}  // namespace detail

/// Divides each layer's head scores by their L2 norm + 1e-20 (a layer of zeros stays zero).
/// Throws value_error when a score is NaN.
inline void normalize_per_layer(std::vector<std::vector<double>>& heads) {
    for (const auto& row : heads) detail::refuse_nan_scores(row, "head");
    for (auto& row : heads) {
        double squares = 0.0;
        for (double v : row) squares += v * v;
        const double denominator = std::sqrt(squares) + layer_norm_epsilon;
        for (double& v : row) v /= denominator;
    }
}

/// Min-max scales values to [0, 1]; when all are equal (max == min) every value becomes 0.
/// Throws value_error when a value is NaN.
inline void normalize_min_max(std::span<double> values) {
    detail::refuse_nan_scores(values, "MLP");
    if (values.empty()) return;
    const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
    const double low = *lo;
    const double range = *hi - *lo;
    for (double& v : values) v = range > 0.0 ? (v - low) / range : 0.0;
}

/// Min-max scales all head scores together to [0, 1] (max == min gives 0). Throws value_error
/// when a score is NaN.
inline void normalize_min_max(std::vector<std::vector<double>>& heads) {
    for (const auto& row : heads) detail::refuse_nan_scores(row, "head");
    double low = 0.0;
    double high = 0.0;
    bool first = true;
    for (const auto& row : heads) {
        for (double v : row) {
            low = first ? v : std::min(low, v);
            high = first ? v : std::max(high, v);
            first = false;
        }
    }
    const double range = high - low;
    for (auto& row : heads) {
        for (double& v : row) v = range > 0.0 ? (v - low) / range : 0.0;
    }
}

/// Accumulates E|dL/dxi| for head and MLP gates; mergeable (sum, unit count, token count).
class michel_accumulator {
public:
    /// An accumulator for heads_per_layer[l] heads in layer l and one MLP per layer.
    explicit michel_accumulator(std::span<const std::size_t> heads_per_layer,
                                absolute_value mode = absolute_value::per_example)
        : mode_(mode) {
        offsets_.reserve(heads_per_layer.size() + 1);
        offsets_.push_back(0);
        for (std::size_t h : heads_per_layer) offsets_.push_back(offsets_.back() + h);
        const std::size_t heads = offsets_.back();
        const std::size_t layers = heads_per_layer.size();
        head_sum_.assign(heads, 0.0);
        head_pending_.assign(heads, 0.0);
        head_running_.assign(heads, 0.0);
        mlp_sum_.assign(layers, 0.0);
        mlp_pending_.assign(layers, 0.0);
        mlp_running_.assign(layers, 0.0);
    }

    /// An accumulator with the layout of a structure mask (its heads' layers and counts).
    explicit michel_accumulator(const structure_mask& layout, absolute_value mode = absolute_value::per_example)
        : michel_accumulator(counts_of(layout.heads), mode) {}

    /// A uniform accumulator: `layers` layers of `heads` heads.
    [[nodiscard]] static michel_accumulator uniform(std::size_t layers, std::size_t heads,
                                                    absolute_value mode = absolute_value::per_example) {
        const std::vector<std::size_t> counts(layers, heads);
        return michel_accumulator(counts, mode);
    }

    /// The absolute-value mode.
    [[nodiscard]] absolute_value mode() const noexcept { return mode_; }
    /// The number of layers.
    [[nodiscard]] std::size_t layers() const noexcept { return offsets_.size() - 1; }
    /// The number of heads in layer l.
    [[nodiscard]] std::size_t heads(std::size_t l) const noexcept {
        PRUNE_ASSERT(l < layers());
        return offsets_[l + 1] - offsets_[l];
    }
    /// The number of heads in all layers.
    [[nodiscard]] std::size_t total_heads() const noexcept { return offsets_.back(); }
    /// The number of committed units (examples or batches).
    [[nodiscard]] std::size_t units() const noexcept { return units_; }
    /// The number of non-padding tokens over all committed units.
    [[nodiscard]] double tokens() const noexcept { return tokens_; }

    /// Adds g to the current unit's gradient of head h of layer l.
    void add_head_gradient(std::size_t l, std::size_t h, double g) {
        check_head(l, h, "add_head_gradient");
        head_pending_[offsets_[l] + h] += g;
    }

    /// Adds g to the current unit's gradient of the MLP gate of layer l.
    void add_mlp_gradient(std::size_t l, double g) {
        if (l >= layers()) {
            throw shape_error("prune::importance::michel_accumulator::add_mlp_gradient: layer " + std::to_string(l) +
                              " of " + std::to_string(layers()));
        }
        mlp_pending_[l] += g;
    }

    /// Adds sum_i ctx[i] * grad_ctx[i] (a head's context over the unit's tokens and its gradient,
    /// in any common order) to the current unit's gradient of head h of layer l. Context and
    /// gradient: any adapted tensors (std::vector, std::span, Eigen, xtensor, torch, a view),
    /// read in logical (row-major) order.
    template <class Context, class Gradient>
    void add_head_context(std::size_t l, std::size_t h, const Context& context, const Gradient& grad_context) {
        check_head(l, h, "add_head_context");
        read_pair(context, grad_context, [&](const auto& ctx, const auto& grad) {
            if (ctx.size() != grad.size()) {
                throw shape_error("prune::importance::michel_accumulator::add_head_context: context of " +
                                  std::to_string(ctx.size()) + " values but gradient of " +
                                  std::to_string(grad.size()));
            }
            head_pending_[offsets_[l] + h] += dot(ctx, grad, 0, ctx.size());
        });
    }

    /// Adds, for every head of layer l, the dot product of its slice of a [tokens, heads * head_dim]
    /// context matrix (logical row-major order; any adapted tensors) with the same slice of its gradient.
    template <class Context, class Gradient>
    void add_layer_context(std::size_t l, const Context& context, const Gradient& grad_context, std::size_t head_dim) {
        if (l >= layers()) {
            throw shape_error("prune::importance::michel_accumulator::add_layer_context: layer " +
                              std::to_string(l) + " of " + std::to_string(layers()));
        }
        read_pair(context, grad_context, [&](const auto& ctx, const auto& grad) {
            const std::size_t width = heads(l) * head_dim;
            if (head_dim == 0 || ctx.size() != grad.size() || ctx.size() % width != 0) {
                throw shape_error("prune::importance::michel_accumulator::add_layer_context: " +
                                  std::to_string(ctx.size()) + " context and " + std::to_string(grad.size()) +
                                  " gradient values for rows of " + std::to_string(heads(l)) + " heads x " +
                                  std::to_string(head_dim));
            }
            for (std::size_t t = 0; t < ctx.size() / width; ++t) {
                for (std::size_t h = 0; h < heads(l); ++h) {
                    head_pending_[offsets_[l] + h] += dot(ctx, grad, t * width + h * head_dim, head_dim);
                }
            }
        });
    }

    /// Ends the current unit (an example, or a batch): takes absolute values (per the mode), adds
    /// them to the sums, counts the unit and its non-padding tokens, and clears the pending gradients.
    void commit_unit(double tokens) {
        if (!(tokens >= 0.0)) {
            throw value_error("prune::importance::michel_accumulator::commit_unit: token count " +
                              number_text(tokens) + " (expected >= 0)");
        }
        commit(head_pending_, head_running_, head_sum_);
        commit(mlp_pending_, mlp_running_, mlp_sum_);
        ++units_;
        tokens_ += tokens;
    }

    /// Feeds one whole unit: flat head gradients (layers in order), one MLP gradient per layer, its
    /// tokens. Gradients: any adapted tensors (std::vector, std::span, Eigen, xtensor, torch, a
    /// view; e.g. a [layers, heads] gate gradient), read in logical (row-major) order.
    template <class HeadGradients, class MlpGradients>
    void add_unit(const HeadGradients& head_gradients, const MlpGradients& mlp_gradients, double tokens) {
        read_pair(head_gradients, mlp_gradients, [&](const auto& heads_view, const auto& mlps_view) {
            if (heads_view.size() != total_heads() || mlps_view.size() != layers()) {
                throw shape_error("prune::importance::michel_accumulator::add_unit: " +
                                  std::to_string(heads_view.size()) + " head and " +
                                  std::to_string(mlps_view.size()) + " MLP gradients (expected " +
                                  std::to_string(total_heads()) + " and " + std::to_string(layers()) + ")");
            }
            for (std::size_t i = 0; i < heads_view.size(); ++i) head_pending_[i] += value_at(heads_view, i);
            for (std::size_t i = 0; i < mlps_view.size(); ++i) mlp_pending_[i] += value_at(mlps_view, i);
        });
        commit_unit(tokens);
    }

    /// Adds another worker's sums and counts; throws shape_error on a different layout and
    /// value_error for different modes or the cumulative mode (its running totals do not add up).
    michel_accumulator& merge(const michel_accumulator& other) {
        if (offsets_ != other.offsets_) {
            throw shape_error("prune::importance::michel_accumulator::merge: different layers or heads per layer");
        }
        if (mode_ != other.mode_ || mode_ == absolute_value::cumulative) {
            throw value_error(std::string("prune::importance::michel_accumulator::merge: modes ") + to_string(mode_) +
                              " and " + to_string(other.mode_) + " (expected equal, and not cumulative)");
        }
        for (std::size_t i = 0; i < head_sum_.size(); ++i) head_sum_[i] += other.head_sum_[i];
        for (std::size_t i = 0; i < mlp_sum_.size(); ++i) mlp_sum_[i] += other.mlp_sum_[i];
        units_ += other.units_;
        tokens_ += other.tokens_;
        return *this;
    }

    /// The mergeable state as doubles, for another worker's merge_state: the head sums, the MLP
    /// sums, the unit count, the token count (exact while units < 2^53).
    [[nodiscard]] std::vector<double> state() const {
        std::vector<double> out(head_sum_);
        out.insert(out.end(), mlp_sum_.begin(), mlp_sum_.end());
        out.push_back(static_cast<double>(units_));
        out.push_back(tokens_);
        return out;
    }

    /// merge() of an accumulator of the same layout and mode given by its state(): the same
    /// additions in the same order. Throws shape_error when the state has another length and
    /// value_error in the cumulative mode.
    michel_accumulator& merge_state(std::span<const double> state) {
        if (state.size() != head_sum_.size() + mlp_sum_.size() + 2) {
            throw shape_error("prune::importance::michel_accumulator::merge_state: " + std::to_string(state.size()) +
                              " values (expected " + std::to_string(head_sum_.size() + mlp_sum_.size() + 2) +
                              ": head sums, MLP sums, units, tokens)");
        }
        if (mode_ == absolute_value::cumulative) {
            throw value_error("prune::importance::michel_accumulator::merge_state: mode cumulative (its running totals "
                              "do not add up)");
        }
        for (std::size_t i = 0; i < head_sum_.size(); ++i) head_sum_[i] += state[i];
        for (std::size_t i = 0; i < mlp_sum_.size(); ++i) mlp_sum_[i] += state[head_sum_.size() + i];
        units_ += static_cast<std::size_t>(state[state.size() - 2]);
        tokens_ += state[state.size() - 1];
        return *this;
    }

    /// The flat head sums (sum over units of the absolute gate gradients).
    [[nodiscard]] std::span<const double> head_sums() const noexcept { return head_sum_; }
    /// The MLP sums.
    [[nodiscard]] std::span<const double> mlp_sums() const noexcept { return mlp_sum_; }

    /// The scores with the requested normalisations; without by_tokens the sums are divided by the
    /// number of units (the raw expectation). Throws value_error when nothing was committed.
    [[nodiscard]] michel_scores scores(const normalization& how = {}) const {
        const double divisor = how.by_tokens ? tokens_ : static_cast<double>(units_);
        if (!(divisor > 0.0)) {
            throw value_error(std::string("prune::importance::michel_accumulator::scores: no ") +
                              (how.by_tokens ? "tokens" : "units") + " accumulated");
        }
        michel_scores result;
        result.heads.resize(layers());
        for (std::size_t l = 0; l < layers(); ++l) {
            for (std::size_t i = offsets_[l]; i < offsets_[l + 1]; ++i) result.heads[l].push_back(head_sum_[i] / divisor);
        }
        result.mlps.resize(layers());
        for (std::size_t l = 0; l < layers(); ++l) result.mlps[l] = mlp_sum_[l] / divisor;
        if (how.per_layer) normalize_per_layer(result.heads);
        if (how.global) {
            normalize_min_max(result.heads);
            normalize_min_max(std::span<double>(result.mlps));
        }
        return result;
    }

    /// Forgets everything accumulated (sums, counts, pending and running gradients).
    void reset() noexcept {
        std::fill(head_sum_.begin(), head_sum_.end(), 0.0);
        std::fill(head_pending_.begin(), head_pending_.end(), 0.0);
        std::fill(head_running_.begin(), head_running_.end(), 0.0);
        std::fill(mlp_sum_.begin(), mlp_sum_.end(), 0.0);
        std::fill(mlp_pending_.begin(), mlp_pending_.end(), 0.0);
        std::fill(mlp_running_.begin(), mlp_running_.end(), 0.0);
        units_ = 0;
        tokens_ = 0.0;
    }

private:
    /// Calls f with read-only views of two adapted tensors (runtime-typed ones dispatch on their dtype).
    template <class A, class B, class F>
    static void read_pair(const A& a, const B& b, F&& f) {
        prune::visit_view(a, [&](const auto& va) { prune::visit_view(b, [&](const auto& vb) { f(va, vb); }); });
    }

    /// Logical element i of a view, as a double.
    template <class View>
    [[nodiscard]] static double value_at(const View& v, std::size_t i) noexcept {
        return to_double(v.data()[v.storage_index(i)]);
    }

    /// sum_{j < n} a[first + j] * b[first + j] over logical indices.
    template <class ViewA, class ViewB>
    [[nodiscard]] static double dot(const ViewA& a, const ViewB& b, std::size_t first, std::size_t n) noexcept {
        double sum = 0.0;
        for (std::size_t j = first; j < first + n; ++j) sum += value_at(a, j) * value_at(b, j);
        return sum;
    }

    static std::vector<std::size_t> counts_of(const group_mask& heads) {
        std::vector<std::size_t> counts(heads.layers());
        for (std::size_t l = 0; l < heads.layers(); ++l) counts[l] = heads.groups(l);
        return counts;
    }

    void check_head(std::size_t l, std::size_t h, const char* where) const {
        if (l >= layers() || h >= heads(l)) {
            throw shape_error(std::string("prune::importance::michel_accumulator::") + where + ": head [" +
                              std::to_string(l) + "][" + std::to_string(h) + "] outside " +
                              std::to_string(layers()) + " layers");
        }
    }

    void commit(std::vector<double>& pending, std::vector<double>& running, std::vector<double>& sum) const noexcept {
        for (std::size_t i = 0; i < pending.size(); ++i) {
            if (mode_ == absolute_value::cumulative) {
                running[i] += pending[i];
                sum[i] += std::abs(running[i]);
            } else {
                sum[i] += std::abs(pending[i]);
            }
            pending[i] = 0.0;
        }
    }

    absolute_value mode_;
    std::vector<std::size_t> offsets_;
    std::vector<double> head_sum_, head_pending_, head_running_;
    std::vector<double> mlp_sum_, mlp_pending_, mlp_running_;
    std::size_t units_ = 0;
    double tokens_ = 0.0;
};

}  // namespace prune::importance
