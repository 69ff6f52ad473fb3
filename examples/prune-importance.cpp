// prune-importance: Michel et al.'s head importance, extended to MLPs, of a fine-tuned BERT
// over a data file: I[l][h] = E |dL/dxi[l][h]| (prune/models/bert/importance.hpp, docs/importance.md).
//   prune-importance --model DIR --data F [--mask F] [--abs per-example|per-batch|cumulative]
//                    [--normalize none|layer|global|layer+global] [--batch-size N] [--threads N] [--json OUT]
// OUT: {"heads": L x H, "mlps": L, "abs", "normalize", "examples", "tokens"}; without --json a
// table goes to stderr. `--normalize none` is the raw expectation (mean over examples or batches);
// prefix "tokens+" to divide by the number of non-padding tokens instead (HF's code).
// On a causal LM (model_type llama or gpt2; data as prune-eval's): heads (L x query heads), mlps
// and, under grouped-query attention, kv_groups (L x K/V heads); L(x) = the sequence's mean NLL,
// tokens = predicted tokens (prune/models/decoder/importance.hpp).
// Under mpirun (a build with MPI; docs/distributed.md) the data is cut into batches of
// --batch-size sequences, rank r takes the batches b with b % ranks == r, and rank 0 adds every
// batch's sums in batch order and writes: the same bits for any number of processes. --abs
// cumulative carries running totals across batches and runs on one process only.
#include "common/cli.hpp"
#include "common/numbers.hpp"
#include "common/outputs.hpp"
#include "common/world.hpp"
#include "decoder/causal_lm.hpp"

#include <prune/nn/process.hpp>
#include <prune/models/bert/dataset.hpp>
#include <prune/models/bert/checkpoint.hpp>
#include <prune/models/bert/importance.hpp>
#include <prune/models/decoder/importance.hpp>
#include <prune/mpi/batches.hpp>
#include <prune/mpi/communicator.hpp>
#include <prune/text/wordpiece.hpp>
#include <prune/data/jsonl.hpp>
#include <prune/io/atomic.hpp>
#include <prune/io/json.hpp>
#include <prune/io/masks.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace prune_examples::prune_importance {

