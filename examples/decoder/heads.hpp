// examples/decoder/heads.hpp: what prune-heads does on a causal-LM directory -- s-pruning of
// query heads (or, with --unit kv-groups, whole K/V groups; with --unit mlp-channels, single MLP
// channels, Taylor scores only) and MLPs, ranked by Michel et al.'s
// gate importance (or, with --score taylor, first-order Taylor scores |sum W dL/dW| of each
// unit's weights, unnormalised) recomputed under the current mask before every step (the phases of
// prune/spruning.hpp), stopping on perplexity: a mask passes while
//   perplexity(mask) <= perplexity(full) / threshold        (threshold 0.9 by default)
// which is s_prune's "metric >= threshold x baseline" with metric = 1 / perplexity.
//
// The output directory (written whole, atomically): history.json (every evaluated mask with
// its phase, counts, perplexity and verdict), masks.json (the last passing structure mask;
// under --unit kv-groups its kv_groups rows say which groups are gone, under --unit
// mlp-channels its mlp_channels rows which channels) and model/ (the pruned
// model with the masked units physically removed, in the input's dtype, plus the tokenizer
// files). Compaction keeps the same number of query heads in every K/V group of a layer (a
// stock config has one group size): where the mask leaves groups of unequal sizes, the smaller
// groups keep some of their masked heads with o_proj's columns zeroed -- the same function,
// a little larger; history.json says how many heads were kept that way.
#pragma once

#include "causal_lm.hpp"

#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/compact.hpp>
#include <prune/models/decoder/importance.hpp>
#include <prune/models/decoder/unit_scores.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/spruning.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace prune_lm {

/// What the search's "heads" rows rank (--unit).
enum class search_unit {
    heads,        ///< query heads
    kv_groups,    ///< whole K/V groups
    mlp_channels  ///< single MLP channels (Taylor scores; a removed channel's down-projection input is zeroed)
};

/// The unit's name in messages ("heads", "K/V groups", "MLP channels").
inline const char* unit_label(search_unit u) {
    return u == search_unit::heads ? "heads" : u == search_unit::kv_groups ? "K/V groups" : "MLP channels";
}

/// Everything prune-heads needs on a causal LM.
struct heads_job {
    std::string model;                 ///< causal-LM directory
    std::string data;                  ///< importance and perplexity data (prune-eval's formats)
    std::string out;                   ///< output directory
    std::optional<int> context;        ///< window of a .txt data file
    search_unit unit = search_unit::heads;  ///< what the search's "heads" rows rank
    bool taylor = false;               ///< rank by first-order Taylor scores instead of Michel importance
    prune::spruning_options options;   ///< threshold and step sizes
    prune::importance::absolute_value mode = prune::importance::absolute_value::per_example;  ///< --abs
    prune::importance::normalization how;  ///< --normalize
    std::string abs_name, normalize_name;  ///< as given, for history.json
    std::size_t batch_size = 8;        ///< sequences per pass
    int threads = 0;                   ///< 0 = every core
};

/// The search's starting mask: every unit present kept (query heads, K/V groups or MLP
/// channels), MLPs kept where the model still has one.
inline prune::structure_mask start_mask(const prune::decoder::weights& w, search_unit unit) {
    std::vector<std::size_t> units;
    for (const auto& L : w.layers)
        units.push_back(static_cast<std::size_t>(unit == search_unit::heads ? L.q_heads : unit == search_unit::kv_groups ? L.kv_heads : L.ffn));
    prune::structure_mask m{prune::group_mask(units), prune::group_mask::uniform(units.size(), 1)};
    for (std::size_t l = 0; l < w.layers.size(); ++l) m.mlps.set(l, 0, w.layers[l].ffn > 0);
    return m;
}

