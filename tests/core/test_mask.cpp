// Tests of prune/mask.hpp: element masks (packed bits), group masks (ragged heads, MLPs),
// apply / apply_groups, and every mask operation over the built-in adapters (std::vector,
// std::span, raw pointer views in both storage orders) and every element type.
#include <prune/mask.hpp>

#include "mask_conformance.hpp"

#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace {

/// std::vector<E>: a rank-1 view.
template <prune::element E>
struct vector_fixture {
    static constexpr bool rank1 = true;
    static constexpr const char* name = "std::vector";
    std::size_t cols;
    std::vector<E> data;
    vector_fixture(std::size_t, std::size_t c, const std::vector<float>& values) : cols(c) {
        for (float v : values) {
            data.push_back(prune::from_float<E>(v));
        }
    }
    std::vector<E>& tensor() { return data; }
    [[nodiscard]] float at(std::size_t r, std::size_t c) const { return prune::to_float(data[r * cols + c]); }
};

/// std::span<E> over a buffer: a rank-1 view.
template <prune::element E>
struct span_fixture : vector_fixture<E> {
    static constexpr const char* name = "std::span";
    std::span<E> span;
    span_fixture(std::size_t r, std::size_t c, const std::vector<float>& values)
        : vector_fixture<E>(r, c, values), span(this->data) {}
    std::span<E>& tensor() { return span; }
};

/// A raw pointer + shape + order view (make_view), row-major or column-major storage.
template <prune::element E, prune::layout Order>
struct pointer_fixture {
    static constexpr bool rank1 = false;
    static constexpr const char* name = Order == prune::layout::row_major ? "make_view row-major"
                                                                          : "make_view column-major";
    std::size_t rows;
    std::size_t cols;
    std::vector<E> storage;
    prune::tensor_view<E> view_;
    pointer_fixture(std::size_t r, std::size_t c, const std::vector<float>& values)
        : rows(r), cols(c), storage(r * c) {
        for (std::size_t i = 0; i < r; ++i) {
            for (std::size_t j = 0; j < c; ++j) {
                storage[offset(i, j)] = prune::from_float<E>(values[i * c + j]);
            }
        }
        view_ = prune::make_view(storage.data(), prune::shape{r, c}, Order);
    }
    [[nodiscard]] std::size_t offset(std::size_t r, std::size_t c) const {
        return Order == prune::layout::row_major ? r * cols + c : c * rows + r;
    }
    prune::tensor_view<E>& tensor() { return view_; }
    [[nodiscard]] float at(std::size_t r, std::size_t c) const { return prune::to_float(storage[offset(r, c)]); }
};

template <prune::element E>
using builtin_fixtures_of = std::tuple<vector_fixture<E>, span_fixture<E>, pointer_fixture<E, prune::layout::row_major>,
                                       pointer_fixture<E, prune::layout::column_major>>;

using builtin_fixtures = prune_test::concat_t<builtin_fixtures_of<float>, builtin_fixtures_of<double>,
                                              builtin_fixtures_of<prune::half>, builtin_fixtures_of<prune::bfloat16>>;

}  // namespace

TEMPLATE_LIST_TEST_CASE("every mask operation on the built-in adapters", "[mask][adapters]", builtin_fixtures) {
    prune_test::run_mask_conformance<TestType>();
}

TEST_CASE("element_mask: construction, bits, counts", "[mask]") {
    const prune::element_mask empty;
    CHECK(empty.size() == 0);
    CHECK(empty.sparsity() == 0.0);
    CHECK(empty.count_kept() == 0);

    prune::element_mask all(prune::shape{3, 43});  // 129 bits: three words, the last with one bit
    CHECK(all.size() == 129);
    CHECK(all.words().size() == 3);
    CHECK(all.count_kept() == 129);
    CHECK(all.words()[2] == 1u);  // bits past size() are zero
    CHECK(all.sparsity() == 0.0);

    prune::element_mask none(prune::shape{3, 43}, false);
    CHECK(none.count_pruned() == 129);
    CHECK(none.sparsity() == 1.0);
    CHECK(~none == all);
    CHECK((~all).words()[2] == 0u);

    all.set(128, false);
    CHECK_FALSE(all.kept(128));
    CHECK(all.kept(127));
    CHECK(all.count_kept() == 128);
    all.set(128, true);
    CHECK(all.kept(128));

    CHECK(all.extents() == prune::shape{3, 43});
    CHECK_FALSE(prune::element_mask(prune::shape{3, 43}) == prune::element_mask(prune::shape{43, 3}));
}

