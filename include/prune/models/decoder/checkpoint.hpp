// prune/models/decoder/checkpoint.hpp: causal-LM directories in and out: config.json (its
// model_type picks the family: "llama" or "gpt2") + model.safetensors or shards with
// model.safetensors.index.json; F32, F16 or BF16 tensors, loaded to float32 (compute is float32)
// and written back in the dtype they came in.
//
// Loading checks every tensor the config implies: a missing tensor or a wrong shape is a
// format_error naming the tensor, the shape found and the shape expected; a NaN or infinity is
// a format_error naming the tensor and the element. GPT-2's tensors may carry the
// `transformer.` prefix or not (which one is remembered and written back). A tied lm_head
// (tie_word_embeddings) is the token-embedding table; an lm_head.weight in the file is then
// ignored, as Hugging Face ignores it. Saving writes into a staging directory that appears
// whole (atomic), or not at all.
#pragma once

#include <prune/models/decoder/config.hpp>
#include <prune/models/decoder/weights.hpp>
#include <prune/models/gpt2/gpt2.hpp>
#include <prune/models/llama/llama.hpp>
#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace prune::decoder {

/// A decoder config from parsed config.json: model_type "llama" or "gpt2" (format_error naming
/// `where` for anything else).
[[nodiscard]] inline config config_from_json(const io::json& j, const std::string& where = "config.json") {
    if (!j.is_object()) throw format_error(where + ": expected a JSON object");
    const auto it = j.find("model_type");
    if (it == j.end()) throw format_error(where + ": missing key \"model_type\" (expected \"llama\" or \"gpt2\")");
    const std::string type = io::as_string(*it, where + ": \"model_type\"");
    if (type == "llama") return llama::config_from_json(j, where);
    if (type == "gpt2") return gpt2::config_from_json(j, where);
    throw format_error(where + ": unknown model_type \"" + type + "\" (expected \"llama\" or \"gpt2\")");
}

/// Reads config.json (io_error when unreadable, format_error when malformed).
[[nodiscard]] inline config read_config(const std::filesystem::path& path) {
    return config_from_json(io::read_json_file(path), path.string());
}

/// What load_model found besides the weights.
struct load_report {
    io::dtype dtype = io::dtype::F32;  ///< dtype of the token embeddings (what save_model writes back by default)
};

