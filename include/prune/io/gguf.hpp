// prune/io/gguf.hpp: reading and writing GGUF files (llama.cpp's model format).
//
// Layout (versions 2 and 3, little-endian): "GGUF", u32 version, u64 tensor count,
// u64 metadata count; the metadata (key string, u32 value type, value; a string is a u64
// length + bytes; an array is a u32 element type + u64 count + elements); the tensor infos
// (name string, u32 n_dims, n_dims x u64 extents fastest first, u32 ggml type, u64 offset
// relative to the data section); padding to `general.alignment` (a u32, default 32); the
// data section. Version 1 (32-bit counts) and big-endian files are refused.
//
// `gguf_file` memory-maps a file read-only and validates all of it before anything is
// exposed: every count is checked against the bytes left before a container is sized
// (each metadata entry needs at least 13 bytes, each tensor info 24, each array element
// its size), every string length against the file, keys and tensor names unique, value
// and tensor types known, at most 4 dimensions whose product fits in 63 bits, rows a whole
// number of quantization blocks, offsets multiples of the alignment, every tensor inside
// the file and no two overlapping. Errors are `prune::format_error`s naming the file, the
// entry, its byte position and what was expected.
//
// Tensors of type F32, F16, BF16 and F64 have zero-copy `view<T>`s; those and I8, I16,
// I32, I64 convert with `to_float`. Quantized tensors (Q4_0, Q8_0, the K-quants, IQ*,
// TQ*, MXFP4) are listed with their sizes but their values are refused with a
// `dtype_error` naming the tensor and its type.
//
// `gguf_writer` writes version 3 atomically (temporary file, fsync, rename): metadata in
// insertion order, tensor infos in insertion order with offsets packed the way llama.cpp
// requires (each tensor starts where the previous one, padded to the alignment, ends),
// zero padding after the infos and after every tensor.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/tensor.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace prune::io {

/// The element types of GGUF tensors (ggml's type ids; ids ggml retired are absent).
enum class ggml_type : std::uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
    IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
    I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35,
    MXFP4 = 39,
};

/// How a ggml type stores values: `block_size` elements in `block_bytes` bytes.
struct ggml_type_traits {
    ggml_type type;            ///< the type
    const char* name;          ///< its name as gguf-py spells it ("F32", "Q4_K", ...)
    std::uint32_t block_size;  ///< elements per block (1 for plain types)
    std::uint32_t block_bytes; ///< bytes per block
    bool quantized;            ///< true for block-quantized types
};

/// Every ggml type this library knows, with its block layout (ggml's type traits).
inline constexpr std::array<ggml_type_traits, 32> ggml_types{{
    {ggml_type::F32, "F32", 1, 4, false},        {ggml_type::F16, "F16", 1, 2, false},
    {ggml_type::Q4_0, "Q4_0", 32, 18, true},     {ggml_type::Q4_1, "Q4_1", 32, 20, true},
    {ggml_type::Q5_0, "Q5_0", 32, 22, true},     {ggml_type::Q5_1, "Q5_1", 32, 24, true},
    {ggml_type::Q8_0, "Q8_0", 32, 34, true},     {ggml_type::Q8_1, "Q8_1", 32, 36, true},
    {ggml_type::Q2_K, "Q2_K", 256, 84, true},    {ggml_type::Q3_K, "Q3_K", 256, 110, true},
    {ggml_type::Q4_K, "Q4_K", 256, 144, true},   {ggml_type::Q5_K, "Q5_K", 256, 176, true},
    {ggml_type::Q6_K, "Q6_K", 256, 210, true},   {ggml_type::Q8_K, "Q8_K", 256, 292, true},
    {ggml_type::IQ2_XXS, "IQ2_XXS", 256, 66, true}, {ggml_type::IQ2_XS, "IQ2_XS", 256, 74, true},
    {ggml_type::IQ3_XXS, "IQ3_XXS", 256, 98, true}, {ggml_type::IQ1_S, "IQ1_S", 256, 50, true},
    {ggml_type::IQ4_NL, "IQ4_NL", 32, 18, true},    {ggml_type::IQ3_S, "IQ3_S", 256, 110, true},
    {ggml_type::IQ2_S, "IQ2_S", 256, 82, true},     {ggml_type::IQ4_XS, "IQ4_XS", 256, 136, true},
    {ggml_type::I8, "I8", 1, 1, false},          {ggml_type::I16, "I16", 1, 2, false},
    {ggml_type::I32, "I32", 1, 4, false},        {ggml_type::I64, "I64", 1, 8, false},
    {ggml_type::F64, "F64", 1, 8, false},        {ggml_type::IQ1_M, "IQ1_M", 256, 56, true},
    {ggml_type::BF16, "BF16", 1, 2, false},      {ggml_type::TQ1_0, "TQ1_0", 256, 54, true},
    {ggml_type::TQ2_0, "TQ2_0", 256, 66, true},  {ggml_type::MXFP4, "MXFP4", 32, 17, true},
}};

/// The traits of a ggml type id, or nullptr when the id is unknown.
[[nodiscard]] constexpr const ggml_type_traits* find_ggml_type(std::uint32_t id) noexcept {
    for (const ggml_type_traits& t : ggml_types) {
        if (static_cast<std::uint32_t>(t.type) == id) {
            return &t;
        }
    }
    return nullptr;
}

/// The traits of a (known) ggml type.
[[nodiscard]] constexpr const ggml_type_traits& traits_of(ggml_type type) noexcept {
    const ggml_type_traits* t = find_ggml_type(static_cast<std::uint32_t>(type));
    return t != nullptr ? *t : ggml_types[0];
}

/// The name of a ggml type ("F32", "Q4_K", ...).
[[nodiscard]] constexpr const char* ggml_type_name(ggml_type type) noexcept { return traits_of(type).name; }

/// The ggml type of an element type (float -> F32, half -> F16, bfloat16 -> BF16, double -> F64).
template <element T>
[[nodiscard]] constexpr ggml_type ggml_type_of() noexcept {
    using U = std::remove_const_t<T>;
    if constexpr (std::same_as<U, float>) {
        return ggml_type::F32;
    } else if constexpr (std::same_as<U, double>) {
        return ggml_type::F64;
    } else if constexpr (std::same_as<U, half>) {
        return ggml_type::F16;
    } else {
        return ggml_type::BF16;
    }
}

/// The safetensors dtype holding the same values, when there is one (F32, F16, BF16, F64, I32, I64).
[[nodiscard]] constexpr std::optional<dtype> safetensors_dtype(ggml_type type) noexcept {
    switch (type) {
        case ggml_type::F32: return dtype::F32;
        case ggml_type::F16: return dtype::F16;
        case ggml_type::BF16: return dtype::BF16;
        case ggml_type::F64: return dtype::F64;
        case ggml_type::I32: return dtype::I32;
        case ggml_type::I64: return dtype::I64;
        default: return std::nullopt;
    }
}

