// prune/models/decoder/calibration.hpp: a causal LM's calibration batches run one layer at a
// time, as the layer-by-layer pruning of prune/sparsify/calibrate.hpp (prune_layers) drives them.
//
// calibration_run holds, per batch, the residual stream at the current layer ([tokens, hidden]
// floats: for all batches together, one float per calibration token and hidden feature, as the
// reference code's `inps`), a copy of one batch's stream and one batch's inference buffers
// (among them the inputs of the layer's linears, handed over as they are computed: no
// layer_cache): never the activations of every batch or every layer.
//   record(l, b, advance, visit)  runs batch b through layer l and hands visit the input of each
//                                 linear; the stream advances when asked (without, the layer
//                                 stops after its last linear's input: down_proj is not run)
//   advance(l, b)                 runs batch b through layer l (e.g. after pruning it)
// Inputs are numbered as layer_cache members: 0 = x1 (q/k/v, c_attn), 1 = gated (o_proj,
// attn.c_proj), 2 = x2 (gate/up, c_fc), 3 = act (down_proj, mlp.c_proj).
#pragma once

#include <prune/error.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prune::decoder {

/// One prunable linear as calibration sees it.
struct calibration_linear {
    std::string name;            ///< the Hugging Face parameter name
    tensor_view<float> weight;   ///< [out, in] inside the model
    std::size_t input = 0;       ///< 0 x1, 1 gated, 2 x2, 3 act (linears with one number share their input)
    bool transposed = false;     ///< GPT-2 Conv1D: the checkpoint stores [in, out]
};

/// The layer_cache members holding the inputs, by input number.
inline constexpr std::vector<float> layer_cache::*calibration_inputs[] = {&layer_cache::x1, &layer_cache::gated,
                                                                          &layer_cache::x2, &layer_cache::act};

/// The input number of a layer_cache member (calibration_inputs' index).
[[nodiscard]] inline std::size_t calibration_input_of(std::vector<float> layer_cache::*member) {
    for (std::size_t k = 0; k < std::size(calibration_inputs); ++k) {
        if (calibration_inputs[k] == member) return k;
    }
    throw value_error("calibration_input_of: a layer_cache member that is no linear's input");
}

/// A causal LM's calibration batches at the current layer (see the top of this header). The
/// weights must outlive it; they are read at each call, so pruning them between calls counts.
/// Only the layer called for (and, for finish, the final norm and output projection) need be
/// in memory: layer_stream.hpp loads one layer at a time into the weights under it.
class calibration_run {
public:
    /// Embeds every batch (value_error when a batch does not fit the model, naming it).
    calibration_run(weights& w, std::vector<sequences> batches, int threads = 0)
        : w_(w), batches_(std::move(batches)), own_(std::make_unique<workspace>(threads)), ws_(*own_) {
        for (std::size_t b = 0; b < batches_.size(); ++b) {
            batches_[b].validate(w_.cfg, "calibration batch " + std::to_string(b));
            streams_.emplace_back(stream_size(b));
            embed_sequences(w_, batches_[b], ws_, streams_.back());
        }
        count();
    }

    /// Batches whose streams at layer 0 are given (streams[b]: batch b embedded, [tokens, hidden]),
    /// run on the caller's workspace `ws` (which must outlive this); value_error when a batch does
    /// not fit the model or its stream, naming `what` and the batch.
    calibration_run(weights& w, std::vector<sequences> batches, std::vector<std::vector<float>> streams, workspace& ws,
                    const std::string& what = "calibration batch")
        : w_(w), batches_(std::move(batches)), ws_(ws), streams_(std::move(streams)) {
        if (streams_.size() != batches_.size()) {
            throw value_error("calibration_run: " + std::to_string(streams_.size()) + " streams for " +
                              std::to_string(batches_.size()) + " batches");
        }
        for (std::size_t b = 0; b < batches_.size(); ++b) {
            batches_[b].validate(w_.cfg, what + " " + std::to_string(b));
            if (streams_[b].size() != stream_size(b)) {
                throw value_error("calibration_run: " + what + " " + std::to_string(b) + " has a stream of " +
                                  std::to_string(streams_[b].size()) + " values (expected tokens x hidden_size, " +
                                  std::to_string(stream_size(b)) + ")");
            }
        }
        count();
    }

