// prune/models/llama/llama.hpp: the Llama family as Hugging Face's LlamaForCausalLM stores it:
// its config.json keys and its tensor names.
//
// config.json keys read (model_type "llama"): hidden_size, num_attention_heads,
// num_hidden_layers, intermediate_size, vocab_size; num_key_value_heads (default: the query
// heads), head_dim (default hidden_size / num_attention_heads), max_position_embeddings
// (2048), rms_norm_eps (1e-6), rope_theta (10000), rope_scaling (null, "default", "linear" or
// "llama3"; any other type -- dynamic, yarn, longrope, ... -- is refused by name),
// tie_word_embeddings (false), attention_bias (false: q/k/v/o biases), mlp_bias (false),
// hidden_act ("silu" only). After physical pruning with layers of different widths
// (decoder::compact), num_attention_heads, num_key_value_heads and intermediate_size may be
// per-layer lists (prune's extension, which Hugging Face cannot load); head_dim is then required.
//
// Tensors: model.embed_tokens.weight, model.layers.N.{input_layernorm,
// post_attention_layernorm}.weight, model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias},
// model.layers.N.mlp.{gate,up,down}_proj.{weight,bias}, model.norm.weight, lm_head.weight
// (absent when tied). Weights are [out, in] (nn.Linear).
#pragma once

#include <prune/models/decoder/config.hpp>
#include <prune/error.hpp>
#include <prune/io/json.hpp>

#include <string>

namespace prune::llama {

/// The rope_scaling object of config.json (null or absent: none).
[[nodiscard]] inline decoder::rope_scaling read_rope_scaling(const io::json& j, const std::string& where) {
    decoder::rope_scaling r;
    const auto it = j.find("rope_scaling");
    if (it == j.end() || it->is_null()) return r;
    const std::string at = where + ": rope_scaling";
    if (!it->is_object()) throw format_error(at + " is " + io::describe_json(*it) + " (expected an object or null)");
    std::string type = decoder::config_keys::text(*it, "rope_type", at, "");
    if (type.empty()) type = decoder::config_keys::text(*it, "type", at, "default");
    if (type == "default") return r;
    if (type == "linear") {
        r.type = decoder::rope_scaling_type::linear;
    } else if (type == "llama3") {
        r.type = decoder::rope_scaling_type::llama3;
        r.low_freq_factor = decoder::config_keys::number(*it, "low_freq_factor", at, 1.0);
        r.high_freq_factor = decoder::config_keys::number(*it, "high_freq_factor", at, 4.0);
        r.original_max_position_embeddings = decoder::config_keys::number(*it, "original_max_position_embeddings", at, 8192.0);
    } else {
        throw format_error(at + " type \"" + type +
                           "\" is not supported (expected \"default\", \"linear\" or \"llama3\"; dynamic, yarn and "
                           "longrope scalings are not implemented)");
    }
    if (!it->contains("factor")) throw format_error(at + ": missing key \"factor\"");
    r.factor = decoder::config_keys::number(*it, "factor", at, 1.0);
    return r;
}

/// The head counts and MLP widths: numbers, or per-layer lists after physical pruning (prune's
/// extension, written by decoder::compact when layers differ). K/V heads default to the query heads.
inline void read_widths(const io::json& j, const std::string& where, decoder::config& c) {
    namespace keys = decoder::config_keys;
    const int L = c.num_hidden_layers;
    keys::width(j, "num_attention_heads", where, L, std::nullopt, c.num_attention_heads, c.layer_heads);
    if (!j.contains("num_key_value_heads") || j["num_key_value_heads"].is_null()) {
        c.num_key_value_heads = c.num_attention_heads;
        c.layer_kv_heads = c.layer_heads;
    } else {
        keys::width(j, "num_key_value_heads", where, L, std::nullopt, c.num_key_value_heads, c.layer_kv_heads);
    }
    keys::width(j, "intermediate_size", where, L, std::nullopt, c.intermediate_size, c.layer_ffn);
}

/// A decoder config from a Llama config.json; format_error naming `where` and the key on bad values.
[[nodiscard]] inline decoder::config config_from_json(const io::json& j, const std::string& where = "config.json") {
    namespace keys = decoder::config_keys;
    decoder::config c;
    c.arch = decoder::architecture::llama;
    c.source = j;
    c.hidden_size = keys::integer(j, "hidden_size", where, std::nullopt);
    c.num_hidden_layers = keys::integer(j, "num_hidden_layers", where, std::nullopt, 1, 4096);
    read_widths(j, where, c);
    c.vocab_size = keys::integer(j, "vocab_size", where, std::nullopt);
    if (!j.contains("head_dim") || j["head_dim"].is_null()) {
        if (!c.layer_heads.empty()) throw format_error(where + ": per-layer num_attention_heads need a head_dim key");
        if (c.hidden_size % c.num_attention_heads != 0) {
            throw format_error(where + ": hidden_size " + std::to_string(c.hidden_size) +
                               " is not a multiple of num_attention_heads " + std::to_string(c.num_attention_heads) +
                               " and there is no head_dim");
        }
    }
    c.head_dim = keys::integer(j, "head_dim", where, c.layer_heads.empty() ? c.hidden_size / c.num_attention_heads : 0);
    c.max_position_embeddings = keys::integer(j, "max_position_embeddings", where, 2048);
    c.norm_eps = static_cast<float>(keys::number(j, "rms_norm_eps", where, 1e-6));
    c.rope_theta = keys::number(j, "rope_theta", where, 10000.0);
    c.rope = read_rope_scaling(j, where);
    c.tie_word_embeddings = keys::boolean(j, "tie_word_embeddings", where, false);
    c.attention_bias = keys::boolean(j, "attention_bias", where, false);
    c.mlp_bias = keys::boolean(j, "mlp_bias", where, false);
    const std::string act = keys::text(j, "hidden_act", where, "silu");
    if (act != "silu") throw format_error(where + ": hidden_act \"" + act + "\" is not supported (expected \"silu\")");
    c.act = decoder::activation::silu;
    c.validate(where);
    return c;
}

/// The Hugging Face name of a per-layer tensor: model.layers.<l>.<suffix>.
[[nodiscard]] inline std::string layer_tensor(int l, const std::string& suffix) {
    return "model.layers." + std::to_string(l) + "." + suffix;
}

/// model.embed_tokens.weight
inline constexpr const char* embed_tokens = "model.embed_tokens.weight";
/// model.norm.weight
inline constexpr const char* final_norm = "model.norm.weight";
/// lm_head.weight
inline constexpr const char* lm_head = "lm_head.weight";

}  // namespace prune::llama
