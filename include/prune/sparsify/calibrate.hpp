// prune/sparsify/calibrate.hpp: one-shot pruning of every linear of a layered network, layer by
// layer, from calibration data: magnitude, Wanda or SparseGPT, unstructured or N:M, optionally
// followed by SparseGPT's reconstruction of a magnitude or Wanda mask.
//
// The protocol (Wanda's and SparseGPT's): for each layer l in turn,
//   1. every calibration batch runs through layer l, *dense*, recording the input of each of
//      its linears (one pass: the linears of l all see the dense layer's own activations);
//      the inputs are summed into input_statistics (sum x_j^2, and sum x x^T when needed) and
//      dropped: only one batch's activations of one layer exist at a time;
//   2. the masks of layer l's linears are chosen from the statistics (and, for SparseGPT or
//      `reconstruct`, the kept weights are updated), and applied to the weights in place;
//   3. every batch runs through the now-pruned layer l: its output is layer l + 1's input.
// So layer l is calibrated on the inputs the already-pruned layers < l produce. With
// `dense_inputs` step 3 is skipped and step 1's dense output is kept instead: every layer is
// calibrated on the dense model's activations (the masks of layer 0 are the same either way).
// Magnitude needs no calibration: without `reconstruct` no batch is run at all. Neither does
// Wanda with `given_norms` (an importance matrix, collected on the dense model beforehand: the
// `dense_inputs` statistics): its masks come from the given column norms, which are compared
// as prune's own sqrt(sum over tokens of x_j^2), so the same sums give the same masks.
//
// The model is anything with these members (prune::decoder::calibration_run is one):
//   std::size_t layers() const;   std::size_t batches() const;
//   std::size_t samples() const;  // calibration sequences (SparseGPT's H scale: 2 / samples)
//   std::uint64_t tokens() const; // calibration tokens
//   linears(l)                    // a range of {std::string name; tensor_view<float> weight
//                                 // ([out, in]); std::size_t input;} -- linears with the same
//                                 // `input` number read the same input of the layer
//   void record(l, b, bool advance, visit)  // runs batch b through layer l as it is now and
//                                 // calls visit(input number, tensor_view<const float> rows
//                                 // [tokens, in]) for each input; with advance, the output
//                                 // replaces the batch's stream
//   void advance(l, b)            // runs batch b through layer l; the output replaces its stream
// and optionally
//   weight_scores(l)              // a range of score_source: the magnitude scores of layer l's
//                                 // weights ([out, in], named), valid until prune_layers returns
//                                 // and readable before layer l is touched otherwise
// prune_layers takes the layers in order, each once: linears(l) / record / advance of layer l
// come after every call for layers < l, so a model may hold one layer's weights at a time
// (prune::decoder::layer_stream does). The shapes of every layer's weights (an N:M check) and
// the global magnitude group, which compares every weight of the network before layer 0 is
// pruned, come from weight_scores when the model has it, else from linears(l) of every layer.
//
// Data parallel (`calibration_options::comm`, docs/distributed.md): the model of rank r holds
// the batches r, r + k, r + 2k, ... of the whole set (k ranks); each batch's sums of x_j^2 are
// taken alone and added on rank 0 in batch order, then every rank gets the same sums, chooses
// the same masks and advances its own batches. The sums x x^T (SparseGPT, `reconstruct`) go
// round by round, one batch per rank: rank 0 adds its batch to its running sums and reduce_to
// adds the other ranks' batches onto them in rank order, which is batch order, one input at a
// time; rank 0 then broadcasts them and every rank runs the same SparseGPT steps on the same
// bits (collect_sharded_gram). So the masks and weights are bit-identical for any k (and differ
// from the path without `comm`, which adds batch after batch, only in the rounding of the sums
// of x_j^2: its sums x x^T are the same bits).
//
// Counting, ties and comparison groups are masks.hpp's; SparseGPT's steps are sparsegpt.hpp's,
// with H = 2 / samples x sum x x^T as the reference code scales it. Groups: row, matrix and
// layer (the linears of one layer together) for every method; global (every linear of the
// network) only for magnitude and Wanda with given norms, since the calibrated methods choose a
// layer's masks before the next layer is calibrated. SparseGPT chooses per block of columns: the group does not apply.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/mpi/batches.hpp>
#include <prune/mpi/communicator.hpp>
#include <prune/sparsify/masks.hpp>
#include <prune/sparsify/sparsegpt.hpp>
#include <prune/sparsify/statistics.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prune::sparsify {