namespace {

/// The command line.
struct options {
    std::string model, data, mask_file, abs_mode = "per-example", normalize = "none", json_out;
    std::size_t batch_size = 32;
    int threads = 0;
};

// The accumulators' mergeable state, for BERT's one accumulator and a causal LM's two.
void reset(prune::importance::michel_accumulator& a) { a.reset(); }
void reset(prune::decoder::importance_accumulators& a) {
    a.heads.reset();
    a.kv_groups.reset();
}
std::vector<double> state_of(const prune::importance::michel_accumulator& a) { return a.state(); }
std::vector<double> state_of(const prune::decoder::importance_accumulators& a) {
    std::vector<double> s = a.heads.state();
    const std::vector<double> kv = a.kv_groups.state();
    s.insert(s.end(), kv.begin(), kv.end());
    return s;
}
void merge_state(prune::importance::michel_accumulator& a, std::span<const double> s) { a.merge_state(s); }
void merge_state(prune::decoder::importance_accumulators& a, std::span<const double> s) {
    const std::size_t heads = a.heads.state().size();
    a.heads.merge_state(s.first(std::min(heads, s.size())));
    a.kv_groups.merge_state(s.subspan(std::min(heads, s.size())));
}

/// Test hooks of the MPI tests (docs/distributed.md), while a rank computes its first batch: the
/// rank named by PRUNE_MPI_FAIL_RANK fails (throws), as a rank whose data or node is bad would;
/// the rank named by PRUNE_MPI_KILL_RANK is killed (SIGKILL).
void injected_failure(const prune::mpi::communicator& comm) {
    const std::string me = std::to_string(comm.rank());
    const char* kill = std::getenv("PRUNE_MPI_KILL_RANK");
    if (kill != nullptr && me == kill) std::raise(SIGKILL);
    const char* rank = std::getenv("PRUNE_MPI_FAIL_RANK");
    if (rank != nullptr && me == rank) {
        throw prune::io_error("failure injected by PRUNE_MPI_FAIL_RANK=" + std::string(rank));
    }
}

/// Accumulates rows [0, n) into `total` (on rank 0), data-parallel over comm: batch b = rows
/// [b * batch_size, ...) goes to rank b % size into `part` from zero, and rank 0 merges every
/// batch's state in batch order, so that -np 1 and -np k perform the same additions.
/// feed(first, count, acc) adds rows [first, first + count) to acc. The cumulative mode (running
/// totals across batches) feeds everything at once and needs one process.
template <class Acc, class Feed>
void accumulate_sharded(prune::mpi::communicator& comm, std::size_t n, std::size_t batch_size,
                        prune::importance::absolute_value mode, Acc& total, Acc& part, Feed feed) {
    if (mode == prune::importance::absolute_value::cumulative) {
        if (comm.size() > 1) {
            throw prune::value_error("--abs cumulative runs on one process (its running totals carry from batch to "
                                     "batch; got " + std::to_string(comm.size()) + " processes)");
        }
        feed(std::size_t{0}, n, total);
        return;
    }
    const auto states = prune::mpi::gather_batches(comm, prune::mpi::batch_count(n, batch_size), [&](std::size_t b) {
        injected_failure(comm);
        reset(part);
        feed(b * batch_size, std::min(batch_size, n - b * batch_size), part);
        return state_of(part);
    });
    for (const auto& s : states) merge_state(total, s);
}

/// Writes `out` atomically to --json or prints it (rank 0 only).
void emit(const options& o, const prune::io::json& out) {
    if (!o.json_out.empty()) prune::io::write_file_atomically(o.json_out, out.dump() + "\n");
    else std::fprintf(stderr, "%s\n", out.dump(1).c_str());
}

/// The importance of a causal LM's query heads, K/V groups and MLPs.
void causal_lm(prune::mpi::communicator& comm, const options& o) {
    const auto mode = prune::importance::parse_absolute_value(o.abs_mode);
    std::optional<prune::decoder::weights> lm;
    std::optional<prune::decoder::gates> lm_gates;
    std::vector<std::vector<std::int32_t>> rows;
    prune::mpi::collectively(comm, [&] {
        lm = prune_lm::load_model(o.model, "");
        lm_gates = prune_lm::apply_structure(o.mask_file, *lm);
        rows = prune_lm::read_sequences(o.data, o.model, lm->cfg, std::nullopt);
    });
    prune::decoder::importance_accumulators acc(*lm, mode), part(*lm, mode);
    prune::decoder::importance_workspace ws(o.threads);
    const std::span<const std::vector<std::int32_t>> all(rows);
    accumulate_sharded(comm, rows.size(), o.batch_size, mode, acc, part, [&](std::size_t first, std::size_t count, auto& into) {
        prune::decoder::accumulate_importance(*lm, all.subspan(first, count), lm_gates ? &*lm_gates : nullptr, into, ws,
                                              o.batch_size);
    });
    prune::mpi::collectively(comm, [&] {
        if (comm.rank() != 0) return;
        const auto raw = prune::decoder::scores_of(acc, prune::importance::normalization::parse("none"));
        prune_cli::refuse_non_finite_scores(raw.heads, raw.mlps);
        prune_cli::refuse_non_finite_scores(raw.kv_groups, {}, "K/V group");
        const prune::decoder::importance_scores scores = prune::decoder::scores_of(acc, prune::importance::normalization::parse(o.normalize));
        prune::io::json out;
        out["heads"] = scores.heads;
        out["mlps"] = scores.mlps;
        if (prune_lm::grouped(*lm)) out["kv_groups"] = scores.kv_groups;
        out["abs"] = o.abs_mode;
        out["normalize"] = o.normalize;
        out["examples"] = rows.size();
        out["tokens"] = acc.heads.tokens();
        std::fprintf(stderr, "prune-importance: %zu sequences, %zu layers, --abs %s\n", rows.size(), lm->layers.size(),
                     o.abs_mode.c_str());
        emit(o, out);
    });
}

/// The importance of a BERT's heads and MLPs.
void bert_model(prune::mpi::communicator& comm, const options& o) {
    const auto mode = prune::importance::parse_absolute_value(o.abs_mode);
    std::optional<prune::bert::weights> w;
    std::vector<std::size_t> heads;
    std::optional<prune::structure_mask> mask;
    std::vector<prune::bert::labeled_sequence> sequences;
    prune::mpi::collectively(comm, [&] {
        w = prune::bert::load_model(o.model);
        heads.assign(static_cast<std::size_t>(w->cfg.num_hidden_layers), static_cast<std::size_t>(w->cfg.num_attention_heads));
        mask = prune::structure_mask{prune::group_mask(heads), prune::group_mask::uniform(heads.size(), 1)};
        if (!o.mask_file.empty()) mask = prune::io::read_structure_mask(o.mask_file, heads);
        sequences = prune::bert::load_sequences(o.data, w->cfg, o.model);
    });
    if (comm.rank() == 0) {
        std::fprintf(stderr, "prune-importance: %zu examples, %d layers x %d heads, --abs %s\n", sequences.size(),
                     w->cfg.num_hidden_layers, w->cfg.num_attention_heads, o.abs_mode.c_str());
    }
    prune::importance::michel_accumulator acc(heads, mode), part(heads, mode);
    prune::bert::importance_workspace<float> ws(o.threads);
    const std::span<const prune::bert::labeled_sequence> all(sequences);
    accumulate_sharded(comm, sequences.size(), o.batch_size, mode, acc, part, [&](std::size_t first, std::size_t count, auto& into) {
        prune::bert::accumulate_importance(*w, all.subspan(first, count), *mask, into, ws, o.batch_size);
    });
    prune::mpi::collectively(comm, [&] {
        if (comm.rank() != 0) return;
        const auto raw = acc.scores(prune::importance::normalization::parse("none"));  // min-max turns NaN into 0
        prune_cli::refuse_non_finite_scores(raw.heads, raw.mlps);
        const auto scores = acc.scores(prune::importance::normalization::parse(o.normalize));
        if (o.json_out.empty()) {
            for (std::size_t l = 0; l < scores.heads.size(); ++l) {
                std::fprintf(stderr, "layer %2zu:", l);
                for (double v : scores.heads[l]) std::fprintf(stderr, " %.4g", v);
                std::fprintf(stderr, " | mlp %.4g\n", scores.mlps[l]);
            }
            return;
        }
        prune::io::json out;
        out["heads"] = scores.heads;
        out["mlps"] = scores.mlps;
        out["abs"] = o.abs_mode;
        out["normalize"] = o.normalize;
        out["examples"] = sequences.size();
        out["tokens"] = acc.tokens();
        emit(o, out);
    });
}

}  // namespace

