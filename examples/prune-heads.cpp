// prune-heads: s-pruning (Prasanna et al.): iteratively masks the least important heads and
// MLPs of a fine-tuned BERT while the dev metric stays >= threshold x the full model's
// (prune/spruning.hpp, docs/importance.md). Importance is recomputed under the current mask
// before every step; phases: heads + MLPs, heads only at half the step, MLPs only.
//   prune-heads --model DIR --data DEV [--threshold 0.9] [--heads-step 0.1] [--mlps-step 1]
//               [--abs per-example] [--normalize layer+global] [--batch-size 32] [--threads 0] --out DIR
// DIR (written whole, atomically): masks.json (the last passing structure mask), history.json
// (every evaluated mask with its phase, counts, metric and verdict) and model/ (the model with
// the masked heads and MLPs physically removed).
// On a causal LM (config.json model_type llama or gpt2; data as prune-eval's, [--context N] for
// a .txt file): query heads, or whole K/V groups with --unit kv-groups, and MLPs; a mask passes
// while perplexity <= full perplexity / threshold (examples/decoder/heads.hpp).
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "decoder/causal_lm.hpp"
#include "decoder/heads.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/dataset.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/finetune.hpp>
#include <prune/models/bert/importance.hpp>
#include <prune/models/bert/pruning.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>
#include <prune/spruning.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>


