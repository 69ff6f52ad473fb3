// prune/io/gguf_convert.hpp: Hugging Face checkpoints <-> GGUF for Llama and GPT-2, and
// removing whole blocks from a GGUF model.
//
// Everything here works on plain `tensor_blob`s (a name, a row-major shape, a ggml type and
// the bytes, owned or borrowed) and on `decoder_hparams` (per-layer head counts and FFN
// widths, so physically pruned models convert too), so a model implementation can call it
// without this header knowing the model.
//
// What the conversion does, as llama.cpp's convert_hf_to_gguf.py does it:
// - names: `model.layers.N.self_attn.q_proj.weight` <-> `blk.N.attn_q.weight`, ... (Llama);
//   `transformer.h.N.attn.c_attn.weight` (or `h.N.` without the prefix) <->
//   `blk.N.attn_qkv.weight`, ... (GPT-2); rotary `inv_freq` and GPT-2's `attn.bias` /
//   `attn.masked_bias` buffers are dropped;
// - Llama's q and k projections (weights and biases) have their rows permuted within each
//   head from Hugging Face's rotary layout (pairs i, i + d/2) to ggml's (pairs 2i, 2i + 1):
//   rows reshaped to [heads, 2, d/2], the two middle axes swapped; k uses the KV head count;
//   the inverse is applied on the way back;
// - GPT-2's Conv1D weights (`c_attn`, `c_proj`, `c_fc`: stored [in, out]) are transposed to
//   [out, in]; its tied `output.weight` is written as a copy of `token_embd.weight`;
// - 1-d tensors, `*_norm.weight`, biases and `position_embd` are stored F32 (exact from F16
//   and BF16); other tensors keep their type (F32, F16, BF16);
// - metadata: `general.architecture`, `general.file_type`, and `<arch>.block_count`,
//   `context_length`, `embedding_length`, `feed_forward_length`, `attention.head_count`
//   (`_kv` for Llama), `rope.freq_base`, `rope.dimension_count`,
//   `attention.layer_norm_rms_epsilon` (Llama) or `attention.layer_norm_epsilon` (GPT-2),
//   `vocab_size` (Llama), `attention.key_length`/`value_length` when heads are not
//   embedding / heads wide; a per-layer value is a u32 when every layer agrees and an array
//   of i32 (one per layer, what llama.cpp reads) when they differ.
//
// `remove_blocks` drops blocks from a GGUF model as `llama-quantize --prune-layers` does
// (the survivors renumbered 0.. in order, `<arch>.block_count` updated) and also slices the
// per-layer arrays (`feed_forward_length`, `attention.head_count`, `attention.head_count_kv`),
// which llama-quantize leaves at their old length (llama.cpp then refuses the file).
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/gguf.hpp>
#include <prune/io/json.hpp>
#include <prune/io/safetensors.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prune::io {

/// A tensor as the converters move it: name, row-major shape, ggml type, bytes.
struct tensor_blob {
    std::string name;                     ///< the tensor's name
    ggml_type type = ggml_type::F32;      ///< its element type
    std::vector<std::size_t> shape;       ///< row-major extents
    std::vector<std::byte> owned;         ///< the bytes, when the blob owns them
    std::span<const std::byte> borrowed;  ///< the bytes, when they live elsewhere (a mapped file)

    /// The bytes (owned if any, else borrowed).
    [[nodiscard]] std::span<const std::byte> data() const noexcept {
        return owned.empty() ? borrowed : std::span<const std::byte>(owned);
    }
};

/// The most blocks a model may declare (llama.cpp allows 512): a larger count in a file is
/// refused before per-layer vectors are sized by it.
inline constexpr std::size_t max_blocks = 65536;

/// The decoder families converted here.
enum class decoder_arch { llama, gpt2 };

/// GGUF's name of an architecture ("llama", "gpt2").
[[nodiscard]] constexpr const char* arch_name(decoder_arch arch) noexcept {
    return arch == decoder_arch::llama ? "llama" : "gpt2";
}

/// A decoder's hyperparameters, with per-layer widths (physically pruned models differ per layer).
struct decoder_hparams {
    decoder_arch arch = decoder_arch::llama;  ///< the family
    std::size_t n_layer = 0;                  ///< blocks
    std::size_t n_ctx = 0;                    ///< context length (max_position_embeddings / n_positions)
    std::size_t n_embd = 0;                   ///< hidden size
    std::size_t n_vocab = 0;                  ///< vocabulary size
    std::size_t head_dim = 0;                 ///< width of one attention head
    std::vector<std::size_t> n_head;          ///< query heads per layer
    std::vector<std::size_t> n_head_kv;       ///< key/value heads per layer (= n_head for GPT-2)
    std::vector<std::size_t> n_ff;            ///< FFN width per layer
    double rope_freq_base = 10000.0;          ///< Llama's rope_theta
    double norm_eps = 1e-5;                   ///< rms_norm_eps (Llama) or layer_norm_epsilon (GPT-2)
};

