// prune/models/decoder/layer_stream.hpp: a causal LM pruned layer by layer straight from its
// checkpoint, holding one decoder layer's float weights at a time -- the model prune_layers
// (prune/sparsify/calibrate.hpp) runs on when the network does not fit in memory as float32.
//
// layer_stream is calibration_run's protocol (layers / batches / samples / tokens / linears /
// record / advance) over a `weights` whose layers are empty but one: the first call for layer
// l reads l's parameters from the checkpoint (the checks and conversion of load_model:
// read_parameter) and drops layer l - 1's. What it holds:
//   - the calibration batches' residual streams at the current layer (as calibration_run),
//     embedded from the rows of the token embeddings they use (never the whole table as float);
//   - one layer's float weights;
//   - with evaluate(), two more sets of streams for the evaluation batches: one advanced through
//     each dense layer as it is read (the model before pruning), one through each layer after
//     prune_layers is done with it (after pruning); finish() runs the final norm and output
//     projection (read only then) on both, giving forward's numbers, the same bits.
// evaluate() may also take structure gates and element masks (stream_evaluation: each tensor
// zeroed as it is read, the embedding rows too) and leave out the pruned set: then the stream
// evaluates the model as read, and evaluate_layers (at the bottom) runs an evaluation set
// through it in chunks of a bounded number of tokens, one pass over the layers per chunk --
// prune-eval's causal-LM path, the same bits as forward on the loaded model.
// weight_scores(l) hands prune_layers magnitude scores over the checkpoint's own bytes (F32,
// F16, BF16 or F64 read in place, io::mapped_scores, their pages dropped once scored; a Conv1D
// weight seen transposed), so the global magnitude group compares every weight of the network
// without a float copy of any. Every tensor's pages are dropped from the resident set once read
// (io::checkpoint::release).
// Layers go in order: a call for a layer before the current one is a value_error.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/io/mapped_scores.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/models/decoder/calibration.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/config.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace prune::decoder {

namespace detail {

/// The mask `masks` holds for tensor `name` (null: none, or no masks).
[[nodiscard]] inline const element_mask* mask_of(const io::element_masks* masks, const std::string& name) {
    if (masks == nullptr) return nullptr;
    const auto found = masks->find(name);
    return found == masks->end() ? nullptr : &found->second;
}

/// Adds row `row` of a [rows, width] checkpoint tensor, as float, to out[0, width) (or sets it),
/// the elements `masks` prunes in that tensor (when it names it) zeroed first.
inline void add_row(const io::checkpoint& ckpt, const std::string& name, std::size_t row, std::size_t width, float* out,
                    std::vector<float>& buffer, bool add, const io::element_masks* masks) {
    const io::tensor_info& info = ckpt.info(name);
    const std::size_t size = io::dtype_size(info.type);
    buffer.resize(width);
    io::detail::convert_to_float(info.type, ckpt.bytes(name).data() + row * width * size, width, buffer.data());
    if (const element_mask* m = mask_of(masks, name)) {
        for (std::size_t c = 0; c < width; ++c)
            if (!m->kept(row * width + c)) buffer[c] = 0.0f;
    }
    for (std::size_t c = 0; c < width; ++c) out[c] = add ? out[c] + buffer[c] : buffer[c];
}

}  // namespace detail

/// The names of the tensors outside the decoder layers: the token embeddings, GPT-2's
/// positions, the final norm (and shift) and lm_head (absent when tied), each with the
/// in-memory parameter it loads into (data null until allocated).
[[nodiscard]] inline std::vector<parameter> outer_parameters(weights& w) {
    const std::size_t layers = w.layers.size();
    std::vector<layer_weights> kept = std::move(w.layers);
    w.layers.clear();
    std::vector<parameter> out = parameters(w);  // no layers: the outer tensors only
    w.layers = std::move(kept);
    w.layers.resize(layers);
    return out;
}

