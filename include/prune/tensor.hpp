// prune/tensor.hpp: the common currency of the library. A `tensor_view<T>` is a
// `std::span` over contiguous elements plus a shape and an explicitly stated storage
// order; every algorithm runs on views. `tensor_traits<T>` is the customisation point
// that turns a foreign tensor (std::vector, Eigen, xtensor, torch, ...) into a view.
//
// Logical element order is always row-major: element i of a view is the i-th element
// of the tensor read with the last index moving fastest, whatever the storage order.
// Masks and selections speak of logical indices, so they mean the same thing for a
// column-major Eigen matrix and a row-major torch tensor of the same shape.
//
// The primary `tensor_traits<T>` is disabled. Using a type that has no adapter fails
// to compile with a message naming the type and the header that adapts it. A tensor
// whose element type is known only at run time (torch::Tensor) has traits with
// `visit(t, f)` instead of `view(t)`; `visit_view(t, f)` reaches every adapted tensor.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace prune {

/// Storage order of a view's elements.
enum class layout {
    row_major,     ///< last index fastest (C, torch, xtensor default, safetensors)
    column_major,  ///< first index fastest (Eigen default, Fortran)
};

/// The extents of a tensor: rank <= 8, no allocation.
class shape {
public:
    static constexpr std::size_t max_rank = 8;  ///< the largest supported rank

    /// A rank-0 shape (one element).
    constexpr shape() = default;

    /// A shape from its extents; throws shape_error beyond max_rank.
    constexpr shape(std::initializer_list<std::size_t> extents) { assign(extents.begin(), extents.end()); }

    /// A shape from any range of extents; throws shape_error beyond max_rank.
    template <class Range>
        requires requires(const Range& r) { std::begin(r); std::end(r); }
    constexpr explicit shape(const Range& extents) {
        assign(std::begin(extents), std::end(extents));
    }

    /// The number of dimensions.
    [[nodiscard]] constexpr std::size_t rank() const noexcept { return rank_; }

    /// The extent of dimension d (d < rank).
    [[nodiscard]] constexpr std::size_t operator[](std::size_t d) const noexcept { return extents_[d]; }

    /// The number of elements (1 for rank 0).
    [[nodiscard]] constexpr std::size_t numel() const noexcept {
        std::size_t n = 1;
        for (std::size_t d = 0; d < rank_; ++d) {
            n *= extents_[d];
        }
        return n;
    }

    /// The extents as a span.
    [[nodiscard]] constexpr std::span<const std::size_t> extents() const noexcept {
        return {extents_.data(), rank_};
    }

    /// Equal when rank and every extent agree.
    [[nodiscard]] friend constexpr bool operator==(const shape& a, const shape& b) noexcept {
        return std::ranges::equal(a.extents(), b.extents());
    }

    /// "[3, 4]".
    [[nodiscard]] std::string to_string() const {
        std::string s = "[";
        for (std::size_t d = 0; d < rank_; ++d) {
            s += (d ? ", " : "") + std::to_string(extents_[d]);
        }
        return s + "]";
    }

private:
    template <class It>
    constexpr void assign(It first, It last) {
        for (; first != last; ++first) {
            if (rank_ == max_rank) {
                throw shape_error("prune::shape: rank above " + std::to_string(max_rank) + " is not supported");
            }
            extents_[rank_++] = static_cast<std::size_t>(*first);
        }
    }

    std::array<std::size_t, max_rank> extents_{};
    std::size_t rank_ = 0;
};

/// A non-owning view of contiguous elements with a shape and a storage order.
/// T is one of the supported element types, optionally const.
template <element T>
class tensor_view {
public:
    using element_type = T;                        ///< the (possibly const) element type
    using value_type = std::remove_const_t<T>;     ///< the element type without const

    /// An empty rank-1 view.
    constexpr tensor_view() : shape_{0} {}

    /// A view of data with the given shape and order; throws shape_error when the sizes disagree.
    constexpr tensor_view(std::span<T> data, prune::shape extents, layout order = layout::row_major)
        : data_(data), shape_(extents), order_(order) {
        if (data.size() != extents.numel()) {
            throw shape_error("prune::tensor_view: " + std::to_string(data.size()) +
                              " elements cannot have shape " + extents.to_string() + " (expected " +
                              std::to_string(extents.numel()) + ")");
        }
    }

    /// A rank-1 view of a span.
    constexpr explicit tensor_view(std::span<T> data) : data_(data), shape_{data.size()} {}

