// prune-convert: Hugging Face causal LMs (Llama family or GPT-2) to GGUF and back, and whole
// blocks removed from a GGUF model (prune/io/gguf_convert.hpp, docs/formats.md "prune-convert").
//   prune-convert --model HF_DIR --out model.gguf [--json F]
//   prune-convert --model model.gguf --out HF_DIR [--small-dtype f32|bf16|f16] [--json F]
//   prune-convert --model model.gguf --remove-layers 3,5 --out out.gguf [--json F]
// The direction is decided by the input and the output: --model a directory (config.json +
// model.safetensors or shards, F32/F16/BF16; physically pruned models of prune-compact too, their
// per-layer widths becoming GGUF per-layer arrays) converts to the .gguf file --out; --model a
// file that starts with the GGUF magic converts to the Hugging Face directory --out, or, with
// --remove-layers, loses those blocks (llama-quantize --prune-layers, with the per-layer arrays
// sliced to the surviving layers) into the .gguf file --out. --small-dtype is the type of the
// Hugging Face output's norms and biases (GGUF stores them F32): f32 (the default) is exact
// whatever the source was; bf16 or f16 gives back a BF16 or F16 checkpoint bit for bit. Tensors
// are read through the file maps and written without a second copy where they need no
// reordering. --json F: direction, tensors and bytes written, seconds, peak_rss_bytes. Bad
// input: one line on stderr, exit 2, nothing written (--out is written whole or not at all).
#include "common/cli.hpp"
#include "common/outputs.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/gguf_convert.hpp>
#include <prune/io/safetensors.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

