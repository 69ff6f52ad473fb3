// prune/mpi/mpi.hpp and prune-importance under mpiexec (docs/distributed.md), on this machine's
// processes (MPICH's mpiexec; nothing to set as root or with more ranks than cores):
//   - mpi_operations (a helper) on 3 ranks: the deterministic sum, reduce_to, broadcast,
//     broadcast_values, gather and agree against closed forms (see mpi_operations.cpp for the values);
//   - gather_batches hands rank 0 every batch's state in batch order (an order-sensitive sum of
//     1e16 and 1s tells batch order from rank-by-rank grouping);
//   - prune-importance's JSON under -np 1, -np 2 and -np 3 and without mpiexec is the same byte for
//     byte, on a tiny BERT and on a Llama with grouped-query attention, per example and per batch.
//     (Observed: on these models adding the batches' sums rank by rank gives the same bytes too --
//     sums of a few hundred float-sized gradients in double are exact -- so these cases check the
//     batches' composition and the plumbing; the order is the previous case's.)
//   - prune-sparsify's Wanda (unstructured and 2:4, each layer calibrated on the pruned layers
//     before it), SparseGPT (also 2:4 on the dense model's inputs) and Wanda and magnitude with
//     --reconstruct (whose sums x x^T are reduced round by round) write the same masks.safetensors and model.safetensors and the same report (timings
//     and memory aside) under -np 1, 2, 3 and without mpiexec (the single process's own path is
//     tested against collect's in test_sparsify_stream);
//   - mpi_gram (a helper) on 2 and 3 ranks: prune_layers' sums x x^T and reconstructed weights are
//     the bits of one process, on products whose sum depends on the order of the additions;
//   - a rank that fails (PRUNE_MPI_FAIL_RANK) makes every rank exit non-zero with a message
//     naming it, and nothing is written; a killed rank (PRUNE_MPI_KILL_RANK) ends the run
//     non-zero with nothing written; --abs cumulative is refused on 2 ranks.
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/labeled_sequence.hpp>
#include <prune/models/bert/weights.hpp>
#include <prune/models/decoder/checkpoint.hpp>
#include <prune/models/decoder/pretrain.hpp>

#include "../support/files.hpp"
#include "../support/tiny_bert.hpp"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// Runs `command` under `env` in `dir` (stdout discarded, stderr kept): its exit code and stderr.
prune_test::outcome run(const std::string& command, const fs::path& dir, const std::string& env = "") {
    const fs::path err = dir / "stderr.txt";
    const std::string line = "cd '" + dir.string() + "' && " + env + " OPENBLAS_NUM_THREADS=1 " + command + " > /dev/null 2> '" +
                             err.string() + "'";
    const int status = std::system(line.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, prune_test::read_file(err)};
}

/// mpiexec -n `ranks` (0: no mpiexec) of PRUNE_BINARY_DIR/bin/`binary`.
std::string launch(int ranks, const std::string& binary) {
    const std::string path = std::string(PRUNE_BINARY_DIR) + "/bin/" + binary;
    return ranks == 0 ? path : std::string(PRUNE_MPIEXEC) + " -n " + std::to_string(ranks) + " " + path;
}

nlohmann::json read_json(const fs::path& path) {
    std::ifstream f(path);
    return nlohmann::json::parse(f);
}

/// A tiny BERT (random weights) and 90 examples of the toy task, in dir/bert and dir/bert.jsonl.
void write_bert(const fs::path& dir) {
    prune::bert::save_model(prune::bert::random_weights(prune_test::tiny_config(), 7, 0.1f), dir / "bert");
    std::ofstream f(dir / "bert.jsonl");
    for (const auto& s : prune_test::a_before_b<prune::bert::labeled_sequence>(90, 2)) {
        f << nlohmann::json{{"input_ids", s.input_ids}, {"label", static_cast<int>(s.label)}}.dump() << "\n";
    }
}

