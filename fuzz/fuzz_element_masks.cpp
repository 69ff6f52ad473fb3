// libFuzzer target: element mask safetensors files. Property: a file that reads as
// element masks writes back (write_element_masks's format) and reads to equal masks.
#include <prune/io/masks.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::io;
    try {
        const auto file = safetensors_file::from_bytes(std::as_bytes(std::span(data, size)), "fuzz");
        const element_masks masks = read_element_masks(file);
        safetensors_writer writer;
        for (const auto& [name, mask] : masks) {
            const auto extents = mask.extents().extents();
            writer.add_u8(name, std::vector<std::size_t>(extents.begin(), extents.end()), mask.to_bytes());
        }
        const element_masks again = read_element_masks(safetensors_file::from_bytes(writer.to_bytes(), "again"));
        if (!(again == masks)) {
            std::abort();
        }
    } catch (const prune::error&) {
    }
    return 0;
}