/// How the masks are chosen.
enum class method {
    magnitude,  ///< |w| (no calibration)
    wanda,      ///< |w| x ||X_j||_2
    sparsegpt,  ///< SparseGPT's adaptive mask and reconstruction
};

/// "magnitude", "wanda" or "sparsegpt".
[[nodiscard]] inline const char* to_string(method m) noexcept {
    switch (m) {
        case method::magnitude: return "magnitude";
        case method::wanda: return "wanda";
        case method::sparsegpt: return "sparsegpt";
    }
    return "?";
}

/// Parses "magnitude" / "wanda" / "sparsegpt"; value_error otherwise.
[[nodiscard]] inline method parse_method(const std::string& text) {
    for (method m : {method::magnitude, method::wanda, method::sparsegpt}) {
        if (text == to_string(m)) return m;
    }
    throw value_error("prune::sparsify: method '" + text + "' (expected magnitude, wanda or sparsegpt)");
}

/// What prune_layers does.
struct calibration_options {
    method how = method::wanda;         ///< the mask choice
    sparsity_target target;             ///< sparsity (with group and rule) or N:M
    bool reconstruct = false;           ///< after a magnitude or Wanda mask, SparseGPT's reconstruction
    bool dense_inputs = false;          ///< calibrate every layer on the dense model's activations
    bool double_products = false;       ///< sum x x^T from double products (statistics_options)
    sparsegpt_options sparsegpt;        ///< block size, damping, rule, precision, threads (hessian_scale is set here)
    std::function<void(std::size_t)> on_layer;  ///< called with l once layer l is pruned (progress; may be empty)
    /// Wanda's column norms given per linear (name, input width) instead of calibration -- an
    /// importance matrix's (io::imatrix::column_norms): no batch is run, and the global group
    /// applies, since every norm is known before layer 0 is pruned (may be empty).
    std::function<std::vector<float>(const std::string& name, std::size_t columns)> given_norms;
    /// Called with each linear's name and its input's statistics once layer l's are collected,
    /// before its masks are chosen (e.g. to save them as an importance matrix; may be empty).
    std::function<void(const std::string& name, const input_statistics&)> on_statistics;
    /// Data parallel over these ranks (null: one process, batch after batch): the model holds this
    /// rank's batches of the whole set, rank + i x size (see the top of this header).
    mpi::communicator* comm = nullptr;
};

/// The mask chosen for one linear (1 = kept, [out, in]).
struct pruned_linear {
    std::string name;     ///< the linear's name
    std::size_t layer;    ///< its layer
    element_mask mask;    ///< 1 = kept
};

/// What prune_layers did.
struct calibration_result {
    std::vector<pruned_linear> linears;  ///< every linear, layer by layer in the model's order
    std::uint64_t tokens = 0;            ///< calibration tokens run through each layer (0: none were needed)
};

