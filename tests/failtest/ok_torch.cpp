// Compile-fail pair, the half that must compile: a torch tensor with its adapter header.
#include <prune/adapters/torch.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>

#include <ATen/core/Tensor.h>

int main() {
    at::Tensor t;  // undefined: this pair checks compilation only
    prune::apply(prune::element_mask(prune::shape{2, 3}), t);
    return static_cast<int>(prune::magnitude(t).size());
}