/// The job: build/bin/prune-importance's main (generated by examples/CMakeLists.txt) calls it.
int run(int argc, char** argv) {
    prune::nn::blas_single_threaded();  // the pool does the threading (no re-exec: OpenBLAS as loaded)
    std::unique_ptr<prune::mpi::communicator> comm;
    try {
        comm = world(&argc, &argv);
    } catch (const prune::error& e) {
        std::fprintf(stderr, "prune-importance: %s\n", e.what());
        return prune_cli::exit_bad_input;
    }
    CLI::App app("prune-importance: Michel head + MLP importance (E|dL/dgate|) of a BERT over a data file",
                 "prune-importance");
    options o;
    app.add_option("--model", o.model, "model directory (config.json + model.safetensors)")->required();
    app.add_option("--data", o.data, "JSON Lines data file")->required();
    app.add_option("--mask", o.mask_file, "structure mask JSON (masked heads / MLPs gated to 0)");
    app.add_option("--abs", o.abs_mode, "where |.| is taken: per-example, per-batch, cumulative")->capture_default_str();
    app.add_option("--normalize", o.normalize, "none, layer, global, layer+global (tokens+... divides by tokens)")
        ->capture_default_str();
    app.add_option("--batch-size", o.batch_size, "sequences per pass (the batch for --abs per-batch; the unit of work under mpirun)")
        ->check(prune_cli::unsigned_integer())
        ->capture_default_str();
    app.add_option("--threads", o.threads, "threads (0 = every core; at most 256)")->check(prune_cli::threads_flag());
    app.add_option("--json", o.json_out, "write the scores as JSON here");
    return prune_cli::run(app, argc, argv, [&] {
        prune_cli::refuse_overlaps({{"--model", o.model}, {"--data", o.data}, {"--mask", o.mask_file}}, {{"--json", o.json_out}});
        (void)prune::importance::parse_absolute_value(o.abs_mode);
        (void)prune::importance::normalization::parse(o.normalize);
        if (o.batch_size == 0) throw prune::value_error("--batch-size must be > 0");
        if (prune_lm::is_causal_lm(o.model)) causal_lm(*comm, o);
        else bert_model(*comm, o);
    });
}

}  // namespace prune_examples::prune_importance