/// Batch `seq`'s residual stream at layer 0 ([tokens, hidden]): embed[id] (+ wpe[position]),
/// each row converted from the checkpoint as load_model converts the table (and zeroed where
/// `masks`, when given, prune the table: apply_element_masks), so the bits embed_sequences gives
/// on the loaded model. The batch must fit cfg (sequences::validate), the masks the model
/// (masked_parameter).
[[nodiscard]] inline std::vector<float> embed_rows(const io::checkpoint& ckpt, const config& cfg, const sequences& seq,
                                                   const io::element_masks* masks = nullptr) {
    const auto H = static_cast<std::size_t>(cfg.hidden_size);
    const std::string table = cfg.is_llama() ? llama::embed_tokens : gpt2::global_tensor(cfg.gpt2_prefix, "wte.weight");
    const std::string positions = cfg.is_llama() ? std::string() : gpt2::global_tensor(cfg.gpt2_prefix, "wpe.weight");
    std::vector<float> h(static_cast<std::size_t>(seq.total()) * H), buffer;
    for (int b = 0; b < seq.count(); ++b) {
        const auto first = static_cast<std::size_t>(seq.offsets[static_cast<std::size_t>(b)]);
        for (std::size_t i = 0; i < static_cast<std::size_t>(seq.length(b)); ++i) {
            float* row = h.data() + (first + i) * H;
            detail::add_row(ckpt, table, static_cast<std::size_t>(seq.tokens[first + i]), H, row, buffer, false, masks);
            if (!positions.empty()) detail::add_row(ckpt, positions, i, H, row, buffer, true, masks);
        }
    }
    return h;
}

/// The model `cfg` describes with no matrix and no tensor outside the layers allocated (each
/// layer as allocate_layer(cfg, l, false)): its layers' head counts and widths, what
/// gates::from_mask and gates::check read.
[[nodiscard]] inline weights layer_shapes(const config& cfg) {
    weights w;
    w.cfg = cfg;
    for (std::size_t l = 0; l < static_cast<std::size_t>(cfg.num_hidden_layers); ++l) w.layers.push_back(allocate_layer(cfg, l, false));
    return w;
}

/// The tensors of the model `cfg` describes (parameters' names and shapes; with `layers` false,
/// those outside the layers only), with null data.
[[nodiscard]] inline std::vector<parameter> tensor_list(const config& cfg, bool layers = true) {
    weights shell = layers ? layer_shapes(cfg) : weights{};
    shell.cfg = cfg;
    if (!cfg.tie_word_embeddings) shell.lm_head.resize(1);  // so that lm_head is listed
    std::vector<parameter> out = parameters(shell);
    for (parameter& p : out) p.data = nullptr;
    return out;
}

/// format_error / shape_error (masked_parameter) for an element mask that names no tensor of
/// the model `cfg` describes, or has another shape than the tensor in the checkpoint.
inline void check_element_masks(const config& cfg, const io::element_masks& masks) {
    const std::vector<parameter> all = tensor_list(cfg);
    for (const auto& entry : masks) static_cast<void>(masked_parameter(all, entry.first, entry.second));
}

/// How layer_stream runs its evaluation batches (evaluate).
struct stream_evaluation {
    const gates* gate = nullptr;               ///< structure gates of every evaluation pass (null: all 1); must outlive the stream
    const io::element_masks* masks = nullptr;  ///< zeroed in each tensor as it is read (apply_element_masks); must outlive it
    bool pruned = true;                        ///< also the model after prune_layers (false: the model as read only)
};