/// The model's structure mask of a search mask: its head rows are query heads, K/V groups
/// (query heads all kept, gated through their group) or MLP channels (query heads all kept).
inline prune::structure_mask model_mask(const prune::structure_mask& search, const prune::decoder::weights& w, search_unit unit) {
    if (unit == search_unit::heads) return search;
    std::vector<std::size_t> heads;
    for (const auto& L : w.layers) heads.push_back(static_cast<std::size_t>(L.q_heads));
    if (unit == search_unit::kv_groups) return {prune::group_mask(heads), search.mlps, search.heads};
    return {prune::group_mask(heads), search.mlps, {}, search.heads};
}

/// The model a search mask evaluates: `w` itself, or (MLP channels removed) a copy with their
/// down-projection inputs zeroed; and the mask's gates.
struct masked_model {
    std::optional<prune::decoder::weights> copy;  ///< set when channels are removed
    prune::decoder::gates gate;
    /// The weights to run.
    [[nodiscard]] const prune::decoder::weights& of(const prune::decoder::weights& w) const { return copy ? *copy : w; }
};

/// The model and gates of `mask` (a search mask) on `w`.
inline masked_model mask_model(const heads_job& job, const prune::decoder::weights& w, const prune::structure_mask& mask) {
    const prune::structure_mask m = model_mask(mask, w, job.unit);
    masked_model out{std::nullopt, prune::decoder::gates::from_mask(m, w)};
    const prune::io::element_masks channels = prune::decoder::channel_element_masks(w.cfg, m.mlp_channels);
    if (!channels.empty()) prune::decoder::apply_element_masks(out.copy.emplace(w), channels);
    return out;
}

/// First-order Taylor scores of the search's units under `mask`, unnormalised.
inline prune::importance::michel_scores taylor_units(const heads_job& job, const prune::decoder::weights& w,
                                                     const std::vector<std::vector<std::int32_t>>& rows,
                                                     const prune::decoder::gates& g) {
    auto t = prune::decoder::taylor_importance(w, rows, &g, job.batch_size, job.threads);
    auto& units = job.unit == search_unit::heads ? t.heads : job.unit == search_unit::kv_groups ? t.kv_groups : t.channels;
    prune_cli::refuse_non_finite_scores(units, t.mlps, job.unit == search_unit::heads ? "head" : job.unit == search_unit::kv_groups ? "K/V group" : "MLP channel");
    return {std::move(units), std::move(t.mlps)};
}

/// Importance of the search's units under `mask` (heads rows: query heads or K/V groups):
/// Michel's, normalised as --normalize says, or first-order Taylor scores.
inline prune::importance::michel_scores unit_importance(const heads_job& job, const prune::decoder::weights& w,
                                                        const std::vector<std::vector<std::int32_t>>& rows,
                                                        const prune::structure_mask& mask,
                                                        prune::decoder::importance_workspace& ws) {
    const masked_model m = mask_model(job, w, mask);
    if (job.taylor) return taylor_units(job, m.of(w), rows, m.gate);
    const auto& g = m.gate;
    const bool kv_units = job.unit == search_unit::kv_groups;
    prune::decoder::importance_accumulators acc(w, job.mode);
    prune::decoder::accumulate_importance(w, rows, &g, acc, ws, job.batch_size);
    const auto raw = prune::decoder::scores_of(acc, prune::importance::normalization::parse("none"));  // min-max hides NaN
    prune_cli::refuse_non_finite_scores(kv_units ? raw.kv_groups : raw.heads, raw.mlps, kv_units ? "K/V group" : "head");
    auto scores = prune::decoder::scores_of(acc, job.how);
    return {kv_units ? std::move(scores.kv_groups) : std::move(scores.heads), std::move(scores.mlps)};
}

/// Perplexity of `rows` under `mask`.
inline double masked_perplexity(const heads_job& job, const prune::decoder::weights& w,
                                const std::vector<std::vector<std::int32_t>>& rows, const prune::structure_mask& mask) {
    const masked_model m = mask_model(job, w, mask);
    return perplexity(m.of(w), rows, &m.gate, job.batch_size, job.threads, job.data, job.context)["perplexity"].get<double>();
}

