// prune/io/safetensors.hpp: reading and writing safetensors checkpoints.
//
// The format (Hugging Face's): 8 bytes little-endian N, then N bytes of JSON header
// `{"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}`
// (offsets relative to the data section that follows the header), then the data,
// row-major, little-endian.
//
// `safetensors_file` memory-maps a file read-only and hands out zero-copy views; every
// header field is checked before anything is exposed (header length <= 100 MB and
// inside the file, a JSON object without duplicate keys, each entry with a known dtype,
// a shape of non-negative integers and two data offsets inside the data section,
// begin <= end, end - begin == numel x dtype size, no two tensors overlapping). Gaps
// between tensors are allowed. Errors are `prune::format_error`s naming the file, the
// tensor and what was expected.
//
// `checkpoint` opens a file, a model directory holding `model.safetensors`, or a
// sharded model (`model.safetensors.index.json` whose "weight_map" maps tensor names
// to shard files) behind the same accessors.
//
// `safetensors_writer` collects tensors and writes a file atomically: header padded
// with spaces to a multiple of 8 bytes as the reference implementation does, data
// ordered by decreasing dtype size (so every tensor is aligned to its element size),
// written to a hidden temporary, fsynced and renamed over the target.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/tensor.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace prune::io {

static_assert(std::endian::native == std::endian::little, "prune::io::safetensors assumes a little-endian host");

/// The element types a safetensors file may hold (the ones this library reads).
enum class dtype { F32, F16, BF16, F64, I64, I32, U8, BOOL };

/// The size in bytes of one element of a dtype.
[[nodiscard]] constexpr std::size_t dtype_size(dtype type) noexcept {
    switch (type) {
        case dtype::F64:
        case dtype::I64: return 8;
        case dtype::F32:
        case dtype::I32: return 4;
        case dtype::F16:
        case dtype::BF16: return 2;
        case dtype::U8:
        case dtype::BOOL: return 1;
    }
    return 0;
}

/// The name of a dtype as the format spells it ("F32", "BF16", "BOOL", ...).
[[nodiscard]] constexpr const char* dtype_name(dtype type) noexcept {
    switch (type) {
        case dtype::F32: return "F32";
        case dtype::F16: return "F16";
        case dtype::BF16: return "BF16";
        case dtype::F64: return "F64";
        case dtype::I64: return "I64";
        case dtype::I32: return "I32";
        case dtype::U8: return "U8";
        case dtype::BOOL: return "BOOL";
    }
    return "?";
}

/// Parses a dtype name; format_error naming it (and `where`, e.g. the file) when unknown.
[[nodiscard]] inline dtype parse_dtype(std::string_view name, std::string_view where = {}) {
    for (dtype t : {dtype::F32, dtype::F16, dtype::BF16, dtype::F64, dtype::I64, dtype::I32, dtype::U8, dtype::BOOL}) {
        if (name == dtype_name(t)) {
            return t;
        }
    }
    throw format_error("prune::io: " + (where.empty() ? std::string() : std::string(where) + ": ") +
                       "unknown dtype '" + std::string(name) +
                       "' (expected one of F32, F16, BF16, F64, I64, I32, U8, BOOL)");
}

/// The dtype of an element type (float -> F32, double -> F64, half -> F16, bfloat16 -> BF16).
template <element T>
[[nodiscard]] constexpr dtype dtype_of() noexcept {
    using U = std::remove_const_t<T>;
    if constexpr (std::same_as<U, float>) {
        return dtype::F32;
    } else if constexpr (std::same_as<U, double>) {
        return dtype::F64;
    } else if constexpr (std::same_as<U, half>) {
        return dtype::F16;
    } else {
        return dtype::BF16;
    }
}

/// One tensor's entry in a safetensors header.
struct tensor_info {
    std::string name;                ///< the tensor's name
    dtype type = dtype::F32;         ///< its element type
    std::vector<std::size_t> shape;  ///< its extents (row-major)
    std::size_t begin = 0;           ///< first byte, relative to the data section
    std::size_t end = 0;             ///< one past the last byte, relative to the data section

    /// The shape as a prune::shape; shape_error when the rank exceeds prune::shape::max_rank.
    [[nodiscard]] prune::shape extents() const {
        if (shape.size() > prune::shape::max_rank) {
            throw shape_error("prune::io: tensor '" + name + "' has rank " + std::to_string(shape.size()) +
                              " (at most " + std::to_string(prune::shape::max_rank) + " supported)");
        }
        return prune::shape(shape);
    }
    /// The number of elements (1 for a scalar).
    [[nodiscard]] std::size_t numel() const noexcept {
        std::size_t n = 1;
        for (std::size_t e : shape) {
            n *= e;
        }
        return n;
    }
    /// The number of data bytes.
    [[nodiscard]] std::size_t byte_size() const noexcept { return end - begin; }
};