int main(int argc, char** argv) {
    prune::nn::blas_single_threaded();  // the pool does the threading (no re-exec: OpenBLAS as loaded)
    CLI::App app("prune-heads: s-pruning of a fine-tuned BERT or a causal LM by head and MLP importance", "prune-heads");
    std::string model, data, out, abs_mode = "per-example", normalize = "layer+global", unit;
    std::optional<int> context;
    prune::spruning_options options;
    std::size_t batch_size = 32;
    int threads = 0;
    app.add_option("--model", model, "fine-tuned model directory")->required();
    app.add_option("--data", data, "dev set (JSON Lines): importance and the metric")->required();
    app.add_option("--threshold", options.ratio, "keep while metric >= threshold x baseline")->capture_default_str();
    app.add_option("--heads-step", options.heads_fraction, "phase-1 heads per step, fraction of all heads")
        ->capture_default_str();
    app.add_option("--mlps-step", options.mlps_per_step, "phase-1 MLPs per step")
        ->check(prune_cli::unsigned_integer())->capture_default_str();
    app.add_option("--abs", abs_mode, "importance: per-example, per-batch, cumulative")->capture_default_str();
    app.add_option("--normalize", normalize, "importance normalisation before ranking")->capture_default_str();
    app.add_option("--batch-size", batch_size, "sequences per pass")->check(prune_cli::unsigned_integer())->capture_default_str();
    app.add_option("--threads", threads, "threads (0 = every core; at most 256)")->check(prune_cli::threads_flag());
    app.add_option("--unit", unit, "causal LM: heads (query heads, default) or kv-groups (whole K/V groups)");
    app.add_option("--context", context, "causal LM, .txt data: window in tokens (default max_position_embeddings)");
    app.add_option("--out", out, "output directory (masks.json, history.json, model/)")->required();
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model}, {"--data", data}}, {{"--out", out}});
        prune_cli::check_flag("--threshold", options.ratio, prune_cli::at_least(0));
        prune_cli::check_flag("--heads-step", options.heads_fraction, prune_cli::interval{0, 1, true, false});
        if (options.mlps_per_step == 0) throw prune::value_error("--mlps-step 0 (expected >= 1)");
        if (batch_size == 0) throw prune::value_error("--batch-size 0 (expected >= 1)");
        const auto mode = prune::importance::parse_absolute_value(abs_mode);
        const auto how = prune::importance::normalization::parse(normalize);
        prune::io::remove_staging_on_signal();
        if (prune_lm::is_causal_lm(model)) {
            if (!unit.empty() && unit != "heads" && unit != "kv-groups")
                throw prune::value_error("--unit '" + unit + "' (expected heads or kv-groups)");
            prune_lm::heads_job job{model, data, out, context, unit == "kv-groups", options, mode, how,
                                    abs_mode, normalize, batch_size, threads};
            prune_lm::run_heads(job);
            return;
        }
        prune::io::output_directory staging(out);
        prune::bert::weights w = prune::bert::load_model(model);
        if (!unit.empty() || context) {
            throw prune::value_error("--unit and --context apply to a causal LM ('" + model +
                                     "' is read as a BERT: its config.json's model_type is neither llama nor gpt2)");
        }
        const auto& cfg = w.cfg;
        const auto dev = prune::bert::load_sequences(data, cfg, model);
        const std::span<const prune::bert::labeled_sequence> dev_span(dev);
        // Start from what is present (heads already removed from the model count as pruned).
        const std::vector<std::size_t> heads(static_cast<std::size_t>(cfg.num_hidden_layers),
                                             static_cast<std::size_t>(cfg.num_attention_heads));
        prune::structure_mask start{prune::group_mask(heads), prune::group_mask::uniform(heads.size(), 1)};
        for (std::size_t l = 0; l < w.layers.size(); ++l) {
            for (std::size_t h = 0; h < heads[l]; ++h) start.heads.set(l, h, false);
            for (int id : w.layers[l].head_ids) start.heads.set(l, static_cast<std::size_t>(id), true);
            start.mlps.set(l, 0, w.layers[l].ffn() > 0);
        }
        prune::bert::importance_workspace<float> ws(threads);
        int evaluations = 0;
        auto importance = [&](const prune::structure_mask& mask) {
            prune::importance::michel_accumulator acc(heads, mode);
            prune::bert::accumulate_importance(w, dev_span, mask, acc, ws, batch_size);
            const auto raw = acc.scores(prune::importance::normalization::parse("none"));  // normalising hides NaN
            prune_cli::refuse_non_finite_scores(raw.heads, raw.mlps);
            return acc.scores(how);
        };
        auto evaluate = [&](const prune::structure_mask& mask) {
            const double metric = prune::bert::evaluate(w, dev_span, mask, batch_size, threads);
            std::fprintf(stderr, "prune-heads: evaluation %d: %zu heads, %zu MLPs kept: metric %.4f\n", ++evaluations,
                         mask.heads.count_kept(), mask.mlps.count_kept(), metric);
            return metric;
        };
        const auto result = prune::s_prune(start, importance, evaluate, options);
        std::fprintf(stderr, "prune-heads: baseline %.4f; kept %zu of %zu heads and %zu of %zu MLPs\n", result.baseline,
                     result.mask.heads.count_kept(), result.mask.heads.total(), result.mask.mlps.count_kept(),
                     result.mask.mlps.total());

        prune::io::json history = prune::io::json::array();
        for (const auto& r : result.history) {
            history.push_back({{"phase", r.phase}, {"step", r.step}, {"heads_kept", r.heads_kept},
                               {"mlps_kept", r.mlps_kept}, {"metric", r.metric}, {"passed", r.passed},
                               {"heads", r.mask.heads.to_rows()}, {"mlps", r.mask.mlps.to_rows()}});
        }
        prune::io::json summary = {{"baseline", result.baseline}, {"threshold", options.ratio},
                                   {"heads_step", options.heads_fraction}, {"mlps_step", options.mlps_per_step},
                                   {"abs", abs_mode}, {"normalize", normalize}, {"history", history}};
        {
            std::ofstream f(staging.path() / "history.json");
            f << summary.dump(1) << "\n";
            if (!f) throw prune::io_error("cannot write " + (staging.path() / "history.json").string());
        }
        {
            std::ofstream f(staging.path() / "masks.json");
            f << prune::io::structure_mask_json(result.mask);
            if (!f) throw prune::io_error("cannot write " + (staging.path() / "masks.json").string());
        }
        prune::bert::prune_structure(w, result.mask);
        prune::bert::save_options save;
        save.copy_vocab_from = model;
        prune::bert::save_model(w, staging.path() / "model", save);
        staging.commit();
    });
}
