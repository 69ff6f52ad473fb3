// prune/models/bert/checkpoint.hpp: Hugging Face model directories in and out: config.json +
// model.safetensors (or shards) + optional vocab.txt, tensors named as
// BertForSequenceClassification names them (the `bert.` prefix may be absent), F32, F16
// or BF16 (loaded to float); element masks applied by parameter name.
//
// Loading checks every tensor against the config (pruned_heads and pruned_mlps included):
// a missing tensor or a wrong shape is a format_error naming the tensor, the shape found and
// the shape expected; a NaN or infinity in a weight is a format_error naming the tensor and
// the element. Tensors that pruning emptied (Q/K/V of a layer without heads, the
// dense layers of a removed MLP) may be absent or present with a zero extent. Saving writes
// into a staging directory that appears whole (atomic), or not at all.
#pragma once

#include <prune/models/bert/config.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace prune::bert {

/// How to load a model.
struct load_options {
    /// Require bert.pooler.* and classifier.* (false: leave them empty when absent, e.g. to
    /// fine-tune a pre-trained encoder with a fresh head).
    bool require_head = true;
};

namespace detail {

inline std::string shape_text(const std::vector<std::size_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        s += (i ? ", " : "") + std::to_string(shape[i]);
    }
    return s + "]";
}

/// Reads a tensor into `out` (size = product of `shape`); format_error when missing or misshapen.
inline void read_tensor(const io::checkpoint& ckpt, const std::string& name, const std::vector<std::size_t>& shape,
                        float* out, const std::string& where) {
    std::size_t numel = 1;
    for (auto e : shape) {
        numel *= e;
    }
    if (!ckpt.contains(name)) {
        if (numel == 0) {
            return;
        }
        throw format_error(where + ": missing tensor '" + name + "' (expected shape " + shape_text(shape) + ")");
    }
    const io::tensor_info& info = ckpt.info(name);
    if (info.shape != shape) {
        throw format_error(where + ": tensor '" + name + "' has shape " + shape_text(info.shape) + ", expected " +
                           shape_text(shape) + " from config.json");
    }
    if (numel == 0) {
        return;
    }
    if (info.type != io::dtype::F32 && info.type != io::dtype::F16 && info.type != io::dtype::BF16 &&
        info.type != io::dtype::F64) {
        throw dtype_error(where + ": tensor '" + name + "' has dtype " + std::string(io::dtype_name(info.type)) +
                          " (expected F32, F16, BF16 or F64)");
    }
    const std::vector<float> values = ckpt.to_float(name);
    PRUNE_ASSERT(values.size() == numel);
    // A NaN or infinity would poison every logit and break magnitude sorting: reject it here.
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    if (bad != values.end()) {
        throw format_error(where + ": tensor '" + name + "' holds " + (std::isnan(*bad) ? "NaN" : "an infinity") +
                           " at element " + std::to_string(bad - values.begin()) + " (expected finite weights)");
    }
    std::copy(values.begin(), values.end(), out);
}

}  // namespace detail

/// Loads weights from an HF model directory (or a .safetensors file next to its config.json).
[[nodiscard]] inline weights load_model(const std::filesystem::path& path, const load_options& options = {}) {
    if (std::error_code ec; !std::filesystem::exists(path, ec)) {
        throw io_error("model '" + path.string() + "' does not exist (expected a directory with config.json and " +
                       "model.safetensors)");
    }
    const std::filesystem::path dir = std::filesystem::is_directory(path) ? path : path.parent_path();
    const std::filesystem::path config_path = dir / "config.json";
    const config cfg = read_config(config_path.string());
    const io::checkpoint ckpt = io::checkpoint::open(path);
    const std::string where = "model " + path.string();
    std::string prefix;
    if (ckpt.contains("bert.embeddings.word_embeddings.weight")) {
        prefix = "bert.";
    } else if (!ckpt.contains("embeddings.word_embeddings.weight")) {
        throw format_error(where + ": missing tensor 'bert.embeddings.word_embeddings.weight' (expected shape [" +
                           std::to_string(cfg.vocab_size) + ", " + std::to_string(cfg.hidden_size) + "])");
    }
    const bool has_pooler = ckpt.contains(prefix + "pooler.dense.weight");
    const bool has_classifier = ckpt.contains("classifier.weight");
    const bool head = options.require_head || (has_pooler && has_classifier);
    ckpt.require_elements(parameter_count(cfg, head), where);
    weights w = allocate(cfg, head);
    const std::string bert_prefix = prefix;
    for (auto& p : parameters(w)) {
        std::string name = p.name;
        if (name.rfind("bert.", 0) == 0) {
            name = bert_prefix + name.substr(5);
        }
        std::vector<std::size_t> shape(p.shape.begin(), p.shape.end());
        detail::read_tensor(ckpt, name, shape, p.data, where);
    }
    // Zero-extent tensors the loop above skipped must, when present, have the right (empty) shape.
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        const auto& L = w.layers[l];
        const std::string p = prefix + "encoder.layer." + std::to_string(l) + ".";
        const auto hidden = static_cast<std::size_t>(cfg.hidden_size);
        const auto a = static_cast<std::size_t>(L.attention_width());
        const auto ffn = static_cast<std::size_t>(L.ffn());
        auto check_empty = [&](const std::string& name, std::vector<std::size_t> shape) {
            detail::read_tensor(ckpt, name, shape, nullptr, where);
        };
        if (a == 0) {
            for (const char* part : {"query", "key", "value"}) {
                check_empty(p + "attention.self." + part + ".weight", {0, hidden});
                check_empty(p + "attention.self." + part + ".bias", {0});
            }
            check_empty(p + "attention.output.dense.weight", {hidden, 0});
        }
        if (ffn == 0 && ckpt.contains(p + "intermediate.dense.weight")) {
            check_empty(p + "intermediate.dense.weight", {0, hidden});
        }
    }
    return w;
}

