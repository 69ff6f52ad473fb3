// Compile-fail pair, the half that must NOT compile: a type with no tensor_traits is
// rejected, and the message names the type and the adapter headers.
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <array>

struct my_unadapted_matrix {
    std::array<float, 6> values{};
};

int main() {
    my_unadapted_matrix m;
    prune::apply(prune::element_mask(prune::shape{2, 3}), m);
    return 0;
}