namespace detail {

/// The largest header accepted (the reference implementation's limit).
inline constexpr std::uint64_t max_header_bytes = 100'000'000;

/// "'path'" for messages.
inline std::string quoted(const std::filesystem::path& path) {
    std::string text = "'";  // appended step by step: GCC 12 warns (-Wrestrict) on "'" + s + "'"
    text += path.string();
    text += '\'';
    return text;
}

/// Drops the whole pages inside `part`, which must lie in a read-only private file map, from the
/// process's resident set (madvise MADV_DONTNEED): a later read faults the same bytes in again
/// from the page cache. Never call it on other memory (anonymous pages would read back as zeros).
inline void drop_mapped_pages(std::span<const std::byte> part) noexcept {
    if (part.empty()) return;
    static const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto first = (reinterpret_cast<std::uintptr_t>(part.data()) + page - 1) / page * page;
    const auto last = reinterpret_cast<std::uintptr_t>(part.data() + part.size()) / page * page;
    if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

/// The bytes of a file: a read-only memory map, or an owned buffer. Move-only.
class file_bytes {
public:
    file_bytes() = default;

    /// Maps a file read-only; io_error when it cannot be opened or mapped.
    static file_bytes map(const std::filesystem::path& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block
        if (fd < 0) {
            const int e = errno;
            throw io_error("prune::io: cannot open " + quoted(path) + ": " + errno_text(e));
        }
        struct stat info {};
        if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
            ::close(fd);
            throw io_error("prune::io: " + quoted(path) + " is not a regular file");
        }
        file_bytes result;
        result.size_ = static_cast<std::size_t>(info.st_size);
        if (result.size_ > 0) {
            void* address = ::mmap(nullptr, result.size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (address == MAP_FAILED) {
                const int e = errno;
                ::close(fd);
                throw io_error("prune::io: cannot map " + quoted(path) + ": " + errno_text(e));
            }
            result.mapped_ = address;
        }
        ::close(fd);
        return result;
    }

    /// Owns a copy of the bytes.
    static file_bytes copy(std::span<const std::byte> bytes) {
        file_bytes result;
        result.owned_.assign(bytes.begin(), bytes.end());
        result.size_ = bytes.size();
        return result;
    }

    file_bytes(file_bytes&& other) noexcept
        : mapped_(std::exchange(other.mapped_, nullptr)),
          owned_(std::move(other.owned_)),
          size_(std::exchange(other.size_, 0)) {}
    file_bytes& operator=(file_bytes&& other) noexcept {
        if (this != &other) {
            release();
            mapped_ = std::exchange(other.mapped_, nullptr);
            owned_ = std::move(other.owned_);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    file_bytes(const file_bytes&) = delete;
    file_bytes& operator=(const file_bytes&) = delete;
    ~file_bytes() { release(); }

    /// The bytes (stable across moves).
    [[nodiscard]] std::span<const std::byte> bytes() const noexcept {
        if (mapped_ != nullptr) {
            return {static_cast<const std::byte*>(mapped_), size_};
        }
        return {owned_.data(), owned_.size()};
    }

    /// True when the bytes are a file map (release_pages applies).
    [[nodiscard]] bool mapped() const noexcept { return mapped_ != nullptr; }

    /// Drops the whole pages inside `part` (a range of bytes()) from the process's resident set:
    /// a later read faults them in again from the page cache, same bytes (the map is read-only
    /// and private). A no-op for an owned buffer, and for a `part` that is not inside the map.
    void release_pages(std::span<const std::byte> part) const noexcept {
        const auto begin = reinterpret_cast<std::uintptr_t>(mapped_);
        const auto first = reinterpret_cast<std::uintptr_t>(part.data());
        if (mapped_ != nullptr && first >= begin && first - begin <= size_ && part.size() <= size_ - (first - begin)) {
            drop_mapped_pages(part);
        }
    }

private:
    void release() noexcept {
        if (mapped_ != nullptr) {
            ::munmap(mapped_, size_);
            mapped_ = nullptr;
        }
    }

    void* mapped_ = nullptr;
    std::vector<std::byte> owned_;
    std::size_t size_ = 0;
};

/// What a parsed header holds.
struct parsed_header {
    std::vector<tensor_info> tensors;               ///< in header order
    std::map<std::string, std::string> metadata;    ///< __metadata__
    std::size_t data_start = 0;                     ///< 8 + header length
};

/// a * b, or false on overflow.
inline bool multiply(std::size_t a, std::size_t b, std::size_t& out) noexcept {
    return !__builtin_mul_overflow(a, b, &out);
}

/// Reads a non-negative integer that fits in size_t, or throws format_error with `what`.
inline std::size_t read_size(const json& value, const std::string& what) {
    if (!value.is_number_unsigned()) {
        throw format_error("prune::io: " + what + " is " + value.dump() + " (expected a non-negative integer)");
    }
    const std::uint64_t v = value.get<std::uint64_t>();
    if (v > std::numeric_limits<std::size_t>::max()) {
        throw format_error("prune::io: " + what + " is too large");
    }
    return static_cast<std::size_t>(v);
}

/// Validates a whole safetensors buffer; `where` names it in messages.
inline parsed_header parse_header(std::span<const std::byte> file, const std::string& where) {
    const std::string in = "safetensors " + where;
    if (file.size() < 8) {
        throw format_error("prune::io: " + in + " is " + std::to_string(file.size()) +
                           " bytes long (expected at least 8: the header length)");
    }
    std::uint64_t header_length = 0;
    std::memcpy(&header_length, file.data(), 8);
    if (header_length > max_header_bytes) {
        throw format_error("prune::io: " + in + ": header length " + std::to_string(header_length) +
                           " exceeds the limit of " + std::to_string(max_header_bytes) + " bytes");
    }
    if (header_length > file.size() - 8) {
        throw format_error("prune::io: " + in + ": header length " + std::to_string(header_length) +
                           " runs past the end of the file (" + std::to_string(file.size()) +
                           " bytes, so at most " + std::to_string(file.size() - 8) + ")");
    }
    parsed_header result;
    result.data_start = 8 + static_cast<std::size_t>(header_length);
    const std::size_t data_size = file.size() - result.data_start;
    const std::string_view text(reinterpret_cast<const char*>(file.data()) + 8, static_cast<std::size_t>(header_length));
    const json header = parse_json(text, in + ": the header");
    if (!header.is_object()) {
        throw format_error("prune::io: " + in + ": the header is a JSON " + std::string(header.type_name()) +
                           " (expected an object)");
    }
    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) {
                throw format_error("prune::io: " + in + ": __metadata__ is a " + std::string(entry.type_name()) +
                                   " (expected an object of strings)");
            }
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string()) {
                    throw format_error("prune::io: " + in + ": __metadata__ entry '" + key + "' is a " +
                                       std::string(value.type_name()) + " (expected a string)");
                }
                result.metadata.emplace(key, value.get<std::string>());
            }
            continue;
        }
        const std::string at = in + ": tensor '" + name + "'";
        if (!entry.is_object()) {
            throw format_error("prune::io: " + at + " is a " + std::string(entry.type_name()) +
                               " (expected an object with dtype, shape, data_offsets)");
        }
        for (const char* field : {"dtype", "shape", "data_offsets"}) {
            if (!entry.contains(field)) {
                throw format_error("prune::io: " + at + " has no '" + field +
                                   "' (expected dtype, shape and data_offsets)");
            }
        }
        tensor_info info;
        info.name = name;
        const auto& type = entry["dtype"];
        if (!type.is_string()) {
            throw format_error("prune::io: " + at + ": dtype is " + type.dump() + " (expected a string)");
        }
        info.type = parse_dtype(type.get<std::string>(), at);
        const auto& shape = entry["shape"];
        if (!shape.is_array()) {
            throw format_error("prune::io: " + at + ": shape is " + shape.dump() + " (expected an array of integers)");
        }
        std::size_t numel = 1;
        bool overflow = false;
        for (std::size_t d = 0; d < shape.size(); ++d) {
            const std::size_t extent = read_size(shape[d], at + ": shape[" + std::to_string(d) + "]");
            info.shape.push_back(extent);
            overflow = overflow || !multiply(numel, extent, numel);
        }
        std::size_t expected_bytes = 0;
        overflow = overflow || !multiply(numel, dtype_size(info.type), expected_bytes);
        const auto& offsets = entry["data_offsets"];
        if (!offsets.is_array() || offsets.size() != 2) {
            throw format_error("prune::io: " + at + ": data_offsets is " + offsets.dump() +
                               " (expected [begin, end])");
        }
        info.begin = read_size(offsets[0], at + ": data_offsets[0]");
        info.end = read_size(offsets[1], at + ": data_offsets[1]");
        const std::string offsets_text = "data_offsets [" + std::to_string(info.begin) + ", " +
                                         std::to_string(info.end) + "]";
        if (info.begin > info.end) {
            throw format_error("prune::io: " + at + ": " + offsets_text + " has begin > end");
        }
        if (info.end > data_size) {
            throw format_error("prune::io: " + at + ": " + offsets_text + " run past the data section (" +
                               std::to_string(data_size) + " bytes after the header)");
        }
        if (overflow || info.end - info.begin != expected_bytes) {
            std::string shape_text = "[";
            for (std::size_t d = 0; d < info.shape.size(); ++d) {
                shape_text += (d ? ", " : "") + std::to_string(info.shape[d]);
            }
            shape_text += "]";
            throw format_error("prune::io: " + at + ": " + offsets_text + " hold " +
                               std::to_string(info.end - info.begin) + " bytes (expected " +
                               (overflow ? std::string("an overflowing size") : std::to_string(expected_bytes)) +
                               " for shape " + shape_text + " of " + dtype_name(info.type) + ")");
        }
        result.tensors.push_back(std::move(info));
    }
    // no overlaps: sort the non-empty tensors by offset and compare neighbours
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < result.tensors.size(); ++i) {
        if (result.tensors[i].begin != result.tensors[i].end) {
            order.push_back(i);
        }
    }
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        return result.tensors[a].begin < result.tensors[b].begin;
    });
    for (std::size_t k = 1; k < order.size(); ++k) {
        const tensor_info& previous = result.tensors[order[k - 1]];
        const tensor_info& current = result.tensors[order[k]];
        if (current.begin < previous.end) {
            throw format_error("prune::io: " + in + ": tensors '" + previous.name + "' [" +
                               std::to_string(previous.begin) + ", " + std::to_string(previous.end) + ") and '" +
                               current.name + "' [" + std::to_string(current.begin) + ", " +
                               std::to_string(current.end) + ") overlap (expected disjoint data)");
        }
    }
    return result;
}