/// How to save a model.
struct save_options {
    io::dtype dtype = io::dtype::F32;        ///< F32, F16 or BF16
    std::filesystem::path copy_vocab_from;   ///< a model directory whose vocab.txt (and tokenizer files) to carry along
};

/// Saves `w` as an HF model directory (config.json with pruned_heads and pruned_mlps,
/// model.safetensors, vocab.txt when copy_vocab_from has one), atomically.
inline void save_model(const weights& w, const std::filesystem::path& dir, const save_options& options = {}) {
    if (options.dtype != io::dtype::F32 && options.dtype != io::dtype::F16 && options.dtype != io::dtype::BF16) {
        throw dtype_error("save_model: dtype " + std::string(io::dtype_name(options.dtype)) +
                          " (expected F32, F16 or BF16)");
    }
    io::output_directory out(dir);
    {
        std::ofstream config_file(out / "config.json");
        config_file << w.cfg.to_json().dump(2) << "\n";
        if (!config_file) {
            throw io_error("cannot write " + (out / "config.json").string());
        }
    }
    io::safetensors_writer writer;
    writer.set_metadata("format", "pt");
    for (const auto& p : parameters(const_cast<weights&>(w))) {
        const prune::shape extents(std::vector<std::size_t>(p.shape.begin(), p.shape.end()));
        if (options.dtype == io::dtype::F32) {
            writer.add(p.name, make_view<const float>(p.data, extents));
        } else if (options.dtype == io::dtype::F16) {
            std::vector<half> v(p.size());
            for (std::size_t i = 0; i < v.size(); ++i) {
                v[i] = to_half(p.data[i]);
            }
            writer.add(p.name, make_view<const half>(v.data(), extents));
        } else {
            std::vector<bfloat16> v(p.size());
            for (std::size_t i = 0; i < v.size(); ++i) {
                v[i] = to_bfloat16(p.data[i]);
            }
            writer.add(p.name, make_view<const bfloat16>(v.data(), extents));
        }
    }
    writer.write(out / "model.safetensors");
    if (!options.copy_vocab_from.empty()) {
        const std::filesystem::path from = std::filesystem::is_directory(options.copy_vocab_from)
                                               ? options.copy_vocab_from
                                               : options.copy_vocab_from.parent_path();
        for (const char* name : {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
            if (std::filesystem::is_regular_file(from / name)) {
                std::filesystem::copy_file(from / name, out / name);
            }
        }
    }
    out.commit();
}

/// Zeroes, in `w`, every element the masks prune. Mask names are parameter names, with or
/// without the `bert.` prefix; format_error for a name that is no parameter, shape_error on a size mismatch.
inline void apply_element_masks(weights& w, const io::element_masks& masks) {
    auto params = parameters(w);
    for (const auto& [name, mask] : masks) {
        const parameter* found = nullptr;
        for (const auto& p : params) {
            if (p.name == name || (p.name.rfind("bert.", 0) == 0 && p.name.substr(5) == name)) {
                found = &p;
                break;
            }
        }
        if (found == nullptr) {
            throw format_error("element mask '" + name + "' names no parameter of the model");
        }
        const std::vector<std::size_t> shape(found->shape.begin(), found->shape.end());
        if (mask.extents() != prune::shape(shape)) {
            throw shape_error("element mask '" + name + "' has shape " + mask.extents().to_string() +
                              ", the parameter " + prune::shape(shape).to_string());
        }
        prune::apply(mask, make_view<float>(found->data, prune::shape(shape)));
    }
}

}  // namespace prune::bert
