// prune-lottery: the whole experiment of "When BERT Plays the Lottery, All Tickets Are
// Winning" (Prasanna, Rogers & Rumshisky 2020) on a pre-trained BERT and a set of tasks.
//
//   prune-lottery [--quick | --full] [--model DIR] [--train F --dev F --task NAME [--metric M]]
//                 [--tasks T ...] [--seeds N] [--max-steps N] [--out DIR] [--cache DIR] [--threads N]
//
// With no flags it runs the built-in default: the WordNet-GLUE tasks (made on first use by
// `prune-data wordnet`) and a tiny BERT pre-trained on their train synsets (made on first
// use by `prune-pretrain`), both cached under --cache. For each task and seed:
//   1. fine-tune the pre-trained model (the "full" model);
//   2. s-prune it (heads + MLPs by Michel importance) and m-prune it (global magnitude),
//      each while the dev score stays >= 0.9 x full: the "good" subnetworks;
//   3. build random and bad subnetworks of the same size (docs/lottery.md);
//   4. evaluate every subnetwork as pruned, then re-fine-tune each from the pre-trained
//      weights under its mask (rewinding, fresh classifier) and evaluate again.
// The report (report.md, report.json, SVG heatmaps) is written atomically to --out.
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "common/process.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/candidates.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/dataset.hpp>
#include <prune/experiment/report.hpp>
#include <prune/models/bert/finetune.hpp>
#include <prune/models/bert/importance.hpp>
#include <prune/models/bert/metrics.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/data/glue_tsv.hpp>
#include <prune/data/wordnet_tasks.hpp>
#include <prune/importance/scores.hpp>
#include <prune/io/atomic.hpp>
#include <prune/lottery.hpp>
#include <prune/search.hpp>
#include <prune/select.hpp>
#include <prune/spruning.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace prune_examples::prune_lottery {

