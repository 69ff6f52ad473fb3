// prune/models/decoder/weights.hpp: the parameters of a decoder in memory (float32, row-major,
// every linear layer [out, in] as nn.Linear stores it), each with its Hugging Face name, and
// deterministic random initialisation for tests.
//
// Per layer the query, key and value weights are stacked in one [(Hq + 2 Hkv) d, hidden]
// matrix (rows: Hq query heads, then Hkv key heads, then Hkv value heads, d rows each), so the
// forward pass does one product; GPT-2's c_attn already has that layout (transposed). Llama's
// gate and up projections are stacked likewise ([2 F, hidden]: gate rows, then up rows).
// Layers carry their own head counts and MLP width so that physically pruned shapes fit.
#pragma once

#include <prune/models/decoder/config.hpp>
#include <prune/models/gpt2/gpt2.hpp>
#include <prune/models/llama/llama.hpp>
#include <prune/error.hpp>
#include <prune/mask.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

namespace prune::decoder {

/// One decoder layer.
struct layer_weights {
    int q_heads = 0;                 ///< query heads kept
    int kv_heads = 0;                ///< key / value heads kept
    int head_dim = 0;                ///< width of one head
    int ffn = 0;                     ///< MLP width (0: MLP removed)
    std::vector<float> norm1;        ///< [hidden] input_layernorm / ln_1 scale
    std::vector<float> norm1_bias;   ///< [hidden] ln_1 shift (gpt2), else empty
    std::vector<float> qkv;          ///< [(Hq + 2 Hkv) d, hidden]
    std::vector<float> qkv_bias;     ///< [(Hq + 2 Hkv) d] or empty
    std::vector<float> out;          ///< [hidden, Hq d] o_proj / attn.c_proj
    std::vector<float> out_bias;     ///< [hidden] or empty
    std::vector<float> norm2;        ///< [hidden] post_attention_layernorm / ln_2 scale
    std::vector<float> norm2_bias;   ///< [hidden] ln_2 shift (gpt2), else empty
    std::vector<float> up;           ///< llama: [2F, hidden] gate rows then up rows; gpt2: [F, hidden] c_fc
    std::vector<float> up_bias;      ///< [2F] / [F] or empty
    std::vector<float> down;         ///< [hidden, F] down_proj / mlp.c_proj
    std::vector<float> down_bias;    ///< [hidden] or empty

    /// Rows of the stacked Q/K/V matrix.
    [[nodiscard]] int qkv_rows() const { return (q_heads + 2 * kv_heads) * head_dim; }
    /// Width of the attention context (Hq d).
    [[nodiscard]] int attention_width() const { return q_heads * head_dim; }
};

/// Every parameter of a causal LM.
struct weights {
    config cfg;                       ///< the shape
    std::vector<float> embed;         ///< [vocab, hidden] token embeddings
    std::vector<float> positions;     ///< [max_positions, hidden] (gpt2), else empty
    std::vector<layer_weights> layers;  ///< decoder layers
    std::vector<float> final_norm;    ///< [hidden]
    std::vector<float> final_norm_bias;  ///< [hidden] (gpt2), else empty
    std::vector<float> lm_head;       ///< [vocab, hidden]; empty when tied to embed

