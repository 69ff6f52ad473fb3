// First translation unit of the ODR link test (see CMakeLists.txt): uses the same inline
// functions as odr_b.cpp, and calls into it; linking both and running proves the headers
// define nothing twice.
#include "odr_all_headers.hpp"

#include <catch2/catch.hpp>

#include <cstddef>
#include <vector>

std::size_t odr_b_apply(std::vector<float>& values);
#ifdef PRUNE_EIGEN_INCLUDED
std::size_t odr_b_apply_eigen(Eigen::MatrixXf& matrix);
#endif

TEST_CASE("two translation units including every public header link and agree", "[odr]") {
    std::vector<float> values(10, 1.0f);
    CHECK(odr_b_apply(values) == 9);
    prune::element_mask mask(prune::view(values).extents());
    mask.set(9, false);
    prune::apply(mask, values);
    CHECK(values[0] == 0.0f);
    CHECK(values[9] == 0.0f);
    CHECK(values[5] == 1.0f);
#ifdef PRUNE_EIGEN_INCLUDED
    Eigen::MatrixXf matrix = Eigen::MatrixXf::Ones(2, 2);
    CHECK(odr_b_apply_eigen(matrix) == 3);
    CHECK(matrix(0, 1) == 0.0f);  // logical index 1 is (0, 1)
#endif
}