namespace detail {

/// Whether the layers need their inputs' statistics, and their sums x x^T.
inline bool needs_statistics(const calibration_options& o) {
    return (o.how != method::magnitude || o.reconstruct) && !o.given_norms;
}
inline bool needs_gram(const calibration_options& o) { return o.how == method::sparsegpt || o.reconstruct; }

/// value_error for a combination prune_layers does not run.
inline void check_calibration(const calibration_options& o) {
    const std::string where = "prune::sparsify::prune_layers";
    if (!o.target.nm) check_sparsity(o.target.sparsity, where);
    if (o.given_norms && (o.how != method::wanda || o.reconstruct)) {
        throw value_error(where + ": given column norms with " + (o.reconstruct ? std::string("reconstruct") : to_string(o.how)) +
                          " (expected wanda without reconstruct: the norms are Wanda's scores, not a Hessian)");
    }
    if (!o.target.nm && o.target.group == comparison_group::global && o.how != method::magnitude && !o.given_norms) {
        throw value_error(where + ": the global comparison group with " + to_string(o.how) +
                          " (expected magnitude, or wanda with given column norms such as an importance matrix's: a "
                          "calibrated method chooses each layer's masks before the next layer is calibrated; use row, "
                          "matrix or layer)");
    }
    if (o.reconstruct && o.how == method::sparsegpt) {
        throw value_error(where + ": reconstruct with sparsegpt (expected magnitude or wanda: SparseGPT "
                          "always reconstructs)");
    }
}

/// Whether the model gives its weights' scores without holding the layer (weight_scores).
template <class Model>
concept scores_weights = requires(Model& m, std::size_t l) { m.weight_scores(l); };

/// The magnitude scores of layer l's weights, named: weight_scores(l) when the model has it,
/// else views of linears(l) (which must then stay valid).
template <class Model>
std::vector<score_source> weight_scores(Model& model, std::size_t l) {
    if constexpr (scores_weights<Model>) {
        auto given = model.weight_scores(l);
        return std::vector<score_source>(given.begin(), given.end());
    } else {
        std::vector<score_source> out;
        for (const auto& x : model.linears(l)) out.push_back(prune::magnitude(x.weight).named(x.name));
        return out;
    }
}

/// shape_error / value_error when an N:M target does not fit a linear's input width (or
/// SparseGPT's block size), checked on every linear before any is pruned.
template <class Model>
void check_widths(Model& model, const calibration_options& o) {
    if (!o.target.nm) return;
    for (std::size_t l = 0; l < model.layers(); ++l) {
        for (const score_source& x : weight_scores(model, l)) {
            const std::size_t in = x.extents()[1];
            check_nm(*o.target.nm, in, "prune::sparsify::prune_layers: linear '" + x.name() + "' (input width " +
                                           std::to_string(in) + ")");
        }
    }
    if (o.how == method::sparsegpt && o.sparsegpt.block_size % o.target.nm->group != 0) {
        throw value_error("prune::sparsify::prune_layers: N:M groups of " + std::to_string(o.target.nm->group) +
                          " in SparseGPT blocks of " + std::to_string(o.sparsegpt.block_size) +
                          " columns (expected the group to divide the block size)");
    }
}


/// What the accumulators of the options keep.
inline statistics_options statistics_of(const calibration_options& o) {
    return {.gram = needs_gram(o), .double_products = o.double_products};
}

/// One accumulator per input number of the linears.
template <class Linears>
std::vector<input_statistics> empty_statistics(const Linears& linears, statistics_options kept) {
    std::vector<input_statistics> stats;
    for (const auto& x : linears) {
        if (x.input >= stats.size()) stats.resize(x.input + 1);
        stats[x.input] = input_statistics(x.weight.extents()[1], kept);
    }
    return stats;
}

/// Step 1: every batch through layer l, its inputs summed.
template <class Model, class Linears>
std::vector<input_statistics> collect(Model& model, std::size_t l, const Linears& linears, const calibration_options& o) {
    std::vector<input_statistics> stats = empty_statistics(linears, statistics_of(o));
    for (std::size_t b = 0; b < model.batches(); ++b) {
        model.record(l, b, o.dense_inputs, [&](std::size_t input, tensor_view<const float> rows) {
            if (input < stats.size() && stats[input].columns() > 0) stats[input].add(rows, o.sparsegpt.pool);
        });
    }
    return stats;
}

/// The sums of x_j^2 and the token count of each accumulator, one after another (no gram).
inline std::vector<double> sums_of(const std::vector<input_statistics>& stats) {
    std::vector<double> out;
    for (const input_statistics& s : stats) {
        out.insert(out.end(), s.sum_squares().begin(), s.sum_squares().end());
        out.push_back(static_cast<double>(s.tokens()));
    }
    return out;
}

/// Adds sums_of(...) of accumulators of the same widths to `stats`, accumulator by accumulator.
inline void merge_sums(std::vector<input_statistics>& stats, std::span<const double> sums) {
    std::size_t at = 0;
    for (input_statistics& s : stats) {
        const std::size_t n = s.columns();
        if (sums.size() < at + n + 1) break;
        s.merge(input_statistics::from_sums(std::vector<double>(sums.begin() + static_cast<std::ptrdiff_t>(at),
                                                                sums.begin() + static_cast<std::ptrdiff_t>(at + n)),
                                            {}, static_cast<std::uint64_t>(sums[at + n])));
        at += n + 1;
    }
    if (at != sums.size()) {
        throw format_error("prune::sparsify::prune_layers: " + std::to_string(sums.size()) +
                           " statistics values from another rank (expected " + std::to_string(at) + ")");
    }
}

/// The sums of x_j^2 and token counts of every batch, part(b) on batch b's rank (sums_of of its
/// accumulators), added on rank 0 in batch order and broadcast: every rank gets the same bits.
template <class Linears, class Part>
std::vector<input_statistics> batch_order_sums(const Linears& linears, mpi::communicator& comm, std::size_t total_batches,
                                               Part&& part) {
    const auto states = mpi::gather_batches(comm, total_batches, std::forward<Part>(part));
    std::vector<input_statistics> stats = empty_statistics(linears, {});
    for (const auto& state : states) merge_sums(stats, state);  // rank 0 only: the others have no states
    std::string bytes = comm.rank() == 0 ? mpi::to_bytes(sums_of(stats)) : std::string();
    comm.broadcast(bytes, 0);
    if (comm.rank() != 0) merge_sums(stats, mpi::doubles_of(bytes));  // 0 + x: rank 0's bits
    return stats;
}

/// Step 1 over the ranks of o.comm without sums x x^T: each batch's sums alone (global batch b
/// is this rank's b / size), added in batch order (batch_order_sums).
template <class Model, class Linears>
std::vector<input_statistics> collect_sharded(Model& model, std::size_t l, const Linears& linears,
                                              const calibration_options& o, std::size_t total_batches) {
    const auto k = static_cast<std::size_t>(o.comm->size());
    return batch_order_sums(linears, *o.comm, total_batches, [&](std::size_t b) {
        std::vector<input_statistics> part = empty_statistics(linears, {});
        model.record(l, b / k, o.dense_inputs, [&](std::size_t input, tensor_view<const float> rows) {
            if (input < part.size() && part[input].columns() > 0) part[input].add(rows);
        });
        return sums_of(part);
    });
}

/// Step 1 over the ranks of o.comm with sums x x^T (docs/distributed.md), in rounds of one batch
/// per rank: in round i rank r runs global batch i k + r. Rank 0 adds its batch's products to
/// its running grams (collect's additions); ranks 1 .. k-1 put theirs in fresh accumulators
/// (0 + p = p, exact), and reduce_to adds them onto rank 0's in rank order -- batch order --
/// one input at a time. A rank without a batch in the last round sends zeros (t + 0 = t: a
/// running sum from +0 is never -0). So rank 0's grams are collect's bits for any k; it
/// broadcasts them, and the sums of x_j^2 go batch by batch as collect_sharded's.
template <class Model, class Linears>
std::vector<input_statistics> collect_sharded_gram(Model& model, std::size_t l, const Linears& linears,
                                                   const calibration_options& o, std::size_t total_batches) {
    mpi::communicator& comm = *o.comm;
    const auto k = static_cast<std::size_t>(comm.size());
    const auto r = static_cast<std::size_t>(comm.rank());
    std::vector<input_statistics> grams = empty_statistics(linears, statistics_of(o));
    std::vector<std::vector<double>> sums;  // sums_of this rank's batches, in order
    for (std::size_t first = 0; first < total_batches; first += k) {
        if (r != 0 && first > 0) {
            grams.clear();  // before the new ones: one layer's grams at a time
            grams = empty_statistics(linears, statistics_of(o));
        }
        mpi::collectively(comm, [&] {
            if (first + r >= total_batches) return;
            std::vector<input_statistics> part = empty_statistics(linears, {});
            model.record(l, first / k, o.dense_inputs, [&](std::size_t input, tensor_view<const float> rows) {
                if (input >= grams.size() || grams[input].columns() == 0) return;
                grams[input].add(rows, o.sparsegpt.pool);
                part[input].add(rows);
            });
            sums.push_back(sums_of(part));
        });
        for (input_statistics& g : grams) comm.reduce_to(g.gram_upper(), 0);
    }
    for (input_statistics& g : grams) mpi::broadcast_values(comm, g.gram_upper(), 0);
    const std::vector<input_statistics> summed =
        batch_order_sums(linears, comm, total_batches, [&](std::size_t b) { return sums[b / k]; });
    for (std::size_t t = 0; t < grams.size(); ++t) grams[t] = std::move(grams[t]).with_sums_of(summed[t]);
    return grams;
}

/// The masks of a layer's linears from their scores (Wanda) under the target; one group per layer.
template <class Linears>
std::vector<element_mask> wanda_masks(const Linears& linears, const std::vector<input_statistics>& stats,
                                      const calibration_options& o) {
    std::vector<wanda_scores> scores;
    scores.reserve(linears.size());
    for (const auto& x : linears) {
        scores.emplace_back(x.weight, o.given_norms ? o.given_norms(x.name, x.weight.extents()[1]) : stats[x.input].column_norms(),
                            x.name);
    }
    std::vector<score_source> sources;
    for (const wanda_scores& s : scores) sources.push_back(s.source());
    const std::vector<std::size_t> one_layer(sources.size(), 0);
    return choose_masks(sources, o.target, one_layer);
}

/// The Hessian factors of a layer's inputs, each made once, when its first linear needs it, and
/// dropped after its last (linears sharing an input share the factor: q/k/v, gate/up).
template <class Linears>
class shared_factors {
public:
    shared_factors(const Linears& linears, const std::vector<input_statistics>& stats, const sparsegpt_options& options)
        : linears_(linears), stats_(stats), options_(options), factors_(stats.size()) {}

