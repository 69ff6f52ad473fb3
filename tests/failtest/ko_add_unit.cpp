// Compile-fail, the half that must NOT compile: michel_accumulator::add_unit with gradients of
// a type no adapter covers (integers are not an element type); the message names the type and
// the adapter headers. ok.cpp's user type shows the adapted counterpart.
#include <prune/importance/michel.hpp>

#include <array>
#include <cstddef>
#include <vector>

int main() {
    const std::array<std::size_t, 1> heads{2};
    prune::importance::michel_accumulator acc(heads);
    const std::vector<int> gradients{1, 2};
    acc.add_unit(gradients, gradients, 1.0);
    return 0;
}