/// The ggml type holding a safetensors dtype's values, when there is one.
[[nodiscard]] constexpr std::optional<ggml_type> ggml_type_from(dtype type) noexcept {
    switch (type) {
        case dtype::F32: return ggml_type::F32;
        case dtype::F16: return ggml_type::F16;
        case dtype::BF16: return ggml_type::BF16;
        case dtype::F64: return ggml_type::F64;
        case dtype::I32: return ggml_type::I32;
        case dtype::I64: return ggml_type::I64;
        default: return std::nullopt;
    }
}

/// The value types of GGUF metadata (GGUF's ids).
enum class gguf_value_type : std::uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7, string = 8, array = 9,
    u64 = 10, i64 = 11, f64 = 12,
};

/// The name of a value type ("u32", "string", ...).
[[nodiscard]] constexpr const char* gguf_value_type_name(gguf_value_type type) noexcept {
    constexpr std::array<const char*, 13> names{"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};
    const auto i = static_cast<std::uint32_t>(type);
    return i < names.size() ? names[i] : "?";
}

/// The size of one value of a fixed-size type (0 for string and array).
[[nodiscard]] constexpr std::size_t gguf_value_size(gguf_value_type type) noexcept {
    switch (type) {
        case gguf_value_type::u8:
        case gguf_value_type::i8:
        case gguf_value_type::boolean: return 1;
        case gguf_value_type::u16:
        case gguf_value_type::i16: return 2;
        case gguf_value_type::u32:
        case gguf_value_type::i32:
        case gguf_value_type::f32: return 4;
        case gguf_value_type::u64:
        case gguf_value_type::i64:
        case gguf_value_type::f64: return 8;
        default: return 0;
    }
}

/// The GGUF value type of a C++ scalar type.
template <class T>
[[nodiscard]] constexpr gguf_value_type gguf_value_type_of() noexcept {
    if constexpr (std::same_as<T, bool>) {
        return gguf_value_type::boolean;
    } else if constexpr (std::same_as<T, std::uint8_t>) {
        return gguf_value_type::u8;
    } else if constexpr (std::same_as<T, std::int8_t>) {
        return gguf_value_type::i8;
    } else if constexpr (std::same_as<T, std::uint16_t>) {
        return gguf_value_type::u16;
    } else if constexpr (std::same_as<T, std::int16_t>) {
        return gguf_value_type::i16;
    } else if constexpr (std::same_as<T, std::uint32_t>) {
        return gguf_value_type::u32;
    } else if constexpr (std::same_as<T, std::int32_t>) {
        return gguf_value_type::i32;
    } else if constexpr (std::same_as<T, float>) {
        return gguf_value_type::f32;
    } else if constexpr (std::same_as<T, std::uint64_t>) {
        return gguf_value_type::u64;
    } else if constexpr (std::same_as<T, std::int64_t>) {
        return gguf_value_type::i64;
    } else {
        static_assert(std::same_as<T, double>, "GGUF scalars are bool, (u)int8..64, float and double");
        return gguf_value_type::f64;
    }
}

/// A scalar type GGUF can store.
template <class T>
concept gguf_scalar = std::same_as<T, bool> || std::same_as<T, std::uint8_t> || std::same_as<T, std::int8_t> ||
                      std::same_as<T, std::uint16_t> || std::same_as<T, std::int16_t> ||
                      std::same_as<T, std::uint32_t> || std::same_as<T, std::int32_t> ||
                      std::same_as<T, std::uint64_t> || std::same_as<T, std::int64_t> ||
                      std::same_as<T, float> || std::same_as<T, double>;

namespace detail {

/// "what: is a <type> (expected <expected>)" for value accessors.
inline std::string gguf_type_mismatch(std::string_view what, std::string_view actual, std::string_view expected) {
    std::string text = "prune::io: ";
    text += what;
    text += " is ";
    text += actual;
    text += " (expected ";
    text += expected;
    text += ")";
    return text;
}

}  // namespace detail

/// One metadata value: a scalar, a string, or an array of one scalar type or of strings.
/// Numbers are kept as their little-endian bytes, so every value reads back bit for bit.
class gguf_value {
public:
    /// A u32 zero (so values can live in containers).
    gguf_value() : type_(gguf_value_type::u32), bytes_(4) {}

    /// A scalar (bool, (u)int8..64, float, double).
    template <gguf_scalar T>
    [[nodiscard]] static gguf_value scalar(T value) {
        gguf_value v;
        v.type_ = v.element_ = gguf_value_type_of<T>();
        v.bytes_.resize(sizeof(T));
        store(v.bytes_.data(), value);
        return v;
    }
    /// A string.
    [[nodiscard]] static gguf_value string(std::string value) {
        gguf_value v;
        v.type_ = v.element_ = gguf_value_type::string;
        v.bytes_.clear();
        v.strings_.push_back(std::move(value));
        return v;
    }
    /// An array of scalars.
    template <gguf_scalar T>
    [[nodiscard]] static gguf_value array(std::span<const T> values) {
        gguf_value v;
        v.type_ = gguf_value_type::array;
        v.element_ = gguf_value_type_of<T>();
        v.count_ = values.size();
        v.bytes_.resize(values.size() * sizeof(T));
        for (std::size_t i = 0; i < values.size(); ++i) {
            store(v.bytes_.data() + i * sizeof(T), values[i]);
        }
        return v;
    }
    /// An array of scalars from a vector.
    template <gguf_scalar T>
    [[nodiscard]] static gguf_value array(const std::vector<T>& values) {
        if constexpr (std::same_as<T, bool>) {
            std::vector<std::uint8_t> bytes(values.begin(), values.end());
            gguf_value v = array(std::span<const std::uint8_t>(bytes));
            v.element_ = gguf_value_type::boolean;
            return v;
        } else {
            return array(std::span<const T>(values));
        }
    }
    /// An array of strings.
    [[nodiscard]] static gguf_value strings(std::vector<std::string> values) {
        gguf_value v;
        v.type_ = gguf_value_type::array;
        v.element_ = gguf_value_type::string;
        v.count_ = values.size();
        v.bytes_.clear();
        v.strings_ = std::move(values);
        return v;
    }
    /// A value from its parts; used by the reader (bytes of `count` fixed-size elements, or strings).
    [[nodiscard]] static gguf_value from_parts(gguf_value_type type, gguf_value_type element, std::size_t count,
                                               std::vector<std::byte> bytes, std::vector<std::string> texts) {
        gguf_value v;
        v.type_ = type;
        v.element_ = element;
        v.count_ = count;
        v.bytes_ = std::move(bytes);
        v.strings_ = std::move(texts);
        return v;
    }

    /// The value's type (`array` for arrays).
    [[nodiscard]] gguf_value_type type() const noexcept { return type_; }
    /// The element type of an array (the type itself for a scalar).
    [[nodiscard]] gguf_value_type element_type() const noexcept { return is_array() ? element_ : type_; }
    /// True for arrays.
    [[nodiscard]] bool is_array() const noexcept { return type_ == gguf_value_type::array; }
    /// The number of elements (1 for a scalar or a string).
    [[nodiscard]] std::size_t size() const noexcept { return is_array() ? count_ : 1; }
    /// "u32", "string", "array of i32", ... for messages.
    [[nodiscard]] std::string type_text() const {
        return is_array() ? std::string("an array of ") + gguf_value_type_name(element_) + " (" +
                                std::to_string(count_) + " elements)"
                          : std::string("a ") + gguf_value_type_name(type_);
    }

    /// The scalar of exactly type T; format_error naming `what` otherwise.
    template <gguf_scalar T>
    [[nodiscard]] T as(std::string_view what = "the value") const {
        if (is_array() || type_ != gguf_value_type_of<T>()) {
            throw format_error(detail::gguf_type_mismatch(what, type_text(),
                                                          std::string("a ") + gguf_value_type_name(gguf_value_type_of<T>())));
        }
        return load<T>(bytes_.data());
    }
    /// Any integer scalar as a non-negative 64-bit number; format_error when negative or not an integer.
    [[nodiscard]] std::uint64_t as_count(std::string_view what = "the value") const {
        const std::optional<std::int64_t> v = is_array() ? std::nullopt : integer_at(0);
        if (!v.has_value() && !is_array() && type_ == gguf_value_type::u64) {
            return load<std::uint64_t>(bytes_.data());
        }
        if (!v.has_value() || *v < 0) {
            throw format_error(detail::gguf_type_mismatch(
                what, v.has_value() ? std::to_string(*v) : type_text(), "a non-negative integer"));
        }
        return static_cast<std::uint64_t>(*v);
    }
    /// A f32 or f64 scalar as double; format_error otherwise.
    [[nodiscard]] double as_real(std::string_view what = "the value") const {
        if (!is_array() && type_ == gguf_value_type::f32) {
            return static_cast<double>(load<float>(bytes_.data()));
        }
        if (!is_array() && type_ == gguf_value_type::f64) {
            return load<double>(bytes_.data());
        }
        throw format_error(detail::gguf_type_mismatch(what, type_text(), "a f32 or f64"));
    }
    /// The string; format_error when the value is not a string.
    [[nodiscard]] const std::string& as_string(std::string_view what = "the value") const {
        if (type_ != gguf_value_type::string) {
            throw format_error(detail::gguf_type_mismatch(what, type_text(), "a string"));
        }
        return strings_.front();
    }
    /// The elements of an array of exactly type T; format_error otherwise.
    template <gguf_scalar T>
    [[nodiscard]] std::vector<T> as_array(std::string_view what = "the value") const {
        if (!is_array() || element_ != gguf_value_type_of<T>()) {
            throw format_error(detail::gguf_type_mismatch(
                what, type_text(), std::string("an array of ") + gguf_value_type_name(gguf_value_type_of<T>())));
        }
        std::vector<T> out(count_);
        for (std::size_t i = 0; i < count_; ++i) {
            out[i] = load<T>(bytes_.data() + i * sizeof(T));
        }
        return out;
    }
    /// The elements of an array of any integer type (u64 elements must fit in int64).
    [[nodiscard]] std::vector<std::int64_t> as_integers(std::string_view what = "the value") const {
        std::vector<std::int64_t> out;
        if (is_array() && integer_type(element_)) {
            out.reserve(count_);
            for (std::size_t i = 0; i < count_; ++i) {
                const std::optional<std::int64_t> v = integer_at(i);
                if (!v.has_value()) {
                    throw format_error(detail::gguf_type_mismatch(
                        std::string(what) + "[" + std::to_string(i) + "]", "above 2^63", "an int64"));
                }
                out.push_back(*v);
            }
            return out;
        }
        throw format_error(detail::gguf_type_mismatch(what, type_text(), "an array of integers"));
    }
    /// The strings of an array of strings; format_error otherwise.
    [[nodiscard]] const std::vector<std::string>& as_strings(std::string_view what = "the value") const {
        if (!is_array() || element_ != gguf_value_type::string) {
            throw format_error(detail::gguf_type_mismatch(what, type_text(), "an array of strings"));
        }
        return strings_;
    }

    /// The little-endian bytes of a numeric scalar or array (empty for strings).
    [[nodiscard]] std::span<const std::byte> raw_bytes() const noexcept { return bytes_; }
    /// The strings of a string or an array of strings (empty otherwise).
    [[nodiscard]] std::span<const std::string> raw_strings() const noexcept { return strings_; }

    /// Appends the value as GGUF encodes it (type id first).
    void encode(std::vector<std::byte>& out) const {
        append(out, static_cast<std::uint32_t>(type_));
        if (is_array()) {
            append(out, static_cast<std::uint32_t>(element_));
            append(out, static_cast<std::uint64_t>(count_));
        }
        out.insert(out.end(), bytes_.begin(), bytes_.end());
        for (const std::string& s : strings_) {
            append(out, static_cast<std::uint64_t>(s.size()));
            const auto* p = reinterpret_cast<const std::byte*>(s.data());
            out.insert(out.end(), p, p + s.size());
        }
    }

    /// Equal when type, element type and every byte and string agree.
    friend bool operator==(const gguf_value& a, const gguf_value& b) {
        return a.type_ == b.type_ && a.element_ == b.element_ && a.count_ == b.count_ && a.bytes_ == b.bytes_ &&
               a.strings_ == b.strings_;
    }

    /// Appends a little-endian number to a byte buffer.
    template <class T>
    static void append(std::vector<std::byte>& out, T value) {
        const auto* p = reinterpret_cast<const std::byte*>(&value);
        out.insert(out.end(), p, p + sizeof(T));
    }

private:
    template <class T>
    static void store(std::byte* p, T value) noexcept {
        if constexpr (std::same_as<T, bool>) {
            const std::uint8_t b = value ? 1 : 0;
            std::memcpy(p, &b, 1);
        } else {
            std::memcpy(p, &value, sizeof(T));
        }
    }
    template <class T>
    static T load(const std::byte* p) noexcept {
        if constexpr (std::same_as<T, bool>) {
            return std::to_integer<std::uint8_t>(*p) != 0;
        } else {
            T value;
            std::memcpy(&value, p, sizeof(T));
            return value;
        }
    }
    static constexpr bool integer_type(gguf_value_type t) noexcept {
        return t == gguf_value_type::u8 || t == gguf_value_type::i8 || t == gguf_value_type::u16 ||
               t == gguf_value_type::i16 || t == gguf_value_type::u32 || t == gguf_value_type::i32 ||
               t == gguf_value_type::u64 || t == gguf_value_type::i64;
    }
    // Element i of an integer scalar or array as int64 (nullopt: not an integer, or u64 above 2^63-1).
    [[nodiscard]] std::optional<std::int64_t> integer_at(std::size_t i) const noexcept {
        const std::byte* p = bytes_.data() + i * gguf_value_size(element_type());
        switch (element_type()) {
            case gguf_value_type::u8: return load<std::uint8_t>(p);
            case gguf_value_type::i8: return load<std::int8_t>(p);
            case gguf_value_type::u16: return load<std::uint16_t>(p);
            case gguf_value_type::i16: return load<std::int16_t>(p);
            case gguf_value_type::u32: return load<std::uint32_t>(p);
            case gguf_value_type::i32: return load<std::int32_t>(p);
            case gguf_value_type::i64: return load<std::int64_t>(p);
            case gguf_value_type::u64: {
                const auto v = load<std::uint64_t>(p);
                if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                    return std::nullopt;
                }
                return static_cast<std::int64_t>(v);
            }
            default: return std::nullopt;
        }
    }

    gguf_value_type type_;
    gguf_value_type element_ = gguf_value_type::u32;  // a scalar's own type, an array's element type
    std::size_t count_ = 1;            // the element count (1 for scalars)
    std::vector<std::byte> bytes_;     // fixed-size values, little-endian
    std::vector<std::string> strings_; // a string, or an array's strings
};

