// prune/adapters/xtensor.hpp: views of xtensor containers (opt-in; link prune::xtensor).
//
// Adapts xt::xarray and xt::xtensor (any static layout) and the adaptors that xt::adapt
// returns (over a pointer, a std::vector, ...) of float, double, prune::half and
// prune::bfloat16, const or mutable. A view keeps the container's shape; its storage order
// is read from the strides, so a dynamic-layout adaptor works too. Strides that are
// neither row-major nor column-major contiguous throw shape_error. Views and lazy
// expressions (xt::view, a + b) have no adapter: evaluate them first (xt::eval).
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include <cstddef>
#include <string>
#include <type_traits>

namespace prune {

namespace detail {

/// The (possibly const) element type behind an xtensor container's data().
template <class Container>
using xtensor_data_t = std::remove_pointer_t<decltype(std::declval<Container&>().data())>;

/// True when the expected strides of `extents` in `order` match `strides` (extents of 1 may
/// carry any stride: xtensor gives them 0).
template <class Strides>
bool xtensor_strides_match(const prune::shape& extents, const Strides& strides, layout order) {
    std::size_t expected = 1;
    const std::size_t rank = extents.rank();
    for (std::size_t k = 0; k < rank; ++k) {
        const std::size_t d = order == layout::row_major ? rank - 1 - k : k;
        if (extents[d] != 1 && static_cast<std::size_t>(strides[d]) != expected) {
            return false;
        }
        expected *= extents[d];
    }
    return true;
}

/// The view of an xtensor container or adaptor with a contiguous row- or column-major buffer.
template <class Container>
tensor_view<xtensor_data_t<Container>> xtensor_view(Container& container) {
    using E = xtensor_data_t<Container>;
    const prune::shape extents(container.shape());
    const auto& strides = container.strides();
    layout order = layout::row_major;
    if (!xtensor_strides_match(extents, strides, layout::row_major)) {
        if (!xtensor_strides_match(extents, strides, layout::column_major)) {
            std::string given = "[";
            for (std::size_t d = 0; d < extents.rank(); ++d) {
                given += (d ? ", " : "") + std::to_string(strides[d]);
            }
            throw shape_error("prune::view (xtensor): strides " + given + "] of a tensor of shape " +
                              extents.to_string() +
                              " are neither row-major nor column-major contiguous (expected a contiguous "
                              "buffer); evaluate it into an xt::xarray first");
        }
        order = layout::column_major;
    }
    return tensor_view<E>(std::span<E>(container.data(), extents.numel()), extents, order);
}

/// True when the container's elements are a prune element type.
template <class Container>
concept xtensor_adaptable = element<xtensor_data_t<Container>>;

}  // namespace detail

/// xt::xarray (xt::xarray_container) of float, double, prune::half or prune::bfloat16.
template <class Storage, xt::layout_type Layout, class Shape, class Tag>
    requires detail::xtensor_adaptable<xt::xarray_container<Storage, Layout, Shape, Tag>>
struct tensor_traits<xt::xarray_container<Storage, Layout, Shape, Tag>> {
    /// A view with the array's shape and storage order.
    static auto view(xt::xarray_container<Storage, Layout, Shape, Tag>& a) { return detail::xtensor_view(a); }
};

/// xt::xtensor (xt::xtensor_container) of float, double, prune::half or prune::bfloat16.
template <class Storage, std::size_t Rank, xt::layout_type Layout, class Tag>
    requires detail::xtensor_adaptable<xt::xtensor_container<Storage, Rank, Layout, Tag>>
struct tensor_traits<xt::xtensor_container<Storage, Rank, Layout, Tag>> {
    /// A view with the tensor's shape and storage order.
    static auto view(xt::xtensor_container<Storage, Rank, Layout, Tag>& t) { return detail::xtensor_view(t); }
};

/// What xt::adapt returns with a dynamic shape (xt::xarray_adaptor); throws shape_error for
/// strides that are not contiguous.
template <class Storage, xt::layout_type Layout, class Shape, class Tag>
    requires detail::xtensor_adaptable<xt::xarray_adaptor<Storage, Layout, Shape, Tag>>
struct tensor_traits<xt::xarray_adaptor<Storage, Layout, Shape, Tag>> {
    /// A view with the adaptor's shape and storage order.
    static auto view(xt::xarray_adaptor<Storage, Layout, Shape, Tag>& a) { return detail::xtensor_view(a); }
};

/// What xt::adapt returns with a fixed rank (xt::xtensor_adaptor); throws shape_error for
/// strides that are not contiguous.
template <class Storage, std::size_t Rank, xt::layout_type Layout, class Tag>
    requires detail::xtensor_adaptable<xt::xtensor_adaptor<Storage, Rank, Layout, Tag>>
struct tensor_traits<xt::xtensor_adaptor<Storage, Rank, Layout, Tag>> {
    /// A view with the adaptor's shape and storage order.
    static auto view(xt::xtensor_adaptor<Storage, Rank, Layout, Tag>& t) { return detail::xtensor_view(t); }
};

}  // namespace prune