namespace detail {

/// (Hugging Face suffix, GGUF suffix) of the per-block tensors, and the global ones.
struct name_pair {
    const char* hf;
    const char* gguf;
};

inline constexpr name_pair llama_block_names[] = {
    {"input_layernorm.weight", "attn_norm.weight"},      {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},            {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.k_proj.bias", "attn_k.bias"},            {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.v_proj.bias", "attn_v.bias"},            {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.o_proj.bias", "attn_output.bias"},       {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},         {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"mlp.gate_proj.bias", "ffn_gate.bias"},             {"mlp.up_proj.bias", "ffn_up.bias"},  // mlp_bias: llama.cpp's optional
    {"mlp.down_proj.bias", "ffn_down.bias"},                                                     // ffn_{gate,up,down}_b
};
inline constexpr name_pair llama_global_names[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
inline constexpr name_pair gpt2_block_names[] = {
    {"ln_1.weight", "attn_norm.weight"},         {"ln_1.bias", "attn_norm.bias"},
    {"attn.c_attn.weight", "attn_qkv.weight"},   {"attn.c_attn.bias", "attn_qkv.bias"},
    {"attn.c_proj.weight", "attn_output.weight"}, {"attn.c_proj.bias", "attn_output.bias"},
    {"ln_2.weight", "ffn_norm.weight"},          {"ln_2.bias", "ffn_norm.bias"},
    {"mlp.c_fc.weight", "ffn_up.weight"},        {"mlp.c_fc.bias", "ffn_up.bias"},
    {"mlp.c_proj.weight", "ffn_down.weight"},    {"mlp.c_proj.bias", "ffn_down.bias"},
};
inline constexpr name_pair gpt2_global_names[] = {
    {"wte.weight", "token_embd.weight"},      {"wpe.weight", "position_embd.weight"},
    {"ln_f.weight", "output_norm.weight"},    {"ln_f.bias", "output_norm.bias"},
    {"lm_head.weight", "output.weight"},
};

/// The per-block name pairs of a family.
inline std::span<const name_pair> block_names(decoder_arch arch) noexcept {
    if (arch == decoder_arch::llama) {
        return llama_block_names;
    }
    return gpt2_block_names;
}

/// The global name pairs of a family.
inline std::span<const name_pair> global_names(decoder_arch arch) noexcept {
    if (arch == decoder_arch::llama) {
        return llama_global_names;
    }
    return gpt2_global_names;
}

/// Splits "<prefix>N.<rest>" into N and rest; nullopt when the name does not start so.
inline std::optional<std::pair<std::size_t, std::string_view>> split_block(std::string_view name,
                                                                           std::string_view prefix) {
    if (name.substr(0, prefix.size()) != prefix) {
        return std::nullopt;
    }
    const std::string_view rest = name.substr(prefix.size());
    std::size_t digits = 0;
    std::size_t n = 0;
    while (digits < rest.size() && digits < 9 && rest[digits] >= '0' && rest[digits] <= '9') {
        n = n * 10 + static_cast<std::size_t>(rest[digits] - '0');
        ++digits;
    }
    if (digits == 0 || digits >= rest.size() || rest[digits] != '.' || (digits > 1 && rest[0] == '0')) {
        return std::nullopt;
    }
    return std::pair{n, rest.substr(digits + 1)};
}

/// The Hugging Face block prefix of a family ("model.layers." / "transformer.h." or "h.").
inline std::vector<std::string_view> hf_block_prefixes(decoder_arch arch) {
    if (arch == decoder_arch::llama) {
        return {"model.layers."};
    }
    return {"transformer.h.", "h."};
}

/// True for tensors llama.cpp's converter drops (rotary caches, attention-mask buffers).
inline bool dropped_by_converter(std::string_view name) {
    const auto ends = [&](std::string_view s) { return name.size() >= s.size() && name.substr(name.size() - s.size()) == s; };
    return ends(".rotary_emb.inv_freq") || ends(".attn.bias") || ends(".attn.masked_bias");
}

}  // namespace detail

/// The GGUF name of a Hugging Face tensor name; nullopt for tensors the conversion drops;
/// format_error naming the tensor when the family has no such tensor.
[[nodiscard]] inline std::optional<std::string> gguf_tensor_name(decoder_arch arch, std::string_view hf_name) {
    if (detail::dropped_by_converter(hf_name)) {
        return std::nullopt;
    }
    const bool llama = arch == decoder_arch::llama;
    for (std::string_view prefix : detail::hf_block_prefixes(arch)) {
        if (const auto block = detail::split_block(hf_name, prefix)) {
            for (const detail::name_pair& p : detail::block_names(arch)) {
                if (block->second == p.hf) {
                    return "blk." + std::to_string(block->first) + "." + p.gguf;
                }
            }
        }
    }
    std::string_view global = hf_name;
    if (!llama && global.substr(0, 12) == "transformer.") {
        global.remove_prefix(12);
    }
    for (const detail::name_pair& p : detail::global_names(arch)) {
        if (global == p.hf) {
            return std::string(p.gguf);
        }
    }
    throw format_error("prune::io: tensor '" + std::string(hf_name) + "' has no GGUF name for a " + arch_name(arch) +
                       " model (expected the tensors of " + (llama ? "LlamaForCausalLM" : "GPT2LMHeadModel") + ")");
}

/// The Hugging Face name of a GGUF tensor name (GPT-2 names get `gpt2_prefix`, e.g.
/// "transformer."); format_error naming the tensor when the family has no such tensor.
[[nodiscard]] inline std::string hf_tensor_name(decoder_arch arch, std::string_view gguf_name,
                                                std::string_view gpt2_prefix = "transformer.") {
    const bool llama = arch == decoder_arch::llama;
    if (const auto block = detail::split_block(gguf_name, "blk.")) {
        for (const detail::name_pair& p : detail::block_names(arch)) {
            if (block->second == p.gguf) {
                return std::string(llama ? "model.layers." : std::string(gpt2_prefix) + "h.") +
                       std::to_string(block->first) + "." + p.hf;
            }
        }
    }
    for (const detail::name_pair& p : detail::global_names(arch)) {
        if (gguf_name == p.gguf) {
            return (llama || std::string_view(p.hf) == "lm_head.weight") ? std::string(p.hf)
                                                                         : std::string(gpt2_prefix) + p.hf;
        }
    }
    throw format_error("prune::io: GGUF tensor '" + std::string(gguf_name) + "' has no Hugging Face name for a " +
                       arch_name(arch) + " model");
}

namespace detail {

/// Rows of `data` (rows x row_bytes) reordered within each of `heads` heads: forward maps
/// Hugging Face's rotary layout to ggml's (convert_hf_to_gguf.py's permute), else back.
inline std::vector<std::byte> permute_rotary_rows(std::span<const std::byte> data, std::size_t rows,
                                                  std::size_t heads, bool forward, const std::string& name) {
    if (heads == 0 || rows % (2 * heads) != 0 || (rows != 0 && data.size() % rows != 0)) {
        throw shape_error("prune::io: tensor '" + name + "' has " + std::to_string(rows) +
                          " rows, which cannot be split into " + std::to_string(heads) +
                          " heads of an even width (expected a multiple of " + std::to_string(2 * heads) + ")");
    }
    std::vector<std::byte> out(data.size());
    if (rows == 0) {
        return out;
    }
    const std::size_t row_bytes = data.size() / rows;
    const std::size_t d = rows / heads;
    const std::size_t half = d / 2;
    for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t i = 0; i < half; ++i) {
            for (std::size_t j = 0; j < 2; ++j) {
                const std::size_t hf_row = h * d + j * half + i;  // [heads, 2, d/2]
                const std::size_t ggml_row = h * d + i * 2 + j;  // [heads, d/2, 2]
                const std::size_t from = forward ? hf_row : ggml_row;
                const std::size_t to = forward ? ggml_row : hf_row;
                std::memcpy(out.data() + to * row_bytes, data.data() + from * row_bytes, row_bytes);
            }
        }
    }
    return out;
}

/// The transpose of a [rows, cols] matrix of `element_bytes`-byte elements.
inline std::vector<std::byte> transpose_bytes(std::span<const std::byte> data, std::size_t rows, std::size_t cols,
                                              std::size_t element_bytes) {
    std::vector<std::byte> out(data.size());
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            std::memcpy(out.data() + (c * rows + r) * element_bytes, data.data() + (r * cols + c) * element_bytes,
                        element_bytes);
        }
    }
    return out;
}

