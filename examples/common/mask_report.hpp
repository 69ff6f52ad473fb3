// examples/common/mask_report.hpp: what the binaries that write element masks share
// (prune-magnitude, prune-sparsify): the per-tensor part of report.json ("tensors" {name:
// {size, kept, sparsity}}, and over all of them "total", "kept" and "sparsity"), and the
// --mask-format flag saying how masks.safetensors stores the masks (docs/formats.md).
#pragma once

#include <prune/io/masks.hpp>
#include <prune/mask.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace prune_cli {

/// Adds tensors / total / kept / sparsity of the named masks to `report`.
inline void add_mask_counts(nlohmann::json& report, const std::vector<std::pair<std::string, prune::element_mask>>& masks) {
    nlohmann::json tensors = nlohmann::json::object();
    std::size_t total = 0, kept = 0;
    for (const auto& [name, mask] : masks) {
        tensors[name] = {{"size", mask.size()}, {"kept", mask.count_kept()}, {"sparsity", mask.sparsity()}};
        total += mask.size();
        kept += mask.count_kept();
    }
    report["tensors"] = tensors;
    report["total"] = total;
    report["kept"] = kept;
    report["sparsity"] = total == 0 ? 0.0 : static_cast<double>(total - kept) / static_cast<double>(total);
}

/// The value of --mask-format: "bytes" (one byte per element, the default: what
/// safetensors.load_file users get today) or "bits" (8 elements per byte along the last axis).
struct mask_format {
    std::string text = "bytes";
    [[nodiscard]] prune::io::mask_layout layout() const {
        return text == "bits" ? prune::io::mask_layout::bits : prune::io::mask_layout::bytes;
    }
};

/// Adds --mask-format bytes|bits to `app` (any other value is a usage error, exit 2).
inline void add_mask_format(CLI::App& app, mask_format& format) {
    app.add_option("--mask-format", format.text,
                   "masks.safetensors: bytes (U8 0/1 per element) or bits (packed 8 per byte along the last axis, "
                   "numpy packbits bitorder='little'; docs/formats.md)")
        ->check(CLI::IsMember({"bytes", "bits"}))
        ->capture_default_str();
}

}  // namespace prune_cli