TEST_CASE("element_mask: errors name what was wrong", "[mask]") {
    const std::vector<std::uint8_t> bytes = {1, 0, 2};
    CHECK_THROWS_AS(prune::element_mask::from_bytes(bytes, prune::shape{3}), prune::value_error);
    CHECK_THROWS_WITH(prune::element_mask::from_bytes(bytes, prune::shape{3}),
                      Catch::Contains("byte 2 at index 2"));
    CHECK_THROWS_AS(prune::element_mask::from_bytes(bytes, prune::shape{4}), prune::shape_error);

    prune::element_mask a(prune::shape{2, 3});
    const prune::element_mask b(prune::shape{3, 2});
    CHECK_THROWS_AS(a &= b, prune::shape_error);
    CHECK_THROWS_AS(a | b, prune::shape_error);
    CHECK_THROWS_WITH(a & b, Catch::Contains("[2, 3]") && Catch::Contains("[3, 2]"));
}

TEST_CASE("apply: which shapes fit", "[mask]") {
    std::vector<float> flat(6, 1.0f);
    std::array<float, 6> storage{1, 1, 1, 1, 1, 1};
    auto matrix = prune::make_view(storage.data(), prune::shape{2, 3});

    prune::element_mask mask23(prune::shape{2, 3});
    mask23.set(4, false);
    prune::apply(mask23, flat);  // rank-1 tensor: same number of elements fits
    CHECK(flat[4] == 0.0f);
    prune::apply(mask23, matrix);
    CHECK(storage[4] == 0.0f);

    const prune::element_mask mask6(prune::shape{6});
    prune::apply(mask6, matrix);  // a flat mask fits any tensor of its size

    const prune::element_mask mask32(prune::shape{3, 2});  // transposed: refused
    CHECK_THROWS_AS(prune::apply(mask32, matrix), prune::shape_error);
    CHECK_THROWS_WITH(prune::apply(mask32, matrix), Catch::Contains("[3, 2]") && Catch::Contains("[2, 3]"));
    const prune::element_mask mask7(prune::shape{7});
    CHECK_THROWS_AS(prune::apply(mask7, flat), prune::shape_error);
}

TEST_CASE("apply on a column-major tensor of rank 3", "[mask]") {
    // storage index of logical (i, j, k) in a column-major [2, 3, 4] tensor: i + 2 j + 6 k
    std::vector<double> storage(24, 5.0);
    auto tensor = prune::make_view(storage.data(), prune::shape{2, 3, 4}, prune::layout::column_major);
    prune::element_mask mask(prune::shape{2, 3, 4});
    mask.set((1 * 3 + 2) * 4 + 3, false);  // logical (1, 2, 3)
    prune::apply(mask, tensor);
    for (std::size_t s = 0; s < storage.size(); ++s) {
        CHECK(storage[s] == (s == 1 + 2 * 2 + 6 * 3 ? 0.0 : 5.0));
    }
}

TEST_CASE("apply: large column-major matrices match the element-wise reference", "[mask]") {
    // 200 x 300: several full 64x64 tiles plus partial ones in both directions.
    const std::size_t rows = 200;
    const std::size_t cols = 300;
    const std::vector<std::uint8_t> bytes = prune_test::random_bytes(rows * cols, 99);
    const prune::element_mask mask = prune::element_mask::from_bytes(bytes, prune::shape{rows, cols});
    std::vector<float> storage(rows * cols);
    for (std::size_t i = 0; i < storage.size(); ++i) {
        storage[i] = static_cast<float>(i + 1);
    }
    prune::apply(mask, prune::make_view(storage.data(), prune::shape{rows, cols}, prune::layout::column_major));
    std::size_t mismatches = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            const float expected = bytes[r * cols + c] ? static_cast<float>(c * rows + r + 1) : 0.0f;
            mismatches += storage[c * rows + r] != expected ? 1 : 0;
        }
    }
    CHECK(mismatches == 0);
}

TEST_CASE("transpose_bits transposes a 64x64 bit matrix", "[mask]") {
    std::mt19937_64 random(7);
    std::array<std::uint64_t, 64> bits{};
    for (auto& row : bits) {
        row = random();
    }
    std::array<std::uint64_t, 64> transposed = bits;
    prune::detail::transpose_bits(transposed);
    for (std::size_t i = 0; i < 64; ++i) {
        for (std::size_t j = 0; j < 64; ++j) {
            REQUIRE(((transposed[j] >> i) & 1u) == ((bits[i] >> j) & 1u));
        }
    }
}

