// prune-compact: physically removes structures from a causal LM (Llama family or GPT-2): the
// query heads, K/V groups and MLPs a structure mask masks, and whole layers; writes a smaller
// model directory that computes what the masked model computes (prune/models/decoder/compact.hpp,
// docs/decoders.md "Structured pruning and compaction").
//   prune-compact --model DIR [--mask masks.json] [--remove-layers 0,5] --out DIR
//   prune-compact --model DIR [--mask masks.json] --remove-layers-by-bi N --data F [--context C]
//                 [--batch-size 8] [--threads 0] --out DIR
// --remove-layers-by-bi N (ShortGPT): removes the N layers of lowest Block Influence
// (decoder::block_influence) on the data F, read as prune-eval reads it (JSON Lines input_ids /
// text, or a .txt file cut into --context windows), under --mask's gates when given; equal
// scores go lower layer first. DIR/report.json gives the scores and the layers removed.
// The mask is prune-heads' masks.json or any structure mask ({"heads", "mlps", "kv_groups"}, rows
// over the model's present heads); --remove-layers names layers by their index in DIR. DIR is
// written whole (config.json with the new widths, model.safetensors in the input's dtype, the
// tokenizer files), or not at all: a mask of the wrong shape, one that leaves a layer's K/V
// groups with unequal numbers of query heads, or removing every layer is refused (exit 2); so is
// N outside 1..layers - 1, --remove-layers-by-bi with --remove-layers or without --data.
#include "common/cli.hpp"
#include "common/outputs.hpp"
#include "decoder/causal_lm.hpp"
#include "decoder/heads.hpp"

#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/compact.hpp>
#include <prune/models/decoder/unit_scores.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/masks.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace prune_examples::prune_compact {

using namespace prune;

/// The unit masks of --mask (`mask`, read from `mask_file`, named in shape errors) and
/// --remove-layers for `w`.
decoder::unit_masks masks_of(const std::optional<structure_mask>& mask, const std::string& mask_file, const std::vector<int>& layers,
                             const decoder::weights& w) {
    decoder::unit_masks m;
    if (mask) {
        try {
            m = decoder::unit_masks::from_mask(*mask, w);
        } catch (const shape_error& e) {
            throw shape_error("structure mask '" + mask_file + "': " + e.what());
        }
    }
    if (layers.empty()) return m;
    m.layers.assign(w.layers.size(), 1.0f);
    std::set<int> seen;
    for (const int l : layers) {
        if (l < 0 || static_cast<std::size_t>(l) >= w.layers.size()) {
            throw value_error("--remove-layers " + std::to_string(l) + " (expected 0.." + std::to_string(w.layers.size() - 1) +
                              ", the model's layers)");
        }
        if (!seen.insert(l).second) throw value_error("--remove-layers names layer " + std::to_string(l) + " twice");
        m.layers[static_cast<std::size_t>(l)] = 0.0f;
    }
    return m;
}

/// --remove-layers-by-bi and the data it reads.
struct by_bi_job {
    int count = 0;                ///< N; 0 when the flag is absent
    std::string data;             ///< --data
    std::optional<int> context;   ///< --context (.txt data)
    std::size_t batch_size = 8;   ///< --batch-size
    int threads = 0;              ///< --threads (0 = every core)
};

/// value_error for flags that do not go with --remove-layers-by-bi (or need it), before anything is read.
void check_by_bi_flags(const CLI::App& app, const by_bi_job& job, const std::vector<int>& layers) {
    const bool by_bi = app.count("--remove-layers-by-bi") > 0;
    if (by_bi && !layers.empty()) {
        throw value_error("--remove-layers-by-bi with --remove-layers (expected one of them: BI chooses the layers)");
    }
    if (by_bi && job.data.empty()) throw value_error("--remove-layers-by-bi without --data (expected --data F: BI is measured on it)");
    if (!by_bi) {
        for (const char* flag : {"--data", "--context", "--batch-size", "--threads"}) {
            if (app.count(flag) > 0) throw value_error(std::string(flag) + " without --remove-layers-by-bi (expected it: only BI reads data)");
        }
    }
    if (by_bi && job.batch_size == 0) throw value_error("--batch-size 0 (expected >= 1)");
}

/// The `n` layers of lowest `bi`, equal scores lower index first, in increasing index order;
/// value_error at a non-finite score (nothing is ranked by it).
std::vector<int> lowest_layers(const std::vector<double>& bi, int n) {
    for (std::size_t l = 0; l < bi.size(); ++l) {
        if (!std::isfinite(bi[l])) {
            throw value_error("the Block Influence of layer " + std::to_string(l) + " is " + prune_cli::non_finite_text(bi[l]) +
                              " (expected finite scores: the forward pass overflows with these weights; none is used)");
        }
    }
    std::vector<int> order(bi.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return bi[static_cast<std::size_t>(a)] < bi[static_cast<std::size_t>(b)]; });
    order.resize(static_cast<std::size_t>(n));
    std::sort(order.begin(), order.end());
    return order;
}