    /// The factor of linear t's input (made now if it is the first to need it).
    const hessian_factor& operator[](std::size_t t) {
        const auto& x = linears_[t];
        if (!factors_[x.input]) {
            const std::span<const double> h = stats_[x.input].gram_upper();
            const std::size_t n = x.weight.extents()[1];
            const std::string where = obs_where("sparsegpt_prune", x.name);
            if (h.size() != n * n) check_weight(x.weight, h, options_, where);  // the shape error
            factors_[x.input] = factor(h, n, options_, where);
        }
        return *factors_[x.input];
    }

    /// Drops linear t's factor when no later linear reads its input.
    void done(std::size_t t) {
        for (std::size_t u = t + 1; u < linears_.size(); ++u) {
            if (linears_[u].input == linears_[t].input) return;
        }
        factors_[linears_[t].input].reset();
    }

private:
    const Linears& linears_;
    const std::vector<input_statistics>& stats_;
    const sparsegpt_options& options_;
    std::vector<std::optional<hessian_factor>> factors_;
};

/// SparseGPT on every linear of the layer (mask and reconstruction, in place), one factor per input.
template <class Linears>
std::vector<element_mask> sparsegpt_masks(Linears& linears, const std::vector<input_statistics>& stats,
                                          const sparsegpt_options& options, const calibration_options& o) {
    std::vector<element_mask> masks;
    shared_factors<Linears> factors(linears, stats, options);
    for (std::size_t t = 0; t < linears.size(); ++t) {
        masks.push_back(sparsegpt_prune(linears[t].weight, factors[t], o.target, options, linears[t].name));
        factors.done(t);
    }
    return masks;
}

/// Applies the layer's masks: zeroes the pruned weights, or reconstructs the kept ones (one factor per input).
template <class Linears>
void apply_masks(Linears& linears, const std::vector<element_mask>& masks, const std::vector<input_statistics>& stats,
                 const sparsegpt_options& options, const calibration_options& o) {
    shared_factors<Linears> factors(linears, stats, options);
    for (std::size_t t = 0; t < masks.size(); ++t) {
        auto& x = linears[t];
        if (o.reconstruct) {
            reconstruct(x.weight, masks[t], factors[t], options, x.name);
            factors.done(t);
        } else {
            prune::apply(masks[t], x.weight);
        }
    }
}

/// The calibration set's size over every rank (this process's model alone without o.comm).
struct calibration_totals {
    std::size_t batches = 0;   ///< batches
    std::size_t samples = 0;   ///< sequences
    std::uint64_t tokens = 0;  ///< tokens
};

/// The totals of the whole calibration set: summed over o.comm's ranks (exact: integers below 2^53).
template <class Model>
calibration_totals totals_of(Model& model, const calibration_options& o) {
    if (o.comm == nullptr) return {model.batches(), model.samples(), model.tokens()};
    const std::vector<double> mine{static_cast<double>(model.batches()), static_cast<double>(model.samples()),
                                   static_cast<double>(model.tokens())};
    const std::vector<double> all = mpi::sum(*o.comm, mine);
    return {static_cast<std::size_t>(all[0]), static_cast<std::size_t>(all[1]), static_cast<std::uint64_t>(all[2])};
}

/// Magnitude masks -- Wanda's with given norms -- of every linear of the network, chosen
/// together (the global group), by layer.
template <class Model>
std::vector<std::vector<element_mask>> global_masks(Model& model, const calibration_options& o) {
    std::vector<score_source> sources;
    std::vector<std::size_t> layer_of;
    std::vector<std::size_t> per_layer;
    for (std::size_t l = 0; l < model.layers(); ++l) {
        std::vector<score_source> layer = weight_scores(model, l);
        per_layer.push_back(layer.size());
        layer_of.insert(layer_of.end(), layer.size(), l);
        sources.insert(sources.end(), std::make_move_iterator(layer.begin()), std::make_move_iterator(layer.end()));
    }
    std::vector<wanda_scores> wanda;  // over the magnitude sources, which they own
    if (o.given_norms) {
        wanda.reserve(sources.size());
        for (score_source& s : sources) {
            const std::size_t columns = s.extents().rank() == 2 ? s.extents()[1] : 0;
            const std::string name = s.name();
            wanda.emplace_back(std::move(s), o.given_norms(name, columns));
        }
        sources.clear();
        for (const wanda_scores& w : wanda) sources.push_back(w.source());
    }
    select_options select;  // the masks never depend on these
    select.sampling_limit = mapped_sampling_limit;  // the scores may be a checkpoint's file map
    std::vector<element_mask> all = choose_masks(sources, o.target, layer_of, select);
    std::vector<std::vector<element_mask>> out(model.layers());
    std::size_t at = 0;
    for (std::size_t l = 0; l < out.size(); ++l) {
        for (std::size_t t = 0; t < per_layer[l]; ++t) out[l].push_back(std::move(all[at++]));
    }
    return out;
}

/// Magnitude masks of one layer's linears (every group but the global one compares within a layer).
template <class Linears>
std::vector<element_mask> magnitude_masks(const Linears& linears, const calibration_options& o) {
    std::vector<score_source> sources;
    for (const auto& x : linears) sources.push_back(prune::magnitude(x.weight).named(x.name));
    return choose_masks(sources, o.target, std::vector<std::size_t>(sources.size(), 0));
}

}  // namespace detail

