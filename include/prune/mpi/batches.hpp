// prune/mpi/batches.hpp: data parallelism by fixed batches, bit-identical for any process count.
//
// A data set of n rows is cut into batches of a fixed size (the last one shorter); the cut does
// not depend on the number of processes. Rank r computes the batches b with b % size == r, each
// into a partial state (a vector of doubles: sums and counts, e.g. an accumulator's state()),
// and rank 0 receives every batch's state in batch order. A caller that merges them in that
// order performs the same floating-point additions for -np 1 and -np k, so the result is
// bit-identical (docs/distributed.md). What moves: every batch's state once, to rank 0.
#pragma once

#include <prune/error.hpp>
#include <prune/mpi/communicator.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prune::mpi {

/// The number of batches of `batch_size` rows that cover `rows` rows (the last may be shorter);
/// value_error when batch_size is 0.
[[nodiscard]] inline std::size_t batch_count(std::size_t rows, std::size_t batch_size) {
    if (batch_size == 0) throw value_error("prune::mpi::batch_count: batch size 0 (expected > 0)");
    return (rows + batch_size - 1) / batch_size;
}

namespace detail {

/// Appends a length-prefixed vector of doubles to `out`.
inline void append_state(std::string& out, const std::vector<double>& state) {
    const std::uint64_t n = state.size();
    out.append(reinterpret_cast<const char*>(&n), sizeof n);
    out += to_bytes(state);
}

/// The length-prefixed vectors of `bytes` (made by append_state), in order.
[[nodiscard]] inline std::vector<std::vector<double>> read_states(std::string_view bytes) {
    std::vector<std::vector<double>> states;
    std::size_t at = 0;
    while (at < bytes.size()) {
        std::uint64_t n = 0;
        if (bytes.size() - at < sizeof n) throw format_error("prune::mpi: a batch state cut short");
        std::memcpy(&n, bytes.data() + at, sizeof n);
        at += sizeof n;
        if ((bytes.size() - at) / sizeof(double) < n) throw format_error("prune::mpi: a batch state cut short");
        states.push_back(doubles_of(bytes.substr(at, n * sizeof(double))));
        at += n * sizeof(double);
    }
    return states;
}

}  // namespace detail

/// Runs partial(b) for this rank's batches of [0, batches) (b % size() == rank(), increasing b),
/// each returning that batch's state as std::vector<double>; returns on rank 0 every batch's
/// state in batch order, on the other ranks an empty vector. When partial throws on any rank,
/// every rank throws rank_error (collectively); with one process its exception propagates.
template <class F>
[[nodiscard]] std::vector<std::vector<double>> gather_batches(communicator& comm, std::size_t batches, F&& partial) {
    const auto k = static_cast<std::size_t>(comm.size());
    const auto r = static_cast<std::size_t>(comm.rank());
    std::string mine;
    collectively(comm, [&] {
        for (std::size_t b = r; b < batches; b += k) detail::append_state(mine, partial(b));
    });
    const std::vector<std::string> all = comm.gather(mine, 0);
    if (comm.rank() != 0) return {};
    std::vector<std::vector<std::vector<double>>> per_rank;
    for (const std::string& bytes : all) per_rank.push_back(detail::read_states(bytes));
    std::vector<std::vector<double>> states;
    states.reserve(batches);
    for (std::size_t b = 0; b < batches; ++b) {
        auto& from = per_rank[b % k];
        if (b / k >= from.size()) throw format_error("prune::mpi::gather_batches: rank " + std::to_string(b % k) +
                                                     " sent no state for batch " + std::to_string(b));
        states.push_back(std::move(from[b / k]));
    }
    return states;
}

}  // namespace prune::mpi