namespace detail {

/// "[a, b]".
inline std::string shape_text(const std::vector<std::int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

/// format_error when the checkpoint lacks a parameter, or holds it in another shape or a
/// non-float dtype (what read_parameter checks before reading).
inline void check_parameter(const io::checkpoint& ckpt, const parameter& p, const std::string& where) {
    if (!ckpt.contains(p.name)) {
        throw format_error(where + ": missing tensor '" + p.name + "' (expected shape " + shape_text(p.file_shape()) + ")");
    }
    const io::tensor_info& info = ckpt.info(p.name);
    const std::vector<std::int64_t> expected = p.file_shape();
    if (info.shape.size() != expected.size() ||
        !std::equal(expected.begin(), expected.end(), info.shape.begin(),
                    [](std::int64_t e, std::size_t f) { return static_cast<std::size_t>(e) == f; })) {
        std::vector<std::int64_t> found(info.shape.begin(), info.shape.end());
        throw format_error(where + ": tensor '" + p.name + "' has shape " + shape_text(found) + ", expected " +
                           shape_text(expected) + " from config.json");
    }
    if (info.type != io::dtype::F32 && info.type != io::dtype::F16 && info.type != io::dtype::BF16 &&
        info.type != io::dtype::F64) {
        throw dtype_error(where + ": tensor '" + p.name + "' has dtype " + std::string(io::dtype_name(info.type)) +
                          " (expected F32, F16, BF16 or F64)");
    }
}

/// Reads one parameter from the checkpoint (transposing a Conv1D weight); format_error when
/// missing, misshapen, of a non-float dtype or not finite.
inline void read_parameter(const io::checkpoint& ckpt, const parameter& p, const std::string& where) {
    check_parameter(ckpt, p, where);
    const std::vector<float> values = ckpt.to_float(p.name);
    const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
    if (bad != values.end()) {
        throw format_error(where + ": tensor '" + p.name + "' holds " + (std::isnan(*bad) ? "NaN" : "an infinity") +
                           " at element " + std::to_string(bad - values.begin()) + " (expected finite weights)");
    }
    if (!p.transposed) {
        std::copy(values.begin(), values.end(), p.data);
        return;
    }
    const auto rows = static_cast<std::size_t>(p.shape[0]), cols = static_cast<std::size_t>(p.shape[1]);
    for (std::size_t i = 0; i < cols; ++i)
        for (std::size_t o = 0; o < rows; ++o) p.data[o * cols + i] = values[i * rows + o];
}

/// A weight's values in the checkpoint's layout: a copy of the row-major [rows, cols] data, or,
/// for a GPT-2 Conv1D weight (`transposed`), its transpose [cols, rows].
[[nodiscard]] inline std::vector<float> file_layout(std::span<const float> data, std::size_t rows, std::size_t cols,
                                                    bool transposed) {
    std::vector<float> v(data.begin(), data.end());
    if (!transposed) return v;
    for (std::size_t o = 0; o < rows; ++o)
        for (std::size_t i = 0; i < cols; ++i) v[i * rows + o] = data[o * cols + i];
    return v;
}

/// value_error, before anything is written, when a weight to save is not finite in the saved
/// dtype: NaN or an infinity in memory, or a finite float that F16 (or BF16) rounds to an
/// infinity. A checkpoint holding NaN/Inf is never written.
template <class E>
void refuse_unsavable(const std::vector<E>& saved, const std::vector<float>& values, const std::string& name,
                      const char* dtype) {
    for (std::size_t i = 0; i < saved.size(); ++i) {
        if (std::isfinite(to_float(saved[i]))) continue;
        const float v = values[i];
        throw value_error("save_model: tensor '" + name + "' element " + std::to_string(i) + " is " +
                          (std::isnan(v)      ? std::string("NaN")
                           : std::isinf(v)    ? std::string("an infinity")
                                              : number_text(v) + ", which overflows " + dtype) +
                          " (expected finite weights; nothing was written)");
    }
}

}  // namespace detail

/// `cfg` (read from the checkpoint's config.json) checked against the checkpoint `ckpt`: GPT-2's
/// tensor prefix found (format_error when neither form of wte.weight is there) and the element
/// count compared (checkpoint::require_elements), before any weight is allocated.
[[nodiscard]] inline config checkpoint_config(config cfg, const io::checkpoint& ckpt, const std::string& where) {
    if (!cfg.is_llama()) {
        if (ckpt.contains("transformer.wte.weight")) cfg.gpt2_prefix = "transformer.";
        else if (ckpt.contains("wte.weight")) cfg.gpt2_prefix = "";
        else
            throw format_error(where + ": missing tensor 'transformer.wte.weight' (or 'wte.weight'; expected shape [" +
                               std::to_string(cfg.vocab_size) + ", " + std::to_string(cfg.hidden_size) + "])");
    }
    ckpt.require_elements(parameter_count(cfg), where);
    return cfg;
}

/// A causal LM's checkpoint (memory-mapped, nothing read yet) and its config.
struct opened_model {
    io::checkpoint ckpt;  ///< the tensors
    config cfg;           ///< config.json, checked against ckpt (checkpoint_config)
    std::string where;    ///< "model PATH", what errors about its tensors begin with
};

/// Opens a model directory (config.json + model.safetensors or shards), or a .safetensors /
/// index file next to its config.json, without reading a weight: io_error when it does not
/// exist, format_error for a config.json that does not fit the checkpoint.
[[nodiscard]] inline opened_model open_model(const std::filesystem::path& path) {
    if (std::error_code ec; !std::filesystem::exists(path, ec)) {
        throw io_error("model '" + path.string() + "' does not exist (expected a directory with config.json and " +
                       "model.safetensors)");
    }
    const std::filesystem::path dir = std::filesystem::is_directory(path) ? path : path.parent_path();
    config cfg = read_config(dir / "config.json");
    io::checkpoint ckpt = io::checkpoint::open(path);
    std::string where = "model " + path.string();
    cfg = checkpoint_config(std::move(cfg), ckpt, where);
    return {std::move(ckpt), std::move(cfg), std::move(where)};
}

/// Loads a causal LM from a model directory (config.json + model.safetensors or shards), or a
/// .safetensors / index file next to its config.json.
[[nodiscard]] inline weights load_model(const std::filesystem::path& path, load_report* report = nullptr) {
    const opened_model m = open_model(path);
    weights w = allocate(m.cfg);
    const auto params = parameters(w);
    for (const auto& p : params) detail::read_parameter(m.ckpt, p, m.where);
    if (report != nullptr) report->dtype = m.ckpt.info(params.front().name).type;
    return w;
}

/// Writes `w`'s config.json (as read) and model.safetensors (in `dtype`: F32, F16 or BF16;
/// GPT-2's Conv1D weights back to [in, out]) into the existing directory `dir` (a staging
/// directory: the caller commits), with `metadata` beside safetensors' "format": "pt".
/// value_error, before model.safetensors is written, when a weight is NaN or infinite in
/// `dtype` (F16 overflows at 65520).
inline void write_model_files(const weights& w, const std::filesystem::path& dir, io::dtype dtype = io::dtype::F32,
                              const std::map<std::string, std::string>& metadata = {}) {
    if (dtype != io::dtype::F32 && dtype != io::dtype::F16 && dtype != io::dtype::BF16) {
        throw dtype_error("save_model: dtype " + std::string(io::dtype_name(dtype)) + " (expected F32, F16 or BF16)");
    }
    {
        std::ofstream config_file(dir / "config.json");
        config_file << w.cfg.source.dump(2) << "\n";
        if (!config_file) throw io_error("cannot write " + (dir / "config.json").string());
    }
    io::safetensors_writer writer;
    for (const auto& [key, value] : metadata) writer.set_metadata(key, value);
    writer.set_metadata("format", "pt");
    for (const auto& p : parameters(const_cast<weights&>(w))) {
        const std::vector<std::int64_t> fs = p.file_shape();
        const prune::shape extents(std::vector<std::size_t>(fs.begin(), fs.end()));
        const std::vector<float> v = detail::file_layout(std::span<const float>(p.data, p.size()),
                                                         static_cast<std::size_t>(p.shape[0]),
                                                         p.shape.size() > 1 ? static_cast<std::size_t>(p.shape[1]) : 1, p.transposed);
        if (dtype == io::dtype::F32) {
            detail::refuse_unsavable(v, v, p.name, "F32");
            writer.add(p.name, make_view<const float>(v.data(), extents));
        } else if (dtype == io::dtype::F16) {
            std::vector<half> h(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) h[i] = to_half(v[i]);
            detail::refuse_unsavable(h, v, p.name, "F16");
            writer.add(p.name, make_view<const half>(h.data(), extents));
        } else {
            std::vector<bfloat16> h(v.size());
            for (std::size_t i = 0; i < v.size(); ++i) h[i] = to_bfloat16(v[i]);
            detail::refuse_unsavable(h, v, p.name, "BF16");
            writer.add(p.name, make_view<const bfloat16>(h.data(), extents));
        }
    }
    writer.write(dir / "model.safetensors");
}

/// Saves `w` as a Hugging Face directory (config.json as read, model.safetensors in `dtype`:
/// F32, F16 or BF16), atomically; GPT-2's Conv1D weights go back to [in, out]. value_error,
/// with nothing written, when a weight is NaN or infinite in `dtype` (F16 overflows at 65520).
inline void save_model(const weights& w, const std::filesystem::path& dir, io::dtype dtype = io::dtype::F32) {
    io::output_directory out(dir);
    write_model_files(w, out.path(), dtype);
    out.commit();
}

/// The parameter of `params` the element mask `mask` names (a Hugging Face name; the mask in the
/// checkpoint's shape, GPT-2's Conv1D weights [in, out]): format_error for a name that is no
/// parameter, shape_error on a shape mismatch. The parameter's data may be null (not loaded).
[[nodiscard]] inline const parameter& masked_parameter(const std::vector<parameter>& params, const std::string& name,
                                                       const element_mask& mask) {
    const auto found = std::find_if(params.begin(), params.end(), [&](const parameter& p) { return p.name == name; });
    if (found == params.end()) throw format_error("element mask '" + name + "' names no parameter of the model");
    const std::vector<std::int64_t> fs = found->file_shape();
    const prune::shape extents(std::vector<std::size_t>(fs.begin(), fs.end()));
    if (mask.extents() != extents) {
        throw shape_error("element mask '" + name + "' has shape " + mask.extents().to_string() + ", the parameter " +
                          extents.to_string());
    }
    return *found;
}

/// Zeroes in p's data every element `mask` prunes (checked by masked_parameter: the checkpoint's shape).
inline void apply_element_mask(const parameter& p, const element_mask& mask) {
    if (!p.transposed) {
        const std::vector<std::int64_t> fs = p.file_shape();
        prune::apply(mask, make_view<float>(p.data, prune::shape(std::vector<std::size_t>(fs.begin(), fs.end()))));
        return;
    }
    const auto rows = static_cast<std::size_t>(p.shape[0]), cols = static_cast<std::size_t>(p.shape[1]);
    for (std::size_t i = 0; i < cols; ++i)
        for (std::size_t o = 0; o < rows; ++o)
            if (!mask.kept(i * rows + o)) p.data[o * cols + i] = 0.0f;
}

/// Zeroes, in `w`, every element the masks prune. Mask names are Hugging Face parameter names
/// and masks have the checkpoint's shape (GPT-2's Conv1D weights: [in, out]); format_error for
/// a name that is no parameter, shape_error on a shape mismatch.
inline void apply_element_masks(weights& w, const io::element_masks& masks) {
    const auto params = parameters(w);
    for (const auto& entry : masks) apply_element_mask(masked_parameter(params, entry.first, entry.second), entry.second);
}

/// The element masks that remove the MLP channels `channels` prunes (layers x MLP width, as a
/// structure mask's mlp_channels; no layers: none): channel j of layer l is the MLP's
/// intermediate unit j, and zeroing its down-projection input (Llama: down_proj column j;
/// GPT-2: mlp.c_proj row j, Conv1D [in, out]) gives what removing it gives (compact). One mask
/// per layer with a pruned channel, by Hugging Face name in the checkpoint's shape: for
/// apply_element_masks or a layer stream. shape_error when `channels` does not fit `cfg`.
[[nodiscard]] inline io::element_masks channel_element_masks(const config& cfg, const group_mask& channels) {
    io::element_masks out;
    check_channel_mask(cfg, channels);
    for (std::size_t l = 0; l < channels.layers(); ++l) {
        const auto F = channels.groups(l), H = static_cast<std::size_t>(cfg.hidden_size);
        if (channels.count_kept(l) == F) continue;
        const bool llama = cfg.is_llama();
        element_mask m(llama ? prune::shape{H, F} : prune::shape{F, H});
        for (std::size_t j = 0; j < F; ++j) {
            if (channels.kept(l, j)) continue;
            for (std::size_t i = 0; i < H; ++i) m.set(llama ? i * F + j : j * H + i, false);
        }
        const int layer = static_cast<int>(l);
        out.emplace(llama ? llama::layer_tensor(layer, "mlp.down_proj.weight")
                          : gpt2::layer_tensor(cfg.gpt2_prefix, layer, "mlp.c_proj.weight"),
                    std::move(m));
    }
    return out;
}

/// Keeps, in `masks`, only what both `masks` and `more` keep (a name only in `more` is added).
/// shape_error when the same name has two shapes.
inline void intersect_element_masks(io::element_masks& masks, const io::element_masks& more) {
    for (const auto& [name, m] : more) {
        const auto [it, added] = masks.emplace(name, m);
        if (added) continue;
        if (it->second.extents() != m.extents())
            throw shape_error("element masks for '" + name + "' have shapes " + it->second.extents().to_string() + " and " +
                              m.extents().to_string());
        it->second &= m;
    }
}

}  // namespace prune::decoder
