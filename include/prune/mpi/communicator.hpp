// prune/mpi/communicator.hpp: the communication a data-parallel job needs, written once for
// one process and for many (docs/distributed.md).
//
// `communicator` is the interface: rank(), size(), barrier, broadcast and gather of bytes, and
// reduce_to (an element-wise sum of double vectors onto one owner rank). `local_communicator`
// is the single process every binary uses by default; `mpi_communicator` (<prune/mpi/mpi.hpp>,
// the only header that includes <mpi.h>) runs the same code under mpirun.
//
// Every sum here is deterministic: rank r's values are added in rank order, ((v0 + v1) + v2) ...,
// so a job that cuts its work into the same pieces for any process count (see
// prune/mpi/batches.hpp) gets bit-identical results for -np 1 and -np k. MPI's own reductions
// (MPI_Allreduce) leave the order to the implementation and are not used.
//
// Failures: `collectively(comm, f)` runs f on every rank and, when it throws on any rank,
// throws a rank_error naming the lowest failing rank and its message on every rank, so that
// all ranks exit non-zero together instead of waiting forever in the next collective call.
#pragma once

#include <prune/error.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prune::mpi {

/// A failure on one rank as every rank reports it: "rank R: <its message>".
class rank_error : public error {
public:
    /// The failure of `failed_rank` with its message.
    rank_error(int failed_rank, const std::string& message)
        : error("rank " + std::to_string(failed_rank) + ": " + message), rank_(failed_rank) {}
    /// The rank that failed.
    [[nodiscard]] int failed_rank() const noexcept { return rank_; }

private:
    int rank_;
};

/// The collective operations of a group of processes (ranks 0 .. size() - 1). Every rank calls
/// each collective operation in the same order with the same root / owner.
class communicator {
public:
    /// Leaves the group (mpi_communicator: frees its MPI communicator).
    virtual ~communicator() = default;
    /// A communicator of the derived class's group.
    communicator() = default;
    /// Not copyable: a process is in a group once.
    communicator(const communicator&) = delete;
    /// Not copyable: a process is in a group once.
    communicator& operator=(const communicator&) = delete;

    /// This process's rank, in [0, size()).
    [[nodiscard]] virtual int rank() const noexcept = 0;
    /// The number of processes.
    [[nodiscard]] virtual int size() const noexcept = 0;
    /// Returns when every rank has called it.
    virtual void barrier() = 0;
    /// Replaces `bytes` on every rank by root's `bytes`.
    virtual void broadcast(std::string& bytes, int root = 0) = 0;
    /// Every rank's `bytes` on root, in rank order; an empty vector on the other ranks.
    [[nodiscard]] virtual std::vector<std::string> gather(std::string_view bytes, int root = 0) = 0;
    /// Sums every rank's `values` element-wise onto `owner` in rank order ((v0 + v1) + v2 ...):
    /// on owner `values` becomes the sum, on the other ranks it is left as it was. Every rank
    /// passes the same length. Meant for large buffers (a layer's X^T X): the owner holds one
    /// extra chunk at a time, not size() copies, and no other rank receives anything.
    virtual void reduce_to(std::span<double> values, int owner) = 0;

protected:
    /// value_error unless `root` is a rank of this communicator.
    void check_root(int root, const char* what) const {
        if (root < 0 || root >= size()) {
            throw value_error(std::string("prune::mpi::") + what + ": rank " + std::to_string(root) +
                              " (expected one of the " + std::to_string(size()) + " ranks)");
        }
    }
};

/// The single process: rank 0 of 1. Every operation is the identity (no copies).
class local_communicator final : public communicator {
public:
    /// Rank 0.
    [[nodiscard]] int rank() const noexcept override { return 0; }
    /// 1.
    [[nodiscard]] int size() const noexcept override { return 1; }
    /// Returns at once.
    void barrier() override {}
    /// Leaves `bytes` as they are (root must be 0).
    void broadcast(std::string&, int root = 0) override { check_root(root, "broadcast"); }
    /// {bytes} (root must be 0).
    [[nodiscard]] std::vector<std::string> gather(std::string_view bytes, int root = 0) override {
        check_root(root, "gather");
        return {std::string(bytes)};
    }
    /// Leaves `values` as they are: the sum of one rank's values (owner must be 0).
    void reduce_to(std::span<double>, int owner) override { check_root(owner, "reduce_to"); }
};