namespace {

namespace fs = std::filesystem;
namespace lottery = prune::experiment;  // the report and its results (include/prune/experiment/)
using prune::bert::labeled_sequence;
using prune::bert::weights;

/// The report's matrix column of a candidate parameter name (see lottery::layer_matrices).
int matrix_column(const std::string& name) {
    static const std::vector<std::pair<std::string, int>> parts = {
        {".attention.self.query.", 0}, {".attention.self.key.", 1}, {".attention.self.value.", 2},
        {".attention.output.dense.", 3}, {".intermediate.dense.", 4}, {".output.dense.", 5}};
    for (const auto& [part, column] : parts) {
        if (name.find(part) != std::string::npos) {
            return column;
        }
    }
    return -1;
}

/// The encoder layer of a parameter name ("bert.encoder.layer.3. ..." -> 3).
std::size_t layer_of(const std::string& name) {
    const std::string key = "encoder.layer.";
    return std::stoul(name.substr(name.find(key) + key.size()));
}

/// The settings of one run.
struct settings {
    std::vector<std::string> tasks;
    int seeds = 3;
    prune::bert::finetune_options finetune;
    std::size_t train_rows = 2000;
    std::size_t dev_rows = 500;
    double ratio = 0.9;
    double m_amount = 0.1;
    std::size_t m_max_steps = 10;
    int threads = 0;
    std::string mode = "default";
    std::string metric = "auto";  ///< the task's dev metric (prune/models/bert/metrics.hpp name; auto = accuracy)
    // A fixed step count, not a time budget, so that the model and the report are the same on any
    // machine (2,200 steps: what the 3.5-minute budget gave on the idle 2-core machine).
    std::string model_name = "tiny-bert-2200steps";  ///< the built-in model's name in the cache (+ "-s<seed>")
    std::vector<std::string> pretrain_arguments{"--steps", "2200"};  ///< prune-pretrain's arguments beyond --data, --out, --seed
};

/// Progress with an ETA on stderr, in weighted units of work.
class progress {
public:
    explicit progress(double total) : total_(total), start_(std::chrono::steady_clock::now()) {}
    void stage(const std::string& where, const std::string& what) {
        where_ = where;
        what_ = what;
        print();
    }
    void done(double units) {
        done_ += units;
        print();
    }
    [[nodiscard]] double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    void print() const {
        const double fraction = std::min(1.0, done_ / total_);
        const int width = 24;
        const int filled = static_cast<int>(fraction * width);
        std::string bar(static_cast<std::size_t>(filled), '#');
        bar.resize(width, '.');
        const double elapsed = seconds();
        const double eta = fraction > 0.0 ? elapsed * (1.0 - fraction) / fraction : 0.0;
        std::fprintf(stderr, "\rprune-lottery [%s] %3.0f%%  %5.0fs elapsed, ETA %5.0fs  %-24s %-26s", bar.c_str(),
                     100.0 * fraction, elapsed, eta, where_.c_str(), what_.c_str());
        std::fflush(stderr);
    }
    double total_;
    double done_ = 0.0;
    std::chrono::steady_clock::time_point start_;
    std::string where_, what_;
};

/// Cost of each stage of one task and seed, in fine-tuning units (measured on the default run).
constexpr double cost_finetune = 1.0;
constexpr double cost_sprune = 0.6;
constexpr double cost_mprune = 0.3;
constexpr double cost_per_seed = cost_finetune * 7 + cost_sprune + cost_mprune;

/// Runs a sibling binary (prune-data, prune-pretrain) from the same build directory, with an
/// argument vector: no shell ever sees a path (examples/common/process.hpp).
void run_sibling(const fs::path& self, const std::string& binary, const std::vector<std::string>& arguments) {
    const fs::path path = self.parent_path() / binary;
    if (!fs::exists(path)) {
        throw prune::io_error("cannot find " + path.string() + " (build the '" + binary + "' target)");
    }
    std::fprintf(stderr, "\nprune-lottery: running %s\n", prune_cli::display_command(path, arguments).c_str());
    prune_cli::run_program(path, arguments);
}

/// The labels of a data set: num_labels = largest label + 1.
int count_labels(const std::vector<labeled_sequence>& data) {
    double largest = 0.0;
    for (const auto& s : data) {
        largest = std::max(largest, s.label);
    }
    return static_cast<int>(largest) + 1;
}

/// The dev score (in `metric`) of always answering the train set's most frequent label, or
/// for regression (num_labels 1) its mean (a constant: Pearson and Spearman 0).
double majority_baseline(const std::vector<labeled_sequence>& train, const std::vector<labeled_sequence>& dev,
                         const std::string& metric, int num_labels) {
    if (num_labels == 1) {
        double mean = 0.0;
        for (const auto& s : train) {
            mean += s.label / static_cast<double>(train.size());
        }
        std::vector<double> predicted(dev.size(), mean), truth;
        for (const auto& s : dev) {
            truth.push_back(s.label);
        }
        return prune::bert::metrics::score(metric, predicted, truth);
    }
    std::map<int, std::size_t> counts;
    for (const auto& s : train) {
        ++counts[static_cast<int>(s.label)];
    }
    int majority = 0;
    std::size_t best = 0;
    for (const auto& [label, count] : counts) {
        if (count > best) {
            best = count;
            majority = label;
        }
    }
    std::vector<int> predicted(dev.size(), majority), truth;
    for (const auto& s : dev) {
        truth.push_back(static_cast<int>(s.label));
    }
    return prune::bert::metrics::score(metric, predicted, truth, num_labels);
}

/// Element masks by parameter name, all kept, for the candidate parameters of `w`.
struct candidate_set {
    std::vector<std::string> names;
    std::vector<prune::shape> shapes;