/// Converts n elements of a dtype at `source` (any alignment) to float.
inline void convert_to_float(dtype type, const std::byte* source, std::size_t n, float* out) {
    if (n == 0) {
        return;  // out may be null (an empty vector): memcpy must not see it
    }
    switch (type) {
        case dtype::F32: std::memcpy(out, source, n * 4); return;
        case dtype::F64:
            for (std::size_t i = 0; i < n; ++i) {
                double v = 0;
                std::memcpy(&v, source + i * 8, 8);
                out[i] = static_cast<float>(v);
            }
            return;
        case dtype::F16:
            for (std::size_t i = 0; i < n; ++i) {
                half v;
                std::memcpy(&v.bits, source + i * 2, 2);
                out[i] = prune::to_float(v);
            }
            return;
        case dtype::BF16:
            for (std::size_t i = 0; i < n; ++i) {
                bfloat16 v;
                std::memcpy(&v.bits, source + i * 2, 2);
                out[i] = prune::to_float(v);
            }
            return;
        case dtype::I64:
            for (std::size_t i = 0; i < n; ++i) {
                std::int64_t v = 0;
                std::memcpy(&v, source + i * 8, 8);
                out[i] = static_cast<float>(v);
            }
            return;
        case dtype::I32:
            for (std::size_t i = 0; i < n; ++i) {
                std::int32_t v = 0;
                std::memcpy(&v, source + i * 4, 4);
                out[i] = static_cast<float>(v);
            }
            return;
        case dtype::U8:
            for (std::size_t i = 0; i < n; ++i) {
                out[i] = static_cast<float>(std::to_integer<std::uint8_t>(source[i]));
            }
            return;
        case dtype::BOOL:
            for (std::size_t i = 0; i < n; ++i) {
                out[i] = std::to_integer<std::uint8_t>(source[i]) != 0 ? 1.0f : 0.0f;
            }
            return;
    }
}

