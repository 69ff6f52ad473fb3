// Tests of prune/adapters/eigen.hpp: views of Eigen Matrix, Array, Map and Ref (both
// storage orders, fixed and dynamic sizes, const and mutable; float, double, Eigen::half,
// Eigen::bfloat16), and every mask operation on them, read back through Eigen's own
// indexing and conversions.
#include <prune/adapters/eigen.hpp>
#include <prune/mask.hpp>

#include "../core/mask_conformance.hpp"

#include <catch2/catch.hpp>

#include <Eigen/Core>

#include <tuple>
#include <type_traits>
#include <vector>

namespace {

template <class Scalar>
constexpr const char* scalar_name() {
    if constexpr (std::is_same_v<Scalar, float>) {
        return "float";
    } else if constexpr (std::is_same_v<Scalar, double>) {
        return "double";
    } else if constexpr (std::is_same_v<Scalar, Eigen::half>) {
        return "Eigen::half";
    } else {
        return "Eigen::bfloat16";
    }
}

/// Eigen::Matrix or Eigen::Array (Plain) with dynamic sizes, filled through Eigen's indexing.
template <class Plain>
struct plain_fixture {
    using Scalar = typename Plain::Scalar;
    static constexpr bool rank1 = false;
    static constexpr const char* name = Plain::IsRowMajor ? "Eigen dense row-major" : "Eigen dense column-major";
    Plain object;
    plain_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : object(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)) {
        for (std::size_t r = 0; r < rows; ++r) {
            for (std::size_t c = 0; c < cols; ++c) {
                object(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)) = Scalar(values[r * cols + c]);
            }
        }
    }
    Plain& tensor() { return object; }
    [[nodiscard]] float at(std::size_t r, std::size_t c) const {
        return static_cast<float>(object(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c)));
    }
};

/// Eigen::Map over a Plain object's buffer.
template <class Plain>
struct map_fixture : plain_fixture<Plain> {
    static constexpr const char* name = Plain::IsRowMajor ? "Eigen::Map row-major" : "Eigen::Map column-major";
    Eigen::Map<Plain> map;
    map_fixture(std::size_t rows, std::size_t cols, const std::vector<float>& values)
        : plain_fixture<Plain>(rows, cols, values),
          map(this->object.data(), static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)) {}
    Eigen::Map<Plain>& tensor() { return map; }
};

template <class Scalar, int Order>
using eigen_fixtures_of =
    std::tuple<plain_fixture<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Order>>,
               plain_fixture<Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic, Order>>,
               map_fixture<Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Order>>>;

template <class Scalar>
using eigen_fixtures_both = prune_test::concat_t<eigen_fixtures_of<Scalar, Eigen::ColMajor>,
                                                 eigen_fixtures_of<Scalar, Eigen::RowMajor>>;

using eigen_fixtures = prune_test::concat_t<eigen_fixtures_both<float>, eigen_fixtures_both<double>,
                                            eigen_fixtures_both<Eigen::half>, eigen_fixtures_both<Eigen::bfloat16>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("every mask operation on Eigen objects", "[eigen][mask]", eigen_fixtures) {
    INFO(scalar_name<typename TestType::Scalar>());
    prune_test::run_mask_conformance<TestType>();
}

