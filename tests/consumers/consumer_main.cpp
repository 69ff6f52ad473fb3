// The program of both consumer projects: masks on a std::vector (prune::prune) and on an
// Eigen matrix (prune::eigen). Exits 0 when the results are right.
#include <prune/adapters/eigen.hpp>
#include <prune/prune.hpp>

#include <Eigen/Core>

#include <cstdio>
#include <vector>

int main() {
    std::vector<float> weights = {0.5f, -1.0f, 0.25f, 2.0f};
    prune::element_mask mask(prune::view(weights).extents());
    mask.set(1, false);
    prune::apply(mask, weights);

    Eigen::MatrixXd matrix = Eigen::MatrixXd::Ones(3, 4);
    prune::element_mask matrix_mask(prune::view(matrix).extents());
    matrix_mask.set(1 * 4 + 2, false);  // logical (1, 2)
    prune::apply(matrix_mask, matrix);

    const bool ok = weights[1] == 0.0f && weights[3] == 2.0f && matrix(1, 2) == 0.0 && matrix.sum() == 11.0 &&
                    mask.count_kept() == 3 && matrix_mask.sparsity() == 1.0 / 12.0;
    std::printf("consumer: kept %zu of %zu, matrix sum %g: %s\n", mask.count_kept(), mask.size(), matrix.sum(),
                ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