/// The layers --remove-layers-by-bi removes from `w` (under --mask's gates when given) and
/// report.json's content: block_influence per layer, removed_layers, and what was measured.
std::vector<int> layers_by_bi(const by_bi_job& job, const std::string& model, const std::optional<structure_mask>& mask,
                              const std::string& mask_file, const decoder::weights& w, io::json& report) {
    const auto L = static_cast<int>(w.layers.size());
    if (job.count < 1 || job.count >= L) {
        throw value_error("--remove-layers-by-bi " + std::to_string(job.count) + " (expected 1.." + std::to_string(L - 1) +
                          ": at least one of the model's " + std::to_string(L) + " layers must stay)");
    }
    const auto rows = prune_lm::read_sequences(job.data, model, w.cfg, job.context);
    const prune_lm::structure_file structure = mask ? prune_lm::structure_of(*mask, w, mask_file) : prune_lm::structure_file{};
    const auto& gate = structure.gate;
    std::optional<decoder::weights> masked;  // a copy only when MLP channels are removed
    if (!structure.channels.empty()) decoder::apply_element_masks(masked.emplace(w), structure.channels);
    const std::vector<double> bi = decoder::block_influence(masked ? *masked : w, rows, gate ? &*gate : nullptr, job.batch_size, job.threads);
    const std::vector<int> removed = lowest_layers(bi, job.count);
    std::size_t tokens = 0;
    for (const auto& r : rows) tokens += r.size();
    report["block_influence"] = bi;
    report["removed_layers"] = removed;
    report["data"] = job.data;
    report["sequences"] = rows.size();
    report["tokens"] = tokens;
    const std::optional<int> window = prune_lm::window_of(job.data, w.cfg, job.context);
    report["context"] = window ? io::json(*window) : io::json(nullptr);
    report["mask"] = mask_file.empty() ? io::json(nullptr) : io::json(mask_file);
    std::fprintf(stderr, "prune-compact: Block Influence %s; removing layers %s\n", report["block_influence"].dump().c_str(),
                 report["removed_layers"].dump().c_str());
    return removed;
}

/// Parameters of a model.
double parameters_of(decoder::weights& w) {
    double n = 0;
    for (const auto& p : decoder::parameters(w)) n += static_cast<double>(p.size());
    return n;
}

/// The job: build/bin/prune-compact's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    CLI::App app{"prune-compact: remove masked heads, K/V groups, MLPs, MLP channels and layers from a causal LM", "prune-compact"};
    std::string model, mask_file, out;
    std::vector<int> layers;
    by_bi_job bi;
    app.add_option("--model", model, "causal-LM directory (config.json model_type llama or gpt2)")->required();
    app.add_option("--mask", mask_file, "structure mask JSON: heads, kv_groups, mlps, mlp_channels (0 = remove)");
    app.add_option("--remove-layers", layers, "layers to remove, e.g. 3,5 (indices in --model)")->delimiter(',');
    app.add_option("--remove-layers-by-bi", bi.count, "remove the N layers of lowest Block Influence on --data (ShortGPT)");
    app.add_option("--data", bi.data, "--remove-layers-by-bi: data (JSON Lines input_ids / text, or .txt)");
    app.add_option("--context", bi.context, "--remove-layers-by-bi, .txt data: window in tokens (default max_position_embeddings)");
    app.add_option("--batch-size", bi.batch_size, "--remove-layers-by-bi: sequences per pass")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--threads", bi.threads, "--remove-layers-by-bi: threads (0 = every core; at most 256)")->check(prune_cli::threads_flag());
    app.add_option("--out", out, "model directory to write (whole, atomically)")->required();
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model}, {"--mask", mask_file}, {"--data", bi.data}}, {{"--out", out}});
        check_by_bi_flags(app, bi, layers);
        const bool by_bi = app.count("--remove-layers-by-bi") > 0;
        if (mask_file.empty() && layers.empty() && !by_bi) {
            throw value_error("nothing to remove (expected --mask, --remove-layers or --remove-layers-by-bi, or --mask with either)");
        }
        if (!prune_lm::is_causal_lm(model)) {
            throw value_error("--model '" + model + "' is not a causal LM (expected a directory whose config.json has "
                              "model_type llama or gpt2)");
        }
        decoder::load_report loaded;
        decoder::weights w = decoder::load_model(model, &loaded);
        io::json report;
        std::optional<structure_mask> mask;
        if (!mask_file.empty()) mask = io::read_structure_mask(mask_file);
        if (by_bi) layers = layers_by_bi(bi, model, mask, mask_file, w, report);
        const decoder::unit_masks m = masks_of(mask, mask_file, layers, w);
        decoder::weights small = decoder::compact(w, m);
        io::output_directory staging(out);
        prune_lm::write_model_directory(small, staging.path(), loaded.dtype, model);
        if (by_bi) prune_lm::write_text(staging.path() / "report.json", report.dump(1) + "\n");
        staging.commit();
        std::fprintf(stderr, "prune-compact: %zu -> %zu layers, %.0f -> %.0f parameters (%.1f%%); wrote %s\n", w.layers.size(),
                     small.layers.size(), parameters_of(w), parameters_of(small), 100.0 * parameters_of(small) / parameters_of(w),
                     out.c_str());
    });
}

}  // namespace prune_examples::prune_compact
