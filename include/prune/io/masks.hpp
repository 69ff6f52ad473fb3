// prune/io/masks.hpp: the two mask file formats of the CLI contract (docs/formats.md).
//
// A structure mask file is JSON, `{"heads": [[1,0,...], ...], "mlps": [1,1,0,...]}`,
// 1 = kept: L rows of heads (rows may differ in length for a model whose layers have
// different head counts) and L MLP flags; a decoder's file may add `"kv_groups": [[1,0], ...]`
// (L rows of K/V heads; a K/V group off removes every query head of its group; checked against
// the model by the decoder) and `"mlp_channels": [[1,1,0,...], ...]` (L rows of MLP channels).
// Any key may be absent, meaning all kept;
// no other key is allowed (a typo must not silently keep everything). Values are 0/1
// (true/false accepted). When the caller gives the expected heads per layer, the file
// is checked against it (shape_error naming the expected shape) and absent keys become
// all-kept masks of that shape; without it an absent key gives an empty group_mask.
//
// An element mask file is safetensors: one U8 tensor per masked parameter, named as
// the parameter, 1 = kept, in logical row-major order (BOOL tensors are accepted on
// reading). Bytes other than 0/1 are a format_error naming the tensor and the index.
//
// Every writer here is atomic (temporary file, fsync, rename).
#pragma once

#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prune::io {

namespace detail {

/// "[12 x 12]" for uniform layouts, "[12, 11, 12]" (heads per layer) otherwise.
inline std::string describe_heads(std::span<const std::size_t> heads_per_layer) {
    bool uniform = true;
    for (std::size_t h : heads_per_layer) {
        uniform = uniform && h == heads_per_layer.front();
    }
    if (uniform && !heads_per_layer.empty()) {
        return std::to_string(heads_per_layer.size()) + " layers x " + std::to_string(heads_per_layer.front()) +
               " heads";
    }
    std::string text = std::to_string(heads_per_layer.size()) + " layers with [";
    for (std::size_t l = 0; l < heads_per_layer.size(); ++l) {
        text += (l ? ", " : "") + std::to_string(heads_per_layer[l]);
    }
    return text + "] heads";
}

/// A 0/1 flag (or boolean); format_error naming where otherwise.
inline bool read_flag(const json& value, const std::string& where) {
    if (value.is_boolean()) {
        return value.get<bool>();
    }
    if (value.is_number_integer() && (value == 0 || value == 1)) {
        return value == 1;
    }
    throw format_error("prune::io: " + where + " is " + describe_json(value) + " (expected 0 or 1)");
}

/// Rows of 0/1 flags (`key` of a structure mask), as many rows as `layers` when known.
inline group_mask read_groups(const json& value, const char* key, const std::string& where, std::optional<std::size_t> layers) {
    const std::string name = "structure mask " + where + ": " + key;
    const json& rows = as_array(value, name);
    if (layers && rows.size() != *layers) {
        throw shape_error("prune::io: " + name + " has " + std::to_string(rows.size()) + " rows (expected " +
                          std::to_string(*layers) + ", one per layer)");
    }
    std::vector<std::size_t> counts;
    for (std::size_t l = 0; l < rows.size(); ++l) counts.push_back(as_array(rows[l], name + "[" + std::to_string(l) + "]").size());
    group_mask mask(counts);
    for (std::size_t l = 0; l < rows.size(); ++l)
        for (std::size_t g = 0; g < counts[l]; ++g)
            mask.set(l, g, read_flag(rows[l][g], name + "[" + std::to_string(l) + "][" + std::to_string(g) + "]"));
    return mask;
}

/// Appends `"key": [[...], ...]` (rows separated by `between`) to a structure mask's JSON text
/// being built; nothing for an empty mask (read back as all kept).
inline void append_groups(std::string& text, const char* key, const group_mask& mask, const char* between) {
    if (mask.layers() == 0) return;
    text += std::string(text.size() > 1 ? ",\n  \"" : "\n  \"") + key + "\": [";
    for (std::size_t l = 0; l < mask.layers(); ++l) {
        text += l ? std::string(between) + "[" : "[";
        for (std::size_t g = 0; g < mask.groups(l); ++g) text += std::string(g ? ", " : "") + (mask.kept(l, g) ? "1" : "0");
        text += "]";
    }
    text += "]";
}

}  // namespace detail

