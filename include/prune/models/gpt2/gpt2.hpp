// prune/models/gpt2/gpt2.hpp: GPT-2 as Hugging Face's GPT2LMHeadModel (or GPT2Model) stores
// it: its config.json keys and its tensor names.
//
// config.json keys read (model_type "gpt2"): n_embd, n_head, n_layer, vocab_size; n_positions
// (or n_ctx; default 1024), n_inner (null: 4 n_embd), layer_norm_epsilon (1e-5),
// activation_function ("gelu_new" / "gelu_pytorch_tanh", the tanh form, or "gelu", the erf
// form), tie_word_embeddings (true). scale_attn_weights = false and
// scale_attn_by_inverse_layer_idx = true change the attention scale and are refused.
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

#include <string>

namespace prune::gpt2 {

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
    c.intermediate_size = keys::integer(j, "n_inner", where, 4 * c.hidden_size);
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