/// The block number of a GGUF name "blk.N....", if any.
inline std::optional<std::size_t> gguf_block_of(std::string_view name) {
    const auto b = split_block(name, "blk.");
    return b ? std::optional<std::size_t>(b->first) : std::nullopt;
}

/// True when `name` ends with `suffix`.
inline bool ends_with(std::string_view name, std::string_view suffix) {
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
}

/// The element size of a non-quantized type; dtype_error naming the tensor otherwise.
inline std::size_t plain_element_bytes(const tensor_blob& t) {
    const ggml_type_traits& tr = traits_of(t.type);
    if (tr.quantized) {
        throw dtype_error("prune::io: tensor '" + t.name + "' is " + tr.name +
                          ", a quantized type (the conversion reorders elements: expected F32, F16 or BF16)");
    }
    return tr.block_bytes;
}

}  // namespace detail

/// A blob's values as another of F32, F16, BF16 (round to nearest even when narrowing;
/// exact when widening, or from F32 values that came from the narrower type).
[[nodiscard]] inline tensor_blob convert_blob(const tensor_blob& t, ggml_type to) {
    const auto is_float = [](ggml_type x) { return x == ggml_type::F32 || x == ggml_type::F16 || x == ggml_type::BF16; };
    if (!is_float(t.type) || !is_float(to)) {
        throw dtype_error("prune::io: tensor '" + t.name + "' cannot be converted from " + ggml_type_name(t.type) +
                          " to " + ggml_type_name(to) + " (expected F32, F16 or BF16 on both sides)");
    }
    tensor_blob out{t.name, to, t.shape, {}, {}};
    if (t.type == to) {
        out.owned.assign(t.data().begin(), t.data().end());
        return out;
    }
    const std::size_t n = t.data().size() / traits_of(t.type).block_bytes;
    std::vector<float> values(n);
    detail::ggml_to_float(t.type, t.data().data(), n, values.data());
    out.owned.resize(n * traits_of(to).block_bytes);
    for (std::size_t i = 0; i < n; ++i) {
        std::byte* p = out.owned.data() + i * traits_of(to).block_bytes;
        if (to == ggml_type::F32) {
            std::memcpy(p, &values[i], 4);
        } else if (to == ggml_type::F16) {
            const half h = to_half(values[i]);
            std::memcpy(p, &h.bits, 2);
        } else {
            const bfloat16 b = to_bfloat16(values[i]);
            std::memcpy(p, &b.bits, 2);
        }
    }
    return out;
}

/// Called with a tensor's bytes once a conversion has read them into a copy of its own (e.g. to
/// drop a file map's pages from the resident set).
using bytes_read = std::function<void(std::span<const std::byte>)>;

/// Hugging Face tensors -> GGUF tensors of the family: names, Llama's q/k row permutation
/// (per-layer head counts from `hp`), GPT-2's transposes and tied output, F32 for 1-d tensors,
/// norms, biases and position embeddings. Dropped buffers disappear. Borrowed bytes that
/// need no change stay borrowed; `read`, when given, gets the bytes of each tensor copied.
[[nodiscard]] inline std::vector<tensor_blob> hf_to_gguf_tensors(const decoder_hparams& hp,
                                                                 std::vector<tensor_blob> hf, const bytes_read& read = {}) {
    std::vector<tensor_blob> out;
    for (tensor_blob& t : hf) {
        const std::span<const std::byte> source = t.data();
        const std::optional<std::string> name = gguf_tensor_name(hp.arch, t.name);
        if (!name) {
            continue;
        }
        const std::string hf_name = std::exchange(t.name, *name);
        const std::optional<std::size_t> block = detail::gguf_block_of(t.name);
        if (block && *block >= hp.n_layer) {
            throw format_error("prune::io: tensor '" + hf_name + "' is in block " + std::to_string(*block) +
                               ", but the model has " + std::to_string(hp.n_layer) + " blocks");
        }
        const bool q = detail::ends_with(t.name, ".attn_q.weight") || detail::ends_with(t.name, ".attn_q.bias");
        const bool k = detail::ends_with(t.name, ".attn_k.weight") || detail::ends_with(t.name, ".attn_k.bias");
        if (hp.arch == decoder_arch::llama && (q || k) && block) {
            (void)detail::plain_element_bytes(t);
            const std::size_t heads = q ? hp.n_head[*block] : hp.n_head_kv[*block];
            t.owned = detail::permute_rotary_rows(t.data(), t.shape.empty() ? 0 : t.shape[0], heads, true, hf_name);
        }
        const bool conv1d = hp.arch == decoder_arch::gpt2 && t.shape.size() == 2 && detail::ends_with(t.name, ".weight") &&
                            (detail::ends_with(t.name, "attn_qkv.weight") || detail::ends_with(t.name, "attn_output.weight") ||
                             detail::ends_with(t.name, "ffn_up.weight") || detail::ends_with(t.name, "ffn_down.weight"));
        if (conv1d) {
            t.owned = detail::transpose_bytes(t.data(), t.shape[0], t.shape[1], detail::plain_element_bytes(t));
            std::swap(t.shape[0], t.shape[1]);
        }
        const bool small = t.shape.size() <= 1 || detail::ends_with(t.name, "_norm.weight") ||
                           !detail::ends_with(t.name, ".weight") || t.name == "position_embd.weight";
        if (small && t.type != ggml_type::F32) {
            t = convert_blob(t, ggml_type::F32);
        }
        if (read && t.data().data() != source.data()) {
            read(source);
        }
        out.push_back(std::move(t));
    }
    const auto has = [&](std::string_view n) {
        return std::any_of(out.begin(), out.end(), [&](const tensor_blob& b) { return b.name == n; });
    };
    if (hp.arch == decoder_arch::gpt2 && !has("output.weight") && has("token_embd.weight")) {
        const auto it = std::find_if(out.begin(), out.end(), [](const tensor_blob& b) { return b.name == "token_embd.weight"; });
        tensor_blob tied{"output.weight", it->type, it->shape, {}, it->data()};
        if (!it->owned.empty()) {
            tied.owned = it->owned;
        }
        out.push_back(std::move(tied));
    }
    return out;
}

