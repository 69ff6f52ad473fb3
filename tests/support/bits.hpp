// tests/support/bits.hpp: bit-for-bit comparison of results (the thread-count and
// recorded-vs-recomputed tests compare with memcmp, not with a tolerance).
#pragma once

#include <cstddef>
#include <cstring>
#include <vector>

namespace prune_test {

/// Number of elements of a and b (n each) whose bits differ.
template <class T>
std::size_t bits_differ(const T* a, const T* b, std::size_t n) {
    std::size_t d = 0;
    for (std::size_t i = 0; i < n; ++i) d += std::memcmp(a + i, b + i, sizeof(T)) != 0;
    return d;
}

/// True when a and b have the same size and bits.
template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && bits_differ(a.data(), b.data(), a.size()) == 0;
}

}  // namespace prune_test