    /// A const view of a mutable one.
    template <class U>
        requires std::same_as<T, const U>
    constexpr tensor_view(const tensor_view<U>& other)  // NOLINT(google-explicit-constructor)
        : data_(other.data()), shape_(other.extents()), order_(other.order()) {}

    /// The elements in storage order.
    [[nodiscard]] constexpr std::span<T> data() const noexcept { return data_; }
    /// The extents.
    [[nodiscard]] constexpr const prune::shape& extents() const noexcept { return shape_; }
    /// The storage order.
    [[nodiscard]] constexpr layout order() const noexcept { return order_; }
    /// The number of elements.
    [[nodiscard]] constexpr std::size_t size() const noexcept { return data_.size(); }
    /// True when logical (row-major) order and storage order coincide.
    [[nodiscard]] constexpr bool is_logically_contiguous() const noexcept {
        if (order_ == layout::row_major) {
            return true;
        }
        std::size_t non_unit = 0;  // column-major equals row-major when at most one extent exceeds 1
        for (std::size_t e : shape_.extents()) {
            non_unit += e > 1 ? 1 : 0;
        }
        return non_unit <= 1;
    }

    /// The storage offset of logical (row-major) element i.
    [[nodiscard]] constexpr std::size_t storage_index(std::size_t i) const noexcept {
        if (is_logically_contiguous()) {
            return i;
        }
        // decompose i row-major, recompose column-major
        std::size_t offset = 0;
        std::size_t stride = 1;
        std::array<std::size_t, prune::shape::max_rank> index{};
        for (std::size_t d = shape_.rank(); d-- > 0;) {
            index[d] = i % shape_[d];
            i /= shape_[d];
        }
        for (std::size_t d = 0; d < shape_.rank(); ++d) {
            offset += index[d] * stride;
            stride *= shape_[d];
        }
        return offset;
    }

private:
    std::span<T> data_;
    prune::shape shape_;
    layout order_ = layout::row_major;
};

/// A view of a raw buffer: pointer + shape + stated order.
template <element T>
[[nodiscard]] constexpr tensor_view<T> make_view(T* data, prune::shape extents, layout order = layout::row_major) {
    return tensor_view<T>(std::span<T>(data, extents.numel()), extents, order);
}

/// The customisation point: specialise for a tensor type with
///   `static tensor_view<E> view(T&)` (E possibly const).
/// The primary template is disabled; see `adapted_tensor`.
template <class T>
struct tensor_traits {
    static constexpr bool disabled = true;  ///< marks "no adapter"
};

/// True when T (cv-ref stripped) has an enabled tensor_traits specialisation.
template <class T>
concept adapted_tensor = !requires { tensor_traits<std::remove_cvref_t<T>>::disabled; } &&
                         requires(std::remove_cvref_t<T>& t) { tensor_traits<std::remove_cvref_t<T>>::view(t); };

/// True when T has a runtime-typed adapter: its element type is known only at run time
/// (torch::Tensor), so its traits offer `visit(t, f)` (calls f with the view of the actual
/// element type, or throws dtype_error) instead of `view(t)`. Reach it through visit_view.
template <class T>
concept runtime_typed_tensor = !requires { tensor_traits<std::remove_cvref_t<T>>::disabled; } &&
                               requires { tensor_traits<std::remove_cvref_t<T>>::runtime_typed; };