/// GGUF tensors of the family -> Hugging Face tensors: names, the inverse q/k permutation,
/// GPT-2's transposes back; GPT-2's tied `output.weight` is dropped. Types stay as stored
/// (norms and biases F32: convert_blob() narrows them exactly when they came from F16/BF16).
/// `read`, when given, gets the bytes of each tensor copied.
[[nodiscard]] inline std::vector<tensor_blob> gguf_to_hf_tensors(const decoder_hparams& hp,
                                                                 std::vector<tensor_blob> gguf,
                                                                 std::string_view gpt2_prefix = "transformer.",
                                                                 const bytes_read& read = {}) {
    std::vector<tensor_blob> out;
    for (tensor_blob& t : gguf) {
        const std::span<const std::byte> source = t.data();
        if (hp.arch == decoder_arch::gpt2 && t.name == "output.weight") {
            continue;
        }
        const std::optional<std::size_t> block = detail::gguf_block_of(t.name);
        const bool q = detail::ends_with(t.name, ".attn_q.weight") || detail::ends_with(t.name, ".attn_q.bias");
        const bool k = detail::ends_with(t.name, ".attn_k.weight") || detail::ends_with(t.name, ".attn_k.bias");
        if (hp.arch == decoder_arch::llama && (q || k) && block && *block < hp.n_layer) {
            (void)detail::plain_element_bytes(t);
            const std::size_t heads = q ? hp.n_head[*block] : hp.n_head_kv[*block];
            t.owned = detail::permute_rotary_rows(t.data(), t.shape.empty() ? 0 : t.shape[0], heads, false, t.name);
        }
        const bool conv1d = hp.arch == decoder_arch::gpt2 && t.shape.size() == 2 && block &&
                            (detail::ends_with(t.name, "attn_qkv.weight") || detail::ends_with(t.name, "attn_output.weight") ||
                             detail::ends_with(t.name, "ffn_up.weight") || detail::ends_with(t.name, "ffn_down.weight"));
        if (conv1d) {
            t.owned = detail::transpose_bytes(t.data(), t.shape[0], t.shape[1], detail::plain_element_bytes(t));
            std::swap(t.shape[0], t.shape[1]);
        }
        t.name = hf_tensor_name(hp.arch, t.name, gpt2_prefix);
        if (read && t.data().data() != source.data()) {
            read(source);
        }
        out.push_back(std::move(t));
    }
    return out;
}

namespace detail {

/// Checks a declared block count against max_blocks.
inline std::size_t checked_blocks(std::uint64_t n, const std::string& what) {
    if (n > max_blocks) {
        throw format_error("prune::io: " + what + " is " + std::to_string(n) + " (expected at most " +
                           std::to_string(max_blocks) + " blocks)");
    }
    return static_cast<std::size_t>(n);
}

/// A per-layer width as GGUF stores it: a u32 when every layer agrees, else an array of i32.
inline gguf_value per_layer_value(const std::vector<std::size_t>& values) {
    if (!values.empty() && std::all_of(values.begin(), values.end(), [&](std::size_t v) { return v == values[0]; })) {
        return gguf_value::scalar(static_cast<std::uint32_t>(values[0]));
    }
    std::vector<std::int32_t> array;
    for (std::size_t v : values) {
        array.push_back(static_cast<std::int32_t>(v));
    }
    return gguf_value::array(array);
}

/// A per-layer width read from GGUF: a scalar for every layer, or one non-negative value per layer.
inline std::vector<std::size_t> per_layer_from(const gguf_value& v, std::size_t n_layer, const std::string& what) {
    if (!v.is_array()) {
        return std::vector<std::size_t>(n_layer, static_cast<std::size_t>(v.as_count(what)));
    }
    const std::vector<std::int64_t> values = v.as_integers(what);
    if (values.size() != n_layer) {
        throw format_error("prune::io: " + what + " has " + std::to_string(values.size()) +
                           " entries (expected one per block, " + std::to_string(n_layer) + ")");
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (values[i] < 0) {
            throw format_error("prune::io: " + what + "[" + std::to_string(i) + "] is " + std::to_string(values[i]) +
                               " (expected a non-negative width)");
        }
        out.push_back(static_cast<std::size_t>(values[i]));
    }
    return out;
}

/// A per-layer width from config.json: a number for every layer, or a list (prune's extension).
inline std::vector<std::size_t> per_layer_from(const json& v, std::size_t n_layer, const std::string& what) {
    if (!v.is_array()) {
        return std::vector<std::size_t>(n_layer, as_size(v, what));
    }
    if (v.size() != n_layer) {
        throw format_error("prune::io: " + what + " has " + std::to_string(v.size()) +
                           " entries (expected one per layer, " + std::to_string(n_layer) + ")");
    }
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < v.size(); ++i) {
        out.push_back(as_size(v[i], what + "[" + std::to_string(i) + "]"));
    }
    return out;
}

