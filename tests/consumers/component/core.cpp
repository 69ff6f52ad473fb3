// The core alone (prune::prune): the umbrella header, a global magnitude selection and the
// head-importance accumulator, compiled with -Werror and every warning of the header check.
#include <prune/prune.hpp>

#include <cstdio>
#include <vector>

int main() {
    std::vector<float> weights = {0.5f, -1.0f, 0.25f, 2.0f};
    prune::element_mask mask(prune::view(weights).extents());
    mask.set(2, false);  // |0.25| is the smallest magnitude
    prune::apply(mask, weights);

    auto importance = prune::importance::michel_accumulator::uniform(1, 2);
    importance.add_unit(std::vector<double>{-3.0, 1.0}, std::vector<double>{0.5}, 4.0);
    const auto scores = importance.scores();

    const bool ok = weights[2] == 0.0f && weights[3] == 2.0f && mask.count_kept() == 3 &&
                    scores.heads[0][0] == 3.0 && scores.heads[0][1] == 1.0;  // |-3| and |1|, one unit
    std::printf("core consumer: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
