// prune/models/decoder/pretrain.hpp: causal-LM pre-training of a small Llama from scratch:
// the shape (llama_config), the initialisation, the windows of a token stream, and the
// training step (train_pass with the token-mean loss, global gradient-norm clipping, AdamW at
// the shared linear warm-up / decay schedule) in a fixed, seeded batch order.
//
//   step s (0-based) of N:   batch = windows order[s B .. s B + B - 1] (a new seeded
//                            permutation every pass over the windows)
//                            g = d(mean NLL over the batch's predicted tokens)/d(weights)
//                            g *= min(1, max_grad_norm / (|g| + 1e-6))
//                            AdamW at lr = peak * linear_warmup_schedule(s, N, warmup)
//
// Weight decay skips biases and every norm scale (the names prune::train::excluded_from_decay
// knows). Every step gives the same bits on any thread count (train_pass's guarantee; the
// optimiser and the order are serial), and the permutation is drawn by our own Fisher-Yates
// from std::mt19937_64 (std::shuffle's algorithm is the library's choice).
#pragma once

#include <prune/models/decoder/backward.hpp>
#include <prune/models/decoder/config.hpp>
#include <prune/models/decoder/forward.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/models/llama/llama.hpp>
#include <prune/train/adamw.hpp>
#include <prune/train/lr_schedule.hpp>
#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace prune::decoder {

/// The shape of a Llama to pre-train.
struct llama_shape {
    int layers = 2;                ///< decoder layers
    int hidden = 128;              ///< model width
    int heads = 4;                 ///< query heads
    int kv_heads = 2;              ///< key / value heads (divides heads)
    int intermediate = 352;        ///< SwiGLU width
    int vocab = 0;                 ///< vocabulary (the tokenizer's)
    int max_positions = 128;       ///< longest sequence
    int bos_token_id = -1;         ///< written to config.json when >= 0
    int eos_token_id = -1;         ///< written to config.json when >= 0

    /// value_error naming the value (each name after `prefix`: "--" gives the CLI's flags) when
    /// the shape is impossible: a size not > 0, hidden not a multiple of heads, heads not a
    /// multiple of kv-heads, an odd head width (rotary embeddings rotate pairs).
    void validate(const std::string& prefix = "llama shape: ") const {
        auto fail = [&](const std::string& what) { throw value_error(what); };
        auto named = [&](const char* name, long long v) { return prefix + name + " " + std::to_string(v); };
        const std::pair<const char*, int> sizes[] = {{"layers", layers}, {"hidden", hidden}, {"heads", heads},
                                                     {"kv-heads", kv_heads}, {"intermediate", intermediate},
                                                     {"vocab-size", vocab}, {"max-length", max_positions}};
        for (const auto& [name, v] : sizes)
            if (v <= 0) fail(named(name, v) + " (expected > 0)");
        if (hidden % heads != 0) fail(named("hidden", hidden) + " is not a multiple of " + named("heads", heads));
        if (heads % kv_heads != 0)
            fail(named("heads", heads) + " is not a multiple of " + named("kv-heads", kv_heads) +
                 " (grouped-query attention needs whole groups)");
        if ((hidden / heads) % 2 != 0)
            fail("head width " + prefix + "hidden / " + prefix + "heads = " + std::to_string(hidden / heads) +
                 " is odd (rotary embeddings need an even width)");
    }
};

/// A Llama config (model_type llama, head_dim hidden / heads, RMSNorm eps 1e-5, rope_theta
/// 10000, untied lm_head, no biases) with its config.json; value_error when the shape is
/// impossible (llama_shape::validate).
[[nodiscard]] inline config llama_config(const llama_shape& s) {
    s.validate();
    io::json j = io::json::object();
    j["architectures"] = io::json::array({"LlamaForCausalLM"});
    j["model_type"] = "llama";
    j["hidden_size"] = s.hidden;
    j["num_hidden_layers"] = s.layers;
    j["num_attention_heads"] = s.heads;
    j["num_key_value_heads"] = s.kv_heads;
    j["head_dim"] = s.hidden / s.heads;
    j["intermediate_size"] = s.intermediate;
    j["vocab_size"] = s.vocab;
    j["max_position_embeddings"] = s.max_positions;
    j["rms_norm_eps"] = 1e-5;
    j["rope_theta"] = 10000.0;
    j["hidden_act"] = "silu";
    j["tie_word_embeddings"] = false;
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["initializer_range"] = 0.02;
    j["torch_dtype"] = "float32";
    if (s.bos_token_id >= 0) j["bos_token_id"] = s.bos_token_id;
    if (s.eos_token_id >= 0) j["eos_token_id"] = s.eos_token_id;
    return llama::config_from_json(j, "llama_config");
}

/// Hugging Face's Llama initialisation: every matrix N(0, stddev) (seeded), norm scales 1,
/// biases 0.
[[nodiscard]] inline weights initial_weights(const config& cfg, std::uint64_t seed, float stddev = 0.02f) {
    weights w = random_weights(cfg, seed, stddev);
    for (auto& p : parameters(w)) {
        if (p.shape.size() != 1) continue;
        const float v = p.name.find("norm") != std::string::npos ? 1.0f : 0.0f;
        for (float& x : p.values()) x = v;
    }
    return w;
}

/// Non-overlapping windows of `context` tokens of a token stream (the remainder shorter than a
/// window is dropped).
[[nodiscard]] inline std::vector<std::vector<std::int32_t>> token_windows(std::span<const std::int32_t> ids, std::size_t context) {
    if (context == 0) throw value_error("token_windows: context 0 (expected >= 1)");
    std::vector<std::vector<std::int32_t>> out;
    for (std::size_t i = 0; i + context <= ids.size(); i += context) out.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(i), ids.begin() + static_cast<std::ptrdiff_t>(i + context));
    return out;
}