/// One metadata entry: a key and its value.
struct gguf_kv {
    std::string key;   ///< the key ("general.architecture", "llama.block_count", ...)
    gguf_value value;  ///< its value
};

/// One tensor's entry in a GGUF file.
struct gguf_tensor_info {
    std::string name;                  ///< the tensor's name ("blk.0.attn_q.weight")
    ggml_type type = ggml_type::F32;   ///< its element type
    std::vector<std::uint64_t> ne;     ///< extents as GGUF stores them: fastest-varying first
    std::uint64_t offset = 0;          ///< first byte, relative to the data section
    std::size_t byte_size = 0;         ///< bytes of data

    /// The row-major shape (ne reversed: the order of torch and safetensors).
    [[nodiscard]] std::vector<std::size_t> shape() const {
        return std::vector<std::size_t>(ne.rbegin(), ne.rend());
    }
    /// The shape as a prune::shape.
    [[nodiscard]] prune::shape extents() const { return prune::shape(shape()); }
    /// The number of elements (1 for a tensor without dimensions).
    [[nodiscard]] std::size_t numel() const noexcept {
        std::size_t n = 1;
        for (std::uint64_t e : ne) {
            n *= static_cast<std::size_t>(e);
        }
        return n;
    }
};

namespace detail {

/// The GGUF version this library writes.
inline constexpr std::uint32_t gguf_version = 3;
/// The alignment of the data section when general.alignment is absent.
inline constexpr std::size_t gguf_default_alignment = 32;
/// ggml's limit on tensor names (GGML_MAX_NAME = 64, including the terminating zero).
inline constexpr std::size_t gguf_max_name = 63;
/// ggml's limit on dimensions (GGML_MAX_DIMS).
inline constexpr std::size_t gguf_max_dims = 4;

/// x rounded up to a multiple of a power of two.
[[nodiscard]] constexpr std::size_t pad_to(std::size_t x, std::size_t alignment) noexcept {
    return (x + alignment - 1) & ~(alignment - 1);
}

/// Bytes of a tensor of `ne` (fastest first) and a type, or nullopt on a row that is not a
/// whole number of blocks (`row_ok` false) or overflow.
[[nodiscard]] inline std::optional<std::size_t> ggml_bytes(const ggml_type_traits& t,
                                                           std::span<const std::uint64_t> ne, bool& row_ok) {
    row_ok = ne.empty() ? t.block_size == 1 : ne[0] % t.block_size == 0;
    if (!row_ok) {
        return std::nullopt;
    }
    std::uint64_t n = 1;
    for (std::uint64_t e : ne) {
        if (__builtin_mul_overflow(n, e, &n)) {
            return std::nullopt;
        }
    }
    std::uint64_t bytes = 0;
    if (__builtin_mul_overflow(n / t.block_size, std::uint64_t{t.block_bytes}, &bytes) ||
        bytes > std::numeric_limits<std::size_t>::max()) {
        return std::nullopt;
    }
    return static_cast<std::size_t>(bytes);
}

/// "[a, b, c]" of a shape.
template <class Int>
[[nodiscard]] std::string shape_text(std::span<const Int> shape) {
    std::string text = "[";
    for (std::size_t d = 0; d < shape.size(); ++d) {
        text += (d ? ", " : "") + std::to_string(shape[d]);
    }
    return text + "]";
}

/// A bounds-checked little-endian reader over a GGUF buffer; every error names the file and
/// the byte position.
class gguf_cursor {
public:
    gguf_cursor(std::span<const std::byte> bytes, const std::string& where) : bytes_(bytes), where_(where) {}

