// prune/adapters/eigen.hpp: views of Eigen dense objects (opt-in; link prune::eigen).
//
// Adapts Eigen::Matrix, Eigen::Array, Eigen::Map and Eigen::Ref of float, double,
// Eigen::half and Eigen::bfloat16, in either storage order, with fixed or dynamic sizes,
// const or mutable. Eigen::half and Eigen::bfloat16 are viewed as prune::half and
// prune::bfloat16 (the same 16-bit patterns). A matrix is a rank-2 view [rows, cols] in
// its storage order; a vector at compile time (one row or one column) is a rank-1 view
// [size], like a bias in torch. A Map or Ref whose strides are not those of a contiguous
// matrix throws shape_error. Expressions (blocks, products, transposes) have no adapter:
// evaluate them into a Matrix or Array first.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <Eigen/Core>

#include <cstddef>
#include <string>
#include <type_traits>

namespace prune {

namespace detail {

/// The prune element type that views Eigen scalar S (void when S is not supported).
template <class S>
struct eigen_element {
    using type = void;
};
template <>
struct eigen_element<float> {
    using type = float;
};
template <>
struct eigen_element<double> {
    using type = double;
};
template <>
struct eigen_element<Eigen::half> {
    using type = half;
};
template <>
struct eigen_element<Eigen::bfloat16> {
    using type = bfloat16;
};

static_assert(sizeof(Eigen::half) == sizeof(half) && alignof(Eigen::half) == alignof(half) &&
                  std::is_trivially_copyable_v<Eigen::half>,
              "prune: Eigen::half must have prune::half's size and layout to be viewed as it");
static_assert(sizeof(Eigen::bfloat16) == sizeof(bfloat16) && alignof(Eigen::bfloat16) == alignof(bfloat16) &&
                  std::is_trivially_copyable_v<Eigen::bfloat16>,
              "prune: Eigen::bfloat16 must have prune::bfloat16's size and layout to be viewed as it");

/// True when Eigen scalar S (possibly const) has a prune element type.
template <class S>
concept eigen_scalar = !std::is_void_v<typename eigen_element<std::remove_const_t<S>>::type>;

/// The view of an Eigen dense object with direct access (data(), strides); Scalar is the
/// (possibly const) Eigen scalar behind data().
template <class Scalar, class Dense>
tensor_view<std::conditional_t<std::is_const_v<Scalar>,
                               const typename eigen_element<std::remove_const_t<Scalar>>::type,
                               typename eigen_element<std::remove_const_t<Scalar>>::type>>
eigen_view(Scalar* data, const Dense& dense) {
    using E = std::conditional_t<std::is_const_v<Scalar>, const typename eigen_element<std::remove_const_t<Scalar>>::type,
                                 typename eigen_element<std::remove_const_t<Scalar>>::type>;
    const auto rows = static_cast<std::size_t>(dense.rows());
    const auto cols = static_cast<std::size_t>(dense.cols());
    const auto inner = static_cast<std::size_t>(dense.innerSize());
    const auto outer = static_cast<std::size_t>(dense.outerSize());
    const auto inner_stride = static_cast<std::size_t>(dense.innerStride());
    const auto outer_stride = static_cast<std::size_t>(dense.outerStride());
    const bool contiguous = (inner <= 1 || inner_stride == 1) && (outer <= 1 || outer_stride == inner);
    if (!contiguous) {
        throw shape_error("prune::view (Eigen): a " + std::to_string(rows) + "x" + std::to_string(cols) +
                          " object with inner stride " + std::to_string(inner_stride) + " and outer stride " +
                          std::to_string(outer_stride) + " is not contiguous (expected inner stride 1 and outer stride " +
                          std::to_string(inner) + "); copy it into a Matrix or Array first");
    }
    // The Eigen 16-bit types have the prune types' size and layout (asserted above).
    E* elements = reinterpret_cast<E*>(data);  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
    const std::size_t n = rows * cols;
    if constexpr (Dense::IsVectorAtCompileTime) {
        return tensor_view<E>(std::span<E>(elements, n), prune::shape{n}, layout::row_major);
    } else {
        return tensor_view<E>(std::span<E>(elements, n), prune::shape{rows, cols},
                              Dense::IsRowMajor ? layout::row_major : layout::column_major);
    }
}

}  // namespace detail

/// Eigen::Matrix of float, double, Eigen::half or Eigen::bfloat16.
template <class Scalar, int Rows, int Cols, int Options, int MaxRows, int MaxCols>
    requires detail::eigen_scalar<Scalar>
struct tensor_traits<Eigen::Matrix<Scalar, Rows, Cols, Options, MaxRows, MaxCols>> {
    /// Rank-2 view [rows, cols] in the matrix's storage order (rank 1 for a vector type).
    static auto view(Eigen::Matrix<Scalar, Rows, Cols, Options, MaxRows, MaxCols>& m) {
        return detail::eigen_view(m.data(), m);
    }
};

/// Eigen::Array of float, double, Eigen::half or Eigen::bfloat16.
template <class Scalar, int Rows, int Cols, int Options, int MaxRows, int MaxCols>
    requires detail::eigen_scalar<Scalar>
struct tensor_traits<Eigen::Array<Scalar, Rows, Cols, Options, MaxRows, MaxCols>> {
    /// Rank-2 view [rows, cols] in the array's storage order (rank 1 for a vector type).
    static auto view(Eigen::Array<Scalar, Rows, Cols, Options, MaxRows, MaxCols>& a) {
        return detail::eigen_view(a.data(), a);
    }
};

/// Eigen::Map of a Matrix or Array (a const Map<const M> gives a view of const elements);
/// throws shape_error when its strides are not contiguous.
template <class Plain, int MapOptions, class Stride>
    requires detail::eigen_scalar<typename Plain::Scalar>
struct tensor_traits<Eigen::Map<Plain, MapOptions, Stride>> {
    /// Rank-2 view [rows, cols] in the mapped object's storage order (rank 1 for a vector type).
    static auto view(Eigen::Map<Plain, MapOptions, Stride>& m) { return detail::eigen_view(m.data(), m); }
};

/// Eigen::Ref of a Matrix or Array; throws shape_error when its strides are not contiguous.
template <class Plain, int RefOptions, class Stride>
    requires detail::eigen_scalar<typename Plain::Scalar>
struct tensor_traits<Eigen::Ref<Plain, RefOptions, Stride>> {
    /// Rank-2 view [rows, cols] in the referenced object's storage order (rank 1 for a vector type).
    static auto view(Eigen::Ref<Plain, RefOptions, Stride>& r) { return detail::eigen_view(r.data(), r); }
};

}  // namespace prune