/// Prunes every linear of `model` in place, layer by layer (see the top of this header), and
/// returns the masks. value_error / shape_error, before any weight changes, for a target that
/// does not fit (sparsity outside [0, 1); N:M with kept >= group or a group that does not divide
/// an input width), a global group with a calibrated method, reconstruct with SparseGPT, or no
/// calibration tokens when the method needs them.
template <class Model>
calibration_result prune_layers(Model& model, const calibration_options& options) {
    detail::check_calibration(options);
    detail::check_widths(model, options);
    const detail::calibration_totals all = detail::totals_of(model, options);
    if (detail::needs_statistics(options) && all.tokens == 0) {
        throw value_error(std::string("prune::sparsify::prune_layers: no calibration tokens (expected at least one "
                                      "batch: ") + (options.reconstruct ? "the reconstruction" : to_string(options.how)) +
                          " needs the inputs' statistics)");
    }
    const bool global = (options.how == method::magnitude || options.given_norms) && !options.target.nm &&
                        options.target.group == comparison_group::global;
    std::vector<std::vector<element_mask>> chosen;
    if (global) chosen = detail::global_masks(model, options);
    sparsegpt_options sg = options.sparsegpt;
    sg.hessian_scale = 2.0 / static_cast<double>(std::max<std::size_t>(1, all.samples));
    calibration_result result;
    if (detail::needs_statistics(options)) result.tokens = all.tokens;
    const bool sharded = options.comm != nullptr;
    for (std::size_t l = 0; l < model.layers(); ++l) {
        auto linears = model.linears(l);
        std::vector<input_statistics> stats;
        if (detail::needs_statistics(options)) {
            if (!sharded) stats = detail::collect(model, l, linears, options);
            else if (detail::needs_gram(options)) stats = detail::collect_sharded_gram(model, l, linears, options, all.batches);
            else stats = detail::collect_sharded(model, l, linears, options, all.batches);
            if (options.on_statistics) {
                for (const auto& x : linears) options.on_statistics(x.name, stats[x.input]);
            }
        }
        std::vector<element_mask> masks;
        if (global) masks = std::move(chosen[l]);
        else if (options.how == method::magnitude) masks = detail::magnitude_masks(linears, options);
        else if (options.how == method::wanda) masks = detail::wanda_masks(linears, stats, options);
        else masks = detail::sparsegpt_masks(linears, stats, sg, options);
        if (options.how != method::sparsegpt) detail::apply_masks(linears, masks, stats, sg, options);
        if (detail::needs_statistics(options) && !options.dense_inputs) {
            for (std::size_t b = 0; b < model.batches(); ++b) model.advance(l, b);
        }
        for (std::size_t t = 0; t < masks.size(); ++t) result.linears.push_back({linears[t].name, l, std::move(masks[t])});
        if (options.on_layer) options.on_layer(l);
    }
    return result;
}

}  // namespace prune::sparsify
