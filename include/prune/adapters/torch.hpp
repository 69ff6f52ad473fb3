// prune/adapters/torch.hpp: views of libtorch tensors (opt-in; link prune::torch).
//
// A torch::Tensor (at::Tensor) knows its element type only at run time, so its traits are
// runtime-typed: `prune::visit_view(t, f)` (used by apply, apply_groups, ...) calls f with
// the view of its actual dtype, and `prune::torch_view<E>(t)` gives a view of a dtype you
// name. Supported: CPU tensors of float32, float64, float16 and bfloat16, contiguous in
// row-major order. Another dtype throws dtype_error; a non-contiguous tensor (a
// transpose, a slice with steps) or one on another device throws shape_error. A view
// keeps the tensor's shape (rank <= 8) and is row-major.
//
// Autograd (docs/selection.md, "Torch tensors and autograd"): writes never bypass it.
// - `prune::apply(mask, t)` on a tensor autograd tracks (t.requires_grad() while grad mode
//   is on) runs torch's own in-place op, `t.masked_fill_(pruned, 0)`: torch raises for a
//   leaf exactly as for any in-place op on it, and records the write for a non-leaf.
//   apply_groups goes the same way.
// - Every other write (apply when no grad is needed, a mutable visit_view, SparseGPT's
//   reconstruction) runs on the raw storage and bumps the tensor's version counter, so a
//   backward that saved the tensor before the write raises "modified by an inplace
//   operation", as after torch's own ops.
// - A mutable visit_view of a tracked tensor is refused with a shape_error naming the
//   tensor; write under torch::NoGradGuard (as optimisers do) or use apply.
// Reading (magnitude, given_scores, pack_2_4, a visit of a const tensor) never bumps.
#pragma once

#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/tensor.hpp>

#include <prune/mask.hpp>

#include <ATen/core/Tensor.h>
#include <c10/core/GradMode.h>
#include <c10/core/ScalarType.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

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

/// "a Float tensor of shape [2, 3] (requires_grad, leaf)": how errors name a tensor.
[[nodiscard]] inline std::string torch_description(const at::Tensor& tensor) {
    std::string s = std::string("a ") + c10::toString(tensor.scalar_type()) + " tensor of shape " +
                    torch_list(tensor.sizes());
    if (tensor.requires_grad()) {
        s += tensor.is_leaf() ? " (requires_grad, leaf)" : " (requires_grad, non-leaf)";
    }
    return s;
}

/// True when autograd tracks writes to the tensor now: it requires grad and grad mode is on.
[[nodiscard]] inline bool torch_autograd_tracks(const at::Tensor& tensor) {
    return tensor.requires_grad() && c10::GradMode::is_enabled();
}

/// Throws shape_error for a raw write into a tensor autograd tracks.
inline void refuse_tracked_write(const at::Tensor& tensor, const char* what) {
    if (torch_autograd_tracks(tensor)) {
        throw shape_error(std::string(what) + ": " + torch_description(tensor) +
                          " is tracked by autograd and a raw write would bypass it (expected a tensor that needs "
                          "no grad; write under torch::NoGradGuard, as optimisers do, or use prune::apply, which "
                          "goes through masked_fill_)");
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

private:
    /// Calls f with the view of the tensor's dtype (const elements for a const Tensor).
    template <class Tensor, class F>
    static decltype(auto) visit_dtype(Tensor& tensor, F&& f) {
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

public:
    /// Calls f with the view of the tensor's dtype (const elements for a const tensor); throws
    /// dtype_error for a dtype other than float32/float64/float16/bfloat16, shape_error for a
    /// non-contiguous or non-CPU tensor. A mutable visit refuses a tensor autograd tracks (shape_error) and bumps the tensor's
    /// version counter (once, before f runs: f may write).
    template <class Tensor, class F>
        requires std::is_same_v<std::remove_cvref_t<Tensor>, at::Tensor>
    static decltype(auto) visit(Tensor& tensor, F&& f) {
        if constexpr (std::is_const_v<Tensor>) {
            return visit_dtype<const Tensor>(tensor, std::forward<F>(f));
        } else {
            detail::check_torch_layout(tensor);
            detail::refuse_tracked_write(tensor, "prune (torch)");
            tensor.unsafeGetTensorImpl()->bump_version();  // before f: an inference tensor throws unwritten
            return visit_dtype<Tensor>(tensor, std::forward<F>(f));
        }
    }

    /// Zeroes what the mask prunes. For a tensor autograd tracks this is torch's own in-place
    /// op, masked_fill_ (torch raises for a leaf; a non-leaf records it); otherwise the raw
    /// fast path of every adapter, followed by a version-counter bump.
    static void apply_mask(const element_mask& mask, at::Tensor& tensor) {
        detail::check_torch_layout(tensor);
        if (!detail::torch_autograd_tracks(tensor)) {
            visit(tensor, [&mask](auto v) { detail::apply_to_view(mask, v); });
            return;
        }
        visit_dtype<const at::Tensor>(tensor, [](auto) {});  // dtype_error for an unsupported dtype
        detail::check_mask_fits(mask, prune::shape(tensor.sizes()));
        // Tensor::new_empty, not at::empty: <ATen/ops/empty.h> does not compile with clang 14
        at::Tensor pruned = tensor.new_empty(tensor.sizes(), at::TensorOptions().dtype(at::kBool));
        bool* flags = pruned.data_ptr<bool>();
        for (std::size_t i = 0; i < mask.size(); ++i) {
            flags[i] = !mask.kept(i);
        }
        tensor.masked_fill_(pruned, 0);
    }
};

}  // namespace prune