    explicit candidate_set(weights& w) {
        for (const auto& p : prune::bert::parameters(w)) {
            if (prune::bert::is_paper_candidate(p.name)) {
                names.push_back(p.name);
                shapes.emplace_back(prune::shape(p.shape));
            }
        }
        if (names.empty()) {
            throw prune::value_error("the model has no m-pruning candidates (encoder dense weights and biases)");
        }
    }
    [[nodiscard]] std::vector<prune::element_mask> all_kept() const {
        std::vector<prune::element_mask> masks;
        for (const auto& s : shapes) {
            masks.emplace_back(s);
        }
        return masks;
    }
    [[nodiscard]] prune::bert::named_element_masks named(const std::vector<prune::element_mask>& masks) const {
        prune::bert::named_element_masks out;
        for (std::size_t i = 0; i < names.size(); ++i) {
            out.emplace(names[i], masks[i]);
        }
        return out;
    }
    [[nodiscard]] std::size_t total() const {
        std::size_t n = 0;
        for (const auto& s : shapes) {
            n += s.numel();
        }
        return n;
    }
};

/// Score sources over the candidate parameters of `w`, of the given kind (magnitude, inverted, random).
std::vector<prune::score_source> sources(weights& w, const candidate_set& candidates, prune::score_kind kind,
                                         std::uint64_t seed = 0) {
    std::vector<prune::score_source> out;
    std::size_t i = 0;
    for (const auto& p : prune::bert::parameters(w)) {
        if (i < candidates.names.size() && p.name == candidates.names[i]) {
            const auto view = prune::make_view(p.data, candidates.shapes[i]);
            if (kind == prune::score_kind::magnitude) {
                out.push_back(prune::magnitude(view).named(p.name));
            } else if (kind == prune::score_kind::inverted_magnitude) {
                out.push_back(prune::inverted_magnitude(view).named(p.name));
            } else {
                out.push_back(prune::random_scores(candidates.shapes[i], seed).named(p.name));
            }
            ++i;
        }
    }
    PRUNE_ASSERT(i == candidates.names.size());
    return out;
}

/// Pruned weights, per layer and report matrix: fraction pruned.
std::vector<std::vector<double>> sparsity_by_matrix(const candidate_set& candidates,
                                                    const std::vector<prune::element_mask>& masks, std::size_t layers) {
    std::vector<std::vector<double>> pruned(layers, std::vector<double>(lottery::layer_matrices.size(), 0.0));
    std::vector<std::vector<double>> total = pruned;
    for (std::size_t i = 0; i < candidates.names.size(); ++i) {
        const int column = matrix_column(candidates.names[i]);
        const std::size_t layer = layer_of(candidates.names[i]);
        if (column < 0 || layer >= layers) {
            continue;
        }
        pruned[layer][static_cast<std::size_t>(column)] += static_cast<double>(masks[i].count_pruned());
        total[layer][static_cast<std::size_t>(column)] += static_cast<double>(masks[i].size());
    }
    for (std::size_t l = 0; l < layers; ++l) {
        for (std::size_t c = 0; c < pruned[l].size(); ++c) {
            pruned[l][c] = total[l][c] > 0 ? pruned[l][c] / total[l][c] : 0.0;
        }
    }
    return pruned;
}

std::size_t count_pruned(const std::vector<prune::element_mask>& masks) {
    std::size_t n = 0;
    for (const auto& m : masks) {
        n += m.count_pruned();
    }
    return n;
}

/// True when every weight the masks prune is exactly 0 in `w`.
bool pruned_weights_are_zero(weights& w, const prune::bert::named_element_masks& masks) {
    for (const auto& p : prune::bert::parameters(w)) {
        const auto it = masks.find(p.name);
        if (it == masks.end()) {
            continue;
        }
        const auto values = p.values();
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (!it->second.kept(i) && values[i] != 0.0f) {
                return false;
            }
        }
    }
    return true;
}

/// The full structure mask of a model (every head of the original layout and every MLP).
prune::structure_mask full_structure(const weights& w) {
    const auto layers = w.layers.size();
    return {prune::group_mask::uniform(layers, static_cast<std::size_t>(w.cfg.num_attention_heads)),
            prune::group_mask::uniform(layers, 1)};
}

