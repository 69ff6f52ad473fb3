// prune-eval: a forward pass over a data file; accuracy and the task metric, logits to --json.
// On a causal LM (config.json's model_type llama or gpt2): perplexity (examples/decoder/causal_lm.hpp).
//
//   prune-eval --model DIR --data FILE.jsonl [--mask heads_mlps.json] [--element-mask masks.safetensors]
//              [--metric auto|accuracy|mcc|f1|pearson|spearman] [--batch-size 32] [--threads 0] [--json OUT]
//   prune-eval --model LM_DIR --data FILE.jsonl|FILE.txt [--context N] [--mask F] [--element-mask F] [--json OUT]
//
// Causal LM: rows {"input_ids": [...]} (or {"text": ...} with tokenizer.json), or a .txt file cut
// into windows of --context tokens; OUT holds perplexity, nll (per predicted token), nll_total,
// tokens, sequences, context; the mask may gate heads, kv_groups and mlps.
//
// The model is an HF directory (config.json + model.safetensors [+ vocab.txt]); rows are
// {"input_ids": [...], ...} or, when the model has vocab.txt, {"text": ..., "text_pair": ...}.
// --mask gates heads and MLPs off (rows over the original heads, or over the kept heads of a
// pruned model); --element-mask zeroes weights by parameter name. Examples are batched by
// length (no work on padding) and the last layer computes only [CLS]. OUT holds n, accuracy
// (null for regression), metric, metric_name, logits (file order) and, for regression,
// pearson and spearman. Bad input: one line on stderr, exit 2, nothing written.
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/metrics.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/masks.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

