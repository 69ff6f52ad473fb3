// examples/common/mask_report.hpp: the per-tensor part of a pruning binary's report.json
// (prune-magnitude, prune-sparsify): "tensors" {name: {size, kept, sparsity}}, and over all of
// them "total", "kept" and "sparsity".
#pragma once

#include <prune/mask.hpp>

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

}  // namespace prune_cli
