// prune-llm: the decoder experiment -- what a pruned decoder still knows (docs/llm.md).
//
//   prune-llm [--quick | --full] [--model DIR --text F [--train-text F]] [--out llm-out] [--cache prune-cache]
//             [--seed 0] [--threads 0] [--wordnet /usr/share/wordnet]
//
// With no --model, the built-in default needs nothing from the internet:
//   1. a dictionary text from Debian's WordNet (prune/data/wordnet_lm.hpp): one line per synset,
//      "word : definition . word is a noun . word is a kind of hypernym .", split by synset into
//      training and held-out entries; cached under --cache
//   2. a small Llama with grouped-query attention and a byte-level BPE pre-trained on the
//      training entries for a fixed number of steps (prune-pretrain --arch llama's code), so the
//      model and the report are the same on any machine; cached under --cache
// Then, on that model (or on --model DIR with held-out text --text F):
//   3. held-out perplexity, and WordNet probes scored by the model's likelihood, each with the
//      context-free baseline (examples/llm/measure.hpp)
//   4. curves: magnitude, Wanda and SparseGPT at growing sparsity and N:M; query heads removed by
//      Michel importance, Taylor scores or at random; MLP channels by Taylor scores or at random;
//      layers by Block Influence or at random (examples/llm/curves.hpp)
//   5. the lottery (examples/llm/lottery.hpp): s-pruning's good subnetwork, random and bad ones of
//      its size, each measured pruned and after re-training from the pre-trained weights
//   6. --out: report.md, report.json and the SVG charts, written whole or not at all
// Progress with an ETA on stderr. Bad input: one line, exit 2.
#include "common/cli.hpp"
#include "common/outputs.hpp"
#include "decoder/pretrain_llama.hpp"
#include "llm/report.hpp"

#include <prune/data/wordnet.hpp>
#include <prune/io/atomic.hpp>
#include <prune/nn/process.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace prune_examples::prune_llm {

namespace fs = std::filesystem;

namespace {

/// The sizes of a mode.
struct settings {
    std::string mode;                        ///< quick, default, full
    prune::decoder::llama_shape shape;       ///< the built-in model
    std::size_t vocab = 2048, context = 128; ///< BPE ids, tokens per window
    std::size_t steps = 0, batch = 16;       ///< pre-training
    std::size_t probes = 200;                ///< questions per probe kind
    std::size_t eval_windows = 64;           ///< held-out perplexity windows
    std::size_t calibration = 32;            ///< calibration / importance windows
    std::vector<double> sparsities;          ///< unstructured points
    std::vector<std::pair<int, int>> patterns;  ///< N:M points
    std::size_t head_steps = 7, channel_steps = 7;  ///< structured points per method
    std::size_t lottery_seeds = 2, retrain_steps = 100;  ///< the lottery's draws and re-training
};

/// The settings of a mode: quick (a first look and CI), default, full (larger).
settings settings_for(const std::string& mode) {
    settings s;
    s.mode = mode;
    s.shape.layers = 4;
    s.shape.hidden = 128;
    s.shape.heads = 8;
    s.shape.kv_heads = 2;
    s.shape.intermediate = 352;
    s.steps = 2000;
    s.sparsities = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7};
    s.patterns = {{2, 4}, {4, 8}};
    if (mode == "quick") {
        s.shape.layers = 2;
        s.steps = 200;
        s.probes = 80;
        s.eval_windows = 24;
        s.calibration = 16;
        s.sparsities = {0.3, 0.5, 0.7};
        s.patterns = {{2, 4}};
        s.head_steps = s.channel_steps = 3;
        s.lottery_seeds = 1;
        s.retrain_steps = 30;
    } else if (mode == "full") {
        s.shape.layers = 6;
        s.shape.hidden = 256;
        s.shape.intermediate = 704;
        s.steps = 4000;
        s.probes = 400;
        s.eval_windows = 128;
        s.lottery_seeds = 3;
        s.retrain_steps = 300;
    }
    return s;
}

/// The experiment's inputs once the data and model exist.
struct inputs {
    prune::decoder::weights model;
    prune::text::bpe_tokenizer tokenizer;
    std::string model_dir;
    fs::path held_out, calibration_text;  ///< text files
};

/// The first `n` windows of `context` tokens of a text file (whole lines up to ~n windows' worth).
std::vector<std::vector<std::int32_t>> first_windows(const fs::path& file, const prune::text::bpe_tokenizer& tok, std::size_t context,
                                                     std::size_t n) {
    const std::string text = prune::io::read_text_file(file);
    const std::size_t cut = text.find('\n', std::min(text.size(), n * context * 8));
    auto windows = prune::decoder::token_windows(tok.encode(text.substr(0, cut)), context);
    if (windows.size() > n) windows.resize(n);
    if (windows.empty()) throw prune::value_error(file.string() + ": not one window of " + std::to_string(context) + " tokens");
    return windows;
}

