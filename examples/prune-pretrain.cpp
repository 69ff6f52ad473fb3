// prune-pretrain: masked-language-model pre-training of a small BERT on the text of a
// `prune-data wordnet` directory (DIR/pretrain/train.txt: definitions and examples of the
// train synsets only; DIR/vocab.txt), written as a Hugging Face BertForMaskedLM directory
// (config.json, model.safetensors with bert.* and cls.predictions.*, vocab.txt), atomically.
//
//   prune-pretrain --data DIR --out MODEL [--layers 2 --hidden 128 --heads 2 --intermediate 512]
//                  [--minutes M | --steps N] [--seed S] [--dev-sentences 1024 --dev-every 200]
//
// The held-out MLM loss is computed on DIR/pretrain/dev.txt (the dev synsets' text: never
// trained on), on --dev-sentences sequences masked once with a constant seed (the same
// positions at every evaluation and in every run), every --dev-every steps and at the end; it
// is printed and stored in the safetensors metadata (prune_pretrain_dev_mlm_loss) next to the
// training loss. It does not change the weights.
//
// Same seed and --steps, same bytes. With --minutes the number of steps comes from a timed
// trial (3 untimed warm-up steps, then 10 timed ones); it is printed (and stored in the
// safetensors metadata) so that --steps reproduces it. --threads does not change the bytes.
// docs/pretraining.md has the defaults' measurements.
//
// --arch llama (examples/decoder/pretrain_llama.hpp) pre-trains a small Llama with grouped-query
// attention on the causal-LM loss instead, with its own byte-level BPE, and reports the held-out
// perplexity of DIR/pretrain/dev.txt:
//
//   prune-pretrain --arch llama --data DIR --out MODEL [--layers 2 --hidden 128 --heads 4 --kv-heads 2
//                  --intermediate 352 --vocab-size 2048 --max-length 128 --steps 300 --batch-size 16
//                  --lr 1e-3 --warmup 0.05 --seed 0 --threads 0]
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "decoder/pretrain_llama.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/pretrain.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/io/atomic.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace {

/// value_error naming the flag when `prune-pretrain --arch llama`'s values cannot make or train a model.
void check_llama_flags(const prune_lm::llama_pretrain_flags& f) {
    if (f.context < 2 || f.context > 1 << 16)
        throw prune::value_error("--max-length " + std::to_string(f.context) + " (expected 2..65536 tokens per window)");
    prune::decoder::llama_shape s = f.shape;
    s.vocab = static_cast<int>(f.vocab_size);
    s.max_positions = static_cast<int>(f.context);
    s.validate("--");
    if (f.train.steps == 0) throw prune::value_error("--steps must be > 0");
    if (f.train.batch_size == 0) throw prune::value_error("--batch-size must be > 0");
}

}  // namespace