/// One task and seed through every stage.
lottery::seed_result run_seed(const weights& pretrained, const std::vector<labeled_sequence>& train,
                              const std::vector<labeled_sequence>& dev, int num_labels, int seed, const settings& run,
                              progress& bar, const std::string& where) {
    const auto started = std::chrono::steady_clock::now();
    lottery::seed_result result;
    result.seed = seed;
    const std::span<const labeled_sequence> train_span(train), dev_span(dev);
    prune::bert::finetune_options ft = run.finetune;
    ft.seed = static_cast<std::uint64_t>(seed);
    ft.threads = run.threads;
    auto score = [&](const weights& w, const prune::structure_mask& mask) {
        return prune::bert::evaluate(w, dev_span, mask, 64, run.threads, run.metric);
    };

    // 1. the full model
    bar.stage(where, "fine-tune full model");
    const prune::structure_mask everything = full_structure(pretrained);
    weights full = prune::bert::rewind(pretrained, num_labels, {}, static_cast<std::uint64_t>(seed));
    (void)prune::bert::finetune(full, train_span, everything, {}, ft);
    result.full = score(full, everything);
    bar.done(cost_finetune);

    // 2a. s-pruning
    bar.stage(where, "s-pruning");
    prune::bert::importance_options importance_settings;
    prune::importance::normalization normalise;
    normalise.per_layer = true;
    normalise.global = true;
    prune::spruning_options s_settings;
    s_settings.ratio = run.ratio;
    const auto s_result = prune::s_prune(
        everything,
        [&](const prune::structure_mask& mask) {
            return prune::bert::head_importance(full, dev_span, mask, importance_settings, normalise);
        },
        [&](const prune::structure_mask& mask) { return score(full, mask); }, s_settings);
    const prune::structure_mask s_good = s_result.mask;
    result.heads = s_good.heads;
    result.mlps = s_good.mlps;
    for (const auto& record : s_result.history) {
        result.s_history.push_back({static_cast<int>(result.s_history.size()),
                                    1.0 - static_cast<double>(record.heads_kept + record.mlps_kept) /
                                              static_cast<double>(everything.heads.total() + everything.mlps.total()),
                                    record.metric, record.passed});
    }
    bar.done(cost_sprune);

    // 2b. m-pruning
    bar.stage(where, "m-pruning");
    const candidate_set candidates(full);
    result.prunable_weights = candidates.total();
    prune::select_options select_settings;
    select_settings.threads = 1;
    const auto magnitude = sources(full, candidates, prune::score_kind::magnitude);
    auto masked_eval = [&](const std::vector<prune::element_mask>& masks) {
        weights copy = full;
        prune::bert::zero_pruned_elements(copy, candidates.named(masks));
        return score(copy, everything);
    };
    prune::search_options m_settings;
    m_settings.ratio = run.ratio;
    m_settings.max_steps = run.m_max_steps;
    const auto m_result = prune::search(
        candidates.all_kept(), result.full,
        [&](const std::vector<prune::element_mask>& masks) {
            auto next = masks;
            (void)prune::prune_global(magnitude, next, run.m_amount, select_settings);
            return next;
        },
        masked_eval, m_settings);
    const std::vector<prune::element_mask> m_good = m_result.mask;
    for (const auto& record : m_result.history) {
        result.m_history.push_back({static_cast<int>(record.step), record.sparsity, record.metric, record.passed});
    }
    result.m_sparsity = sparsity_by_matrix(candidates, m_good, full.layers.size());
    bar.done(cost_mprune);

    // 3. subnetworks of the same size
    const std::uint64_t sample_seed = 1000003ull * static_cast<std::uint64_t>(seed) + 17;
    const std::map<std::string, prune::structure_mask> s_masks = {
        {"good", s_good},
        {"random", prune::random_structure(s_good, sample_seed)},
        {"bad", prune::bad_structure(s_good, sample_seed)}};
    const std::size_t m_count = count_pruned(m_good);
    auto m_by_scores = [&](prune::score_kind kind) {
        auto masks = candidates.all_kept();
        (void)prune::prune_smallest(sources(full, candidates, kind, sample_seed), masks, m_count, select_settings);
        return masks;
    };
    const std::map<std::string, std::vector<prune::element_mask>> m_masks = {
        {"good", m_good},
        {"random", m_by_scores(prune::score_kind::random)},
        {"bad", m_by_scores(prune::score_kind::inverted_magnitude)}};
    for (const auto& [variant, mask] : s_masks) {
        result.kept_heads[variant] = mask.heads.count_kept();
        result.kept_mlps[variant] = mask.mlps.count_kept();
    }
    for (const auto& [variant, masks] : m_masks) {
        result.pruned_weights[variant] = count_pruned(masks);
    }

    // 4. evaluated as pruned, then re-fine-tuned from the pre-trained weights
    for (const std::string& variant : lottery::variants) {
        const prune::structure_mask& s_mask = s_masks.at(variant);
        result.scores[lottery::subnetwork_key("s", variant, "pruned")] = score(full, s_mask);
        result.scores[lottery::subnetwork_key("m", variant, "pruned")] = masked_eval(m_masks.at(variant));
    }
    for (const std::string& variant : lottery::variants) {
        bar.stage(where, "re-fine-tune s-" + variant);
        const prune::structure_mask& s_mask = s_masks.at(variant);
        weights s_refit = prune::bert::rewind(pretrained, num_labels, {}, static_cast<std::uint64_t>(seed));
        (void)prune::bert::finetune(s_refit, train_span, s_mask, {}, ft);
        result.scores[lottery::subnetwork_key("s", variant, "refit")] = score(s_refit, s_mask);
        bar.done(cost_finetune);

        bar.stage(where, "re-fine-tune m-" + variant);
        const auto named = candidates.named(m_masks.at(variant));
        weights m_refit = prune::bert::rewind(pretrained, num_labels, named, static_cast<std::uint64_t>(seed));
        (void)prune::bert::finetune(m_refit, train_span, everything, named, ft);
        result.scores[lottery::subnetwork_key("m", variant, "refit")] =
            score(m_refit, everything);
        result.refit_m_zeros_held = result.refit_m_zeros_held && pruned_weights_are_zero(m_refit, named);
        bar.done(cost_finetune);
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return result;
}

/// The settings of a mode: quick (a first look and CI), default, full (larger).
settings settings_for(const std::string& mode) {
    settings s;
    s.mode = mode;
    s.finetune.epochs = 3;
    s.finetune.learning_rate = 1e-3;  // docs/wordnet-glue.md: the tiny model learns supersense best at 1e-3..2e-3
    s.finetune.batch_size = 32;
    s.finetune.warmup_fraction = 0.0;
    if (mode == "quick") {  // its own model, pre-trained 330 steps (about half a minute), so that a first look is quick
        s.seeds = 2;
        s.train_rows = 400;
        s.dev_rows = 200;
        s.finetune.epochs = 4;      // 100 steps of 16: pos 0.52 (majority 0.25), concrete 0.67 (0.50);
        s.finetune.batch_size = 16;  // 2 epochs of 32 (25 steps) left every task at its majority
        s.model_name = "tiny-bert-quick-330steps";  // about what half a minute gave (328 steps, docs/lottery.md)
        s.pretrain_arguments = {"--steps", "330"};
    } else if (mode == "full") {  // BERT-mini's shape (4 x 256, 4 heads), pre-trained for 15 minutes
        s.seeds = 5;
        s.train_rows = 6000;
        s.dev_rows = 1000;
        s.model_name = "mini-bert";
        s.pretrain_arguments = {"--layers", "4", "--hidden", "256", "--heads", "4", "--intermediate", "1024", "--minutes", "15"};
    }
    return s;
}

}  // namespace

