// prune/importance/scores.hpp: per-element scores for unstructured (weight) pruning.
//
// A `score_source` describes the scores of one tensor without materialising them: it
// fills, on demand, the *score keys* of a range of logical (row-major) indices. A key
// is a 32-bit unsigned integer whose order is the order of the scores, so selection
// (<prune/select.hpp>) can run radix/histogram passes over keys whatever the element
// type. Providers:
//   magnitude(t)          score |w|            (keep the largest weights: m-pruning, "good")
//   inverted_magnitude(t) score -|w|           (prune the largest weights: the "bad" subnetwork)
//   random_scores(s, seed) a counter-based hash of (seed, tensor index, element index):
//                          a uniformly random order that does not depend on threads
//   given_scores(t)       the values of a user-supplied score tensor (e.g. |w * grad|)
// Keys: scores are compared as float (double scores are rounded to float first);
// -0 and +0 are equal; every NaN gets key 0, below every number, so NaN scores are
// pruned first (see docs/selection.md).
//
// A source keeps a pointer to the tensor's elements: the tensor must outlive it.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace prune {

/// The key of a float score: unsigned integers ordered as the scores; NaN -> 0 (below all), -0 == +0.
[[nodiscard]] constexpr std::uint32_t score_key(float score) noexcept {
    std::uint32_t bits = std::bit_cast<std::uint32_t>(score);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) {
        return 0;  // NaN
    }
    if (bits == 0x80000000u) {
        bits = 0;  // -0 == +0
    }
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

/// The key of the magnitude score |score| (NaN -> 0); equals score_key(|score|).
[[nodiscard]] constexpr std::uint32_t magnitude_key(float score) noexcept {
    const std::uint32_t magnitude = std::bit_cast<std::uint32_t>(score) & 0x7FFFFFFFu;
    return magnitude > 0x7F800000u ? 0u : (magnitude | 0x80000000u);
}

/// The key of the inverted magnitude -|score| (NaN -> 0); orders as score_key(-|score|).
[[nodiscard]] constexpr std::uint32_t inverted_magnitude_key(float score) noexcept {
    const std::uint32_t magnitude = std::bit_cast<std::uint32_t>(score) & 0x7FFFFFFFu;
    return magnitude > 0x7F800000u ? 0u : (0x80000000u - magnitude);
}

/// The random key of element `index` of tensor `tensor_index` for a seed (counter-based, SplitMix64 finaliser).
[[nodiscard]] constexpr std::uint32_t random_key(std::uint64_t seed, std::size_t tensor_index,
                                                 std::size_t index) noexcept {
    auto mix = [](std::uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    };
    const std::uint64_t stream = mix(seed + 0x9E3779B97F4A7C15ull * (static_cast<std::uint64_t>(tensor_index) + 1));
    return static_cast<std::uint32_t>(mix(stream + 0xD1B54A32D192ED03ull * (static_cast<std::uint64_t>(index) + 1)) >>
                                      32);
}

/// How a source turns its elements into keys.
enum class score_kind {
    magnitude,           ///< |w|
    inverted_magnitude,  ///< -|w|
    given,               ///< the values themselves
    random,              ///< hash of (seed, tensor index, element index); no data
};

/// The scores of one tensor, type-erased: fills the keys of a range of logical indices on demand.
class score_source {
public:
    /// Fills keys for logical indices [begin, begin + keys.size()) of tensor number tensor_index.
    using fill_function = void (*)(const score_source&, std::size_t tensor_index, std::size_t begin,
                                   std::span<std::uint32_t> keys);

    /// A source of the given shape that reads `data` (storage order `order`) through `fill`.
    score_source(prune::shape extents, score_kind kind, fill_function fill, const void* data, layout order,
                 std::uint64_t seed = 0)
        : extents_(extents), kind_(kind), fill_(fill), data_(data), order_(order), seed_(seed) {}

    /// The tensor's shape.
    [[nodiscard]] const prune::shape& extents() const noexcept { return extents_; }
    /// The number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return extents_.numel(); }
    /// What the scores are.
    [[nodiscard]] score_kind kind() const noexcept { return kind_; }
    /// The name used in error messages ("" when unnamed).
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// Sets the name used in error messages; returns *this.
    score_source& named(std::string name) & {
        name_ = std::move(name);
        return *this;
    }
    /// Sets the name used in error messages; returns the source.
    [[nodiscard]] score_source&& named(std::string name) && {
        name_ = std::move(name);
        return std::move(*this);
    }
    /// The element storage (nullptr for random scores).
    [[nodiscard]] const void* data() const noexcept { return data_; }
    /// The storage order of data().
    [[nodiscard]] layout order() const noexcept { return order_; }
    /// The seed (random scores only).
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

    /// Fills the keys of logical indices [begin, begin + keys.size()); the range must lie within size().
    void fill_keys(std::size_t tensor_index, std::size_t begin, std::span<std::uint32_t> keys) const {
        PRUNE_ASSERT(begin + keys.size() <= size());
        fill_(*this, tensor_index, begin, keys);
    }

private:
    prune::shape extents_;
    score_kind kind_;
    fill_function fill_;
    const void* data_;
    layout order_;
    std::uint64_t seed_;
    std::string name_;
};