    [[nodiscard]] std::size_t position() const noexcept { return pos_; }
    [[nodiscard]] std::size_t left() const noexcept { return bytes_.size() - pos_; }
    [[nodiscard]] const std::string& where() const noexcept { return where_; }

    /// Throws format_error unless n more bytes exist.
    void need(std::size_t n, std::string_view what) const {
        if (n > left()) {
            throw format_error("prune::io: " + where_ + ": " + std::string(what) + " at byte " +
                               std::to_string(pos_) + " needs " + std::to_string(n) + " bytes, but only " +
                               std::to_string(left()) + " remain (the file is truncated or corrupt)");
        }
    }
    template <class T>
    [[nodiscard]] T read(std::string_view what) {
        need(sizeof(T), what);
        T value;
        std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return value;
    }
    [[nodiscard]] std::span<const std::byte> take(std::size_t n, std::string_view what) {
        need(n, what);
        const auto out = bytes_.subspan(pos_, n);
        pos_ += n;
        return out;
    }
    /// A GGUF string: u64 length, then the bytes (checked against the file before allocating).
    [[nodiscard]] std::string string(std::string_view what) {
        const std::size_t at = pos_;
        const auto length = read<std::uint64_t>(what);
        if (length > left()) {
            throw format_error("prune::io: " + where_ + ": " + std::string(what) + " at byte " + std::to_string(at) +
                               " has length " + std::to_string(length) + ", longer than the " +
                               std::to_string(left()) + " bytes left in the file");
        }
        const auto text = take(static_cast<std::size_t>(length), what);
        return std::string(reinterpret_cast<const char*>(text.data()), text.size());
    }
    /// Throws unless `count` items of at least `min_bytes` each can follow.
    void check_count(std::uint64_t count, std::size_t min_bytes, std::string_view what) const {
        if (count > left() / min_bytes) {
            throw format_error("prune::io: " + where_ + ": " + std::string(what) + " " + std::to_string(count) +
                               " at byte " + std::to_string(pos_) + " cannot fit in the " + std::to_string(left()) +
                               " bytes left (each needs at least " + std::to_string(min_bytes) + ")");
        }
    }

private:
    std::span<const std::byte> bytes_;
    std::size_t pos_ = 0;
    const std::string& where_;
};

/// Reads one metadata value of a known type (not an array's element type check).
inline gguf_value read_gguf_value(gguf_cursor& in, gguf_value_type type, const std::string& what) {
    if (type == gguf_value_type::string) {
        return gguf_value::string(in.string(what));
    }
    if (type != gguf_value_type::array) {
        const std::size_t size = gguf_value_size(type);
        const auto raw = in.take(size, what);
        return gguf_value::from_parts(type, type, 1, std::vector<std::byte>(raw.begin(), raw.end()), {});
    }
    const std::size_t at = in.position();
    const auto element = in.read<std::uint32_t>(what + " (array element type)");
    if (element > 12 || element == static_cast<std::uint32_t>(gguf_value_type::array)) {
        throw format_error("prune::io: " + in.where() + ": " + what + " at byte " + std::to_string(at) +
                           " is an array of type " + std::to_string(element) +
                           (element == 9 ? " (arrays of arrays are not supported, as in llama.cpp)"
                                         : " (expected a value type 0..12 other than 9, array)"));
    }
    const auto element_type = static_cast<gguf_value_type>(element);
    const auto count = in.read<std::uint64_t>(what + " (array length)");
    if (element_type == gguf_value_type::string) {
        in.check_count(count, 8, what + ": array length");
        std::vector<std::string> texts;
        texts.reserve(static_cast<std::size_t>(count));
        for (std::uint64_t i = 0; i < count; ++i) {
            texts.push_back(in.string(what + "[" + std::to_string(i) + "]"));
        }
        return gguf_value::strings(std::move(texts));
    }
    const std::size_t size = gguf_value_size(element_type);
    in.check_count(count, size, what + ": array length");
    const auto raw = in.take(static_cast<std::size_t>(count) * size, what);
    return gguf_value::from_parts(gguf_value_type::array, element_type, static_cast<std::size_t>(count),
                                  std::vector<std::byte>(raw.begin(), raw.end()), {});
}

/// What a parsed GGUF file holds.
struct parsed_gguf {
    std::uint32_t version = 0;                  ///< 2 or 3
    std::vector<gguf_kv> metadata;              ///< in file order
    std::unordered_map<std::string, std::size_t> keys;  ///< key -> index in metadata
    std::vector<gguf_tensor_info> tensors;      ///< in file order
    std::size_t alignment = gguf_default_alignment;  ///< general.alignment or 32
    std::size_t data_start = 0;                 ///< first byte of the data section
};

/// Reads the magic, version and the two counts.
inline void read_gguf_header(gguf_cursor& in, parsed_gguf& out, std::uint64_t& n_tensors, std::uint64_t& n_kv) {
    const std::string& where = in.where();
    const auto head = in.take(std::min<std::size_t>(4, in.left()), "the magic");
    if (head.size() < 4 || std::memcmp(head.data(), "GGUF", 4) != 0) {
        std::string seen;
        for (std::byte b : head) {
            const auto c = static_cast<char>(b);
            seen += (c >= 32 && c < 127) ? std::string(1, c) : "\\x" + std::to_string(std::to_integer<int>(b));
        }
        throw format_error("prune::io: " + where + " starts with '" + seen + "' (" + std::to_string(head.size()) +
                           " bytes; expected the magic 'GGUF')");
    }
    out.version = in.read<std::uint32_t>("the version");
    if (out.version != 2 && out.version != 3) {
        throw format_error("prune::io: " + where + " is GGUF version " + std::to_string(out.version) +
                           (out.version == 1 ? " (no longer supported: 32-bit counts; expected 2 or 3)"
                            : (out.version & 0xFFFFu) == 0 ? " (a big-endian file? expected 2 or 3, little-endian)"
                                                           : " (expected 2 or 3)"));
    }
    n_tensors = in.read<std::uint64_t>("the tensor count");
    n_kv = in.read<std::uint64_t>("the metadata count");
    in.check_count(n_kv, 13, "metadata count");  // key length 8 + type 4 + a 1-byte value
}

/// Reads the metadata entries and general.alignment.
inline void read_gguf_metadata(gguf_cursor& in, parsed_gguf& out, std::uint64_t n_kv) {
    const std::string& where = in.where();
    out.metadata.reserve(static_cast<std::size_t>(n_kv));
    for (std::uint64_t i = 0; i < n_kv; ++i) {
        const std::size_t at = in.position();
        std::string key = in.string("metadata key " + std::to_string(i));
        if (key.empty()) {
            throw format_error("prune::io: " + where + ": metadata key " + std::to_string(i) + " at byte " +
                               std::to_string(at) + " is empty (expected a name)");
        }
        if (out.keys.contains(key)) {
            throw format_error("prune::io: " + where + ": metadata key '" + key + "' at byte " + std::to_string(at) +
                               " appears twice (expected unique keys)");
        }
        const std::string what = "metadata '" + key + "'";
        const auto type = in.read<std::uint32_t>(what + " (value type)");
        if (type > 12) {
            throw format_error("prune::io: " + where + ": " + what + " has value type " + std::to_string(type) +
                               " (expected 0..12: u8 i8 u16 i16 u32 i32 f32 bool string array u64 i64 f64)");
        }
        gguf_value value = read_gguf_value(in, static_cast<gguf_value_type>(type), what);
        out.keys.emplace(key, out.metadata.size());
        out.metadata.push_back({std::move(key), std::move(value)});
    }
    if (const auto it = out.keys.find("general.alignment"); it != out.keys.end()) {
        const gguf_value& v = out.metadata[it->second].value;
        const std::string what = where + ": general.alignment";
        const std::uint32_t a = v.as<std::uint32_t>(what);
        if (a == 0 || (a & (a - 1)) != 0) {
            throw format_error("prune::io: " + what + " is " + std::to_string(a) + " (expected a power of two)");
        }
        out.alignment = a;
    }
}

/// Reads one tensor info (name, dimensions, type, offset) and checks it on its own.
inline gguf_tensor_info read_gguf_tensor_info(gguf_cursor& in, std::uint64_t i, std::size_t alignment) {
    const std::string& where = in.where();
    gguf_tensor_info info;
    const std::size_t at = in.position();
    info.name = in.string("tensor info " + std::to_string(i) + ": the name");
    const std::string what = "tensor '" + info.name + "'";
    const auto n_dims = in.read<std::uint32_t>(what + ": n_dims");
    if (n_dims > gguf_max_dims) {
        throw format_error("prune::io: " + where + ": " + what + " at byte " + std::to_string(at) + " has " +
                           std::to_string(n_dims) + " dimensions (expected at most 4, ggml's limit)");
    }
    for (std::uint32_t d = 0; d < n_dims; ++d) {
        const auto e = in.read<std::uint64_t>(what + ": ne[" + std::to_string(d) + "]");
        if (e > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            throw format_error("prune::io: " + where + ": " + what + ": ne[" + std::to_string(d) + "] is " +
                               std::to_string(e) + " (expected below 2^63)");
        }
        info.ne.push_back(e);
    }
    const auto type_id = in.read<std::uint32_t>(what + ": type");
    const ggml_type_traits* traits = find_ggml_type(type_id);
    if (traits == nullptr) {
        throw format_error("prune::io: " + where + ": " + what + " has ggml type " + std::to_string(type_id) +
                           " (unknown here: expected one of F32 F16 BF16 F64 I8 I16 I32 I64 or a known quantized "
                           "type, ids 0..39)");
    }
    info.type = traits->type;
    info.offset = in.read<std::uint64_t>(what + ": offset");
    bool row_ok = true;
    const std::optional<std::size_t> bytes = ggml_bytes(*traits, info.ne, row_ok);
    const std::string shape = shape_text<std::uint64_t>(info.ne);
    if (!row_ok) {
        throw format_error("prune::io: " + where + ": " + what + " of type " + traits->name + " has ne " + shape +
                           ": rows of " + std::to_string(info.ne.empty() ? 1 : info.ne[0]) +
                           " elements are not a whole number of " + std::to_string(traits->block_size) +
                           "-element blocks");
    }
    if (!bytes.has_value()) {
        throw format_error("prune::io: " + where + ": " + what + " has ne " + shape +
                           ", whose size overflows (expected a tensor that fits in memory)");
    }
    info.byte_size = *bytes;
    if (info.offset % alignment != 0) {
        throw format_error("prune::io: " + where + ": " + what + " has offset " + std::to_string(info.offset) +
                           ", not a multiple of the alignment " + std::to_string(alignment));
    }
    return info;
}

/// Checks that every tensor lies inside the data section and none overlap.
inline void check_gguf_tensor_layout(const parsed_gguf& out, std::size_t file_size, const std::string& where) {
    const std::size_t data_size = file_size - out.data_start;
    for (const gguf_tensor_info& t : out.tensors) {
        if (t.offset > data_size || t.byte_size > data_size - t.offset) {
            throw format_error("prune::io: " + where + ": tensor '" + t.name + "' of " +
                               std::to_string(t.byte_size) + " bytes at offset " + std::to_string(t.offset) +
                               " runs past the end of the data section (" + std::to_string(data_size) +
                               " bytes from byte " + std::to_string(out.data_start) + ": the file is truncated?)");
        }
    }
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < out.tensors.size(); ++i) {
        if (out.tensors[i].byte_size != 0) {
            order.push_back(i);
        }
    }
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return out.tensors[a].offset < out.tensors[b].offset; });
    for (std::size_t k = 1; k < order.size(); ++k) {
        const gguf_tensor_info& a = out.tensors[order[k - 1]];
        const gguf_tensor_info& b = out.tensors[order[k]];
        if (b.offset < a.offset + a.byte_size) {
            throw format_error("prune::io: " + where + ": tensors '" + a.name + "' [" + std::to_string(a.offset) +
                               ", " + std::to_string(a.offset + a.byte_size) + ") and '" + b.name + "' [" +
                               std::to_string(b.offset) + ", " + std::to_string(b.offset + b.byte_size) +
                               ") overlap (expected disjoint data)");
        }
    }
}