namespace fs = std::filesystem;
using namespace prune;

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS: its AVX-512 kernels (0.3.21 does not know this CPU), single-threaded
    CLI::App app{"prune-eval: evaluate a BERT sequence classifier on a data file", "prune-eval"};
    std::string model_dir, data_file, mask_file, element_mask_file, json_out, metric = "auto";
    int batch_size = 32, threads = 0;
    app.add_option("--model", model_dir, "HF model directory (config.json + model.safetensors)")->required();
    app.add_option("--data", data_file, "JSON Lines data file")->required();
    app.add_option("--mask", mask_file, "structure mask JSON {\"heads\": [[1,0,..],..], \"mlps\": [1,..]}");
    app.add_option("--element-mask", element_mask_file, "element mask safetensors (U8 per parameter, 1 = kept)");
    app.add_option("--metric", metric, "auto (accuracy; pearson for regression), accuracy, mcc, f1, pearson, spearman")
        ->check(CLI::IsMember({"auto", "accuracy", "mcc", "f1", "pearson", "spearman"}));
    app.add_option("--batch-size", batch_size, "examples per forward batch")->check(CLI::Range(1, std::numeric_limits<int>::max()));
    app.add_option("--threads", threads, "threads (0 = all cores; at most 256)")->check(prune_cli::threads_flag());
    app.add_option("--json", json_out, "write n, accuracy, metric, logits here (causal LM: perplexity, nll, tokens)");
    std::optional<int> context;
    app.add_option("--context", context, "causal LM, .txt data: tokens per window (default max_position_embeddings)");
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model_dir}, {"--data", data_file}, {"--mask", mask_file},
                                    {"--element-mask", element_mask_file}},
                                   {{"--json", json_out}});
        io::remove_staging_on_signal();
        const auto start = std::chrono::steady_clock::now();
        if (prune_lm::is_causal_lm(model_dir)) {
            const decoder::weights lm = prune_lm::load_model(model_dir, element_mask_file);
            const auto lm_gates = prune_lm::load_gates(mask_file, lm);
            const auto rows = prune_lm::read_sequences(data_file, model_dir, lm.cfg, context);
            const io::json result = prune_lm::perplexity(lm, rows, lm_gates ? &*lm_gates : nullptr,
                                                         static_cast<std::size_t>(batch_size), threads, data_file,
                                                         prune_lm::window_of(data_file, lm.cfg, context));
            std::fprintf(stderr, "prune-eval: %zu sequences, %lld tokens, perplexity %.6g (%.2f s)\n", rows.size(),
                         static_cast<long long>(result["tokens"].get<std::int64_t>()), result["perplexity"].get<double>(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
            if (!json_out.empty()) io::write_file_atomically(json_out, result.dump() + "\n");
            return;
        }
        if (context) throw value_error("--context applies to causal LMs (model_type llama or gpt2)");
        bert::weights w = bert::load_model(model_dir);
        const bert::config& cfg = w.cfg;
        if (!element_mask_file.empty()) {
            const io::element_masks masks = io::read_element_masks(fs::path(element_mask_file));
            const std::string where = "element masks '" + element_mask_file + "': ";
            try {  // apply_element_masks does not know the file: say which one
                bert::apply_element_masks(w, masks);
            } catch (const shape_error& e) {
                throw shape_error(where + e.what());
            } catch (const format_error& e) {
                throw format_error(where + e.what());
            }
        }
        std::optional<bert::gates> gate;
        if (!mask_file.empty()) {
            const structure_mask mask = io::read_structure_mask(mask_file);
            try {
                gate = bert::gates::from_mask(mask, w);
            } catch (const shape_error& e) {  // from_mask does not know the file: say which one
                throw shape_error("structure mask '" + mask_file + "': " + e.what());
            }
        }
        data::data_options data_opt;
        data_opt.num_labels = static_cast<std::size_t>(cfg.num_labels);
        const data::dataset data = data::read_jsonl(data_file, data_opt);

        // Token ids per example (tokenizing text rows), checked against the model with the line number.
        std::optional<text::tokenizer> tok;
        if (data.form == data::example_form::text) {
            const fs::path vocab = fs::path(model_dir) / "vocab.txt";
            if (!fs::exists(vocab)) {
                throw format_error(data_file + ": text rows need " + vocab.string() + " (not found)");
            }
            tok.emplace(text::tokenizer::from_file(vocab));
        }
        const std::size_t n = data.examples.size();
        std::vector<bert::packed_batch> rows(n);
        std::vector<std::size_t> lengths(n);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& e = data.examples[i];
            const std::string where = data_file + ":" + std::to_string(e.line);
            if (tok) {
                const auto enc = e.text_pair ? tok->encode(e.text, *e.text_pair, static_cast<std::size_t>(cfg.max_position_embeddings))
                                             : tok->encode(e.text, static_cast<std::size_t>(cfg.max_position_embeddings));
                rows[i].add(enc.input_ids, enc.token_type_ids, enc.attention_mask, where);
            } else {
                rows[i].add(e.input_ids, e.token_type_ids, e.attention_mask, where);
            }
            try {
                rows[i].validate(cfg);
            } catch (const value_error& err) {
                std::string what = err.what();
                what = what.substr(what.find(':') + 2);  // drop "sequence 0: "
                throw value_error(where + ": " + what);
            }
            lengths[i] = static_cast<std::size_t>(rows[i].tokens());
        }

        bert::workspace ws(threads);
        bert::forward_options opt;
        opt.gate = gate ? &*gate : nullptr;
        const int labels = cfg.num_labels;
        bert::matrix logits(static_cast<Eigen::Index>(n), labels);
        bert::packed_batch batch;
        for (const auto& bucket : bert::length_buckets(lengths, static_cast<std::size_t>(batch_size))) {
            batch.clear();
            for (std::size_t i : bucket) {
                const auto& r = rows[i];
                batch.token_ids.insert(batch.token_ids.end(), r.token_ids.begin(), r.token_ids.end());
                batch.token_types.insert(batch.token_types.end(), r.token_types.begin(), r.token_types.end());
                batch.positions.insert(batch.positions.end(), r.positions.begin(), r.positions.end());
                batch.offsets.push_back(batch.offsets.back() + r.tokens());
            }
            const auto out = bert::classify(w, batch, ws, opt);
            for (std::size_t b = 0; b < bucket.size(); ++b) {
                logits.row(static_cast<Eigen::Index>(bucket[b])) = out.row(static_cast<Eigen::Index>(b));
            }
        }

        prune_cli::refuse_non_finite_logits(
            logits, [&](std::size_t i) { return data_file + ":" + std::to_string(data.examples[i].line); });

        // Metrics.
        nlohmann::json result;
        result["n"] = n;
        const bool regression = labels == 1;
        const std::string name = bert::metrics::resolve(metric, labels);
        double value = 0;
        if (regression) {
            std::vector<double> pred(n), truth(n);
            for (std::size_t i = 0; i < n; ++i) {
                pred[i] = logits(static_cast<Eigen::Index>(i), 0);
                truth[i] = *data.examples[i].label;
            }
            result["accuracy"] = nullptr;
            result["pearson"] = bert::metrics::pearson(pred, truth);
            result["spearman"] = bert::metrics::spearman(pred, truth);
            value = bert::metrics::score(name, pred, truth);
        } else {
            std::vector<int> pred(n), truth(n);
            for (std::size_t i = 0; i < n; ++i) {
                Eigen::Index arg = 0;
                logits.row(static_cast<Eigen::Index>(i)).maxCoeff(&arg);
                pred[i] = static_cast<int>(arg);
                truth[i] = data.examples[i].label_index();
            }
            result["accuracy"] = bert::metrics::accuracy(pred, truth);
            value = bert::metrics::score(name, pred, truth, labels);
        }
        result["metric"] = value;
        result["metric_name"] = name;
        nlohmann::json rows_json = nlohmann::json::array();
        for (Eigen::Index i = 0; i < logits.rows(); ++i) {
            rows_json.push_back(std::vector<float>(logits.row(i).data(), logits.row(i).data() + labels));
        }
        result["logits"] = std::move(rows_json);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "prune-eval: n=%zu %s=%.6f%s (%.2f s)\n", n, name.c_str(), value,
                     regression ? "" : (" accuracy=" + std::to_string(result["accuracy"].get<double>())).c_str(),
                     seconds);
        if (!json_out.empty()) {
            io::write_file_atomically(json_out, result.dump() + "\n");
        }
    });
}
