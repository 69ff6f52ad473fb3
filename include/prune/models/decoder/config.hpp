// prune/models/decoder/config.hpp: the shape of a decoder-only causal language model (Llama
// family or GPT-2), independent of how its config.json spells it.
//
// models/llama/llama.hpp and models/gpt2/gpt2.hpp turn their config.json into this struct
// (and name their tensors); everything else -- weights, the forward and backward passes,
// checkpoints -- works on it. The two families differ only in the switches below:
//
//   llama   RMSNorm (no bias), rotary positions, SwiGLU MLP (gate/up/down), optional q/k/v/o
//           biases (attention_bias) and MLP biases (mlp_bias), GQA, tied or untied lm_head
//   gpt2    LayerNorm with bias, learned positions (wpe), GELU MLP (tanh form), biases
//           everywhere, lm_head tied to the token embeddings
#pragma once

#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace prune::decoder {

/// The model family.
enum class architecture {
    llama,  ///< LlamaForCausalLM (model_type "llama")
    gpt2,   ///< GPT2LMHeadModel (model_type "gpt2")
};

/// The MLP activation.
enum class activation {
    silu,       ///< SwiGLU: silu(gate) * up (Llama)
    gelu_tanh,  ///< GELU, tanh form ("gelu_new", GPT-2)
    gelu_erf,   ///< GELU, erf form ("gelu")
};

/// How rotary frequencies are scaled (Hugging Face's rope_scaling.rope_type).
enum class rope_scaling_type {
    none,    ///< the default frequencies
    linear,  ///< inv_freq / factor
    llama3,  ///< Llama 3.1's wavelength-dependent scaling
};

/// The rotary scaling parameters (rope_scaling in config.json).
struct rope_scaling {
    rope_scaling_type type = rope_scaling_type::none;  ///< which scaling
    double factor = 1.0;                                ///< linear and llama3
    double low_freq_factor = 1.0;                       ///< llama3
    double high_freq_factor = 4.0;                      ///< llama3
    double original_max_position_embeddings = 8192;     ///< llama3
};

/// The hyper-parameters of a decoder. Widths are uniform over layers unless a per-layer list
/// is set (a physically pruned model, see models/decoder/compact.hpp): then heads_in(l),
/// kv_heads_in(l) and ffn_in(l) read the list, and the scalar is not used for that width.
struct config {
    architecture arch = architecture::llama;  ///< family
    int vocab_size = 0;                       ///< rows of the token-embedding table
    int hidden_size = 0;                      ///< model width
    int num_hidden_layers = 0;                ///< decoder layers
    int num_attention_heads = 0;              ///< query heads
    int num_key_value_heads = 0;              ///< key / value heads (divides the query heads)
    int head_dim = 0;                         ///< width of one head
    int intermediate_size = 0;                ///< MLP width
    int max_position_embeddings = 0;          ///< longest sequence
    float norm_eps = 1e-5f;                   ///< RMSNorm / LayerNorm epsilon
    double rope_theta = 10000.0;              ///< rotary base (llama)
    rope_scaling rope;                        ///< rotary scaling (llama)
    bool tie_word_embeddings = false;         ///< lm_head = token embeddings
    bool attention_bias = false;              ///< q/k/v/o biases (gpt2: always)
    bool mlp_bias = false;                    ///< MLP biases (gpt2: always)
    activation act = activation::silu;        ///< MLP activation
    std::string gpt2_prefix = "transformer."; ///< gpt2: tensor-name prefix found ("" or "transformer.")
    io::json source = io::json::object();  ///< the config.json read, written back on save
    std::vector<int> layer_heads;             ///< query heads of each layer when they differ (empty: uniform)
    std::vector<int> layer_kv_heads;          ///< K/V heads of each layer when they differ (empty: uniform)
    std::vector<int> layer_ffn;               ///< MLP width of each layer when they differ (empty: uniform; 0 = MLP removed)
    std::vector<std::vector<int>> pruned_heads;  ///< gpt2: original indices of the heads removed per layer (empty: none)

    /// Query heads of layer l.
    [[nodiscard]] int heads_in(std::size_t l) const { return layer_heads.empty() ? num_attention_heads : layer_heads[l]; }
    /// K/V heads of layer l.
    [[nodiscard]] int kv_heads_in(std::size_t l) const { return layer_kv_heads.empty() ? num_key_value_heads : layer_kv_heads[l]; }
    /// MLP width of layer l.
    [[nodiscard]] int ffn_in(std::size_t l) const { return layer_ffn.empty() ? intermediate_size : layer_ffn[l]; }

    /// Query heads per K/V head.
    [[nodiscard]] int group_size() const { return num_attention_heads / num_key_value_heads; }
    /// True for the Llama family (RMSNorm, RoPE, SwiGLU).
    [[nodiscard]] bool is_llama() const { return arch == architecture::llama; }

