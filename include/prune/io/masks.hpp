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
// It may instead hold packed bits (mask_layout::bits): each tensor U8 of shape
// [..., ceil(n/8)], the last axis (length n) packed 8 to a byte, least significant bit first
// (numpy's packbits(m, axis=-1, bitorder='little')), padding bits zero; the file's
// __metadata__ says so with "prune.mask_layout": "bits-lsb" and gives each n in
// "prune.mask_last_dims", a JSON object name -> n. Readers detect the layout.
//
// Every writer here is atomic (temporary file, fsync, rename).
#pragma once

#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
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

/// How an element mask file stores each mask: one byte per element (the default, what
/// safetensors.load_file users expect) or 8 elements per byte along the last axis.
enum class mask_layout { bytes, bits };

namespace detail {

inline constexpr const char* mask_layout_key = "prune.mask_layout";     ///< __metadata__: the layout
inline constexpr const char* mask_bits_lsb = "bits-lsb";                ///< its value for packed bits
inline constexpr const char* mask_last_dims_key = "prune.mask_last_dims";  ///< name -> unpacked last axis

/// ceil(n / 8) without overflow: the bytes of n packed bits.
constexpr std::size_t packed_bytes(std::size_t n) noexcept { return n / 8 + (n % 8 != 0 ? 1 : 0); }

/// The layout a mask file's __metadata__ declares; format_error for an unknown one.
inline mask_layout layout_of(const safetensors_file& file) {
    const auto it = file.metadata().find(mask_layout_key);
    if (it == file.metadata().end()) return mask_layout::bytes;
    if (it->second != mask_bits_lsb) {
        throw format_error("prune::io: element mask file '" + file.name() + "' has __metadata__ " + mask_layout_key +
                           " = '" + it->second + "' (expected '" + mask_bits_lsb + "')");
    }
    return mask_layout::bits;
}

/// The "prune.mask_last_dims" object of a bit-packed mask file; format_error when absent or not an object.
inline json last_dims_of(const safetensors_file& file) {
    const std::string where = "element mask file '" + file.name() + "': __metadata__ " + mask_last_dims_key;
    const auto it = file.metadata().find(mask_last_dims_key);
    if (it == file.metadata().end()) throw format_error("prune::io: " + where + " is missing (needed with packed bits)");
    json dims = parse_json(it->second, where);
    if (!dims.is_object()) throw format_error("prune::io: " + where + " is " + describe_json(dims) + " (expected {\"name\": last-axis length, ...})");
    return dims;
}

/// The mask of bit-packed tensor `info` (bytes `packed`), its last axis `last` elements long:
/// format_error when the stored shape disagrees with `last` or a padding bit is set.
inline element_mask unpack_bits(const tensor_info& info, std::span<const std::uint8_t> packed, std::size_t last,
                                const std::string& file) {
    const std::string where = "element mask '" + info.name + "' in '" + file + "'";
    if (info.type != dtype::U8 || info.shape.empty() || info.shape.back() != packed_bytes(last)) {
        std::string got = dtype_name(info.type) + std::string(" [");
        for (std::size_t d = 0; d < info.shape.size(); ++d) got += (d ? ", " : "") + std::to_string(info.shape[d]);
        throw format_error("prune::io: " + where + " is " + got + "] (expected U8 [..., " + std::to_string(packed_bytes(last)) +
                           "]: " + std::to_string(last) + " bits packed per row, as " + mask_last_dims_key + " says)");
    }
    std::vector<std::size_t> extents = info.shape;
    extents.back() = last;  // numel <= 8 * the stored bytes, which the file holds: no untrusted allocation
    element_mask mask(prune::shape(extents), false);
    const std::span<std::uint64_t> words = mask.words_mutable();
    if (last % 8 == 0 && std::endian::native == std::endian::little) {  // one bit stream, no padding
        if (!packed.empty()) std::memcpy(words.data(), packed.data(), packed.size());
        return mask;
    }
    const std::size_t row_bytes = info.shape.back(), rows = row_bytes == 0 ? 0 : packed.size() / row_bytes;
    for (std::size_t row = 0, b = 0; row < rows; ++row) {
        for (std::size_t k = 0; k < row_bytes; ++k, ++b) {
            const std::size_t bits = std::min<std::size_t>(8, last - 8 * k);
            const std::uint64_t value = packed[b];
            if (bits < 8 && (value >> bits) != 0) {
                throw format_error("prune::io: " + where + " has padding bits set in byte " + std::to_string(b) + " (the last byte of row " +
                                   std::to_string(row) + " holds " + std::to_string(bits) + " of its " + std::to_string(last) +
                                   " bits; the other bits must be 0)");
            }
            const std::size_t at = row * last + 8 * k, shift = at % element_mask::word_bits;
            words[at / element_mask::word_bits] |= value << shift;
            if (shift > element_mask::word_bits - 8 && (value >> (element_mask::word_bits - shift)) != 0) {
                words[at / element_mask::word_bits + 1] |= value >> (element_mask::word_bits - shift);
            }
        }
    }
    return mask;
}

/// Packs `mask` (last axis `last` long) into `out`, LSB first per row, padding zero.
inline void pack_bits(const element_mask& mask, std::size_t last, std::span<std::uint8_t> out) {
    const std::span<const std::uint64_t> words = mask.words();
    if (last % 8 == 0 && std::endian::native == std::endian::little) {  // one bit stream, no padding
        if (!out.empty()) std::memcpy(out.data(), words.data(), out.size());
        return;
    }
    const std::size_t row_bytes = packed_bytes(last), rows = row_bytes == 0 ? 0 : out.size() / row_bytes;
    for (std::size_t row = 0, b = 0; row < rows; ++row) {
        for (std::size_t k = 0; k < row_bytes; ++k, ++b) {
            const std::size_t bits = std::min<std::size_t>(8, last - 8 * k);
            const std::size_t at = row * last + 8 * k, w = at / element_mask::word_bits, shift = at % element_mask::word_bits;
            std::uint64_t value = words[w] >> shift;
            if (shift > element_mask::word_bits - 8 && w + 1 < words.size()) value |= words[w + 1] << (element_mask::word_bits - shift);
            out[b] = static_cast<std::uint8_t>(value & ((std::uint64_t{1} << bits) - 1));
        }
    }
}

}  // namespace detail

