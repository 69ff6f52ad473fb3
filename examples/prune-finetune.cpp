// prune-finetune: fine-tunes a BERT sequence classifier (prune/models/bert/finetune.hpp): AdamW
// (eps 1e-8, HF's bias / LayerNorm weight-decay exclusion), linear decay with optional
// warm-up, clipping at a global norm, seeded and reproducible; optionally from pre-trained
// weights under masks (--fresh-classifier: rewinding with a new classifier head).
//   prune-finetune --model DIR --train F --dev F [--mask F] [--element-mask F] [--epochs 3]
//                  [--lr 2e-5] [--batch-size 32] [--warmup 0] [--weight-decay 0] [--seed 42] [--threads 0]
//                  [--fresh-classifier --num-labels N] [--json REPORT] --out DIR
// Structure masks (heads / MLPs) are enforced during training by gates at 0 and the saved
// model has them physically removed; element masks keep pruned weights at exactly 0.
// OUT is a model directory (written atomically); REPORT has per-epoch loss and dev metric.
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/dataset.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/finetune.hpp>
#include <prune/models/bert/pruning.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>


int main(int argc, char** argv) {
    prune::nn::blas_single_threaded();  // the pool does the threading (no re-exec: OpenBLAS as loaded)
    CLI::App app("prune-finetune: fine-tunes a BERT classifier (AdamW, linear decay, clipping), optionally under masks",
                 "prune-finetune");
    std::string model, train_file, dev_file, mask_file, element_mask_file, out, report_file;
    prune::bert::finetune_options options;
    bool fresh = false;
    int num_labels = 0;
    app.add_option("--model", model, "model directory (pre-trained or fine-tuned)")->required();
    app.add_option("--train", train_file, "training set (JSON Lines)")->required();
    app.add_option("--dev", dev_file, "dev set (JSON Lines), evaluated after every epoch")->required();
    app.add_option("--mask", mask_file, "structure mask JSON (heads / MLPs to remove)");
    app.add_option("--element-mask", element_mask_file, "element mask safetensors (U8, 1 = kept)");
    app.add_option("--epochs", options.epochs, "epochs")->capture_default_str();
    app.add_option("--lr", options.learning_rate, "peak learning rate (> 0)")->capture_default_str();
    app.add_option("--batch-size", options.batch_size, "sequences per step")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--warmup", options.warmup_fraction, "fraction of steps warming up")->capture_default_str();
    app.add_option("--weight-decay", options.optimizer.weight_decay, "AdamW weight decay")->capture_default_str();
    app.add_option("--max-grad-norm", options.max_grad_norm, "global-norm clipping (0: off; >= 0)")->capture_default_str();
    app.add_option("--seed", options.seed, "seed of the example order and dropout")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--threads", options.threads, "threads (0 = every core; at most 256)")->check(prune_cli::threads_flag());
    app.add_flag("--fresh-classifier", fresh, "replace the pooler-less / classifier head with a fresh one (rewinding)");
    app.add_option("--num-labels", num_labels, "classifier outputs for --fresh-classifier (default: config's)")
        ->check(prune_cli::unsigned_integer(1u << 16));
    app.add_option("--json", report_file, "write per-epoch loss and dev metric here");
    app.add_option("--out", out, "output model directory")->required();
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model}, {"--train", train_file}, {"--dev", dev_file}, {"--mask", mask_file},
                                    {"--element-mask", element_mask_file}},
                                   {{"--out", out}, {"--json", report_file}});
        prune_cli::check_flag("--lr", options.learning_rate, prune_cli::above(0));
        prune_cli::check_flag("--warmup", options.warmup_fraction, prune_cli::closed(0, 1));
        prune_cli::check_flag("--weight-decay", options.optimizer.weight_decay, prune_cli::at_least(0));
        prune_cli::check_flag("--max-grad-norm", options.max_grad_norm, prune_cli::at_least(0));
        if (options.epochs < 1) throw prune::value_error("--epochs " + std::to_string(options.epochs) + " (expected >= 1)");
        if (options.batch_size == 0) throw prune::value_error("--batch-size 0 (expected >= 1)");
        prune::io::remove_staging_on_signal();
        prune::bert::load_options load;
        load.require_head = !fresh;
        prune::bert::weights w = prune::bert::load_model(model, load);
        prune::bert::named_element_masks masks;
        if (!element_mask_file.empty()) masks = prune::io::read_element_masks(element_mask_file);
        if (fresh) {
            w = prune::bert::rewind(w, num_labels > 0 ? num_labels : w.cfg.num_labels, masks, options.seed);
        } else if (!w.has_head()) {
            throw prune::format_error("model '" + model + "' has no classifier head (use --fresh-classifier)");
        }
        const auto& cfg = w.cfg;
        const std::vector<std::size_t> heads(static_cast<std::size_t>(cfg.num_hidden_layers),
                                             static_cast<std::size_t>(cfg.num_attention_heads));
        prune::structure_mask mask{prune::group_mask(heads), prune::group_mask::uniform(heads.size(), 1)};
        if (!mask_file.empty()) mask = prune::io::read_structure_mask(mask_file, heads);
        const auto train = prune::bert::load_sequences(train_file, cfg, model);
        const auto dev = prune::bert::load_sequences(dev_file, cfg, model);
        const std::span<const prune::bert::labeled_sequence> dev_span(dev);
        std::fprintf(stderr, "prune-finetune: %zu train, %zu dev examples; %d epochs, lr %g, batch %zu\n", train.size(),
                     dev.size(), options.epochs, options.learning_rate, options.batch_size);
        const auto report = prune::bert::finetune(
            w, train, mask, masks, options, [&](int epoch, const prune::bert::weights& current) {
                const double metric = prune::bert::evaluate(current, dev_span, mask, 64, options.threads);
                std::fprintf(stderr, "prune-finetune: epoch %d: dev metric %.4f\n", epoch + 1, metric);
                return metric;
            });
        prune_cli::refuse_non_finite_weights(prune::bert::parameters(w), "not writing model '" + out + "'");
        prune::bert::prune_structure(w, mask);
        // Both outputs or neither: the report is written to its staging file and fsynced first
        // (a report that cannot be created, written or synced fails here, before the model
        // appears), the model directory is committed, then the report is renamed into place.
        std::optional<prune::io::atomic_file> staged_report;
        if (!report_file.empty()) {
            prune::io::json j = {{"steps", report.steps}, {"epoch_loss", report.epoch_loss},
                                 {"epoch_metric", report.epoch_metric}, {"dev_metric", report.epoch_metric.back()}};
            staged_report.emplace(report_file);
            staged_report->write(j.dump() + "\n");
            staged_report->sync();
        }
        prune::bert::save_options save;
        save.copy_vocab_from = model;
        prune::bert::save_model(w, out, save);
        if (staged_report) staged_report->commit();
    });
}