/// A per-layer width for config.json: the number when uniform, else the list.
inline json per_layer_json(const std::vector<std::size_t>& values) {
    if (!values.empty() && std::all_of(values.begin(), values.end(), [&](std::size_t v) { return v == values[0]; })) {
        return values[0];
    }
    return values;
}

/// The value of `key` in config.json, or `fallback` when absent or null.
inline const json& member_or(const json& config, const char* key, const json& fallback) {
    return config.contains(key) && !config[key].is_null() ? config[key] : fallback;
}

/// GPT-2's Hugging Face "pruned_heads" ({"layer": [original head indices removed]}, what
/// prune-compact writes) subtracted from the per-layer head counts; format_error naming `where`
/// on a layer that does not exist or a head listed twice or out of range.
inline void subtract_pruned_heads(const json& config, decoder_hparams& hp, const std::string& where) {
    if (!config.contains("pruned_heads") || config["pruned_heads"].is_null()) {
        return;
    }
    const json& pruned = config["pruned_heads"];
    const std::string at = where + ": pruned_heads";
    if (!pruned.is_object()) {
        throw format_error("prune::io: " + at + " is not an object (expected {\"layer\": [heads removed]})");
    }
    for (const auto& item : pruned.items()) {
        const std::string key = item.key() + ".";
        const auto layer = split_block(key, "");
        if (!layer || !layer->second.empty() || layer->first >= hp.n_layer || !item.value().is_array()) {
            throw format_error("prune::io: " + at + ": entry '" + item.key() + "' (expected a layer 0.." +
                               std::to_string(hp.n_layer - 1) + " mapped to a list of heads)");
        }
        std::set<std::size_t> heads;
        for (const json& h : item.value()) {
            const std::size_t head = as_size(h, at + "[" + item.key() + "]");
            if (head >= hp.n_head[layer->first] || !heads.insert(head).second) {
                throw format_error("prune::io: " + at + "[" + item.key() + "]: head " + std::to_string(head) +
                                   " listed twice or out of range (expected distinct heads below " +
                                   std::to_string(hp.n_head[layer->first]) + ")");
            }
        }
        hp.n_head[layer->first] -= heads.size();
        hp.n_head_kv[layer->first] = hp.n_head[layer->first];
    }
}

/// GPT-2's config.json head keys: "n_head" (the heads of a whole layer, n_embd / head_dim) and,
/// when a layer holds fewer, "pruned_heads" naming its last heads removed (Hugging Face's own
/// key: which heads does not change what the kept ones compute).
inline void put_gpt2_heads(json& c, const decoder_hparams& hp) {
    const std::size_t whole = hp.n_embd / hp.head_dim;
    c["n_head"] = whole;
    json pruned = json::object();
    for (std::size_t l = 0; l < hp.n_layer; ++l) {
        json removed = json::array();
        for (std::size_t h = hp.n_head[l]; h < whole; ++h) {
            removed.push_back(h);
        }
        if (!removed.empty()) {
            pruned[std::to_string(l)] = removed;
        }
    }
    if (!pruned.empty()) {
        c["pruned_heads"] = pruned;
    }
}

}  // namespace detail

/// The hyperparameters of a Hugging Face config.json (model_type "llama" or "gpt2").
/// Head counts and FFN widths may be numbers or per-layer lists (what hf_config() writes for
/// physically pruned models). format_error naming `where` and the key on anything else.
[[nodiscard]] inline decoder_hparams hparams_from_hf_config(const json& config, const std::string& where) {
    const std::string type = as_string(require_member(config, "model_type", where), where + ": model_type");
    decoder_hparams hp;
    const auto size_of = [&](const char* key) { return as_size(require_member(config, key, where), where + ": " + key); };
    if (type == "llama") {
        hp.arch = decoder_arch::llama;
        hp.n_layer = detail::checked_blocks(size_of("num_hidden_layers"), where + ": num_hidden_layers");
        hp.n_embd = size_of("hidden_size");
        hp.n_ctx = size_of("max_position_embeddings");
        hp.n_vocab = size_of("vocab_size");
        hp.n_head = detail::per_layer_from(require_member(config, "num_attention_heads", where), hp.n_layer,
                                           where + ": num_attention_heads");
        hp.n_head_kv = detail::per_layer_from(detail::member_or(config, "num_key_value_heads", config.at("num_attention_heads")),
                                              hp.n_layer, where + ": num_key_value_heads");
        hp.n_ff = detail::per_layer_from(require_member(config, "intermediate_size", where), hp.n_layer,
                                         where + ": intermediate_size");
        hp.norm_eps = as_double(detail::member_or(config, "rms_norm_eps", json(1e-6)), where + ": rms_norm_eps");
        hp.rope_freq_base = as_double(detail::member_or(config, "rope_theta", json(10000.0)), where + ": rope_theta");
    } else if (type == "gpt2") {
        hp.arch = decoder_arch::gpt2;
        hp.n_layer = detail::checked_blocks(size_of("n_layer"), where + ": n_layer");
        hp.n_embd = size_of("n_embd");
        const bool positions = config.contains("n_positions") && !config["n_positions"].is_null();
        hp.n_ctx = positions ? size_of("n_positions") : size_of("n_ctx");
        hp.n_vocab = size_of("vocab_size");
        hp.n_head = detail::per_layer_from(require_member(config, "n_head", where), hp.n_layer, where + ": n_head");
        hp.n_head_kv = hp.n_head;
        hp.n_ff = detail::per_layer_from(detail::member_or(config, "n_inner", json(4 * hp.n_embd)), hp.n_layer, where + ": n_inner");
        hp.norm_eps = as_double(detail::member_or(config, "layer_norm_epsilon", json(1e-5)), where + ": layer_norm_epsilon");
    } else {
        throw format_error("prune::io: " + where + ": model_type '" + type + "' (expected llama or gpt2)");
    }
    const std::size_t heads0 = hp.n_head.empty() ? 0 : hp.n_head[0];
    const json fallback_dim = heads0 == 0 ? json(0) : json(hp.n_embd / heads0);
    hp.head_dim = as_size(detail::member_or(config, "head_dim", fallback_dim), where + ": head_dim");
    if (hp.head_dim == 0) {
        throw format_error("prune::io: " + where + ": the attention head width is 0 (expected head_dim > 0, or heads > 0)");
    }
    if (hp.arch == decoder_arch::gpt2) {
        detail::subtract_pruned_heads(config, hp, where);
    }
    return hp;
}

