// libFuzzer target: structure mask JSON. Property: a parsed mask written back with
// structure_mask_json parses to the same mask; parsing against an expected shape either
// succeeds with that shape or throws a prune::error.
#include <prune/io/masks.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::io;
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        const prune::structure_mask mask = parse_structure_mask(text, "fuzz");
        const prune::structure_mask again = parse_structure_mask(structure_mask_json(mask), "again");
        if (!(again == mask)) {
            std::abort();
        }
    } catch (const prune::error&) {
    }
    try {
        const std::vector<std::size_t> expected{2, 3, 2};
        const prune::structure_mask mask = parse_structure_mask(text, "fuzz", expected);
        if (mask.heads.layers() != 3 || mask.heads.groups(1) != 3 || mask.mlps.layers() != 3) {
            std::abort();
        }
    } catch (const prune::error&) {
    }
    return 0;
}
