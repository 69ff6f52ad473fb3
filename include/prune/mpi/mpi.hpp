// prune/mpi/mpi.hpp: the communicator of <prune/mpi/communicator.hpp> over MPI's C API, for
// binaries started by mpirun / mpiexec (docs/distributed.md). The only header of prune that
// includes <mpi.h>; the target prune::mpi (CMake: find_package(prune COMPONENTS mpi)).
//
// Every operation is built from point-to-point messages in a fixed order (rank 0, 1, ...), never
// from MPI's reductions, so sums are deterministic (communicator.hpp). Messages are cut into
// chunks (1 Mi doubles by default) so that sizes past MPI's int counts work and the owner of
// reduce_to holds one extra chunk at a time. MPI errors are returned, not fatal, and thrown as
// io_error naming the call.
#pragma once

#include <prune/error.hpp>
#include <prune/mpi/communicator.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace prune::mpi {

/// True when an MPI launcher started this process: MPICH's and Open MPI's mpirun / mpiexec and
/// Slurm's srun set one of PMI_RANK, PMI_SIZE, PMIX_RANK, OMPI_COMM_WORLD_SIZE. A binary not
/// started so runs as one process without initialising MPI.
[[nodiscard]] inline bool launched_by_mpirun() {
    for (const char* name : {"PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE"}) {
        if (std::getenv(name) != nullptr) return true;
    }
    return false;
}

/// The processes of MPI_COMM_WORLD (its own duplicate, so that its messages never meet others').
class mpi_communicator final : public communicator {
public:
    /// Initialises MPI unless it already is (MPI_THREAD_FUNNELED: only the calling thread talks
    /// to MPI; the compute threads never do) and duplicates MPI_COMM_WORLD. io_error when MPI fails.
    mpi_communicator(int* argc, char*** argv) {
        int initialized = 0;
        MPI_Initialized(&initialized);
        if (initialized == 0) {
            int provided = 0;
            check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
            owns_mpi_ = true;
        }
        check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
        check(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
        check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
        check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
    }

    /// Frees the duplicate and finalises MPI when the constructor initialised it.
    ~mpi_communicator() override {
        MPI_Comm_free(&comm_);
        if (owns_mpi_) MPI_Finalize();
    }

    /// This process's rank in MPI_COMM_WORLD.
    [[nodiscard]] int rank() const noexcept override { return rank_; }
    /// The number of processes in MPI_COMM_WORLD.
    [[nodiscard]] int size() const noexcept override { return size_; }
    /// MPI_Barrier.
    void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }

    /// Root sends its length, then its bytes in chunks, to every other rank in rank order.
    void broadcast(std::string& bytes, int root = 0) override {
        check_root(root, "broadcast");
        if (rank_ == root) {
            for (int r = 0; r < size_; ++r) {
                if (r != root) send(bytes, r);
            }
        } else {
            bytes = receive(root);
        }
    }

    /// Root receives every other rank's bytes in rank order.
    [[nodiscard]] std::vector<std::string> gather(std::string_view bytes, int root = 0) override {
        check_root(root, "gather");
        if (rank_ != root) {
            send(bytes, root);
            return {};
        }
        std::vector<std::string> all(static_cast<std::size_t>(size_));
        for (int r = 0; r < size_; ++r) all[static_cast<std::size_t>(r)] = r == root ? std::string(bytes) : receive(r);
        return all;
    }

    /// Chunk by chunk: the owner adds rank 0's, 1's, ... values in rank order; the others send theirs.
    void reduce_to(std::span<double> values, int owner) override {
        check_root(owner, "reduce_to");
        std::vector<double> total, part;
        for (std::size_t first = 0; first < values.size(); first += chunk_) {
            const std::size_t n = std::min(chunk_, values.size() - first);
            const std::span<double> mine = values.subspan(first, n);
            if (rank_ != owner) {
                send_doubles(mine, owner);
            } else {
                total.assign(mine.begin(), mine.end());  // rank 0's chunk (or the owner's, when it is rank 0)
                if (owner != 0) receive_doubles(total, 0);
                for (int r = 1; r < size_; ++r) {
                    if (r == owner) {
                        for (std::size_t i = 0; i < n; ++i) total[i] += mine[i];
                        continue;
                    }
                    part.resize(n);
                    receive_doubles(part, r);
                    for (std::size_t i = 0; i < n; ++i) total[i] += part[i];
                }
                std::copy(total.begin(), total.end(), mine.begin());
            }
        }
    }

    /// Sets the number of doubles (and 8x the bytes) per message: tests make it small to cut buffers.
    void set_chunk(std::size_t doubles) {
        if (doubles == 0) throw value_error("prune::mpi::mpi_communicator::set_chunk: 0 (expected > 0)");
        chunk_ = doubles;
    }

private:
    static void check(int code, const char* call) {
        if (code == MPI_SUCCESS) return;
        char text[MPI_MAX_ERROR_STRING];
        int length = 0;
        MPI_Error_string(code, text, &length);
        throw io_error(std::string("prune::mpi: ") + call + " failed: " + std::string(text, static_cast<std::size_t>(length)));
    }

    /// Sends the length, then the bytes in chunks of 8 x chunk_ bytes.
    void send(std::string_view bytes, int to) {
        const std::uint64_t length = bytes.size();
        check(MPI_Send(&length, 1, MPI_UINT64_T, to, 0, comm_), "MPI_Send");
        for (std::size_t at = 0; at < bytes.size(); at += 8 * chunk_) {
            const std::size_t n = std::min(8 * chunk_, bytes.size() - at);
            check(MPI_Send(bytes.data() + at, static_cast<int>(n), MPI_BYTE, to, 0, comm_), "MPI_Send");
        }
    }

    /// Receives what send() sent from rank `from`.
    [[nodiscard]] std::string receive(int from) {
        std::uint64_t length = 0;
        check(MPI_Recv(&length, 1, MPI_UINT64_T, from, 0, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
        std::string bytes(length, '\0');
        for (std::size_t at = 0; at < bytes.size(); at += 8 * chunk_) {
            const std::size_t n = std::min(8 * chunk_, bytes.size() - at);
            check(MPI_Recv(bytes.data() + at, static_cast<int>(n), MPI_BYTE, from, 0, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
        }
        return bytes;
    }

    void send_doubles(std::span<const double> values, int to) {
        check(MPI_Send(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, to, 1, comm_), "MPI_Send");
    }

    /// Receives exactly values.size() doubles from `from`; io_error when it sent a different number.
    void receive_doubles(std::span<double> values, int from) {
        MPI_Status status;
        check(MPI_Recv(values.data(), static_cast<int>(values.size()), MPI_DOUBLE, from, 1, comm_, &status), "MPI_Recv");
        int count = 0;
        MPI_Get_count(&status, MPI_DOUBLE, &count);
        if (static_cast<std::size_t>(count) != values.size()) {
            throw io_error("prune::mpi::reduce_to: rank " + std::to_string(from) + " sent " + std::to_string(count) +
                           " values (expected " + std::to_string(values.size()) + ": every rank passes the same length)");
        }
    }

    MPI_Comm comm_ = MPI_COMM_NULL;
    int rank_ = 0;
    int size_ = 1;
    bool owns_mpi_ = false;
    std::size_t chunk_ = std::size_t{1} << 20;
};

}  // namespace prune::mpi
