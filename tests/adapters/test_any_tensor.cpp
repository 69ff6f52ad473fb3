// "Any adapted tensor" conformance (docs/selection.md, docs/nm-blocks.md, docs/importance.md):
// every public algorithm over std::vector, std::array, std::span, a raw pointer + shape, Eigen (row-major,
// column-major, Map, fixed size) and xtensor (row- and column-major), each against the closed
// forms of any_tensor_conformance.hpp. torch::Tensor runs the same checks in
// test_any_tensor_torch.cpp (built only with libtorch).
#include <prune/adapters/eigen.hpp>
#include <prune/adapters/xtensor.hpp>

#include "any_tensor_conformance.hpp"

#include <Eigen/Core>
#include <catch2/catch.hpp>
#include <xtensor/xarray.hpp>
#include <xtensor/xtensor.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <span>
#include <tuple>
#include <vector>

namespace {

/// Families whose tensors are plain objects: pack_2_4 takes the tensor itself.
struct pack_directly {
    template <class Fixture>
    static auto pack(Fixture& f, const prune::element_mask& m) {
        return prune::pack_2_4(f.tensor(), m);
    }
};

struct vector_family : pack_directly {
    template <std::size_t R, std::size_t C>
    struct fixture {
        std::vector<float> v;
        explicit fixture(const std::vector<float>& values) : v(values) {}
        std::vector<float>& tensor() { return v; }
        [[nodiscard]] std::vector<float> logical() const { return v; }
    };
};

struct span_family : pack_directly {
    template <std::size_t R, std::size_t C>
    struct fixture {
        std::vector<float> storage;
        std::span<float> s;
        explicit fixture(const std::vector<float>& values) : storage(values), s(storage) {}
        std::span<float>& tensor() { return s; }
        [[nodiscard]] std::vector<float> logical() const { return storage; }
    };
};

struct array_family : pack_directly {
    template <std::size_t R, std::size_t C>
    struct fixture {
        std::array<float, R * C> a{};
        explicit fixture(const std::vector<float>& values) { std::copy(values.begin(), values.end(), a.begin()); }
        std::array<float, R * C>& tensor() { return a; }
        [[nodiscard]] std::vector<float> logical() const { return {a.begin(), a.end()}; }
    };
};

struct raw_pointer_family : pack_directly {
    template <std::size_t R, std::size_t C>
    struct fixture {
        std::vector<float> storage;
        prune::tensor_view<float> v;
        explicit fixture(const std::vector<float>& values)
            : storage(values), v(prune::make_view(storage.data(), prune::shape{R, C})) {}
        prune::tensor_view<float>& tensor() { return v; }
        [[nodiscard]] std::vector<float> logical() const { return storage; }
    };
};

/// An Eigen object E holding R x C logical values, written and read through operator()(r, c).
template <class E, std::size_t R, std::size_t C>
struct eigen_object {
    E m;
    template <class... Args>
    eigen_object(const std::vector<float>& values, Args&&... args) : m(std::forward<Args>(args)...) {
        for (std::size_t r = 0; r < R; ++r) {
            for (std::size_t c = 0; c < C; ++c) m(index(r), index(c)) = values[r * C + c];
        }
    }
    static Eigen::Index index(std::size_t i) { return static_cast<Eigen::Index>(i); }
    E& tensor() { return m; }
    [[nodiscard]] std::vector<float> logical() const {
        std::vector<float> out;
        for (std::size_t r = 0; r < R; ++r) {
            for (std::size_t c = 0; c < C; ++c) out.push_back(m(index(r), index(c)));
        }
        return out;
    }
};

template <int Order>
struct eigen_dynamic_family : pack_directly {
    template <std::size_t R, std::size_t C>
    struct fixture : eigen_object<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Order>, R, C> {
        explicit fixture(const std::vector<float>& values)
            : eigen_object<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Order>, R, C>(
                  values, static_cast<Eigen::Index>(R), static_cast<Eigen::Index>(C)) {}
    };
};

/// Eigen forbids a column-major 1 x C matrix; such a fixed row vector is row-major by necessity.
template <std::size_t R, std::size_t C, int Order>
inline constexpr int fixed_order = (R == 1 && C != 1) ? Eigen::RowMajor : Order;

template <int Order>
struct eigen_fixed_family : pack_directly {
    template <std::size_t R, std::size_t C>
    using matrix = Eigen::Matrix<float, static_cast<int>(R), static_cast<int>(C), fixed_order<R, C, Order>>;
    template <std::size_t R, std::size_t C>
    struct fixture : eigen_object<matrix<R, C>, R, C> {
        explicit fixture(const std::vector<float>& values) : eigen_object<matrix<R, C>, R, C>(values) {}
    };
};

template <int Order>
struct eigen_map_family : pack_directly {
    using map = Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Order>>;
    template <std::size_t R, std::size_t C>
    struct fixture {
        std::vector<float> storage = std::vector<float>(R * C);
        eigen_object<map, R, C> object;
        explicit fixture(const std::vector<float>& values)
            : object(values, storage.data(), static_cast<Eigen::Index>(R), static_cast<Eigen::Index>(C)) {}
        map& tensor() { return object.m; }
        [[nodiscard]] std::vector<float> logical() const { return object.logical(); }
    };
};

template <class X>
struct xtensor_family : pack_directly {
    template <std::size_t R, std::size_t C>
    struct fixture {
        X x;
        explicit fixture(const std::vector<float>& values) : x(X::from_shape({R, C})) {
            for (std::size_t r = 0; r < R; ++r) {
                for (std::size_t c = 0; c < C; ++c) x(r, c) = values[r * C + c];
            }
        }
        X& tensor() { return x; }
        [[nodiscard]] std::vector<float> logical() const {
            std::vector<float> out;
            for (std::size_t r = 0; r < R; ++r) {
                for (std::size_t c = 0; c < C; ++c) out.push_back(x(r, c));
            }
            return out;
        }
    };
};

using all_families =
    std::tuple<vector_family, array_family, span_family, raw_pointer_family, eigen_dynamic_family<Eigen::RowMajor>,
               eigen_dynamic_family<Eigen::ColMajor>, eigen_fixed_family<Eigen::RowMajor>,
               eigen_fixed_family<Eigen::ColMajor>, eigen_map_family<Eigen::RowMajor>,
               eigen_map_family<Eigen::ColMajor>, xtensor_family<xt::xtensor<float, 2>>,
               xtensor_family<xt::xtensor<float, 2, xt::layout_type::column_major>>,
               xtensor_family<xt::xarray<float>>>;
using rank2_families = std::tuple<raw_pointer_family, eigen_dynamic_family<Eigen::RowMajor>,
                                  eigen_dynamic_family<Eigen::ColMajor>, eigen_fixed_family<Eigen::ColMajor>,
                                  eigen_map_family<Eigen::ColMajor>,
                                  xtensor_family<xt::xtensor<float, 2, xt::layout_type::column_major>>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("every public algorithm on every adapted tensor equals the closed forms", "[any_tensor]",
                        all_families) {
    any_tensor::run<TestType>();
}

TEMPLATE_LIST_TEST_CASE("2-D block scores on rank-2 adapted tensors equal the closed form", "[any_tensor]",
                        rank2_families) {
    any_tensor::run_2d_blocks<TestType>();
}

TEST_CASE("michel add_unit takes a std::vector<float> as it is (no explicit span)", "[any_tensor]") {
    // the case: deduction used to fail for std::vector<float>
    const std::array<std::size_t, 1> heads{2};
    prune::importance::michel_accumulator acc(heads);
    const std::vector<float> h{-1.5f, 2.0f};
    const std::vector<double> m{0.25};
    acc.add_unit(h, m, 3);
    acc.add_unit(std::vector<float>{0.5f, -1.0f}, std::vector<float>{-0.75f}, 1);  // temporaries are read at once
    CHECK(acc.head_sums()[0] == 2.0);  // |-1.5| + |0.5|
    CHECK(acc.head_sums()[1] == 3.0);  // |2| + |-1|
    CHECK(acc.mlp_sums()[0] == 1.0);   // |0.25| + |-0.75|
    CHECK(acc.tokens() == 4.0);
}