    /// Throws format_error (prefixed by `where`) when the values are inconsistent.
    void validate(const std::string& where = "config.json") const {
        auto fail = [&](const std::string& what) { throw format_error(where + ": " + what); };
        auto positive = [&](int v, const char* name) {
            if (v <= 0) fail(std::string(name) + " = " + std::to_string(v) + " (expected > 0)");
        };
        positive(vocab_size, "vocab_size");
        positive(hidden_size, "hidden_size");
        positive(num_hidden_layers, "num_hidden_layers");
        if (layer_heads.empty()) positive(num_attention_heads, "num_attention_heads");
        if (layer_kv_heads.empty()) positive(num_key_value_heads, "num_key_value_heads");
        positive(head_dim, "head_dim");
        if (layer_ffn.empty()) positive(intermediate_size, "intermediate_size");
        positive(max_position_embeddings, "max_position_embeddings");
        if (num_hidden_layers > 4096) fail("num_hidden_layers = " + std::to_string(num_hidden_layers) + " (expected <= 4096)");
        validate_layers(fail);
        if (layer_heads.empty() && layer_kv_heads.empty() && num_attention_heads % num_key_value_heads != 0) {
            fail("num_attention_heads " + std::to_string(num_attention_heads) + " is not a multiple of num_key_value_heads " +
                 std::to_string(num_key_value_heads) + " (grouped-query attention needs whole groups)");
        }
        if (is_llama() && head_dim % 2 != 0) fail("head_dim = " + std::to_string(head_dim) + " (rotary embeddings need an even width)");
        if (!(norm_eps > 0.0f) || !std::isfinite(norm_eps)) fail("norm epsilon = " + number_text(norm_eps) + " (expected a finite number > 0)");
        if (!(rope_theta > 0.0) || !std::isfinite(rope_theta)) fail("rope_theta = " + number_text(rope_theta) + " (expected > 0)");
        if (!(rope.factor > 0.0) || !std::isfinite(rope.factor)) fail("rope_scaling.factor = " + number_text(rope.factor) + " (expected > 0)");
        if (rope.type == rope_scaling_type::llama3 &&
            (!(rope.high_freq_factor > rope.low_freq_factor) || !(rope.low_freq_factor > 0.0) ||
             !(rope.original_max_position_embeddings > 0.0))) {
            fail("rope_scaling (llama3) needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
        }
    }

private:
    /// The per-layer lists: one entry per layer, widths >= 0, whole K/V groups in every layer.
    template <class Fail>
    void validate_layers(const Fail& fail) const {
        const auto L = static_cast<std::size_t>(num_hidden_layers);
        auto sized = [&](const std::vector<int>& v, const char* name) {
            if (!v.empty() && v.size() != L)
                fail(std::string(name) + " lists " + std::to_string(v.size()) + " layers (expected " + std::to_string(L) +
                     ", num_hidden_layers)");
        };
        sized(layer_heads, "num_attention_heads");
        sized(layer_kv_heads, "num_key_value_heads");
        sized(layer_ffn, "intermediate_size");
        if (!pruned_heads.empty() && pruned_heads.size() != L)
            fail("pruned_heads covers " + std::to_string(pruned_heads.size()) + " layers (expected " + std::to_string(L) + ")");
        for (std::size_t l = 0; l < L && (!layer_heads.empty() || !layer_kv_heads.empty() || !layer_ffn.empty()); ++l) {
            const int q = heads_in(l), kv = kv_heads_in(l), f = ffn_in(l);
            const std::string at = "layer " + std::to_string(l) + ": ";
            if (q < 0 || kv < 0 || f < 0) fail(at + "a negative width (expected heads, K/V heads and MLP width >= 0)");
            if ((q == 0) != (kv == 0) || (kv > 0 && q % kv != 0)) {
                fail(at + std::to_string(q) + " query heads are not a multiple of its " + std::to_string(kv) +
                     " K/V heads (grouped-query attention needs whole groups)");
            }
        }
    }
};

namespace config_keys {

/// An integer key in [lo, hi]; `fallback` when absent or null (format_error when required).
inline int integer(const io::json& j, const char* key, const std::string& where, std::optional<int> fallback,
                   std::int64_t lo = 1, std::int64_t hi = (std::int64_t{1} << 31) - 1) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (!fallback) throw format_error(where + ": missing key \"" + key + "\"");
        return *fallback;
    }
    const std::int64_t v = io::as_int(*it, where + ": \"" + key + "\"");
    if (v < lo || v > hi) {
        throw format_error(where + ": \"" + key + "\" = " + std::to_string(v) + " (expected " + std::to_string(lo) +
                           ".." + std::to_string(hi) + ")");
    }
    return static_cast<int>(v);
}

/// A width key that is a number or, for a physically pruned model (prune's extension), a list
/// of `layers` widths >= 0: the number goes to `scalar`; a list goes to `list` and its largest
/// entry to `scalar`. format_error naming the key and the entry otherwise.
inline void width(const io::json& j, const char* key, const std::string& where, int layers, std::optional<int> fallback,
                  int& scalar, std::vector<int>& list) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_array()) {
        scalar = integer(j, key, where, fallback);
        return;
    }
    if (it->size() != static_cast<std::size_t>(layers)) {
        throw format_error(where + ": \"" + key + "\" lists " + std::to_string(it->size()) + " layers (expected " +
                           std::to_string(layers) + ", the number of layers)");
    }
    list.clear();
    for (std::size_t i = 0; i < it->size(); ++i) {
        const std::string at = where + ": \"" + key + "\"[" + std::to_string(i) + "]";
        const std::int64_t v = io::as_int((*it)[i], at);
        if (v < 0 || v > (std::int64_t{1} << 30)) throw format_error(at + " = " + std::to_string(v) + " (expected a width >= 0)");
        list.push_back(static_cast<int>(v));
    }
    scalar = list.empty() ? 0 : *std::max_element(list.begin(), list.end());
}

/// A number key; `fallback` when absent or null.
inline double number(const io::json& j, const char* key, const std::string& where, double fallback) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    return io::as_double(*it, where + ": \"" + key + "\"");
}

/// A boolean key; `fallback` when absent or null.
inline bool boolean(const io::json& j, const char* key, const std::string& where, bool fallback) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    return io::as_bool(*it, where + ": \"" + key + "\"");
}

/// A string key; `fallback` when absent or null.
inline std::string text(const io::json& j, const char* key, const std::string& where, const std::string& fallback) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    return io::as_string(*it, where + ": \"" + key + "\"");
}

}  // namespace config_keys

}  // namespace prune::decoder
