// prune-magnitude: m-pruning, iterative global magnitude pruning (Prasanna et al.; torch's
// global_unstructured semantics, see docs/selection.md).
//
//   prune-magnitude --model DIR --amount 0.1 --steps K --out DIR
//                   [--data FILE.jsonl [--threshold 0.9] [--batch-size 32]]
//                   [--include REGEX ...] [--exclude REGEX ...] [--element-mask F]
//                   [--scores magnitude|random|inverted] [--seed S] [--threads N]
//
// Candidates: by default the paper's set, the Q, K, V, attention-output, intermediate and
// output dense weights and biases of every encoder layer (no embeddings, LayerNorms, pooler
// or classifier). --include (repeatable) replaces that set by the tensors whose full name
// matches one of the ECMAScript expressions (std::regex_search); --exclude (repeatable)
// removes the matching ones. An --include expression must match some tensor of the model,
// an --exclude expression some candidate; otherwise it is an error (a typo must not prune
// something else). Candidates must be F32, F64, F16 or BF16.
// Each step prunes round(amount * remaining) of the still-unpruned candidate weights with the
// smallest |w| (all candidates ranked together). --element-mask starts from a mask file
// (U8 per parameter, 1 = kept; its shapes must match the model).
// Without --data: exactly --steps steps. With --data (a model directory BERT can load): the
// baseline is the metric (accuracy; Pearson for regression) of the starting model on the
// data; steps continue while the metric stays >= threshold * baseline, at most --steps; the
// masks of the last passing step are kept.
// Output (a directory that appears whole, or not at all): masks.safetensors (U8 per candidate
// parameter and per parameter of --element-mask, 1 = kept; --mask-format bits packs 8 a byte),
// the weights in the input's layout
// (model.safetensors, or the same shards and model.safetensors.index.json; every file's header
// kept, pruned weights zeroed, dtypes kept), config.json (+ vocab.txt when present),
// report.json (settings, history: step, sparsity, metric, passed; per-tensor kept counts).
#include "common/cli.hpp"
#include "common/mask_report.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"

#include <prune/models/bert/candidates.hpp>
#include <prune/importance/scores.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/checkpoint_writer.hpp>
#include <prune/io/mapped_scores.hpp>
#include <prune/io/masks.hpp>
#include <prune/io/safetensors.hpp>
#include <prune/search.hpp>
#include <prune/select.hpp>

#include <prune/nn/process.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/forward.hpp>
#include <prune/models/bert/metrics.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace prune_examples::prune_magnitude {

namespace fs = std::filesystem;
using namespace prune;

