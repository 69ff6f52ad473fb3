// mask_conformance.hpp: every mask operation (apply, count, sparsity, AND/OR/NOT,
// equality, byte round trip, apply_groups) run on one adapted tensor type, compared with
// an independent reference: a byte mask applied element by element by logical (row,
// column) index, read back through the tensor library's own indexing (a fixture's at()).
//
// A fixture F is constructible as F(rows, cols, values) (values: row-major logical order,
// as float) and offers:
//   tensor()        the adapted tensor (a foreign object, or a view for the built-ins)
//   at(r, c)        the element at logical (r, c) as float, read without prune
//   rank1           true when the view is rank 1 (std::vector, std::span)
//   name            a printable name
// TEMPLATE_LIST_TEST_CASE(..., fixtures) then calls prune_test::run_mask_conformance<F>().
#pragma once

#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

namespace prune_test {

/// Concatenates std::tuple type lists (for TEMPLATE_LIST_TEST_CASE), without constructing them.
template <class... Lists>
struct concat;
template <class... A>
struct concat<std::tuple<A...>> {
    using type = std::tuple<A...>;
};
template <class... A, class... B, class... Rest>
struct concat<std::tuple<A...>, std::tuple<B...>, Rest...> {
    using type = typename concat<std::tuple<A..., B...>, Rest...>::type;
};
/// The concatenation of std::tuple type lists.
template <class... Lists>
using concat_t = typename concat<Lists...>::type;

/// A byte mask (1 = kept) mixing random bits with whole 64-element runs kept or pruned,
/// so that every path of apply (all kept, all pruned, mixed, tail) is exercised.
inline std::vector<std::uint8_t> random_bytes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 random(seed);
    std::vector<std::uint8_t> bytes(n);
    for (std::size_t i = 0; i < n; i += 64) {
        const auto mode = random() % 4;  // 0: all pruned, 1: all kept, 2-3: random bits
        const std::uint64_t bits = random();
        for (std::size_t j = 0; j < 64 && i + j < n; ++j) {
            bytes[i + j] = mode == 0 ? 0 : mode == 1 ? 1 : static_cast<std::uint8_t>((bits >> j) & 1u);
        }
    }
    return bytes;
}

/// Logical values 1..200, exactly representable in every element type (bfloat16 included).
inline std::vector<float> logical_values(std::size_t n) {
    std::vector<float> values(n);
    for (std::size_t i = 0; i < n; ++i) {
        values[i] = static_cast<float>(i % 200 + 1);
    }
    return values;
}

/// Checks that the fixture holds values[i] where keep(i) and 0 elsewhere (i = r * cols + c).
template <class Fixture, class Keep>
void check_masked(const Fixture& fixture, std::size_t rows, std::size_t cols, const std::vector<float>& values,
                  Keep keep) {
    std::size_t mismatches = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            const std::size_t i = r * cols + c;
            const float expected = keep(i) ? values[i] : 0.0f;
            if (fixture.at(r, c) != expected) {
                if (mismatches < 5) {
                    UNSCOPED_INFO("(" << r << ", " << c << "): got " << fixture.at(r, c) << ", expected " << expected);
                }
                ++mismatches;
            }
        }
    }
    CHECK(mismatches == 0);
}

/// The number of non-zero elements, read without prune.
template <class Fixture>
std::size_t count_nonzero_elements(const Fixture& fixture, std::size_t rows, std::size_t cols) {
    std::size_t n = 0;
    for (std::size_t r = 0; r < rows; ++r) {
        for (std::size_t c = 0; c < cols; ++c) {
            n += fixture.at(r, c) != 0.0f ? 1 : 0;
        }
    }
    return n;
}

