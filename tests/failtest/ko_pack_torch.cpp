// Compile-fail, the half that must NOT compile: pack_2_4 of a torch tensor, whose element type
// (the packed type) is known only at run time; the message says to pass a typed view.
// ok_torch.cpp's functions take torch tensors directly.
#include <prune/adapters/torch.hpp>
#include <prune/nm.hpp>

#include <ATen/core/Tensor.h>

int main() {
    at::Tensor t;
    const auto packed = prune::pack_2_4(t, prune::element_mask(prune::shape{1, 16}));
    return static_cast<int>(packed.rows);
}
