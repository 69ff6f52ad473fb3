// Tests of prune/adapters/torch.hpp (its own executable: libtorch compiles slowly):
// every mask operation on torch::Tensor of float32, float64, float16 and bfloat16, read
// back through torch's own indexing and conversions; runtime-typed dispatch; clear errors
// for non-contiguous tensors and unsupported dtypes; views keep the tensor's shape.
#include <prune/adapters/torch.hpp>
#include <prune/mask.hpp>

#include "../core/mask_conformance.hpp"

#include <catch2/catch.hpp>

#include <torch/torch.h>

#include <tuple>
#include <type_traits>
#include <vector>

namespace {

/// A contiguous rows x cols torch tensor of E's dtype.
template <prune::element E>
struct torch_fixture {
    using element_type = E;
    static constexpr bool rank1 = false;
    static constexpr const char* name = "torch::Tensor";
    torch::Tensor object;
    torch_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : object(torch::tensor(values, torch::kFloat)
                     .reshape({static_cast<std::int64_t>(rows), static_cast<std::int64_t>(cols)})
                     .to(prune::detail::torch_dtype<E>())
                     .contiguous()) {}
    torch::Tensor& tensor() { return object; }
    /// Element (r, c) through torch's strides and torch's own conversion to float.
    [[nodiscard]] float at(std::size_t r, std::size_t c) const {
        const std::int64_t offset = static_cast<std::int64_t>(r) * object.stride(0) +
                                    static_cast<std::int64_t>(c) * object.stride(1);
        switch (object.scalar_type()) {
            case torch::kFloat:
                return object.data_ptr<float>()[offset];
            case torch::kDouble:
                return static_cast<float>(object.data_ptr<double>()[offset]);
            case torch::kHalf:
                return static_cast<float>(object.data_ptr<at::Half>()[offset]);
            default:
                return static_cast<float>(object.data_ptr<at::BFloat16>()[offset]);
        }
    }
};

using torch_fixtures = std::tuple<torch_fixture<float>, torch_fixture<double>, torch_fixture<prune::half>,
                                  torch_fixture<prune::bfloat16>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("every mask operation on torch tensors", "[torch][mask]", torch_fixtures) {
    INFO(prune::dtype_name<typename TestType::element_type>());
    prune_test::run_mask_conformance<TestType>();
}

TEST_CASE("torch views keep the shape; visit_view dispatches on the dtype", "[torch]") {
    STATIC_REQUIRE(prune::runtime_typed_tensor<torch::Tensor>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<torch::Tensor>);

    torch::Tensor t = torch::zeros({2, 3, 4}, torch::kHalf);
    auto v = prune::torch_view<prune::half>(t);
    CHECK(v.extents() == prune::shape{2, 3, 4});
    CHECK(v.order() == prune::layout::row_major);
    CHECK(static_cast<void*>(v.data().data()) == t.data_ptr());

    CHECK(prune::torch_view<float>(torch::zeros({}, torch::kFloat)).extents() == prune::shape{});
    CHECK(prune::torch_view<double>(torch::zeros({5}, torch::kDouble)).extents() == prune::shape{5});

    const char* seen = prune::visit_view(t, [](auto view) {
        return prune::dtype_name<typename decltype(view)::element_type>();
    });
    CHECK(std::string(seen) == "F16");
    const torch::Tensor& const_t = t;
    const bool is_const = prune::visit_view(const_t, [](auto view) {
        return std::is_const_v<typename decltype(view)::element_type>;
    });
    CHECK(is_const);

    // a contiguous slice with a storage offset is viewed at its own first element
    torch::Tensor base = torch::ones({4, 3}, torch::kFloat);
    torch::Tensor rows = base.narrow(0, 1, 2);
    prune::element_mask mask(prune::shape{2, 3}, false);
    prune::apply(mask, rows);
    CHECK(base.sum().item<float>() == 6.0f);
    CHECK(base[0].sum().item<float>() == 3.0f);
    CHECK(base[3].sum().item<float>() == 3.0f);
}

TEST_CASE("torch: non-contiguous tensors and other dtypes are clear runtime errors", "[torch]") {
    prune::element_mask mask(prune::shape{3, 4});
    torch::Tensor transposed = torch::ones({4, 3}).t();
    CHECK_THROWS_AS(prune::apply(mask, transposed), prune::shape_error);
    CHECK_THROWS_WITH(prune::apply(mask, transposed),
                      Catch::Contains("strides [1, 3]") && Catch::Contains("contiguous"));

    torch::Tensor integers = torch::ones({3, 4}, torch::kInt);
    CHECK_THROWS_AS(prune::apply(mask, integers), prune::dtype_error);
    CHECK_THROWS_WITH(prune::apply(mask, integers),
                      Catch::Contains("Int") && Catch::Contains("Float, Double, Half or BFloat16"));

    torch::Tensor doubles = torch::ones({3, 4}, torch::kDouble);
    CHECK_THROWS_AS(prune::torch_view<float>(doubles), prune::dtype_error);
    CHECK_THROWS_WITH(prune::torch_view<float>(doubles), Catch::Contains("Double") && Catch::Contains("Float"));

    CHECK_THROWS_AS(prune::apply(mask, torch::ones({4, 3})), prune::shape_error);  // shape differs
    CHECK_THROWS_AS(prune::apply(mask, torch::Tensor()), prune::shape_error);      // undefined
}