/// Training hyper-parameters.
struct pretrain_options {
    std::size_t steps = 300;         ///< optimiser steps
    std::size_t batch_size = 16;     ///< windows per step
    double learning_rate = 1e-3;     ///< peak learning rate
    double warmup_fraction = 0.05;   ///< share of the steps warming up
    double weight_decay = 0.01;      ///< AdamW's decoupled decay (not biases and norms)
    double adam_eps = 1e-8;          ///< AdamW's epsilon (Hugging Face's default)
    double max_grad_norm = 1.0;      ///< global gradient-norm clipping (<= 0: none)
    std::uint64_t seed = 0;          ///< the batch order
    int threads = 0;                 ///< threads of the training pass (0: every core)
    const gates* gate = nullptr;     ///< train under these gates (null: none); a unit gated 0 gets no gradient

    /// Throws value_error naming the option when a value cannot train.
    void validate() const {
        if (steps == 0) throw value_error("pretrain: steps 0 (expected >= 1)");
        if (batch_size == 0) throw value_error("pretrain: batch_size 0 (expected >= 1)");
        if (!(learning_rate > 0.0) || !std::isfinite(learning_rate))
            throw value_error("pretrain: learning rate " + number_text(learning_rate) + " (expected a finite number > 0)");
        if (!(warmup_fraction >= 0.0 && warmup_fraction <= 1.0))
            throw value_error("pretrain: warmup fraction " + number_text(warmup_fraction) + " (expected 0..1)");
        if (!(weight_decay >= 0.0) || !std::isfinite(weight_decay))
            throw value_error("pretrain: weight decay " + number_text(weight_decay) + " (expected a finite number >= 0)");
        if (!(adam_eps > 0.0) || !std::isfinite(adam_eps)) throw value_error("pretrain: adam_eps " + number_text(adam_eps) + " (expected > 0)");
        if (!std::isfinite(max_grad_norm)) throw value_error("pretrain: max_grad_norm " + number_text(max_grad_norm) + " (expected finite)");
    }
};

/// What one step did.
struct pretrain_progress {
    std::size_t step = 0;    ///< steps done (1-based)
    std::size_t total = 0;   ///< steps planned
    double loss = 0.0;       ///< the step's mean NLL (before the update)
    double grad_norm = 0.0;  ///< the gradient norm before clipping
    double lr = 0.0;         ///< learning rate used
};

/// The optimiser state of a training run on `w` (which must outlive it).
class causal_lm_trainer {
public:
    /// A trainer of `w` (zero moments); value_error for bad options.
    causal_lm_trainer(weights& w, const pretrain_options& o)
        : w_(w), options_(o), grads_(zero_gradients(w)), ws_(o.threads),
          optimiser_(trainables(), train::adamw_options{0.9, 0.999, o.adam_eps, o.weight_decay}) {
        o.validate();
    }

    /// One update on `batch` at learning rate `lr`: the loss, and the gradient norm before clipping.
    pretrain_progress step(const sequences& batch, double lr) {
        for (auto& p : parameters(grads_))
            for (float& v : p.values()) v = 0.0f;
        pretrain_progress out;
        out.loss = train_pass(w_, batch, ws_, tw_, &grads_, training_options{}, options_.gate);
        train::require_finite_loss(optimiser_.steps() + 1, out.loss);
        const std::vector<train::trainable> t = trainables();
        out.grad_norm = train::clip_gradient_norm(std::span<const train::trainable>(t), options_.max_grad_norm);
        optimiser_.step(t, lr);
        out.lr = lr;
        return out;
    }

private:
    std::vector<train::trainable> trainables() {
        std::vector<train::trainable> out;
        const auto ps = parameters(w_), gs = parameters(grads_);
        for (std::size_t i = 0; i < ps.size(); ++i) out.push_back({ps[i].name, ps[i].values(), gs[i].values()});
        return out;
    }

    weights& w_;
    pretrain_options options_;
    weights grads_;
    workspace ws_;
    training_workspace tw_;
    train::adamw optimiser_;
};

/// A permutation of 0..n-1 from `rng` (Fisher-Yates, the same on every standard library).
[[nodiscard]] inline std::vector<std::size_t> permutation(std::size_t n, std::mt19937_64& rng) {
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[static_cast<std::size_t>(rng() % i)]);
    return order;
}

/// Trains `w` in place on `windows` for options.steps steps (see the header comment);
/// `report` after each step (return false to stop early). Returns the steps taken.
/// value_error when there is no window or an option cannot train.
inline std::size_t pretrain(weights& w, const std::vector<std::vector<std::int32_t>>& windows, const pretrain_options& o,
                            const std::function<bool(const pretrain_progress&)>& report = {}) {
    o.validate();
    if (windows.empty()) throw value_error("pretrain: no training window (the text is shorter than one context)");
    causal_lm_trainer trainer(w, o);
    std::mt19937_64 rng(o.seed);
    std::vector<std::size_t> order;
    std::size_t next = windows.size();  // start with a fresh permutation
    const auto warmup = static_cast<std::size_t>(o.warmup_fraction * static_cast<double>(o.steps));
    for (std::size_t s = 0; s < o.steps; ++s) {
        sequences batch;
        for (std::size_t i = 0; i < o.batch_size; ++i) {
            if (next == windows.size()) {
                order = permutation(windows.size(), rng);
                next = 0;
            }
            batch.add(windows[order[next++]]);
        }
        pretrain_progress p = trainer.step(batch, o.learning_rate * train::linear_warmup_schedule(s, o.steps, warmup));
        p.step = s + 1;
        p.total = o.steps;
        if (report && !report(p)) return s + 1;
    }
    return o.steps;
}

}  // namespace prune::decoder