namespace detail {

/// The key of one element for a data-reading kind.
template <score_kind Kind, element T>
[[nodiscard]] constexpr std::uint32_t element_key(T value) noexcept {
    const float f = to_float(value);
    if constexpr (Kind == score_kind::magnitude) {
        return magnitude_key(f);
    } else if constexpr (Kind == score_kind::inverted_magnitude) {
        return inverted_magnitude_key(f);
    } else {
        return score_key(f);
    }
}

/// fill_function for sources that read elements of type T.
template <score_kind Kind, element T>
void fill_from_elements(const score_source& source, std::size_t, std::size_t begin, std::span<std::uint32_t> keys) {
    const T* data = static_cast<const T*>(source.data());
    const tensor_view<const T> view(std::span<const T>(data, source.size()), source.extents(), source.order());
    const std::size_t n = keys.size();
    if (view.is_logically_contiguous()) {
        const T* p = data + begin;
        for (std::size_t j = 0; j < n; ++j) {
            keys[j] = element_key<Kind>(p[j]);
        }
        return;
    }
    if (source.extents().rank() == 2) {  // column-major matrix
        const std::size_t rows = source.extents()[0];
        const std::size_t cols = source.extents()[1];
        std::size_t r = begin / cols;
        std::size_t c = begin % cols;
        for (std::size_t j = 0; j < n; ++j) {
            keys[j] = element_key<Kind>(data[c * rows + r]);
            if (++c == cols) {
                c = 0;
                ++r;
            }
        }
        return;
    }
    for (std::size_t j = 0; j < n; ++j) {
        keys[j] = element_key<Kind>(data[view.storage_index(begin + j)]);
    }
}

/// fill_function for random scores.
inline void fill_random(const score_source& source, std::size_t tensor_index, std::size_t begin,
                        std::span<std::uint32_t> keys) {
    for (std::size_t j = 0; j < keys.size(); ++j) {
        keys[j] = random_key(source.seed(), tensor_index, begin + j);
    }
}

/// A source of the given kind over any adapted tensor, runtime-typed ones (torch) included.
template <score_kind Kind, class Tensor>
[[nodiscard]] score_source make_source(const Tensor& tensor) {
    return prune::visit_view(tensor, [](auto v) {
        using T = typename decltype(v)::value_type;
        return score_source(v.extents(), Kind, &fill_from_elements<Kind, T>,
                            static_cast<const void*>(v.data().data()), v.order());
    });
}

/// True for the types that are themselves non-owning views (safe to pass as temporaries).
template <class T>
inline constexpr bool is_non_owning_view = false;
template <element T>
inline constexpr bool is_non_owning_view<tensor_view<T>> = true;
template <element T, std::size_t Extent>
inline constexpr bool is_non_owning_view<std::span<T, Extent>> = true;

/// A temporary owning tensor would dangle inside a score_source.
template <class Tensor>
concept dangling_temporary = !std::is_lvalue_reference_v<Tensor> && !is_non_owning_view<std::remove_cvref_t<Tensor>>;

}  // namespace detail

/// Magnitude scores |w| of any adapted tensor (which must outlive the source).
template <class Tensor>
[[nodiscard]] score_source magnitude(const Tensor& tensor) {
    return detail::make_source<score_kind::magnitude>(tensor);
}
/// Deleted: the scores would refer to a destroyed temporary.
template <class Tensor>
    requires detail::dangling_temporary<Tensor>
score_source magnitude(Tensor&&) = delete;

/// Inverted magnitude scores -|w| (the largest weights are pruned first: the "bad" subnetwork).
template <class Tensor>
[[nodiscard]] score_source inverted_magnitude(const Tensor& tensor) {
    return detail::make_source<score_kind::inverted_magnitude>(tensor);
}
/// Deleted: the scores would refer to a destroyed temporary.
template <class Tensor>
    requires detail::dangling_temporary<Tensor>
score_source inverted_magnitude(Tensor&&) = delete;

/// User-supplied scores (e.g. |w * grad|): the tensor's values, smallest pruned first.
template <class Tensor>
[[nodiscard]] score_source given_scores(const Tensor& scores) {
    return detail::make_source<score_kind::given>(scores);
}
/// Deleted: the scores would refer to a destroyed temporary.
template <class Tensor>
    requires detail::dangling_temporary<Tensor>
score_source given_scores(Tensor&&) = delete;

/// Seeded random scores for a tensor of the given shape: a uniformly random pruning order,
/// a pure function of (seed, tensor index in the selection, element index).
[[nodiscard]] inline score_source random_scores(prune::shape extents, std::uint64_t seed) {
    return score_source(extents, score_kind::random, &detail::fill_random, nullptr, layout::row_major, seed);
}

}  // namespace prune
