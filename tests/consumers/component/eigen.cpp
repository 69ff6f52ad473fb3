// prune::eigen alone: a mask applied to a column-major Eigen matrix in logical order.
#include <prune/adapters/eigen.hpp>
#include <prune/prune.hpp>

#include <Eigen/Core>

#include <cstdio>

int main() {
    Eigen::MatrixXf matrix = Eigen::MatrixXf::Ones(2, 3);
    prune::element_mask mask(prune::view(matrix).extents());
    mask.set(1 * 3 + 0, false);  // logical (1, 0)
    prune::apply(mask, matrix);
    const bool ok = matrix(1, 0) == 0.0f && matrix.sum() == 5.0f;
    std::printf("eigen consumer: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