/// Parses structure mask JSON text. `heads_per_layer`, when given, is the shape the mask must
/// have (shape_error otherwise) and fills absent keys with all-kept masks. `where` names the source.
[[nodiscard]] inline structure_mask parse_structure_mask(
    std::string_view text, const std::string& where,
    const std::optional<std::vector<std::size_t>>& heads_per_layer = std::nullopt) {
    const json document = parse_json(text, where);
    if (!document.is_object()) {
        throw format_error("prune::io: structure mask " + where + " is " + describe_json(document) +
                           R"( (expected {"heads": [[1, 0, ...], ...], "mlps": [1, ...]}))");
    }
    for (const auto& [key, value] : document.items()) {
        if (key != "heads" && key != "mlps" && key != "kv_groups" && key != "mlp_channels") {
            throw format_error("prune::io: structure mask " + where + " has an unknown key '" + key +
                               "' (expected only \"heads\", \"mlps\", \"kv_groups\" and \"mlp_channels\")");
        }
    }
    structure_mask mask;
    std::optional<std::size_t> layers;
    if (heads_per_layer) {
        layers = heads_per_layer->size();
    }
    if (document.contains("heads")) {
        const json& rows = as_array(document["heads"], "structure mask " + where + ": heads");
        std::vector<std::size_t> counts;
        for (std::size_t l = 0; l < rows.size(); ++l) {
            counts.push_back(as_array(rows[l], "structure mask " + where + ": heads[" + std::to_string(l) + "]").size());
        }
        if (heads_per_layer && counts != *heads_per_layer) {
            throw shape_error("prune::io: structure mask " + where + ": heads has " + detail::describe_heads(counts) +
                              " (expected " + detail::describe_heads(*heads_per_layer) + ")");
        }
        mask.heads = group_mask(counts);
        for (std::size_t l = 0; l < rows.size(); ++l) {
            for (std::size_t h = 0; h < rows[l].size(); ++h) {
                mask.heads.set(l, h,
                               detail::read_flag(rows[l][h], "structure mask " + where + ": heads[" +
                                                                 std::to_string(l) + "][" + std::to_string(h) + "]"));
            }
        }
        layers = rows.size();
    } else if (heads_per_layer) {
        mask.heads = group_mask(*heads_per_layer);
    }
    if (document.contains("mlps")) {
        const json& flags = as_array(document["mlps"], "structure mask " + where + ": mlps");
        if (layers && flags.size() != *layers) {
            throw shape_error("prune::io: structure mask " + where + ": mlps has " + std::to_string(flags.size()) +
                              " entries (expected " + std::to_string(*layers) + ", one per layer" +
                              (heads_per_layer ? std::string() : std::string(", as many as heads has rows")) + ")");
        }
        mask.mlps = group_mask::uniform(flags.size(), 1);
        for (std::size_t l = 0; l < flags.size(); ++l) {
            mask.mlps.set(l, 0, detail::read_flag(flags[l], "structure mask " + where + ": mlps[" + std::to_string(l) + "]"));
        }
        layers = flags.size();
    } else if (layers) {
        mask.mlps = group_mask::uniform(*layers, 1);
    }
    if (document.contains("kv_groups")) mask.kv_groups = detail::read_groups(document["kv_groups"], "kv_groups", where, layers);
    if (document.contains("mlp_channels")) mask.mlp_channels = detail::read_groups(document["mlp_channels"], "mlp_channels", where, layers);
    return mask;
}

/// Reads a structure mask file (see parse_structure_mask); io_error when unreadable.
[[nodiscard]] inline structure_mask read_structure_mask(
    const std::filesystem::path& path, const std::optional<std::vector<std::size_t>>& heads_per_layer = std::nullopt) {
    return parse_structure_mask(read_text_file(path), "'" + path.string() + "'", heads_per_layer);
}