/// The zero-copy view of a tensor's bytes as T; dtype_error / format_error when impossible.
template <element T>
tensor_view<const T> view_bytes(const tensor_info& info, std::span<const std::byte> bytes, const std::string& where) {
    if (info.type != dtype_of<T>()) {
        throw dtype_error("prune::io: tensor '" + info.name + "' in " + where + " is " + dtype_name(info.type) +
                          ", not " + prune::dtype_name<T>() + " (use to_float() to convert)");
    }
    if (info.numel() != 0 && reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(T) != 0) {
        throw format_error("prune::io: tensor '" + info.name + "' in " + where + " starts at a data offset (" +
                           std::to_string(info.begin) + ") that is not a multiple of " +
                           std::to_string(alignof(T)) + " bytes, so it cannot be viewed in place (use to_float())");
    }
    const prune::shape extents = info.extents();
    return tensor_view<const T>(std::span<const T>(reinterpret_cast<const T*>(bytes.data()), info.numel()), extents);
}

}  // namespace detail

/// A safetensors file, memory-mapped read-only; move-only. Views stay valid while it lives.
class safetensors_file {
public:
    /// Maps and validates a file; io_error when unreadable, format_error when malformed.
    [[nodiscard]] static safetensors_file open(const std::filesystem::path& path) {
        return safetensors_file(detail::file_bytes::map(path), path.string());
    }

    /// Validates a copy of an in-memory file; `name` is used in messages.
    [[nodiscard]] static safetensors_file from_bytes(std::span<const std::byte> bytes,
                                                     std::string name = "<memory>") {
        return safetensors_file(detail::file_bytes::copy(bytes), std::move(name));
    }