/// The job: build/bin/prune-lottery's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS: its AVX-512 kernels (0.3.21 does not know this CPU), single-threaded
    CLI::App app("prune-lottery: the whole experiment of \"When BERT Plays the Lottery\": good, random and bad "
                 "subnetworks, pruned and re-fine-tuned",
                 "prune-lottery");
    bool quick = false, full_mode = false;
    std::string model_dir, train_file, dev_file, task_name, out_dir = "lottery-out", cache_dir = "prune-cache";
    std::vector<std::string> tasks;
    int seeds = 0, threads = 0, epochs = 0;
    long long max_steps = 0;  // signed: CLI11 would read -1 as 2^64 - 1
    double lr = 0.0;
    long long train_rows = 0, dev_rows = 0;  // signed: as std::size_t, CLI11 reads -1 as 2^64 - 1
    std::uint64_t data_seed = 1;
    auto* quick_flag = app.add_flag("--quick", quick,
                                    "a first look: 3 tasks x 2 seeds on small slices, a model pre-trained for 330 steps (about half a minute)");
    app.add_flag("--full", full_mode, "a larger suite: 5 seeds, the whole data, a 4 x 256 model pre-trained for 15 min")
        ->excludes(quick_flag);
    app.add_option("--model", model_dir, "pre-trained BERT directory (config.json, model.safetensors, vocab.txt)");
    auto* train_opt = app.add_option("--train", train_file,
                                     "training set of your own task: JSON Lines, or GLUE's .tsv with --task CoLA, SST-2, "
                                     "MRPC, QQP, STS-B, MNLI, QNLI, RTE or WNLI");
    auto* dev_opt = app.add_option("--dev", dev_file, "dev set of your own task (as --train)");
    train_opt->needs(dev_opt);
    dev_opt->needs(train_opt);
    app.add_option("--task", task_name, "name of your own task (with --train/--dev); a GLUE name picks its columns and metric");
    std::string metric = "auto";
    app.add_option("--metric", metric,
                   "dev metric: auto (accuracy; a GLUE task's own: mcc for CoLA, f1 for MRPC and QQP, pearson for "
                   "STS-B), accuracy, mcc, f1, pearson, spearman")
        ->check(CLI::IsMember({"auto", "accuracy", "mcc", "f1", "pearson", "spearman"}))
        ->capture_default_str();
    app.add_option("--tasks", tasks, "WordNet-GLUE tasks to run (default: the suite's defaults)");
    app.add_option("--seeds", seeds, "seeds per task");
    app.add_option("--epochs", epochs, "fine-tuning epochs");
    app.add_option("--lr", lr, "fine-tuning learning rate");
    app.add_option("--max-steps", max_steps,
                   "m-pruning: at most this many steps (the paper's 10); more lets a tolerant task prune past 65%");
    app.add_option("--train-rows", train_rows, "training rows per task (WordNet-GLUE)");
    app.add_option("--dev-rows", dev_rows, "dev rows per task (WordNet-GLUE)");
    app.add_option("--data-seed", data_seed, "seed of the WordNet-GLUE suite and of pre-training")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--threads", threads, "threads (0 = every core; at most 256)")->check(prune_cli::threads_flag())->capture_default_str();
    app.add_option("--out", out_dir, "output directory (written atomically)")->capture_default_str();
    app.add_option("--cache", cache_dir, "where the generated data and pre-trained model are kept")->capture_default_str();

    return prune_cli::run(app, argc, argv, [&] {
        // The cache is written (new entries only) and read; it may hold --model: an input of --out.
        prune_cli::refuse_overlaps({{"--model", model_dir}, {"--train", train_file}, {"--dev", dev_file}, {"--cache", cache_dir}},
                                   {{"--out", out_dir}});
        prune::io::remove_staging_on_signal();
        settings run = settings_for(quick ? "quick" : full_mode ? "full" : "default");
        if (app.count("--seeds") > 0) {
            if (seeds < 1) throw prune::value_error("--seeds " + std::to_string(seeds) + " (expected >= 1)");
            run.seeds = seeds;
        }
        if (app.count("--epochs") > 0) {
            if (epochs < 1) throw prune::value_error("--epochs " + std::to_string(epochs) + " (expected >= 1)");
            run.finetune.epochs = epochs;
        }
        if (app.count("--lr") > 0) {
            prune_cli::check_flag("--lr", lr, prune_cli::above(0));
            run.finetune.learning_rate = lr;
        }
        if (app.count("--max-steps") > 0) {
            if (max_steps < 1 || max_steps > 1000) {
                throw prune::value_error("--max-steps " + std::to_string(max_steps) + " (expected 1..1000 m-pruning steps)");
            }
            run.m_max_steps = static_cast<std::size_t>(max_steps);
        }
        if (app.count("--train-rows") > 0) {
            if (train_rows < 1) throw prune::value_error("--train-rows " + std::to_string(train_rows) + " (expected >= 1)");
            run.train_rows = static_cast<std::size_t>(train_rows);
        }
        if (app.count("--dev-rows") > 0) {
            if (dev_rows < 1) throw prune::value_error("--dev-rows " + std::to_string(dev_rows) + " (expected >= 1)");
            run.dev_rows = static_cast<std::size_t>(dev_rows);
        }
        run.threads = threads;
        { prune::io::output_directory probe(out_dir); }  // fail before any work when --out is unwritable

        const fs::path self = fs::canonical("/proc/self/exe");
        const fs::path cache(cache_dir);
        struct task_files {
            std::string name;
            fs::path train, dev;
        };
        std::vector<task_files> task_list;
        fs::path model;
        const std::string suffix = "-s" + std::to_string(data_seed) + "-" + std::to_string(run.train_rows) + "x" +
                                   std::to_string(run.dev_rows);
        // The WordNet-GLUE suite: its train synsets' text is also the pre-training corpus, so the
        // default model never saw a dev synset.
        const fs::path data = cache / ("wordnet-glue" + suffix);
        auto ensure_data = [&] {
            if (!fs::exists(data / "stats.json")) {
                fs::create_directories(cache);
                run_sibling(self, "prune-data",
                            {"wordnet", "--out=" + data.string(), "--seed", std::to_string(data_seed), "--train-rows",
                             std::to_string(run.train_rows), "--dev-rows", std::to_string(run.dev_rows)});
            }
        };
        if (!train_file.empty()) {
            if (model_dir.empty()) throw prune::value_error("--train/--dev need --model (a pre-trained BERT with vocab.txt)");
            task_list.push_back({task_name.empty() ? fs::path(train_file).parent_path().filename().string() : task_name,
                                 train_file, dev_file});
        } else {
            ensure_data();
            if (tasks.empty()) tasks = prune::data::wordnet_default_tasks();
            for (const auto& t : tasks) {
                if (!fs::exists(data / t / "train.jsonl")) {
                    throw prune::value_error("unknown task '" + t + "' (not in " + data.string() + ")");
                }
                task_list.push_back({t, data / t / "train.jsonl", data / t / "dev.jsonl"});
            }
        }
        if (!model_dir.empty()) {
            model = model_dir;
        } else {
            model = cache / (run.model_name + "-s" + std::to_string(data_seed));
            if (!fs::exists(model / "model.safetensors")) {
                ensure_data();
                std::vector<std::string> arguments = {"--data=" + data.string(), "--out=" + model.string(), "--seed",
                                                      std::to_string(data_seed)};
                arguments.insert(arguments.end(), run.pretrain_arguments.begin(), run.pretrain_arguments.end());
                run_sibling(self, "prune-pretrain", arguments);
            }
        }

        prune::bert::load_options load;
        load.require_head = false;
        const weights pretrained = prune::bert::load_model(model, load);

        std::vector<lottery::task_result> results;
        progress bar(cost_per_seed * static_cast<double>(run.seeds * static_cast<int>(task_list.size())));
        for (const auto& t : task_list) {
            std::vector<labeled_sequence> train, dev;
            int num_labels = 0;
            const auto glue = prune::data::glue_task_named(t.name);
            if (t.train.extension() == ".tsv" || t.dev.extension() == ".tsv") {
                if (!glue) {
                    throw prune::value_error(t.train.string() + ": a .tsv file needs --task naming its GLUE task (CoLA, "
                                             "SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE or WNLI) to know its columns, got '" +
                                             t.name + "'");
                }
                auto columns = glue->columns;
                columns.labels.vocab_size = static_cast<std::size_t>(pretrained.cfg.vocab_size);
                prune::bert::config cfg = pretrained.cfg;
                num_labels = static_cast<int>(columns.labels.num_labels);
                cfg.num_labels = num_labels;
                train = prune::bert::to_sequences(prune::data::read_glue_tsv(t.train, columns), cfg, model / "vocab.txt");
                dev = prune::bert::to_sequences(prune::data::read_glue_tsv(t.dev, columns), cfg, model / "vocab.txt");
            } else {
                // labels are read against a config with enough labels, then counted
                prune::bert::config probe_cfg = pretrained.cfg;
                probe_cfg.num_labels = 1000;
                train = prune::bert::load_sequences(t.train, probe_cfg, model);
                dev = prune::bert::load_sequences(t.dev, probe_cfg, model);
                num_labels = std::max(count_labels(train), count_labels(dev));
            }
            const bool regression = num_labels == 1 && glue && glue->columns.labels.num_labels == 1;  // STS-B
            if (num_labels < 2 && !regression) throw prune::value_error(t.train.string() + ": fewer than 2 classes");
            settings task_run = run;
            task_run.metric = prune::bert::metrics::resolve(metric == "auto" && glue ? glue->metric : metric, num_labels);
            lottery::task_result task;
            task.name = t.name;
            task.metric = task_run.metric;
            task.train_size = train.size();
            task.dev_size = dev.size();
            task.majority = majority_baseline(train, dev, task_run.metric, num_labels);
            for (int s = 0; s < run.seeds; ++s) {
                const std::string where = t.name + " seed " + std::to_string(s + 1) + "/" + std::to_string(run.seeds);
                task.seeds.push_back(run_seed(pretrained, train, dev, num_labels, s, task_run, bar, where));
            }
            results.push_back(std::move(task));
        }
        std::fprintf(stderr, "\n");

        nlohmann::json configuration = {
            {"mode", run.mode},
            {"model", model.string()},
            {"tasks", nlohmann::json::array()},
            {"seeds", run.seeds},
            {"data_seed", data_seed},
            {"train_rows", run.train_rows},
            {"dev_rows", run.dev_rows},
            {"ratio", run.ratio},
            {"m_amount", run.m_amount},
            {"m_max_steps", run.m_max_steps},
            {"finetune", {{"epochs", run.finetune.epochs},
                          {"learning_rate", run.finetune.learning_rate},
                          {"batch_size", run.finetune.batch_size},
                          {"warmup_fraction", run.finetune.warmup_fraction},
                          {"weight_decay", run.finetune.optimizer.weight_decay},
                          {"max_grad_norm", run.finetune.max_grad_norm}}},
            {"importance", {{"absolute_value", "per-example"}, {"normalization", "layer+global"}}},
        };
        for (const auto& t : task_list) {
            configuration["tasks"].push_back({{"name", t.name}, {"train", t.train.string()}, {"dev", t.dev.string()}});
        }
        prune::io::output_directory out(out_dir);
        lottery::write_report(out.path(), results, configuration, bar.seconds());
        out.commit();
        std::fprintf(stderr, "prune-lottery: wrote %s/report.md (%.1f min)\n", out_dir.c_str(), bar.seconds() / 60.0);
    });
}

}  // namespace prune_examples::prune_lottery