TEST_CASE("Eigen views: element types, shapes, orders, constness", "[eigen]") {
    Eigen::MatrixXf column_major(3, 4);
    auto v = prune::view(column_major);
    STATIC_REQUIRE(std::is_same_v<decltype(v), prune::tensor_view<float>>);
    CHECK(v.extents() == prune::shape{3, 4});
    CHECK(v.order() == prune::layout::column_major);
    CHECK(v.data().data() == column_major.data());

    Eigen::Matrix<Eigen::half, 2, 5, Eigen::RowMajor> fixed_half;
    auto vh = prune::view(fixed_half);
    STATIC_REQUIRE(std::is_same_v<decltype(vh), prune::tensor_view<prune::half>>);
    CHECK(vh.extents() == prune::shape{2, 5});
    CHECK(vh.order() == prune::layout::row_major);

    Eigen::Array<Eigen::bfloat16, 4, 3> fixed_bf16;
    auto vb = prune::view(fixed_bf16);
    STATIC_REQUIRE(std::is_same_v<decltype(vb), prune::tensor_view<prune::bfloat16>>);
    CHECK(vb.order() == prune::layout::column_major);

    // vectors at compile time are rank 1, like a bias
    Eigen::VectorXd bias(7);
    CHECK(prune::view(bias).extents() == prune::shape{7});
    Eigen::RowVector3f row;
    CHECK(prune::view(row).extents() == prune::shape{3});

    // const objects and Map<const M> give views of const elements
    const Eigen::MatrixXd& const_ref = Eigen::MatrixXd::Zero(2, 2);
    auto cv = prune::view(const_ref);
    STATIC_REQUIRE(std::is_same_v<decltype(cv), prune::tensor_view<const double>>);
    std::vector<float> buffer(6, 1.0f);
    Eigen::Map<const Eigen::MatrixXf> const_map(buffer.data(), 2, 3);
    auto cm = prune::view(const_map);
    STATIC_REQUIRE(std::is_same_v<decltype(cm), prune::tensor_view<const float>>);
    CHECK(cm.extents() == prune::shape{2, 3});

    // the half bits are Eigen's: 1.5 is 0x3E00 in binary16 (IEEE 754)
    fixed_half(1, 2) = Eigen::half(1.5f);
    CHECK(vh.data()[1 * 5 + 2].bits == 0x3E00);
    CHECK(prune::to_float(vh.data()[1 * 5 + 2]) == 1.5f);

    STATIC_REQUIRE(prune::adapted_tensor<Eigen::Matrix<float, 3, 3>>);
    STATIC_REQUIRE(prune::adapted_tensor<Eigen::Ref<Eigen::MatrixXf>>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<Eigen::MatrixXi>);
    STATIC_REQUIRE_FALSE(prune::adapted_tensor<decltype(column_major.block(0, 0, 2, 2))>);
}

TEST_CASE("Eigen Map and Ref: contiguous strides are viewed, others are refused", "[eigen]") {
    std::vector<float> buffer(24, 1.0f);
    using strided = Eigen::Map<Eigen::MatrixXf, 0, Eigen::OuterStride<>>;
    strided exact(buffer.data(), 3, 4, Eigen::OuterStride<>(3));
    CHECK(prune::view(exact).extents() == prune::shape{3, 4});
    strided padded(buffer.data(), 3, 4, Eigen::OuterStride<>(6));
    CHECK_THROWS_AS(prune::view(padded), prune::shape_error);
    CHECK_THROWS_WITH(prune::view(padded), Catch::Contains("outer stride 6") && Catch::Contains("expected"));
    using inner_strided = Eigen::Map<Eigen::VectorXf, 0, Eigen::InnerStride<2>>;
    inner_strided every_other(buffer.data(), 5);
    CHECK_THROWS_AS(prune::view(every_other), prune::shape_error);

    Eigen::MatrixXf m = Eigen::MatrixXf::Ones(4, 5);
    Eigen::Ref<Eigen::MatrixXf> ref(m);
    prune::element_mask mask(prune::shape{4, 5});
    mask.set(1 * 5 + 3, false);  // logical (1, 3)
    prune::apply(mask, ref);
    CHECK(m(1, 3) == 0.0f);
    CHECK(m.sum() == 19.0f);
    Eigen::Ref<Eigen::MatrixXf, 0, Eigen::OuterStride<>> block = m.block(0, 0, 2, 2);
    CHECK_THROWS_AS(prune::view(block), prune::shape_error);

    // a temporary Map is accepted by apply
    prune::apply(mask, Eigen::Map<Eigen::MatrixXf>(buffer.data(), 4, 5));
    CHECK(buffer[3 * 4 + 1] == 0.0f);  // column-major storage of logical (1, 3)
}

TEST_CASE("a mask made for a torch-shaped [out, in] tensor applies to an Eigen matrix of that shape", "[eigen]") {
    // A row-major and a column-major Eigen matrix holding the same logical matrix end up equal.
    Eigen::Matrix<float, 5, 7, Eigen::RowMajor> row_major;
    Eigen::Matrix<float, 5, 7, Eigen::ColMajor> column_major;
    for (int r = 0; r < 5; ++r) {
        for (int c = 0; c < 7; ++c) {
            row_major(r, c) = column_major(r, c) = static_cast<float>(r * 7 + c + 1);
        }
    }
    const auto bytes = prune_test::random_bytes(35, 3);
    const prune::element_mask mask = prune::element_mask::from_bytes(bytes, prune::shape{5, 7});
    prune::apply(mask, row_major);
    prune::apply(mask, column_major);
    CHECK(row_major == column_major);
    CHECK(static_cast<std::size_t>((row_major.array() != 0.0f).count()) == mask.count_kept());
}