namespace {

/// A compiled --include/--exclude expression with its text.
struct pattern {
    std::string text;  ///< as given
    std::regex regex;  ///< ECMAScript
};

std::vector<pattern> compile(const std::vector<std::string>& texts, const char* flag) {
    std::vector<pattern> out;
    for (const std::string& t : texts) {
        try {
            out.push_back({t, std::regex(t, std::regex::ECMAScript)});
        } catch (const std::regex_error& e) {
            throw value_error(std::string(flag) + " '" + t + "' is not a valid ECMAScript regular expression (" +
                              e.what() + ")");
        }
    }
    return out;
}

/// The candidate names, in the checkpoint's order.
std::vector<std::string> choose_candidates(const io::checkpoint& model, const std::vector<std::string>& include,
                                           const std::vector<std::string>& exclude) {
    std::vector<std::string> names;
    for (const auto& info : model.tensors()) {
        names.push_back(info.name);
    }
    std::vector<std::string> chosen;
    if (include.empty()) {
        const std::regex paper(bert::paper_candidate_pattern, std::regex::ECMAScript);
        for (const auto& n : names) {
            if (std::regex_search(n, paper)) {
                chosen.push_back(n);
            }
        }
        if (chosen.empty()) {
            throw value_error("the model has no tensor of the default candidate set (encoder.layer.N.{attention.self."
                              "query,key,value | attention.output.dense | intermediate.dense | output.dense}.{weight,"
                              "bias}); choose tensors with --include");
        }
    } else {
        const auto patterns = compile(include, "--include");
        std::vector<bool> used(patterns.size(), false);
        for (const auto& n : names) {
            bool take = false;
            for (std::size_t p = 0; p < patterns.size(); ++p) {
                if (std::regex_search(n, patterns[p].regex)) {
                    used[p] = true;
                    take = true;
                }
            }
            if (take) {
                chosen.push_back(n);
            }
        }
        for (std::size_t p = 0; p < patterns.size(); ++p) {
            if (!used[p]) {
                throw value_error("--include '" + patterns[p].text + "' matches no tensor of the model");
            }
        }
    }
    const auto patterns = compile(exclude, "--exclude");
    std::vector<bool> used(patterns.size(), false);
    std::vector<std::string> kept;
    for (const auto& n : chosen) {
        bool drop = false;
        for (std::size_t p = 0; p < patterns.size(); ++p) {
            if (std::regex_search(n, patterns[p].regex)) {
                used[p] = true;
                drop = true;
            }
        }
        if (!drop) {
            kept.push_back(n);
        }
    }
    for (std::size_t p = 0; p < patterns.size(); ++p) {
        if (!used[p]) {
            throw value_error("--exclude '" + patterns[p].text + "' matches no candidate tensor");
        }
    }
    if (kept.empty()) {
        throw value_error("--exclude removed every candidate tensor: nothing to prune");
    }
    return kept;
}

/// Score sources read from the checkpoint's file map, pages given back as they are read
/// (io/mapped_scores.hpp); format_error for a candidate holding NaN or an infinity.
std::vector<score_source> make_scores(const io::checkpoint& model, const std::vector<std::string>& names,
                                      const std::string& kind, std::uint64_t seed) {
    std::vector<score_source> out;
    for (const auto& name : names) {
        const io::tensor_info& info = model.info(name);
        io::require_finite(model, name, "candidate tensor");  // NaN / infinity have no magnitude order
        if (kind == "random") {
            out.push_back(random_scores(info.extents(), seed).named(name));
        } else {
            out.push_back(io::mapped_scores(model, name, kind == "inverted" ? score_kind::inverted_magnitude : score_kind::magnitude));
        }
    }
    return out;
}

/// Zeroes what `mask` prunes in raw little-endian bytes of a floating-point dtype.
void apply_to_bytes(const element_mask& mask, io::dtype type, std::vector<std::byte>& bytes, const prune::shape& s) {
    switch (type) {
        case io::dtype::F32:
            apply(mask, make_view(reinterpret_cast<float*>(bytes.data()), s));
            return;
        case io::dtype::F64:
            apply(mask, make_view(reinterpret_cast<double*>(bytes.data()), s));
            return;
        case io::dtype::F16:
            apply(mask, make_view(reinterpret_cast<prune::half*>(bytes.data()), s));
            return;
        case io::dtype::BF16:
            apply(mask, make_view(reinterpret_cast<prune::bfloat16*>(bytes.data()), s));
            return;
        default:
            throw dtype_error("cannot apply a mask to a " + std::string(io::dtype_name(type)) + " tensor");
    }
}

/// The checkpoint in its own layout through `writer`, every masked tensor's pruned weights zeroed:
/// one tensor in memory at a time, the input's pages given back as they are copied.
void write_masked(const io::checkpoint& model, const io::element_masks& masks, io::checkpoint_writer& writer) {
    std::vector<std::byte> buffer;
    for (const auto& [name, mask] : masks) {
        const io::tensor_info& info = model.info(name);
        const auto bytes = model.bytes(name);
        buffer.assign(bytes.begin(), bytes.end());
        model.release(name);
        apply_to_bytes(mask, info.type, buffer, info.extents());
        writer.put(name, buffer);
    }
    writer.finish();
}

/// The reference-BERT evaluator: metric (accuracy, or Pearson for regression) of masked weights on a data file.
class evaluator {
public:
    evaluator(const std::string& model_dir, const std::string& data_file, int batch_size, int threads)
        : original_(bert::load_model(model_dir)), ws_(threads), batch_size_(batch_size), data_file_(data_file) {
        const bert::config& cfg = original_.cfg;
        data::data_options data_opt;
        data_opt.num_labels = static_cast<std::size_t>(cfg.num_labels);
        data_ = data::read_jsonl(data_file, data_opt);
        std::optional<text::tokenizer> tok;
        if (data_.form == data::example_form::text) {
            const fs::path vocab = fs::path(model_dir) / "vocab.txt";
            if (!fs::exists(vocab)) {
                throw format_error(data_file + ": text rows need " + vocab.string() + " (not found)");
            }
            tok.emplace(text::tokenizer::from_file(vocab));
        }
        const std::size_t n = data_.examples.size();
        if (n == 0) {
            throw value_error(data_file + ": no examples");
        }
        rows_.resize(n);
        lengths_.resize(n);
        const auto max_len = static_cast<std::size_t>(cfg.max_position_embeddings);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& e = data_.examples[i];
            const std::string where = data_file + ":" + std::to_string(e.line);
            if (tok) {
                const auto enc = e.text_pair ? tok->encode(e.text, *e.text_pair, max_len) : tok->encode(e.text, max_len);
                rows_[i].add(enc.input_ids, enc.token_type_ids, enc.attention_mask, where);
            } else {
                rows_[i].add(e.input_ids, e.token_type_ids, e.attention_mask, where);
            }
            try {
                rows_[i].validate(cfg);
            } catch (const value_error& err) {
                throw value_error(where + ": " + err.what());
            }
            lengths_[i] = static_cast<std::size_t>(rows_[i].tokens());
        }
    }