/// Zeroes o_proj's columns of query head h of layer L (the head then adds nothing, as gated off).
inline void zero_head_output(prune::decoder::layer_weights& L, int hidden, int h) {
    const auto width = static_cast<std::size_t>(L.attention_width()), d = static_cast<std::size_t>(L.head_dim);
    for (std::size_t row = 0; row < static_cast<std::size_t>(hidden); ++row) {
        float* r = L.out.data() + row * width + static_cast<std::size_t>(h) * d;
        std::fill(r, r + d, 0.0f);
    }
}

/// Query heads kept in K/V group g of a layer (`heads`: its row of the unit masks).
template <class Row>
int kept_in_group(const Row& heads, int group, int g) {
    int c = 0;
    for (int i = 0; i < group; ++i) c += heads[static_cast<std::size_t>(g * group + i)] ? 1 : 0;
    return c;
}

/// Makes `units` (from units_of) honourable by compaction: in a layer whose surviving K/V groups
/// keep unequal numbers of query heads, the smaller groups keep their first masked heads again,
/// zeroed in `w`'s o_proj instead, up to the largest group's count. Returns the heads kept so.
inline std::size_t uniform_groups(prune::decoder::weights& w, prune::decoder::unit_masks& units) {
    std::size_t zeroed = 0;
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        auto& L = w.layers[l];
        auto& heads = units.heads[l];
        const int group = L.q_heads / L.kv_heads;
        int most = 0;
        for (int g = 0; g < L.kv_heads; ++g) most = std::max(most, kept_in_group(heads, group, g));
        for (int g = 0; g < L.kv_heads; ++g) {
            int c = kept_in_group(heads, group, g);
            for (int i = 0; i < group && c > 0 && c < most; ++i) {
                const auto h = static_cast<std::size_t>(g * group + i);
                if (heads[h]) continue;
                heads[h] = 1;
                zero_head_output(L, w.cfg.hidden_size, static_cast<int>(h));
                ++c;
                ++zeroed;
            }
        }
    }
    return zeroed;
}

/// The unit masks of the model's structure mask: a K/V group masked, or whose query heads are
/// all masked, goes whole with its heads; a masked MLP goes whole.
inline prune::decoder::unit_masks units_of(const prune::structure_mask& mask, const prune::decoder::weights& w) {
    prune::decoder::unit_masks u;
    for (std::size_t l = 0; l < w.layers.size(); ++l) {
        const auto& L = w.layers[l];
        const int group = L.q_heads / L.kv_heads;
        auto& heads = u.heads.emplace_back();
        auto& groups = u.kv_groups.emplace_back();
        for (int h = 0; h < L.q_heads; ++h) heads.push_back(mask.heads.kept(l, static_cast<std::size_t>(h)) ? 1 : 0);
        for (int g = 0; g < L.kv_heads; ++g) {
            const bool kept = (mask.kv_groups.layers() == 0 || mask.kv_groups.kept(l, static_cast<std::size_t>(g))) &&
                              kept_in_group(heads, group, g) > 0;
            groups.push_back(kept ? 1 : 0);
            if (!kept)
                for (int i = 0; i < group; ++i) heads[static_cast<std::size_t>(g * group + i)] = 0;
        }
        u.mlps.push_back(mask.mlps.kept(l, 0) ? 1 : 0);
    }
    u.channels = prune::decoder::flag_rows(mask.mlp_channels);
    return u;
}

/// The structure-mask key of the search's units ("heads", "kv_groups", "mlp_channels").
inline const char* unit_key(search_unit u) {
    return u == search_unit::heads ? "heads" : u == search_unit::kv_groups ? "kv_groups" : "mlp_channels";
}

/// The --unit value of the search's units.
inline const char* unit_flag(search_unit u) {
    return u == search_unit::heads ? "heads" : u == search_unit::kv_groups ? "kv-groups" : "mlp-channels";
}