/// A causal LM's calibration (and evaluation) batches run layer by layer on weights read from
/// a checkpoint one layer at a time (see the top of this header). The checkpoint must outlive it.
class layer_stream {
public:
    /// The model of `ckpt` with config `cfg` (checkpoint_config's: GPT-2's prefix set) and its
    /// calibration batches, on `threads` threads. Checks the tensors outside the layers (shape,
    /// dtype, finite values: load_model's format_error, `where` first) and embeds the batches
    /// (value_error naming a batch that does not fit). Layer tensors are checked as each is read.
    layer_stream(const io::checkpoint& ckpt, const config& cfg, std::vector<sequences> calibration, int threads,
                 std::string where)
        : ckpt_(ckpt), where_(std::move(where)), w_(layer_shapes(cfg)), ws_(threads) {
        for (const parameter& p : outer_tensors()) {
            detail::check_parameter(ckpt_, p, where_);
            io::require_finite(ckpt_, p.name, where_ + ": tensor");
        }
        std::vector<std::vector<float>> streams = streams_of(calibration, "calibration batch");
        release_outer();
        run_.emplace(w_, std::move(calibration), std::move(streams), ws_, "calibration batch");
    }

    layer_stream(const layer_stream&) = delete;
    layer_stream& operator=(const layer_stream&) = delete;

    /// Evaluation batches to run through every layer, dense and (with o.pruned) pruned, under
    /// o.gate, every tensor zeroed where o.masks prune it as it is read (before the first layer is
    /// read; value_error after, or naming a batch that does not fit; shape_error for gates,
    /// format_error / shape_error for masks that do not fit the model: gates::check, masked_parameter).
    void evaluate(const std::vector<sequences>& batches, const stream_evaluation& o = {}) {
        if (current_) throw value_error("layer_stream::evaluate: called after layer " + std::to_string(*current_) + " was read");
        if (o.gate != nullptr) o.gate->check(w_);
        if (o.masks != nullptr) check_element_masks(w_.cfg, *o.masks);
        gate_ = o.gate;
        masks_ = o.masks;
        dense_.emplace(w_, batches, streams_of(batches, "evaluation batch"), ws_, "evaluation batch");
        if (o.pruned) pruned_.emplace(w_, batches, streams_of(batches, "evaluation batch"), ws_, "evaluation batch");
        release_outer();
    }

    /// Layers of the model.
    [[nodiscard]] std::size_t layers() const { return w_.layers.size(); }
    /// Calibration batches.
    [[nodiscard]] std::size_t batches() const { return run_->batches(); }
    /// Calibration sequences over all batches.
    [[nodiscard]] std::size_t samples() const { return run_->samples(); }
    /// Calibration tokens over all batches.
    [[nodiscard]] std::uint64_t tokens() const { return run_->tokens(); }
    /// The thread pool of the passes.
    [[nodiscard]] nn::thread_pool& pool() { return ws_.pool(); }

    /// Reads layer l (the previous one dropped) and runs the evaluation batches through it: what
    /// linears, record and advance do first, for a pass with no calibration.
    void read_layer(std::size_t l) { read(l); }

    /// The prunable linears of layer l (read now if it is not the current layer).
    [[nodiscard]] std::vector<calibration_linear> linears(std::size_t l) {
        read(l);
        return run_->linears(l);
    }
    /// Runs calibration batch b through layer l (calibration_run::record).
    template <class Visit>
    void record(std::size_t l, std::size_t b, bool advance_stream, Visit&& visit) {
        read(l);
        run_->record(l, b, advance_stream, std::forward<Visit>(visit));
    }
    /// Runs calibration batch b through layer l; the output becomes its stream.
    void advance(std::size_t l, std::size_t b) {
        read(l);
        run_->advance(l, b);
    }

    /// The magnitude scores of layer l's prunable weights ([out, in], named) over the
    /// checkpoint's bytes, without reading the layer (format_error / dtype_error for a missing,
    /// misshapen or non-float tensor, as load_model).
    [[nodiscard]] std::vector<score_source> weight_scores(std::size_t l) {
        std::vector<score_source> out;
        for (const parameter& p : layer_parameters(w_, l)) {
            if (p.shape.size() != 2) continue;
            detail::check_parameter(ckpt_, p, where_);
            out.push_back(source_of(p).named(p.name));
        }
        return out;
    }