    /// The metric's name.
    [[nodiscard]] const char* metric_name() const { return original_.cfg.num_labels == 1 ? "pearson" : "accuracy"; }

    /// The metric of the model with every mask applied.
    double operator()(const io::element_masks& masks) {
        bert::weights w = original_;
        bert::apply_element_masks(w, masks);
        const int labels = w.cfg.num_labels;
        const std::size_t n = rows_.size();
        bert::matrix logits(static_cast<Eigen::Index>(n), labels);
        bert::packed_batch batch;
        for (const auto& bucket : bert::length_buckets(lengths_, static_cast<std::size_t>(batch_size_))) {
            batch.clear();
            for (std::size_t i : bucket) {
                const auto& r = rows_[i];
                batch.token_ids.insert(batch.token_ids.end(), r.token_ids.begin(), r.token_ids.end());
                batch.token_types.insert(batch.token_types.end(), r.token_types.begin(), r.token_types.end());
                batch.positions.insert(batch.positions.end(), r.positions.begin(), r.positions.end());
                batch.offsets.push_back(batch.offsets.back() + r.tokens());
            }
            const auto out = bert::classify(w, batch, ws_, bert::forward_options{});
            for (std::size_t b = 0; b < bucket.size(); ++b) {
                logits.row(static_cast<Eigen::Index>(bucket[b])) = out.row(static_cast<Eigen::Index>(b));
            }
        }
        prune_cli::refuse_non_finite_logits(logits, [&](std::size_t i) {
            return data_file_ + ":" + std::to_string(data_.examples[i].line);
        });
        if (labels == 1) {
            std::vector<double> pred(n), truth(n);
            for (std::size_t i = 0; i < n; ++i) {
                pred[i] = logits(static_cast<Eigen::Index>(i), 0);
                truth[i] = *data_.examples[i].label;
            }
            return bert::metrics::pearson(pred, truth);
        }
        std::vector<int> pred(n), truth(n);
        for (std::size_t i = 0; i < n; ++i) {
            Eigen::Index arg = 0;
            logits.row(static_cast<Eigen::Index>(i)).maxCoeff(&arg);
            pred[i] = static_cast<int>(arg);
            truth[i] = data_.examples[i].label_index();
        }
        return bert::metrics::accuracy(pred, truth);
    }

private:
    bert::weights original_;
    bert::workspace ws_;
    int batch_size_;
    std::string data_file_;
    data::dataset data_;
    std::vector<bert::packed_batch> rows_;
    std::vector<std::size_t> lengths_;
};

}  // namespace

