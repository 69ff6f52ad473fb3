// libFuzzer target: element mask safetensors files, one byte or packed bits per element.
// Property: a file that reads as element masks writes back (write_element_masks's format, in
// both layouts) and reads to equal masks.
#include <prune/io/masks.hpp>

#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::io;
    try {
        const auto file = safetensors_file::from_bytes(std::as_bytes(std::span(data, size)), "fuzz");
        const element_masks masks = read_element_masks(file);
        const std::vector<std::pair<std::string, prune::element_mask>> ordered(masks.begin(), masks.end());
        for (const mask_layout layout : {mask_layout::bytes, mask_layout::bits}) {
            const auto bytes = element_mask_writer(ordered, layout).to_bytes();  // bits: value_error for a scalar
            const element_masks again = read_element_masks(safetensors_file::from_bytes(bytes, "again"));
            if (!(again == masks)) {
                std::abort();
            }
        }
    } catch (const prune::error&) {
    }
    return 0;
}