namespace prune_examples::prune_convert {

namespace fs = std::filesystem;
using namespace prune;

/// What a command line converts.
enum class direction { hf_to_gguf, gguf_to_hf, remove_layers };

/// The flags.
struct job {
    std::string model;           ///< --model
    std::string out;             ///< --out
    std::string small_dtype;     ///< --small-dtype (empty: not given)
    std::vector<int> layers;     ///< --remove-layers
    bool remove = false;         ///< --remove-layers given
    std::string json_out;        ///< --json
};

/// True when `path` names a .gguf file (the extension, in any case).
bool gguf_path(const std::string& path) {
    std::string ext = fs::path(path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return ext == ".gguf";
}

/// True when --model is a directory, false when it is a file starting with the GGUF magic;
/// io_error / value_error otherwise.
bool model_is_directory(const std::string& model) {
    std::error_code ec;
    if (fs::is_directory(model, ec)) return true;
    if (!fs::exists(model, ec)) {
        throw io_error("--model '" + model + "' does not exist (expected a Hugging Face model directory or a GGUF file)");
    }
    std::ifstream in(model, std::ios::binary);
    char magic[4] = {};
    in.read(magic, sizeof magic);
    if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) return false;
    throw value_error("--model '" + model + "' is a file that does not start with the GGUF magic (expected a Hugging Face "
                      "model directory or a GGUF file)");
}

/// The direction of `j`; value_error for flags that do not go with it, before anything is read.
direction direction_of(const job& j) {
    if (model_is_directory(j.model)) {
        if (j.remove) {
            throw value_error("--remove-layers with a Hugging Face --model (expected a GGUF --model; prune-compact "
                              "--remove-layers removes layers from a directory)");
        }
        if (!j.small_dtype.empty()) {
            throw value_error("--small-dtype with a Hugging Face --model (expected a GGUF --model: it is the Hugging Face "
                              "output's norm and bias type)");
        }
        if (!gguf_path(j.out)) {
            throw value_error("--out '" + j.out + "' for a Hugging Face --model (expected a .gguf file to convert it to)");
        }
        return direction::hf_to_gguf;
    }
    if (j.remove) {
        if (!j.small_dtype.empty()) {
            throw value_error("--small-dtype with --remove-layers (expected a Hugging Face --out: GGUF -> GGUF keeps every type)");
        }
        if (!gguf_path(j.out)) {
            throw value_error("--out '" + j.out + "' with --remove-layers (expected a .gguf file: the smaller GGUF model)");
        }
        return direction::remove_layers;
    }
    if (gguf_path(j.out)) {
        throw value_error("--out '" + j.out + "' for a GGUF --model without --remove-layers (expected a directory for the "
                          "Hugging Face model, or --remove-layers)");
    }
    return direction::gguf_to_hf;
}

/// --small-dtype as a ggml type (f32 when not given).
io::ggml_type small_type(const std::string& name) {
    if (name.empty() || name == "f32") return io::ggml_type::F32;
    if (name == "bf16") return io::ggml_type::BF16;
    if (name == "f16") return io::ggml_type::F16;
    throw value_error("--small-dtype '" + name + "' (expected f32, bf16 or f16)");
}

/// Removes --remove-layers' blocks from the GGUF --model into --out.
void remove_layers(const job& j) {
    std::vector<std::size_t> removed;
    for (const int l : j.layers) {
        if (l < 0) throw value_error("--remove-layers " + std::to_string(l) + " (expected block numbers >= 0)");
        removed.push_back(static_cast<std::size_t>(l));
    }
    const io::gguf_file file = io::gguf_file::open(j.model);
    io::gguf_model m = io::borrow_gguf_model(file);
    io::remove_blocks(m, removed);
    io::write_gguf_model(m, j.out, &file);
}

/// Tensors and bytes of what was written to `out`.
std::pair<std::size_t, std::uintmax_t> written(direction d, const std::string& out) {
    if (d != direction::gguf_to_hf) return {io::gguf_file::open(out).tensors().size(), fs::file_size(out)};
    std::uintmax_t bytes = 0;
    for (const auto& e : fs::directory_iterator(out)) bytes += e.is_regular_file() ? e.file_size() : 0;
    return {io::checkpoint::open(out).tensors().size(), bytes};
}

/// The name of a direction in --json.
const char* direction_name(direction d) {
    return d == direction::hf_to_gguf ? "hf-to-gguf" : d == direction::gguf_to_hf ? "gguf-to-hf" : "remove-layers";
}

/// Converts as `j` says; returns the summary.
io::json convert(const job& j) {
    const auto start = std::chrono::steady_clock::now();
    const direction d = direction_of(j);
    const io::ggml_type small = small_type(j.small_dtype);
    if (d == direction::hf_to_gguf) io::convert_hf_to_gguf(j.model, j.out);
    if (d == direction::gguf_to_hf) io::convert_gguf_to_hf(j.model, j.out, small);
    if (d == direction::remove_layers) remove_layers(j);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const auto [tensors, bytes] = written(d, j.out);
    io::json summary = {{"direction", direction_name(d)}, {"model", j.model},     {"out", j.out},
                        {"tensors", tensors},             {"bytes", bytes},       {"seconds", seconds},
                        {"peak_rss_bytes", prune_lm::peak_rss_bytes()}};
    if (d == direction::remove_layers) summary["removed_layers"] = j.layers;
    if (d == direction::gguf_to_hf) summary["small_dtype"] = j.small_dtype.empty() ? "f32" : j.small_dtype;
    std::fprintf(stderr, "prune-convert: %s: wrote %s (%zu tensors, %ju bytes) in %.2f s\n", direction_name(d), j.out.c_str(),
                 tensors, bytes, seconds);
    return summary;
}

/// The job: build/bin/prune-convert's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    CLI::App app{"prune-convert: Hugging Face causal LM <-> GGUF, and blocks removed from a GGUF model", "prune-convert"};
    job j;
    app.add_option("--model", j.model, "Hugging Face directory (llama or gpt2) or GGUF file (by its magic)")->required();
    app.add_option("--out", j.out, "a .gguf file, or the Hugging Face directory to write (whole, atomically)")->required();
    app.add_option("--small-dtype", j.small_dtype, "GGUF -> Hugging Face: type of norms and biases, f32 (default), bf16 or f16");
    app.add_option("--remove-layers", j.layers, "GGUF -> GGUF: blocks to remove, e.g. 3,5")->delimiter(',');
    app.add_option("--json", j.json_out, "write a summary here: direction, tensors, bytes, seconds, peak_rss_bytes");
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", j.model}}, {{"--out", j.out}, {"--json", j.json_out}});
        j.remove = app.count("--remove-layers") > 0;
        const io::json summary = convert(j);
        if (!j.json_out.empty()) io::write_file_atomically(j.json_out, summary.dump(1) + "\n");
    });
}

}  // namespace prune_examples::prune_convert