TEST_CASE("group_mask: ragged layers, counts, operators", "[mask]") {
    const std::vector<std::size_t> heads_per_layer = {12, 10, 0, 12};  // a pruned model: layers differ
    prune::group_mask heads(heads_per_layer);
    CHECK(heads.layers() == 4);
    CHECK(heads.groups(1) == 10);
    CHECK(heads.groups(2) == 0);
    CHECK(heads.total() == 34);
    CHECK(heads.flat_index(1, 3) == 15);
    CHECK(heads.flat_index(3, 0) == 22);
    CHECK(heads.count_kept() == 34);

    heads.set(1, 3, false);
    heads.set_flat(33, false);
    CHECK_FALSE(heads.kept(1, 3));
    CHECK_FALSE(heads.kept(3, 11));
    CHECK_FALSE(heads.kept_flat(15));
    CHECK(heads.count_kept(1) == 9);
    CHECK(heads.count_kept(2) == 0);
    CHECK(heads.count_pruned() == 2);
    CHECK(heads.sparsity() == Approx(2.0 / 34.0));

    const prune::group_mask inverse = ~heads;
    CHECK(inverse.count_kept() == 2);
    CHECK((heads & inverse).count_kept() == 0);
    CHECK((heads | inverse).count_pruned() == 0);
    CHECK(~inverse == heads);
    prune::group_mask copy = heads;
    CHECK(copy == heads);
    copy.set(0, 0, false);
    CHECK_FALSE(copy == heads);

    const prune::group_mask other = prune::group_mask::uniform(4, 12);
    CHECK_FALSE(other.same_layout(heads));
    CHECK_THROWS_AS(heads & other, prune::shape_error);
    CHECK_THROWS_AS(heads |= other, prune::shape_error);

    CHECK(prune::group_mask() == prune::group_mask(std::span<const std::size_t>{}));
    CHECK(prune::group_mask().layers() == 0);
    CHECK(prune::group_mask().sparsity() == 0.0);
}

TEST_CASE("group_mask: rows round trip and MLPs", "[mask]") {
    const std::vector<std::vector<int>> rows = {{1, 0, 1}, {}, {0, 0}};
    const prune::group_mask mask = prune::group_mask::from_rows(rows);
    CHECK(mask.to_rows() == rows);
    CHECK(mask.count_kept() == 2);
    CHECK_THROWS_AS(prune::group_mask::from_rows({{1, 2}}), prune::value_error);
    CHECK_THROWS_WITH(prune::group_mask::from_rows({{1, 2}}), Catch::Contains("[0][1]"));

    prune::structure_mask structure{prune::group_mask::uniform(12, 12), prune::group_mask::uniform(12, 1)};
    structure.mlps.set(5, 0, false);
    CHECK(structure.mlps.count_kept() == 11);
    prune::structure_mask same = structure;
    CHECK(same == structure);
    same.heads.set(0, 0, false);
    CHECK_FALSE(same == structure);
}

TEST_CASE("apply_groups: heads along rows and columns, errors", "[mask]") {
    // 4 heads of size 2 along rows of an 8x3 Q matrix; along columns of a 3x8 output matrix.
    prune::group_mask heads = prune::group_mask::uniform(2, 4);
    heads.set(1, 2, false);
    std::vector<float> q(8 * 3, 1.0f);
    prune::apply_groups(heads, 1, prune::make_view(q.data(), prune::shape{8, 3}), 0);
    for (std::size_t r = 0; r < 8; ++r) {
        for (std::size_t c = 0; c < 3; ++c) {
            CHECK(q[r * 3 + c] == (r / 2 == 2 ? 0.0f : 1.0f));
        }
    }
    std::vector<float> out(3 * 8, 1.0f);
    prune::apply_groups(heads, 1, prune::make_view(out.data(), prune::shape{3, 8}), 1);
    for (std::size_t r = 0; r < 3; ++r) {
        for (std::size_t c = 0; c < 8; ++c) {
            CHECK(out[r * 8 + c] == (c / 2 == 2 ? 0.0f : 1.0f));
        }
    }
    auto odd = prune::make_view(q.data(), prune::shape{6, 4});
    CHECK_NOTHROW(prune::apply_groups(heads, 1, odd, 1));  // 4 columns split into 4 heads
    CHECK_THROWS_AS(prune::apply_groups(heads, 1, odd, 0), prune::shape_error);  // 6 rows do not
    CHECK_THROWS_WITH(prune::apply_groups(heads, 1, odd, 0), Catch::Contains("4 equal groups"));
    CHECK_THROWS_AS(prune::apply_groups(heads, 2, q, 0), prune::shape_error);
    CHECK_THROWS_AS(prune::apply_groups(heads, 0, q, 1), prune::shape_error);
}