    /// The file's path (or name) as given.
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// Every tensor, in header order.
    [[nodiscard]] const std::vector<tensor_info>& tensors() const noexcept { return header_.tensors; }
    /// True when the file holds a tensor of that name.
    [[nodiscard]] bool contains(std::string_view name) const { return index_.contains(std::string(name)); }
    /// The entry of a tensor; format_error naming the tensor and the file when absent.
    [[nodiscard]] const tensor_info& info(std::string_view name) const {
        const auto it = index_.find(std::string(name));
        if (it == index_.end()) {
            throw format_error("prune::io: no tensor '" + std::string(name) + "' in safetensors '" + name_ + "'");
        }
        return header_.tensors[it->second];
    }
    /// The raw little-endian bytes of a tensor.
    [[nodiscard]] std::span<const std::byte> bytes(std::string_view name) const {
        const tensor_info& entry = info(name);
        return bytes_.bytes().subspan(header_.data_start + entry.begin, entry.end - entry.begin);
    }
    /// A zero-copy view; dtype_error unless the tensor's dtype is T's, format_error when misaligned.
    template <element T>
    [[nodiscard]] tensor_view<const T> view(std::string_view name) const {
        return detail::view_bytes<T>(info(name), bytes(name), "'" + name_ + "'");
    }
    /// The tensor converted to float (row-major), from any dtype (BOOL gives 0/1).
    [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
        const tensor_info& entry = info(name);
        std::vector<float> out(entry.numel());
        detail::convert_to_float(entry.type, bytes(name).data(), out.size(), out.data());
        return out;
    }
    /// The __metadata__ map (empty when absent).
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return header_.metadata; }
    /// The byte offset of the data section (8 + the header's length): a tensor's bytes are
    /// [data_start() + begin, data_start() + end) of the file.
    [[nodiscard]] std::size_t data_start() const noexcept { return header_.data_start; }
    /// True when the file is memory-mapped (open), false when its bytes were copied (from_bytes).
    [[nodiscard]] bool mapped() const noexcept { return bytes_.mapped(); }
    /// Drops the tensor's pages from the resident set once read (see release_pages).
    void release(std::string_view name) const { release_pages(bytes(name)); }
    /// Drops the whole pages inside `part` (a range of file_bytes()) from the process's resident
    /// set; a later read maps the same bytes in again from the page cache. No-op unless mapped.
    void release_pages(std::span<const std::byte> part) const noexcept { bytes_.release_pages(part); }
    /// The whole file's bytes.
    [[nodiscard]] std::span<const std::byte> file_bytes() const noexcept { return bytes_.bytes(); }

private:
    safetensors_file(detail::file_bytes bytes, std::string name)
        : bytes_(std::move(bytes)), name_(std::move(name)) {
        header_ = detail::parse_header(bytes_.bytes(), "'" + name_ + "'");
        for (std::size_t i = 0; i < header_.tensors.size(); ++i) {
            index_.emplace(header_.tensors[i].name, i);
        }
    }

    detail::file_bytes bytes_;
    std::string name_;
    detail::parsed_header header_;
    std::unordered_map<std::string, std::size_t> index_;
};

namespace detail {

/// The name -> shard file list of a model.safetensors.index.json, in index order.
/// Shard names must be plain relative paths that stay inside the directory.
inline std::vector<std::pair<std::string, std::string>> parse_index(std::string_view text, const std::string& where) {
    const auto index = parse_json(text, "index " + where);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
        throw format_error("prune::io: index " + where +
                           " has no \"weight_map\" object (expected {\"weight_map\": {tensor: shard file}})");
    }
    std::vector<std::pair<std::string, std::string>> entries;
    for (const auto& [name, shard] : index["weight_map"].items()) {
        if (!shard.is_string()) {
            throw format_error("prune::io: index " + where + ": weight_map['" + name + "'] is " + shard.dump() +
                               " (expected a shard file name)");
        }
        const std::string file = shard.get<std::string>();
        const std::filesystem::path p(file);
        bool escapes = file.empty() || p.is_absolute() || file.find('\0') != std::string::npos;
        for (const auto& part : p) {
            escapes = escapes || part == "..";
        }
        if (escapes) {
            throw format_error("prune::io: index " + where + ": weight_map['" + name + "'] is '" + file +
                               "' (expected a file name inside the model directory)");
        }
        entries.emplace_back(name, file);
    }
    return entries;
}

/// A count for a message: the integer below 1e15, else scientific notation.
inline std::string count_text(double n) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, n < 1e15 ? "%.0f" : "%.3g", n);
    return buffer;
}

}  // namespace detail

