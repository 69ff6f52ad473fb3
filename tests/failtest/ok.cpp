// Compile-fail pair, the half that must compile: a user type adapted by specialising
// prune::tensor_traits is accepted by prune::apply (ko.cpp omits the specialisation).
#include <prune/mask.hpp>
#include <prune/tensor.hpp>

#include <array>

struct my_unadapted_matrix {
    std::array<float, 6> values{};
};

template <>
struct prune::tensor_traits<my_unadapted_matrix> {
    static prune::tensor_view<float> view(my_unadapted_matrix& m) {
        return prune::make_view(m.values.data(), prune::shape{2, 3});
    }
};

int main() {
    my_unadapted_matrix m;
    prune::apply(prune::element_mask(prune::shape{2, 3}), m);
    return 0;
}
