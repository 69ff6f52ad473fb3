// Compile-fail pair, the half that must compile: a torch tensor with its adapter header,
// through every entry point that takes one, so that the adapter's templates are instantiated
// under the strict warning set of compile_check.cmake.
#include <prune/adapters/torch.hpp>
#include <prune/importance/michel.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>

#include <ATen/core/Tensor.h>

#include <array>
#include <cstddef>

int main() {
    at::Tensor t;  // undefined: this pair checks compilation only
    prune::apply(prune::element_mask(prune::shape{2, 3}), t);
    prune::apply_groups(prune::group_mask::uniform(1, 3), 0, t, 1);
    const std::array<std::size_t, 1> heads{3};
    prune::importance::michel_accumulator acc(heads);
    acc.add_unit(t, t, 1.0);
    return static_cast<int>(prune::magnitude(t).size() + prune::given_scores(t).size());
}