/// A model's weights: one safetensors file, or shards listed by model.safetensors.index.json.
class checkpoint {
public:
    /// Opens a .safetensors file, a model.safetensors.index.json, or a model directory holding
    /// model.safetensors (preferred, as Hugging Face does) or model.safetensors.index.json.
    [[nodiscard]] static checkpoint open(const std::filesystem::path& dir_or_file) {
        std::error_code ec;
        if (std::filesystem::is_directory(dir_or_file, ec)) {
            if (std::filesystem::exists(dir_or_file / "model.safetensors", ec)) {
                return from_single(dir_or_file / "model.safetensors");
            }
            if (std::filesystem::exists(dir_or_file / "model.safetensors.index.json", ec)) {
                return from_index(dir_or_file / "model.safetensors.index.json");
            }
            throw io_error("prune::io: model directory '" + dir_or_file.string() +
                           "' has neither model.safetensors nor model.safetensors.index.json");
        }
        if (!std::filesystem::exists(dir_or_file, ec)) {
            throw io_error("prune::io: checkpoint '" + dir_or_file.string() + "' does not exist");
        }
        const std::string file = dir_or_file.filename().string();
        if (file.size() >= 11 && file.compare(file.size() - 11, 11, ".index.json") == 0) {
            return from_index(dir_or_file);
        }
        return from_single(dir_or_file);
    }

    /// Every tensor: the file's header order, or the index's weight_map order for shards.
    [[nodiscard]] const std::vector<tensor_info>& tensors() const noexcept { return infos_; }
    /// Elements of every tensor together (a double: exact below 2^53, never overflows).
    [[nodiscard]] double elements() const noexcept {
        double n = 0.0;
        for (const tensor_info& t : infos_) {
            double e = 1.0;
            for (std::size_t d : t.shape) e *= static_cast<double>(d);
            n += e;
        }
        return n;
    }
    /// Throws format_error (`where` first) when a config describes far more weights (`expected`
    /// elements) than the checkpoint holds: more than twice its elements + 2^20. Called before
    /// the weights are allocated, so what a wrong or hostile config.json makes a loader allocate
    /// is bounded by the file; smaller disagreements are left to the tensor-by-tensor check,
    /// which names the tensor.
    void require_elements(double expected, const std::string& where) const {
        if (expected <= 2.0 * elements() + 1048576.0) return;
        throw format_error(where + ": config.json describes " + detail::count_text(expected) + " weights, more than twice the " +
                           detail::count_text(elements()) + " the checkpoint holds (expected the config.json saved with these weights)");
    }
    /// True when the checkpoint holds a tensor of that name.
    [[nodiscard]] bool contains(std::string_view name) const { return index_.contains(std::string(name)); }
    /// The entry of a tensor (offsets relative to its shard); format_error when absent.
    [[nodiscard]] const tensor_info& info(std::string_view name) const { return infos_[locate(name)]; }
    /// The file that holds a tensor.
    [[nodiscard]] const std::string& file_of(std::string_view name) const {
        return shards_[shard_of_[locate(name)]].name();
    }
    /// The raw bytes of a tensor.
    [[nodiscard]] std::span<const std::byte> bytes(std::string_view name) const {
        return shards_[shard_of_[locate(name)]].bytes(name);
    }
    /// A zero-copy view; dtype_error unless the tensor's dtype is T's.
    template <element T>
    [[nodiscard]] tensor_view<const T> view(std::string_view name) const {
        return shards_[shard_of_[locate(name)]].template view<T>(name);
    }
    /// The tensor converted to float.
    [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
        return shards_[shard_of_[locate(name)]].to_float(name);
    }

    /// Drops the tensor's file pages from the process's resident set after reading it: models
    /// larger than memory are streamed tensor by tensor with a small resident set (the page
    /// cache keeps what fits; a later read maps the bytes in again). No effect on the bytes.
    void release(std::string_view name) const { shards_[shard_of_[locate(name)]].release(name); }

    /// The tensor's index in tensors(); format_error when there is none of that name.
    [[nodiscard]] std::size_t index_of(std::string_view name) const { return locate(name); }
    /// The index in files() of the file that holds the tensor.
    [[nodiscard]] std::size_t file_index_of(std::string_view name) const { return shard_of_[locate(name)]; }
    /// The __metadata__ of the file (for shards: merged, the first shard's value wins).
    [[nodiscard]] const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }
    /// The files opened (one, or the shards in order of first use by the index).
    [[nodiscard]] const std::vector<safetensors_file>& files() const noexcept { return shards_; }
    /// True when opened from a model.safetensors.index.json (even one naming a single shard).
    [[nodiscard]] bool sharded() const noexcept { return !shard_names_.empty(); }
    /// For a sharded checkpoint, shard k of files() as the index names it (relative to the
    /// index's directory); for a single file, that file's name.
    [[nodiscard]] std::string file_name(std::size_t k) const {
        return sharded() ? shard_names_.at(k) : std::filesystem::path(shards_.at(k).name()).filename().string();
    }
    /// For a sharded checkpoint, the shard file of a tensor as the index names it (relative to
    /// the index's directory); for a single file, that file's name.
    [[nodiscard]] std::string shard_name_of(std::string_view name) const {
        return file_name(shard_of_[locate(name)]);
    }

