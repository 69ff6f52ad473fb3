// Compile-fail pair, the half that must NOT compile: magnitude scores (like every algorithm
// that reads a tensor) of a type with no tensor_traits; the message names the type and the
// adapter headers. ok.cpp is the other half (the same type, adapted).
#include <prune/importance/scores.hpp>

#include <array>

struct my_unadapted_matrix {
    std::array<float, 6> values{};
};

int main() {
    my_unadapted_matrix m;
    const prune::score_source s = prune::magnitude(m);
    return static_cast<int>(s.size());
}