/// The built-in data and model under the cache (made when missing).
inputs built_in(const settings& s, const prune::data::wordnet_lm& lm, const fs::path& cache, std::uint64_t seed, int threads) {
    const fs::path data = cache / ("wordnet-lm-v1-s" + std::to_string(seed));
    if (!fs::exists(data / "pretrain" / "dev.txt")) {
        fs::create_directories(cache);
        prune::io::output_directory out(data);
        fs::create_directories(out / "pretrain");
        std::string train, dev;
        for (const auto& l : lm.train) train += l + "\n";
        for (const auto& l : lm.dev) dev += l + "\n";
        prune::io::write_file_atomically(out / "pretrain" / "train.txt", train);
        prune::io::write_file_atomically(out / "pretrain" / "dev.txt", dev);
        out.commit();
    }
    const auto& sh = s.shape;
    const fs::path model = cache / ("llm-llama-" + std::to_string(sh.layers) + "x" + std::to_string(sh.hidden) + "-h" +
                                    std::to_string(sh.heads) + "kv" + std::to_string(sh.kv_heads) + "-" + std::to_string(s.steps) +
                                    "steps-s" + std::to_string(seed));
    if (!fs::exists(model / "config.json")) {
        prune_lm::llama_pretrain_flags f;
        f.data = data.string();
        f.out = model.string();
        f.shape = sh;
        f.vocab_size = s.vocab;
        f.context = s.context;
        f.train.steps = s.steps;
        f.train.batch_size = s.batch;
        f.train.seed = seed;
        f.train.threads = threads;
        prune_lm::pretrain_llama(f);
    }
    return {prune::decoder::load_model(model.string()), prune::text::bpe_tokenizer::from_file(model / "tokenizer.json"), model.string(),
            data / "pretrain" / "dev.txt", data / "pretrain" / "train.txt"};
}

/// Progress with an ETA over a known number of points.
struct progress {
    std::size_t total = 0, done = 0;
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    void operator()(const llm_experiment::point& p) {
        ++done;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        std::fprintf(stderr, "prune-llm: [%zu/%zu] %s %s %s: perplexity %.2f  (%.0f s, ETA %.0f s)\n", done, total, p.family.c_str(),
                     p.method.c_str(), p.label.c_str(), p.m.perplexity, s, s / static_cast<double>(done) * static_cast<double>(total - done));
    }
};

/// Every curve of the experiment.
std::vector<llm_experiment::point> run_curves(const settings& s, llm_experiment::curve_inputs in, std::size_t layers) {
    progress bar;
    bar.total = 3 * (s.sparsities.size() + s.patterns.size()) + 3 * s.head_steps + 2 * s.channel_steps + 2 * (layers - 1);
    in.done = [&](const llm_experiment::point& p) { bar(p); };
    std::vector<llm_experiment::point> points;
    prune::decoder::workspace ws(in.threads);
    llm_experiment::unstructured_curves(in, s.sparsities, s.patterns, points, ws);
    for (const char* m : {"michel", "taylor", "random"}) llm_experiment::head_curve(in, m, s.head_steps, points, ws);
    for (const char* m : {"taylor", "random"}) llm_experiment::channel_curve(in, m, s.channel_steps, points, ws);
    for (const char* m : {"block-influence", "random"}) llm_experiment::layer_curve(in, m, points, ws);
    return points;
}

}  // namespace