    /// The per-batch NLL of the evaluation batches (evaluate) before and after pruning.
    struct evaluation {
        std::vector<forward_result> dense;   ///< the model as read
        std::vector<forward_result> pruned;  ///< the model as prune_layers left it
    };

    /// After the last layer: runs the pruned evaluation streams through it, reads the final
    /// norm and output projection, and returns both evaluations (empty without evaluate()).
    /// The layer's weights are dropped.
    [[nodiscard]] evaluation finish() {
        if (current_ && *current_ < layers()) done(*current_);
        current_ = layers();  // no layer is read after this
        evaluation out;
        if (!dense_ || dense_->batches() == 0) return out;
        weights& w = w_;  // the output projection (lm_head, or the tied embeddings) and the final norm
        const std::size_t table = static_cast<std::size_t>(w.cfg.vocab_size) * static_cast<std::size_t>(w.cfg.hidden_size);
        (w.cfg.tie_word_embeddings ? w.embed : w.lm_head).assign(table, 0.0f);
        w.final_norm.assign(static_cast<std::size_t>(w.cfg.hidden_size), 0.0f);
        if (!w.cfg.is_llama()) w.final_norm_bias.assign(w.final_norm.size(), 0.0f);
        for (const parameter& p : outer_parameters(w)) {
            if (p.data != nullptr) read_masked(p);
        }
        release_outer();
        for (std::size_t b = 0; b < dense_->batches(); ++b) out.dense.push_back(dense_->finish(b));
        for (std::size_t b = 0; pruned_ && b < pruned_->batches(); ++b) out.pruned.push_back(pruned_->finish(b));
        return out;
    }

private:
    /// Each batch's stream at layer 0 (value_error naming a batch that does not fit).
    std::vector<std::vector<float>> streams_of(const std::vector<sequences>& batches, const std::string& what) const {
        std::vector<std::vector<float>> out;
        for (std::size_t b = 0; b < batches.size(); ++b) {
            batches[b].validate(w_.cfg, what + " " + std::to_string(b));
            out.push_back(embed_rows(ckpt_, w_.cfg, batches[b], masks_));
        }
        return out;
    }

    /// The tensors outside the layers (outer_parameters' names and shapes, no data).
    [[nodiscard]] std::vector<parameter> outer_tensors() const { return tensor_list(w_.cfg, false); }

    /// Reads parameter p from the checkpoint (read_parameter) and zeroes what masks_ prune in it.
    void read_masked(const parameter& p) {
        detail::read_parameter(ckpt_, p, where_);
        if (const element_mask* m = detail::mask_of(masks_, p.name)) apply_element_mask(p, *m);
    }

    /// Drops the pages of the tensors outside the layers (read for embedding rows or the head).
    void release_outer() {
        for (const parameter& p : outer_tensors()) ckpt_.release(p.name);
    }

    /// Makes layer l the current one: the previous one finished and dropped, l read and the
    /// dense evaluation streams run through it.
    void read(std::size_t l) {
        if (current_ && *current_ == l) return;
        if (l >= layers() || (current_ && *current_ > l)) {
            throw value_error("layer_stream: layer " + std::to_string(l) + " asked for after layer " +
                              (current_ ? std::to_string(*current_) : std::string("none")) + " (expected layers in order, 0.." +
                              std::to_string(layers() - 1) + ")");
        }
        if (current_) done(*current_);
        w_.layers[l] = allocate_layer(w_.cfg, l);
        for (const parameter& p : layer_parameters(w_, l)) {
            read_masked(p);
            ckpt_.release(p.name);
        }
        current_ = l;
        if (dense_) {
            for (std::size_t b = 0; b < dense_->batches(); ++b) dense_->advance(l, b, gate_);
        }
    }

    /// Layer l as pruned: the pruned evaluation streams run through it, its weights dropped.
    void done(std::size_t l) {
        if (pruned_) {
            for (std::size_t b = 0; b < pruned_->batches(); ++b) pruned_->advance(l, b, gate_);
        }
        w_.layers[l] = allocate_layer(w_.cfg, l, false);
    }