/// A Llama of 2 layers x 4 query heads on 2 K/V heads and 37 random sequences of 3 to 12 tokens,
/// in dir/lm and dir/lm.jsonl.
void write_llama(const fs::path& dir) {
    prune::decoder::llama_shape s;
    s.layers = 2;
    s.hidden = 32;
    s.heads = 4;
    s.kv_heads = 2;
    s.intermediate = 48;
    s.vocab = 40;
    s.max_positions = 16;
    prune::decoder::save_model(prune::decoder::random_weights(prune::decoder::llama_config(s), 3, 0.2f), dir / "lm");
    std::mt19937 rng(5);
    std::ofstream f(dir / "lm.jsonl");
    for (int i = 0; i < 37; ++i) {
        std::vector<int> ids(std::uniform_int_distribution<std::size_t>(3, 12)(rng));
        for (int& id : ids) id = std::uniform_int_distribution<int>(0, 39)(rng);
        f << nlohmann::json{{"input_ids", ids}}.dump() << "\n";
    }
}

/// prune-importance's JSON for `flags` on 0 (no mpiexec), 1, 2 and 3 ranks: identical bytes.
void check_identical(const fs::path& dir, const std::string& flags) {
    std::string first;
    for (int ranks : {0, 1, 2, 3}) {
        const fs::path out = dir / ("imp" + std::to_string(ranks) + ".json");
        const auto r = run(launch(ranks, "prune-importance") + flags + " --threads 1 --json " + out.string(), dir);
        INFO(flags << " on " << ranks << " ranks: " << r.err);
        REQUIRE(r.code == 0);
        const std::string text = prune_test::read_file(out);
        if (ranks == 0) first = text;
        CHECK(text == first);
    }
    const nlohmann::json j = nlohmann::json::parse(first);
    CHECK(j["heads"][0][0].get<double>() > 0.0);  // a real result, not an empty one repeated
}

/// report.json without what differs from run to run (timings, memory).
nlohmann::json stable_report(const fs::path& out) {
    nlohmann::json r = read_json(out / "report.json");
    for (const char* key : {"wall_seconds", "layer_seconds", "peak_rss_bytes"}) r.erase(key);
    return r;
}

}  // namespace

TEST_CASE("mpi_communicator on 3 ranks: every operation against its closed form", "[mpi]") {
    prune_test::temp_dir temp("prune_mpi_ops");
    const auto r = run(std::string(PRUNE_MPIEXEC) + " -n 3 " + PRUNE_MPI_OPERATIONS + " " + temp.path().string(), temp.path());
    INFO(r.err);
    REQUIRE(r.code == 0);
    for (int rank = 0; rank < 3; ++rank) {
        INFO("rank " << rank);
        const nlohmann::json j = read_json(temp.path() / ("rank" + std::to_string(rank) + ".json"));
        // sum_r ((r + 1) i + 1/4) = 6 i + 3/4; in rank order (1e16 + 1) - 1e16 = 0, as 1e16 + 1 rounds
        // to 1e16 (the spacing there is 2, the tie goes to the even 1e16); other orders give 1.
        CHECK(j["sum"] == nlohmann::json({0.75, 6.75, 12.75, 18.75, 24.75, 0.0}));
        // reduce_to onto rank 1: sum_r 2^r (i + 1) = 7 (i + 1); ranks 0 and 2 keep 2^r (i + 1).
        const double scale = rank == 1 ? 7.0 : (rank == 0 ? 1.0 : 4.0);
        for (int i = 0; i < 10; ++i) CHECK(j["reduce_to"][static_cast<std::size_t>(i)].get<double>() == scale * (i + 1));
        CHECK(j["broadcast"] == nlohmann::json({'f', 'r', 'o', 'm', 0, 't', 'w', 'o'}));
        // broadcast_values from rank 2 in chunks of 3 (the last of 1): 4 (i + 1) on every rank.
        for (int i = 0; i < 10; ++i) CHECK(j["broadcast_values"][static_cast<std::size_t>(i)].get<double>() == 4.0 * (i + 1));
        CHECK(j["gather"] == (rank == 1 ? nlohmann::json({"r0", "r1", "r2"}) : nlohmann::json::array()));
        CHECK(j["agree"] == "rank 1: bad shard");
        // gather_batches: rank 0 gets batch b's state {b, value_b, b % 3} in batch order; the others nothing.
        // In batch order 1e16 + 1 + 1 - 1e16 = 0 (each + 1 rounds back to 1e16), then + 1 + 1 + 1 = 3;
        // summing each rank's batches first (1e16 - 1e16 + 1, 1 + 1, 1 + 1) would give 5.
        if (rank == 0) {
            REQUIRE(j["batches"].size() == 7);
            for (std::size_t b = 0; b < 7; ++b) {
                CHECK(j["batches"][b][0].get<double>() == static_cast<double>(b));
                CHECK(j["batches"][b][2].get<double>() == static_cast<double>(b % 3));
            }
            CHECK(j["batch_sum"].get<double>() == 3.0);
        } else {
            CHECK(j["batches"].empty());
        }
    }
}