    /// Layers of the model.
    [[nodiscard]] std::size_t layers() const { return w_.layers.size(); }
    /// Calibration batches.
    [[nodiscard]] std::size_t batches() const { return batches_.size(); }
    /// Calibration sequences over all batches.
    [[nodiscard]] std::size_t samples() const { return samples_; }
    /// Calibration tokens over all batches.
    [[nodiscard]] std::uint64_t tokens() const { return tokens_; }
    /// The thread pool of the passes.
    [[nodiscard]] nn::thread_pool& pool() { return ws_.pool(); }
    /// Batch b's residual stream at the current layer, [tokens, hidden].
    [[nodiscard]] std::span<const float> stream(std::size_t b) const { return streams_.at(b); }

    /// The prunable linears of layer l (layer_linears' order).
    [[nodiscard]] std::vector<calibration_linear> linears(std::size_t l) {
        std::vector<calibration_linear> out;
        for (const layer_linear& x : layer_linears(w_, l)) {
            const auto rows = static_cast<std::size_t>(x.rows), cols = static_cast<std::size_t>(x.cols);
            out.push_back({x.name, make_view<float>(x.weight, {rows, cols}), calibration_input_of(x.input), x.transposed});
        }
        return out;
    }

    /// Runs batch b through layer l and calls visit(input number, rows [tokens, in]) for each
    /// input, in input order; with `advance_stream` the output becomes the batch's stream.
    template <class Visit>
    void record(std::size_t l, std::size_t b, bool advance_stream, Visit&& visit) {
        std::span<float> h = prepare(b);
        if (advance_stream) {
            h = streams_[b];
        } else {
            std::copy(streams_[b].begin(), streams_[b].end(), h.begin());
        }
        const std::size_t tokens = static_cast<std::size_t>(batches_[b].total());
        layer_taps taps;
        taps.output = advance_stream;
        taps.visit = [&](std::vector<float> layer_cache::*member, const float* rows, std::size_t width) {
            visit(calibration_input_of(member), make_view<const float>(rows, {tokens, width}));
        };
        run_layer(w_, l, batches_[b], ws_, h, taps);
    }

    /// Runs batch b through layer l under `gate` (null: all 1); the output becomes its stream.
    void advance(std::size_t l, std::size_t b, const gates* gate = nullptr) {
        static_cast<void>(prepare(b));
        run_layer(w_, l, batches_[b], ws_, streams_[b], gate);
    }

    /// Batch b's per-sequence NLL from its stream after the last layer (finish_sequences: the
    /// final norm and output projection must be in the weights): what forward gives, the same bits.
    [[nodiscard]] forward_result finish(std::size_t b) {
        static_cast<void>(prepare(b));
        return finish_sequences(w_, batches_[b], ws_, streams_[b]);
    }

private:
    void count() {
        for (const sequences& s : batches_) {
            tokens_ += static_cast<std::uint64_t>(s.total());
            samples_ += static_cast<std::size_t>(s.count());
        }
    }

    [[nodiscard]] std::size_t stream_size(std::size_t b) const {
        return static_cast<std::size_t>(batches_[b].total()) * static_cast<std::size_t>(w_.cfg.hidden_size);
    }

    /// The workspace set up for batch b (positions, RoPE table); returns the scratch stream.
    std::span<float> prepare(std::size_t b) {
        scratch_.resize(stream_size(b));
        prepare_sequences(w_.cfg, batches_.at(b), ws_);
        return scratch_;
    }

    weights& w_;
    std::vector<sequences> batches_;
    std::unique_ptr<workspace> own_;  // the workspace, unless the caller's
    workspace& ws_;
    std::vector<std::vector<float>> streams_;
    std::vector<float> scratch_;
    std::uint64_t tokens_ = 0;
    std::size_t samples_ = 0;
};

}  // namespace prune::decoder
