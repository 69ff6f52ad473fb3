// Tests of prune/tensor.hpp: shapes, views, storage order, the traits and concepts, the
// built-in adapters (std::vector, std::span, tensor_view, raw pointer + shape).
#include <prune/tensor.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace {
/// A type with no adapter (the compile-time rejection is tested in tests/failtest).
struct not_a_tensor {};

/// A user type adapted by specialising tensor_traits, as a user would.
struct user_matrix {
    std::array<double, 6> values{};
};
}  // namespace

template <>
struct prune::tensor_traits<user_matrix> {
    static prune::tensor_view<double> view(user_matrix& m) {
        return prune::make_view(m.values.data(), prune::shape{3, 2}, prune::layout::column_major);
    }
};

TEST_CASE("shape: rank, extents, numel, equality, text", "[tensor]") {
    constexpr prune::shape scalar;
    STATIC_REQUIRE(scalar.rank() == 0);
    STATIC_REQUIRE(scalar.numel() == 1);
    const prune::shape s{2, 3, 4};
    CHECK(s.rank() == 3);
    CHECK(s[1] == 3);
    CHECK(s.numel() == 24);
    CHECK(s.to_string() == "[2, 3, 4]");
    CHECK(s == prune::shape(std::vector<int>{2, 3, 4}));
    CHECK_FALSE(s == prune::shape{2, 3});
    CHECK(prune::shape{0, 5}.numel() == 0);
    CHECK_THROWS_AS(prune::shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), prune::shape_error);
    CHECK_THROWS_WITH(prune::shape({1, 1, 1, 1, 1, 1, 1, 1, 1}), Catch::Contains("rank above 8"));
}

TEST_CASE("tensor_view: sizes are checked, order is explicit", "[tensor]") {
    std::vector<float> data(6);
    CHECK_THROWS_AS(prune::tensor_view<float>(std::span<float>(data), prune::shape{4, 2}), prune::shape_error);
    CHECK_THROWS_WITH(prune::tensor_view<float>(std::span<float>(data), prune::shape{4, 2}),
                      Catch::Contains("6 elements") && Catch::Contains("[4, 2]"));
    const auto v = prune::make_view(data.data(), prune::shape{2, 3}, prune::layout::column_major);
    CHECK(v.size() == 6);
    CHECK(v.order() == prune::layout::column_major);
    CHECK(v.extents() == prune::shape{2, 3});
    CHECK(v.data().data() == data.data());
    CHECK_FALSE(v.is_logically_contiguous());
    // logical (r, c) of a column-major [2, 3] lives at c * 2 + r
    for (std::size_t r = 0; r < 2; ++r) {
        for (std::size_t c = 0; c < 3; ++c) {
            CHECK(v.storage_index(r * 3 + c) == c * 2 + r);
        }
    }
    // a column-major tensor with one non-unit extent reads like a row-major one
    CHECK(prune::make_view(data.data(), prune::shape{1, 6}, prune::layout::column_major).is_logically_contiguous());
    CHECK(prune::make_view(data.data(), prune::shape{6, 1, 1}, prune::layout::column_major).is_logically_contiguous());
    // rank 3 column-major: logical (i, j, k) of [1, 2, 3] lives at i + j + 2 k
    const auto v3 = prune::make_view(data.data(), prune::shape{1, 2, 3}, prune::layout::column_major);
    CHECK(v3.storage_index(1 * 3 + 2) == 1 + 2 * 2);

    const prune::tensor_view<const float> as_const = v;  // mutable -> const
    CHECK(as_const.size() == 6);
    const prune::tensor_view<float> empty;
    CHECK(empty.size() == 0);
    CHECK(empty.extents() == prune::shape{0});
}

TEST_CASE("built-in adapters and the concepts", "[tensor]") {
    STATIC_REQUIRE(prune::adapted_tensor<std::vector<float>>);
    STATIC_REQUIRE(prune::adapted_tensor<const std::vector<double>&>);
    STATIC_REQUIRE(prune::adapted_tensor<std::span<prune::half>>);
    STATIC_REQUIRE(prune::adapted_tensor<std::span<const prune::bfloat16, 4>>);
    STATIC_REQUIRE(prune::adapted_tensor<prune::tensor_view<float>>);
    STATIC_REQUIRE(prune::adapted_tensor<user_matrix>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<not_a_tensor>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<std::vector<int>>);
    STATIC_REQUIRE_FALSE(prune::runtime_typed_tensor<std::vector<float>>);
    STATIC_REQUIRE(std::is_same_v<prune::tensor_element_t<std::vector<prune::half>>, prune::half>);

    std::vector<float> vec = {1, 2, 3};
    auto v = prune::view(vec);
    STATIC_REQUIRE(std::is_same_v<decltype(v), prune::tensor_view<float>>);
    CHECK(v.extents() == prune::shape{3});
    CHECK(v.data().data() == vec.data());

    const std::vector<float>& const_vec = vec;
    auto cv = prune::view(const_vec);
    STATIC_REQUIRE(std::is_same_v<decltype(cv), prune::tensor_view<const float>>);

    std::array<prune::bfloat16, 4> storage{};
    std::span<const prune::bfloat16, 4> fixed(storage);
    auto sv = prune::view(fixed);
    STATIC_REQUIRE(std::is_same_v<decltype(sv), prune::tensor_view<const prune::bfloat16>>);
    CHECK(sv.size() == 4);

    user_matrix m;
    auto mv = prune::view(m);
    CHECK(mv.extents() == prune::shape{3, 2});
    CHECK(mv.order() == prune::layout::column_major);

    const int seen = prune::visit_view(vec, [](auto view) { return static_cast<int>(view.size()); });
    CHECK(seen == 3);
}
