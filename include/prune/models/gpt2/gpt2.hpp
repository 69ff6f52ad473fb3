// prune/models/gpt2/gpt2.hpp: GPT-2 as Hugging Face's GPT2LMHeadModel (or GPT2Model) stores
// it: its config.json keys and its tensor names.
//
// config.json keys read (model_type "gpt2"): n_embd, n_head, n_layer, vocab_size; n_positions
// (or n_ctx; default 1024), n_inner (null: 4 n_embd), layer_norm_epsilon (1e-5),
// activation_function ("gelu_new" / "gelu_pytorch_tanh", the tanh form, or "gelu", the erf
// form), tie_word_embeddings (true). scale_attn_weights = false and
// scale_attn_by_inverse_layer_idx = true change the attention scale and are refused.
// Physically pruned models: "pruned_heads" ({"layer": [original head indices removed]},
// Hugging Face's own key, which its GPT2Model applies on load) and n_inner as a per-layer list
// (prune's extension, written by decoder::compact when MLP widths differ).
//
// Tensors, with or without the `transformer.` prefix: wte.weight, wpe.weight,
// h.N.{ln_1,ln_2}.{weight,bias}, h.N.attn.c_attn.{weight,bias} (query | key | value along the
// output axis), h.N.attn.c_proj.{weight,bias}, h.N.mlp.c_fc.{weight,bias},
// h.N.mlp.c_proj.{weight,bias}, ln_f.{weight,bias}; lm_head.weight when untied. The four
// Conv1D weights (c_attn, attn.c_proj, c_fc, mlp.c_proj) are stored [in, out]; the model keeps
// them [out, in] in memory, like every other linear layer, and transposes on load and save.
#pragma once

#include <prune/models/decoder/config.hpp>
#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <string>

namespace prune::gpt2 {

/// Hugging Face's "pruned_heads" ({"3": [0, 5], ...}: original indices of the heads removed
/// from each layer) into c.pruned_heads and the per-layer head counts; format_error naming the
/// layer or head otherwise.
inline void read_pruned_heads(const io::json& j, const std::string& where, decoder::config& c) {
    const auto it = j.find("pruned_heads");
    if (it == j.end() || it->is_null() || (it->is_object() && it->empty())) return;
    const std::string at = where + ": pruned_heads";
    if (!it->is_object()) throw format_error(at + " is " + io::describe_json(*it) + " (expected {\"layer\": [heads]})");
    const auto L = static_cast<std::size_t>(c.num_hidden_layers);
    c.pruned_heads.assign(L, {});
    for (const auto& [key, heads] : it->items()) {
        std::size_t used = 0;
        int l = -1;
        try { l = std::stoi(key, &used); } catch (const std::exception&) { used = 0; }
        if (used != key.size() || l < 0 || static_cast<std::size_t>(l) >= L)
            throw format_error(at + " key \"" + key + "\" is not a layer index (expected 0.." + std::to_string(L - 1) + ")");
        if (!heads.is_array()) throw format_error(at + "[\"" + key + "\"] is " + io::describe_json(heads) + " (expected an array of heads)");
        auto& row = c.pruned_heads[static_cast<std::size_t>(l)];
        for (const auto& h : heads) {
            const std::int64_t v = io::as_int(h, at + "[\"" + key + "\"]");
            if (v < 0 || v >= c.num_attention_heads || std::find(row.begin(), row.end(), v) != row.end())
                throw format_error(at + "[\"" + key + "\"] holds head " + std::to_string(v) + " (expected distinct heads 0.." +
                                   std::to_string(c.num_attention_heads - 1) + ")");
            row.push_back(static_cast<int>(v));
        }
        std::sort(row.begin(), row.end());
    }
    for (const auto& row : c.pruned_heads) c.layer_heads.push_back(c.num_attention_heads - static_cast<int>(row.size()));
    c.layer_kv_heads = c.layer_heads;
}

/// A decoder config from a GPT-2 config.json; format_error naming `where` and the key on bad values.
[[nodiscard]] inline decoder::config config_from_json(const io::json& j, const std::string& where = "config.json") {
    namespace keys = decoder::config_keys;
    decoder::config c;
    c.arch = decoder::architecture::gpt2;
    c.source = j;
    c.hidden_size = keys::integer(j, "n_embd", where, std::nullopt);
    c.num_attention_heads = keys::integer(j, "n_head", where, std::nullopt);
    c.num_hidden_layers = keys::integer(j, "n_layer", where, std::nullopt, 1, 4096);
    c.vocab_size = keys::integer(j, "vocab_size", where, std::nullopt);
    c.num_key_value_heads = c.num_attention_heads;
    if (c.hidden_size % c.num_attention_heads != 0) {
        throw format_error(where + ": n_embd " + std::to_string(c.hidden_size) + " is not a multiple of n_head " +
                           std::to_string(c.num_attention_heads));
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
    keys::width(j, "n_inner", where, c.num_hidden_layers, 4 * c.hidden_size, c.intermediate_size, c.layer_ffn);
    read_pruned_heads(j, where, c);
    c.max_position_embeddings = keys::integer(j, "n_positions", where, keys::integer(j, "n_ctx", where, 1024));
    c.norm_eps = static_cast<float>(keys::number(j, "layer_norm_epsilon", where, 1e-5));
    c.tie_word_embeddings = keys::boolean(j, "tie_word_embeddings", where, true);
    c.attention_bias = true;
    c.mlp_bias = true;
    const std::string act = keys::text(j, "activation_function", where, "gelu_new");
    if (act == "gelu_new" || act == "gelu_pytorch_tanh") {
        c.act = decoder::activation::gelu_tanh;
    } else if (act == "gelu") {
        c.act = decoder::activation::gelu_erf;
    } else {
        throw format_error(where + ": activation_function \"" + act +
                           "\" is not supported (expected \"gelu_new\", \"gelu_pytorch_tanh\" or \"gelu\")");
    }
    if (!keys::boolean(j, "scale_attn_weights", where, true)) {
        throw format_error(where + ": scale_attn_weights = false is not supported (expected true: scores / sqrt(head_dim))");
    }
    if (keys::boolean(j, "scale_attn_by_inverse_layer_idx", where, false)) {
        throw format_error(where + ": scale_attn_by_inverse_layer_idx = true is not supported (expected false)");
    }
    c.validate(where);
    return c;
}

/// The Hugging Face name of a global tensor ("wte.weight", ...) under `prefix`.
[[nodiscard]] inline std::string global_tensor(const std::string& prefix, const std::string& name) { return prefix + name; }

/// The Hugging Face name of a per-layer tensor: <prefix>h.<l>.<suffix>.
[[nodiscard]] inline std::string layer_tensor(const std::string& prefix, int l, const std::string& suffix) {
    return prefix + "h." + std::to_string(l) + "." + suffix;
}

/// lm_head.weight (never prefixed).
inline constexpr const char* lm_head = "lm_head.weight";

}  // namespace prune::gpt2
