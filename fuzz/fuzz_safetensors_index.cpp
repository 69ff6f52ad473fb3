// libFuzzer target: a sharded checkpoint. The input is an index JSON, then the separator
// "\n--SHARD--\n", then the bytes of the one shard file "model-00001.safetensors".
// Both are written into a private temporary directory and opened with checkpoint::open.
#include <prune/io/safetensors.hpp>

#include "common.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>

#include <unistd.h>

namespace {
const std::filesystem::path& directory() {
    static const std::filesystem::path dir = prune_fuzz::make_private_directory("prune-fuzz-index-");
    return dir;
}

using prune_fuzz::write;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace prune::io;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string_view separator = "\n--SHARD--\n";
    const std::size_t split = input.find(separator);
    const std::string_view index = input.substr(0, split);
    const std::string_view shard = split == std::string_view::npos ? std::string_view() : input.substr(split + separator.size());
    const auto& dir = directory();
    write(dir / "model.safetensors.index.json", index);
    if (split != std::string_view::npos) {
        write(dir / "model-00001.safetensors", shard);
    } else {
        std::filesystem::remove(dir / "model-00001.safetensors");
    }
    try {
        const checkpoint model = checkpoint::open(dir);
        for (const tensor_info& info : model.tensors()) {
            if (model.bytes(info.name).size() != info.numel() * dtype_size(info.type) ||
                model.to_float(info.name).size() != info.numel() || model.file_of(info.name).empty()) {
                std::abort();
            }
        }
    } catch (const prune::error&) {
    }
    return 0;
}
