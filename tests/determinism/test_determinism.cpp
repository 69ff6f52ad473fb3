// Determinism of the binaries: the same inputs and seed give bit-identical outputs across two
// runs and at 1 and 2 threads. Each binary runs three times on a tiny BERT (vocab 20, hidden
// 32, 2 layers x 4 heads) and a generated task: twice at 1 thread, once at 2 threads
// (--threads where the binary has it, and OPENBLAS_NUM_THREADS for the BLAS it calls), and
// every output file is compared byte for byte (the batches are small, so the 2-thread runs do
// split the work: the pool of prune/nn/threads.hpp splits token rows over its threads):
//   prune-importance  scores JSON (heads L x H, mlps L)      --normalize none and layer+global
//   prune-heads       masks.json, history.json, model/ (pruned checkpoint)
//   prune-magnitude   the output directory (element masks, report), with --data
//   prune-finetune    model/ (config.json, model.safetensors) and the --json report
//   prune-pretrain    the pre-trained model directory (--steps 4, a hand-made corpus)
//   prune-lottery     --quick on the tiny model and task: report.json without its two wall-time
//                     fields (wall_seconds, tasks[].seeds[].seconds), report.md without the
//                     "wall time N min" phrase, every heatmap SVG byte for byte.
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/weights.hpp>

#include "../support/files.hpp"
#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace prune;

namespace {

using prune_test::read_file;
using prune_test::write_file;

// The toy task of tests/support/tiny_bert.hpp as JSON Lines.
std::string a_before_b(std::size_t n, unsigned seed) {
    struct row {
        std::vector<int> input_ids;
        int label = 0;
    };
    std::string out;
    for (const row& r : prune_test::a_before_b<row>(n, seed)) {
        out += nlohmann::json({{"input_ids", r.input_ids}, {"label", r.label}}).dump() + "\n";
    }
    return out;
}

struct fixture {
    prune_test::temp_dir dir{"prune_determinism"};  // PRUNE_KEEP_TEST_DIR=1 keeps it, to look at the outputs
    fs::path d = dir.path();
    fixture() {
        bert::save_model(bert::random_weights(prune_test::tiny_config(), 11, 0.2f), d / "model");
        write_file(d / "train.jsonl", a_before_b(96, 1));
        write_file(d / "dev.jsonl", a_before_b(48, 2));
        write_file(d / "mask.json", R"({"heads": [[1, 0, 1, 1], [1, 1, 0, 1]], "mlps": [1, 0]})");
        // A corpus for prune-pretrain in prune-data's layout: vocab.txt + pretrain/train.txt.
        const std::vector<std::string> words = {"the", "cat", "dog", "sat", "on", "a", "mat", "ran", "to", "red",
                                                "big", "small", "house", "tree", "saw", "and"};
        std::string vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n";
        for (const auto& w : words) vocab += w + "\n";
        write_file(d / "corpus" / "vocab.txt", vocab);
        std::mt19937 rng(3);
        std::string corpus;
        for (int line = 0; line < 64; ++line) {
            const int n = std::uniform_int_distribution<int>(4, 12)(rng);
            for (int i = 0; i < n; ++i) {
                corpus += (i ? " " : "") + words[std::uniform_int_distribution<std::size_t>(0, words.size() - 1)(rng)];
            }
            corpus += "\n";
        }
        write_file(d / "corpus" / "pretrain" / "train.txt", corpus);
    }
};

// Runs `args` (a binary of PRUNE_BINARY_DIR/bin and its flags; "{threads}" is replaced) at
// `threads` threads in the fixture directory; the run must succeed.
void run(const fixture& fx, const std::string& args, int threads) {
    std::string command = args;
    for (auto at = command.find("{threads}"); at != std::string::npos; at = command.find("{threads}")) {
        command.replace(at, 9, std::to_string(threads));
    }
    const prune_test::outcome o =
        prune_test::run_binary(command, fx.d, fx.d / "stderr.txt", "OPENBLAS_NUM_THREADS=" + std::to_string(threads));
    INFO(command << "\n" << o.err);
    REQUIRE(o.code == 0);
}

// Every regular file under `root` (relative path -> bytes); a file alone is keyed "".
std::map<std::string, std::string> contents(const fs::path& root) {
    std::map<std::string, std::string> out;
    if (fs::is_regular_file(root)) {
        out[""] = read_file(root);
        return out;
    }
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (e.is_regular_file()) out[fs::relative(e.path(), root).string()] = read_file(e.path());
    }
    return out;
}

void require_identical(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b,
                       const std::string& what) {
    REQUIRE(!a.empty());
    std::vector<std::string> names_a, names_b;
    for (const auto& [k, v] : a) names_a.push_back(k);
    for (const auto& [k, v] : b) names_b.push_back(k);
    INFO(what);
    REQUIRE(names_a == names_b);
    for (const auto& [name, bytes] : a) {
        INFO("file " << name);
        CHECK(bytes == b.at(name));
    }
}

