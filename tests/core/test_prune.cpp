// Tests of prune/prune.hpp: the umbrella header alone gives the core API (element types,
// views, masks) and does not pull in any adapter.
#include <prune/prune.hpp>

#include <catch2/catch.hpp>

#include <vector>

TEST_CASE("the umbrella header gives views and masks", "[prune]") {
    std::vector<float> weights = {1, 2, 3, 4};
    prune::element_mask mask(prune::view(weights).extents());
    mask.set(0, false);
    prune::apply(mask, weights);
    CHECK(weights == std::vector<float>{0, 2, 3, 4});
    CHECK(mask.sparsity() == 0.25);
#ifdef EIGEN_WORLD_VERSION
    FAIL("prune/prune.hpp must not include Eigen");
#endif
}
