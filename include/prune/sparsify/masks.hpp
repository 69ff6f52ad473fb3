// prune/sparsify/masks.hpp: one-shot mask choice for the linears of a network, on views:
// magnitude (|w|) and Wanda (|w| x ||X_j||_2) scores, compared within a row, a matrix, a
// layer or the whole network, unstructured or N:M.
//
// Scores. `prune::magnitude(w)` (the core's) scores |w|. `wanda_scores(w, norms)` scores
// S_ij = |W_ij| * norm_j for a [out, in] weight and the per-input-column norms of its
// calibration inputs (input_statistics::column_norms(), or an importance matrix's
// column_norms()): the product is formed in float, as the reference code forms it in
// float32, so the same norms give the same scores bit for bit; over a magnitude score source
// (io::mapped_scores: a checkpoint's weight never read whole) it gives the same keys. Scores
// are compared as float keys (<prune/importance/scores.hpp>): NaN lowest.
//
// Counting and ties. In a comparison group of n elements the floor(s * n) lowest scores are
// pruned (the reference code's int(n * s): the product in double, truncated), lowest by
// (score, position): within a row by column (the reference Wanda's stable sort), within a
// matrix by flat row-major index, across matrices by (matrix order, flat index) -- the core's
// exact selection (<prune/select.hpp>). Elements a mask already prunes count towards the
// group's total and are never chosen again.
//   row     one output row of one matrix: Wanda's default
//   matrix  one whole matrix: the magnitude baseline's group
//   layer   every matrix of one transformer layer together (the caller says which are)
//   global  every matrix given
// `threshold_rule::at_or_below` reproduces the reference magnitude code instead: it prunes every
// score <= the value at sorted position floor(s * n), one more than floor(s * n) when that value
// is unique, and every tie of it otherwise.
// N:M (`sparsity_target::nm`): in every group of M consecutive input columns of a row, the
// lowest-scoring are pruned until N are kept, ties by column (<prune/nm.hpp>); the comparison
// group does not apply.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/nm.hpp>
#include <prune/select.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prune::sparsify {

/// Which elements compete with each other for pruning.
enum class comparison_group {
    row,     ///< one output row of one matrix (Wanda)
    matrix,  ///< one matrix (the magnitude baseline)
    layer,   ///< the matrices of one layer together
    global,  ///< every matrix together
};

/// How many elements a fraction prunes in a group.
enum class threshold_rule {
    exact_count,  ///< exactly floor(s * n), ties by position (the clean definition)
    at_or_below,  ///< every score <= the value at sorted position floor(s * n) (the reference magnitude code)
};

/// What to prune: a fraction per comparison group, or an N:M pattern.
struct sparsity_target {
    double sparsity = 0.5;                         ///< the fraction pruned per group, in [0, 1)
    std::optional<nm_pattern> nm = std::nullopt;   ///< N:M instead of a fraction (then `sparsity` is unused)
    comparison_group group = comparison_group::row;  ///< the comparison group of a fraction
    threshold_rule rule = threshold_rule::exact_count;  ///< counting (matrix group only)
};

/// "row", "matrix", "layer" or "global".
[[nodiscard]] inline const char* to_string(comparison_group group) noexcept {
    switch (group) {
        case comparison_group::row: return "row";
        case comparison_group::matrix: return "matrix";
        case comparison_group::layer: return "layer";
        case comparison_group::global: return "global";
    }
    return "?";
}

/// Parses "row" / "matrix" / "layer" / "global"; value_error otherwise.
[[nodiscard]] inline comparison_group parse_comparison_group(const std::string& text) {
    for (comparison_group g :
         {comparison_group::row, comparison_group::matrix, comparison_group::layer, comparison_group::global}) {
        if (text == to_string(g)) {
            return g;
        }
    }
    throw value_error("prune::sparsify: comparison group '" + text + "' (expected row, matrix, layer or global)");
}

/// value_error unless 0 <= sparsity < 1; `where` names the caller.
inline void check_sparsity(double sparsity, const std::string& where) {
    if (!(sparsity >= 0.0 && sparsity < 1.0)) {
        throw value_error(where + ": sparsity " + std::to_string(sparsity) + " (expected 0 <= sparsity < 1)");
    }
}