/// A Hugging Face config.json for the hyperparameters (per-layer lists where layers differ).
[[nodiscard]] inline json hf_config(const decoder_hparams& hp) {
    json c = json::object();
    if (hp.arch == decoder_arch::llama) {
        c["architectures"] = {"LlamaForCausalLM"};
        c["model_type"] = "llama";
        c["hidden_size"] = hp.n_embd;
        c["intermediate_size"] = detail::per_layer_json(hp.n_ff);
        c["num_attention_heads"] = detail::per_layer_json(hp.n_head);
        c["num_key_value_heads"] = detail::per_layer_json(hp.n_head_kv);
        c["num_hidden_layers"] = hp.n_layer;
        c["max_position_embeddings"] = hp.n_ctx;
        c["vocab_size"] = hp.n_vocab;
        c["head_dim"] = hp.head_dim;
        c["rms_norm_eps"] = hp.norm_eps;
        c["rope_theta"] = hp.rope_freq_base;
        c["hidden_act"] = "silu";
    } else {
        c["architectures"] = {"GPT2LMHeadModel"};
        c["model_type"] = "gpt2";
        c["n_embd"] = hp.n_embd;
        c["n_inner"] = detail::per_layer_json(hp.n_ff);
        detail::put_gpt2_heads(c, hp);
        c["n_layer"] = hp.n_layer;
        c["n_positions"] = hp.n_ctx;
        c["n_ctx"] = hp.n_ctx;
        c["vocab_size"] = hp.n_vocab;
        c["layer_norm_epsilon"] = hp.norm_eps;
        c["activation_function"] = "gelu_new";
    }
    return c;
}

/// Sets the architecture metadata of the hyperparameters on a writer (see the header comment).
/// `file_type` is llama.cpp's general.file_type (0 all F32, 1 mostly F16, 32 mostly BF16).
inline void put_gguf_metadata(gguf_writer& w, const decoder_hparams& hp, std::uint32_t file_type) {
    const std::string a = arch_name(hp.arch);
    const auto u32 = [](std::size_t v) { return gguf_value::scalar(static_cast<std::uint32_t>(v)); };
    w.set("general.architecture", gguf_value::string(a));
    w.set("general.file_type", gguf_value::scalar(file_type));
    w.set(a + ".block_count", u32(hp.n_layer));
    w.set(a + ".context_length", u32(hp.n_ctx));
    w.set(a + ".embedding_length", u32(hp.n_embd));
    w.set(a + ".feed_forward_length", detail::per_layer_value(hp.n_ff));
    w.set(a + ".attention.head_count", detail::per_layer_value(hp.n_head));
    if (hp.arch == decoder_arch::llama) {
        w.set(a + ".attention.head_count_kv", detail::per_layer_value(hp.n_head_kv));
        w.set(a + ".rope.freq_base", gguf_value::scalar(static_cast<float>(hp.rope_freq_base)));
        w.set(a + ".attention.layer_norm_rms_epsilon", gguf_value::scalar(static_cast<float>(hp.norm_eps)));
        w.set(a + ".rope.dimension_count", u32(hp.head_dim));
        w.set(a + ".vocab_size", u32(hp.n_vocab));
    } else {
        w.set(a + ".attention.layer_norm_epsilon", gguf_value::scalar(static_cast<float>(hp.norm_eps)));
    }
    const bool uniform = std::all_of(hp.n_head.begin(), hp.n_head.end(), [&](std::size_t h) { return h == hp.n_head[0]; });
    if (!uniform || hp.n_head.empty() || hp.n_head[0] == 0 || hp.n_embd / hp.n_head[0] != hp.head_dim) {
        w.set(a + ".attention.key_length", u32(hp.head_dim));
        w.set(a + ".attention.value_length", u32(hp.head_dim));
    }
}

