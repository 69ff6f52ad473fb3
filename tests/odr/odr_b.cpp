// Second translation unit of the ODR link test: the same headers, the same inline
// functions and template instantiations as odr_a.cpp, called from here.
#include "odr_all_headers.hpp"

#include <cstddef>
#include <vector>

/// Applies a mask to a vector here, in this translation unit; returns the kept count.
std::size_t odr_b_apply(std::vector<float>& values) {
    prune::element_mask mask(prune::view(values).extents());
    mask.set(0, false);
    prune::apply(mask, values);
    return mask.count_kept();
}

#ifdef PRUNE_EIGEN_INCLUDED
/// The same for an Eigen matrix.
std::size_t odr_b_apply_eigen(Eigen::MatrixXf& matrix) {
    prune::element_mask mask(prune::view(matrix).extents());
    mask.set(1, false);
    prune::apply(mask, matrix);
    return mask.count_kept();
}
#endif