/// The job: build/bin/prune-llm's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    prune::nn::setup_process(argv);
    CLI::App app("prune-llm: what a pruned decoder still knows -- perplexity and WordNet probes of a small Llama pruned "
                 "by magnitude, Wanda, SparseGPT, heads, MLP channels and layers",
                 "prune-llm");
    bool quick = false, full_mode = false;
    std::string model_dir, text_file, out_dir = "llm-out", cache_dir = "prune-cache", wordnet_dir = "/usr/share/wordnet";
    std::uint64_t seed = 0;
    int threads = 0;
    auto* quick_flag = app.add_flag("--quick", quick, "a first look: a 2-layer model, fewer points and probes");
    app.add_flag("--full", full_mode, "a larger model (6 x 256) trained longer, more probes")->excludes(quick_flag);
    auto* model_opt = app.add_option("--model", model_dir, "your own causal LM (Llama or GPT-2 directory with tokenizer.json)");
    auto* text_opt = app.add_option("--text", text_file, "held-out text for --model (perplexity; calibration and re-training too unless --train-text)");
    std::string train_text;
    auto* train_opt = app.add_option("--train-text", train_text,
                                     "text for --model's calibration, importance and re-training (default: --text, then the "
                                     "re-trained perplexities are measured on the text trained on)");
    model_opt->needs(text_opt);
    text_opt->needs(model_opt);
    train_opt->needs(model_opt);
    app.add_option("--out", out_dir, "output directory (written atomically)")->capture_default_str();
    app.add_option("--cache", cache_dir, "where the generated text and pre-trained model are kept")->capture_default_str();
    app.add_option("--seed", seed, "seed of the text's split, the model and the random orders")
        ->check(prune_cli::unsigned_integer())->capture_default_str();
    app.add_option("--threads", threads, "threads (0 = every core; at most 256)")->check(prune_cli::threads_flag())->capture_default_str();
    long long probes = 0;  // signed: -1 must be refused, not read as 2^64 - 1
    app.add_option("--probes", probes, "questions per probe kind (default: 80 with --quick, 200, 400 with --full)");
    app.add_option("--wordnet", wordnet_dir, "Debian's WordNet (package wordnet-base)")->capture_default_str();

    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", model_dir}, {"--text", text_file}, {"--train-text", train_text}, {"--cache", cache_dir}},
                                   {{"--out", out_dir}});
        prune::io::remove_staging_on_signal();
        { prune::io::output_directory probe(out_dir); }  // fail before any work when --out is unwritable
        const auto start = std::chrono::steady_clock::now();
        settings s = settings_for(quick ? "quick" : full_mode ? "full" : "default");
        if (app.count("--probes") > 0) {
            if (probes < 4 || probes > 100000)
                throw prune::value_error("--probes " + std::to_string(probes) + " (expected 4..100000 questions per kind; pos asks a quarter per class)");
            s.probes = static_cast<std::size_t>(probes);
        }
        prune::data::wordnet_lm_options lo;
        lo.seed = seed;
        lo.probes_per_kind = s.probes;
        const auto lm = prune::data::build_wordnet_lm(prune::data::load_wordnet(wordnet_dir), lo);
        inputs in = model_dir.empty() ? built_in(s, lm, cache_dir, seed, threads)
                                      : inputs{prune::decoder::load_model(model_dir), prune_lm::tokenizer_for(model_dir, "the probes (text questions)"),
                                               model_dir, text_file, train_text.empty() ? text_file : train_text};
        const auto context = std::min<std::size_t>(s.context, static_cast<std::size_t>(in.model.cfg.max_position_embeddings));
        const auto eval = llm_experiment::make_eval_set(lm, in.tokenizer, first_windows(in.held_out, in.tokenizer, context, s.eval_windows),
                                                       static_cast<std::size_t>(in.model.cfg.max_position_embeddings));
        llm_experiment::curve_inputs ci{&in.model, &eval, first_windows(in.calibration_text, in.tokenizer, context, s.calibration), threads, seed, {}};
        prune::decoder::workspace ws(threads);
        const llm_experiment::measurement full = llm_experiment::measure(in.model, eval, ws);
        std::fprintf(stderr, "prune-llm: full model: perplexity %.2f on %zu held-out windows; %zu probe questions\n", full.perplexity,
                     eval.windows.size(), eval.probes.size());
        const auto points = run_curves(s, ci, in.model.layers.size());
        llm_experiment::lottery_settings ls;
        ls.seeds = s.lottery_seeds;
        ls.retrain_steps = s.retrain_steps;
        ls.train = first_windows(in.calibration_text, in.tokenizer, context, s.retrain_steps * 16);
        ls.note = [&](const std::string& text) { std::fprintf(stderr, "prune-llm: lottery: %s\n", text.c_str()); };
        const auto lottery = llm_experiment::run_lottery(ci, ls, ws);
        nlohmann::ordered_json settings_json{{"mode", s.mode},         {"model", in.model_dir},       {"seed", seed},
                                             {"context", context},     {"eval_windows", eval.windows.size()},
                                             {"calibration_windows", ci.calibration.size()}, {"probes_per_kind", s.probes},
                                             {"probes_skipped", eval.skipped},
                                             {"pretrain_steps", model_dir.empty() ? s.steps : 0},
                                             {"held_out_text", in.held_out.string()},
                                             {"train_text", in.calibration_text.string()},
                                             {"lottery_seeds", s.lottery_seeds}, {"retrain_steps", s.retrain_steps}};
        prune::io::output_directory out(out_dir);
        llm_experiment::write_report(out.path(), settings_json, full, points, lottery);
        out.commit();
        std::fprintf(stderr, "prune-llm: wrote %s/report.md (%.0f s)\n", out_dir.c_str(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    });
}

}  // namespace prune_examples::prune_llm
