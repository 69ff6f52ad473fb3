// prune::io alone: a structure mask written to JSON text and parsed back.
#include <prune/io/masks.hpp>
#include <prune/prune.hpp>

#include <cstdio>
#include <vector>

int main() {
    prune::structure_mask mask{prune::group_mask(std::vector<std::size_t>{2, 2}),
                               prune::group_mask(std::vector<std::size_t>{1, 1})};
    mask.heads.set(1, 0, false);
    const auto text = prune::io::structure_mask_json(mask);
    const auto back = prune::io::parse_structure_mask(text, "consumer");
    const bool ok = back == mask;
    std::printf("io consumer: %s\n", ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
