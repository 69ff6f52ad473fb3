// Tests of prune/adapters/xtensor.hpp: views of xt::xarray, xt::xtensor and xt::adapt-ed
// buffers (row- and column-major; float, double, prune::half, prune::bfloat16), and every
// mask operation on them, read back through xtensor's own indexing.
#include <prune/adapters/xtensor.hpp>
#include <prune/mask.hpp>

#include "../core/mask_conformance.hpp"

#include <catch2/catch.hpp>

#include <xtensor/xadapt.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xbuilder.hpp>
#include <xtensor/xtensor.hpp>
#include <xtensor/xview.hpp>

#include <array>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

template <class E>
float as_float(E value) {
    return prune::to_float(value);  // exact for every element type (tested against torch in test_element)
}

/// A container type (xarray / xtensor) filled through xtensor's indexing.
template <class Container>
struct container_fixture {
    using element_type = typename Container::value_type;
    static constexpr bool rank1 = false;
    static constexpr const char* name = Container::static_layout == xt::layout_type::row_major
                                            ? "xtensor container row-major"
                                            : "xtensor container column-major";
    Container object;
    container_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : object(Container::from_shape({rows, cols})) {
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t c = 0; c < cols; ++c) {
                object(r, c) = prune::from_float<element_type>(values[r * cols + c]);
            }
        }
    }
    Container& tensor() { return object; }
    [[nodiscard]] float at(std::size_t r, std::size_t c) const { return as_float(object(r, c)); }
};

/// xt::adapt over a raw pointer with a dynamic shape, in the given layout.
template <class E, xt::layout_type Layout>
struct adapt_fixture {
    using element_type = E;
    static constexpr bool rank1 = false;
    static constexpr const char* name =
        Layout == xt::layout_type::row_major ? "xt::adapt row-major" : "xt::adapt column-major";
    std::vector<E> storage;
    decltype(xt::adapt<Layout>(std::declval<E*>(), std::size_t{}, xt::no_ownership(),
                               std::declval<std::vector<std::size_t>>())) adaptor;
    adapt_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : storage(rows * cols),
          adaptor(xt::adapt<Layout>(storage.data(), rows * cols, xt::no_ownership(),
                                    std::vector<std::size_t>{rows, cols})) {
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t c = 0; c < cols; ++c) {
                adaptor(r, c) = prune::from_float<E>(values[r * cols + c]);
            }
        }
    }
    auto& tensor() { return adaptor; }
    [[nodiscard]] float at(std::size_t r, std::size_t c) const { return as_float(adaptor(r, c)); }
};

/// xt::adapt over a std::vector with a fixed rank (an xtensor_adaptor).
template <class E>
struct adapt_vector_fixture {
    using element_type = E;
    static constexpr bool rank1 = false;
    static constexpr const char* name = "xt::adapt(std::vector, fixed rank)";
    std::vector<E> storage;
    decltype(xt::adapt(std::declval<std::vector<E>&>(), std::declval<std::array<std::size_t, 2>>())) adaptor;
    adapt_vector_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : storage(rows * cols), adaptor(xt::adapt(storage, std::array<std::size_t, 2>{rows, cols})) {
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t c = 0; c < cols; ++c) {
                adaptor(r, c) = prune::from_float<E>(values[r * cols + c]);
            }
        }
    }
    auto& tensor() { return adaptor; }
    [[nodiscard]] float at(std::size_t r, std::size_t c) const { return as_float(adaptor(r, c)); }
};

template <class E>
using xtensor_fixtures_of =
    std::tuple<container_fixture<xt::xarray<E, xt::layout_type::row_major>>,
               container_fixture<xt::xarray<E, xt::layout_type::column_major>>,
               container_fixture<xt::xtensor<E, 2, xt::layout_type::row_major>>,
               container_fixture<xt::xtensor<E, 2, xt::layout_type::column_major>>,
               adapt_fixture<E, xt::layout_type::row_major>, adapt_fixture<E, xt::layout_type::column_major>,
               adapt_vector_fixture<E>>;

using xtensor_fixtures = prune_test::concat_t<xtensor_fixtures_of<float>, xtensor_fixtures_of<double>,
                                              xtensor_fixtures_of<prune::half>, xtensor_fixtures_of<prune::bfloat16>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("every mask operation on xtensor containers and adaptors", "[xtensor][mask]",
                        xtensor_fixtures) {
    INFO(prune::dtype_name<typename TestType::element_type>());
    prune_test::run_mask_conformance<TestType>();
}

TEST_CASE("xtensor views: shapes, orders, constness, refusals", "[xtensor]") {
    xt::xarray<float> a = xt::zeros<float>({2, 3, 4});
    auto v = prune::view(a);
    STATIC_REQUIRE(std::is_same_v<decltype(v), prune::tensor_view<float>>);
    CHECK(v.extents() == prune::shape{2, 3, 4});
    CHECK(v.order() == prune::layout::row_major);
    CHECK(v.data().data() == a.data());

    xt::xtensor<double, 3, xt::layout_type::column_major> t = xt::zeros<double>({2, 3, 4});
    CHECK(prune::view(t).order() == prune::layout::column_major);

    const xt::xarray<float>& const_ref = a;
    auto cv = prune::view(const_ref);
    STATIC_REQUIRE(std::is_same_v<decltype(cv), prune::tensor_view<const float>>);

    std::vector<float> buffer(12, 1.0f);
    const float* const_pointer = buffer.data();
    auto const_adaptor = xt::adapt(const_pointer, 12, xt::no_ownership(), std::vector<std::size_t>{3, 4});
    auto cav = prune::view(const_adaptor);
    STATIC_REQUIRE(std::is_same_v<decltype(cav), prune::tensor_view<const float>>);

    // a rank-3 column-major tensor: logical (i, j, k) is element (i, j, k) of xtensor
    xt::xarray<float, xt::layout_type::column_major> c3 = xt::ones<float>({2, 3, 4});
    prune::element_mask mask(prune::shape{2, 3, 4});
    mask.set((1 * 3 + 2) * 4 + 1, false);
    prune::apply(mask, c3);
    CHECK(c3(1, 2, 1) == 0.0f);
    CHECK(xt::sum(c3)() == 23.0f);

    // strides that are not contiguous (every other element) are refused
    // (xtensor wants the buffer size given as the number of elements, 6, whatever the strides)
    auto strided = xt::adapt(buffer.data(), 6, xt::no_ownership(), std::vector<std::size_t>{2, 3},
                             std::vector<std::size_t>{6, 2});
    CHECK_THROWS_AS(prune::view(strided), prune::shape_error);
    CHECK_THROWS_WITH(prune::view(strided), Catch::Contains("[6, 2]") && Catch::Contains("[2, 3]"));

    STATIC_REQUIRE_FALSE(prune::adapted_tensor<xt::xarray<int>>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<decltype(xt::view(a, 0))>);
}