    /// Magnitude scores over a weight's checkpoint bytes, read from the file map
    /// (io::mapped_scores, which drops each block's pages once scored); a Conv1D weight, seen
    /// [out, in], as a column-major view of its [in, out] bytes (or of a float copy when they
    /// cannot be viewed in place: misaligned).
    score_source source_of(const parameter& p) {
        if (!p.transposed) return io::mapped_scores(ckpt_, p.name, score_kind::magnitude);
        const prune::shape extents{static_cast<std::size_t>(p.shape[0]), static_cast<std::size_t>(p.shape[1])};
        auto over = [&](auto typed) { return prune::magnitude(tensor_view(typed.data(), extents, layout::column_major)); };
        try {
            switch (ckpt_.info(p.name).type) {
                case io::dtype::F32: return over(ckpt_.view<float>(p.name));
                case io::dtype::F16: return over(ckpt_.view<half>(p.name));
                case io::dtype::BF16: return over(ckpt_.view<bfloat16>(p.name));
                default: return over(ckpt_.view<double>(p.name));  // check_parameter admits F64 last
            }
        } catch (const format_error&) {  // misaligned: a copy in the checkpoint's order
            copies_.push_back(ckpt_.to_float(p.name));
            return over(make_view<const float>(copies_.back().data(), ckpt_.info(p.name).extents()));
        }
    }

    const io::checkpoint& ckpt_;
    std::string where_;
    weights w_;
    workspace ws_;
    std::optional<calibration_run> run_, dense_, pruned_;
    std::optional<std::size_t> current_;  // the layer in memory
    const gates* gate_ = nullptr;                 // the evaluation's gates (evaluate)
    const io::element_masks* masks_ = nullptr;   // the evaluation's element masks (evaluate)
    std::deque<std::vector<float>> copies_;  // weight_scores' copies of misaligned tensors
};

/// Tokens whose residual streams evaluate_layers holds at a time by default: 2^26 floats
/// (256 MiB) of [tokens, hidden] streams, at least one token.
[[nodiscard]] inline std::size_t stream_chunk_tokens(const config& cfg) {
    return std::max<std::size_t>(1, (std::size_t{1} << 26) / static_cast<std::size_t>(cfg.hidden_size));
}

/// Runs `batches` through the model of `ckpt` (config `cfg`, as layer_stream takes it) read
/// layer by layer, under o.gate with o.masks applied (o.pruned is ignored: the model as read),
/// and calls each(b, forward_result) for every batch in order: forward's numbers on the loaded
/// and masked model, the same bits. Memory holds one layer's float weights and the streams of
/// one chunk of consecutive batches of at most `chunk_tokens` tokens (one batch when a batch is
/// larger): each chunk is a pass over the layers, re-read from the checkpoint. Errors as
/// layer_stream's (a tensor named by `where` when it is read).
template <class Each>
void evaluate_layers(const io::checkpoint& ckpt, const config& cfg, const std::vector<sequences>& batches, stream_evaluation o,
                     std::size_t chunk_tokens, int threads, const std::string& where, Each&& each) {
    o.pruned = false;
    for (std::size_t first = 0; first < batches.size();) {
        std::vector<sequences> chunk{batches[first]};
        auto tokens = static_cast<std::size_t>(batches[first].total());
        for (std::size_t b = first + chunk.size(); b < batches.size(); ++b) {
            tokens += static_cast<std::size_t>(batches[b].total());
            if (tokens > chunk_tokens) break;
            chunk.push_back(batches[b]);
        }
        layer_stream stream(ckpt, cfg, {}, threads, where);
        stream.evaluate(chunk, o);
        for (std::size_t l = 0; l < stream.layers(); ++l) stream.read_layer(l);
        const layer_stream::evaluation done = stream.finish();
        for (std::size_t b = 0; b < done.dense.size(); ++b) each(first + b, done.dense[b]);
        first += chunk.size();
    }
}

}  // namespace prune::decoder
