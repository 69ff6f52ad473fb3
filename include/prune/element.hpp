// prune/element.hpp: the element types the library computes on (float, double, and
// the 16-bit `prune::half` and `prune::bfloat16`), with exact conversions to and from
// float.
//
// The 16-bit types are plain storage (IEEE binary16 and bfloat16 bit patterns), so an
// adapter can view Eigen::half, at::Half or any other 16-bit type of the same format
// as them. Conversion to float is exact; conversion from float rounds to nearest even
// and keeps infinities and NaN.
#pragma once

#include <bit>
#include <concepts>
#include <cstdint>
#include <type_traits>

namespace prune {

/// IEEE 754 binary16 storage.
struct half {
    std::uint16_t bits = 0;  ///< the raw bit pattern
};

/// bfloat16 storage: the upper 16 bits of an IEEE binary32.
struct bfloat16 {
    std::uint16_t bits = 0;  ///< the raw bit pattern
};

static_assert(sizeof(half) == 2 && sizeof(bfloat16) == 2);
static_assert(std::is_trivially_copyable_v<half> && std::is_trivially_copyable_v<bfloat16>);

/// Converts a binary16 to float, exactly (subnormals, infinities and NaN included).
[[nodiscard]] constexpr float to_float(half value) noexcept {
    const std::uint32_t h = value.bits;
    const std::uint32_t sign = (h & 0x8000u) << 16;
    const std::uint32_t exponent = (h >> 10) & 0x1Fu;
    std::uint32_t mantissa = h & 0x3FFu;
    std::uint32_t bits = 0;
    if (exponent == 0x1Fu) {
        bits = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa != 0) {  // subnormal: normalise
        std::uint32_t shift = 0;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            ++shift;
        }
        mantissa &= 0x3FFu;
        bits = sign | ((113u - shift) << 23) | (mantissa << 13);
    } else {
        bits = sign;
    }
    return std::bit_cast<float>(bits);
}

/// Converts a bfloat16 to float, exactly.
[[nodiscard]] constexpr float to_float(bfloat16 value) noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(value.bits) << 16);
}

/// Identity, so generic code can call to_float on every element type.
[[nodiscard]] constexpr float to_float(float value) noexcept { return value; }

/// Narrowing to float, so generic code can call to_float on every element type.
[[nodiscard]] constexpr float to_float(double value) noexcept { return static_cast<float>(value); }

/// Rounds a float to the nearest binary16 (ties to even); overflow gives infinity.
[[nodiscard]] constexpr half to_half(float value) noexcept {
    const std::uint32_t f = std::bit_cast<std::uint32_t>(value);
    const std::uint32_t sign = (f >> 16) & 0x8000u;
    const std::uint32_t abs = f & 0x7FFFFFFFu;
    if (abs >= 0x7F800000u) {  // infinity or NaN (keep NaN quiet and non-zero)
        const std::uint32_t nan = abs > 0x7F800000u ? (0x200u | ((abs >> 13) & 0x3FFu)) : 0u;
        return half{static_cast<std::uint16_t>(sign | 0x7C00u | nan)};
    }
    if (abs >= 0x477FF000u) {  // rounds to >= 65520: infinity
        return half{static_cast<std::uint16_t>(sign | 0x7C00u)};
    }
    if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
        if (abs < 0x33000000u) {  // below half the smallest subnormal: rounds to zero
            return half{static_cast<std::uint16_t>(sign)};
        }
        const std::uint32_t exponent = abs >> 23;
        const std::uint32_t mantissa = (abs & 0x7FFFFFu) | 0x800000u;
        const std::uint32_t shift = 126u - exponent;  // 14..24
        std::uint32_t result = mantissa >> shift;
        const std::uint32_t remainder = mantissa & ((1u << shift) - 1u);
        const std::uint32_t halfway = 1u << (shift - 1u);
        if (remainder > halfway || (remainder == halfway && (result & 1u))) {
            ++result;
        }
        return half{static_cast<std::uint16_t>(sign | result)};
    }
    std::uint32_t result = ((abs >> 13) - (112u << 10));
    const std::uint32_t remainder = abs & 0x1FFFu;
    if (remainder > 0x1000u || (remainder == 0x1000u && (result & 1u))) {
        ++result;  // may carry into the exponent, which is the right answer
    }
    return half{static_cast<std::uint16_t>(sign | result)};
}

/// Rounds a float to the nearest bfloat16 (ties to even); NaN stays NaN.
[[nodiscard]] constexpr bfloat16 to_bfloat16(float value) noexcept {
    const std::uint32_t f = std::bit_cast<std::uint32_t>(value);
    if ((f & 0x7FFFFFFFu) > 0x7F800000u) {
        return bfloat16{static_cast<std::uint16_t>((f >> 16) | 0x40u)};
    }
    const std::uint32_t rounded = f + 0x7FFFu + ((f >> 16) & 1u);
    return bfloat16{static_cast<std::uint16_t>(rounded >> 16)};
}

/// The element types every algorithm supports.
template <class T>
concept element = std::same_as<std::remove_const_t<T>, float> ||
                  std::same_as<std::remove_const_t<T>, double> ||
                  std::same_as<std::remove_const_t<T>, half> ||
                  std::same_as<std::remove_const_t<T>, bfloat16>;

/// Converts a float to element type T (rounding to nearest even for 16-bit types).
template <element T>
[[nodiscard]] constexpr std::remove_const_t<T> from_float(float value) noexcept {
    using U = std::remove_const_t<T>;
    if constexpr (std::same_as<U, half>) {
        return to_half(value);
    } else if constexpr (std::same_as<U, bfloat16>) {
        return to_bfloat16(value);
    } else {
        return static_cast<U>(value);
    }
}

/// The value of any element as double (exact for every supported type).
template <element T>
[[nodiscard]] constexpr double to_double(T value) noexcept {
    if constexpr (std::same_as<std::remove_const_t<T>, double>) {
        return value;
    } else {
        return static_cast<double>(to_float(value));
    }
}

/// The short dtype name used in messages and files ("F32", "F64", "F16", "BF16").
template <element T>
[[nodiscard]] constexpr const char* dtype_name() noexcept {
    using U = std::remove_const_t<T>;
    if constexpr (std::same_as<U, float>) {
        return "F32";
    } else if constexpr (std::same_as<U, double>) {
        return "F64";
    } else if constexpr (std::same_as<U, half>) {
        return "F16";
    } else {
        return "BF16";
    }
}

}  // namespace prune