TEST_CASE("prune_layers reduces the sums x x^T in batch order on 2 and 3 ranks", "[mpi]") {
    prune_test::temp_dir temp("prune_mpi_gram");
    for (int ranks : {2, 3}) {
        INFO(ranks << " ranks");
        const auto r = run(std::string(PRUNE_MPIEXEC) + " -n " + std::to_string(ranks) + " " + PRUNE_MPI_GRAM + " " +
                               temp.path().string(), temp.path());
        INFO(r.err);
        REQUIRE(r.code == 0);
        for (int rank = 0; rank < ranks; ++rank) {
            INFO("rank " << rank);
            const nlohmann::json j = read_json(temp.path() / ("rank" + std::to_string(rank) + ".json"));
            // In batch order 1e16 + 1 + 1 - 1e16 + 1 + 1 + 1 = 3 (each + 1 rounds back to 1e16, see
            // mpi_gram.cpp); summing each rank's batches first gives 0 on 2 ranks and 5 on 3 (seen
            // by making collect_sharded_gram reduce once after the rounds: then these checks fail).
            CHECK(j["off_diagonal"].get<double>() == 3.0);
            CHECK(j["same_gram"] == true);
            CHECK(j["same_weights"] == true);
            CHECK(j["weights_changed"] == true);
        }
    }
}

TEST_CASE("prune-importance: the same bytes on any number of ranks", "[mpi][cli]") {
    prune_test::temp_dir temp("prune_mpi_importance");
    const fs::path& d = temp.path();
    write_bert(d);
    write_llama(d);
    SECTION("BERT, per example, batches of 8 (12 batches: 4 per rank on 3)") {
        check_identical(d, " --model bert --data bert.jsonl --batch-size 8");
    }
    SECTION("BERT, per batch, layer+global") {
        check_identical(d, " --model bert --data bert.jsonl --batch-size 16 --abs per-batch --normalize layer+global");
    }
    SECTION("GQA Llama, per example, batches of 4 (10 batches, the last of 1)") {
        check_identical(d, " --model lm --data lm.jsonl --batch-size 4");
        CHECK(read_json(d / "imp2.json")["kv_groups"].size() == 2);
        CHECK(read_json(d / "imp2.json")["examples"] == 37);
    }
    SECTION("GQA Llama, per batch of 5") {
        check_identical(d, " --model lm --data lm.jsonl --batch-size 5 --abs per-batch");
    }
}

