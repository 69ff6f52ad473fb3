// Compile-fail pair, the half that must NOT compile: an xtensor container without
// <prune/adapters/xtensor.hpp>; the message names the xtensor type and that header.
#include <prune/mask.hpp>

#include <xtensor/xtensor.hpp>

int main() {
    xt::xtensor<float, 2> m = xt::ones<float>({2, 3});
    prune::apply(prune::element_mask(prune::shape{2, 3}), m);
    return 0;
}