int main(int argc, char** argv) {
    prune::nn::setup_process(argv);  // OpenBLAS: its AVX-512 kernels (0.3.21 does not know this CPU), single-threaded
    CLI::App app("prune-pretrain: MLM pre-training of a small BERT on a prune-data wordnet directory",
                 "prune-pretrain");
    std::string data_dir;
    std::string out;
    int layers = 2, hidden = 128, heads = 4, intermediate = 512;
    double minutes = 0.0;
    std::size_t steps = 0;
    prune::bert::pretrain_options o;
    o.seed = 0;
    app.add_option("--data", data_dir, "output of `prune-data wordnet` (uses pretrain/train.txt and vocab.txt)")
        ->required();
    app.add_option("--out", out, "model directory to write (replaced atomically)")->required();
    app.add_option("--layers", layers, "encoder layers")->capture_default_str();
    app.add_option("--hidden", hidden, "hidden size")->capture_default_str();
    app.add_option("--heads", heads, "attention heads")->capture_default_str();
    app.add_option("--intermediate", intermediate, "feed-forward width (--arch llama: 352 unless given)")->capture_default_str();
    auto* minutes_opt = app.add_option("--minutes", minutes, "wall-time budget (default 3.5 when --steps is absent)");
    auto* steps_opt = app.add_option("--steps", steps, "optimiser steps (reproducible bit for bit; --arch llama: 300 unless given)")
                          ->check(prune_cli::unsigned_integer());
    minutes_opt->excludes(steps_opt);
    app.add_option("--seed", o.seed, "seed of initialisation, order, masks and dropout")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--batch-size", o.batch_size, "sequences per step (--arch llama: 16 windows unless given)")->check(prune_cli::unsigned_integer())->capture_default_str();
    app.add_option("--max-length", o.max_length, "tokens per sequence (--arch llama: the window and max_position_embeddings, 128 unless given)")->check(prune_cli::unsigned_integer())->capture_default_str();
    app.add_option("--lr", o.learning_rate, "peak learning rate (--arch llama: 1e-3 unless given)")->capture_default_str();
    app.add_option("--warmup", o.warmup_fraction, "share of steps warming up (--arch llama: 0.05 unless given)")->capture_default_str();
    app.add_option("--threads", o.threads, "threads of the training pass (0 = every core; at most 256); the output does not depend on it")
        ->check(prune_cli::threads_flag())
        ->capture_default_str();
    double dropout = 0.0;  // docs/pretraining.md: off, the MLM loss of a 3.5-minute run falls further
    app.add_option("--dropout", dropout, "hidden and attention dropout during pre-training (0 turns it off)")
        ->capture_default_str();
    long long dev_sentences = 1024, dev_every = 200;  // signed: as std::size_t, CLI11 reads -1 as 2^64 - 1
    app.add_option("--dev-sentences", dev_sentences,
                   "held-out sequences (from pretrain/dev.txt) scored for the held-out MLM loss (0: none)")
        ->capture_default_str();
    app.add_option("--dev-every", dev_every, "held-out MLM loss every N steps (0: at the end only)")
        ->capture_default_str();
    bool init_only = false;
    app.add_flag("--init-only", init_only,
                 "write the seed's initial weights without training (the from-scratch baseline)");
    std::string arch = "bert";
    app.add_option("--arch", arch, "bert (masked LM) or llama (causal LM)")
        ->check(CLI::IsMember({"bert", "llama"}))
        ->capture_default_str();
    long long kv_heads = 2, vocab_size = 2048;  // signed: -1 must be refused, not read as 2^64 - 1
    auto* kv_opt = app.add_option("--kv-heads", kv_heads, "llama: key/value heads (divides --heads)")->capture_default_str();
    auto* vocab_opt = app.add_option("--vocab-size", vocab_size, "llama: byte-level BPE vocabulary")->capture_default_str();

    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--data", data_dir}}, {{"--out", out}});
        const std::vector<std::pair<const char*, CLI::Option*>> bert_only{
            {"--minutes", minutes_opt}, {"--dropout", app.get_option("--dropout")}, {"--dev-sentences", app.get_option("--dev-sentences")},
            {"--dev-every", app.get_option("--dev-every")}};
        const std::vector<std::pair<const char*, CLI::Option*>> llama_only{{"--kv-heads", kv_opt}, {"--vocab-size", vocab_opt}};
        for (const auto& [flag, opt] : arch == "llama" ? bert_only : llama_only)
            if (opt->count() > 0) throw prune::value_error(std::string(flag) + " does not apply to --arch " + arch);
        if (arch == "llama") {
            prune_lm::llama_pretrain_flags f;
            f.data = data_dir;
            f.out = out;
            f.shape.layers = layers;
            f.shape.hidden = hidden;
            f.shape.heads = heads;
            f.shape.kv_heads = static_cast<int>(std::clamp<long long>(kv_heads, -1, 1 << 20));
            f.shape.intermediate = app.get_option("--intermediate")->count() > 0 ? intermediate : f.shape.intermediate;
            if (vocab_size < 257 || vocab_size > 1 << 20)
                throw prune::value_error("--vocab-size " + std::to_string(vocab_size) + " (expected 257..1048576: <|endoftext|> and the 256 bytes, then merges)");
            f.vocab_size = static_cast<std::size_t>(vocab_size);
            auto given = [&](const char* flag) { return app.get_option(flag)->count() > 0; };
            if (given("--max-length")) f.context = o.max_length;
            if (given("--batch-size")) f.train.batch_size = o.batch_size;
            if (given("--lr")) f.train.learning_rate = prune_cli::check_flag("--lr", o.learning_rate, prune_cli::above(0));
            if (given("--warmup")) f.train.warmup_fraction = prune_cli::check_flag("--warmup", o.warmup_fraction, prune_cli::closed(0, 1));
            if (steps_opt->count() > 0) f.train.steps = steps;
            f.train.seed = o.seed;
            f.train.threads = o.threads;
            f.init_only = init_only;
            for (const char* flag : {"--steps", "--batch-size", "--lr", "--warmup"})
                if (init_only && given(flag)) throw prune::value_error(std::string(flag) + " does not apply to --init-only (nothing is trained)");
            check_llama_flags(f);
            prune::io::remove_staging_on_signal();
            prune_lm::pretrain_llama(f);
            return;
        }
        namespace fs = std::filesystem;
        const fs::path data(data_dir);
        if (layers <= 0 || hidden <= 0 || heads <= 0 || intermediate <= 0 || hidden % heads != 0) {
            throw prune::value_error("--layers/--hidden/--heads/--intermediate must be > 0 with hidden divisible by heads");
        }
        if (steps_opt->count() == 0 && minutes_opt->count() == 0) minutes = 3.5;
        if (steps_opt->count() > 0 && steps == 0) throw prune::value_error("--steps must be > 0");
        if (minutes_opt->count() > 0) prune_cli::check_flag("--minutes", minutes, prune_cli::above(0));
        prune_cli::check_flag("--dropout", dropout, prune_cli::interval{0, 1, false, true});
        prune_cli::check_flag("--lr", o.learning_rate, prune_cli::above(0));
        prune_cli::check_flag("--warmup", o.warmup_fraction, prune_cli::closed(0, 1));
        if (dev_sentences < 0) throw prune::value_error("--dev-sentences " + std::to_string(dev_sentences) + " (expected >= 0)");
        if (dev_every < 0) throw prune::value_error("--dev-every " + std::to_string(dev_every) + " (expected >= 0)");
        o.dev_every = static_cast<std::size_t>(dev_every);
        o.hidden_dropout = static_cast<float>(dropout);
        o.attention_dropout = static_cast<float>(dropout);
        o.steps = steps;
        o.minutes = minutes;
        const fs::path vocab_txt = data / "vocab.txt";
        const fs::path corpus_txt = data / "pretrain" / "train.txt";
        if (!fs::is_regular_file(vocab_txt) || !fs::is_regular_file(corpus_txt)) {
            throw prune::io_error("'" + data_dir + "' is not a prune-data wordnet directory (expected vocab.txt and " +
                                  "pretrain/train.txt)");
        }
        prune::io::remove_staging_on_signal();
        {  // fail before any work when OUT cannot be written
            prune::io::output_directory probe(out);
        }
        const auto start = std::chrono::steady_clock::now();
        auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
        const auto tok = prune::text::tokenizer::from_file(vocab_txt);
        const auto corpus = prune::bert::read_mlm_corpus(corpus_txt, tok, o.max_length - 2);
        std::fprintf(stderr, "prune-pretrain: %zu lines, %zu word pieces, vocabulary %zu (%.1f s)\n",
                     corpus.lines.size(), corpus.tokens, tok.vocab().size(), seconds());
        // The held-out set: the dev synsets' text (prune-data writes it beside train.txt; a data
        // directory without it gets no held-out loss, said so).
        const fs::path dev_txt = data / "pretrain" / "dev.txt";
        std::optional<prune::bert::mlm_eval_set> dev;
        if (dev_sentences > 0 && !init_only) {
            if (fs::is_regular_file(dev_txt)) {
                dev = prune::bert::make_mlm_eval_set(prune::bert::read_mlm_corpus(dev_txt, tok, o.max_length - 2),
                                                     tok.vocab(), o, static_cast<std::size_t>(dev_sentences));
                std::fprintf(stderr, "prune-pretrain: held-out set: %zu sequences from %zu lines of %s, %zu masked tokens\n",
                             dev->sequences, dev->lines, dev_txt.c_str(), dev->positions);
            } else {
                std::fprintf(stderr, "prune-pretrain: no %s: no held-out loss\n", dev_txt.c_str());
            }
        }
        auto cfg = prune::bert::pretraining_config(layers, hidden, heads, intermediate,
                                                   static_cast<int>(tok.vocab().size()));
        std::size_t last_print = 0;
        double smoothed = 0.0;
        auto report = [&](const prune::bert::pretrain_progress& p) {
            smoothed = p.step == 1 ? p.loss : 0.95 * smoothed + 0.05 * p.loss;
            if (!std::isnan(p.dev_loss)) {
                std::fprintf(stderr, "prune-pretrain: step %zu/%zu  held-out loss %.3f\n", p.step, p.total, p.dev_loss);
            }
            if (p.step == 1 || p.step == p.total || p.step - last_print >= 50) {
                last_print = p.step;
                const double per_step = p.seconds / static_cast<double>(p.step);
                std::fprintf(stderr,
                             "prune-pretrain: step %zu/%zu  loss %.3f (avg %.3f)  masked acc %.3f  lr %.2e  "
                             "%.0f s, ETA %.0f s\n",
                             p.step, p.total, p.loss, smoothed, p.accuracy, p.lr, p.seconds,
                             per_step * static_cast<double>(p.total - p.step));
            }
            return true;
        };
        if (init_only) {  // the initialisation pretrain() starts from, untouched
            o.steps = 1;
            o.minutes = 0.0;
        }
        auto result = init_only ? prune::bert::pretrain_initial(cfg, o.seed)
                                : prune::bert::pretrain(cfg, corpus, tok.vocab(), o, report, dev ? &*dev : nullptr);
        std::string hyper;  // the training options, so the stored command reproduces the run
        if (!init_only) {
            char text[200];
            std::snprintf(text, sizeof text, " --batch-size %zu --max-length %zu --lr %g --warmup %g --dropout %g",
                          o.batch_size, o.max_length, o.learning_rate, o.warmup_fraction, dropout);
            hyper = text;
        }
        const std::string command = std::string(init_only ? "prune-pretrain --init-only" : "prune-pretrain") +
                                    " --layers " + std::to_string(layers) + " --hidden " +
                                    std::to_string(hidden) + " --heads " + std::to_string(heads) +
                                    " --intermediate " + std::to_string(intermediate) + (init_only ? std::string() : " --steps " + std::to_string(result.planned_steps)) +
                                    " --seed " + std::to_string(o.seed) + hyper;
        double tail = 0.0;
        const std::size_t n = std::min<std::size_t>(50, result.losses.size());
        for (std::size_t i = result.losses.size() - n; i < result.losses.size(); ++i) tail += result.losses[i];
        tail /= static_cast<double>(std::max<std::size_t>(1, n));
        char loss_text[32];
        std::snprintf(loss_text, sizeof loss_text, "%.4f", tail);
        std::map<std::string, std::string> metadata{{"prune_pretrain_command", command},
                                                    {"prune_pretrain_steps", std::to_string(result.steps)},
                                                    {"prune_pretrain_mlm_loss_last50", loss_text}};
        std::string held_out_text;
        if (dev && !result.dev_losses.empty()) {
            char dev_text[32];
            std::snprintf(dev_text, sizeof dev_text, "%.4f", result.dev_losses.back().second);
            metadata["prune_pretrain_dev_mlm_loss"] = dev_text;
            metadata["prune_pretrain_dev_sequences"] = std::to_string(dev->sequences);
            held_out_text = std::string(", held-out MLM loss ") + dev_text + " (" + std::to_string(dev->sequences) +
                            " sequences of pretrain/dev.txt)";
            // The same measurement on as many sequences of the training text: the generalisation gap.
            const auto held_in = prune::bert::make_mlm_eval_set(corpus, tok.vocab(), o, dev->sequences);
            prune::bert::training_workspace<float> encoder(o.threads);
            prune::bert::mlm_workspace head_ws;
            head_ws.set_pool(&encoder.pool());
            const auto train_eval = prune::bert::mlm_eval_loss(result.model, result.head, held_in, encoder, head_ws);
            std::snprintf(dev_text, sizeof dev_text, "%.4f", train_eval.loss);
            metadata["prune_pretrain_train_sample_mlm_loss"] = dev_text;
            held_out_text += std::string(", the same on training text ") + dev_text;
        }
        prune_cli::refuse_non_finite_weights(prune::bert::parameters(result.model), "not writing model '" + out + "'");
        prune_cli::refuse_non_finite_weights(prune::bert::mlm_head_parameters(result.head), "not writing model '" + out + "'");
        prune::bert::write_pretrained(out, result.model, result.head, vocab_txt, metadata);
        std::fprintf(stderr, "prune-pretrain: %zu steps, MLM loss (mean of the last %zu) %.3f%s; wrote %s (%.1f s)\n",
                     result.steps, n, tail, held_out_text.c_str(), out.c_str(), seconds());
        if (init_only) {
            std::fprintf(stderr, "prune-pretrain: --init-only: wrote the untrained initialisation of seed %llu\n",
                         static_cast<unsigned long long>(o.seed));
        } else if (result.steps != result.planned_steps) {
            std::fprintf(stderr, "prune-pretrain: stopped at the time limit after %zu of %zu planned steps\n",
                         result.steps, result.planned_steps);
        } else if (steps == 0) {
            std::fprintf(stderr, "prune-pretrain: reproduce with --steps %zu --seed %llu\n", result.planned_steps,
                         static_cast<unsigned long long>(o.seed));
        }
    });
}
