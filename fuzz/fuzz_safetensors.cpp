// libFuzzer target: a safetensors file from arbitrary bytes.
// Property: the reader either throws a prune::error or yields tensors whose every accessor
// works; writing them back with safetensors_writer and reading that gives the same tensors.
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>

#include <cstdlib>
#include <cstring>

namespace {
void check(bool ok) {
    if (!ok) {
        std::abort();
    }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::io;
    const auto bytes = std::as_bytes(std::span(data, size));
    try {
        const auto file = safetensors_file::from_bytes(bytes, "fuzz");
        safetensors_writer writer;
        for (const tensor_info& info : file.tensors()) {
            const auto raw = file.bytes(info.name);
            check(raw.size() == info.numel() * dtype_size(info.type));
            const std::vector<float> values = file.to_float(info.name);
            check(values.size() == info.numel());
            try {
                switch (info.type) {
                    case dtype::F32: check(file.view<float>(info.name).size() == info.numel()); break;
                    case dtype::F64: check(file.view<double>(info.name).size() == info.numel()); break;
                    case dtype::F16: check(file.view<prune::half>(info.name).size() == info.numel()); break;
                    case dtype::BF16: check(file.view<prune::bfloat16>(info.name).size() == info.numel()); break;
                    default: (void)file.view<float>(info.name); check(false);  // must be a dtype_error
                }
            } catch (const prune::dtype_error&) {
                check(info.type != dtype::F32 && info.type != dtype::F64 && info.type != dtype::F16 &&
                      info.type != dtype::BF16);
            } catch (const prune::error&) {
                // misaligned or rank above 8: both documented
            }
            writer.add_borrowed(info.name, info.type, info.shape, raw);
        }
        for (const auto& [key, value] : file.metadata()) {
            writer.set_metadata(key, value);
        }
        const auto again = safetensors_file::from_bytes(writer.to_bytes(), "rewritten");
        check(again.tensors().size() == file.tensors().size());
        check(again.metadata() == file.metadata());
        for (const tensor_info& info : file.tensors()) {
            const tensor_info& other = again.info(info.name);
            check(other.type == info.type && other.shape == info.shape);
            const auto a = file.bytes(info.name);
            const auto b = again.bytes(info.name);
            check(a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0));
        }
        // the same bytes as an element mask file
        try {
            const element_masks masks = read_element_masks(file);
            check(masks.size() == file.tensors().size());
        } catch (const prune::error&) {
        }
    } catch (const prune::error&) {
    }
    return 0;
}