/// The hyperparameters of a GGUF model's metadata (architecture llama or gpt2); the vocabulary
/// size from `<arch>.vocab_size` or `vocab_rows` (token_embd's rows) when absent.
[[nodiscard]] inline decoder_hparams hparams_from_gguf(std::span<const gguf_kv> metadata, std::size_t vocab_rows,
                                                       const std::string& where) {
    const auto find = [&](const std::string& key) -> const gguf_value* {
        for (const gguf_kv& kv : metadata) {
            if (kv.key == key) {
                return &kv.value;
            }
        }
        return nullptr;
    };
    const auto get = [&](const std::string& key) -> const gguf_value& {
        const gguf_value* v = find(key);
        if (v == nullptr) {
            throw format_error("prune::io: " + where + " has no metadata key '" + key + "'");
        }
        return *v;
    };
    const std::string& a = get("general.architecture").as_string(where + ": general.architecture");
    decoder_hparams hp;
    if (a != "llama" && a != "gpt2") {
        throw format_error("prune::io: " + where + ": general.architecture is '" + a + "' (expected llama or gpt2)");
    }
    hp.arch = a == "llama" ? decoder_arch::llama : decoder_arch::gpt2;
    const auto count = [&](const std::string& key) {
        return static_cast<std::size_t>(get(a + key).as_count(where + ": " + a + key));
    };
    hp.n_layer = detail::checked_blocks(count(".block_count"), where + ": " + a + ".block_count");
    hp.n_ctx = count(".context_length");
    hp.n_embd = count(".embedding_length");
    hp.n_ff = detail::per_layer_from(get(a + ".feed_forward_length"), hp.n_layer, where + ": " + a + ".feed_forward_length");
    hp.n_head = detail::per_layer_from(get(a + ".attention.head_count"), hp.n_layer, where + ": " + a + ".attention.head_count");
    const gguf_value* kv = find(a + ".attention.head_count_kv");
    hp.n_head_kv = kv ? detail::per_layer_from(*kv, hp.n_layer, where + ": " + a + ".attention.head_count_kv") : hp.n_head;
    const gguf_value* vocab = find(a + ".vocab_size");
    hp.n_vocab = vocab ? static_cast<std::size_t>(vocab->as_count(where + ": " + a + ".vocab_size")) : vocab_rows;
    const gguf_value* key_length = find(a + ".attention.key_length");
    const std::size_t heads0 = hp.n_head.empty() ? 0 : hp.n_head[0];
    hp.head_dim = key_length ? static_cast<std::size_t>(key_length->as_count(where + ": key_length"))
                             : (heads0 == 0 ? 0 : hp.n_embd / heads0);
    if (hp.arch == decoder_arch::llama) {
        const gguf_value* base = find(a + ".rope.freq_base");
        hp.rope_freq_base = base ? base->as_real(where + ": rope.freq_base") : 10000.0;
        hp.norm_eps = get(a + ".attention.layer_norm_rms_epsilon").as_real(where + ": layer_norm_rms_epsilon");
    } else {
        hp.norm_eps = get(a + ".attention.layer_norm_epsilon").as_real(where + ": layer_norm_epsilon");
    }
    return hp;
}

/// A whole GGUF model in memory: metadata and tensors (borrowed from a gguf_file, or owned).
struct gguf_model {
    std::vector<gguf_kv> metadata;    ///< in file order
    std::vector<tensor_blob> tensors; ///< in file order

    /// The metadata value of a key, or nullptr.
    [[nodiscard]] const gguf_value* find(std::string_view key) const {
        for (const gguf_kv& kv : metadata) {
            if (kv.key == key) {
                return &kv.value;
            }
        }
        return nullptr;
    }
};

/// A model whose tensors borrow the file's bytes (the file must outlive it). The layout keys
/// general.alignment are kept as metadata.
[[nodiscard]] inline gguf_model borrow_gguf_model(const gguf_file& file) {
    gguf_model m;
    m.metadata = file.metadata();
    for (const gguf_tensor_info& t : file.tensors()) {
        m.tensors.push_back({t.name, t.type, t.shape(), {}, file.bytes(t.name)});
    }
    return m;
}

/// Writes a model as GGUF v3, atomically (tensors in the model's order). With `source` (the
/// file `m` was borrowed from), the pages of each tensor that lies in its map are dropped from
/// the resident set once written: a model larger than memory streams through.
inline void write_gguf_model(const gguf_model& m, const std::filesystem::path& path, const gguf_file* source = nullptr) {
    gguf_writer w;
    for (const gguf_kv& kv : m.metadata) {
        w.set(kv.key, kv.value);
    }
    for (const tensor_blob& t : m.tensors) {
        w.add_borrowed(t.name, t.type, t.shape, t.data());
    }
    if (source == nullptr) {
        w.write(path);
        return;
    }
    w.write(path, [source](std::span<const std::byte> part) { source->release_pages(part); });
}

/// The block numbers kept when `removed` go, mapped to their new numbers (0.. in order).
[[nodiscard]] inline std::map<std::size_t, std::size_t> surviving_blocks(std::size_t n_layer,
                                                                          std::span<const std::size_t> removed) {
    std::set<std::size_t> gone;
    for (std::size_t b : removed) {
        if (b >= n_layer) {
            throw value_error("prune::io::remove_blocks: block " + std::to_string(b) + " does not exist (the model has " +
                              std::to_string(n_layer) + " blocks)");
        }
        if (!gone.insert(b).second) {
            throw value_error("prune::io::remove_blocks: block " + std::to_string(b) + " listed twice");
        }
    }
    std::map<std::size_t, std::size_t> kept;
    for (std::size_t b = 0; b < n_layer; ++b) {
        if (!gone.contains(b)) {
            kept.emplace(b, kept.size());
        }
    }
    if (kept.empty() && !removed.empty()) {
        throw value_error("prune::io::remove_blocks: removing all " + std::to_string(n_layer) +
                          " blocks (expected at least one to stay)");
    }
    return kept;
}

/// A "blk.N...." name renumbered by `kept` (old -> new); nullopt when its block was removed;
/// other names unchanged. Also renames imatrix entries ("blk.N.ffn_up.weight.in_sum2").
[[nodiscard]] inline std::optional<std::string> renumber_block(std::string_view name,
                                                               const std::map<std::size_t, std::size_t>& kept) {
    const auto block = detail::split_block(name, "blk.");
    if (!block) {
        return std::string(name);
    }
    const auto it = kept.find(block->first);
    if (it == kept.end()) {
        return std::nullopt;
    }
    return "blk." + std::to_string(it->second) + "." + std::string(block->second);
}

/// The keys of per-layer arrays that remove_blocks() slices (what llama.cpp reads per layer).
inline constexpr const char* per_layer_keys[] = {"feed_forward_length", "attention.head_count",
                                                 "attention.head_count_kv"};