/// Validates a whole GGUF buffer; `where` names it in messages.
inline parsed_gguf parse_gguf(std::span<const std::byte> file, const std::string& where) {
    gguf_cursor in(file, where);
    parsed_gguf out;
    std::uint64_t n_tensors = 0;
    std::uint64_t n_kv = 0;
    read_gguf_header(in, out, n_tensors, n_kv);
    read_gguf_metadata(in, out, n_kv);
    in.check_count(n_tensors, 24, "tensor count");  // name length 8 + n_dims 4 + type 4 + offset 8
    out.tensors.reserve(static_cast<std::size_t>(n_tensors));
    std::unordered_map<std::string, std::size_t> names;
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
        const std::size_t at = in.position();
        gguf_tensor_info info = read_gguf_tensor_info(in, i, out.alignment);
        if (!names.emplace(info.name, out.tensors.size()).second) {
            throw format_error("prune::io: " + where + ": tensor '" + info.name + "' at byte " + std::to_string(at) +
                               " appears twice (expected unique tensor names)");
        }
        out.tensors.push_back(std::move(info));
    }
    out.data_start = pad_to(in.position(), out.alignment);
    if (out.data_start > file.size()) {
        if (out.tensors.empty() || std::all_of(out.tensors.begin(), out.tensors.end(),
                                               [](const gguf_tensor_info& t) { return t.byte_size == 0; })) {
            out.data_start = file.size();  // no data: the padding may be absent (as after llama.cpp's meta-only files)
        } else {
            throw format_error("prune::io: " + where + ": the data section would start at byte " +
                               std::to_string(out.data_start) + ", past the end of the file (" +
                               std::to_string(file.size()) + " bytes)");
        }
    }
    check_gguf_tensor_layout(out, file.size(), where);
    return out;
}