/// floor(s * n) as the reference code's int(n * s): the product in double, truncated.
[[nodiscard]] inline std::size_t count_floor(double sparsity, std::size_t n) noexcept {
    return static_cast<std::size_t>(static_cast<double>(n) * sparsity);
}

namespace detail {

/// What a Wanda score source reads: the weight and the column norms.
template <element T>
struct wanda_state {
    tensor_view<const T> weight;  ///< [out, in]
    std::vector<float> norms;     ///< [in]
};

/// fill_function of Wanda scores: key of float(|w|) * norm_j.
template <element T>
void fill_wanda(const score_source& source, std::size_t, std::size_t begin, std::span<std::uint32_t> keys) {
    const auto& state = *static_cast<const wanda_state<T>*>(source.data());
    const std::size_t in = state.norms.size();
    const bool contiguous = state.weight.is_logically_contiguous();
    std::size_t column = begin % in;
    for (std::size_t j = 0; j < keys.size(); ++j) {
        const std::size_t i = begin + j;
        const T w = state.weight.data()[contiguous ? i : state.weight.storage_index(i)];
        keys[j] = score_key(std::fabs(to_float(w)) * state.norms[column]);
        if (++column == in) {
            column = 0;
        }
    }
}

/// What a Wanda score source over magnitude scores reads: those scores and the column norms.
struct scaled_state {
    score_source magnitudes;  ///< |w| of an [out, in] weight (score_kind::magnitude)
    std::vector<float> norms;   ///< [in]
};

/// fill_function of Wanda scores over magnitude keys: |w| is the key's low 31 bits (magnitude_key
/// keeps the bits of |w|; 0 for NaN), times norm_j in float -- fill_wanda's keys, bit for bit.
inline void fill_scaled(const score_source& source, std::size_t tensor_index, std::size_t begin,
                        std::span<std::uint32_t> keys) {
    const auto& state = *static_cast<const scaled_state*>(source.data());
    state.magnitudes.fill_keys(tensor_index, begin, keys);
    const std::size_t in = state.norms.size();
    std::size_t column = begin % in;
    for (std::uint32_t& key : keys) {
        key = key == 0 ? 0u : score_key(std::bit_cast<float>(key & 0x7FFFFFFFu) * state.norms[column]);
        if (++column == in) {
            column = 0;
        }
    }
}

}  // namespace detail

/// Wanda's scores |W_ij| * norm_j of one [out, in] weight, as a score source. The weight must
/// outlive this object; the norms are copied. Movable: sources stay valid when it moves.
class wanda_scores {
public:
    /// Scores of `weight` (rank 2, [out, in]) with per-input-column norms; shape_error when the
    /// rank is not 2 or norms.size() != in, value_error when a norm is negative or NaN.
    template <class Tensor>
    wanda_scores(const Tensor& weight, std::span<const float> norms, std::string name = {}) {
        prune::visit_view(weight, [&](const auto& v) { init(v, norms, std::move(name)); });
    }

    /// Scores over the magnitude scores of an [out, in] weight (e.g. io::mapped_scores of a
    /// checkpoint's weight, never read as a whole): the keys the weight itself gives. value_error
    /// when the source is not of magnitudes; as above for its shape and the norms.
    wanda_scores(score_source magnitudes, std::span<const float> norms) {
        if (magnitudes.kind() != score_kind::magnitude) {
            throw value_error("prune::sparsify::wanda_scores '" + magnitudes.name() +
                              "': a score source that is not of magnitudes (expected |w|)");
        }
        const prune::shape extents = magnitudes.extents();
        std::string name = magnitudes.name();
        check(extents, norms, name);
        auto state = std::make_shared<detail::scaled_state>(
            detail::scaled_state{std::move(magnitudes), std::vector<float>(norms.begin(), norms.end())});
        source_ = std::make_unique<score_source>(extents, score_kind::given, &detail::fill_scaled,
                                                 static_cast<const void*>(state.get()), layout::row_major);
        source_->named(std::move(name));
        state_ = std::move(state);
    }

