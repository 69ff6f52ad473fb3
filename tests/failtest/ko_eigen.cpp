// Compile-fail pair, the half that must NOT compile: an Eigen matrix without
// <prune/adapters/eigen.hpp>; the message names the Eigen type and that header.
#include <prune/mask.hpp>

#include <Eigen/Core>

int main() {
    Eigen::MatrixXf m = Eigen::MatrixXf::Ones(2, 3);
    prune::apply(prune::element_mask(prune::shape{2, 3}), m);
    return 0;
}