/// Converts n elements of a non-quantized ggml type at `source` (any alignment) to float.
inline void ggml_to_float(ggml_type type, const std::byte* source, std::size_t n, float* out) {
    if (n == 0) {
        return;
    }
    if (const std::optional<dtype> d = safetensors_dtype(type)) {
        convert_to_float(*d, source, n, out);
        return;
    }
    for (std::size_t i = 0; i < n; ++i) {
        if (type == ggml_type::I8) {
            out[i] = static_cast<float>(static_cast<std::int8_t>(std::to_integer<std::uint8_t>(source[i])));
        } else {
            std::int16_t v = 0;
            std::memcpy(&v, source + i * 2, 2);
            out[i] = static_cast<float>(v);
        }
    }
}

}  // namespace detail

/// A GGUF file, memory-mapped read-only; move-only. Views stay valid while it lives.
class gguf_file {
public:
    /// Maps and validates a file; io_error when unreadable, format_error when malformed.
    [[nodiscard]] static gguf_file open(const std::filesystem::path& path) {
        return gguf_file(detail::file_bytes::map(path), path.string());
    }
    /// Validates a copy of an in-memory file; `name` is used in messages.
    [[nodiscard]] static gguf_file from_bytes(std::span<const std::byte> bytes, std::string name = "<memory>") {
        return gguf_file(detail::file_bytes::copy(bytes), std::move(name));
    }