/// The job: build/bin/prune-magnitude's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    prune::nn::setup_process(argv);  // as prune-eval: OpenBLAS's AVX-512 kernels for the --data evaluations
    CLI::App app{"prune-magnitude: iterative global magnitude pruning (m-pruning)", "prune-magnitude"};
    std::string model_dir, data_file, out_dir, element_mask_file, scores_kind = "magnitude";
    std::vector<std::string> include, exclude;
    double amount = 0.1, threshold = 0.9;
    int steps = 10, threads = 0, batch_size = 32;
    std::uint64_t seed = 0;
    prune_cli::mask_format mask_format;
    app.add_option("--model", model_dir, "HF model directory (config.json + model.safetensors or shards)")->required();
    app.add_option("--data", data_file, "JSON Lines data: run the search loop with the reference BERT");
    app.add_option("--amount", amount, "fraction of the remaining candidates pruned per step, in [0, 1]");
    app.add_option("--steps", steps, "steps (without --data: exactly; with --data: at most)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--threshold", threshold, "with --data: keep going while metric >= threshold * baseline");
    app.add_option("--include", include, "ECMAScript regex over full tensor names; replaces the default candidates");
    app.add_option("--exclude", exclude, "ECMAScript regex over full tensor names; removes candidates");
    app.add_option("--element-mask", element_mask_file, "start from this element mask file (U8 per parameter)");
    app.add_option("--scores", scores_kind, "magnitude (prune smallest |w|), random (seeded), inverted (prune largest)")
        ->check(CLI::IsMember({"magnitude", "random", "inverted"}));
    app.add_option("--seed", seed, "seed of --scores random")->check(prune_cli::unsigned_integer());
    app.add_option("--threads", threads, "threads (0 = all cores; at most 256)")->check(prune_cli::threads_flag());
    app.add_option("--batch-size", batch_size, "with --data: examples per forward batch")->check(CLI::Range(1, std::numeric_limits<int>::max()));
    app.add_option("--out", out_dir, "output directory (replaced atomically)")->required();
    prune_cli::add_mask_format(app, mask_format);
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model_dir}, {"--data", data_file}, {"--element-mask", element_mask_file}},
                                   {{"--out", out_dir}});
        io::remove_staging_on_signal();
        const auto start = std::chrono::steady_clock::now();
        prune_cli::check_flag("--amount", amount, prune_cli::closed(0, 1));
        prune_cli::check_flag("--threshold", threshold, prune_cli::at_least(0));
        if (!fs::is_regular_file(fs::path(model_dir) / "config.json")) {
            throw io_error("model directory '" + model_dir + "' has no config.json");
        }
        const io::checkpoint model = io::checkpoint::open(model_dir);
        // the output's files first, their space reserved: a disk too small fails before the work
        io::output_directory out(out_dir);
        io::checkpoint_writer writer(model, out.path());
        const auto names = choose_candidates(model, include, exclude);

        // starting masks: all kept, or from --element-mask (shapes checked against the model)
        io::element_masks given;
        if (!element_mask_file.empty()) {
            given = io::read_element_masks(fs::path(element_mask_file));
            io::check_element_masks(given, model);
        }
        std::vector<element_mask> start_masks;
        for (const auto& name : names) {
            const auto it = given.find(name);
            start_masks.push_back(it != given.end() ? it->second : element_mask(model.info(name).extents()));
        }
        const std::vector<score_source> scores = make_scores(model, names, scores_kind, seed);
        select_options select;
        select.threads = threads == 0 ? 0u : static_cast<unsigned>(threads);
        select.sampling_limit = mapped_sampling_limit;  // the scores are the checkpoint's file map

        auto to_named = [&](const std::vector<element_mask>& masks) {
            io::element_masks named = given;  // masks of non-candidates are carried along
            for (std::size_t t = 0; t < names.size(); ++t) {
                named.insert_or_assign(names[t], masks[t]);
            }
            return named;
        };
        const auto step = [&](const std::vector<element_mask>& masks, std::size_t s) {
            std::vector<element_mask> next = masks;
            const auto r = prune_global(scores, next, amount, select);
            std::fprintf(stderr, "prune-magnitude: step %zu pruned %zu of %zu remaining, sparsity %.4f\n", s, r.pruned,
                         r.candidates, sparsity_of(next));
            return next;
        };

        search_result<std::vector<element_mask>> result;
        std::string metric_name;
        double baseline = 0;
        if (data_file.empty()) {
            // exactly --steps steps: a search whose metric always passes
            search_options options{0.0, static_cast<std::size_t>(steps)};
            result = search(std::move(start_masks), 0.0, step, [](const std::vector<element_mask>&) { return 0.0; },
                            [](const std::vector<element_mask>& m) { return sparsity_of(m); }, options);
            // "exhausted" (a step that changes nothing) is fine too: the count was exact
        } else {
            evaluator evaluate(model_dir, data_file, batch_size, threads);
            metric_name = evaluate.metric_name();
            baseline = evaluate(to_named(start_masks));
            std::fprintf(stderr, "prune-magnitude: baseline %s = %.6f\n", metric_name.c_str(), baseline);
            search_options options{threshold, static_cast<std::size_t>(steps)};
            result = search(
                std::move(start_masks), baseline, step,
                [&](const std::vector<element_mask>& m, std::size_t s) {
                    const double metric = evaluate(to_named(m));
                    std::fprintf(stderr, "prune-magnitude: step %zu %s = %.6f (needs >= %.6f)\n", s, metric_name.c_str(),
                                 metric, threshold * baseline);
                    return metric;
                },
                [](const std::vector<element_mask>& m) { return sparsity_of(m); }, options);
        }
        io::element_masks final_masks = to_named(result.mask);
        result.mask = {};  // a 7B model's masks are 0.8 GB: one copy at a time

        // outputs, staged: the weights, then the masks in the model's order
        write_masked(model, final_masks, writer);
        std::vector<std::pair<std::string, element_mask>> ordered;
        for (const auto& info : model.tensors()) {
            const auto it = final_masks.find(info.name);
            if (it != final_masks.end()) ordered.emplace_back(it->first, std::move(it->second));
        }
        io::write_element_masks(out / "masks.safetensors",
                                std::span<const std::pair<std::string, element_mask>>(ordered), mask_format.layout());
        for (const char* file : {"config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"}) {
            if (fs::is_regular_file(fs::path(model_dir) / file)) {
                fs::copy_file(fs::path(model_dir) / file, out / file);
            }
        }

        nlohmann::json report;
        report["model"] = model_dir;
        report["amount"] = amount;
        report["steps_requested"] = steps;
        report["scores"] = scores_kind;
        if (scores_kind == "random") {
            report["seed"] = seed;
        }
        report["candidates"] = names;
        if (!data_file.empty()) {
            report["data"] = data_file;
            report["threshold"] = threshold;
            report["metric_name"] = metric_name;
            report["baseline"] = baseline;
        }
        report["steps_kept"] = result.passed_steps;
        report["stop"] = result.stop == search_stop::failed      ? "failed"
                         : result.stop == search_stop::exhausted ? "exhausted"
                                                                 : "max_steps";
        nlohmann::json history = nlohmann::json::array();
        for (const auto& row : result.history) {
            nlohmann::json r{{"step", row.step}, {"sparsity", row.sparsity}, {"passed", row.passed}};
            if (!data_file.empty()) {
                r["metric"] = row.metric;
            }
            history.push_back(r);
        }
        report["history"] = history;
        prune_cli::add_mask_counts(report, ordered);
        {
            std::ofstream file(out / "report.json");
            file << report.dump(2) << "\n";
            if (!file) {
                throw io_error("cannot write " + (out / "report.json").string());
            }
        }
        out.commit();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "prune-magnitude: %zu steps kept, sparsity %.4f of %zu candidate weights, wrote %s (%.2f s)\n",
                     result.passed_steps, report["sparsity"].get<double>(), report["total"].get<std::size_t>(), out_dir.c_str(), seconds);
    });
}

}  // namespace prune_examples::prune_magnitude
