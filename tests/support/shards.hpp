// tests/support/shards.hpp: sharded safetensors checkpoints for the tests, as Hugging Face's
// save_pretrained lays them out: each tensor in the shard file it names,
// model.safetensors.index.json's weight_map pointing at it, the index's total_size 0 (so an
// output's must be computed, not copied), and "format": "pt" in every shard's metadata.
#pragma once

#include <prune/element.hpp>
#include <prune/io/json.hpp>
#include <prune/io/safetensors.hpp>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace prune_test {

/// One tensor of a sharded checkpoint and the shard file that holds it.
struct shard_tensor {
    std::string name;
    prune::io::dtype type;
    std::vector<std::size_t> shape;
    std::vector<std::byte> bytes;
    std::string file;  ///< e.g. "model-00001-of-00002.safetensors"
};

/// `values` rounded to bf16 (round to nearest even), as bytes.
inline std::vector<std::byte> bf16_bytes(std::span<const float> values) {
    std::vector<prune::bfloat16> h(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) h[i] = prune::to_bfloat16(values[i]);
    const auto bytes = std::as_bytes(std::span<const prune::bfloat16>(h));
    return {bytes.begin(), bytes.end()};
}

/// Writes `tensors` into their shard files under `dir` (created) and the index naming them.
inline void write_shards(const std::filesystem::path& dir, const std::vector<shard_tensor>& tensors) {
    std::filesystem::create_directories(dir);
    std::map<std::string, prune::io::safetensors_writer> shards;
    prune::io::json weight_map = prune::io::json::object();
    for (const shard_tensor& t : tensors) {
        shards[t.file].add(t.name, t.type, t.shape, t.bytes);
        weight_map[t.name] = t.file;
    }
    for (auto& [file, writer] : shards) {
        writer.set_metadata("format", "pt");
        writer.write(dir / file);
    }
    std::ofstream(dir / "model.safetensors.index.json")
        << prune::io::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump(2);
}

/// The single-file (or sharded) checkpoint in `from` as shards in `to`, with its config.json:
/// `shard_of(name)` names each tensor's file; `bf16(name)` says whether it is rounded to bf16
/// (from any float type), else its bytes are copied as they are.
template <class ShardOf, class Bf16>
void reshard(const std::filesystem::path& from, const std::filesystem::path& to, ShardOf&& shard_of, Bf16&& bf16) {
    const prune::io::checkpoint in = prune::io::checkpoint::open(from);
    std::vector<shard_tensor> tensors;
    for (const prune::io::tensor_info& info : in.tensors()) {
        const std::span<const std::byte> bytes = in.bytes(info.name);
        shard_tensor t{info.name, info.type, info.shape, {bytes.begin(), bytes.end()}, shard_of(info.name)};
        if (bf16(info.name)) {
            t.type = prune::io::dtype::BF16;
            t.bytes = bf16_bytes(in.to_float(info.name));
        }
        tensors.push_back(std::move(t));
    }
    write_shards(to, tensors);
    std::filesystem::copy_file(from / "config.json", to / "config.json");
}

}  // namespace prune_test