    /// The file's path (or name) as given.
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// The GGUF version (2 or 3).
    [[nodiscard]] std::uint32_t version() const noexcept { return parsed_.version; }
    /// The alignment of the data section (general.alignment, default 32).
    [[nodiscard]] std::size_t alignment() const noexcept { return parsed_.alignment; }
    /// The byte at which the data section starts.
    [[nodiscard]] std::size_t data_offset() const noexcept { return parsed_.data_start; }

    /// Every metadata entry, in file order.
    [[nodiscard]] const std::vector<gguf_kv>& metadata() const noexcept { return parsed_.metadata; }
    /// The value of a key, or nullptr when absent.
    [[nodiscard]] const gguf_value* find(std::string_view key) const {
        const auto it = parsed_.keys.find(std::string(key));
        return it == parsed_.keys.end() ? nullptr : &parsed_.metadata[it->second].value;
    }
    /// The value of a key; format_error naming the key and the file when absent.
    [[nodiscard]] const gguf_value& get(std::string_view key) const {
        const gguf_value* v = find(key);
        if (v == nullptr) {
            throw format_error("prune::io: gguf '" + name_ + "' has no metadata key '" + std::string(key) + "'");
        }
        return *v;
    }
    /// "gguf 'file': metadata 'key'", for accessor messages.
    [[nodiscard]] std::string describe(std::string_view key) const {
        return "gguf '" + name_ + "': metadata '" + std::string(key) + "'";
    }

    /// Every tensor, in file order.
    [[nodiscard]] const std::vector<gguf_tensor_info>& tensors() const noexcept { return parsed_.tensors; }
    /// True when the file holds a tensor of that name.
    [[nodiscard]] bool contains(std::string_view name) const { return index_.contains(std::string(name)); }
    /// The entry of a tensor; format_error naming the tensor and the file when absent.
    [[nodiscard]] const gguf_tensor_info& info(std::string_view name) const {
        const auto it = index_.find(std::string(name));
        if (it == index_.end()) {
            throw format_error("prune::io: no tensor '" + std::string(name) + "' in gguf '" + name_ + "'");
        }
        return parsed_.tensors[it->second];
    }
    /// The raw bytes of a tensor (any type, quantized blocks included).
    [[nodiscard]] std::span<const std::byte> bytes(std::string_view name) const {
        const gguf_tensor_info& t = info(name);
        return bytes_.bytes().subspan(parsed_.data_start + static_cast<std::size_t>(t.offset), t.byte_size);
    }
    /// Drops the whole pages inside `part` (a range of this file's bytes, e.g. a tensor's) from
    /// the process's resident set once read; a later read maps them in again. No-op unless mapped.
    void release_pages(std::span<const std::byte> part) const noexcept { bytes_.release_pages(part); }
    /// A zero-copy row-major view; dtype_error unless the tensor is of T's type (quantized
    /// types named), format_error when its data is not aligned to T.
    template <element T>
    [[nodiscard]] tensor_view<const T> view(std::string_view name) const {
        const gguf_tensor_info& t = info(name);
        refuse_quantized(t);
        if (t.type != ggml_type_of<T>()) {
            throw dtype_error("prune::io: tensor '" + t.name + "' in gguf '" + name_ + "' is " +
                              ggml_type_name(t.type) + ", not " + prune::dtype_name<T>() +
                              " (use to_float() to convert)");
        }
        const auto raw = bytes(name);
        if (t.byte_size != 0 && reinterpret_cast<std::uintptr_t>(raw.data()) % alignof(T) != 0) {
            throw format_error("prune::io: tensor '" + t.name + "' in gguf '" + name_ +
                               "' is not aligned to " + std::to_string(alignof(T)) +
                               " bytes, so it cannot be viewed in place (use to_float())");
        }
        return tensor_view<const T>(std::span<const T>(reinterpret_cast<const T*>(raw.data()), t.numel()),
                                    t.extents());
    }
    /// The tensor converted to float (row-major) from F32/F16/BF16/F64/I8/I16/I32/I64;
    /// dtype_error naming the tensor and its type for quantized types.
    [[nodiscard]] std::vector<float> to_float(std::string_view name) const {
        const gguf_tensor_info& t = info(name);
        refuse_quantized(t);
        std::vector<float> out(t.numel());
        detail::ggml_to_float(t.type, bytes(name).data(), out.size(), out.data());
        return out;
    }
    /// The whole file's bytes.
    [[nodiscard]] std::span<const std::byte> file_bytes() const noexcept { return bytes_.bytes(); }

private:
    gguf_file(detail::file_bytes bytes, std::string name) : bytes_(std::move(bytes)), name_(std::move(name)) {
        parsed_ = detail::parse_gguf(bytes_.bytes(), "gguf '" + name_ + "'");
        for (std::size_t i = 0; i < parsed_.tensors.size(); ++i) {
            index_.emplace(parsed_.tensors[i].name, i);
        }
    }

    void refuse_quantized(const gguf_tensor_info& t) const {
        if (traits_of(t.type).quantized) {
            throw dtype_error("prune::io: tensor '" + t.name + "' in gguf '" + name_ + "' is " +
                              ggml_type_name(t.type) +
                              ", a quantized type (prune reads F32, F16, BF16, F64 and integer tensors; "
                              "convert the model to F16, BF16 or F32 first)");
        }
    }

    detail::file_bytes bytes_;
    std::string name_;
    detail::parsed_gguf parsed_;
    std::unordered_map<std::string, std::size_t> index_;
};

/// Collects metadata and tensors and writes them as one GGUF v3 file, atomically.
class gguf_writer {
public:
    /// Sets a metadata value; a key set before keeps its position. value_error on an empty key.
    void set(const std::string& key, gguf_value value) {
        if (key.empty()) {
            throw value_error("prune::io::gguf_writer: a metadata key cannot be empty");
        }
        if (key == "general.alignment") {
            const std::uint32_t a = value.as<std::uint32_t>("general.alignment");
            if (a == 0 || (a & (a - 1)) != 0) {
                throw value_error("prune::io::gguf_writer: general.alignment " + std::to_string(a) +
                                  " (expected a power of two)");
            }
            alignment_ = a;
        }
        for (gguf_kv& kv : metadata_) {
            if (kv.key == key) {
                kv.value = std::move(value);
                return;
            }
        }
        metadata_.push_back({key, std::move(value)});
    }
    /// Removes a metadata key (no-op when absent).
    void remove(std::string_view key) {
        if (key == "general.alignment") {
            alignment_ = detail::gguf_default_alignment;
        }
        std::erase_if(metadata_, [&](const gguf_kv& kv) { return kv.key == key; });
    }
    /// The value of a key, or nullptr.
    [[nodiscard]] const gguf_value* find(std::string_view key) const {
        for (const gguf_kv& kv : metadata_) {
            if (kv.key == key) {
                return &kv.value;
            }
        }
        return nullptr;
    }
    /// The metadata, in insertion order.
    [[nodiscard]] const std::vector<gguf_kv>& metadata() const noexcept { return metadata_; }
    /// The alignment of the data section.
    [[nodiscard]] std::size_t alignment() const noexcept { return alignment_; }