/// The bytes of `values` (native byte order: every rank of a job runs on the same kind of machine).
[[nodiscard]] inline std::string to_bytes(std::span<const double> values) {
    std::string bytes(values.size() * sizeof(double), '\0');
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
    return bytes;
}

/// The doubles of `bytes` (made by to_bytes); format_error when the length is not a whole number of them.
[[nodiscard]] inline std::vector<double> doubles_of(std::string_view bytes) {
    if (bytes.size() % sizeof(double) != 0) {
        throw format_error("prune::mpi::doubles_of: " + std::to_string(bytes.size()) +
                           " bytes (expected a multiple of " + std::to_string(sizeof(double)) + ")");
    }
    std::vector<double> values(bytes.size() / sizeof(double));
    if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
    return values;
}

/// Replaces `values` on every rank by root's, one chunk of `chunk` doubles at a time (never a
/// copy of the whole buffer: it may be a layer's X^T X). Every rank passes the same length.
inline void broadcast_values(communicator& comm, std::span<double> values, int root = 0,
                             std::size_t chunk = std::size_t{1} << 20) {
    for (std::size_t first = 0; first < values.size(); first += chunk) {
        const std::span<double> part = values.subspan(first, std::min(chunk, values.size() - first));
        std::string bytes = comm.rank() == root ? to_bytes(part) : std::string();
        comm.broadcast(bytes, root);
        if (comm.rank() == root) continue;
        if (bytes.size() != part.size_bytes()) {
            throw format_error("prune::mpi::broadcast_values: " + std::to_string(bytes.size()) + " bytes from rank " +
                               std::to_string(root) + " (expected " + std::to_string(part.size_bytes()) + ")");
        }
        std::memcpy(part.data(), bytes.data(), bytes.size());
    }
}

/// The element-wise sum of every rank's `values` on every rank, added in rank order on rank 0
/// and broadcast from there: the same bits on every rank and for every run.
[[nodiscard]] inline std::vector<double> sum(communicator& comm, std::span<const double> values) {
    std::vector<double> total(values.begin(), values.end());
    comm.reduce_to(total, 0);
    std::string bytes = comm.rank() == 0 ? to_bytes(total) : std::string();
    comm.broadcast(bytes, 0);
    return doubles_of(bytes);
}

/// Every rank learns whether some rank failed: `failure` is this rank's error message (empty:
/// it succeeded). When any rank failed, throws rank_error with the lowest failing rank and its
/// message on every rank; otherwise returns on every rank.
inline void agree(communicator& comm, const std::string& failure) {
    const std::string mine = (failure.empty() ? "0" : "1") + failure;
    const std::vector<std::string> all = comm.gather(mine, 0);
    std::string verdict;  // "" when every rank succeeded, else the first failing rank, a space, its message
    for (std::size_t r = 0; r < all.size() && verdict.empty(); ++r) {
        if (!all[r].empty() && all[r][0] == '1') verdict = std::to_string(r) + " " + all[r].substr(1);
    }
    comm.broadcast(verdict, 0);
    if (verdict.empty()) return;
    const std::size_t space = verdict.find(' ');
    throw rank_error(std::stoi(verdict.substr(0, space)), verdict.substr(space + 1));
}

/// Runs f() on every rank, then agree()s: a throw on any rank becomes a rank_error on every
/// rank. With one process f's own exception propagates unchanged (nothing to name).
template <class F>
void collectively(communicator& comm, F&& f) {
    if (comm.size() == 1) {
        std::forward<F>(f)();
        return;
    }
    std::string failure;
    try {
        std::forward<F>(f)();
    } catch (const std::exception& e) {
        failure = e.what();
        if (failure.empty()) failure = "failed";
    }
    agree(comm, failure);
}

}  // namespace prune::mpi