    /// The output projection [vocab, hidden] (lm_head, or the embeddings when tied).
    [[nodiscard]] const float* output_projection() const { return lm_head.empty() ? embed.data() : lm_head.data(); }
};

/// One named parameter: its Hugging Face name, storage, in-memory shape ([out, in] or [n]) and
/// whether the checkpoint stores it transposed (GPT-2's Conv1D: [in, out] on disk).
struct parameter {
    std::string name;                 ///< e.g. "model.layers.3.self_attn.q_proj.weight"
    float* data = nullptr;            ///< contiguous row-major storage
    std::vector<std::int64_t> shape;  ///< in-memory shape
    bool transposed = false;          ///< stored [in, out] in the checkpoint
    /// Elements.
    [[nodiscard]] std::size_t size() const {
        std::size_t n = 1;
        for (auto d : shape) n *= static_cast<std::size_t>(d);
        return n;
    }
    /// The elements.
    [[nodiscard]] std::span<float> values() const { return {data, size()}; }
    /// The shape in the checkpoint (transposed back for Conv1D weights).
    [[nodiscard]] std::vector<std::int64_t> file_shape() const {
        return transposed ? std::vector<std::int64_t>{shape[1], shape[0]} : shape;
    }
};

namespace detail {

/// Appends a matrix (rows x cols at element `at` of `storage`; cols < 0: a vector of rows) to
/// `out` when it has elements; its data is null while `storage` is empty (a layer not loaded).
inline void add_parameter(std::vector<parameter>& out, std::string name, std::vector<float>& storage, std::int64_t at,
                          std::int64_t rows, std::int64_t cols, bool transposed = false) {
    if (rows <= 0 || cols == 0) return;
    float* data = storage.empty() ? nullptr : storage.data() + at;
    out.push_back({std::move(name), data, cols < 0 ? std::vector<std::int64_t>{rows} : std::vector<std::int64_t>{rows, cols},
                   transposed});
}

/// Llama's parameters of layer l.
inline void llama_layer_parameters(std::vector<parameter>& out, layer_weights& L, int l, int hidden) {
    const std::int64_t d = L.head_dim, q = L.q_heads * d, kv = L.kv_heads * d, F = L.ffn, H = hidden;
    auto name = [l](const char* s) { return llama::layer_tensor(l, s); };
    add_parameter(out, name("input_layernorm.weight"), L.norm1, 0, H, -1);
    add_parameter(out, name("self_attn.q_proj.weight"), L.qkv, 0, q, H);
    add_parameter(out, name("self_attn.k_proj.weight"), L.qkv, q * H, kv, H);
    add_parameter(out, name("self_attn.v_proj.weight"), L.qkv, (q + kv) * H, kv, H);
    if (!L.qkv_bias.empty()) {
        add_parameter(out, name("self_attn.q_proj.bias"), L.qkv_bias, 0, q, -1);
        add_parameter(out, name("self_attn.k_proj.bias"), L.qkv_bias, q, kv, -1);
        add_parameter(out, name("self_attn.v_proj.bias"), L.qkv_bias, q + kv, kv, -1);
    }
    add_parameter(out, name("self_attn.o_proj.weight"), L.out, 0, H, q);
    if (!L.out_bias.empty()) add_parameter(out, name("self_attn.o_proj.bias"), L.out_bias, 0, H, -1);
    add_parameter(out, name("post_attention_layernorm.weight"), L.norm2, 0, H, -1);
    add_parameter(out, name("mlp.gate_proj.weight"), L.up, 0, F, H);
    add_parameter(out, name("mlp.up_proj.weight"), L.up, F * H, F, H);
    if (!L.up_bias.empty()) {
        add_parameter(out, name("mlp.gate_proj.bias"), L.up_bias, 0, F, -1);
        add_parameter(out, name("mlp.up_proj.bias"), L.up_bias, F, F, -1);
    }
    add_parameter(out, name("mlp.down_proj.weight"), L.down, 0, H, F);
    if (!L.down_bias.empty()) add_parameter(out, name("mlp.down_proj.bias"), L.down_bias, 0, H, -1);
}

/// GPT-2's parameters of layer l.
inline void gpt2_layer_parameters(std::vector<parameter>& out, layer_weights& L, int l, int hidden,
                                  const std::string& prefix) {
    const std::int64_t A = L.attention_width(), rows = L.qkv_rows(), F = L.ffn, H = hidden;
    auto name = [&](const char* s) { return gpt2::layer_tensor(prefix, l, s); };
    add_parameter(out, name("ln_1.weight"), L.norm1, 0, H, -1);
    add_parameter(out, name("ln_1.bias"), L.norm1_bias, 0, H, -1);
    add_parameter(out, name("attn.c_attn.weight"), L.qkv, 0, rows, H, true);
    add_parameter(out, name("attn.c_attn.bias"), L.qkv_bias, 0, rows, -1);
    add_parameter(out, name("attn.c_proj.weight"), L.out, 0, H, A, true);
    add_parameter(out, name("attn.c_proj.bias"), L.out_bias, 0, H, -1);
    add_parameter(out, name("ln_2.weight"), L.norm2, 0, H, -1);
    add_parameter(out, name("ln_2.bias"), L.norm2_bias, 0, H, -1);
    add_parameter(out, name("mlp.c_fc.weight"), L.up, 0, F, H, true);
    add_parameter(out, name("mlp.c_fc.bias"), L.up_bias, 0, F, -1);
    add_parameter(out, name("mlp.c_proj.weight"), L.down, 0, H, F, true);
    add_parameter(out, name("mlp.c_proj.bias"), L.down_bias, 0, H, -1);
}

}  // namespace detail

/// Every non-empty parameter of `w` in checkpoint order, named as Hugging Face names them
/// (GPT-2 under w.cfg.gpt2_prefix). Q/K/V (and gate/up) are views into the stacked storage.
[[nodiscard]] inline std::vector<parameter> parameters(weights& w) {
    std::vector<parameter> out;
    const int H = w.cfg.hidden_size;
    const std::int64_t V = w.cfg.vocab_size;
    if (w.cfg.is_llama()) {
        detail::add_parameter(out, llama::embed_tokens, w.embed, 0, V, H);
        for (std::size_t l = 0; l < w.layers.size(); ++l) detail::llama_layer_parameters(out, w.layers[l], static_cast<int>(l), H);
        detail::add_parameter(out, llama::final_norm, w.final_norm, 0, H, -1);
        if (!w.lm_head.empty()) detail::add_parameter(out, llama::lm_head, w.lm_head, 0, V, H);
        return out;
    }
    const std::string& p = w.cfg.gpt2_prefix;
    detail::add_parameter(out, gpt2::global_tensor(p, "wte.weight"), w.embed, 0, V, H);
    detail::add_parameter(out, gpt2::global_tensor(p, "wpe.weight"), w.positions, 0, w.cfg.max_position_embeddings, H);
    for (std::size_t l = 0; l < w.layers.size(); ++l) detail::gpt2_layer_parameters(out, w.layers[l], static_cast<int>(l), H, p);
    detail::add_parameter(out, gpt2::global_tensor(p, "ln_f.weight"), w.final_norm, 0, H, -1);
    detail::add_parameter(out, gpt2::global_tensor(p, "ln_f.bias"), w.final_norm_bias, 0, H, -1);
    if (!w.lm_head.empty()) detail::add_parameter(out, gpt2::lm_head, w.lm_head, 0, V, H);
    return out;
}

/// The parameters of layer l of `w` in checkpoint order (as parameters(w) lists them).
[[nodiscard]] inline std::vector<parameter> layer_parameters(weights& w, std::size_t l) {
    std::vector<parameter> out;
    if (w.cfg.is_llama()) detail::llama_layer_parameters(out, w.layers.at(l), static_cast<int>(l), w.cfg.hidden_size);
    else detail::gpt2_layer_parameters(out, w.layers.at(l), static_cast<int>(l), w.cfg.hidden_size, w.cfg.gpt2_prefix);
    return out;
}

/// Layer l of the shape `cfg` describes (its head counts and widths), zeroed, norm scales 1;
/// with `matrices` false only its vectors (norms, biases): the matrices stay empty, so the
/// layer lists its parameters (layer_parameters) with null data and allocates little.
[[nodiscard]] inline layer_weights allocate_layer(const config& cfg, std::size_t l, bool matrices = true) {
    layer_weights L;
    const auto H = static_cast<std::size_t>(cfg.hidden_size);
    L.q_heads = cfg.heads_in(l);
    L.kv_heads = cfg.kv_heads_in(l);
    L.head_dim = cfg.head_dim;
    L.ffn = cfg.ffn_in(l);
    const auto rows = static_cast<std::size_t>(L.qkv_rows());
    const auto A = static_cast<std::size_t>(L.attention_width());
    const auto F = static_cast<std::size_t>(L.ffn);
    const std::size_t up_rows = cfg.is_llama() ? 2 * F : F;
    L.norm1.assign(H, 1.0f);
    L.norm2.assign(H, 1.0f);
    if (!cfg.is_llama()) {
        L.norm1_bias.assign(H, 0.0f);
        L.norm2_bias.assign(H, 0.0f);
    }
    if (cfg.attention_bias) {
        L.qkv_bias.assign(rows, 0.0f);
        L.out_bias.assign(H, 0.0f);
    }
    if (cfg.mlp_bias) {
        L.up_bias.assign(up_rows, 0.0f);
        L.down_bias.assign(H, 0.0f);
    }
    if (!matrices) return L;
    L.qkv.assign(rows * H, 0.0f);
    L.out.assign(H * A, 0.0f);
    L.up.assign(up_rows * H, 0.0f);
    L.down.assign(H * F, 0.0f);
    return L;
}

/// shape_error unless `channels` (a structure mask's mlp_channels; no layers: all kept) has one
/// row per layer of the model `cfg` describes, as wide as the layer's MLP.
inline void check_channel_mask(const config& cfg, const group_mask& channels) {
    if (channels.layers() == 0) return;
    const auto L = static_cast<std::size_t>(cfg.num_hidden_layers);
    if (channels.layers() != L)
        throw shape_error("mlp_channels has " + std::to_string(channels.layers()) + " rows (expected " + std::to_string(L) +
                          ", one per layer)");
    for (std::size_t l = 0; l < L; ++l) {
        const auto F = static_cast<std::size_t>(allocate_layer(cfg, l, false).ffn);
        if (channels.groups(l) != F)
            throw shape_error("mlp_channels[" + std::to_string(l) + "] has " + std::to_string(channels.groups(l)) +
                              " channels (expected " + std::to_string(F) + ", the layer's MLP width)");
    }
}


/// Allocates (zeroed) weights of the shape `cfg` describes (each layer at its width: uniform,
/// or cfg's per-layer lists).
[[nodiscard]] inline weights allocate(const config& cfg) {
    cfg.validate();
    weights w;
    w.cfg = cfg;
    const auto H = static_cast<std::size_t>(cfg.hidden_size);
    const bool gpt2 = !cfg.is_llama();
    w.embed.assign(static_cast<std::size_t>(cfg.vocab_size) * H, 0.0f);
    if (gpt2) w.positions.assign(static_cast<std::size_t>(cfg.max_position_embeddings) * H, 0.0f);
    w.final_norm.assign(H, 1.0f);
    if (gpt2) w.final_norm_bias.assign(H, 0.0f);
    if (!cfg.tie_word_embeddings) w.lm_head.assign(static_cast<std::size_t>(cfg.vocab_size) * H, 0.0f);
    for (std::size_t l = 0; l < static_cast<std::size_t>(cfg.num_hidden_layers); ++l) w.layers.push_back(allocate_layer(cfg, l));
    return w;
}

/// Elements allocate(cfg) holds, computed without allocating (a double: exact below 2^53): what a
/// loader checks against the checkpoint before trusting config.json's sizes.
[[nodiscard]] inline double parameter_count(const config& cfg) {
    cfg.validate();
    const bool gpt2 = !cfg.is_llama();
    const double H = cfg.hidden_size;
    const double V = cfg.vocab_size;
    double n = V * H + (gpt2 ? cfg.max_position_embeddings * H + 2 * H : H) + (cfg.tie_word_embeddings ? 0.0 : V * H);
    for (std::size_t l = 0; l < static_cast<std::size_t>(cfg.num_hidden_layers); ++l) {
        const double rows = static_cast<double>(cfg.heads_in(l) + 2 * cfg.kv_heads_in(l)) * cfg.head_dim;
        const double A = static_cast<double>(cfg.heads_in(l)) * cfg.head_dim;
        const double F = cfg.ffn_in(l);
        const double up_rows = gpt2 ? F : 2 * F;
        n += (gpt2 ? 4 : 2) * H + rows * H + H * A + up_rows * H + H * F;  // norms, qkv, out, up, down
        if (cfg.attention_bias) n += rows + H;
        if (cfg.mlp_bias) n += up_rows + H;
    }
    return n;
}

/// Weights with deterministic random values: N(0, stddev) everywhere, norm scales 1 + N(0, stddev).
[[nodiscard]] inline weights random_weights(const config& cfg, std::uint64_t seed, float stddev = 0.02f) {
    weights w = allocate(cfg);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, stddev);
    for (auto& p : parameters(w)) {
        const bool scale = p.shape.size() == 1 && (p.name.find("norm.weight") != std::string::npos ||
                                                   p.name.find("ln_") != std::string::npos) &&
                           p.name.find(".bias") == std::string::npos;
        for (float& v : p.values()) v = (scale ? 1.0f : 0.0f) + normal(rng);
    }
    return w;
}

}  // namespace prune::decoder
