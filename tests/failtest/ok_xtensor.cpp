// Compile-fail pair, the half that must compile: an xtensor container with its adapter header.
#include <prune/adapters/xtensor.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>

#include <xtensor/xtensor.hpp>

int main() {
    xt::xtensor<float, 2> m = xt::ones<float>({2, 3});
    prune::apply(prune::element_mask(prune::shape{2, 3}), m);
    return static_cast<int>(prune::magnitude(m).size()) - 6;
}
