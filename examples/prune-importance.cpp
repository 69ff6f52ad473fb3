// prune-importance: Michel et al.'s head importance, extended to MLPs, of a fine-tuned BERT
// over a data file: I[l][h] = E |dL/dxi[l][h]| (prune/models/bert/importance.hpp, docs/importance.md).
//   prune-importance --model DIR --data F [--mask F] [--abs per-example|per-batch|cumulative]
//                    [--normalize none|layer|global|layer+global] [--batch-size N] [--threads N] [--json OUT]
// OUT: {"heads": L x H, "mlps": L, "abs", "normalize", "examples", "tokens"}; without --json a
// table goes to stderr. `--normalize none` is the raw expectation (mean over examples or batches);
// prefix "tokens+" to divide by the number of non-padding tokens instead (HF's code).
// On a causal LM (model_type llama or gpt2; data as prune-eval's): heads (L x query heads), mlps
// and, under grouped-query attention, kv_groups (L x K/V heads); L(x) = the sequence's mean NLL,
// tokens = predicted tokens (prune/models/decoder/importance.hpp).
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/dataset.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/importance.hpp>
#include <prune/models/decoder/importance.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>


int main(int argc, char** argv) {
    prune::nn::blas_single_threaded();  // the pool does the threading (no re-exec: OpenBLAS as loaded)
    CLI::App app("prune-importance: Michel head + MLP importance (E|dL/dgate|) of a BERT over a data file",
                 "prune-importance");
    std::string model, data, mask_file, abs_mode = "per-example", normalize = "none", json_out;
    std::size_t batch_size = 32;
    int threads = 0;
    app.add_option("--model", model, "model directory (config.json + model.safetensors)")->required();
    app.add_option("--data", data, "JSON Lines data file")->required();
    app.add_option("--mask", mask_file, "structure mask JSON (masked heads / MLPs gated to 0)");
    app.add_option("--abs", abs_mode, "where |.| is taken: per-example, per-batch, cumulative")->capture_default_str();
    app.add_option("--normalize", normalize, "none, layer, global, layer+global (tokens+... divides by tokens)")
        ->capture_default_str();
    app.add_option("--batch-size", batch_size, "sequences per pass (the batch for --abs per-batch)")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--threads", threads, "threads (0 = every core; at most 256)")->check(prune_cli::threads_flag());
    app.add_option("--json", json_out, "write the scores as JSON here");
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model}, {"--data", data}, {"--mask", mask_file}}, {{"--json", json_out}});
        const auto mode = prune::importance::parse_absolute_value(abs_mode);
        const auto how = prune::importance::normalization::parse(normalize);
        if (batch_size == 0) throw prune::value_error("--batch-size must be > 0");
        if (prune_lm::is_causal_lm(model)) {
            const prune::decoder::weights lm = prune_lm::load_model(model, "");
            const auto lm_gates = prune_lm::load_gates(mask_file, lm);
            const auto rows = prune_lm::read_sequences(data, model, lm.cfg, std::nullopt);
            prune::decoder::importance_accumulators acc(lm, mode);
            prune::decoder::importance_workspace ws(threads);
            prune::decoder::accumulate_importance(lm, rows, lm_gates ? &*lm_gates : nullptr, acc, ws, batch_size);
            const auto raw = prune::decoder::scores_of(acc, prune::importance::normalization::parse("none"));
            prune_cli::refuse_non_finite_scores(raw.heads, raw.mlps);
            prune_cli::refuse_non_finite_scores(raw.kv_groups, {}, "K/V group");
            const prune::decoder::importance_scores scores = prune::decoder::scores_of(acc, how);
            prune::io::json out;
            out["heads"] = scores.heads;
            out["mlps"] = scores.mlps;
            if (prune_lm::grouped(lm)) out["kv_groups"] = scores.kv_groups;
            out["abs"] = abs_mode;
            out["normalize"] = normalize;
            out["examples"] = rows.size();
            out["tokens"] = acc.heads.tokens();
            std::fprintf(stderr, "prune-importance: %zu sequences, %zu layers, --abs %s\n", rows.size(), lm.layers.size(),
                         abs_mode.c_str());
            if (!json_out.empty()) prune::io::write_file_atomically(json_out, out.dump() + "\n");
            else std::fprintf(stderr, "%s\n", out.dump(1).c_str());
            return;
        }
        const prune::bert::weights w = prune::bert::load_model(model);
        const auto& cfg = w.cfg;
        const std::vector<std::size_t> heads(static_cast<std::size_t>(cfg.num_hidden_layers),
                                             static_cast<std::size_t>(cfg.num_attention_heads));
        prune::structure_mask mask{prune::group_mask(heads), prune::group_mask::uniform(heads.size(), 1)};
        if (!mask_file.empty()) mask = prune::io::read_structure_mask(mask_file, heads);
        const auto sequences = prune::bert::load_sequences(data, cfg, model);
        std::fprintf(stderr, "prune-importance: %zu examples, %d layers x %d heads, --abs %s\n", sequences.size(),
                     cfg.num_hidden_layers, cfg.num_attention_heads, abs_mode.c_str());
        prune::importance::michel_accumulator acc(heads, mode);
        prune::bert::importance_workspace<float> ws(threads);
        prune::bert::accumulate_importance(w, std::span<const prune::bert::labeled_sequence>(sequences), mask, acc, ws,
                                           batch_size);
        const auto raw = acc.scores(prune::importance::normalization::parse("none"));  // min-max turns NaN into 0
        prune_cli::refuse_non_finite_scores(raw.heads, raw.mlps);
        const auto scores = acc.scores(how);
        if (!json_out.empty()) {
            prune::io::json out;
            out["heads"] = scores.heads;
            out["mlps"] = scores.mlps;
            out["abs"] = abs_mode;
            out["normalize"] = normalize;
            out["examples"] = sequences.size();
            out["tokens"] = acc.tokens();
            prune::io::write_file_atomically(json_out, out.dump() + "\n");
        } else {
            for (std::size_t l = 0; l < scores.heads.size(); ++l) {
                std::fprintf(stderr, "layer %2zu:", l);
                for (double v : scores.heads[l]) std::fprintf(stderr, " %.4g", v);
                std::fprintf(stderr, " | mlp %.4g\n", scores.mlps[l]);
            }
        }
    });
}