/// Removes whole blocks from a GGUF model of any architecture: their tensors go, the others
/// are renumbered 0.. in order, `<arch>.block_count` is updated and the per-layer arrays
/// (`per_layer_keys`) keep the surviving layers' entries. value_error on a block that does
/// not exist or is listed twice, or when no block would stay; format_error when the metadata
/// is inconsistent.
inline void remove_blocks(gguf_model& m, std::span<const std::size_t> removed) {
    const gguf_value* arch_value = m.find("general.architecture");
    if (arch_value == nullptr) {
        throw format_error("prune::io::remove_blocks: the model has no general.architecture");
    }
    const std::string a = arch_value->as_string("general.architecture");
    const gguf_value* count_value = m.find(a + ".block_count");
    if (count_value == nullptr) {
        throw format_error("prune::io::remove_blocks: the model has no " + a + ".block_count");
    }
    const std::size_t n_layer = detail::checked_blocks(count_value->as_count(a + ".block_count"), a + ".block_count");
    const std::map<std::size_t, std::size_t> kept = surviving_blocks(n_layer, removed);
    std::vector<tensor_blob> tensors;
    for (tensor_blob& t : m.tensors) {
        if (const std::optional<std::string> name = renumber_block(t.name, kept)) {
            t.name = *name;
            tensors.push_back(std::move(t));
        }
    }
    m.tensors = std::move(tensors);
    for (gguf_kv& kv : m.metadata) {
        if (kv.key == a + ".block_count") {
            kv.value = gguf_value::scalar(static_cast<std::uint32_t>(kept.size()));
        }
        for (const char* k : per_layer_keys) {
            if (kv.key == a + "." + k && kv.value.is_array()) {
                const std::vector<std::size_t> old = detail::per_layer_from(kv.value, n_layer, kv.key);
                std::vector<std::size_t> sliced;
                for (const auto& [from, to] : kept) {
                    sliced.push_back(old[from]);
                }
                kv.value = detail::per_layer_value(sliced);
            }
        }
    }
}

/// Converts a Hugging Face model directory (config.json + model.safetensors or shards; Llama
/// or GPT-2) to one GGUF file, atomically. Tensors are read through the mapping and written
/// without a second copy where no reordering is needed, their pages dropped from the resident
/// set once written.
inline void convert_hf_to_gguf(const std::filesystem::path& model_dir, const std::filesystem::path& out) {
    const json config = read_json_file(model_dir / "config.json");
    const decoder_hparams hp = hparams_from_hf_config(config, (model_dir / "config.json").string());
    const checkpoint weights = checkpoint::open(model_dir);
    std::vector<tensor_blob> hf;
    for (const tensor_info& t : weights.tensors()) {
        const std::optional<ggml_type> type = ggml_type_from(t.type);
        if (!type) {
            throw dtype_error("prune::io: tensor '" + t.name + "' is " + dtype_name(t.type) +
                              " (expected F32, F16, BF16, F64, I32 or I64)");
        }
        hf.push_back({t.name, *type, t.shape, {}, weights.bytes(t.name)});
    }
    const bytes_read release = [&weights](std::span<const std::byte> part) {
        for (const safetensors_file& f : weights.files()) {
            f.release_pages(part);  // a no-op outside f's map
        }
    };
    std::vector<tensor_blob> tensors = hf_to_gguf_tensors(hp, std::move(hf), release);
    std::size_t f16 = 0;
    std::size_t bf16 = 0;
    for (const tensor_blob& t : tensors) {
        f16 += t.type == ggml_type::F16 ? 1 : 0;
        bf16 += t.type == ggml_type::BF16 ? 1 : 0;
    }
    gguf_writer w;
    put_gguf_metadata(w, hp, bf16 > f16 ? 32u : f16 > 0 ? 1u : 0u);
    for (const tensor_blob& t : tensors) {
        w.add_borrowed(t.name, t.type, t.shape, t.data());
    }
    w.write(out, release);
}

/// Converts a GGUF file (Llama or GPT-2, F32/F16/BF16) to a Hugging Face model directory
/// (config.json + model.safetensors), written atomically. Norms and biases, stored F32 in
/// GGUF, are written as `small_type` (e.g. BF16 to restore a BF16 checkpoint exactly) or F32.
inline void convert_gguf_to_hf(const std::filesystem::path& gguf_path, const std::filesystem::path& out_dir,
                               ggml_type small_type = ggml_type::F32) {
    const gguf_file file = gguf_file::open(gguf_path);
    const std::size_t vocab_rows =
        file.contains("token_embd.weight") ? file.info("token_embd.weight").shape().front() : 0;
    const decoder_hparams hp = hparams_from_gguf(file.metadata(), vocab_rows, "gguf '" + file.name() + "'");
    const bytes_read release = [&file](std::span<const std::byte> part) { file.release_pages(part); };
    std::vector<tensor_blob> hf = gguf_to_hf_tensors(hp, borrow_gguf_model(file).tensors, "transformer.", release);
    output_directory dir(out_dir);
    safetensors_writer st;
    st.set_metadata("format", "pt");
    for (tensor_blob& t : hf) {
        const bool small = t.shape.size() <= 1 || detail::ends_with(t.name, "wpe.weight");  // stored F32 by the rules
        if (t.type == ggml_type::F32 && small_type != ggml_type::F32 && small) {
            t = convert_blob(t, small_type);
        }
        const std::optional<dtype> d = safetensors_dtype(t.type);
        if (!d) {
            throw dtype_error("prune::io: tensor '" + t.name + "' is " + ggml_type_name(t.type) +
                              " (a Hugging Face checkpoint takes F32, F16, BF16, F64, I32 or I64)");
        }
        st.add_borrowed(t.name, *d, t.shape, t.data());
    }
    json config = hf_config(hp);
    if (hp.arch == decoder_arch::llama) {
        config["tie_word_embeddings"] = !file.contains("output.weight");
        config["attention_bias"] = file.contains("blk.0.attn_q.bias");  // Hugging Face's switch for q/k/v/o biases
        config["mlp_bias"] = file.contains("blk.0.ffn_up.bias");        // and for gate/up/down biases
    }
    st.write(dir / "model.safetensors", release);
    write_file_atomically(dir / "config.json", config.dump(2) + "\n");
    dir.commit();
}

}  // namespace prune::io
