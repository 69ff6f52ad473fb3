// prune/adapters/torch.hpp: views of libtorch tensors (opt-in; link prune::torch).
//
// A torch::Tensor (at::Tensor) knows its element type only at run time, so its traits are
// runtime-typed: `prune::visit_view(t, f)` (used by apply, apply_groups, ...) calls f with
// the view of its actual dtype, and `prune::torch_view<E>(t)` gives a view of a dtype you
// name. Supported: CPU tensors of float32, float64, float16 and bfloat16, contiguous in
// row-major order. Another dtype throws dtype_error; a non-contiguous tensor (a
// transpose, a slice with steps) or one on another device throws shape_error. A view
// keeps the tensor's shape (rank <= 8) and is row-major.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace prune {

namespace detail {

/// The torch dtype of a prune element type.
template <element T>
[[nodiscard]] constexpr c10::ScalarType torch_dtype() noexcept {
    using U = std::remove_const_t<T>;
    if constexpr (std::is_same_v<U, float>) {
        return c10::ScalarType::Float;
    } else if constexpr (std::is_same_v<U, double>) {
        return c10::ScalarType::Double;
    } else if constexpr (std::is_same_v<U, half>) {
        return c10::ScalarType::Half;
    } else {
        return c10::ScalarType::BFloat16;
    }
}

/// "[2, 3]" for a torch size or stride list.
[[nodiscard]] inline std::string torch_list(c10::IntArrayRef values) {
    std::string s = "[";
    for (std::size_t d = 0; d < values.size(); ++d) {
        s += (d ? ", " : "") + std::to_string(values[d]);
    }
    return s + "]";
}

/// Throws shape_error unless the tensor is a contiguous CPU tensor of rank <= 8.
inline void check_torch_layout(const at::Tensor& tensor) {
    if (!tensor.defined()) {
        throw shape_error("prune::view (torch): the tensor is undefined (expected a CPU tensor)");
    }
    if (!tensor.device().is_cpu()) {
        throw shape_error("prune::view (torch): a tensor on device " + tensor.device().str() +
                          " (expected a CPU tensor; call .cpu() first)");
    }
    if (!tensor.is_contiguous()) {
        throw shape_error("prune::view (torch): a tensor of shape " + torch_list(tensor.sizes()) + " with strides " +
                          torch_list(tensor.strides()) +
                          " is not contiguous (expected row-major contiguous strides; call .contiguous() first)");
    }
    if (tensor.dim() > static_cast<std::int64_t>(prune::shape::max_rank)) {
        throw shape_error("prune::view (torch): a tensor of rank " + std::to_string(tensor.dim()) +
                          " (expected rank <= " + std::to_string(prune::shape::max_rank) + ")");
    }
}

/// The view of a checked tensor whose dtype is E.
template <element E>
[[nodiscard]] tensor_view<E> torch_view_unchecked_dtype(const at::Tensor& tensor) {
    check_torch_layout(tensor);
    const prune::shape extents(tensor.sizes());
    auto* data = static_cast<E*>(tensor.data_ptr());
    return tensor_view<E>(std::span<E>(data, extents.numel()), extents, layout::row_major);
}

}  // namespace detail

/// The view of a torch tensor whose dtype is E's (F32, F64, F16, BF16); throws dtype_error
/// for another dtype and shape_error for a non-contiguous or non-CPU tensor.
template <element E>
[[nodiscard]] tensor_view<E> torch_view(const at::Tensor& tensor) {
    if (tensor.defined() && tensor.scalar_type() != detail::torch_dtype<E>()) {
        throw dtype_error(std::string("prune::torch_view: a tensor of dtype ") + c10::toString(tensor.scalar_type()) +
                          " of shape " + detail::torch_list(tensor.sizes()) + " (expected " +
                          c10::toString(detail::torch_dtype<E>()) + ", prune " + dtype_name<E>() + ")");
    }
    return detail::torch_view_unchecked_dtype<E>(tensor);
}

/// torch::Tensor: runtime-typed; reach it with visit_view (or torch_view<E>).
template <>
struct tensor_traits<at::Tensor> {
    static constexpr bool runtime_typed = true;  ///< the element type is the tensor's dtype

    /// Calls f with the view of the tensor's dtype (const elements for a const tensor); throws
    /// dtype_error for a dtype other than float32/float64/float16/bfloat16, shape_error for a
    /// non-contiguous or non-CPU tensor.
    template <class Tensor, class F>
        requires std::is_same_v<std::remove_cvref_t<Tensor>, at::Tensor>
    static decltype(auto) visit(Tensor& tensor, F&& f) {
        constexpr bool is_const = std::is_const_v<Tensor>;
        auto as = [&]<class E>() {
            using viewed = std::conditional_t<is_const, const E, E>;
            return std::forward<F>(f)(detail::torch_view_unchecked_dtype<viewed>(tensor));
        };
        if (!tensor.defined()) {
            detail::check_torch_layout(tensor);  // throws
        }
        switch (tensor.scalar_type()) {
            case c10::ScalarType::Float:
                return as.template operator()<float>();
            case c10::ScalarType::Double:
                return as.template operator()<double>();
            case c10::ScalarType::Half:
                return as.template operator()<half>();
            case c10::ScalarType::BFloat16:
                return as.template operator()<bfloat16>();
            default:
                throw dtype_error(std::string("prune (torch): a tensor of dtype ") +
                                  c10::toString(tensor.scalar_type()) + " of shape " +
                                  detail::torch_list(tensor.sizes()) +
                                  " (expected Float, Double, Half or BFloat16)");
        }
    }
};

}  // namespace prune