/// The element mask stored in one tensor of a safetensors file (U8 or BOOL, values 0/1).
/// A bit-packed file's tensor is unpacked (see the top of this file) to the same mask.
[[nodiscard]] inline element_mask element_mask_from(const safetensors_file& file, std::string_view name) {
    const tensor_info& info = file.info(name);
    if (detail::layout_of(file) == mask_layout::bits) {
        const json dims = detail::last_dims_of(file);
        const auto it = dims.find(info.name);
        const std::string where = "element mask file '" + file.name() + "': " + detail::mask_last_dims_key + "['" + info.name + "']";
        if (it == dims.end()) throw format_error("prune::io: " + where + " is missing (expected the length of the mask's last axis)");
        const auto bytes = file.bytes(name);
        return detail::unpack_bits(info, std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()),
                                   as_size(*it, where), file.name());
    }
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
/// In a bit-packed file every name of "prune.mask_last_dims" must name a tensor (format_error).
[[nodiscard]] inline element_masks read_element_masks(const safetensors_file& file) {
    if (detail::layout_of(file) == mask_layout::bits) {
        const json dims = detail::last_dims_of(file);
        for (const auto& item : dims.items()) {
            if (!file.contains(item.key())) {
                throw format_error("prune::io: element mask file '" + file.name() + "': " + detail::mask_last_dims_key +
                                   " names '" + item.key() + "', which is no tensor of the file");
            }
        }
    }
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

/// A writer of named element masks as one U8 tensor each, in the order given: one byte per
/// element, or with mask_layout::bits packed 8 to a byte along the last axis (value_error for a
/// scalar mask, which has no axis to pack). A tensor's bytes are made from the mask's words as
/// the file is written, one tensor at a time: `masks` must outlive the writer.
[[nodiscard]] inline safetensors_writer element_mask_writer(std::span<const std::pair<std::string, element_mask>> masks,
                                                            mask_layout layout = mask_layout::bytes) {
    safetensors_writer writer;
    sorted_json last_dims = sorted_json::object();
    for (const auto& [name, mask] : masks) {
        const auto extents = mask.extents().extents();
        std::vector<std::size_t> shape(extents.begin(), extents.end());
        const element_mask* m = &mask;
        if (layout == mask_layout::bytes) {
            writer.add_generated(name, dtype::U8, shape, [m](std::span<std::byte> out) {
                m->write_bytes(std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size()));
            });
            continue;
        }
        if (shape.empty()) {
            throw value_error("prune::io: element mask '" + name +
                              "' is a scalar (packed bits need an axis; write it as bytes)");
        }
        const std::size_t last = shape.back();
        last_dims[name] = last;
        shape.back() = detail::packed_bytes(last);
        writer.add_generated(name, dtype::U8, shape, [m, last](std::span<std::byte> out) {
            detail::pack_bits(*m, last, std::span(reinterpret_cast<std::uint8_t*>(out.data()), out.size()));
        });
    }
    if (layout == mask_layout::bits) {
        writer.set_metadata(detail::mask_layout_key, detail::mask_bits_lsb);
        writer.set_metadata(detail::mask_last_dims_key, last_dims.dump());
    }
    return writer;
}

/// Writes named element masks (element_mask_writer) in the order given, atomically.
inline void write_element_masks(const std::filesystem::path& path,
                                std::span<const std::pair<std::string, element_mask>> masks,
                                mask_layout layout = mask_layout::bytes) {
    element_mask_writer(masks, layout).write(path);
}

/// Writes named element masks (in name order), atomically.
inline void write_element_masks(const std::filesystem::path& path, const element_masks& masks,
                                mask_layout layout = mask_layout::bytes) {
    const std::vector<std::pair<std::string, element_mask>> ordered(masks.begin(), masks.end());
    write_element_masks(path, std::span<const std::pair<std::string, element_mask>>(ordered), layout);
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
