// prune::xtensor alone: a mask applied to an xt::xarray.
#include <prune/adapters/xtensor.hpp>
#include <prune/prune.hpp>

#include <xtensor/xarray.hpp>

#include <cstdio>

int main() {
    xt::xarray<double> array = {{1.0, 2.0}, {3.0, 4.0}};
    prune::element_mask mask(prune::view(array).extents());
    mask.set(3, false);  // logical (1, 1)
    prune::apply(mask, array);
    const bool ok = array(1, 1) == 0.0 && array(1, 0) == 3.0;
    std::printf("xtensor consumer: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
