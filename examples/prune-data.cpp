// prune-data: builds data suites for the experiment. `prune-data wordnet --out DIR [--seed S]`
// writes WordNet-GLUE (prune/data/wordnet_tasks.hpp, docs/wordnet-glue.md) from Debian's
// wordnet-base: DIR/<task>/{train,dev}.jsonl, DIR/stats.json, DIR/vocab.txt and
// DIR/pretrain/{train,dev}.txt, all at once (staged, then renamed). Same seed, same bytes.
#include "common/cli.hpp"

#include <prune/data/wordnet.hpp>
#include <prune/data/wordnet_tasks.hpp>
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
    wordnet->add_option("--seed", options.seed, "seed of the split and the sampling")->capture_default_str();
    wordnet->add_option("--wordnet-dir", wordnet_dir, "directory with data.{noun,verb,adj,adv}")->capture_default_str();
    wordnet->add_option("--tasks", options.tasks, "tasks (default supersense pos concrete): supersense pos concrete hypernym same_supersense cohyponym example_match same_pos")
        ->capture_default_str();
    wordnet->add_option("--train-rows", options.train_rows, "rows per task in train")->capture_default_str();
    wordnet->add_option("--dev-rows", options.dev_rows, "rows per task in dev")->capture_default_str();
    wordnet->add_option("--vocab-size", options.vocab_size, "WordPiece vocabulary size")->capture_default_str();
    wordnet->add_option("--max-words", options.max_words, "longest definition/example used (words)")->capture_default_str();
    wordnet->add_flag("--ids", options.write_ids, "also write tokenized <task>/{train,dev}.ids.jsonl");
    wordnet->add_option("--max-length", options.max_length, "truncation of the .ids.jsonl rows (tokens)")
        ->capture_default_str();

    return prune_cli::run(app, argc, argv, [&] {
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
