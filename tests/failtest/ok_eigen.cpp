// Compile-fail pair, the half that must compile: an Eigen matrix with its adapter header.
#include <prune/adapters/eigen.hpp>
#include <prune/mask.hpp>

#include <Eigen/Core>

int main() {
    Eigen::MatrixXf m = Eigen::MatrixXf::Ones(2, 3);
    prune::apply(prune::element_mask(prune::shape{2, 3}), m);
    return 0;
}