    /// Adds a tensor from raw bytes (copied): `shape` row-major (GGUF stores it reversed).
    /// value_error on a bad or duplicate name or rank > 4; shape_error when the bytes disagree.
    void add(std::string name, ggml_type type, const std::vector<std::size_t>& shape, std::span<const std::byte> data) {
        check(name, type, shape, data.size());
        entries_.push_back({std::move(name), type, shape, std::vector<std::byte>(data.begin(), data.end()), {}});
    }
    /// Adds a tensor by reference: `data` must stay alive and unchanged until write() returns.
    void add_borrowed(std::string name, ggml_type type, const std::vector<std::size_t>& shape,
                      std::span<const std::byte> data) {
        check(name, type, shape, data.size());
        entries_.push_back({std::move(name), type, shape, {}, data});
    }
    /// Adds a view (copied in logical row-major order).
    template <element T>
    void add(std::string name, tensor_view<T> tensor) {
        using U = std::remove_const_t<T>;
        const auto extents = tensor.extents().extents();
        const std::vector<std::size_t> shape(extents.begin(), extents.end());
        std::vector<std::byte> data(tensor.size() * sizeof(U));  // logical row-major order
        for (std::size_t i = 0; i < tensor.size(); ++i) {
            const U value = tensor.data()[tensor.storage_index(i)];
            std::memcpy(data.data() + i * sizeof(U), &value, sizeof(U));
        }
        check(name, ggml_type_of<U>(), shape, data.size());
        entries_.push_back({std::move(name), ggml_type_of<U>(), shape, std::move(data), {}});
    }

    /// True when a tensor of that name was added.
    [[nodiscard]] bool contains(std::string_view name) const {
        return std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) { return e.name == name; });
    }
    /// The number of tensors added.
    [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

    /// The bytes before the data section: header, metadata, tensor infos, padding.
    [[nodiscard]] std::vector<std::byte> header() const {
        std::vector<std::byte> out;
        const auto put_string = [&](std::string_view s) {
            gguf_value::append(out, static_cast<std::uint64_t>(s.size()));
            const auto* p = reinterpret_cast<const std::byte*>(s.data());
            out.insert(out.end(), p, p + s.size());
        };
        const char magic[4] = {'G', 'G', 'U', 'F'};
        const auto* m = reinterpret_cast<const std::byte*>(magic);
        out.insert(out.end(), m, m + 4);
        gguf_value::append(out, detail::gguf_version);
        gguf_value::append(out, static_cast<std::uint64_t>(entries_.size()));
        gguf_value::append(out, static_cast<std::uint64_t>(metadata_.size()));
        for (const gguf_kv& kv : metadata_) {
            put_string(kv.key);
            kv.value.encode(out);
        }
        std::uint64_t offset = 0;
        for (const entry& e : entries_) {
            put_string(e.name);
            gguf_value::append(out, static_cast<std::uint32_t>(e.shape.size()));
            for (auto it = e.shape.rbegin(); it != e.shape.rend(); ++it) {
                gguf_value::append(out, static_cast<std::uint64_t>(*it));
            }
            gguf_value::append(out, static_cast<std::uint32_t>(e.type));
            gguf_value::append(out, offset);
            offset += detail::pad_to(e.data().size(), alignment_);
        }
        out.resize(detail::pad_to(out.size(), alignment_));
        return out;
    }

    /// The whole file in memory.
    [[nodiscard]] std::vector<std::byte> to_bytes() const {
        std::vector<std::byte> out = header();
        for (const entry& e : entries_) {
            const auto data = e.data();
            out.insert(out.end(), data.begin(), data.end());
            out.resize(detail::pad_to(out.size(), alignment_));
        }
        return out;
    }

    /// Writes the file: temporary in the same directory, fsync, rename over path. `written`, when
    /// given, is called with each borrowed tensor's bytes once they are written (e.g. to drop a
    /// source file map's pages from the resident set, so that a model larger than memory streams).
    void write(const std::filesystem::path& path,
               const std::function<void(std::span<const std::byte>)>& written = {}) const {
        atomic_file file(path);
        file.write(header());
        const std::vector<std::byte> zeros(alignment_);
        for (const entry& e : entries_) {
            const auto data = e.data();
            file.write(data);
            file.write(std::span<const std::byte>(zeros).first(detail::pad_to(data.size(), alignment_) - data.size()));
            if (written && e.owned.empty()) {
                written(data);
            }
        }
        file.commit();
    }

private:
    struct entry {
        std::string name;
        ggml_type type;
        std::vector<std::size_t> shape;
        std::vector<std::byte> owned;
        std::span<const std::byte> borrowed;
        [[nodiscard]] std::span<const std::byte> data() const noexcept {
            return owned.empty() ? borrowed : std::span<const std::byte>(owned);
        }
    };

    void check(const std::string& name, ggml_type type, const std::vector<std::size_t>& shape, std::size_t bytes) const {
        const std::string what = "prune::io::gguf_writer: tensor '" + name + "'";
        if (name.empty() || name.size() > detail::gguf_max_name) {
            throw value_error(what + ": a name of " + std::to_string(name.size()) +
                              " bytes (expected 1 to 63, llama.cpp's limit)");
        }
        if (contains(name)) {
            throw value_error(what + " added twice");
        }
        if (shape.size() > detail::gguf_max_dims) {
            throw value_error(what + " has rank " + std::to_string(shape.size()) + " (GGUF allows at most 4)");
        }
        const std::vector<std::uint64_t> ne(shape.rbegin(), shape.rend());
        bool row_ok = true;
        const std::optional<std::size_t> expected = detail::ggml_bytes(traits_of(type), ne, row_ok);
        const std::string shape_text = detail::shape_text<std::size_t>(shape);
        if (!row_ok) {
            throw shape_error(what + " of shape " + shape_text + " and type " + ggml_type_name(type) +
                              ": the last dimension is not a multiple of the block size " +
                              std::to_string(traits_of(type).block_size));
        }
        if (!expected.has_value() || *expected != bytes) {
            throw shape_error(what + " has " + std::to_string(bytes) + " bytes (expected " +
                              (expected ? std::to_string(*expected) : std::string("an overflowing size")) +
                              " for shape " + shape_text + " of " + ggml_type_name(type) + ")");
        }
    }

    std::vector<gguf_kv> metadata_;
    std::vector<entry> entries_;
    std::size_t alignment_ = detail::gguf_default_alignment;
};

}  // namespace prune::io