namespace detail {
template <class>
inline constexpr bool dependent_false = false;

/// Looks like an Eigen dense object (Matrix, Array, Map, Block, expression, ...).
template <class T>
concept looks_like_eigen = requires {
    typename T::Scalar;
    T::RowsAtCompileTime;
    T::ColsAtCompileTime;
};

/// Looks like an xtensor expression (container, adaptor, view, function, ...).
template <class T>
concept looks_like_xtensor = requires {
    typename T::expression_tag;
    typename T::shape_type;
    typename T::value_type;
};

/// Looks like a torch::Tensor (at::Tensor).
template <class T>
concept looks_like_torch = requires(const T& t) {
    t.scalar_type();
    t.is_contiguous();
    t.data_ptr();
};

/// Instantiated only for a type with no adapter; the compiler's message names T (in
/// "required from ... no_tensor_traits_for<T>") and the header that adapts its family.
template <class T>
struct no_tensor_traits_for {
    static_assert(!looks_like_eigen<T> || dependent_false<T>,
                  "prune: no prune::tensor_traits<T> for this Eigen type (named in "
                  "no_tensor_traits_for<T> above). Include <prune/adapters/eigen.hpp>, which adapts "
                  "Eigen::Matrix, Array, Map and Ref of float, double, Eigen::half and Eigen::bfloat16; "
                  "evaluate expressions (blocks, products, transposes) into a Matrix or Array first.");
    static_assert(!looks_like_xtensor<T> || dependent_false<T>,
                  "prune: no prune::tensor_traits<T> for this xtensor type (named in "
                  "no_tensor_traits_for<T> above). Include <prune/adapters/xtensor.hpp>, which adapts "
                  "xt::xarray, xt::xtensor and xt::adapt-ed buffers of float, double, prune::half and "
                  "prune::bfloat16; evaluate views and expressions (xt::eval) first.");
    static_assert(!looks_like_torch<T> || dependent_false<T>,
                  "prune: no prune::tensor_traits<T> for this torch type (named in "
                  "no_tensor_traits_for<T> above). Include <prune/adapters/torch.hpp> and link prune::torch.");
    static_assert(looks_like_eigen<T> || looks_like_xtensor<T> || looks_like_torch<T> || dependent_false<T>,
                  "prune: this type (named in no_tensor_traits_for<T> above) has no prune::tensor_traits<T> "
                  "specialisation. Include the adapter header of its library (<prune/adapters/eigen.hpp>, "
                  "<prune/adapters/xtensor.hpp>, <prune/adapters/torch.hpp>), or specialise "
                  "prune::tensor_traits<T> yourself with `static tensor_view<E> view(T&)` "
                  "(see <prune/tensor.hpp>); E is float, double, prune::half or prune::bfloat16.");
    using type = void;
};
}  // namespace detail

/// The view of any adapted tensor; a const tensor gives a view of const elements.
template <class T>
[[nodiscard]] constexpr auto view(T& tensor) {
    if constexpr (adapted_tensor<T>) {
        using traits = tensor_traits<std::remove_cvref_t<T>>;
        if constexpr (std::is_const_v<T>) {
            using E = typename decltype(traits::view(const_cast<std::remove_const_t<T>&>(tensor)))::value_type;
            return tensor_view<const E>(traits::view(const_cast<std::remove_const_t<T>&>(tensor)));
        } else {
            return traits::view(tensor);
        }
    } else {
        if constexpr (runtime_typed_tensor<T>) {
            static_assert(detail::dependent_false<T>,
                          "prune::view: this tensor's element type is known only at run time (e.g. "
                          "torch::Tensor); use prune::visit_view(t, f) or the adapter's typed view "
                          "(prune::torch_view<E>(t)).");
        } else {
            return typename detail::no_tensor_traits_for<std::remove_cvref_t<T>>::type();
        }
    }
}

/// Calls f with the view of any adapted tensor and returns what f returns; for a
/// runtime-typed tensor (torch::Tensor) f is called with the view of its actual element
/// type, so f must accept a tensor_view of every element type (a generic lambda).
template <class T, class F>
decltype(auto) visit_view(T& tensor, F&& f) {
    if constexpr (adapted_tensor<T>) {
        return std::forward<F>(f)(prune::view(tensor));
    } else if constexpr (runtime_typed_tensor<T>) {
        return tensor_traits<std::remove_cvref_t<T>>::visit(tensor, std::forward<F>(f));
    } else {
        return typename detail::no_tensor_traits_for<std::remove_cvref_t<T>>::type();
    }
}

/// The element type (without const) of an adapted tensor.
template <adapted_tensor T>
using tensor_element_t = typename decltype(view(std::declval<T&>()))::value_type;

// ---- built-in adapters -------------------------------------------------------------

/// A view adapts to itself.
template <element T>
struct tensor_traits<tensor_view<T>> {
    /// Identity.
    static constexpr tensor_view<T> view(const tensor_view<T>& v) noexcept { return v; }
};

/// std::vector of an element type: a rank-1 view.
template <element T, class Allocator>
struct tensor_traits<std::vector<T, Allocator>> {
    /// Rank-1 view of the vector's elements.
    static tensor_view<T> view(std::vector<T, Allocator>& v) { return tensor_view<T>(std::span<T>(v)); }
};

/// std::array of an element type: a rank-1 view.
template <element T, std::size_t N>
struct tensor_traits<std::array<T, N>> {
    /// Rank-1 view of the array's elements.
    static constexpr tensor_view<T> view(std::array<T, N>& a) { return tensor_view<T>(std::span<T>(a)); }
};

/// std::span of an element type: a rank-1 view.
template <element T, std::size_t Extent>
struct tensor_traits<std::span<T, Extent>> {
    /// Rank-1 view of the span's elements.
    static constexpr tensor_view<T> view(const std::span<T, Extent>& s) { return tensor_view<T>(std::span<T>(s)); }
};

}  // namespace prune