private:
    checkpoint() = default;

    [[nodiscard]] std::size_t locate(std::string_view name) const {
        const auto it = index_.find(std::string(name));
        if (it == index_.end()) {
            throw format_error("prune::io: no tensor '" + std::string(name) + "' in checkpoint '" + name_ + "'");
        }
        return it->second;
    }

    static checkpoint from_single(const std::filesystem::path& path) {
        checkpoint result;
        result.name_ = path.string();
        result.shards_.push_back(safetensors_file::open(path));
        const safetensors_file& file = result.shards_.front();
        result.infos_ = file.tensors();
        result.shard_of_.assign(result.infos_.size(), 0);
        for (std::size_t i = 0; i < result.infos_.size(); ++i) {
            result.index_.emplace(result.infos_[i].name, i);
        }
        result.metadata_ = file.metadata();
        return result;
    }

    static checkpoint from_index(const std::filesystem::path& index_path) {
        checkpoint result;
        result.name_ = index_path.string();
        const auto entries =
            detail::parse_index(read_text_file(index_path), "'" + index_path.string() + "'");
        const std::filesystem::path directory = index_path.parent_path();
        std::map<std::string, std::size_t> shard_numbers;
        for (const auto& [name, file] : entries) {
            auto it = shard_numbers.find(file);
            if (it == shard_numbers.end()) {
                const std::filesystem::path shard_path = directory / file;
                std::error_code ec;
                if (!std::filesystem::is_regular_file(shard_path, ec)) {
                    throw format_error("prune::io: index '" + index_path.string() + "' maps tensor '" + name +
                                       "' to shard '" + file + "', which does not exist (expected " +
                                       shard_path.string() + ")");
                }
                it = shard_numbers.emplace(file, result.shards_.size()).first;
                result.shards_.push_back(safetensors_file::open(shard_path));
                result.shard_names_.push_back(file);
                for (const auto& [key, value] : result.shards_.back().metadata()) {
                    result.metadata_.emplace(key, value);
                }
            }
            const safetensors_file& shard = result.shards_[it->second];
            if (!shard.contains(name)) {
                throw format_error("prune::io: index '" + index_path.string() + "' maps tensor '" + name +
                                   "' to shard '" + file + "', which does not contain it");
            }
            result.index_.emplace(name, result.infos_.size());
            result.infos_.push_back(shard.info(name));
            result.shard_of_.push_back(it->second);
        }
        return result;
    }

    std::string name_;
    std::vector<safetensors_file> shards_;
    std::vector<tensor_info> infos_;
    std::vector<std::size_t> shard_of_;  // infos_[i] lives in shards_[shard_of_[i]]
    std::vector<std::string> shard_names_;  // as the index names shards_ (empty for a single file)
    std::unordered_map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

/// Collects named tensors and writes them as one safetensors file, atomically.
class safetensors_writer {
public:
    /// Adds a tensor from raw little-endian row-major bytes (copied).
    /// value_error on a duplicate or reserved name, shape_error when the byte count disagrees.
    void add(std::string name, dtype type, const std::vector<std::size_t>& shape, std::span<const std::byte> data) {
        check(name, type, shape, data.size());
        entries_.push_back({std::move(name), type, shape, data.size(), std::vector<std::byte>(data.begin(), data.end()), {}, {}});
    }

    /// Adds a tensor by reference: `data` must stay alive and unchanged until write() returns.
    void add_borrowed(std::string name, dtype type, const std::vector<std::size_t>& shape,
                      std::span<const std::byte> data) {
        check(name, type, shape, data.size());
        entries_.push_back({std::move(name), type, shape, data.size(), {}, data, {}});
    }

    /// Adds a view (copied in logical row-major order, so column-major views are transposed to it).
    template <element T>
    void add(std::string name, tensor_view<T> tensor) {
        using U = std::remove_const_t<T>;
        const auto extents = tensor.extents().extents();
        const std::vector<std::size_t> shape(extents.begin(), extents.end());
        check(name, dtype_of<U>(), shape, tensor.size() * sizeof(U));
        std::vector<std::byte> data(tensor.size() * sizeof(U));
        if (tensor.is_logically_contiguous()) {
            if (!data.empty()) {
                std::memcpy(data.data(), tensor.data().data(), data.size());
            }
        } else {
            for (std::size_t i = 0; i < tensor.size(); ++i) {
                const U value = tensor.data()[tensor.storage_index(i)];
                std::memcpy(data.data() + i * sizeof(U), &value, sizeof(U));
            }
        }
        const std::size_t bytes = data.size();
        entries_.push_back({std::move(name), dtype_of<U>(), shape, bytes, std::move(data), {}, {}});
    }

    /// Adds a tensor whose bytes `fill` writes into a buffer of its byte size when the file is
    /// written, one such tensor at a time: tensors larger together than memory are written so.
    void add_generated(std::string name, dtype type, const std::vector<std::size_t>& shape,
                       std::function<void(std::span<std::byte>)> fill) {
        std::size_t bytes = dtype_size(type);
        for (std::size_t e : shape) {
            if (!detail::multiply(bytes, e, bytes)) throw shape_error("prune::io::safetensors_writer: tensor '" + name + "': shape overflows");
        }
        check(name, type, shape, bytes);
        entries_.push_back({std::move(name), type, shape, bytes, {}, {}, std::move(fill)});
    }

