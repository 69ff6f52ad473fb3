// prune/nn/dropout.hpp: counter-based dropout. The keep/drop decision of element `index` at a
// dropout `site` is a hash of (seed, site, index), so a pass is reproducible bit for bit at any
// thread count and a backward pass recomputes the mask instead of storing it.
#pragma once

#include <cstdint>

namespace prune::nn {

/// 53-bit uniform in [0, 1) from a counter-based hash (SplitMix64's finaliser) of (seed, site, index).
[[nodiscard]] inline double dropout_uniform(std::uint64_t seed, std::uint64_t site, std::uint64_t index) noexcept {
    auto mix = [](std::uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    const std::uint64_t stream = mix(seed + 0x9E3779B97F4A7C15ull * (site + 1));
    return static_cast<double>(mix(stream + 0xD1B54A32D192ED03ull * (index + 1)) >> 11) * 0x1.0p-53;
}

/// One dropout site: probability p (0 = off), the pass's seed, the site's id.
struct dropout {
    float p = 0.0f;           ///< drop probability (<= 0: off)
    std::uint64_t seed = 0;   ///< the pass's stream (a new one per step)
    std::uint64_t site = 0;   ///< where in the model (each site draws its own mask)

    /// True when elements are dropped at all.
    [[nodiscard]] bool active() const noexcept { return p > 0.0f; }
    /// The scale of element `index`: 0 (dropped) or 1 / (1 - p); 1 when off.
    template <class S>
    [[nodiscard]] S scale(std::uint64_t index) const noexcept {
        if (p <= 0.0f) return S{1};
        return dropout_uniform(seed, site, index) < static_cast<double>(p) ? S{0} : S{1} / (S{1} - static_cast<S>(p));
    }
};

}  // namespace prune::nn