    /// The score source (valid while this object lives).
    [[nodiscard]] const score_source& source() const noexcept { return *source_; }

private:
    /// shape_error unless [out, in] with in = norms.size(); value_error for a negative or NaN norm.
    static void check(const prune::shape& extents, std::span<const float> norms, const std::string& name) {
        if (extents.rank() != 2 || extents[1] != norms.size()) {
            throw shape_error("prune::sparsify::wanda_scores" + (name.empty() ? std::string() : " '" + name + "'") +
                              ": a weight of shape " + extents.to_string() + " with " + std::to_string(norms.size()) +
                              " column norms (expected [out, in] with in = the number of norms)");
        }
        for (std::size_t j = 0; j < norms.size(); ++j) {
            if (!(norms[j] >= 0.0f)) {
                throw value_error("prune::sparsify::wanda_scores: column norm " + std::to_string(norms[j]) +
                                  " at column " + std::to_string(j) + " (expected >= 0)");
            }
        }
    }

    /// The constructor on the weight's read-only view (any adapted tensor, torch's dtypes included).
    template <element T>
    void init(const tensor_view<const T>& v, std::span<const float> norms, std::string name) {
        const prune::shape& extents = v.extents();
        check(extents, norms, name);
        auto state = std::make_shared<detail::wanda_state<T>>(
            detail::wanda_state<T>{tensor_view<const T>(v), std::vector<float>(norms.begin(), norms.end())});
        source_ = std::make_unique<score_source>(extents, score_kind::given, &detail::fill_wanda<T>,
                                                 static_cast<const void*>(state.get()), layout::row_major);
        source_->named(std::move(name));
        state_ = std::move(state);
    }

    std::shared_ptr<const void> state_;
    std::unique_ptr<score_source> source_;
};

/// Prunes, in every row of a [rows, width] score source, the lowest still-kept elements until
/// floor(s * width) of the row are pruned; ties by column. Returns the number pruned.
inline std::size_t prune_rows(const score_source& scores, element_mask& mask, double sparsity) {
    const std::string where = "prune::sparsify::prune_rows" + (scores.name().empty() ? "" : " '" + scores.name() + "'");
    check_sparsity(sparsity, where);
    if (!(mask.extents() == scores.extents())) {
        throw shape_error(where + ": a mask of shape " + mask.extents().to_string() + " for scores of shape " +
                          scores.extents().to_string() + " (expected the same shape)");
    }
    const auto [rows, width] = rows_and_width(scores.extents());
    const std::size_t target = count_floor(sparsity, width);
    std::vector<std::uint32_t> keys(width);
    std::vector<std::uint64_t> live(width);
    std::size_t pruned = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        scores.fill_keys(0, r * width, keys);
        std::size_t n = 0;
        for (std::size_t c = 0; c < width; ++c) {
            if (mask.kept(r * width + c)) {
                live[n++] = (std::uint64_t{keys[c]} << 32) | c;
            }
        }
        const std::size_t already = width - n;
        if (target <= already) {
            continue;
        }
        const std::size_t drop = target - already;
        std::nth_element(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                         live.begin() + static_cast<std::ptrdiff_t>(n));
        for (std::size_t d = 0; d < drop; ++d) {
            mask.set(r * width + (live[d] & 0xFFFFFFFFu), false);
        }
        pruned += drop;
    }
    return pruned;
}

/// Prunes, over the given matrices together, the lowest still-kept elements until floor(s *
/// total elements) are pruned; ties by (matrix order, flat index). One matrix: the matrix
/// group. Returns the number pruned.
inline std::size_t prune_together(std::span<const score_source> scores, std::span<element_mask> masks,
                                  double sparsity, const select_options& options = {}) {
    check_sparsity(sparsity, "prune::sparsify::prune_together");
    std::size_t total = 0;
    std::size_t kept = 0;
    for (const element_mask& m : masks) {
        total += m.size();
        kept += m.count_kept();
    }
    const std::size_t target = count_floor(sparsity, total);
    const std::size_t already = total - kept;
    if (target <= already) {
        return 0;
    }
    return prune::prune_smallest(scores, masks, target - already, options).pruned;
}

