// Compile-fail pair, the half that must NOT compile: a torch tensor without
// <prune/adapters/torch.hpp>; the message names at::Tensor and that header.
#include <prune/mask.hpp>

#include <ATen/core/Tensor.h>

int main() {
    at::Tensor t;
    prune::apply(prune::element_mask(prune::shape{2, 3}), t);
    return 0;
}
