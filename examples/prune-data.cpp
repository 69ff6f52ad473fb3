// prune-data: builds data suites for the experiment. `prune-data wordnet --out DIR [--seed S]`
// writes WordNet-GLUE (prune/data/wordnet_tasks.hpp, docs/wordnet-glue.md) from Debian's
// wordnet-base: DIR/<task>/{train,dev}.jsonl, DIR/stats.json, DIR/vocab.txt and
// DIR/pretrain/{train,dev}.txt, all at once (staged, then renamed). Same seed, same bytes.
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"

#include <prune/data/wordnet.hpp>
#include <prune/data/wordnet_tasks.hpp>
#include <prune/error.hpp>
#include <prune/io/atomic.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    CLI::App app("prune-data: builds data suites (wordnet: WordNet-GLUE from Debian's wordnet-base)", "prune-data");
    app.require_subcommand(1);
    auto* wordnet = app.add_subcommand("wordnet", "WordNet-GLUE: tasks, vocab.txt and a pre-training corpus");
    std::string out;
    std::string wordnet_dir = "/usr/share/wordnet";
    prune::data::wordnet_glue_options options;
    wordnet->add_option("--out", out, "output directory (replaced atomically)")->required();
    wordnet->add_option("--seed", options.seed, "seed of the split and the sampling")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    wordnet->add_option("--wordnet-dir", wordnet_dir, "directory with data.{noun,verb,adj,adv}")->capture_default_str();
    wordnet->add_option("--tasks", options.tasks, "tasks (default supersense pos concrete): supersense pos concrete hypernym same_supersense cohyponym example_match same_pos")
        ->capture_default_str();
    // The sizes are read as signed numbers and checked in the body: as std::size_t, CLI11 would
    // read -1 as 2^64 - 1 ("all rows").
    auto size_flag = [](std::size_t value) { return static_cast<long long>(value); };
    long long train_rows = size_flag(options.train_rows), dev_rows = size_flag(options.dev_rows);
    long long vocab_size = size_flag(options.vocab_size), max_words = size_flag(options.max_words);
    long long max_length = size_flag(options.max_length);
    wordnet->add_option("--train-rows", train_rows, "rows per task in train (>= 1)")->capture_default_str();
    wordnet->add_option("--dev-rows", dev_rows, "rows per task in dev (>= 1)")->capture_default_str();
    wordnet->add_option("--vocab-size", vocab_size, "WordPiece vocabulary size")->capture_default_str();
    wordnet->add_option("--max-words", max_words, "longest definition/example used (words, >= 1)")->capture_default_str();
    wordnet->add_flag("--ids", options.write_ids, "also write tokenized <task>/{train,dev}.ids.jsonl");
    wordnet->add_option("--max-length", max_length, "truncation of the .ids.jsonl rows (tokens, >= 3: [CLS] a [SEP] b [SEP])")
        ->capture_default_str();

    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--wordnet-dir", wordnet_dir}}, {{"--out", out}});
        // Sizes first: a bad one is an error before anything is read or written.
        auto at_least = [](const char* flag, long long value, long long least) {
            if (value < least) {
                throw prune::value_error(std::string(flag) + " " + std::to_string(value) + " (expected >= " +
                                         std::to_string(least) + ")");
            }
            return static_cast<std::size_t>(value);
        };
        options.train_rows = at_least("--train-rows", train_rows, 1);
        options.dev_rows = at_least("--dev-rows", dev_rows, 1);
        options.vocab_size = at_least("--vocab-size", vocab_size, 1);
        options.max_words = at_least("--max-words", max_words, 1);
        options.max_length = at_least("--max-length", max_length, 3);
        prune::io::remove_staging_on_signal();
        prune::io::output_directory staging(out);  // fails now, before any work, if OUT cannot be written
        const auto start = std::chrono::steady_clock::now();
        auto seconds = [&] {
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        };
        const auto db = prune::data::load_wordnet(wordnet_dir);
        std::fprintf(stderr, "prune-data: read %zu synsets from %s (%.1f s)\n", db.synsets.size(), wordnet_dir.c_str(),
                     seconds());
        const auto suite = prune::data::build_wordnet_glue(db, options);
        std::fprintf(stderr, "prune-data: built %zu tasks and a %zu-token vocabulary (%.1f s)\n", suite.tasks.size(),
                     suite.vocabulary.size(), seconds());
        prune::data::write_wordnet_glue_files(suite, staging.path(), options);
        staging.commit();
        for (const auto& t : suite.tasks)
            std::fprintf(stderr, "prune-data:   %-16s train %zu, dev %zu\n", t.name.c_str(), t.train.size(), t.dev.size());
        std::fprintf(stderr, "prune-data: wrote %s (%.1f s)\n", out.c_str(), seconds());
    });
}