    /// Adds a U8 tensor (e.g. an element mask, 1 = kept).
    void add_u8(std::string name, const std::vector<std::size_t>& shape, std::span<const std::uint8_t> values) {
        add(std::move(name), dtype::U8, shape, std::as_bytes(values));
    }

    /// Sets a __metadata__ entry (string to string).
    void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

    /// True when a tensor of that name was added.
    [[nodiscard]] bool contains(std::string_view name) const {
        return std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) { return e.name == name; });
    }
    /// The number of tensors added.
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

    /// The header bytes (length prefix + padded JSON) of the file write() produces.
    [[nodiscard]] std::string header() const {
        json header_json = json::object();
        if (!metadata_.empty()) {
            header_json["__metadata__"] = metadata_;
        }
        std::size_t offset = 0;
        for (std::size_t i : data_order()) {
            const entry& e = entries_[i];
            const std::size_t size = e.bytes;
            header_json[e.name] = {{"dtype", dtype_name(e.type)}, {"shape", e.shape}, {"data_offsets", {offset, offset + size}}};
            offset += size;
        }
        std::string text = header_json.dump();
        text.append((8 - text.size() % 8) % 8, ' ');
        std::string result(8, '\0');
        const std::uint64_t length = text.size();
        std::memcpy(result.data(), &length, 8);
        return result + text;
    }

    /// The whole file in memory.
    [[nodiscard]] std::vector<std::byte> to_bytes() const {
        const std::string head = header();
        std::vector<std::byte> out(reinterpret_cast<const std::byte*>(head.data()),
                                   reinterpret_cast<const std::byte*>(head.data()) + head.size());
        std::vector<std::byte> buffer;
        for (std::size_t i : data_order()) {
            const auto data = entries_[i].data(buffer);
            out.insert(out.end(), data.begin(), data.end());
        }
        return out;
    }

    /// Writes the file: temporary in the same directory, fsync, rename over path.
    /// io_error when it cannot be written; then nothing is left behind. `written`, when given, is
    /// called with each borrowed tensor's bytes once they are written (e.g. to drop a source file
    /// map's pages from the resident set).
    void write(const std::filesystem::path& path,
               const std::function<void(std::span<const std::byte>)>& written = {}) const {
        atomic_file file(path);
        file.write(header());
        std::vector<std::byte> buffer;  // a generated tensor's bytes, one at a time
        for (std::size_t i : data_order()) {
            const entry& e = entries_[i];
            file.write(e.data(buffer));
            if (written && !e.fill && e.owned.empty()) {
                written(e.borrowed);
            }
        }
        file.commit();
    }

private:
    struct entry {
        std::string name;
        dtype type;
        std::vector<std::size_t> shape;
        std::size_t bytes = 0;
        std::vector<std::byte> owned;
        std::span<const std::byte> borrowed;
        std::function<void(std::span<std::byte>)> fill;
        /// The tensor's bytes: owned, borrowed, or generated into `buffer`.
        [[nodiscard]] std::span<const std::byte> data(std::vector<std::byte>& buffer) const {
            if (!fill) return owned.empty() ? borrowed : std::span<const std::byte>(owned);
            buffer.resize(bytes);
            fill(buffer);
            return buffer;
        }
    };

    void check(const std::string& name, dtype type, const std::vector<std::size_t>& shape, std::size_t bytes) const {
        if (name == "__metadata__") {
            throw value_error("prune::io::safetensors_writer: '__metadata__' is reserved and cannot name a tensor");
        }
        if (contains(name)) {
            throw value_error("prune::io::safetensors_writer: tensor '" + name + "' added twice");
        }
        std::size_t expected = dtype_size(type);
        for (std::size_t e : shape) {
            if (!detail::multiply(expected, e, expected)) {
                throw shape_error("prune::io::safetensors_writer: tensor '" + name + "': shape overflows");
            }
        }
        if (bytes != expected) {
            throw shape_error("prune::io::safetensors_writer: tensor '" + name + "' has " + std::to_string(bytes) +
                              " bytes (expected " + std::to_string(expected) + " for its shape and " +
                              dtype_name(type) + ")");
        }
    }

    // Decreasing dtype size, then insertion order: keeps every tensor aligned to its element.
    [[nodiscard]] std::vector<std::size_t> data_order() const {
        std::vector<std::size_t> order(entries_.size());
        for (std::size_t i = 0; i < order.size(); ++i) {
            order[i] = i;
        }
        std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
            return dtype_size(entries_[a].type) > dtype_size(entries_[b].type);
        });
        return order;
    }

    std::vector<entry> entries_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace prune::io