/// Runs every mask operation on Fixture's tensor type for a few shapes.
template <class Fixture>
void run_mask_conformance() {
    // Shapes: a short wide matrix (columns cross word boundaries), a taller one with
    // partial 64x64 tiles in both directions, and a one-element one.
    const std::vector<std::pair<std::size_t, std::size_t>> shapes = {{6, 130}, {66, 130}, {1, 1}};
    std::uint64_t seed = 1;
    for (const auto& shape : shapes) {
        const std::size_t rows = shape.first;  // not a structured binding: clang 14 cannot capture one
        const std::size_t cols = shape.second;
        INFO(Fixture::name << " " << rows << "x" << cols);
        const std::size_t n = rows * cols;
        const std::vector<float> values = logical_values(n);
        const std::vector<std::uint8_t> a_bytes = random_bytes(n, seed++);
        const std::vector<std::uint8_t> b_bytes = random_bytes(n, seed++);

        Fixture probe(rows, cols, values);
        const prune::shape extents = prune::visit_view(probe.tensor(), [](auto v) { return v.extents(); });
        if (Fixture::rank1) {
            REQUIRE(extents == prune::shape{n});
        } else {
            REQUIRE(extents == prune::shape{rows, cols});
        }
        check_masked(probe, rows, cols, values, [](std::size_t) { return true; });

        const prune::element_mask a = prune::element_mask::from_bytes(a_bytes, extents);
        const prune::element_mask b = prune::element_mask::from_bytes(b_bytes, extents);
        std::size_t a_kept = 0;
        for (std::uint8_t byte : a_bytes) {
            a_kept += byte;
        }

        SECTION("byte round trip and equality") {
            CHECK(a.to_bytes() == a_bytes);
            CHECK(prune::element_mask::from_bytes(a.to_bytes(), extents) == a);
            CHECK((a == b) == (a_bytes == b_bytes));
            prune::element_mask flipped = a;
            flipped.set(n - 1, !a.kept(n - 1));
            CHECK_FALSE(flipped == a);
            CHECK(flipped != a);
            CHECK_FALSE(prune::element_mask(prune::shape{n + 1}) == prune::element_mask(prune::shape{n}));
        }

        SECTION("apply, count and sparsity") {
            Fixture fixture(rows, cols, values);
            prune::apply(a, fixture.tensor());
            check_masked(fixture, rows, cols, values, [&](std::size_t i) { return a_bytes[i] != 0; });
            CHECK(a.count_kept() == a_kept);
            CHECK(a.count_pruned() == n - a_kept);
            CHECK(count_nonzero_elements(fixture, rows, cols) == a.count_kept());
            CHECK(a.sparsity() == Approx(static_cast<double>(n - a_kept) / static_cast<double>(n)));
            prune::apply(a, fixture.tensor());  // idempotent
            check_masked(fixture, rows, cols, values, [&](std::size_t i) { return a_bytes[i] != 0; });
        }

        SECTION("AND") {
            Fixture fixture(rows, cols, values);
            const prune::element_mask both = a & b;
            prune::apply(both, fixture.tensor());
            check_masked(fixture, rows, cols, values, [&](std::size_t i) { return a_bytes[i] && b_bytes[i]; });
            CHECK(count_nonzero_elements(fixture, rows, cols) == both.count_kept());
            prune::element_mask in_place = a;
            in_place &= b;
            CHECK(in_place == both);
        }

        SECTION("OR") {
            Fixture fixture(rows, cols, values);
            const prune::element_mask either = a | b;
            prune::apply(either, fixture.tensor());
            check_masked(fixture, rows, cols, values, [&](std::size_t i) { return a_bytes[i] || b_bytes[i]; });
            CHECK(count_nonzero_elements(fixture, rows, cols) == either.count_kept());
            prune::element_mask in_place = a;
            in_place |= b;
            CHECK(in_place == either);
        }

        SECTION("NOT") {
            Fixture fixture(rows, cols, values);
            const prune::element_mask inverse = ~a;
            prune::apply(inverse, fixture.tensor());
            check_masked(fixture, rows, cols, values, [&](std::size_t i) { return a_bytes[i] == 0; });
            CHECK(inverse.count_kept() == n - a_kept);
            CHECK(~inverse == a);
            CHECK((a | inverse).count_pruned() == 0);
            CHECK((a & inverse).count_kept() == 0);
        }

        SECTION("apply_groups") {
            // groups along axis 0 (rows; or the flat index for a rank-1 view) and axis 1 (columns)
            const std::vector<std::size_t> axes = Fixture::rank1 ? std::vector<std::size_t>{0}
                                                                  : std::vector<std::size_t>{0, 1};
            for (std::size_t axis : axes) {
                const std::size_t extent = extents[axis];
                const std::size_t groups = extent % 3 == 0 ? 3 : extent % 10 == 0 ? 10 : 1;
                const std::vector<std::size_t> per_layer = {1, groups};  // ragged: layer 1 is used
                prune::group_mask heads(per_layer);
                for (std::size_t g = 0; g < groups; g += 2) {
                    heads.set(1, g, false);
                }
                Fixture fixture(rows, cols, values);
                prune::apply_groups(heads, 1, fixture.tensor(), axis);
                const std::size_t block = extent / groups;
                check_masked(fixture, rows, cols, values, [&](std::size_t i) {
                    const std::size_t index = Fixture::rank1 ? i : axis == 0 ? i / cols : i % cols;
                    return heads.kept(1, index / block);
                });
            }
        }
    }
}

}  // namespace prune_test