/// The JSON text of a structure mask: one line per layer of heads. An empty group_mask
/// (no layers) is left out, which reads back as all kept.
[[nodiscard]] inline std::string structure_mask_json(const structure_mask& mask) {
    std::string text = "{";
    if (mask.heads.layers() > 0) {
        text += "\n  \"heads\": [";
        for (std::size_t l = 0; l < mask.heads.layers(); ++l) {
            text += l ? ",\n    [" : "\n    [";
            for (std::size_t h = 0; h < mask.heads.groups(l); ++h) {
                text += h ? ", " : "";
                text += mask.heads.kept(l, h) ? "1" : "0";
            }
            text += "]";
        }
        text += "\n  ]";
    }
    if (mask.mlps.layers() > 0) {
        text += mask.heads.layers() > 0 ? ",\n  \"mlps\": [" : "\n  \"mlps\": [";
        for (std::size_t l = 0; l < mask.mlps.layers(); ++l) {
            if (mask.mlps.groups(l) != 1) {
                throw shape_error("prune::io::structure_mask_json: mlps layer " + std::to_string(l) + " has " +
                                  std::to_string(mask.mlps.groups(l)) + " groups (expected 1 MLP per layer)");
            }
            text += l ? ", " : "";
            text += mask.mlps.kept(l, 0) ? "1" : "0";
        }
        text += "]";
    }
    detail::append_groups(text, "kv_groups", mask.kv_groups, ", ");
    detail::append_groups(text, "mlp_channels", mask.mlp_channels, ",\n    ");
    return text + "\n}\n";
}

/// Writes a structure mask file atomically.
inline void write_structure_mask(const std::filesystem::path& path, const structure_mask& mask) {
    write_file_atomically(path, structure_mask_json(mask));
}

/// Element masks by parameter name.
using element_masks = std::map<std::string, element_mask>;

/// The element mask stored in one tensor of a safetensors file (U8 or BOOL, values 0/1).
[[nodiscard]] inline element_mask element_mask_from(const safetensors_file& file, std::string_view name) {
    const tensor_info& info = file.info(name);
    if (info.type != dtype::U8 && info.type != dtype::BOOL) {
        throw format_error("prune::io: element mask '" + info.name + "' in '" + file.name() + "' is " +
                           dtype_name(info.type) + " (expected U8, 1 = kept)");
    }
    const auto bytes = file.bytes(name);
    const std::span<const std::uint8_t> values(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (values[i] > 1) {
            throw format_error("prune::io: element mask '" + info.name + "' in '" + file.name() + "' has " +
                               std::to_string(values[i]) + " at index " + std::to_string(i) +
                               " (expected 0 or 1, 1 = kept)");
        }
    }
    return element_mask::from_bytes(values, info.extents());
}

/// Every tensor of an element mask safetensors file, by name.
[[nodiscard]] inline element_masks read_element_masks(const safetensors_file& file) {
    element_masks masks;
    for (const tensor_info& info : file.tensors()) {
        masks.emplace(info.name, element_mask_from(file, info.name));
    }
    return masks;
}

/// Reads an element mask file: io_error when unreadable, format_error when malformed.
[[nodiscard]] inline element_masks read_element_masks(const std::filesystem::path& path) {
    return read_element_masks(safetensors_file::open(path));
}

/// Writes named element masks as one U8 tensor each, in the order given, atomically.
inline void write_element_masks(const std::filesystem::path& path,
                                std::span<const std::pair<std::string, element_mask>> masks) {
    safetensors_writer writer;
    for (const auto& [name, mask] : masks) {
        const auto extents = mask.extents().extents();
        const element_mask* m = &mask;  // bytes made as the file is written: one mask's at a time
        writer.add_generated(name, dtype::U8, std::vector<std::size_t>(extents.begin(), extents.end()),
                             [m](std::span<std::byte> out) { m->write_bytes(std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size())); });
    }
    writer.write(path);
}

/// Writes named element masks (in name order), atomically.
inline void write_element_masks(const std::filesystem::path& path, const element_masks& masks) {
    const std::vector<std::pair<std::string, element_mask>> ordered(masks.begin(), masks.end());
    write_element_masks(path, std::span<const std::pair<std::string, element_mask>>(ordered));
}

/// Checks that every mask names a tensor of the checkpoint with the same shape:
/// format_error for an unknown name, shape_error naming both shapes otherwise.
inline void check_element_masks(const element_masks& masks, const checkpoint& model) {
    for (const auto& [name, mask] : masks) {
        if (!model.contains(name)) {
            throw format_error("prune::io: element mask '" + name + "' names no tensor of the model");
        }
        const prune::shape expected = model.info(name).extents();
        if (!(mask.extents() == expected)) {
            throw shape_error("prune::io: element mask '" + name + "' has shape " + mask.extents().to_string() +
                              " (expected " + expected.to_string() + ", the parameter's shape)");
        }
    }
}

}  // namespace prune::io
