// prune/io/mapped_scores.hpp: scores read straight from a checkpoint's file map, for models
// larger than memory.
//
// mapped_scores(ckpt, name, kind) is a score_source (prune/importance/scores.hpp) over a tensor's
// bytes inside an io::checkpoint (F32, F64, F16 or BF16; read element by element, so any
// alignment): a selection over it (prune/select.hpp) never copies the tensor, and as its reads
// move forward, every 1 MiB region they finish is dropped from the process's resident set (one
// madvise per region; the page cache keeps what fits; the next pass maps them in again). So a global selection over a 13.5 GB
// checkpoint runs with the masks (1 bit per element) and a few pages per thread resident.
// first_non_finite(ckpt, name) looks for a NaN or an infinity the same way; require_finite(ckpt,
// name, what) throws the format_error that names it. A checkpoint whose
// bytes were copied into memory (safetensors_file::from_bytes) is read the same, nothing dropped.
#pragma once

#include <prune/error.hpp>
#include <prune/importance/scores.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
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
template <class T>
[[nodiscard]] inline T element_at(const std::byte* bytes, std::size_t i) noexcept {
    T value;
    std::memcpy(&value, bytes + i * sizeof(T), sizeof(T));
    return value;
}

/// Pages are dropped a region of this many bytes at a time (one madvise per region, not per page).
inline constexpr std::uintptr_t drop_region = std::uintptr_t{1} << 20;

/// After reading bytes [from, to) of a tensor's `all` bytes (reads go forward): drops the whole
/// regions of drop_region bytes the read finished, and at the tensor's end the rest. Never
/// touches a byte outside `all`.
inline void drop_finished(std::span<const std::byte> all, const std::byte* from, const std::byte* to) noexcept {
    const auto region = [](const std::byte* p) { return reinterpret_cast<std::uintptr_t>(p) / drop_region * drop_region; };
    const std::uintptr_t start = std::max(region(from), reinterpret_cast<std::uintptr_t>(all.data()));
    const std::uintptr_t stop = to == all.data() + all.size() ? reinterpret_cast<std::uintptr_t>(to) : region(to);
    if (stop <= start) return;
    drop_mapped_pages(std::span(reinterpret_cast<const std::byte*>(start), stop - start));
}

/// fill_function of mapped_scores: the keys of [begin, begin + n), then (Drop) the pages finished.
template <score_kind Kind, element T, bool Drop>
void fill_mapped(const score_source& source, std::size_t, std::size_t begin, std::span<std::uint32_t> keys) {
    const auto* bytes = static_cast<const std::byte*>(source.data());
    for (std::size_t j = 0; j < keys.size(); ++j) keys[j] = prune::detail::element_key<Kind>(element_at<T>(bytes, begin + j));
    if constexpr (Drop) {
        drop_finished(std::span(bytes, source.size() * sizeof(T)), bytes + begin * sizeof(T), bytes + (begin + keys.size()) * sizeof(T));
    }
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
/// or nothing; its pages are dropped from the resident set as it goes. Tests the exponent bits
/// (all ones) of the raw little-endian elements, so it runs at memory speed.
[[nodiscard]] inline std::optional<std::size_t> first_non_finite(const checkpoint& ckpt, std::string_view name) {
    const tensor_info& info = ckpt.info(name);
    const std::span<const std::byte> bytes = ckpt.bytes(name);
    const safetensors_file& file = ckpt.files()[ckpt.file_index_of(name)];
    const auto scan = [&]<class Bits>(Bits exponent) -> std::optional<std::size_t> {
        constexpr std::size_t block = std::size_t{1} << 18;
        for (std::size_t i = 0; i < info.numel(); i += block) {
            const std::size_t end = std::min(info.numel(), i + block);
            bool any = false;
            for (std::size_t j = i; j < end; ++j) any |= (detail::element_at<Bits>(bytes.data(), j) & exponent) == exponent;
            if (any) {
                for (std::size_t j = i; j < end; ++j) {
                    if ((detail::element_at<Bits>(bytes.data(), j) & exponent) == exponent) return j;
                }
            }
            file.release_pages(bytes.subspan(i * sizeof(Bits), (end - i) * sizeof(Bits)));
        }
        return std::nullopt;
    };
    switch (info.type) {
        case dtype::F32: return scan(std::uint32_t{0x7F800000u});
        case dtype::F64: return scan(std::uint64_t{0x7FF0000000000000u});
        case dtype::F16: return scan(std::uint16_t{0x7C00u});
        case dtype::BF16: return scan(std::uint16_t{0x7F80u});
        default: throw dtype_error("tensor '" + std::string(name) + "' is " + dtype_name(info.type) + " (expected F32, F64, F16 or BF16)");
    }
}

/// format_error "<what> '<name>' holds NaN|an infinity at element i (expected finite weights)" at
/// the first value of checkpoint tensor `name` that is not finite (first_non_finite: no copy).
inline void require_finite(const checkpoint& ckpt, const std::string& name, const std::string& what) {
    const std::optional<std::size_t> bad = first_non_finite(ckpt, name);
    if (!bad) return;
    float value = 0.0f;
    const std::size_t size = dtype_size(ckpt.info(name).type);
    detail::convert_to_float(ckpt.info(name).type, ckpt.bytes(name).data() + *bad * size, 1, &value);
    throw format_error(what + " '" + name + "' holds " + (std::isnan(value) ? "NaN" : "an infinity") + " at element " +
                       std::to_string(*bad) + " (expected finite weights)");
}

}  // namespace prune::io
