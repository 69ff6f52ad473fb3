// prune/detail/random.hpp: the one random-number generator of the library, SplitMix64
// (Steele, Lea and Flood 2014; the constants of Vigna's splitmix64.c): tiny, seedable, and the
// same numbers on every platform and standard library, so random masks, data suites, shuffles
// and MLM masking are bit-identical everywhere for a given seed. Also: sampling without
// replacement.
#pragma once

#include <prune/error.hpp>

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace prune::detail {

/// SplitMix64: a 64-bit state advanced by the golden-ratio increment, then mixed.
class splitmix64 {
public:
    /// Stream `stream` of `seed`: the state is seed ^ (0xD1B54A32D192ED03 x (stream + 1)), so
    /// the streams of one seed start far apart.
    explicit splitmix64(std::uint64_t seed, std::uint64_t stream = 0) noexcept
        : state_(seed ^ (0xD1B54A32D192ED03ull * (stream + 1))) {}

    /// A generator whose state is exactly `state` (Vigna's splitmix64.c seeded with `state`).
    [[nodiscard]] static splitmix64 from_state(std::uint64_t state) noexcept {
        splitmix64 g(0);
        g.state_ = state;
        return g;
    }

    /// The next 64 random bits.
    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }

    /// A uniform double in [0, 1) (the top 53 bits).
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

    /// A uniform integer in [0, n), n > 0 (rejection sampling, no modulo bias).
    std::uint64_t below(std::uint64_t n) noexcept {
        PRUNE_ASSERT(n > 0);
        const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
        std::uint64_t x = next();
        while (x >= limit) x = next();
        return x % n;
    }

    /// Fisher-Yates shuffle (from the back, one below() per position).
    template <class T>
    void shuffle(std::vector<T>& v) {
        for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[static_cast<std::size_t>(below(i))]);
    }

private:
    std::uint64_t state_;
};

/// k indices sampled uniformly without replacement from `pool` (partial Fisher-Yates), in pool order of draw.
inline std::vector<std::size_t> sample_without_replacement(std::vector<std::size_t> pool, std::size_t k,
                                                           splitmix64& rng) {
    PRUNE_ASSERT(k <= pool.size());
    for (std::size_t i = 0; i < k; ++i) {
        const std::size_t j = i + static_cast<std::size_t>(rng.below(pool.size() - i));
        std::swap(pool[i], pool[j]);
    }
    pool.resize(k);
    return pool;
}

}  // namespace prune::detail