/// The reference magnitude code's rule on one matrix: prunes every element whose score is <= the
/// score at sorted position floor(s * numel) (ties included). Returns the number newly pruned.
inline std::size_t prune_at_or_below(const score_source& scores, element_mask& mask, double sparsity) {
    const std::string where = "prune::sparsify::prune_at_or_below";
    check_sparsity(sparsity, where);
    if (!(mask.extents() == scores.extents())) {
        throw shape_error(where + ": a mask of shape " + mask.extents().to_string() + " for scores of shape " +
                          scores.extents().to_string() + " (expected the same shape)");
    }
    const std::size_t n = scores.size();
    if (n == 0) {
        return 0;
    }
    std::vector<std::uint32_t> keys(n);
    scores.fill_keys(0, 0, keys);
    std::vector<std::uint32_t> sorted(keys);
    const std::size_t position = count_floor(sparsity, n);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(position), sorted.end());
    const std::uint32_t threshold = sorted[position];
    std::size_t pruned = 0;
    for (std::size_t i = 0; i < n; ++i) {
        if (keys[i] <= threshold && mask.kept(i)) {
            mask.set(i, false);
            ++pruned;
        }
    }
    return pruned;
}

/// The layer group: prune_together over the matrices of each layer (layer_of[t] = layer of matrix t).
inline void choose_by_layer(std::span<const score_source> scores, std::span<element_mask> masks, double sparsity,
                            std::span<const std::size_t> layer_of) {
    if (layer_of.size() != scores.size()) {
        throw shape_error("prune::sparsify::choose_masks: " + std::to_string(layer_of.size()) + " layer numbers for " +
                          std::to_string(scores.size()) + " matrices (expected one per matrix for the layer group)");
    }
    std::vector<std::size_t> layers(layer_of.begin(), layer_of.end());
    std::sort(layers.begin(), layers.end());
    layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
    for (const std::size_t layer : layers) {
        std::vector<std::size_t> members;
        std::vector<score_source> group_scores;
        std::vector<element_mask> group_masks;
        for (std::size_t t = 0; t < scores.size(); ++t) {
            if (layer_of[t] == layer) {
                members.push_back(t);
                group_scores.push_back(scores[t]);
                group_masks.push_back(std::move(masks[t]));
            }
        }
        prune_together(group_scores, group_masks, sparsity);
        for (std::size_t i = 0; i < members.size(); ++i) {
            masks[members[i]] = std::move(group_masks[i]);
        }
    }
}

/// Fresh masks (1 = kept) for the given score sources under a target. `layer_of[t]` is the layer
/// of matrix t (used by the layer group only; may be empty otherwise). value_error / shape_error
/// for a bad target (sparsity outside [0, 1), N:M with N >= M or M not dividing a width) or a
/// layer list of another length. `options` set the global group's selection (threads, sampling:
/// how it runs, never which elements it picks).
[[nodiscard]] inline std::vector<element_mask> choose_masks(std::span<const score_source> scores,
                                                            const sparsity_target& target,
                                                            std::span<const std::size_t> layer_of = {},
                                                            const select_options& options = {}) {
    std::vector<element_mask> masks;
    masks.reserve(scores.size());
    for (const score_source& s : scores) {
        masks.emplace_back(s.extents());
    }
    if (target.nm.has_value()) {
        for (std::size_t t = 0; t < scores.size(); ++t) {
            prune_nm(scores[t], masks[t], *target.nm);
        }
        return masks;
    }
    check_sparsity(target.sparsity, "prune::sparsify::choose_masks");
    const std::span<element_mask> all(masks);
    switch (target.group) {
        case comparison_group::row:
            for (std::size_t t = 0; t < scores.size(); ++t) {
                prune_rows(scores[t], masks[t], target.sparsity);
            }
            break;
        case comparison_group::matrix:
            for (std::size_t t = 0; t < scores.size(); ++t) {
                if (target.rule == threshold_rule::at_or_below) {
                    prune_at_or_below(scores[t], masks[t], target.sparsity);
                } else {
                    prune_together(scores.subspan(t, 1), all.subspan(t, 1), target.sparsity);
                }
            }
            break;
        case comparison_group::layer: choose_by_layer(scores, all, target.sparsity, layer_of); break;
        case comparison_group::global: prune_together(scores, all, target.sparsity, options); break;
    }
    return masks;
}

}  // namespace prune::sparsify