TEST_CASE("prune-importance: a failing rank stops every rank, nothing is written", "[mpi][cli]") {
    prune_test::temp_dir temp("prune_mpi_failure");
    const fs::path& d = temp.path();
    write_bert(d);
    write_llama(d);
    for (const std::string& model : {std::string("bert"), std::string("lm")}) {
        INFO(model);
        const std::string flags = " --model " + model + " --data " + model + ".jsonl --batch-size 8 --threads 1 --json out.json";
        const auto r = run(launch(2, "prune-importance") + flags, d, "PRUNE_MPI_FAIL_RANK=1");
        INFO(r.err);
        CHECK(r.code != 0);
        // Both ranks report rank 1's failure (each prints the line: both took the error exit).
        const std::string line = "prune-importance: rank 1: failure injected by PRUNE_MPI_FAIL_RANK=1\n";
        std::size_t count = 0;
        for (auto at = r.err.find(line); at != std::string::npos; at = r.err.find(line, at + 1)) ++count;
        CHECK(count == 2);
        CHECK(!fs::exists(d / "out.json"));
        // Rank 0 failing: the same on rank 1.
        const auto r0 = run(launch(2, "prune-importance") + flags, d, "PRUNE_MPI_FAIL_RANK=0");
        CHECK(r0.code != 0);
        CHECK(r0.err.find("prune-importance: rank 0: failure injected") != std::string::npos);
        CHECK(!fs::exists(d / "out.json"));
    }
    // Rank 1 killed (SIGKILL) in its first batch: mpiexec ends rank 0 and exits non-zero; nothing written.
    const auto k = run(launch(2, "prune-importance") + " --model bert --data bert.jsonl --batch-size 8 --json out.json", d,
                       "PRUNE_MPI_KILL_RANK=1");
    INFO(k.err);
    CHECK(k.code != 0);
    CHECK(!fs::exists(d / "out.json"));
    const auto c = run(launch(2, "prune-importance") + " --model bert --data bert.jsonl --abs cumulative --json out.json", d);
    CHECK(c.code == 2);
    CHECK(prune_test::last_line(c.err) ==
          "prune-importance: --abs cumulative runs on one process (its running totals carry from batch to batch; got 2 processes)");
    CHECK(!fs::exists(d / "out.json"));
    CHECK(run(launch(1, "prune-importance") + " --model bert --data bert.jsonl --abs cumulative --json out.json", d).code == 0);
}

TEST_CASE("prune-sparsify: the statistics give the same bytes on any number of ranks", "[mpi][cli]") {
    prune_test::temp_dir temp("prune_mpi_sparsify");
    const fs::path& d = temp.path();
    write_llama(d);
    std::map<std::string, std::string> weights_of;  // model.safetensors without mpiexec, by flags
    for (const std::string& flags : {std::string(" --method wanda --sparsity 0.5"), std::string(" --method wanda --nm 2:4"),
                                     std::string(" --method sparsegpt --sparsity 0.5"),
                                     std::string(" --method sparsegpt --nm 2:4 --dense-inputs"),
                                     std::string(" --method wanda --sparsity 0.5 --reconstruct"),
                                     std::string(" --method magnitude --sparsity 0.5 --reconstruct")}) {
        INFO(flags);
        std::string masks, weights;
        nlohmann::json report;
        for (int ranks : {0, 1, 2, 3}) {
            const fs::path out = d / ("sparse" + std::to_string(ranks));
            fs::remove_all(out);
            // 37 sequences in batches of 4: 10 batches, 4, 3 and 3 of them on 3 ranks (the last
            // round of the sums x x^T has a batch on rank 0 only).
            const auto r = run(launch(ranks, "prune-sparsify") + " --model lm --calib lm.jsonl --eval lm.jsonl" + flags +
                                   " --batch-size 4 --threads 1 --out " + out.string(), d);
            INFO(ranks << " ranks: " << r.err);
            REQUIRE(r.code == 0);
            if (ranks == 0) {
                masks = prune_test::read_file(out / "masks.safetensors");
                weights = prune_test::read_file(out / "model.safetensors");
                report = stable_report(out);
                CHECK(report["calibration"]["batches"] == 10);
                CHECK(report["calibration"]["tokens"].get<double>() > 0.0);
                weights_of[flags] = weights;
                continue;
            }
            CHECK(prune_test::read_file(out / "masks.safetensors") == masks);
            CHECK(prune_test::read_file(out / "model.safetensors") == weights);
            CHECK(stable_report(out) == report);
        }
    }
    // Real results, not one thing repeated: the reconstruction changed Wanda's kept weights, and
    // SparseGPT's differ from both.
    const std::string& wanda = weights_of.at(" --method wanda --sparsity 0.5");
    CHECK(weights_of.at(" --method wanda --sparsity 0.5 --reconstruct") != wanda);
    CHECK(weights_of.at(" --method sparsegpt --sparsity 0.5") != wanda);
}