/// history.json: the settings, the full model's perplexity and limit, and every evaluated mask.
inline prune::io::json history_json(const heads_job& job, const prune::spruning_result& result, const prune::decoder::weights& w) {
    prune::io::json history = prune::io::json::array();
    for (const auto& r : result.history) {
        const auto m = model_mask(r.mask, w, job.unit);
        prune::io::json row = {{"phase", r.phase}, {"step", r.step}, {"units_kept", r.heads_kept}, {"mlps_kept", r.mlps_kept},
                               {"perplexity", 1.0 / r.metric}, {"passed", r.passed}, {"reused", r.reused},
                               {"mlps", m.mlps.to_rows()}};
        row[unit_key(job.unit)] = r.mask.heads.to_rows();
        history.push_back(std::move(row));
    }
    return {{"unit", unit_flag(job.unit)}, {"score", job.taylor ? "taylor" : "michel"}, {"perplexity_full", 1.0 / result.baseline},
            {"perplexity_limit", 1.0 / (job.options.ratio * result.baseline)}, {"threshold", job.options.ratio},
            {"heads_step", job.options.heads_fraction}, {"mlps_step", job.options.mlps_per_step}, {"abs", job.abs_name},
            {"normalize", job.normalize_name}, {"sequences", 0}, {"history", std::move(history)}};
}

/// Writes model/ into `dir`: `w` with the units `mask` prunes removed (uniform K/V groups, see
/// uniform_groups), in `dtype`, with the input directory's tokenizer files. Returns the heads
/// kept zeroed.
inline std::size_t write_compacted(const heads_job& job, prune::decoder::weights w, const prune::structure_mask& mask,
                                   prune::io::dtype dtype, const std::filesystem::path& dir) {
    prune::decoder::unit_masks units = units_of(mask, w);
    const std::size_t zeroed = uniform_groups(w, units);
    const prune::decoder::weights small = prune::decoder::compact(w, units);
    write_model_directory(small, dir, dtype, job.model);
    return zeroed;
}

/// A text file in the staging directory.
inline void write_text(const std::filesystem::path& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
    if (!f) throw prune::io_error("cannot write " + path.string());
}

/// prune-heads on a causal LM (see the header comment).
inline void run_heads(const heads_job& job) {
    prune::io::output_directory staging(job.out);
    prune::decoder::load_report loaded;
    const prune::decoder::weights w = prune::decoder::load_model(job.model, &loaded);
    const auto rows = read_sequences(job.data, job.model, w.cfg, job.context);
    prune::decoder::importance_workspace ws(job.threads);
    int evaluations = 0;
    auto importance = [&](const prune::structure_mask& m) { return unit_importance(job, w, rows, m, ws); };
    auto evaluate = [&](const prune::structure_mask& m) {
        const double ppl = masked_perplexity(job, w, rows, m);
        std::fprintf(stderr, "prune-heads: evaluation %d: %zu %s, %zu MLPs kept: perplexity %.4f\n", ++evaluations,
                     m.heads.count_kept(), unit_label(job.unit), m.mlps.count_kept(), ppl);
        return 1.0 / ppl;
    };
    const auto result = prune::s_prune(start_mask(w, job.unit), importance, evaluate, job.options);
    const prune::structure_mask kept = model_mask(result.mask, w, job.unit);
    prune::io::json summary = history_json(job, result, w);
    summary["sequences"] = rows.size();
    summary["heads_zeroed_not_removed"] = write_compacted(job, w, kept, loaded.dtype, staging.path() / "model");
    double final_metric = result.baseline;
    for (const auto& r : result.history)
        if (r.passed && r.mask == result.mask) final_metric = r.metric;
    summary["perplexity"] = 1.0 / final_metric;
    std::fprintf(stderr, "prune-heads: perplexity %.4f (full) -> %.4f; kept %zu of %zu %s and %zu of %zu MLPs\n",
                 1.0 / result.baseline, 1.0 / final_metric, result.mask.heads.count_kept(),
                 result.mask.heads.total(), unit_label(job.unit), result.mask.mlps.count_kept(),
                 result.mask.mlps.total());
    write_text(staging.path() / "history.json", summary.dump(1) + "\n");
    write_text(staging.path() / "masks.json", prune::io::structure_mask_json(kept));
    staging.commit();
}

}  // namespace prune_lm
