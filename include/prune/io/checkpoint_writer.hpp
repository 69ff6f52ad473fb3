// prune/io/checkpoint_writer.hpp: a checkpoint written back in its own layout, tensor by tensor.
//
// checkpoint_writer(like, dir) creates in `dir` (normally an output_directory's staging path) the
// files of `like`: one model.safetensors when it was one file; for a sharded checkpoint the same
// shard files (same names, the same tensors in each) and a model.safetensors.index.json with the
// same weight_map and metadata.total_size. Every file keeps its input's header bytes exactly
// (tensor order, offsets, padding, __metadata__), so a tensor's new bytes go where its old ones
// were: put(name, bytes) takes tensors in any order (a layer's as soon as it is pruned), and
// finish() copies from `like` every byte not put (the other tensors, and any gap), giving the
// input's pages back as it goes, then fsyncs and renames every file into place. A checkpoint
// written with nothing put is the input, byte for byte.
//
// Memory: the caller's bytes of one tensor, plus one copy buffer of `copy_chunk` bytes. Disk: the
// space of every file is reserved when the writer is made (posix_fallocate), so a disk that
// cannot hold the output fails there, before any work is spent; a write that fails later still
// throws io_error, and an unfinished writer removes its temporaries: nothing half-written stays.
//
// write_like(like, dir, replaced) is the one-call form for tensors already in memory.
#pragma once

#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/safetensors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace prune::io {

namespace detail {

/// model.safetensors.index.json as Hugging Face writes it: metadata.total_size (the bytes of
/// every tensor) and the weight_map (tensor -> shard file, keys sorted).
inline std::string index_json(const checkpoint& ckpt) {
    std::size_t total = 0;
    json weight_map = json::object();
    for (const tensor_info& info : ckpt.tensors()) {
        total += info.byte_size();
        weight_map[info.name] = ckpt.shard_name_of(info.name);
    }
    return json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n";
}

/// shape_error unless `bytes` is the byte count of the tensor's shape and dtype.
inline void check_byte_count(const tensor_info& info, std::size_t bytes, const char* who) {
    if (bytes == info.end - info.begin) return;
    throw shape_error(std::string(who) + ": tensor '" + info.name + "' has " + std::to_string(bytes) +
                      " bytes (expected " + std::to_string(info.end - info.begin) + " for its shape and " +
                      dtype_name(info.type) + ")");
}

}  // namespace detail

/// Writes a checkpoint in the layout of another, tensor by tensor (see the top of this header).
class checkpoint_writer {
public:
    /// Bytes copied at a time by finish().
    static constexpr std::size_t copy_chunk = std::size_t{32} << 20;

    /// Creates (temporaries of) `like`'s files in the existing directory `dir`, headers written and
    /// space reserved; io_error when they cannot be created or the disk is too small. `like` must
    /// outlive the writer.
    checkpoint_writer(const checkpoint& like, const std::filesystem::path& dir)
        : like_(like), put_(like.tensors().size(), false), dir_(dir) {
        for (std::size_t k = 0; k < like.files().size(); ++k) {
            const std::filesystem::path path = dir / (like.sharded() ? like.file_name(k) : std::string("model.safetensors"));
            if (std::error_code ec; !std::filesystem::create_directories(path.parent_path(), ec) && ec) {
                throw io_error("prune::io: cannot create '" + path.parent_path().string() + "': " + ec.message());
            }
            const safetensors_file& input = like.files()[k];
            files_.emplace_back(path);
            files_.back().reserve(input.file_bytes().size());
            files_.back().write_at(0, input.file_bytes().first(input.data_start()));
        }
    }

    /// Writes tensor `name` (its bytes in its dtype). format_error for a name `like` lacks,
    /// shape_error when the byte count is not the tensor's, value_error for a tensor put twice.
    void put(std::string_view name, std::span<const std::byte> bytes) {
        const std::size_t t = like_.index_of(name);  // format_error when unknown
        const tensor_info& info = like_.tensors()[t];
        detail::check_byte_count(info, bytes.size(), "prune::io::checkpoint_writer");
        if (put_[t]) throw value_error("prune::io::checkpoint_writer: tensor '" + std::string(name) + "' put twice");
        const std::size_t k = like_.file_index_of(name);
        files_[k].write_at(like_.files()[k].data_start() + info.begin, bytes);
        put_[t] = true;
    }

    /// True when tensor `name` was put.
    [[nodiscard]] bool was_put(std::string_view name) const { return put_[like_.index_of(name)]; }

    /// Copies every byte not put from `like`, fsyncs and renames every file into place, and
    /// writes the index of a sharded checkpoint. The writer is spent afterwards.
    void finish() {
        for (std::size_t k = 0; k < files_.size(); ++k) copy_rest(k);
        for (atomic_file& file : files_) file.sync();
        for (atomic_file& file : files_) file.commit();
        files_.clear();
        if (!like_.sharded()) return;
        atomic_file index(dir_ / "model.safetensors.index.json");
        index.write(detail::index_json(like_));
        index.commit();
    }

    /// Copies file k's bytes outside the tensors put, chunk by chunk, releasing the input's pages.
    void copy_rest(std::size_t k) {
        const safetensors_file& input = like_.files()[k];
        const std::span<const std::byte> all = input.file_bytes();
        std::vector<std::pair<std::size_t, std::size_t>> written;  // put tensors' file ranges
        for (std::size_t t = 0; t < put_.size(); ++t) {
            const tensor_info& info = like_.tensors()[t];
            if (put_[t] && like_.file_index_of(info.name) == k && info.end > info.begin) {
                written.emplace_back(input.data_start() + info.begin, input.data_start() + info.end);
            }
        }
        std::sort(written.begin(), written.end());
        written.emplace_back(all.size(), all.size());
        std::size_t at = input.data_start();
        for (const auto& [begin, end] : written) {
            for (std::size_t from = at; from < begin; from += copy_chunk) {
                const std::span<const std::byte> part = all.subspan(from, std::min(copy_chunk, begin - from));
                files_[k].write_at(from, part);
                input.release_pages(part);
            }
            at = std::max(at, end);
        }
    }

    const checkpoint& like_;
    std::vector<bool> put_;  // by index in like_.tensors()
    std::filesystem::path dir_;
    std::vector<atomic_file> files_;
};

/// New bytes for some tensors of a checkpoint, by name (each in the tensor's dtype and shape).
using tensor_bytes = std::map<std::string, std::vector<std::byte>>;

/// Writes every tensor of `like` into the existing directory `dir` in `like`'s layout (see the top
/// of this header), the tensors named in `replaced` with those bytes (format_error for a name the
/// checkpoint lacks, shape_error when the byte count is not the tensor's; checked before any file
/// is made), every other one copied. `dir` is normally a staging directory the caller commits.
inline void write_like(const checkpoint& like, const std::filesystem::path& dir, const tensor_bytes& replaced = {}) {
    for (const auto& [name, bytes] : replaced) detail::check_byte_count(like.info(name), bytes.size(), "prune::io::write_like");
    checkpoint_writer writer(like, dir);
    for (const auto& [name, bytes] : replaced) writer.put(name, bytes);
    writer.finish();
}

}  // namespace prune::io
