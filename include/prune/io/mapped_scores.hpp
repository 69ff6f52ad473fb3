// prune/io/mapped_scores.hpp: scores read straight from a checkpoint's file map, for models
// larger than memory.
//
// mapped_scores(ckpt, name, kind) is a score_source (prune/importance/scores.hpp) over a tensor's
// bytes inside an io::checkpoint (F32, F64, F16 or BF16; read element by element, so any
// alignment): a selection over it (prune/select.hpp) never copies the tensor, and once a block's
// keys are made, the block's whole pages are dropped from the process's resident set (the page
// cache keeps what fits; the next pass maps them in again). So a global selection over a 13.5 GB
// checkpoint runs with the masks (1 bit per element) and a few pages per thread resident.
// first_non_finite(ckpt, name) looks for a NaN or an infinity the same way. A checkpoint whose
// bytes were copied into memory (safetensors_file::from_bytes) is read the same, nothing dropped.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/tensor.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace prune::io {

namespace detail {

/// Element i of little-endian T data at `bytes`, whatever its alignment.
template <element T>
[[nodiscard]] inline T element_at(const std::byte* bytes, std::size_t i) noexcept {
    T value;
    std::memcpy(&value, bytes + i * sizeof(T), sizeof(T));
    return value;
}

/// fill_function of mapped_scores: the keys of [begin, begin + n), then (Drop) the block's pages.
template <score_kind Kind, element T, bool Drop>
void fill_mapped(const score_source& source, std::size_t, std::size_t begin, std::span<std::uint32_t> keys) {
    const auto* bytes = static_cast<const std::byte*>(source.data());
    for (std::size_t j = 0; j < keys.size(); ++j) keys[j] = prune::detail::element_key<Kind>(element_at<T>(bytes, begin + j));
    if constexpr (Drop) drop_mapped_pages(std::span(bytes + begin * sizeof(T), keys.size() * sizeof(T)));
}

/// The fill function for a kind, dtype and whether pages are dropped.
template <score_kind Kind, bool Drop>
[[nodiscard]] score_source::fill_function mapped_fill(dtype type, std::string_view name) {
    switch (type) {
        case dtype::F32: return &fill_mapped<Kind, float, Drop>;
        case dtype::F64: return &fill_mapped<Kind, double, Drop>;
        case dtype::F16: return &fill_mapped<Kind, prune::half, Drop>;
        case dtype::BF16: return &fill_mapped<Kind, prune::bfloat16, Drop>;
        default:
            throw dtype_error("tensor '" + std::string(name) + "' is " + dtype_name(type) +
                              " (expected F32, F64, F16 or BF16: only floating-point weights have magnitudes)");
    }
}

}  // namespace detail

/// Magnitude (or inverted magnitude) scores of checkpoint tensor `name`, read from the file map
/// (see the top of this header). dtype_error for a tensor that is not floating point; `kind` must
/// be score_kind::magnitude or score_kind::inverted_magnitude (value_error otherwise). The
/// checkpoint must outlive the source.
[[nodiscard]] inline score_source mapped_scores(const checkpoint& ckpt, std::string_view name, score_kind kind) {
    const tensor_info& info = ckpt.info(name);
    const bool drop = ckpt.files()[ckpt.file_index_of(name)].mapped();
    score_source::fill_function fill = nullptr;
    if (kind == score_kind::magnitude) {
        fill = drop ? detail::mapped_fill<score_kind::magnitude, true>(info.type, name)
                    : detail::mapped_fill<score_kind::magnitude, false>(info.type, name);
    } else if (kind == score_kind::inverted_magnitude) {
        fill = drop ? detail::mapped_fill<score_kind::inverted_magnitude, true>(info.type, name)
                    : detail::mapped_fill<score_kind::inverted_magnitude, false>(info.type, name);
    } else {
        throw value_error("prune::io::mapped_scores: tensor '" + std::string(name) +
                          "': only magnitude and inverted magnitude scores are read from a checkpoint");
    }
    return score_source(info.extents(), kind, fill, ckpt.bytes(name).data(), layout::row_major).named(std::string(name));
}

/// The index of the first NaN or infinity of checkpoint tensor `name` (F32, F64, F16 or BF16),
/// or nothing; its pages are dropped from the resident set as it goes.
[[nodiscard]] inline std::optional<std::size_t> first_non_finite(const checkpoint& ckpt, std::string_view name) {
    const tensor_info& info = ckpt.info(name);
    const std::span<const std::byte> bytes = ckpt.bytes(name);
    const auto scan = [&]<element T>(T) -> std::optional<std::size_t> {
        constexpr std::size_t block = std::size_t{1} << 16;
        for (std::size_t i = 0; i < info.numel(); i += block) {
            const std::size_t end = std::min(info.numel(), i + block);
            for (std::size_t j = i; j < end; ++j) {
                if (!std::isfinite(to_float(detail::element_at<T>(bytes.data(), j)))) return j;
            }
            ckpt.files()[ckpt.file_index_of(name)].release_pages(bytes.subspan(i * sizeof(T), (end - i) * sizeof(T)));
        }
        return std::nullopt;
    };
    switch (info.type) {
        case dtype::F32: return scan(float{});
        case dtype::F64: return scan(double{});
        case dtype::F16: return scan(prune::half{});
        case dtype::BF16: return scan(prune::bfloat16{});
        default: throw dtype_error("tensor '" + std::string(name) + "' is " + dtype_name(info.type) + " (expected F32, F64, F16 or BF16)");
    }
}

}  // namespace prune::io