// Runs `args` (with "{out}" for its output path) three times: two runs at 1 thread, one at 2;
// all three outputs must be byte-identical.
void check_deterministic(const fixture& fx, const std::string& args, const std::string& out_name) {
    std::vector<std::map<std::string, std::string>> outputs;
    const int threads[] = {1, 1, 2};
    for (int k = 0; k < 3; ++k) {
        const std::string out = out_name + "-" + std::to_string(k);
        std::string command = args;
        command.replace(command.find("{out}"), 5, out);
        run(fx, command, threads[k]);
        outputs.push_back(contents(fx.d / out));
    }
    require_identical(outputs[0], outputs[1], args + ": run 1 vs run 2 (1 thread)");
    require_identical(outputs[0], outputs[2], args + ": 1 thread vs 2 threads");
}

}  // namespace

TEST_CASE("prune-importance: identical scores across runs and thread counts") {
    fixture fx;
    check_deterministic(fx, "prune-importance --model model --data dev.jsonl --batch-size 8 --threads {threads} --json {out}", "imp-none.json");
    check_deterministic(fx,
                        "prune-importance --model model --data dev.jsonl --mask mask.json --abs per-batch "
                        "--normalize layer+global --batch-size 8 --threads {threads} --json {out}",
                        "imp-norm.json");
}

TEST_CASE("prune-heads: identical masks, history and pruned model across runs and thread counts") {
    fixture fx;
    check_deterministic(fx, "prune-heads --model model --data dev.jsonl --batch-size 8 --threads {threads} --out {out}", "heads");
}

TEST_CASE("prune-magnitude: identical element masks across runs and thread counts") {
    fixture fx;
    check_deterministic(fx,
                        "prune-magnitude --model model --data dev.jsonl --amount 0.2 --steps 3 --threshold 0.5 "
                        "--threads {threads} --out {out}",
                        "magnitude");
}

TEST_CASE("prune-finetune: identical checkpoints across runs and thread counts") {
    fixture fx;
    check_deterministic(fx,
                        "prune-finetune --model model --train train.jsonl --dev dev.jsonl --mask mask.json --epochs 2 "
                        "--batch-size 8 --lr 1e-3 --seed 5 --threads {threads} --out {out}",
                        "finetune");
    // The comparison can see a difference: another seed (example order, dropout) changes the weights.
    run(fx,
        "prune-finetune --model model --train train.jsonl --dev dev.jsonl --mask mask.json --epochs 2 --batch-size 8 "
        "--lr 1e-3 --seed 6 --out finetune-seed6",
        1);
    CHECK(read_file(fx.d / "finetune-seed6" / "model.safetensors") != read_file(fx.d / "finetune-0" / "model.safetensors"));
}

TEST_CASE("prune-pretrain --steps: identical checkpoints across runs and thread counts") {
    fixture fx;
    check_deterministic(fx,
                        "prune-pretrain --data corpus --layers 1 --hidden 32 --heads 2 --intermediate 64 --steps 4 "
                        "--batch-size 8 --max-length 16 --seed 3 --threads {threads} --out {out}",
                        "pretrain");
}

TEST_CASE("prune-lottery --quick: identical report (but wall times) across runs and thread counts") {
    fixture fx;
    std::vector<std::map<std::string, std::string>> outputs;
    const int threads[] = {1, 1, 2};
    for (int k = 0; k < 3; ++k) {
        const std::string out = "lottery-" + std::to_string(k);
        run(fx,
            "prune-lottery --quick --model model --train train.jsonl --dev dev.jsonl --task toy --seeds 1 --epochs 1 "
            "--threads {threads} --cache cache --out " + out,
            threads[k]);
        auto files = contents(fx.d / out);
        REQUIRE(files.count("report.json") == 1);
        REQUIRE(files.count("report.md") == 1);
        // The wall times are legitimately different: drop them, compare everything else.
        auto j = nlohmann::json::parse(files["report.json"]);
        REQUIRE(j.contains("wall_seconds"));
        j.erase("wall_seconds");
        for (auto& task : j["tasks"]) {
            for (auto& seed : task["seeds"]) {
                REQUIRE(seed.contains("seconds"));
                seed.erase("seconds");
            }
        }
        files["report.json"] = j.dump(2);
        files["report.md"] = std::regex_replace(files["report.md"], std::regex("wall time [0-9.]+ min"), "wall time (t) min");
        outputs.push_back(files);
    }
    require_identical(outputs[0], outputs[1], "prune-lottery: run 1 vs run 2 (1 thread)");
    require_identical(outputs[0], outputs[2], "prune-lottery: 1 thread vs 2 threads");
}
